/*
 * engine.c — the task engine's life cycle, its view of the vehicles, dispatch and TICK
 * (engine.h, docs/task-engine.md). The execution transitions are engine_exec.c's, notice
 * claims engine_claims.c's, the store engine_flush.c's, executions held by no one here
 * engine_adopt.c's (engine_impl.h).
 *
 * Design
 * - Vehicles: a map by VIN of {online, busy}: online from its shadow/update or shadow/get
 *   (the shadows' seen-hook) until its DISCONNECT; busy = the task it has notified / in
 *   progress / whose notice waits for its claim (at most one). Built at start from the
 *   executions in flight, so a restart never notifies twice.
 * - Dispatch: tasks oldest first; a task dispatches while active and inside its window,
 *   with a token bucket of `rate` notices per second (capacity max(1, rate); 0 =
 *   unlimited). TICK walks, per task, its executions or the known vehicles, whichever is
 *   fewer; a vehicle seen tries just that vehicle. A vehicle goes to the oldest task able
 *   to notify it. Dispatching an execution does not send its notice: it spends the
 *   token, makes the vehicle busy and asks for the notice's claim (engine_claims.c);
 *   the notice goes out when the claim comes back won.
 * - TICK, per task: expire queued executions after the task's end, time out executions
 *   in flight (at most every 100 ms), apply the abort threshold / end of the task,
 *   dispatch; then submit the waiting claims and flush the changes.
 * - Time: the engine's clock (engine.h); a minute of timeout_min lasts
 *   plugin_opt_task_minute_ms (60000 unless a test shortens it).
 */
#include "engine_impl.h"
#include "shadow.h"

#include <stdlib.h>
#include <string.h>

#define TIMEOUT_CHECK_MS 100

static ota_map_key veh_key(const void *rec)
{
    return ota_map_key_str(((const eng_veh *)rec)->vin);
}

eng_veh *ota_eng_veh_get(ota_engine *e, const char *vin)
{
    eng_veh *v = ota_map_get_str(&e->vehs, vin);
    if (v || strlen(vin) != OTA_VIN_LEN) {
        return v;
    }
    eng_veh fresh = {0};
    memcpy(fresh.vin, vin, OTA_VIN_LEN + 1);
    return ota_map_put(&e->vehs, &fresh);
}

/* ---------------------------------------------------------------- life cycle */

static void vehicle_seen(void *ctx, const char *vin);

/* After a start: vehicles with an execution in flight are busy with its task; every
 * task's bucket starts full. */
static void rebuild(ota_engine *e)
{
    ota_task **tasks = NULL;
    long n = ota_tasks_list(e->plugin->tasks, &tasks);
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < tasks[i]->n_execs; k++) {
            char vin[OTA_VIN_LEN + 1];
            ota_task_exec_vin(&tasks[i]->execs[k], vin);
            eng_veh *v =
                ota_exec_in_flight(tasks[i]->execs[k].state) ? ota_eng_veh_get(e, vin) : NULL;
            if (v && !v->busy) {
                v->busy = tasks[i];
            }
        }
        tasks[i]->refill_ms = e->clock.mono_ms();
        tasks[i]->tokens = tasks[i]->rec.rate ? tasks[i]->rec.rate : 1;
    }
    free(tasks);
}

ota_engine *ota_engine_new(ota_plugin *p, const ota_engine_clock *clock)
{
    ota_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    ota_map_init(&e->vehs, sizeof(eng_veh), veh_key);
    e->plugin = p;
    e->clock = clock ? *clock : (ota_engine_clock){ota_now_ms, ota_mono_ms};
    e->minute_ms = p->cfg.task_minute_ms ? p->cfg.task_minute_ms : 60000;
    ota_shadows_on_seen(p->shadows, vehicle_seen, e);
    rebuild(e);
    return e;
}

void ota_engine_free(ota_engine *e)
{
    if (!e) {
        return;
    }
    if (e->plugin->shadows) {
        ota_shadows_on_seen(e->plugin->shadows, NULL, NULL);
    }
    ota_map_destroy(&e->vehs, NULL);
    ota_eng_flush_free(e);
    ota_eng_adopt_free(e);
    ota_eng_grants_free(e);
    free(e->claims.refs);
    free(e);
}

/* ---------------------------------------------------------------- dispatch */

static bool can_dispatch(const ota_task *task, int64_t now)
{
    return task->state == OTA_TASK_ACTIVE && task->count[OTA_EXEC_QUEUED] > 0 &&
           ota_task_window_open(task, now);
}

