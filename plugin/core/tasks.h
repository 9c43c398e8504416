/*
 * tasks.h — upgrade tasks and their executions per VIN (SPEC §5-6, seed 000). Part of the
 * broker-free core (plugin/core/): it never calls mosquitto_*; every function takes the
 * ota_tasks handle.
 *
 * createTask validates with task_rules.c against the in-memory catalog and each vehicle's
 * latest upgrade status, stores the task and one execution per VIN (queued or rejected
 * with its code) in one change, then keeps them in memory for getTask (counts per state)
 * and listTaskVehicles. The latest upgrade status per VIN is loaded at start and kept
 * current from accepted reports (ota_tasks_on_status). The engine (plugin/engine*.c)
 * moves the executions (dispatch, reports, cancel, timeouts, abort; docs/task-engine.md)
 * through the runtime fields below.
 */
#ifndef OTA_TASKS_H
#define OTA_TASKS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ota_codec.h"
#include "ota_store.h"
#include "ota_target.h"
#include "task_rules.h"
#include "task_waves.h"
#include "task_ramp.h"
#include "task_retry.h"
#include "task_window.h"

typedef struct ota_tasks ota_tasks;

ota_tasks *ota_tasks_new(void);
void ota_tasks_free(ota_tasks *t);
/* At start: tasks, executions, task type rules, latest statuses. 0, or -1 with err. */
int ota_tasks_load(ota_tasks *t, ota_store *store, char *err, size_t errlen);

/* report.c: an accepted upgrade_status event of vin (broker thread). */
void ota_tasks_on_status(ota_tasks *t, const char *vin, const ota_event *ev);

/* ---- for the operator commands (control_tasks.c) and the engine ---- */

typedef enum {
    OTA_TASK_ACTIVE = 0,
    OTA_TASK_CANCELED,
    OTA_TASK_ABORTED,
    OTA_TASK_FINISHED,
} ota_task_state;
#define OTA_TASK_STATE_COUNT 4
/* "active", ...; -1 for an unknown name. */
const char *ota_task_state_name(ota_task_state s);
int ota_task_state_from_name(const char *name);

/* One execution, compact: a task of 100,000 VINs costs 4 MB. */
typedef struct {
    char vin[OTA_VIN_LEN]; /* not NUL-terminated */
    uint8_t state;         /* ota_exec_state */
    uint16_t code;         /* rejection code or failure reason (ota_tasks_code_name); 0 none */
    uint16_t resends;
    uint8_t dirty;       /* engine: changed since the last flush (in its dirty list) */
    uint8_t flags;       /* engine, not stored: OTA_EXEC_F_* */
    int64_t notified_ms; /* -1 before the first notice */
    int64_t changed_ms;  /* last state change (timeouts) */
} ota_task_exec;

/* A task's executions per state as the store counted them at the last count, every broker's
 * (on a store several brokers share; plugin/engine_end.c's count job); the decisions take
 * succeeded, failed and the open states (queued, in flight). */
typedef struct {
    size_t count[OTA_EXEC_STATE_COUNT];
    bool counted;        /* a count came back: the decisions take it (ota_task_seen) */
    bool counting;       /* a count job is out */
    bool final;          /* counted once after the task ended (getTask's last counts) */
    int64_t count_after; /* monotonic ms: the next count job */
} ota_task_stored;

