/*
 * engine_timers.c — the task engine's timers (issue 16, docs/task-engine.md "Timers"):
 * one heap (core/timers.c) of everything the engine must do at a time, so that TICK
 * costs what is due rather than a scan of every execution.
 *
 * Ids are kind << 56 | task number << 32 | execution index (the number is the digits of
 * "T000123"; an execution's index in its task is stable). Kinds today: a retry's backoff
 * (engine_waves.c; the execution waiting is stored with code "retry_backoff" and its due
 * time as changed_ms, so at start its retry timer is set again at that time), and a
 * timeout per execution in flight, set at every move of the execution
 * (ota_eng_set_state) to its changed_ms + timeout_min minutes and cancelled when it
 * leaves flight — except a postponed execution (issue 17), whose timer is its wake-up
 * (changed_ms holds the time the driver gave). Nothing is stored:
 * at start every execution in flight gets its timer again from its stored updated time.
 * A timer that fires re-checks the execution (ota_task_exec_timed_out), so a stale one
 * (another broker took the notice, the clock moved) costs nothing but a lookup.
 */
#include "engine_impl.h"

#include <stdio.h>
#include <stdlib.h>

#define KIND_SHIFT 56
#define TASK_SHIFT 32

static uint64_t task_no(const ota_task *task)
{
    return strtoull(task->rec.id + 1, NULL, 10) & 0xffffff;
}

uint64_t ota_eng_timer_id(ota_eng_timer_kind kind, const ota_task *task, size_t idx)
{
    return (uint64_t)kind << KIND_SHIFT | task_no(task) << TASK_SHIFT | (idx & 0xffffffffu);
}

static ota_task *timer_task(ota_engine *e, uint64_t id)
{
    char tid[32];
    snprintf(tid, sizeof(tid), "T%06llu",
             (unsigned long long)((id >> TASK_SHIFT) & 0xffffff));
    return ota_tasks_get(e->plugin->tasks, tid);
}

void ota_eng_timers_exec(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    uint64_t id = ota_eng_timer_id(OTA_ENG_TIMER_TIMEOUT, task, (size_t)(x - task->execs));
    if (!ota_exec_in_flight(x->state)) {
        ota_timers_cancel(e->timers, id ^ ((uint64_t)(OTA_ENG_TIMER_TIMEOUT ^ OTA_ENG_TIMER_RETRY)
                                           << KIND_SHIFT)); /* its retry, if any */
    }
    if (ota_eng_retry_waiting(e, x) && !(x->flags & OTA_EXEC_F_ELSEWHERE)) {
        /* in a retry's backoff (stored: loaded or read back, the retry is due at changed_ms) */
        ota_timers_cancel(e->timers, id);
        if (ota_timers_set(e->timers,
                           ota_eng_timer_id(OTA_ENG_TIMER_RETRY, task, (size_t)(x - task->execs)),
                           x->changed_ms) != 0) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: task %s: out of memory for a retry",
                                 task->rec.id);
        }
        return;
    }
    bool postponed = x->state == OTA_EXEC_POSTPONED;
    if ((task->rec.timeout_min == 0 && !postponed) || !ota_exec_in_flight(x->state) ||
        (x->flags & OTA_EXEC_F_ELSEWHERE)) {
        ota_timers_cancel(e->timers, id);
        return;
    }
    int64_t due = postponed ? x->changed_ms
                            : x->changed_ms + (int64_t)task->rec.timeout_min * e->minute_ms;
    if (ota_timers_set(e->timers, id, due) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: task %s: out of memory for a timeout",
                             task->rec.id);
    }
}

static void fire_timeout(ota_engine *e, ota_task *task, size_t idx, int64_t now)
{
    if (idx >= task->n_execs) {
        return;
    }
    ota_task_exec *x = &task->execs[idx];
    if (ota_task_exec_wakes(x, now)) {
        ota_eng_wake(e, task, x);
    } else if (x->state == OTA_EXEC_POSTPONED) {
        /* due but its claim is under way: look again in a second (not now: this loop
         * pops what is due, so a timer set to the past would come straight back) */
        ota_timers_set(e->timers, ota_eng_timer_id(OTA_ENG_TIMER_TIMEOUT, task, idx),
                       now + 1000);
    } else if (ota_task_exec_timed_out(task, x, now, e->minute_ms)) {
        ota_eng_time_out(e, task, x);
    } else {
        ota_eng_timers_exec(e, task, x); /* moved since: its timer follows, or goes */
    }
}

void ota_eng_timers_run(ota_engine *e, int64_t now)
{
    uint64_t id;
    while (ota_timers_pop_due(e->timers, now, &id, NULL) == 1) {
        ota_task *task = timer_task(e, id);
        if (!task) {
            continue;
        }
        size_t idx = (size_t)(id & 0xffffffffu);
        if ((id >> KIND_SHIFT) == OTA_ENG_TIMER_TIMEOUT) {
            fire_timeout(e, task, idx, now);
        } else if ((id >> KIND_SHIFT) == OTA_ENG_TIMER_RETRY) {
            ota_eng_retry_fire(e, task, idx);
        }
    }
}
