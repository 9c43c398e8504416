/*
 * engine.c — the task engine's moving part (engine.h, docs/task-engine.md): dispatch of
 * notices, execution states driven by reports, cancelTask, timeouts, the abort threshold,
 * and batched persistence of execution changes and notices.
 *
 * Design
 * - Vehicles: a map by VIN of {online, busy}: online from its shadow/update or shadow/get
 *   until its DISCONNECT; busy = the task it has notified / in progress (at most one).
 *   Built at start from the executions in flight, so a restart never notifies twice.
 * - Dispatch: tasks oldest first; a task dispatches while active and inside its window,
 *   with a token bucket of `rate` notices per second (capacity max(1, rate); 0 =
 *   unlimited). TICK walks, per task, its executions or the online vehicles, whichever is
 *   fewer; on_vehicle_seen tries just that vehicle. A vehicle goes to the oldest task able
 *   to notify it. After a task's end, its queued executions become canceled ("expired").
 * - Every change of an execution goes through set_state (counts, change time, dirty list);
 *   the dirty executions, notices and task documents go to the writer as ONE change at most
 *   paced by batch.h (one job in flight, at most every 50 ms), like shadow.c.
 * - Time: timeouts use ota_now_ms scaled by OTA_TEST_TIME_SCALE (read once; tests only: a
 *   scale of 600 makes a minute 100 ms).
 */
#include "engine.h"
#include "batch.h"
#include "catalog.h"
#include "control.h"
#include "effects.h"
#include "map.h"
#include "ota_catalog_json.h"
#include "pkg.h"
#include "shadow.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CANCEL_CODE "cancel_requested"

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    bool online;
    ota_task *busy;
} veh;

typedef struct {
    ota_task *task;
    size_t idx;
} dirty_ref;

typedef struct {
    ota_notice_rec rec; /* strings malloc'd */
} notice;

/* An execution whose notice waits for its claim: the notice is task:vin:resends. */
typedef struct {
    ota_task *task;
    size_t idx;
    uint16_t resends;
} claim_ref;

typedef struct {
    claim_ref *refs;
    size_t n, cap;
    bool in_flight;      /* one claim job with the writer at a time */
    bool failing;        /* the last job failed (logged once) */
    unsigned backoff_ms; /* after a failure: 1 s, doubling to 8 s */
    int64_t retry_after; /* monotonic ms */
    uint64_t won, lost, errors;
} claim_queue;

typedef struct {
    ota_map vehs;
    bool built;
    ota_plugin *plugin; /* for the claim jobs' done callbacks */
    bool stopping;      /* ota_engine_flush_final ran: claims coming back are not sent */
    claim_queue claims;
    dirty_ref *dirty;
    size_t n_dirty, cap_dirty;
    notice *notices;
    size_t n_notices, cap_notices;
    ota_batcher batch;
    int64_t last_timeouts;
    double scale;
} engine;

static ota_map_key veh_key(const void *rec)
{
    return ota_map_key_str(((const veh *)rec)->vin);
}

static void notice_fini(notice *n)
{
    free((char *)n->rec.task);
    free((char *)n->rec.vin);
    free((char *)n->rec.version);
    free((char *)n->rec.msg_id);
}

static void engine_free(void *arg)
{
    engine *e = arg;
    if (!e) {
        return;
    }
    ota_map_destroy(&e->vehs, NULL);
    for (size_t i = 0; i < e->n_notices; i++) {
        notice_fini(&e->notices[i]);
    }
    free(e->notices);
    free(e->dirty);
    free(e->claims.refs);
    free(e);
}

static void exec_vin(const ota_task_exec *x, char vin[OTA_VIN_LEN + 1])
{
    memcpy(vin, x->vin, OTA_VIN_LEN);
    vin[OTA_VIN_LEN] = '\0';
}

static bool in_flight(uint8_t s)
{
    return s == OTA_EXEC_NOTIFIED || s == OTA_EXEC_DOWNLOADING || s == OTA_EXEC_INSTALLING;
}

static veh *veh_get(engine *e, const char *vin)
{
    veh *v = ota_map_get_str(&e->vehs, vin);
    if (v || strlen(vin) != OTA_VIN_LEN) {
        return v;
    }
    veh fresh = {0};
    memcpy(fresh.vin, vin, OTA_VIN_LEN + 1);
    return ota_map_put(&e->vehs, &fresh);
}

/* The engine, created on first use: the busy vehicles from the executions in flight. */
static engine *eng(ota_plugin *p)
{
    engine *e = p->tasks ? ota_tasks_engine(p->tasks) : NULL;
    if (e || !p->tasks) {
        return e;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    ota_map_init(&e->vehs, sizeof(veh), veh_key);
    e->plugin = p;
    const char *sc = getenv("OTA_TEST_TIME_SCALE");
    e->scale = sc && atof(sc) > 0 ? atof(sc) : 1.0;
    ota_tasks_set_engine(p->tasks, e, engine_free);
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < tasks[i]->n_execs; k++) {
            char vin[OTA_VIN_LEN + 1];
            exec_vin(&tasks[i]->execs[k], vin);
            veh *v = in_flight(tasks[i]->execs[k].state) ? veh_get(e, vin) : NULL;
            if (v && !v->busy) {
                v->busy = tasks[i];
            }
        }
        tasks[i]->refill_ms = ota_mono_ms();
        tasks[i]->tokens = tasks[i]->rec.rate ? tasks[i]->rec.rate : 1;
    }
    free(tasks);
    return e;
}