typedef struct {
    ota_task_rec rec; /* the definition, without its vins (the executions hold them) */
    ota_task_state state;
    int64_t created_ms;
    uint64_t package; /* the full package the task installs */
    size_t n_execs;
    ota_task_exec *execs; /* one per VIN: [0, n_sorted) sorted by VIN, then late joiners */
    size_t cap_execs;
    size_t n_sorted;   /* the executions the task was created (or loaded) with */
    uint32_t *late;     /* late joiners (continuous): their indexes, sorted by VIN ... */
    size_t late_sorted; /* ... the first late_sorted of them (ota_task_joins_done) */
    size_t cap_late;    /* late holds n_execs - n_sorted indexes */
    bool continuous;   /* its target stays open (issue 16): vehicles join and leave */
    bool closed;       /* engine, not stored: a continuous task past its end takes no one */
    uint32_t jitter_ms; /* a queued notice waits 0..jitter_ms ms, by VIN (ota_task_jitter) */
    ota_target *target; /* a continuous task's query (setting task_target:<id>), or NULL */
    size_t count[OTA_EXEC_STATE_COUNT]; /* executions per state (ota_task_recount) */
    ota_task_stored stored;             /* the same over every broker, read from the store */
    ota_task_waves *waves;              /* a rollout in waves (issue 16), or NULL */
    bool paused;                        /* pauseTask: nothing is notified until resumeTask */
    uint64_t rev;                       /* the stored document's revision ("rev"; issue 16) */
    ota_task_window *mwindow;           /* a maintenance window (issue 16), or NULL */
    ota_end_action end_action;          /* what the task's end does to executions in flight */
    ota_task_ramp ramp;                 /* an exponential notice-rate ramp, or .on false */
    ota_task_retry retry;               /* the retry policy, or .on false */
    ota_task_state announced;           /* the state its last task event told (not stored) */
    char reason[160];                   /* why the engine aborted it, for the event */
    /* engine runtime (not stored) */
    double tokens;     /* rate limit bucket */
    int64_t refill_ms; /* last refill, monotonic */
    bool doc_dirty;    /* the task document (its state) must be stored again */
    int64_t open_since_ms; /* jitter: when it last became able to dispatch; 0 not now */
    uint8_t open_wave;     /* jitter: the wave current at open_since_ms */
} ota_task;

/* ota_task_exec.flags (the engine's claims, docs/task-engine.md "Notice claims"). */
#define OTA_EXEC_F_CLAIMING 1  /* the notice (msg_id of resends) waits for its claim */
#define OTA_EXEC_F_ELSEWHERE 2 /* another broker holds the notice: not stored, not timed out */
#define OTA_EXEC_F_NEW 4       /* a continuous task's joiner whose row is not stored yet: not
                                * notified (nor left, nor validated again) until it is */

/* ---- the execution state machine (the engine drives it; docs/task-engine.md) ---- */

/* Notified, downloading, installing, accepted or postponed: a notice is out and the
 * vehicle works on it (or the driver asked to be asked again). */
bool ota_exec_in_flight(uint8_t state);
/* Whether an execution may move from one state to another:
 *   queued      -> notified (notice sent, or claimed by another broker), canceled
 *   notified    -> notified (a re-send), downloading, installing, succeeded, failed, canceled,
 *                  accepted, postponed, declined
 *   downloading -> notified (a re-send), installing, succeeded, failed, canceled,
 *                  accepted, postponed, declined (download-only asks before installing)
 *   installing  -> notified (a re-send), succeeded, failed, canceled
 *   accepted    -> what notified may, but accepted
 *   postponed   -> notified (woken: the notice again), accepted, postponed, declined, canceled
 *   succeeded, failed, canceled, rejected, declined: final (rejected is only ever a first
 *   state). */
bool ota_exec_transition_valid(uint8_t from, uint8_t to);
/* Moves x (an execution of task) to state at now: the task's counts, x->changed_ms, and a
 * finished execution's claim waiting (OTA_EXEC_F_CLAIMING) dropped. Returns false, and
 * changes nothing, for a move ota_exec_transition_valid refuses. */
bool ota_task_exec_set_state(ota_task *task, ota_task_exec *x, uint8_t state, int64_t now);
/* The state a report event of the execution's own task moves an execution in flight to
 * (its current state: no move): download_progress notified -> downloading;
 * upgrade_progress -> installing; upgrade_status succeeded / failed / canceled -> that
 * state, idle -> canceled only while a cancel is pending; consent accepted / declined /
 * postponed -> that state (not while installing). Executions queued or finished
 * never move on reports. For failed the engine may re-send instead (compensation). */
uint8_t ota_exec_next_state(uint8_t state, const ota_event *ev, bool cancel_pending);

/* The counts a task's decisions and events take, per state: this broker's (task->count),
 * and once the store was counted (task->stored, several brokers on one store) succeeded and
 * failed the larger of this broker's and the store's, the open states (queued, in flight)
 * those of the view with fewer open executions (each lags behind executions closed where
 * it does not look: memory behind other brokers' vehicles, the store behind the next
 * flush), so either view seeing nothing open is enough to end the task. */
