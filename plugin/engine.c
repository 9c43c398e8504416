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
 * - TICK: the timers due (engine_timers.c: timeouts, from a heap, so no scan of the
 *   executions); then per task: expire queued executions after the task's end, apply the
 *   abort threshold / end of the task, dispatch; then submit the waiting claims and
 *   flush the changes.
 * - Time: the engine's clock (engine.h); a minute of timeout_min lasts
 *   plugin_opt_task_minute_ms (60000 unless a test shortens it).
 */
#include "engine_impl.h"
#include "shadow.h"

#include <stdlib.h>
#include <string.h>

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
            if (v) {
                ota_eng_timers_exec(e, tasks[i], &tasks[i]->execs[k]);
            }
        }
        tasks[i]->refill_ms = e->clock.mono_ms();
        tasks[i]->tokens = tasks[i]->rec.rate && !tasks[i]->ramp.on ? tasks[i]->rec.rate : 1;
    }
    free(tasks);
}

/* plugin_opt_test_time_scale: the wall clock from the engine's start, sped up. */
static int64_t g_scale_base, g_scale = 1;

static int64_t scaled_now(void)
{
    return g_scale_base + (ota_now_ms() - g_scale_base) * g_scale;
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
    if (!clock && p->cfg.test_time_scale > 1) {
        g_scale_base = ota_now_ms();
        g_scale = p->cfg.test_time_scale;
        e->clock.now_ms = scaled_now;
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota: plugin_opt_test_time_scale %u: the task engine's clock runs "
                             "fast (tests only)",
                             p->cfg.test_time_scale);
    }
    e->minute_ms = p->cfg.task_minute_ms ? p->cfg.task_minute_ms : 60000;
    e->timers = ota_timers_new();
    if (!e->timers) {
        free(e);
        return NULL;
    }
    ota_shadows_on_seen(p->shadows, vehicle_seen, e);
    ota_eng_cont_init(e);
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
    ota_eng_cont_free(e);
    ota_map_destroy(&e->vehs, NULL);
    ota_timers_free(e->timers);
    ota_eng_flush_free(e);
    ota_eng_adopt_free(e);
    ota_eng_grants_free(e);
    free(e->claims.refs);
    free(e);
}

/* ---------------------------------------------------------------- dispatch */

static bool can_dispatch(ota_task *task, int64_t now)
{
    return task->state == OTA_TASK_ACTIVE && !task->paused &&
           task->count[OTA_EXEC_QUEUED] > 0 && ota_task_window_open(task, now) &&
           ota_eng_window_open(task, now); /* the maintenance window (engine_waves.c) */
}

/* Notices per second the task may send now: its ramp's (engine_waves.c) or its rate;
 * 0 = unlimited. */
static double task_rate(const ota_task *task)
{
    return task->ramp.on ? ota_eng_ramp_rate(task) : (double)task->rec.rate;
}

static void refill(ota_engine *e, ota_task *task)
{
    double rate = task_rate(task);
    if (rate == 0) {
        return;
    }
    double cap = rate < 1.0 ? 1.0 : rate;
    int64_t m = e->clock.mono_ms();
    if (task->refill_ms == 0) {
        task->refill_ms = m;
        task->tokens = cap;
    }
    task->tokens += (double)(m - task->refill_ms) * rate / 1000.0;
    if (task->tokens > cap) {
        task->tokens = cap;
    }
    task->refill_ms = m;
}

static bool has_token(const ota_task *task)
{
    return task_rate(task) == 0 || task->tokens >= 1.0;
}

/* Tries to dispatch task to vehicle v (oldest tasks are tried first by the callers). */
static bool try_vehicle(ota_engine *e, ota_task *task, eng_veh *v)
{
    if (!v->online || v->busy || !has_token(task)) {
        return false;
    }
    ota_task_exec *x = ota_task_find_exec(task, v->vin);
    if (!x || x->state != OTA_EXEC_QUEUED || x->flags || !ota_eng_waves_may_notify(task, x) ||
        !ota_eng_jitter_due(task, x, e->clock.now_ms())) {
        return false;
    }
    if (task_rate(task) != 0) {
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
        /* a queued execution whose claim is out has its vehicle busy: no lookup, on every
         * TICK until the claim job is back */
        if (task->execs[i].state != OTA_EXEC_QUEUED ||
            (task->execs[i].flags & OTA_EXEC_F_CLAIMING)) {
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

static void tick_task(ota_engine *e, ota_task *task, int64_t now)
{
    if (task->state == OTA_TASK_ACTIVE && task->rec.end_ms >= 0 && now >= task->rec.end_ms &&
        task->count[OTA_EXEC_QUEUED] > 0) {
        ota_eng_expire_queued(e, task);
    }
    if (task->rec.end_ms >= 0 && now >= task->rec.end_ms) {
        ota_eng_task_end(e, task); /* end_action cancel_all */
    }
    ota_eng_count_submit(e, task); /* a shared store: every broker's counts */
    ota_eng_waves_check(e, task); /* a wave's thresholds: abort, or the next wave */
    ota_eng_check_task(task);
    bool can = can_dispatch(task, now);
    ota_eng_jitter_track(task, can, now);
    if (can) {
        dispatch_task(e, task);
    }
    ota_eng_task_announce(e, task);
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
    ota_eng_timers_run(e, now);
    ota_eng_cont_run(e, tasks, n, now); /* continuous tasks: who joins, who leaves */
    for (long i = 0; i < n; i++) {
        tick_task(e, tasks[i], now);
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