/* ---------------------------------------------------------------- changes */

static void mark_dirty(engine *e, ota_task *task, ota_task_exec *x)
{
    if (x->dirty || (x->flags & OTA_EXEC_F_ELSEWHERE)) {
        return; /* another broker's notice: that broker stores the execution */
    }
    if (e->n_dirty == e->cap_dirty) {
        size_t cap = e->cap_dirty ? 2 * e->cap_dirty : 64;
        dirty_ref *d = realloc(e->dirty, cap * sizeof(*d));
        if (!d) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: execution change not stored: out of memory");
            return;
        }
        e->dirty = d;
        e->cap_dirty = cap;
    }
    e->dirty[e->n_dirty++] = (dirty_ref){task, (size_t)(x - task->execs)};
    x->dirty = 1;
}

static void set_state(engine *e, ota_task *task, ota_task_exec *x, uint8_t state)
{
    if (x->state < OTA_EXEC_STATE_COUNT) {
        task->count[x->state]--;
    }
    x->state = state;
    if (state != OTA_EXEC_QUEUED && !in_flight(state)) {
        x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING; /* finished: its pending notice is moot */
    }
    task->count[state]++;
    x->changed_ms = ota_now_ms();
    mark_dirty(e, task, x);
}

static void set_task_state(ota_task *task, ota_task_state s)
{
    if (task->state != s) {
        task->state = s;
        task->doc_dirty = true;
    }
}

static size_t open_count(const ota_task *t)
{
    return t->count[OTA_EXEC_QUEUED] + t->count[OTA_EXEC_NOTIFIED] +
           t->count[OTA_EXEC_DOWNLOADING] + t->count[OTA_EXEC_INSTALLING];
}

/* Abort threshold and the end of a task. */
static void check_task(ota_task *task)
{
    size_t ok = task->count[OTA_EXEC_SUCCEEDED], bad = task->count[OTA_EXEC_FAILED];
    const ota_task_rec *r = &task->rec;
    if (task->state == OTA_TASK_ACTIVE && r->abort_min_executed > 0 && r->abort_failure_pct > 0 &&
        ok + bad >= r->abort_min_executed && bad * 100 >= (ok + bad) * r->abort_failure_pct) {
        set_task_state(task, OTA_TASK_ABORTED);
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s aborted: %zu of %zu failed", r->id, bad,
                             ok + bad);
    }
    if (task->state == OTA_TASK_ACTIVE && open_count(task) == 0) {
        set_task_state(task, OTA_TASK_FINISHED);
    }
}

/* ---------------------------------------------------------------- notices */

static void make_msg_id(const ota_task *task, const ota_task_exec *x, char *buf, size_t len)
{
    char vin[OTA_VIN_LEN + 1];
    exec_vin(x, vin);
    snprintf(buf, len, "%s:%s:%u", task->rec.id, vin, (unsigned)x->resends);
}

static void record_notice(engine *e, const ota_task *task, const char *vin, const char *msg_id,
                          int64_t now)
{
    if (e->n_notices == e->cap_notices) {
        size_t cap = e->cap_notices ? 2 * e->cap_notices : 64;
        notice *n = realloc(e->notices, cap * sizeof(*n));
        if (!n) {
            return;
        }
        e->notices = n;
        e->cap_notices = cap;
    }
    notice *n = &e->notices[e->n_notices];
    n->rec = (ota_notice_rec){strdup(task->rec.id),      strdup(vin),    task->package,
                              strdup(task->rec.version), strdup(msg_id), now};
    if (!n->rec.task || !n->rec.vin || !n->rec.version || !n->rec.msg_id) {
        notice_fini(n);
        return;
    }
    e->n_notices++;
}

/* Sets the notice as the vehicle's desired state, records it, marks the execution. */
static void send_notice(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1], msg_id[128];
    exec_vin(x, vin);
    make_msg_id(task, x, msg_id, sizeof(msg_id));
    cJSON *d = cJSON_CreateObject();
    cJSON *t = cJSON_AddObjectToObject(d, "task");
    cJSON_AddStringToObject(t, "task", task->rec.id);
    cJSON_AddStringToObject(t, "vin", vin);
    cJSON_AddNumberToObject(t, "package", (double)task->package);
    cJSON_AddStringToObject(t, "version", task->rec.version);
    cJSON_AddStringToObject(t, "upgrade_type", ota_task_type_name(task->rec.type));
    cJSON_AddStringToObject(t, "msg_id", msg_id);
    if (task->rec.end_ms >= 0) {
        cJSON_AddNumberToObject(t, "expires", (double)task->rec.end_ms);
    }
    int64_t now = ota_now_ms();
    x->flags &= (uint8_t) ~(OTA_EXEC_F_CLAIMING | OTA_EXEC_F_ELSEWHERE); /* ours now */
    ota_shadow_set_desired(p, vin, d);
    record_notice(e, task, vin, msg_id, now);
    x->notified_ms = now;
    set_state(e, task, x, OTA_EXEC_NOTIFIED);
    ota_pkg_presign(p, vin, task->rec.id); /* its pkg/get is answered from memory */
    veh *v = veh_get(e, vin);
    if (v) {
        v->busy = task;
    }
}

