/*
 * engine_impl.h — what the task engine's files share; every other file uses engine.h.
 *
 *   engine.c         life cycle, the vehicles' view (online, busy), dispatch, TICK
 *   engine_exec.c    execution transitions: reports, cancel, timeouts, the end of a task
 *                    (the rules themselves are core/tasks.c's state machine)
 *   engine_claims.c  notice claims: every notice waits for its claim in the store
 *   engine_flush.c   execution changes, notices and task documents to the writer
 *   engine_timers.c  the timer heap: timeouts (what TICK runs when it is due)
 *   engine_waves.c   rollouts in waves, pause: who may be notified, promotions, aborts
 *   engine_adopt.c   executions this broker does not hold, read from the store on demand
 *   engine_grants.c  a vehicle's descriptions read from the store on its first request
 *   engine_cont.c    continuous tasks (vehicles join and leave) and notice jitter
 *   engine_end.c     a task's end: counts over every broker on a shared store, the end told
 *                    once
 *
 * Broker thread only.
 */
#ifndef OTA_ENGINE_IMPL_H
#define OTA_ENGINE_IMPL_H

#include "batch.h"
#include "engine.h"
#include "map.h"
#include "tasks.h"
#include "timers.h"

/* A vehicle: online from its shadow/update or shadow/get until its DISCONNECT; busy with
 * the task it was notified of (or whose claim is out), at most one. */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    bool online;
    bool grants_fresh;  /* its stored descriptions were read on this connection */
    bool grants_wanted; /* a request waits for them (engine_grants.c) */
    int64_t grants_ms;  /* monotonic: when they were first read on this connection */
    ota_task *busy;
} eng_veh;

/* An execution by position: tasks never move their executions while the plugin runs.
 * from: its state in the store (what the conditional write of the flush expects). */
typedef struct {
    ota_task *task;
    size_t idx;
    uint8_t from;
} eng_exec_ref;

/* An execution read from the store on demand, with the events that wait for it. */
typedef struct {
    ota_task *task;
    size_t idx;
    ota_event *evs; /* copies (eng_event_copy) */
    size_t n_evs;
} eng_adopt;

typedef struct {
    eng_adopt *list;
    size_t n, cap;
    bool in_flight; /* one load job with the writer at a time */
    int64_t retry_after;
    uint64_t loaded, conflicts;
} eng_adopts;

typedef struct {
    ota_notice_rec rec; /* strings malloc'd */
} eng_notice;

/* An execution whose notice waits for its claim: the notice is task:vin:resends. */
typedef struct {
    ota_task *task;
    size_t idx;
    uint16_t resends;
} eng_claim_ref;

typedef struct {
    eng_claim_ref *refs;
    size_t n, cap;
    bool in_flight;      /* one claim job with the writer at a time */
    bool failing;        /* the last job failed (logged once) */
    unsigned backoff_ms; /* after a failure: 1 s, doubling to 8 s */
    int64_t retry_after; /* monotonic ms */
    uint64_t won, lost, errors;
} eng_claims;

struct ota_engine {
    ota_plugin *plugin;
    ota_engine_clock clock;
    int64_t minute_ms; /* a minute of timeout_min (plugin_opt_task_minute_ms) */
    ota_map vehs;      /* eng_veh by VIN */
    bool stopping;     /* ota_engine_flush_final ran: claims coming back are not sent */
    eng_claims claims;
    eng_exec_ref *dirty; /* executions changed since the last flush */
    size_t n_dirty, cap_dirty;
    eng_notice *notices; /* notices sent since the last flush */
    size_t n_notices, cap_notices;
    ota_batcher batch;
    ota_timers *timers; /* engine_timers.c: due times on the engine's now_ms clock */
    eng_adopts adopts;
    struct eng_parked *parked; /* requests waiting for their vehicle's descriptions */
    struct {
        uint64_t lost, followed; /* promotions another broker stored first; rollouts followed */
        uint64_t ends_lost;      /* task ends this broker wrote after another broker's write */
    } waves;
    bool grants_in_flight;
    ota_map cont_vins; /* engine_cont.c: VINs the catalog changed since the last TICK */
    bool cont_all;     /* ... or everything (a group changed, the first TICK) */
    bool cont_wanted;  /* an active continuous task was seen at the last TICK */
    /* the spool checkpoint the polled reports allow once their moves are stored */
    ota_spool_pos ck_want;
    bool ck_pending;
};

/* ---- engine.c: vehicles and dispatch ---- */
/* The vehicle's record, made when missing (NULL for a VIN of the wrong length). */
eng_veh *ota_eng_veh_get(ota_engine *e, const char *vin);
/* One vehicle (online, not busy): the oldest task that can notify it now. */
void ota_eng_dispatch_vehicle(ota_engine *e, eng_veh *v);
/* x's vehicle is no longer busy with task: its next notice may go out at once. */
void ota_eng_release_vehicle(ota_engine *e, ota_task *task, const ota_task_exec *x);