void ota_task_seen(const ota_task *task, size_t out[OTA_EXEC_STATE_COUNT]);
/* Queued or in flight (notified, downloading, installing, accepted, postponed) in counts. */
size_t ota_task_open_of(const size_t count[OTA_EXEC_STATE_COUNT]);
/* The state task should be in now, on its seen counts (ota_task_seen): an active task is
 * aborted once at least abort_min_executed executions finished (succeeded + failed) and
 * failed x 100 >= finished x abort_failure_pct (0: never), else finished once nothing is
 * queued or in flight — a continuous task only once closed (its end passed): until then
 * vehicles may still join, as an AWS IoT continuous job stays IN_PROGRESS; other states
 * stay. */
ota_task_state ota_task_next_state(const ota_task *task);
/* Sets the task's state; a change marks its document for the store (doc_dirty). */
void ota_task_set_state(ota_task *task, ota_task_state s);
/* start <= now < end (-1: open on that side). */
bool ota_task_window_open(const ota_task *task, int64_t now);
/* x is postponed, driven by this broker, not already being re-sent, and its time (kept
 * in changed_ms while postponed) has come at now: the engine re-sends the notice. */
bool ota_task_exec_wakes(const ota_task_exec *x, int64_t now);
/* x is in flight, driven by this broker, and unchanged for timeout_min minutes of
 * minute_ms each (60000 in production) at now; never when the task has no timeout. */
bool ota_task_exec_timed_out(const ota_task *task, const ota_task_exec *x, int64_t now,
                             int64_t minute_ms);

/* Recomputes task->count from the executions. */
void ota_task_recount(ota_task *task);
/* Every task, in creation order (ids ascending): *out malloc'd (NULL when there are none).
 * Returns the count, or -1 out of memory. */
long ota_tasks_list(const ota_tasks *t, ota_task ***out);

/* x's VIN as a C string. */
void ota_task_exec_vin(const ota_task_exec *x, char vin[OTA_VIN_LEN + 1]);
/* Whether vin is one of the n vins; every VIN is when vins is NULL (a whole task). */
bool ota_vin_selected(char *const *vins, size_t n, const char *vin);
/* A task by id, or NULL. */
ota_task *ota_tasks_get(const ota_tasks *t, const char *id);
/* The execution of vin in task, or NULL (binary search of the sorted part, then of the
 * late joiners' index). */
ota_task_exec *ota_task_find_exec(const ota_task *task, const char *vin);
/* x's wave as its stored execution carries it (ota_exec_rec.wave, what the store counts per
 * wave): -1 for a task without waves or an execution in none. */
int64_t ota_task_exec_wave(const ota_task *task, const ota_task_exec *x);

/* ---- continuous tasks (issue 16): late joiners ----
 * A vehicle that starts matching a continuous task's target after its creation gets an
 * execution appended to the array (so every index the engine holds stays valid) and its
 * index inserted in `late`, sorted by VIN (4 bytes per joiner). At the next load every
 * execution is sorted again and late is empty. A joiner of a task in waves is in the
 * last wave ("the rest"), as hawkBit's dynamic rollout groups come after the static ones;
 * the plan (a string in VIN order) then changes, so the task document is marked dirty. */

/* Adds vin's execution, queued or rejected with code, at now. NULL out of memory or when
 * vin has one already. The pointer is valid until the next join. A joiner is not found
 * (ota_task_find_exec, ota_task_walk) until ota_task_joins_done: a batch of k joins into n
 * costs O(k log k + n), not k moves of n (so the caller must not join a VIN twice in one
 * batch). */
ota_task_exec *ota_task_join(ota_task *task, const char *vin, uint8_t state, uint16_t code,
                             int64_t now);
/* Sorts the joiners since the last call into the late index. */
void ota_task_joins_done(ota_task *task);
/* Whether x may be re-validated: never notified, no notice claim out, and queued,
 * rejected, or canceled with code left (the vehicle had left the target). */