/* ---------------------------------------------------------------- claims */

/* The notice of x (its msg_id task:vin:resends) is sent once this broker holds its claim:
 * queued here, claimed by the next claim job (claim_submit), sent by claim_done. */
static void request_claim(engine *e, ota_task *task, ota_task_exec *x)
{
    claim_queue *q = &e->claims;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        claim_ref *r = realloc(q->refs, cap * sizeof(*r));
        if (!r) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: notice of task %s not sent: out of memory",
                                 task->rec.id);
            return;
        }
        q->refs = r;
        q->cap = cap;
    }
    q->refs[q->n++] = (claim_ref){task, (size_t)(x - task->execs), x->resends};
    x->flags |= OTA_EXEC_F_CLAIMING;
}

/* ---------------------------------------------------------------- dispatch */

static bool window_open(const ota_task *task, int64_t now)
{
    return (task->rec.start_ms < 0 || task->rec.start_ms <= now) &&
           (task->rec.end_ms < 0 || now < task->rec.end_ms);
}

static bool can_dispatch(const ota_task *task, int64_t now)
{
    return task->state == OTA_TASK_ACTIVE && task->count[OTA_EXEC_QUEUED] > 0 &&
           window_open(task, now);
}

static void refill(ota_task *task)
{
    if (task->rec.rate == 0) {
        return;
    }
    int64_t m = ota_mono_ms();
    if (task->refill_ms == 0) {
        task->refill_ms = m;
        task->tokens = task->rec.rate;
    }
    task->tokens += (double)(m - task->refill_ms) * task->rec.rate / 1000.0;
    if (task->tokens > task->rec.rate) {
        task->tokens = task->rec.rate;
    }
    task->refill_ms = m;
}

static bool has_token(const ota_task *task)
{
    return task->rec.rate == 0 || task->tokens >= 1.0;
}

/* Tries to notify vehicle v for task (oldest tasks are tried first by the callers). */
static bool try_vehicle(ota_plugin *p, engine *e, ota_task *task, veh *v)
{
    if (!v->online || v->busy || !has_token(task)) {
        return false;
    }
    ota_task_exec *x = ota_task_find_exec(task, v->vin);
    if (!x || x->state != OTA_EXEC_QUEUED || x->flags) {
        return false;
    }
    if (task->rec.rate) {
        task->tokens -= 1.0;
    }
    v->busy = task; /* while the claim is out, no other task may take the vehicle */
    request_claim(e, task, x);
    (void)p;
    return true;
}

static void expire_queued(ota_plugin *p, engine *e, ota_task *task)
{
    for (size_t i = 0; i < task->n_execs && task->count[OTA_EXEC_QUEUED] > 0; i++) {
        ota_task_exec *x = &task->execs[i];
        if (x->state == OTA_EXEC_QUEUED) {
            x->code = ota_tasks_code(p->tasks, "expired");
            set_state(e, task, x, OTA_EXEC_CANCELED);
        }
    }
}

static void dispatch_task(ota_plugin *p, engine *e, ota_task *task, int64_t now)
{
    refill(task);
    if (!has_token(task)) {
        return;
    }
    if (ota_map_count(&e->vehs) < task->n_execs) {
        size_t pos = 0;
        veh *v;
        while ((v = ota_map_next(&e->vehs, &pos)) && has_token(task)) {
            try_vehicle(p, e, task, v);
        }
    } else {
        for (size_t i = 0; i < task->n_execs && has_token(task); i++) {
            if (task->execs[i].state != OTA_EXEC_QUEUED) {
                continue;
            }
            char vin[OTA_VIN_LEN + 1];
            exec_vin(&task->execs[i], vin);
            veh *v = ota_map_get_str(&e->vehs, vin);
            if (v) {
                try_vehicle(p, e, task, v);
            }
        }
    }
    (void)now;
}