/* ---- engine_exec.c: transitions ---- */
/* Every change of an execution's state goes through here (the state machine's move, then
 * the execution joins the next flush). */
void ota_eng_set_state(ota_engine *e, ota_task *task, ota_task_exec *x, uint8_t state);
/* The abort threshold and the end of a task (ota_task_next_state), applied. */
void ota_eng_check_task(ota_task *task);
/* A notice decision the store holds (ota_store_notice_decision): stored at ms, with the
 * shadow's version and its desired tree (taken by ota_eng_send_notice; NULL: built again). */
typedef struct {
    int64_t ms, version;
    cJSON *desired;
} ota_eng_decided;
/* Sets the notice as the vehicle's desired state, marks x notified; decided: the notice
 * decision was stored, else (NULL) the notice and the execution go to the next flush. */
void ota_eng_send_notice(ota_engine *e, ota_task *task, ota_task_exec *x,
                         const ota_eng_decided *decided);
/* The desired state carrying x's notice. */
cJSON *ota_eng_notice_json(const ota_task *task, const char *vin, const char *msg_id);
/* After the task's end: its queued executions become canceled ("expired"). */
void ota_eng_expire_queued(ota_engine *e, ota_task *task);
/* x (in flight too long) fails with "timeout". */
void ota_eng_time_out(ota_engine *e, ota_task *task, ota_task_exec *x);
/* x (postponed by the driver) is due again: notified anew. */
void ota_eng_wake(ota_engine *e, ota_task *task, ota_task_exec *x);

/* ---- engine_claims.c ---- */
/* x's notice (msg_id task:vin:resends) waits for its claim (the next claim job). */
void ota_eng_request_claim(ota_engine *e, ota_task *task, ota_task_exec *x);
/* Every notice waiting for its claim, in one writer job (one in flight at a time). */
void ota_eng_claims_submit(ota_engine *e);
/* At shutdown: the claims out or waiting are settled (waits for the writer, bounded). */
void ota_eng_claims_final(ota_engine *e);

/* ---- engine_timers.c ---- */
typedef enum {
    OTA_ENG_TIMER_TIMEOUT = 1, /* an execution in flight */
    OTA_ENG_TIMER_RETRY = 2,   /* a failed attempt's backoff is over: notify again */
} ota_eng_timer_kind;
/* kind << 56 | task number << 32 | execution index. */
uint64_t ota_eng_timer_id(ota_eng_timer_kind kind, const ota_task *task, size_t idx);
/* x moved (or was loaded): its timeout is set from changed_ms, or cancelled when it is no
 * longer in flight here. */
void ota_eng_timers_exec(ota_engine *e, ota_task *task, ota_task_exec *x);
/* TICK: runs every timer due at now. */
void ota_eng_timers_run(ota_engine *e, int64_t now);

/* ---- engine_waves.c ---- */
/* Whether the task's rollout lets execution x be notified now (not paused; its wave
 * started and approved). */
bool ota_eng_waves_may_notify(const ota_task *task, const ota_task_exec *x);
/* TICK, per active task with waves: aborts it at its current wave's error threshold,
 * promotes the next wave at the success threshold. */
void ota_eng_waves_check(ota_engine *e, ota_task *task);
/* Whether the task's maintenance window (if any) is open at now (wall ms). */
bool ota_eng_window_open(ota_task *task, int64_t now);
/* The rate of a task with a ramp: its step from the vehicles notified (all but queued and
 * rejected; canceled ones count) or succeeded so far. */
double ota_eng_ramp_rate(const ota_task *task);
/* A failure (word: the error word, "timeout") the task's retry policy tries again: true,
 * and the notice goes again after the backoff (a retry timer); false: it fails. */
bool ota_eng_retry_take(ota_engine *e, ota_task *task, ota_task_exec *x, const char *word);
/* x waits in a retry's backoff (code OTA_ENGINE_RETRY_CODE, due at changed_ms). */
bool ota_eng_retry_waiting(ota_engine *e, const ota_task_exec *x);
/* The retry timer of execution idx fired. */
void ota_eng_retry_fire(ota_engine *e, ota_task *task, size_t idx);
/* After the task's end: end_action cancel_all cancels what is still in flight. */
void ota_eng_task_end(ota_engine *e, ota_task *task);
/* The in-flight part of a report event: x is held here (engine_exec.c). */
void ota_eng_drive(ota_plugin *p, ota_task *task, ota_task_exec *x, const char *vin,
                   const ota_event *ev);

/* VINs with their execution states. */
typedef struct {
    char (*vins)[OTA_VIN_LEN + 1];
    uint8_t *states;
    size_t n, cap;
} ota_eng_vin_states;
/* The store counted task's succeeded (ok) and failed (bad) executions per wave; old: those
 * stored without their wave (before executions carried it), by VIN, whose wave the plan in
 * memory gives. The per-wave counts over every broker (all_ok, all_bad). */
void ota_eng_waves_counted(ota_task *task, const size_t *ok, const size_t *bad,
                           const ota_eng_vin_states *old);

