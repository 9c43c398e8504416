/*
 * engine_end.c — a task's end (docs/task-engine.md "Counts and end on a shared store"):
 * the counts its decisions take and the task event that tells the end.
 *
 * One broker (SQLite): the abort threshold and the end count this broker's executions in
 * memory, and the TICK that moves the task tells it (ota_eng_task_announce). On a store
 * several brokers share (the change log follower runs), each broker drives only its own
 * vehicles' executions: one count job per active task (and one more once it ended, for
 * getTask's counts) reads the task's succeeded, failed
 * and open executions from the store (every broker's), paced at 500 ms plus 1 ms per 100
 * executions read at the last count (2 s after a failed read), into task->stored (and the waves'
 * per-wave counts); core/tasks.c's ota_task_seen combines them with memory for the task-wide
 * threshold and the end, engine_waves.c for the waves' thresholds. The end itself is stored as a
 * conditional write of the task document over its revision (engine_flush.c, cancelTask):
 * only the broker whose write moved the task into that state tells it
 * (ota_eng_task_stored); every other broker takes the state from the change log without an
 * event (ota_engine_task_followed), so finished / aborted / canceled is told once.
 */
#include "engine_impl.h"
#include "task_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- counts over every broker */

#define COUNT_STATES                                                                               \
    ((1u << OTA_EXEC_SUCCEEDED) | (1u << OTA_EXEC_FAILED) | (1u << OTA_EXEC_QUEUED) |              \
     (1u << OTA_EXEC_NOTIFIED) | (1u << OTA_EXEC_DOWNLOADING) | (1u << OTA_EXEC_INSTALLING) |      \
     (1u << OTA_EXEC_ACCEPTED) | (1u << OTA_EXEC_POSTPONED))

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    char id[32];
    bool waves; /* keep the VINs of succeeded and failed executions: their waves count */
    bool ended; /* sent after the task ended: the last count (task->stored.final) */
    size_t count[OTA_EXEC_STATE_COUNT], rows;
    char (*vins)[OTA_VIN_LEN + 1];
    uint8_t *states;
    size_t n, cap;
} count_job;

static int keep_vin(count_job *j, const char *vin, uint8_t state)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 256;
        void *v = realloc(j->vins, cap * sizeof(*j->vins));
        if (v) {
            j->vins = v;
        }
        uint8_t *s = v ? realloc(j->states, cap) : NULL;
        if (!s) {
            return 1;
        }
        j->states = s;
        j->cap = cap;
    }
    memcpy(j->vins[j->n], vin, OTA_VIN_LEN + 1);
    j->states[j->n++] = state;
    return 0;
}

static int count_one(void *ctx, const ota_exec_rec *r)
{
    count_job *j = ctx;
    if ((unsigned)r->state >= OTA_EXEC_STATE_COUNT) {
        return 0;
    }
    j->count[r->state]++;
    j->rows++;
    bool done = r->state == OTA_EXEC_SUCCEEDED || r->state == OTA_EXEC_FAILED;
    if (!j->waves || !done || !r->vin || strlen(r->vin) != OTA_VIN_LEN) {
        return 0;
    }
    return keep_vin(j, r->vin, (uint8_t)r->state);
}

static int count_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    count_job *j = arg;
    if (ota_store_load_task_execs(store, j->id, COUNT_STATES, count_one, j) != 0) {
        snprintf(err, errlen, "reading the executions of task %s failed", j->id);
        return -1;
    }
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
        task->stored.count_after = /* a failed read (the store away) waits longer */
            e->clock.mono_ms() + (rc == 0 ? 500 + (int64_t)(j->rows / 100) : 2000);
    }
    if (task && rc == 0) {
        memcpy(task->stored.count, j->count, sizeof j->count);
        task->stored.counted = true;
        task->stored.final = j->ended;
        if (task->waves && j->waves) {
            ota_eng_waves_counted(task, (const char(*)[OTA_VIN_LEN + 1]) j->vins, j->states, j->n);
        }
    }
    free(j->vins);
    free(j->states);
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