/* One vehicle: the oldest task that can notify it now. */
static void dispatch_vehicle(ota_plugin *p, engine *e, veh *v)
{
    if (!v->online || v->busy) {
        return;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    int64_t now = ota_now_ms();
    for (long i = 0; i < n && !v->busy; i++) {
        if (can_dispatch(tasks[i], now)) {
            refill(tasks[i]);
            try_vehicle(p, e, tasks[i], v);
        }
    }
    free(tasks);
}

void ota_engine_on_vehicle_seen(ota_plugin *p, const char *vin)
{
    engine *e = eng(p);
    veh *v = e && vin ? veh_get(e, vin) : NULL;
    if (v) {
        v->online = true;
        dispatch_vehicle(p, e, v);
    }
}

void ota_engine_on_disconnect(ota_plugin *p, const char *vin)
{
    engine *e = eng(p);
    veh *v = e && vin ? ota_map_get_str(&e->vehs, vin) : NULL;
    if (v) {
        v->online = false;
    }
}

/* ---------------------------------------------------------------- finishing */

/* The vehicle is free again: its desired state cleared, its next task may go out. */
static void release(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    exec_vin(x, vin);
    ota_shadow_set_desired(p, vin, NULL);
    veh *v = ota_map_get_str(&e->vehs, vin);
    if (v && v->busy == task) {
        v->busy = NULL;
    }
    check_task(task);
    if (v) {
        dispatch_vehicle(p, e, v);
    }
}

static void finish(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x, uint8_t state,
                   const char *code)
{
    x->code = ota_tasks_code(p->tasks, code);
    set_state(e, task, x, state);
    release(p, e, task, x);
}

static bool cancel_pending(ota_plugin *p, const ota_task_exec *x)
{
    const char *c = ota_tasks_code_name(p->tasks, x->code);
    return c && strcmp(c, CANCEL_CODE) == 0;
}

/* upgrade_status failed: side effects already published; compensation re-sends. */
static void on_failed(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x,
                      const ota_event *ev, bool resend)
{
    if (resend && !cancel_pending(p, x)) {
        x->resends++;
        request_claim(e, task, x); /* a new msg_id: claimed like the first notice */
        return;
    }
    finish(p, e, task, x, OTA_EXEC_FAILED, ev->error ? ev->error : "failed");
}

static bool call_effects(ota_plugin *p, const char *vin, const ota_event *ev, ota_task *task,
                         const ota_task_exec *x)
{
    ota_effect_ctx cx = {.vin = vin,
                         .vehicle = ota_catalog_vehicle(p->catalog, vin),
                         .ev = ev,
                         .task_id = task ? task->rec.id : NULL,
                         .task_type = task ? (int)task->rec.type : -1,
                         .resends = x ? x->resends : 0,
                         .max_resend = task ? task->rec.max_resend : 0};
    return ota_effects_on_status(p, &cx);
}

static void on_status(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x, const char *vin,
                      const ota_event *ev)
{
    bool resend = call_effects(p, vin, ev, task, x);
    if (strcmp(ev->status, "succeeded") == 0) {
        x->code = 0;
        finish(p, e, task, x, OTA_EXEC_SUCCEEDED, NULL);
    } else if (strcmp(ev->status, "failed") == 0) {
        on_failed(p, e, task, x, ev, resend);
    } else if (strcmp(ev->status, "canceled") == 0 ||
               (strcmp(ev->status, "idle") == 0 && cancel_pending(p, x))) {
        finish(p, e, task, x, OTA_EXEC_CANCELED, cancel_pending(p, x) ? NULL : "vehicle");
    }
}

void ota_engine_on_event(ota_plugin *p, const char *vin, const ota_event *ev)
{
    engine *e = eng(p);
    ota_task *task = e && ev->task ? ota_tasks_get(p->tasks, ev->task) : NULL;
    ota_task_exec *x = task ? ota_task_find_exec(task, vin) : NULL;
    if (!x || !in_flight(x->state)) {
        if (ev->type == OTA_EV_UPGRADE_STATUS && !(x && x->state != OTA_EXEC_QUEUED)) {
            call_effects(p, vin, ev, x ? task : NULL, x);
        }
        return; /* no execution in flight: nothing to drive */
    }
    if (ev->type == OTA_EV_DOWNLOAD_PROGRESS && x->state == OTA_EXEC_NOTIFIED) {
        set_state(e, task, x, OTA_EXEC_DOWNLOADING);
    } else if (ev->type == OTA_EV_UPGRADE_PROGRESS && x->state != OTA_EXEC_INSTALLING) {
        set_state(e, task, x, OTA_EXEC_INSTALLING);
    } else if (ev->type == OTA_EV_UPGRADE_STATUS) {
        on_status(p, e, task, x, vin, ev);
    }
}

/* ---------------------------------------------------------------- timeouts */

static void time_out(ota_plugin *p, engine *e, ota_task *task, int64_t now)
{
    if (task->rec.timeout_min == 0) {
        return;
    }
    int64_t limit = (int64_t)((double)task->rec.timeout_min * 60000.0 / e->scale);
    for (size_t i = 0; i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        if (in_flight(x->state) && !(x->flags & OTA_EXEC_F_ELSEWHERE) &&
            now - x->changed_ms >= limit) {
            finish(p, e, task, x, OTA_EXEC_FAILED, "timeout");
        }
    }
}

/* ---------------------------------------------------------------- flush */

typedef struct {
    ota_writer_job job;
    engine *e;
    ota_catalog_change change;
    ota_exec_rec *execs;
    char **strs; /* every string the records point to */
    size_t n_strs;
    dirty_ref *refs;
    size_t n;
    notice *notices;
    size_t n_notices;
    ota_store_doc *docs;
    ota_task **doc_tasks;
    size_t n_docs;
} flush_job;

static void flush_job_free(flush_job *j)
{
    for (size_t i = 0; i < j->n_strs; i++) {
        free(j->strs[i]);
    }
    for (size_t i = 0; i < j->n_notices; i++) {
        notice_fini(&j->notices[i]);
    }
    free(j->strs);
    free(j->execs);
    free(j->refs);
    free(j->notices);
    free(j->docs);
    free(j->doc_tasks);
    free(j);
}

static char *keep(flush_job *j, char *s)
{
    j->strs[j->n_strs++] = s;
    return s;
}

static int flush_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    flush_job *j = arg;
    return ota_store_apply(store, &j->change, err, errlen);
}

