/*
 * engine_end.c — a task's end (docs/task-engine.md "Counts and end on a shared store"):
 * the counts its decisions take and the task event that tells the end.
 *
 * One broker (SQLite): the abort threshold and the end count this broker's executions in
 * memory, and the TICK that moves the task tells it (ota_eng_task_announce). On a store
 * several brokers share (the change log follower runs), each broker drives only its own
 * vehicles' executions: one count job per active task (and one more once it ended, for
 * getTask's counts) has the store count the task's executions by state and wave
 * (ota_store_count_task_execs: every broker's, none read; only succeeded / failed ones
 * stored before executions carried their wave are read, by VIN), paced at 500 ms plus 10
 * times the count's time (2 s after a failed count), into task->stored (and the waves'
 * per-wave counts); core/tasks.c's ota_task_seen combines them with memory for the
 * task-wide threshold and the end, engine_waves.c for the waves' thresholds. The end itself
 * is stored as a conditional write of the task document over its revision (engine_flush.c,
 * cancelTask): only the broker whose write moved the task into that state tells it
 * (ota_eng_task_stored); every other broker takes the state from the change log without an
 * event (ota_engine_task_followed), so finished / aborted / canceled is told once.
 */
#include "batch.h"
#include "engine_impl.h"
#include "task_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- counts over every broker */

/* A count costs the store a walk of the task's index range, nothing shipped: the next one
 * waits COUNT_PACE_MS plus COUNT_PACE_FACTOR times the last one's time in the store, so a
 * broker's writer (and its share of the server) spends at most ~1/11 of its time counting
 * however large the task or slow the server (docs/decisions.md "Task counts by the store"). */
#define COUNT_PACE_MS 500
#define COUNT_PACE_FACTOR 10
#define COUNT_RETRY_MS 2000 /* after a failed count (the store away) */

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    char id[32];
    bool waves; /* count succeeded and failed per wave too */
    bool ended; /* sent after the task ended: the last count (task->stored.final) */
    size_t count[OTA_EXEC_STATE_COUNT];
    size_t ok[OTA_WAVES_MAX + 1], bad[OTA_WAVES_MAX + 1];
    size_t unwaved;         /* succeeded / failed stored without their wave (written before
                               executions carried it): their VINs are read, below */
    ota_eng_vin_states old; /* those VINs */
    int64_t took_ms;
} count_job;

static int vin_states_add(ota_eng_vin_states *v, const char *vin, uint8_t state)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        void *grown = realloc(v->vins, cap * sizeof(*v->vins));
        if (grown) {
            v->vins = grown;
        }
        uint8_t *s = grown ? realloc(v->states, cap) : NULL;
        if (!s) {
            return 1;
        }
        v->states = s;
        v->cap = cap;
    }
    memcpy(v->vins[v->n], vin, OTA_VIN_LEN + 1);
    v->states[v->n++] = state;
    return 0;
}

static int count_one(void *ctx, ota_exec_state state, int64_t wave, uint64_t n)
{
    count_job *j = ctx;
    j->count[state] += (size_t)n;
    if (state != OTA_EXEC_SUCCEEDED && state != OTA_EXEC_FAILED) {
        return 0;
    }
    if (wave >= 0 && wave <= OTA_WAVES_MAX) {
        *(state == OTA_EXEC_SUCCEEDED ? &j->ok[wave] : &j->bad[wave]) += (size_t)n;
    } else {
        j->unwaved += (size_t)n;
    }
    return 0;
}

static int keep_unwaved(void *ctx, const ota_exec_rec *r)
{
    count_job *j = ctx;
    if (r->wave >= 0 || !r->vin || strlen(r->vin) != OTA_VIN_LEN) {
        return 0;
    }
    return vin_states_add(&j->old, r->vin, (uint8_t)r->state);
}

static int count_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    count_job *j = arg;
    int64_t t0 = ota_mono_ms();
    if (ota_store_count_task_execs(store, j->id, count_one, j, err, errlen) != 0) {
        return -1;
    }
    unsigned done = (1u << OTA_EXEC_SUCCEEDED) | (1u << OTA_EXEC_FAILED);
    if (j->waves && j->unwaved > 0 &&
        ota_store_load_task_execs(store, j->id, done, keep_unwaved, j) != 0) {
        snprintf(err, errlen, "reading the executions of task %s without a wave failed", j->id);
        return -1;
    }
    j->took_ms = ota_mono_ms() - t0;
    return 0;
}

