/*
 * engine.h — the task engine's moving part: dispatch, execution states, cancel, timeouts
 * and the abort threshold (docs/task-engine.md). tasks.c holds tasks and executions;
 * shadow.c carries notices to vehicles; effects.c publishes what failures set off.
 *
 * Broker thread only. Execution changes are applied in memory at once and stored in
 * batches (one writer job per 50 ms at most), like shadows.
 */
#ifndef OTA_ENGINE_H
#define OTA_ENGINE_H

#include "ota_plugin.h"

#include <cjson/cJSON.h>

/* At init, once the tasks are loaded: the busy vehicles from the executions in flight;
 * registers with the shadows (a vehicle seen is online). NULL when out of memory. */
ota_engine *ota_engine_new(ota_plugin *p);
/* After the writer stopped (its last jobs' callbacks reach the engine). */
void ota_engine_free(ota_engine *e);

/* TICK: dispatch due notices (task windows, rates, one task per vehicle at a time),
 * time out executions in progress, abort tasks over their failure threshold, flush
 * execution changes to the store. */
void ota_engine_tick(ota_plugin *p);
/* report.c: each accepted event of a vehicle (drives its execution's state). */
void ota_engine_on_event(ota_plugin *p, const char *vin, const ota_event *ev);
/* DISCONNECT callback: the vehicle is offline until it is seen again. */
void ota_engine_on_disconnect(ota_plugin *p, const char *vin);
/* At shutdown, before the writer stops: hand the last execution changes to the writer. */
void ota_engine_flush_final(ota_plugin *p);
/* getStats: adds "claims" {broker_id, won, lost, errors, waiting} to data: notices this
 * broker claimed and sent, claims another broker held, failed claim jobs, notices waiting
 * for their claim. */
void ota_engine_stats_json(ota_plugin *p, cJSON *data);

#endif
