/*
 * engine_adopt.c — executions this broker does not hold in memory (engine_impl.h,
 * docs/mongodb.md "Several brokers"). Brokers sharing one database each hold the
 * executions of the notices they sent; a vehicle may reconnect to any broker. When a
 * report event of an execution arrives at a broker that does not hold it (another broker
 * claimed its notice, or it is still queued here), the event is copied and waits, the
 * execution is read from the store by the writer (ota_store_load_exec; every waiting one
 * in one job, one job in flight at a time), and on the TICK that brings it back the
 * stored state is taken over (counts moved, the vehicle busy with the task) and the
 * events drive it as if they had arrived here. Since every move is a conditional write
 * (engine_flush.c), a broker that lost the race reads the execution again the same way.
 * Read back, the further of the two wins: an execution only moves forward within one
 * notice (queued, notified, downloading, installing, then a final state) and a re-send is
 * a later notice, so (resends, rank of the state) orders them; when this broker's is
 * further (its write lost to an older move: a vehicle's reports raced over two brokers),
 * it is written again from the stored state, else the stored one is taken over.
 * The broker thread never waits: the events wait.
 */
#include "engine_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADOPT_RETRY_MS 1000

bool ota_eng_not_held(const ota_engine *e, const ota_task_exec *x)
{
    if (!e->plugin->writer) {
        return false; /* no store to read from: memory is all there is */
    }
    return (x->flags & OTA_EXEC_F_ELSEWHERE) || x->state == OTA_EXEC_QUEUED;
}

/* ---------------------------------------------------------------- waiting events */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void event_fini(ota_event *ev)
{
    const char *strs[] = {ev->task,    ev->ecu, ev->step, ev->status, ev->error,
                          ev->trigger, ev->fw,  ev->cmd,  ev->result, ev->id};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free((char *)strs[i]);
    }
}

/* A copy of ev owning its texts; false when out of memory (nothing to free). */
static bool event_copy(ota_event *to, const ota_event *ev)
{
    *to = *ev;
    to->task = dup_or_null(ev->task);
    to->ecu = dup_or_null(ev->ecu);
    to->step = dup_or_null(ev->step);
    to->status = dup_or_null(ev->status);
    to->error = dup_or_null(ev->error);
    to->trigger = dup_or_null(ev->trigger);
    to->fw = dup_or_null(ev->fw);
    to->cmd = dup_or_null(ev->cmd);
    to->result = dup_or_null(ev->result);
    to->id = dup_or_null(ev->id); /* the side effects' id (effects.c) */
    if ((ev->task && !to->task) || (ev->status && !to->status) || (ev->error && !to->error) ||
        (ev->id && !to->id)) {
        event_fini(to);
        return false;
    }
    return true;
}

static void adopt_fini(eng_adopt *a)
{
    for (size_t i = 0; i < a->n_evs; i++) {
        event_fini(&a->evs[i]);
    }
    free(a->evs);
}

/* The waiting entry of x, made when missing (NULL when out of memory). */
static eng_adopt *adopt_entry(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    eng_adopts *q = &e->adopts;
    size_t idx = (size_t)(x - task->execs);
    for (size_t i = 0; i < q->n; i++) {
        if (q->list[i].task == task && q->list[i].idx == idx) {
            return &q->list[i];
        }
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        eng_adopt *l = realloc(q->list, cap * sizeof(*l));
        if (!l) {
            return NULL;
        }
        q->list = l;
        q->cap = cap;
    }
    q->list[q->n] = (eng_adopt){.task = task, .idx = idx};
    return &q->list[q->n++];
}

void ota_eng_adopt_event(ota_engine *e, ota_task *task, ota_task_exec *x, const ota_event *ev)
{
    eng_adopt *a = adopt_entry(e, task, x);
    ota_event *evs = a ? realloc(a->evs, (a->n_evs + 1) * sizeof(*evs)) : NULL;
    if (!evs) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: task %s: an event not applied: out of memory",
                             task->rec.id);
        return;
    }
    a->evs = evs;
    if (event_copy(&a->evs[a->n_evs], ev)) {
        a->n_evs++;
    }
}

void ota_eng_adopt_reload(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    e->adopts.conflicts++;
    if (!adopt_entry(e, task, x)) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: task %s: an execution not read again: out of "
                             "memory",
                             task->rec.id);
    }
}

void ota_eng_adopt_free(ota_engine *e)
{
    for (size_t i = 0; i < e->adopts.n; i++) {
        adopt_fini(&e->adopts.list[i]);
    }
    free(e->adopts.list);
}

/* ---------------------------------------------------------------- load jobs */

/* What the store holds of one execution (texts copied into the fixed buffers). */
typedef struct {
    char task[OTA_ID_MAX + 1], vin[OTA_VIN_LEN + 1], code[64];
    bool found, has_code;
    ota_exec_state state;
    uint16_t resends;
    int64_t notified_ms, updated_ms;
} adopt_rec;

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    eng_adopt *list;
    adopt_rec *recs;
    size_t n;
} adopt_job;

static int keep_rec(void *ctx, const ota_exec_rec *r)
{
    adopt_rec *a = ctx;
    a->found = true;
    a->state = r->state;
    a->has_code = r->code != NULL;
    snprintf(a->code, sizeof a->code, "%s", r->code ? r->code : "");
    a->resends = (uint16_t)r->resends;
    a->notified_ms = r->notified_ms;
    a->updated_ms = r->updated_ms;
    return 0;
}

