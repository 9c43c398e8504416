/*
 * engine.h — the task engine's moving part: dispatch of notices (with their claims),
 * execution states driven by reports, cancel, timeouts and the abort threshold
 * (docs/task-engine.md). core/tasks.c holds the tasks, their executions and the
 * execution state machine; shadow.c carries notices to vehicles (the engine sets desired
 * states and hears through a hook when a vehicle is online); effects.c publishes what
 * failures set off; control_tasks.c stores cancelTask and calls ota_engine_cancel.
 *
 * Broker thread only. Execution changes are applied in memory at once and stored in
 * batches (one writer job per 50 ms at most), like shadows. The engine is p->engine,
 * made at init once the tasks are loaded.
 */
#ifndef OTA_ENGINE_H
#define OTA_ENGINE_H

#include "ota_plugin.h"
#include "tasks.h"

#include <cjson/cJSON.h>

/* The code a pending cancel leaves on an execution in flight (stored: survives a restart). */
#define OTA_ENGINE_CANCEL_CODE "cancel_requested"
/* The code of an execution in flight waiting for its retry (issue 16): its changed_ms (the
 * stored updated_at) is the retry's due time, so a restart sets the retry timer again. */
#define OTA_ENGINE_RETRY_CODE "retry_backoff"

/* The engine's clock: wall time (task windows, notice and change times, timeouts) and
 * monotonic time (rates, the store pacing, claim retries). The plugin runs on ota_now_ms
 * and ota_mono_ms; unit tests drive a clock of their own. */
typedef struct {
    int64_t (*now_ms)(void);
    int64_t (*mono_ms)(void);
} ota_engine_clock;

/* At init, once the tasks are loaded: the busy vehicles from the executions in flight;
 * registers with the shadows (a vehicle seen is online). clock NULL: the real one. NULL
 * when out of memory. */
ota_engine *ota_engine_new(ota_plugin *p, const ota_engine_clock *clock);
/* After the writer stopped (its last jobs' callbacks reach the engine). */
void ota_engine_free(ota_engine *e);

/* TICK: dispatch due notices (task windows, rates, one task per vehicle at a time),
 * time out executions in progress, abort tasks over their failure threshold, claim
 * waiting notices and flush execution changes to the store. */
void ota_engine_tick(ota_plugin *p);
/* report.c: each accepted event of a vehicle (drives its execution's state). */
void ota_engine_on_event(ota_plugin *p, const char *vin, const ota_event *ev);
/* DISCONNECT callback: the vehicle is offline until it is seen again. */
void ota_engine_on_disconnect(ota_plugin *p, const char *vin);
/* cancelTask, once its change is stored: the executions of task whose VIN is one of
 * vins (all when vins is NULL). Queued ones are canceled at once; those in flight get
 * the code OTA_ENGINE_CANCEL_CODE and the desired state {task:null, cancel:TASK}, and are
 * canceled when the vehicle confirms. A whole-task cancel of an active or aborted task
 * cancels the task. Counts both kinds. */
void ota_engine_cancel(ota_plugin *p, ota_task *task, char *const *vins, size_t n_vins,
                       size_t *canceled, size_t *pending);
/* control_waves.c, once stored: a task's rollout changed by hand (what: "paused",
 * "resumed", "wave_started", "wave_approved"): logged, and its task event. */
void ota_engine_task_changed(ota_plugin *p, ota_task *task, const char *what);
/* follow.c: another broker stored a rollout change of task (a newer document revision,
 * already taken into memory): logged, counted, no event (that broker published it). */
void ota_engine_rollout_followed(ota_plugin *p, ota_task *task);
/* control_cancel.c, once stored: this broker's conditional write stored the task's
 * document in state s (cancelTask). On a shared store the end is told by the broker whose
 * write moved the task into it, so here; on one broker the TICK tells it. */
void ota_engine_task_stored(ota_plugin *p, ota_task *task, ota_task_state s);
/* follow.c: another broker's write ended the task (a newer document in state s, finished,
 * aborted or canceled, after ota_engine_cancel for canceled): the task takes s, and no
 * event (that broker told it); its own end, if it had one waiting, is not written. */
void ota_engine_task_followed(ota_plugin *p, ota_task *task, ota_task_state s);
/* pkg.c and file.c, first thing: on a store several brokers share, the first such request
 * of a vehicle's connection waits until its stored descriptions are read (another broker
 * may have issued them): true when req was parked (handler handles a copy later; the
 * caller answers nothing now), false to handle it now. missing (file/get): the file is not
 * granted yet, read again for a while (its description may still be on its way). */
bool ota_engine_grants_park(ota_plugin *p, const ota_request *req, ota_vehicle_handler handler,
                            bool missing);
/* installNow: the executions in flight of task whose VIN is one of vins (all when NULL)
 * get their notice again as desired state, same msg_id, with "install_now": true (a
 * download_only vehicle installs what it downloaded). Returns how many. */
size_t ota_engine_install_now(ota_plugin *p, ota_task *task, char *const *vins, size_t n_vins);
/* The reports polled up to spool position ck drove their executions: the writer may
 * checkpoint past them once the execution moves they made are stored (the next flush
 * job that carries no adoption still waiting, engine_flush.c). A broker killed before
 * that replays those reports at its next start, and their moves are made again. */
void ota_engine_hold_checkpoint(ota_plugin *p, ota_spool_pos ck);
/* At shutdown, before the writer stops: hand the last execution changes to the writer. */
void ota_engine_flush_final(ota_plugin *p);
/* getStats: adds "claims" {broker_id, won, lost, errors, waiting} to data: notices this
 * broker claimed and sent, claims another broker held, failed claim jobs, notices waiting
 * for their claim. */
void ota_engine_stats_json(ota_plugin *p, cJSON *data);

#endif
