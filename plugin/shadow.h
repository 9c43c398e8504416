/*
 * shadow.h — device shadows (SPEC §3): per vehicle {version, reported, desired}.
 *
 * Kept in memory on the broker thread, loaded from the store at start; changes are
 * applied at once and handed to the writer in batches (ota_shadows_flush on TICK), so a
 * fleet reporting at full rate costs a few store transactions per second. The task
 * engine writes `desired` (a task notice or a cancel) through ota_shadow_set_desired; a
 * connected vehicle gets the difference on ota/v1/{vin}/shadow/delta at once, an offline
 * one when it next sends shadow/update or shadow/get.
 */
#ifndef OTA_SHADOW_H
#define OTA_SHADOW_H

#include "ota_plugin.h"

#include <cjson/cJSON.h>

typedef struct ota_shadows ota_shadows;

ota_shadows *ota_shadows_new(void);
void ota_shadows_free(ota_shadows *s);
/* At start (broker thread, before serving). 0, or -1 with err. */
int ota_shadows_load(ota_shadows *s, ota_store *store, char *err, size_t errlen);

/* Vehicle requests (router.c table). */
int ota_handle_shadow_update(ota_plugin *p, const ota_request *req);
int ota_handle_shadow_get(ota_plugin *p, const ota_request *req);

/* TICK: hands the shadows changed since the last flush to the writer as one change. */
void ota_shadows_flush(ota_plugin *p);

/* At cleanup, before the writer stops (ota_writer_stop runs the jobs still queued): hands
 * the shadows changed since the last flush to the writer at once, so that a clean stop
 * loses none of them. */
void ota_shadows_flush_final(ota_plugin *p);

/* Called after each shadow/update and shadow/get a vehicle sent (it is online), once it
 * was answered. The task engine registers here, so that a due notice goes out at once
 * (shadow.c does not know the engine). One hook; fn NULL removes it. */
typedef void (*ota_shadow_seen_fn)(void *ctx, const char *vin);
void ota_shadows_on_seen(ota_shadows *s, ota_shadow_seen_fn fn, void *ctx);

/* For the task engine: sets the vehicle's desired state (JSON object, taken; NULL clears
 * it), bumps the version, and publishes shadow/delta when the vehicle is connected. */
void ota_shadow_set_desired(ota_plugin *p, const char *vin, cJSON *desired);
/* The same for a notice decision the store holds as shadow version `version`
 * (ota_shadow_decision_rec): when that is the next version and no flush took the shadow
 * since the decision was made (its older version would be written after the decision), it
 * is not written again; else as ota_shadow_set_desired. */
void ota_shadow_set_desired_stored(ota_plugin *p, const char *vin, cJSON *desired, int64_t version);

/* For the task engine's notice decision (ota_store_notice_decision): the record the
 * vehicle's shadow is stored as once desired is set (version + 1, its reported state);
 * texts malloc'd (free vin, reported, desired). false when out of memory. */
bool ota_shadow_decision_rec(ota_plugin *p, const char *vin, const cJSON *desired,
                             ota_shadow_rec *rec);

/* For getVehicleStatus: {"version", "reported", "desired" (null when none), "updated_at"},
 * or NULL when the VIN has no shadow (or out of memory). */
cJSON *ota_shadow_json(ota_plugin *p, const char *vin);

#endif