static void count_done(void *arg, int rc, const char *err)
{
    count_job *j = arg;
    ota_engine *e = j->e;
    ota_task *task = ota_tasks_get(e->plugin->tasks, j->id);
    (void)err;
    if (task) {
        task->stored.counting = false;
        task->stored.count_after =
            e->clock.mono_ms() +
            (rc == 0 ? COUNT_PACE_MS + COUNT_PACE_FACTOR * j->took_ms : COUNT_RETRY_MS);
    }
    if (task && rc == 0) {
        memcpy(task->stored.count, j->count, sizeof j->count);
        task->stored.counted = true;
        task->stored.final = j->ended;
        if (task->waves && j->waves) {
            ota_eng_waves_counted(task, j->ok, j->bad, &j->old);
        }
    }
    free(j->old.vins);
    free(j->old.states);
    free(j);
}

void ota_eng_count_submit(ota_engine *e, ota_task *task)
{
    ota_task_stored *st = &task->stored;
    bool ended = task->state != OTA_TASK_ACTIVE; /* one count more: what getTask shows */
    if (!e->plugin->follow || !e->plugin->writer || (ended && st->final) || st->counting ||
        e->clock.mono_ms() < st->count_after) {
        return;
    }
    count_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return;
    }
    j->e = e;
    j->waves = task->waves != NULL;
    j->ended = ended;
    snprintf(j->id, sizeof j->id, "%s", task->rec.id);
    j->job = (ota_writer_job){.run = count_run, .done = count_done, .arg = j};
    if (ota_writer_submit(e->plugin->writer, &j->job) != 0) {
        free(j);
        return;
    }
    st->counting = true;
}

/* ---------------------------------------------------------------- the end, told once */

/* The reason of a move the engine made outside the waves: the task-wide threshold. */
static const char *state_reason(ota_task *task)
{
    if (task->reason[0] || task->state != OTA_TASK_ABORTED) {
        return task->reason[0] ? task->reason : NULL;
    }
    size_t seen[OTA_EXEC_STATE_COUNT];
    ota_task_seen(task, seen);
    snprintf(task->reason, sizeof(task->reason),
             "failure threshold: %zu of %zu failed (threshold %u%%)", seen[OTA_EXEC_FAILED],
             seen[OTA_EXEC_FAILED] + seen[OTA_EXEC_SUCCEEDED],
             (unsigned)task->rec.abort_failure_pct);
    return task->reason;
}

static void tell(ota_engine *e, ota_task *task, ota_task_state s)
{
    if (s == task->announced) {
        return;
    }
    task->announced = s;
    ota_task_event(task, ota_task_state_name(s), task->waves ? task->waves->current : -1,
                   state_reason(task), e->clock.now_ms());
}

void ota_eng_task_announce(ota_engine *e, ota_task *task)
{
    if (!e->plugin->follow) { /* shared: told by the broker whose write stores it */
        tell(e, task, task->state);
    }
}

void ota_eng_task_stored(ota_engine *e, ota_task *task, ota_task_state s)
{
    if (e->plugin->follow) {
        tell(e, task, s);
    }
}

bool ota_eng_task_end_stored(const ota_engine *e, const ota_task *task)
{
    return e->plugin->follow && task->state != OTA_TASK_ACTIVE && task->announced == task->state;
}

void ota_engine_task_stored(ota_plugin *p, ota_task *task, ota_task_state s)
{
    if (p->engine) {
        ota_eng_task_stored(p->engine, task, s);
    }
}

void ota_engine_task_followed(ota_plugin *p, ota_task *task, ota_task_state s)
{
    (void)p;
    if (task->state != s) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s %s on another broker (rev %llu)",
                             task->rec.id, ota_task_state_name(s), (unsigned long long)task->rev);
    }
    task->state = task->announced = s; /* that broker told it */
    task->doc_dirty = false;           /* stored: this broker's own end is not written */
}