static int adopt_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    adopt_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        if (ota_store_load_exec(store, j->recs[i].task, j->recs[i].vin, keep_rec, &j->recs[i]) !=
            0) {
            snprintf(err, errlen, "execution %s/%s not read", j->recs[i].task, j->recs[i].vin);
            return -1;
        }
    }
    return 0;
}

static void move_count(ota_task *task, ota_task_exec *x, uint8_t state)
{
    task->count[x->state]--;
    if (task->waves) { /* the waves' counts follow (core/task_waves.h) */
        ota_task_waves_moved(task->waves, (size_t)(x - task->execs), x->state, state);
    }
    x->state = state;
    task->count[state]++;
}

/* The stored execution replaces what this broker had in memory. */
static void take_over(ota_engine *e, ota_task *task, ota_task_exec *x, const adopt_rec *r)
{
    x->flags &= (uint8_t) ~(OTA_EXEC_F_CLAIMING | OTA_EXEC_F_ELSEWHERE);
    if (x->state != (uint8_t)r->state) {
        move_count(task, x, (uint8_t)r->state);
    }
    x->code = r->has_code ? ota_tasks_code(e->plugin->tasks, r->code) : 0;
    x->resends = r->resends;
    x->notified_ms = r->notified_ms;
    x->changed_ms = r->updated_ms > 0 ? r->updated_ms : e->clock.now_ms();
    ota_eng_dirty_stored(e, x, x->state);
    ota_eng_timers_exec(e, task, x); /* its timeout from the stored time */
    eng_veh *v = ota_eng_veh_get(e, r->vin);
    if (v && ota_exec_in_flight(x->state) && x->state != OTA_EXEC_QUEUED) {
        v->busy = task;
    } else if (v && v->busy == task) {
        ota_eng_release_vehicle(e, task, x);
    }
    ota_eng_check_task(task);
}

static unsigned rank(uint8_t state)
{
    switch (state) {
    case OTA_EXEC_QUEUED:
        return 0;
    case OTA_EXEC_NOTIFIED:
        return 1;
    case OTA_EXEC_POSTPONED: /* the driver's answers (issue 17): in flight, not final */
    case OTA_EXEC_ACCEPTED:
        return 2;
    case OTA_EXEC_DOWNLOADING:
        return 3;
    case OTA_EXEC_INSTALLING:
        return 4;
    default:
        return 5; /* final */
    }
}

/* True when x in memory is further than the stored r (see the top comment). */
static bool further(const ota_task_exec *x, const adopt_rec *r)
{
    if (x->flags & OTA_EXEC_F_ELSEWHERE) {
        return false; /* its in-memory state is a placeholder */
    }
    if (x->resends != r->resends) {
        return x->resends > r->resends;
    }
    return rank(x->state) > rank((uint8_t)r->state);
}

/* One execution back from the store: taken over (or written again when this broker's is
 * further), then its waiting events drive it. */
static void adopt_one(ota_engine *e, eng_adopt *a, const adopt_rec *r)
{
    ota_task_exec *x = &a->task->execs[a->idx];
    if (r->found && further(x, r)) {
        if (x->dirty) {
            ota_eng_dirty_stored(e, x, (uint8_t)r->state);
        } else {
            ota_eng_mark_dirty_from(e, a->task, x, (uint8_t)r->state);
        }
    } else if (r->found) {
        take_over(e, a->task, x, r);
        e->adopts.loaded++;
    }
    for (size_t i = 0; i < a->n_evs; i++) {
        ota_eng_drive(e->plugin, a->task, x, r->vin, &a->evs[i]);
    }
}

static void adopt_done(void *arg, int rc, const char *err)
{
    adopt_job *j = arg;
    ota_engine *e = j->e;
    e->adopts.in_flight = false;
    for (size_t i = 0; i < j->n; i++) {
        if (rc == 0) {
            adopt_one(e, &j->list[i], &j->recs[i]);
        } else {
            eng_adopt *a = adopt_entry(e, j->list[i].task, &j->list[i].task->execs[j->list[i].idx]);
            if (a && !a->evs) { /* wait again, with the events */
                a->evs = j->list[i].evs;
                a->n_evs = j->list[i].n_evs;
                j->list[i].evs = NULL;
                j->list[i].n_evs = 0;
            }
        }
        adopt_fini(&j->list[i]);
    }
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: executions not read (%s); retrying", err);
        e->adopts.retry_after = e->clock.mono_ms() + ADOPT_RETRY_MS;
    }
    free(j->list);
    free(j->recs);
    free(j);
}

void ota_eng_adopt_submit(ota_engine *e)
{
    eng_adopts *q = &e->adopts;
    if (!e->plugin->writer || q->in_flight || q->n == 0 || e->clock.mono_ms() < q->retry_after) {
        return;
    }
    adopt_job *j = calloc(1, sizeof(*j));
    adopt_rec *recs = calloc(q->n, sizeof(*recs));
    if (!j || !recs) {
        free(j);
        free(recs);
        return;
    }
    *j = (adopt_job){.e = e, .list = q->list, .recs = recs, .n = q->n};
    for (size_t i = 0; i < j->n; i++) {
        ota_task *task = j->list[i].task;
        snprintf(recs[i].task, sizeof recs[i].task, "%s", task->rec.id);
        ota_task_exec_vin(&task->execs[j->list[i].idx], recs[i].vin);
    }
    q->list = NULL;
    q->n = q->cap = 0;
    q->in_flight = true;
    j->job = (ota_writer_job){.run = adopt_run, .done = adopt_done, .arg = j};
    if (ota_writer_submit(e->plugin->writer, &j->job) != 0) {
        adopt_done(j, -1, "the writer is stopping");
    }
}