bool ota_task_exec_rejoinable(const ota_task_exec *x, uint16_t left);
/* Moves a rejoinable x to queued or rejected (with code); not a move of the state machine
 * (ota_exec_transition_valid): a vehicle coming back to a continuous task starts again,
 * one whose vehicle no longer passes a rule (blacklisted after it joined) is rejected.
 * false, changing nothing, when x is not rejoinable or state is neither. */
bool ota_task_exec_rejoin(ota_task *task, ota_task_exec *x, uint8_t state, uint16_t code,
                          uint16_t left, int64_t now);
/* The executions in VIN order: start with *pos = {0}; NULL after the last. */
typedef struct {
    size_t sorted, late;
} ota_task_walk_pos;
ota_task_exec *ota_task_walk(const ota_task *task, ota_task_walk_pos *pos);
#define OTA_TASK_JITTER_MAX 86400000 /* a day */
/* The delay of vin's first notice in a task with jitter_ms: 0..jitter_ms, from a hash of
 * task id + VIN (ota_waves_key), so it is the same on every broker and after a restart. */
int64_t ota_task_jitter(const ota_task *task, const char *vin);
/* The id the next created task gets: "T" and a number, zero-padded to 6 digits. */
void ota_tasks_next_id(const ota_tasks *t, char *buf, size_t len);
/* Adds a created task: takes rec's contents (its vins must be gone) and execs (malloc'd,
 * any order: sorted here). 0, or -1 out of memory (nothing taken). */
int ota_tasks_add(ota_tasks *t, ota_task_rec *rec, ota_task_state state, int64_t created_ms,
                  uint64_t package, ota_task_exec *execs, size_t n);

/* What the task rules read: the current type rules and the latest upgrade statuses. */
ota_rules_env ota_tasks_rules_env(ota_tasks *t);
/* The type rules in force, indexed by ota_task_type. */
const ota_task_type_rules *ota_tasks_type_rules(const ota_tasks *t);
/* Replaces a type's rules (takes r's contents). */
void ota_tasks_set_type_rules(ota_tasks *t, ota_task_type_rules *r);

/* Execution codes are kept as small numbers: the rejection codes are their own number
 * (ota_reject_code), other texts (failure reasons) get the next free one. */
uint16_t ota_tasks_code(ota_tasks *t, const char *name); /* 0 when name is NULL or too many */
const char *ota_tasks_code_name(const ota_tasks *t, uint16_t code); /* NULL for 0 */

/* A task document read from the change log (plugin/follow.c), on a running broker: a task
 * not held yet is added as the start-up loads one (the document, then those of execs that
 * are its executions); returns 1. A task held already whose document is newer (its "rev"
 * above the task's) takes the document's rollout (rev, paused, the current and approved
 * waves: another broker's promotion, pause, resume or approval) and returns 2; an older or
 * equal one (this broker's own write coming back) is left alone and returns 0. Either
 * way *state is the document's state. -1 with err set when the document does not load. */
int ota_tasks_follow_doc(ota_tasks *t, const char *key, const char *json, const ota_exec_rec *execs,
                         size_t n, ota_task_state *state, char *err, size_t errlen);

/* A setting document read from the change log: task type rules are replaced as at start,
 * other settings ignored. 0, or -1 with err set. */
int ota_tasks_follow_setting(ota_tasks *t, const char *key, const char *json, char *err,
                             size_t errlen);

/* The stored document of a task in memory, in state: ota_task_doc with its "waves" and
 * "paused" (issue 16), "continuous" and "jitter_ms"; a plan with late joiners is written
 * in VIN order (the order the executions have after the next load). */
cJSON *ota_task_doc_of(const ota_task *task, ota_task_state state);
/* The stored task document: {"task":{...}, "state", "created_at", "package"}. */
cJSON *ota_task_doc(const ota_task_rec *rec, ota_task_state state, int64_t created_ms,
                    uint64_t package);

/* The setting document that keeps a task's target ("task_target:<id>"): written by
 * createTask (control_tasks.c), read back at load for a continuous task. */
#define OTA_TASK_TARGET_PREFIX "task_target:"

#endif