static void flush_done(void *arg, int rc, const char *err)
{
    flush_job *j = arg;
    engine *e = j->e;
    ota_batch_ended(&e->batch, rc, "execution changes", j->n, err);
    if (rc != 0) {
        for (size_t i = 0; i < j->n; i++) {
            mark_dirty(e, j->refs[i].task, &j->refs[i].task->execs[j->refs[i].idx]);
        }
        for (size_t i = 0; i < j->n_docs; i++) {
            j->doc_tasks[i]->doc_dirty = true;
        }
        for (size_t i = 0; i < j->n_notices; i++) {
            ota_notice_rec *r = &j->notices[i].rec;
            record_notice(e,
                          &(ota_task){.rec = {.id = (char *)r->task, .version = (char *)r->version},
                                      .package = r->package},
                          r->vin, r->msg_id, r->sent_ms);
        }
    }
    flush_job_free(j);
}

static void exec_rec(ota_plugin *p, flush_job *j, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1], msg_id[128];
    exec_vin(x, vin);
    make_msg_id(task, x, msg_id, sizeof(msg_id));
    const char *code = ota_tasks_code_name(p->tasks, x->code);
    j->execs[j->n] = (ota_exec_rec){.task = keep(j, strdup(task->rec.id)),
                                    .vin = keep(j, strdup(vin)),
                                    .state = (ota_exec_state)x->state,
                                    .code = code ? keep(j, strdup(code)) : NULL,
                                    .resends = x->resends,
                                    .msg_id = x->notified_ms >= 0 ? keep(j, strdup(msg_id)) : NULL,
                                    .notified_ms = x->notified_ms,
                                    .updated_ms = x->changed_ms};
}

static void add_docs(ota_plugin *p, flush_job *j, ota_task **tasks, long n)
{
    for (long i = 0; i < n; i++) {
        if (!tasks[i]->doc_dirty) {
            continue;
        }
        cJSON *d =
            ota_task_doc(&tasks[i]->rec, tasks[i]->state, tasks[i]->created_ms, tasks[i]->package);
        char *json = d ? cJSON_PrintUnformatted(d) : NULL;
        cJSON_Delete(d);
        if (!json) {
            continue;
        }
        j->docs[j->n_docs] = (ota_store_doc){OTA_DOC_TASK, tasks[i]->rec.id, keep(j, json)};
        j->doc_tasks[j->n_docs++] = tasks[i];
        tasks[i]->doc_dirty = false;
    }
    (void)p;
}

static void flush_submit(ota_plugin *p, engine *e)
{
    ota_task **tasks = NULL;
    long nt = ota_tasks_list(p->tasks, &tasks);
    size_t n = e->n_dirty;
    flush_job *j = calloc(1, sizeof(*j));
    if (!j || nt < 0) {
        free(j);
        free(tasks);
        return;
    }
    j->e = e;
    j->execs = calloc(n + 1, sizeof(*j->execs));
    j->strs = calloc(4 * n + (size_t)nt + 1, sizeof(*j->strs));
    j->docs = calloc((size_t)nt + 1, sizeof(*j->docs));
    j->doc_tasks = calloc((size_t)nt + 1, sizeof(*j->doc_tasks));
    if (!j->execs || !j->strs || !j->docs || !j->doc_tasks) {
        flush_job_free(j);
        free(tasks);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ota_task_exec *x = &e->dirty[i].task->execs[e->dirty[i].idx];
        exec_rec(p, j, e->dirty[i].task, x);
        x->dirty = 0;
        j->n++;
    }
    j->refs = e->dirty;
    e->dirty = NULL;
    e->n_dirty = e->cap_dirty = 0;
    j->notices = e->notices;
    j->n_notices = e->n_notices;
    e->notices = NULL;
    e->n_notices = e->cap_notices = 0;
    add_docs(p, j, tasks, nt);
    free(tasks);
    ota_notice_rec *nr = calloc(j->n_notices + 1, sizeof(*nr));
    for (size_t i = 0; nr && i < j->n_notices; i++) {
        nr[i] = j->notices[i].rec;
    }
    j->change = (ota_catalog_change){.put_execs = j->execs,
                                     .n_put_execs = j->n,
                                     .docs = j->docs,
                                     .n_docs = j->n_docs,
                                     .add_notices = nr,
                                     .n_add_notices = nr ? j->n_notices : 0};
    j->strs[j->n_strs++] = (char *)nr; /* freed with the strings */
    j->job = (ota_writer_job){.run = flush_run, .done = flush_done, .arg = j};
    int64_t now = ota_mono_ms();
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        flush_done(j, -1, "the writer is stopping");
        return;
    }
    ota_batch_started(&e->batch, now);
}

