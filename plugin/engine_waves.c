/*
 * engine_waves.c — the engine's side of rollouts in waves and of pauseTask (issue 16,
 * core/task_waves.h, docs/task-engine.md "Waves"): dispatch asks here whether an
 * execution may be notified; TICK asks whether the current wave aborts the task (its
 * error threshold: the waves after it are never touched) or promotes the next one (its
 * success threshold). A promotion is a conditional write of the task document (its
 * revision: ota_store_put_task_doc_if), applied here only once it is stored, so with
 * several brokers on one store a wave starts once and one broker tells it; the wave state
 * lives in the document, so a restart resumes the same wave. On a shared store the
 * thresholds are judged on the store's counts over every broker (the task's count job,
 * engine_end.c, hands the store's per-wave counts here: ota_eng_waves_counted).
 */
#include "engine_impl.h"
#include "task_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ota_eng_waves_may_notify(const ota_task *task, const ota_task_exec *x)
{
    if (task->paused) {
        return false;
    }
    return !task->waves || ota_task_waves_may_notify(task->waves, (size_t)(x - task->execs));
}

/* ---------------------------------------------------------------- a promotion, stored once */

/* A promotion as a conditional write of the task document (issue 16): only the broker whose
 * write finds the revision it expects starts the wave and publishes "wave started"; the
 * others take it from the change log (plugin/follow.c, ota_engine_rollout_followed). */
typedef struct {
    ota_writer_job job;
    ota_engine *e;
    char id[32];
    char *json;
    uint64_t expect;
    uint8_t current, approved;
    int result;
} promote_job;

static int promote_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    promote_job *j = arg;
    j->result = ota_store_put_task_doc_if(store, j->id, j->json, j->expect, err, errlen);
    return j->result < 0 ? -1 : 0;
}

static void promote_done(void *arg, int rc, const char *err)
{
    promote_job *j = arg;
    ota_engine *e = j->e;
    ota_task *task = ota_tasks_get(e->plugin->tasks, j->id);
    ota_task_waves *w = task ? task->waves : NULL;
    if (w) {
        w->storing = false;
    }
    if (w && rc == 0 && j->result == 1) {
        w->current = j->current;
        w->approved = j->approved;
        task->rev = task->rev > j->expect + 1 ? task->rev : j->expect + 1;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s: wave %u started", j->id, j->current);
        ota_task_event(task, "wave_started", j->current, "success threshold", e->clock.now_ms());
    } else if (w) { /* another broker's change came first, or the store failed: later */
        e->waves.lost += rc == 0;
        w->promote_after = e->clock.mono_ms() + (rc == 0 ? 300 : 1000);
        if (rc != 0) {
            mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: task %s: promotion not stored: %s", j->id,
                                 err);
        }
    }
    free(j->json);
    free(j);
}

static void promote_submit(ota_engine *e, ota_task *task)
{
    ota_task_waves *w = task->waves;
    ota_task_waves next = *w;
    if (!ota_task_waves_promote(&next)) {
        return;
    }
    ota_task doc = *task;
    doc.waves = &next;
    doc.rev = task->rev + 1;
    cJSON *d = ota_task_doc_of(&doc, task->state);
    promote_job *j = calloc(1, sizeof(*j));
    char *json = d ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    if (!j || !json) {
        free(j);
        free(json);
        return;
    }
    *j = (promote_job){.e = e,
                       .json = json,
                       .expect = task->rev,
                       .current = next.current,
                       .approved = next.approved};
    snprintf(j->id, sizeof j->id, "%s", task->rec.id);
    j->job = (ota_writer_job){.run = promote_run, .done = promote_done, .arg = j};
    if (ota_writer_submit(e->plugin->writer, &j->job) != 0) {
        free(json);
        free(j);
        return;
    }
    w->storing = true;
}

/* ---------------------------------------------------------------- counts over every broker */

void ota_eng_waves_counted(ota_task *task, const size_t *ok, const size_t *bad,
                           const ota_eng_vin_states *old)
{
    ota_task_waves *w = task->waves;
    memcpy(w->all_ok, ok, sizeof w->all_ok);
    memcpy(w->all_bad, bad, sizeof w->all_bad);
    for (size_t i = 0; i < old->n; i++) {
        ota_task_exec *x = ota_task_find_exec(task, old->vins[i]);
        uint8_t wv = x ? ota_task_waves_of(w, (size_t)(x - task->execs)) : OTA_WAVE_NONE;
        if (wv != OTA_WAVE_NONE) {
            w->all_ok[wv] += old->states[i] == OTA_EXEC_SUCCEEDED;
            w->all_bad[wv] += old->states[i] == OTA_EXEC_FAILED;
        }
    }
}

