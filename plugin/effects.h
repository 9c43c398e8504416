/*
 * effects.h — what an upgrade_status report sets off downstream (SPEC §4, seed 000).
 *
 * For each accepted upgrade_status event the engine calls ota_effects_on_status; it
 * publishes the JSON events of seed 000's failure handling on
 *   ota/v1/events/ops_alert/{vin}    a failure whose trigger is not diagnostic
 *   ota/v1/events/work_order/{vin}   sold and activated vehicle, trigger forced or normal,
 *                                    error upgrade_failed / rollback_failed /
 *                                    rollback_succeeded / peripheral_failed
 *   ota/v1/events/log_replay/{vin}   error in plugin_opt_log_replay_errors
 *   ota/v1/events/compensation/{vin} activated passenger car, error download_failed or
 *                                    prepare_failed: the notice is re-sent while the
 *                                    execution's resends < the task's max_resend (the
 *                                    engine re-sends when this returns true), else an
 *                                    event saying it cannot be
 *   ota/v1/events/push/{vin}         success and failure notices for the owner's phone
 * (the status event itself, ota/v1/events/status/{vin}, is report.c's). Broker thread;
 * publishes only, decides nothing about execution states.
 */
#ifndef OTA_EFFECTS_H
#define OTA_EFFECTS_H

#include "catalog.h"
#include "ota_plugin.h"

typedef struct {
    const char *vin;
    const ota_vehicle *vehicle; /* NULL: not in the catalog */
    const ota_event *ev;        /* the upgrade_status event */
    const char *task_id;        /* the execution's task, NULL when the event names none */
    int task_type;              /* ota_task_type, -1 without a task */
    uint32_t resends;           /* the execution's resends so far */
    uint32_t max_resend;        /* the task's */
} ota_effect_ctx;

/* Publishes the events; returns true when the engine should re-send the notice
 * (compensation allowed). */
bool ota_effects_on_status(ota_plugin *p, const ota_effect_ctx *cx);

/* Publishes o (taken) as JSON on ota/v1/events/{kind}/{vin}, QoS 1, to every subscriber
 * the ACL lets read it (report.c's rejected events use it too). True when published. */
bool ota_effects_publish(const char *kind, const char *vin, struct cJSON *o);

/* True for the error words seed 000 counts as an upgrade failure. */
bool ota_effects_is_failure(const ota_event *ev);

#endif