static bool has_changes(ota_plugin *p, engine *e)
{
    if (e->n_dirty || e->n_notices) {
        return true;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    bool any = false;
    for (long i = 0; i < n && !any; i++) {
        any = tasks[i]->doc_dirty;
    }
    free(tasks);
    return any;
}

static void flush(ota_plugin *p, engine *e)
{
    if (!p->writer || e->batch.in_flight) {
        return;
    }
    /* dirty executions count; only notices or task documents waiting count as one */
    size_t pending = e->n_dirty ? e->n_dirty : (has_changes(p, e) ? 1 : 0);
    if (ota_batch_due(&e->batch, pending, ota_mono_ms())) {
        flush_submit(p, e);
    }
}

static void claim_submit(ota_plugin *p, engine *e);

/* At shutdown only (the broker no longer serves): the claims out or waiting are settled
 * before the last flush, so that a clean stop sends (and stores) what it claimed. Waits
 * for the writer at most CLAIM_FINAL_WAIT_MS; a claim job failing then (store down) leaves
 * its first notices queued in the store, claimed again after the restart. */
#define CLAIM_FINAL_WAIT_MS 5000
static void claims_final(ota_plugin *p, engine *e)
{
    e->claims.retry_after = 0;
    for (int round = 0; round < 2 && (e->claims.in_flight || e->claims.n); round++) {
        claim_submit(p, e); /* the waiting ones, unless a job is still out */
        if (!ota_writer_jobs_idle(p->writer, CLAIM_FINAL_WAIT_MS)) {
            break;
        }
        ota_writer_poll_done(p->writer); /* claim_done: sends what this broker won */
    }
}

void ota_engine_flush_final(ota_plugin *p)
{
    engine *e = p->tasks ? ota_tasks_engine(p->tasks) : NULL;
    if (e && p->writer) {
        claims_final(p, e);
    }
    if (e) {
        e->stopping = true; /* claims coming back from now on are not sent */
    }
    if (e && p->writer && has_changes(p, e)) {
        flush_submit(p, e);
    }
}

/* ---------------------------------------------------------------- claim jobs */

typedef struct {
    char task[OTA_ID_MAX + 1], vin[OTA_VIN_LEN + 1], msg_id[OTA_ID_MAX + 32];
} claim_text;

typedef struct {
    ota_writer_job job;
    engine *e;
    const char *owner; /* p->cfg.broker_id: outlives the writer */
    int64_t now;
    claim_ref *refs;
    ota_notice_claim *claims;
    claim_text *text; /* what claims point to: the writer thread reads only this job */
    size_t n;
} claim_job;

static void claim_job_free(claim_job *j)
{
    free(j->refs);
    free(j->claims);
    free(j->text);
    free(j);
}

static int claim_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    claim_job *j = arg;
    return ota_store_claim_notices(store, j->claims, j->n, j->owner, j->now, err, errlen);
}

/* The execution of r, when r is still its pending claim (else NULL: it moved on). */
static ota_task_exec *claim_target(const claim_ref *r)
{
    ota_task_exec *x = &r->task->execs[r->idx];
    return (x->flags & OTA_EXEC_F_CLAIMING) && x->resends == r->resends ? x : NULL;
}

static void release_vehicle(ota_plugin *p, engine *e, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    exec_vin(x, vin);
    veh *v = ota_map_get_str(&e->vehs, vin);
    if (v && v->busy == task) {
        v->busy = NULL;
        dispatch_vehicle(p, e, v);
    }
}

/* Claimed by another broker: it sends and drives this notice. A first notice becomes
 * notified here (in memory only: never stored, never timed out by this broker), so the
 * vehicle stays busy with it until it reports the end of that task here. */
static void claim_lost(engine *e, ota_task *task, ota_task_exec *x)
{
    x->flags |= OTA_EXEC_F_ELSEWHERE;
    if (x->state == OTA_EXEC_QUEUED) {
        set_state(e, task, x, OTA_EXEC_NOTIFIED);
        if (task->rec.rate) {
            task->tokens += 1.0; /* no notice went out from here */
        }
    }
}

/* The execution of r moved on while its claim was out (canceled, expired, finished,
 * re-sent again): a queued one that got canceled frees its vehicle. */
static void claim_moved_on(ota_plugin *p, engine *e, const claim_ref *r)
{
    ota_task_exec *x = &r->task->execs[r->idx];
    if (!in_flight(x->state) && x->resends == r->resends) {
        release_vehicle(p, e, r->task, x);
    }
}

/* One claim's outcome (result 1 mine, 0 another broker's). */
static void claim_one_done(ota_plugin *p, engine *e, const claim_ref *r, int result)
{
    ota_task_exec *x = claim_target(r);
    if (!x) {
        claim_moved_on(p, e, r);
        return;
    }
    x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING;
    if (result == 0) {
        e->claims.lost++;
        claim_lost(e, r->task, x);
    } else if (x->state == OTA_EXEC_QUEUED && r->task->state != OTA_TASK_ACTIVE) {
        release_vehicle(p, e, r->task, x); /* the task stopped dispatching meanwhile */
    } else {
        e->claims.won++;
        send_notice(p, e, r->task, x);
    }
}

/* A failed job: its claims wait again, retried after a backoff (1 s doubling to 8 s). */
static void claim_failed(ota_plugin *p, engine *e, claim_job *j, const char *err)
{
    claim_queue *q = &e->claims;
    q->errors++;
    if (!q->failing) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: %zu notice claims failed (%s); the notices wait, retrying", j->n,
                             err);
    }
    q->failing = true;
    q->backoff_ms = q->backoff_ms ? (q->backoff_ms >= 4000 ? 8000 : 2 * q->backoff_ms) : 1000;
    q->retry_after = ota_mono_ms() + q->backoff_ms;
    for (size_t i = 0; i < j->n; i++) {
        ota_task_exec *x = claim_target(&j->refs[i]);
        if (x) {
            x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING;
            request_claim(e, j->refs[i].task, x);
        } else {
            claim_moved_on(p, e, &j->refs[i]);
        }
    }
}