void ota_eng_waves_check(ota_engine *e, ota_task *task)
{
    ota_task_waves *w = task->waves;
    if (!w || task->state != OTA_TASK_ACTIVE) {
        return;
    }
    if (ota_task_waves_failing(w)) {
        size_t c = w->current;
        size_t bad = w->count[c][OTA_EXEC_FAILED] > w->all_bad[c] ? w->count[c][OTA_EXEC_FAILED]
                                                                  : w->all_bad[c];
        size_t ok = w->count[c][OTA_EXEC_SUCCEEDED] > w->all_ok[c] ? w->count[c][OTA_EXEC_SUCCEEDED]
                                                                   : w->all_ok[c];
        snprintf(task->reason, sizeof(task->reason),
                 "wave %zu reached its error threshold: %zu of %zu failed (threshold %u%%)", c, bad,
                 bad + ok, w->error_pct[c]);
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s aborted: %s", task->rec.id,
                             task->reason);
        ota_task_set_state(task, OTA_TASK_ABORTED);
        return;
    }
    if (!e->plugin->writer) { /* no store (unit tests): in memory */
        while (ota_task_waves_due(w) && ota_task_waves_promote(w)) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s: wave %u started", task->rec.id,
                                 w->current);
            ota_task_event(task, "wave_started", w->current, "success threshold",
                           e->clock.now_ms());
        }
        return;
    }
    if (!w->storing && e->clock.mono_ms() >= w->promote_after && ota_task_waves_due(w)) {
        promote_submit(e, task);
    }
}

void ota_engine_rollout_followed(ota_plugin *p, ota_task *task)
{
    int wave = task->waves ? task->waves->current : -1;
    if (p->engine) {
        p->engine->waves.followed++;
    }
    mosquitto_log_printf(
        MOSQ_LOG_NOTICE, "ota: task %s: rollout changed on another broker (wave %d%s, rev %llu)",
        task->rec.id, wave, task->paused ? ", paused" : "", (unsigned long long)task->rev);
}

void ota_engine_task_changed(ota_plugin *p, ota_task *task, const char *what)
{
    int64_t now = p->engine ? p->engine->clock.now_ms() : ota_now_ms();
    int wave = task->waves ? task->waves->current : -1;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s %s (wave %d)", task->rec.id, what, wave);
    ota_task_event(task, what, wave, "by hand", now);
}

bool ota_eng_window_open(ota_task *task, int64_t now)
{
    return !task->mwindow || ota_task_window_is_open(task->mwindow, now);
}

void ota_eng_task_end(ota_engine *e, ota_task *task)
{
    if (task->end_action != OTA_END_CANCEL_ALL || task->state != OTA_TASK_ACTIVE) {
        return;
    }
    size_t canceled = 0, pending = 0;
    ota_engine_cancel(e->plugin, task, NULL, 0, &canceled, &pending);
    task->doc_dirty = true; /* canceled: the engine stores the document itself here */
    snprintf(task->reason, sizeof(task->reason), "end: %zu in flight canceled", pending);
}

double ota_eng_ramp_rate(const ota_task *task)
{
    size_t never = task->count[OTA_EXEC_QUEUED] + task->count[OTA_EXEC_REJECTED];
    size_t notified = task->n_execs > never ? task->n_execs - never : 0;
    return ota_task_ramp_rate(&task->ramp, notified, task->count[OTA_EXEC_SUCCEEDED]);
}

static bool cancel_asked(ota_engine *e, const ota_task_exec *x)
{
    const char *code = ota_tasks_code_name(e->plugin->tasks, x->code);
    return code && strcmp(code, OTA_ENGINE_CANCEL_CODE) == 0;
}

bool ota_eng_retry_take(ota_engine *e, ota_task *task, ota_task_exec *x, const char *word)
{
    if (!ota_task_retry_wanted(&task->retry, word, x->resends) || cancel_asked(e, x)) {
        return false;
    }
    size_t idx = (size_t)(x - task->execs);
    int64_t due = e->clock.now_ms() + ota_task_retry_backoff(&task->retry, x->resends);
    if (ota_timers_set(e->timers, ota_eng_timer_id(OTA_ENG_TIMER_RETRY, task, idx), due) != 0) {
        return false;
    }
    /* its timeout waits for the new notice (ota_eng_set_state sets it again) */
    ota_timers_cancel(e->timers, ota_eng_timer_id(OTA_ENG_TIMER_TIMEOUT, task, idx));
    /* stored: the code says it waits, changed_ms when (a restart arms the timer again) */
    x->code = ota_tasks_code(e->plugin->tasks, OTA_ENGINE_RETRY_CODE);
    x->changed_ms = due;
    ota_eng_mark_dirty(e, task, x);
    return true;
}

bool ota_eng_retry_waiting(ota_engine *e, const ota_task_exec *x)
{
    const char *code = x->code ? ota_tasks_code_name(e->plugin->tasks, x->code) : NULL;
    return code && strcmp(code, OTA_ENGINE_RETRY_CODE) == 0 && ota_exec_in_flight(x->state);
}

void ota_eng_retry_fire(ota_engine *e, ota_task *task, size_t idx)
{
    ota_task_exec *x = idx < task->n_execs ? &task->execs[idx] : NULL;
    if (!x || !ota_exec_in_flight(x->state) || (x->flags & OTA_EXEC_F_CLAIMING)) {
        return; /* moved, or already being sent */
    }
    if (cancel_asked(e, x)) {
        ota_eng_timers_exec(e, task, x); /* canceled meanwhile: its timeout, not a retry */
        return;
    }
    if (ota_eng_retry_waiting(e, x)) {
        x->code = 0; /* no longer waiting: the attempt's notice is on its way */
    }
    x->resends++;
    ota_eng_request_claim(e, task, x); /* attempt resends + 1: msg_id task:vin:resends */
}