/* ---- engine_end.c ---- */
/* TICK, per active task on a shared store: its count job (every broker's executions). */
void ota_eng_count_submit(ota_engine *e, ota_task *task);
/* TICK: the task's state moved since its last event (finished, aborted, canceled): the
 * event (task_events.h), with the reason of an abort — on one broker only; on a shared
 * store the end is told when it is stored (ota_eng_task_stored). */
void ota_eng_task_announce(ota_engine *e, ota_task *task);
/* This broker's conditional write stored the task's document in state s: on a shared store
 * the broker that moved the task into an end state tells it (once over every broker). */
void ota_eng_task_stored(ota_engine *e, ota_task *task, ota_task_state s);
/* On a shared store: the task's end (its state now) is in the store, written by this
 * broker or followed from another: a lost write of its document is not written again. */
bool ota_eng_task_end_stored(const ota_engine *e, const ota_task *task);

/* ---- engine_adopt.c ---- */
/* True when x's state is not this broker's to drive from memory: another broker claimed
 * its notice, or it is queued here while the vehicle reports that task (notified elsewhere). */
bool ota_eng_not_held(const ota_engine *e, const ota_task_exec *x);
/* ev (copied) waits until x is read from the store, then drives it (next load job). */
void ota_eng_adopt_event(ota_engine *e, ota_task *task, ota_task_exec *x, const ota_event *ev);
/* x's conditional write found another state in the store: x is read again. */
void ota_eng_adopt_reload(ota_engine *e, ota_task *task, ota_task_exec *x);
/* TICK: the executions waiting to be read, in one writer job (one in flight at a time). */
void ota_eng_adopt_submit(ota_engine *e);
void ota_eng_adopt_free(ota_engine *e);

/* ---- engine_grants.c ---- */
/* The vehicle's connection ended: its next one reads its descriptions again. */
void ota_eng_grants_forget(ota_engine *e, eng_veh *v);
/* TICK: the VINs whose requests wait, in one writer job (one in flight at a time). */
void ota_eng_grants_submit(ota_engine *e);
void ota_eng_grants_free(ota_engine *e);

/* ---- engine_cont.c ---- */
/* The catalog's change hook; the first TICK matches everything. */
void ota_eng_cont_init(ota_engine *e);
void ota_eng_cont_free(ota_engine *e);
/* TICK, before dispatch: continuous tasks past their end close; the VINs changed since
 * the last TICK join or leave the active continuous tasks among tasks[0..n). */
void ota_eng_cont_run(ota_engine *e, ota_task **tasks, long n, int64_t now);
/* TICK: whether the task may dispatch now (can_dispatch), for the jitter's start. */
void ota_eng_jitter_track(ota_task *task, bool can_dispatch, int64_t now);
/* Whether x's jitter delay is over at now (always without jitter). */
bool ota_eng_jitter_due(const ota_task *task, const ota_task_exec *x, int64_t now);

/* ---- engine_flush.c ---- */
/* The from of a new execution (a continuous task's joiner): the flush inserts it. */
#define OTA_ENG_FROM_NEW 0xff
/* "TASK:VIN:RESENDS", the notice's msg_id. */
void ota_eng_msg_id(const ota_task *task, const ota_task_exec *x, char *buf, size_t len);
/* "TASK:VIN:RESENDS" into buf (len > 0; cut to fit, as snprintf would), per notice without
 * a format string. */
void ota_eng_msg_id_of(const char *task, const char *vin, unsigned resends, char *buf, size_t len);
/* v in decimal into buf, terminated; its length. */
size_t ota_eng_int_text(int64_t v, char buf[24]);
/* s into buf (len > 0), cut to fit and terminated. */
void ota_eng_copy_text(char *buf, size_t len, const char *s);
/* x changed: it goes to the store with the next flush (not when another broker owns it). */
void ota_eng_mark_dirty(ota_engine *e, ota_task *task, ota_task_exec *x);
/* The same, x having been in state from in the store (a transition's first move). */
void ota_eng_mark_dirty_from(ota_engine *e, ota_task *task, ota_task_exec *x, uint8_t from);
/* x's stored state is known to be state now (read from the store): its pending write
 * expects that. */
void ota_eng_dirty_stored(ota_engine *e, const ota_task_exec *x, uint8_t state);
/* The state the store holds of x (its pending write's from, else its state). */
uint8_t ota_eng_stored_state(const ota_engine *e, const ota_task_exec *x);
/* A notice sent: appended to the notice table with the next flush. */
void ota_eng_record_notice(ota_engine *e, const ota_task *task, const char *vin, const char *msg_id,
                           int64_t now);
/* TICK: hands what changed to the writer as one change when batch.h says it is due. */
void ota_eng_flush(ota_engine *e);
/* At shutdown: what changed, to the writer at once. */
void ota_eng_flush_now(ota_engine *e);
void ota_eng_flush_free(ota_engine *e);

#endif