static void claim_done(void *arg, int rc, const char *err)
{
    claim_job *j = arg;
    engine *e = j->e;
    ota_plugin *p = e->plugin;
    e->claims.in_flight = false;
    if (e->stopping) {
        /* Claimed but not sent: stored as queued, they are claimed again (1: same broker
         * id) and sent after the restart (only when claims_final timed out). */
    } else if (rc != 0) {
        claim_failed(p, e, j, err);
    } else {
        if (e->claims.failing) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: notice claims work again");
        }
        e->claims.failing = false;
        e->claims.backoff_ms = 0;
        for (size_t i = 0; i < j->n; i++) {
            claim_one_done(p, e, &j->refs[i], j->claims[i].result);
        }
    }
    claim_job_free(j);
}

/* Fills claim i of the job from its reference. */
static void claim_fill(claim_job *j, size_t i)
{
    const claim_ref *r = &j->refs[i];
    claim_text *t = &j->text[i];
    exec_vin(&r->task->execs[r->idx], t->vin);
    snprintf(t->task, sizeof(t->task), "%s", r->task->rec.id);
    snprintf(t->msg_id, sizeof(t->msg_id), "%s:%s:%u", t->task, t->vin, (unsigned)r->resends);
    j->claims[i] = (ota_notice_claim){t->task, t->vin, t->msg_id, -1};
}

/* Every notice waiting for its claim, in one job (one job in flight at a time). */
static void claim_submit(ota_plugin *p, engine *e)
{
    claim_queue *q = &e->claims;
    if (!p->writer || q->in_flight || q->n == 0 || ota_mono_ms() < q->retry_after) {
        return;
    }
    claim_job *j = calloc(1, sizeof(*j));
    ota_notice_claim *claims = calloc(q->n, sizeof(*claims));
    claim_text *text = calloc(q->n, sizeof(*text));
    if (!j || !claims || !text) {
        free(j);
        free(claims);
        free(text);
        q->retry_after = ota_mono_ms() + 1000;
        return;
    }
    /* every reference goes (one that moved on meanwhile is claimed needlessly, and handled
     * in claim_one_done like one that moves on while the job runs) */
    *j = (claim_job){.e = e,
                     .owner = p->cfg.broker_id,
                     .now = ota_now_ms(),
                     .refs = q->refs,
                     .claims = claims,
                     .text = text,
                     .n = q->n};
    for (size_t i = 0; i < j->n; i++) {
        claim_fill(j, i);
    }
    q->refs = NULL;
    q->n = q->cap = 0;
    j->job = (ota_writer_job){.run = claim_run, .done = claim_done, .arg = j};
    q->in_flight = true;
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        claim_done(j, -1, "the writer is stopping");
    }
}

void ota_engine_stats_json(ota_plugin *p, cJSON *data)
{
    engine *e = eng(p);
    cJSON *o = cJSON_AddObjectToObject(data, "claims");
    cJSON_AddStringToObject(o, "broker_id", p->cfg.broker_id);
    cJSON_AddNumberToObject(o, "won", e ? (double)e->claims.won : 0);
    cJSON_AddNumberToObject(o, "lost", e ? (double)e->claims.lost : 0);
    cJSON_AddNumberToObject(o, "errors", e ? (double)e->claims.errors : 0);
    cJSON_AddNumberToObject(o, "waiting", e ? (double)e->claims.n : 0);
}

/* ---------------------------------------------------------------- tick */