static void refill(ota_engine *e, ota_task *task)
{
    if (task->rec.rate == 0) {
        return;
    }
    int64_t m = e->clock.mono_ms();
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

/* Tries to dispatch task to vehicle v (oldest tasks are tried first by the callers). */
static bool try_vehicle(ota_engine *e, ota_task *task, eng_veh *v)
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
    ota_eng_request_claim(e, task, x);
    return true;
}

static void dispatch_task(ota_engine *e, ota_task *task)
{
    refill(e, task);
    if (!has_token(task)) {
        return;
    }
    if (ota_map_count(&e->vehs) < task->n_execs) {
        size_t pos = 0;
        eng_veh *v;
        while ((v = ota_map_next(&e->vehs, &pos)) && has_token(task)) {
            try_vehicle(e, task, v);
        }
        return;
    }
    for (size_t i = 0; i < task->n_execs && has_token(task); i++) {
        if (task->execs[i].state != OTA_EXEC_QUEUED) {
            continue;
        }
        char vin[OTA_VIN_LEN + 1];
        ota_task_exec_vin(&task->execs[i], vin);
        eng_veh *v = ota_map_get_str(&e->vehs, vin);
        if (v) {
            try_vehicle(e, task, v);
        }
    }
}

void ota_eng_dispatch_vehicle(ota_engine *e, eng_veh *v)
{
    if (!v->online || v->busy) {
        return;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(e->plugin->tasks, &tasks);
    int64_t now = e->clock.now_ms();
    for (long i = 0; i < n && !v->busy; i++) {
        if (can_dispatch(tasks[i], now)) {
            refill(e, tasks[i]);
            try_vehicle(e, tasks[i], v);
        }
    }
    free(tasks);
}

void ota_eng_release_vehicle(ota_engine *e, ota_task *task, const ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    ota_task_exec_vin(x, vin);
    eng_veh *v = ota_map_get_str(&e->vehs, vin);
    if (v && v->busy == task) {
        v->busy = NULL;
        ota_eng_dispatch_vehicle(e, v);
    }
}

/* The shadows' hook: the vehicle sent shadow/update or shadow/get. */
static void vehicle_seen(void *ctx, const char *vin)
{
    ota_engine *e = ctx;
    eng_veh *v = vin ? ota_eng_veh_get(e, vin) : NULL;
    if (v) {
        v->online = true;
        ota_eng_dispatch_vehicle(e, v);
    }
}

void ota_engine_on_disconnect(ota_plugin *p, const char *vin)
{
    eng_veh *v = p->engine && vin ? ota_map_get_str(&p->engine->vehs, vin) : NULL;
    if (v) {
        v->online = false;
        ota_eng_grants_forget(p->engine, v);
    }
}

/* ---------------------------------------------------------------- tick */

static void tick_task(ota_engine *e, ota_task *task, int64_t now, bool timeouts)
{
    if (task->state == OTA_TASK_ACTIVE && task->rec.end_ms >= 0 && now >= task->rec.end_ms &&
        task->count[OTA_EXEC_QUEUED] > 0) {
        ota_eng_expire_queued(e, task);
    }
    if (timeouts) {
        ota_eng_time_out(e, task, now);
    }
    ota_eng_check_task(task);
    if (can_dispatch(task, now)) {
        dispatch_task(e, task);
    }
}

void ota_engine_tick(ota_plugin *p)
{
    ota_engine *e = p->engine;
    if (!e) {
        return;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    int64_t now = e->clock.now_ms();
    bool timeouts = e->clock.mono_ms() - e->last_timeouts >= TIMEOUT_CHECK_MS;
    for (long i = 0; i < n; i++) {
        tick_task(e, tasks[i], now, timeouts);
    }
    if (timeouts) {
        e->last_timeouts = e->clock.mono_ms();
    }
    free(tasks);
    ota_eng_claims_submit(e);
    ota_eng_adopt_submit(e);
    ota_eng_grants_submit(e);
    ota_eng_flush(e);
}

void ota_engine_flush_final(ota_plugin *p)
{
    ota_engine *e = p->engine;
    if (!e) {
        return;
    }
    if (p->writer) {
        ota_eng_claims_final(e);
    }
    e->stopping = true; /* claims coming back from now on are not sent */
    if (p->writer) {
        ota_eng_flush_now(e);
    }
}
