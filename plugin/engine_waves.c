/*
 * engine_waves.c — the engine's side of rollouts in waves and of pauseTask (issue 16,
 * core/task_waves.h, docs/task-engine.md "Waves"): dispatch asks here whether an
 * execution may be notified; TICK asks whether the current wave aborts the task (its
 * error threshold: the waves after it are never touched) or promotes the next one (its
 * success threshold). A change of the rollout marks the task document for the store
 * (doc_dirty), where the wave state lives, so a restart resumes the same wave.
 */
#include "engine_impl.h"
#include "task_events.h"

#include <stdio.h>
#include <string.h>

bool ota_eng_waves_may_notify(const ota_task *task, const ota_task_exec *x)
{
    if (task->paused) {
        return false;
    }
    return !task->waves || ota_task_waves_may_notify(task->waves, (size_t)(x - task->execs));
}

void ota_eng_waves_check(ota_engine *e, ota_task *task)
{
    ota_task_waves *w = task->waves;
    if (!w || task->state != OTA_TASK_ACTIVE) {
        return;
    }
    if (ota_task_waves_failing(w)) {
        size_t c = w->current;
        snprintf(task->reason, sizeof(task->reason),
                 "wave %zu reached its error threshold: %zu of %zu failed (threshold %u%%)", c,
                 w->count[c][OTA_EXEC_FAILED],
                 w->count[c][OTA_EXEC_FAILED] + w->count[c][OTA_EXEC_SUCCEEDED], w->error_pct[c]);
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s aborted: %s", task->rec.id,
                             task->reason);
        ota_task_set_state(task, OTA_TASK_ABORTED);
        return;
    }
    while (ota_task_waves_due(w) && ota_task_waves_promote(w)) {
        task->doc_dirty = true;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s: wave %u started", task->rec.id,
                             w->current);
        ota_task_event(task, "wave_started", w->current, "success threshold", e->clock.now_ms());
    }
}

void ota_engine_task_changed(ota_plugin *p, ota_task *task, const char *what)
{
    int64_t now = p->engine ? p->engine->clock.now_ms() : ota_now_ms();
    int wave = task->waves ? task->waves->current : -1;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s %s (wave %d)", task->rec.id, what, wave);
    ota_task_event(task, what, wave, "by hand", now);
}

/* The reason of a move the engine made outside the waves: the task-wide threshold. */
static const char *state_reason(ota_task *task)
{
    if (task->reason[0] || task->state != OTA_TASK_ABORTED) {
        return task->reason[0] ? task->reason : NULL;
    }
    snprintf(task->reason, sizeof(task->reason),
             "failure threshold: %zu of %zu failed (threshold %u%%)",
             task->count[OTA_EXEC_FAILED],
             task->count[OTA_EXEC_FAILED] + task->count[OTA_EXEC_SUCCEEDED],
             (unsigned)task->rec.abort_failure_pct);
    return task->reason;
}

void ota_eng_task_announce(ota_engine *e, ota_task *task)
{
    if (task->state == task->announced) {
        return;
    }
    task->announced = task->state;
    ota_task_event(task, ota_task_state_name(task->state),
                   task->waves ? task->waves->current : -1, state_reason(task),
                   e->clock.now_ms());
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
    return true;
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
    x->resends++;
    ota_eng_request_claim(e, task, x); /* attempt resends + 1: msg_id task:vin:resends */
}