void ota_engine_tick(ota_plugin *p)
{
    engine *e = eng(p);
    if (!e) {
        return;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    int64_t now = ota_now_ms();
    bool timeouts = ota_mono_ms() - e->last_timeouts >= 100;
    for (long i = 0; i < n; i++) {
        ota_task *task = tasks[i];
        if (task->state == OTA_TASK_ACTIVE && task->rec.end_ms >= 0 && now >= task->rec.end_ms &&
            task->count[OTA_EXEC_QUEUED] > 0) {
            expire_queued(p, e, task);
        }
        if (timeouts) {
            time_out(p, e, task, now);
        }
        check_task(task);
        if (can_dispatch(task, now)) {
            dispatch_task(p, e, task, now);
        }
    }
    if (timeouts) {
        e->last_timeouts = ota_mono_ms();
    }
    free(tasks);
    claim_submit(p, e);
    flush(p, e);
}

/* ---------------------------------------------------------------- cancelTask */

typedef struct {
    ota_cmd_op base;
    char *id;
    char **vins; /* NULL: the whole task */
    size_t n_vins;
    char *json;
    ota_store_doc doc;
    ota_exec_rec *recs;
    char **strs;
    size_t n_strs;
} cancel_op;

static void cancel_free(ota_cmd_op *base)
{
    cancel_op *op = (cancel_op *)base;
    free(op->id);
    ota_json_strings_free(op->vins, op->n_vins);
    free(op->json);
    free(op->recs);
    for (size_t i = 0; i < op->n_strs; i++) {
        free(op->strs[i]);
    }
    free(op->strs);
    free(op);
}

static bool selected(const cancel_op *op, const char *vin)
{
    if (!op->vins) {
        return true;
    }
    for (size_t i = 0; i < op->n_vins; i++) {
        if (strcmp(op->vins[i], vin) == 0) {
            return true;
        }
    }
    return false;
}

/* In memory, once stored: queued -> canceled, in flight -> cancel desired. */
static cJSON *cancel_apply(ota_plugin *p, ota_cmd_op *base)
{
    cancel_op *op = (cancel_op *)base;
    engine *e = eng(p);
    ota_task *task = ota_tasks_get(p->tasks, op->id);
    size_t now_n = 0, pending = 0;
    for (size_t i = 0; e && task && i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        char vin[OTA_VIN_LEN + 1];
        exec_vin(x, vin);
        if (!selected(op, vin)) {
            continue;
        }
        if (x->state == OTA_EXEC_QUEUED) {
            x->code = 0;
            set_state(e, task, x, OTA_EXEC_CANCELED);
            now_n++;
        } else if (in_flight(x->state)) {
            x->code = ota_tasks_code(p->tasks, CANCEL_CODE);
            x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING; /* a re-send waiting is not sent */
            mark_dirty(e, task, x);
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNullToObject(d, "task");
            cJSON_AddStringToObject(d, "cancel", task->rec.id);
            ota_shadow_set_desired(p, vin, d);
            pending++;
        }
    }
    if (task && !op->vins && (task->state == OTA_TASK_ACTIVE || task->state == OTA_TASK_ABORTED)) {
        task->state = OTA_TASK_CANCELED; /* its document is in this command's change */
    }
    if (task) {
        check_task(task);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "canceled", (double)now_n);
    cJSON_AddNumberToObject(data, "pending", (double)pending);
    return data;
}

static int cancel_parse(ota_plugin *p, const cJSON *cmd, cancel_op *op, char *err, size_t len)
{
    static const char *const allowed[] = {"id", "vins", NULL};
    const char *id = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, len) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, len) != 0) {
        return -1;
    }
    ota_task *task = ota_tasks_get(p->tasks, id);
    if (!task) {
        snprintf(err, len, "id: unknown task %s", id);
        return -1;
    }
    op->id = strdup(id);
    if (ota_json_get_string_array(cmd, "", "vins", false, 1, 1000000, OTA_JSON_VINS, &op->vins,
                                  &op->n_vins, err, len) != 0) {
        return -1;
    }
    for (size_t i = 0; i < op->n_vins; i++) {
        if (!ota_task_find_exec(task, op->vins[i])) {
            snprintf(err, len, "vins: %s is not in task %s", op->vins[i], id);
            return -1;
        }
    }
    return op->id ? 0 : -1;
}

/* The stored change: the task document (whole task) and the executions it changes. */
static int cancel_change(ota_plugin *p, cancel_op *op)
{
    ota_task *task = ota_tasks_get(p->tasks, op->id);
    op->recs = calloc(task->n_execs + 1, sizeof(*op->recs));
    op->strs = calloc(3 * task->n_execs + 1, sizeof(*op->strs));
    if (!op->recs || !op->strs) {
        return -1;
    }
    size_t k = 0;
    int64_t now = ota_now_ms();
    for (size_t i = 0; i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        char vin[OTA_VIN_LEN + 1];
        exec_vin(x, vin);
        if (!selected(op, vin) || !(x->state == OTA_EXEC_QUEUED || in_flight(x->state))) {
            continue;
        }
        char *v = op->strs[op->n_strs++] = strdup(vin);
        bool q = x->state == OTA_EXEC_QUEUED;
        op->recs[k++] = (ota_exec_rec){.task = op->id,
                                       .vin = v,
                                       .state = q ? OTA_EXEC_CANCELED : (ota_exec_state)x->state,
                                       .code = q ? NULL : CANCEL_CODE,
                                       .resends = x->resends,
                                       .notified_ms = x->notified_ms,
                                       .updated_ms = now};
    }
    op->base.change.put_execs = op->recs;
    op->base.change.n_put_execs = k;
    bool whole = !op->vins && (task->state == OTA_TASK_ACTIVE || task->state == OTA_TASK_ABORTED);
    if (whole) {
        cJSON *d = ota_task_doc(&task->rec, OTA_TASK_CANCELED, task->created_ms, task->package);
        op->json = d ? cJSON_PrintUnformatted(d) : NULL;
        cJSON_Delete(d);
        if (!op->json) {
            return -1;
        }
        op->doc = (ota_store_doc){OTA_DOC_TASK, op->id, op->json};
        op->base.change.docs = &op->doc;
        op->base.change.n_docs = 1;
    }
    return 0;
}

void ota_cmd_cancel_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256] = "out of memory";
    cancel_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = cancel_free;
    op->base.apply = cancel_apply;
    if (cancel_parse(p, cmd, op, err, sizeof(err)) != 0 || cancel_change(p, op) != 0) {
        cancel_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_cmd_store(p, c, &op->base);
}
