/*
 * engine_waves.c — the engine's side of rollouts in waves and of pauseTask (issue 16,
 * core/task_waves.h, docs/task-engine.md "Waves"): dispatch asks here whether an
 * execution may be notified; TICK asks whether the current wave aborts the task (its
 * error threshold: the waves after it are never touched) or promotes the next one (its
 * success threshold). A change of the rollout marks the task document for the store
 * (doc_dirty), where the wave state lives, so a restart resumes the same wave.
 */
#include "engine_impl.h"

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
    (void)e;
    if (!w || task->state != OTA_TASK_ACTIVE) {
        return;
    }
    if (ota_task_waves_failing(w)) {
        size_t c = w->current;
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "ota: task %s aborted: wave %zu reached its error threshold "
                             "(%zu of %zu failed)",
                             task->rec.id, c, w->count[c][OTA_EXEC_FAILED],
                             w->count[c][OTA_EXEC_FAILED] + w->count[c][OTA_EXEC_SUCCEEDED]);
        ota_task_set_state(task, OTA_TASK_ABORTED);
        return;
    }
    while (ota_task_waves_due(w) && ota_task_waves_promote(w)) {
        task->doc_dirty = true;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s: wave %u started", task->rec.id,
                             w->current);
    }
}

void ota_engine_task_changed(ota_plugin *p, ota_task *task, const char *what)
{
    (void)p;
    if (what) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s %s", task->rec.id, what);
    } else if (task->waves) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s: wave %u, %u approved", task->rec.id,
                             task->waves->current, task->waves->approved);
    }
}
