/*
 * effects.c — the downstream events one upgrade_status event sets off (SPEC §4, seed 000's
 * "升级状态报告" rules 1-7). docs/events.md is the contract for subscribers.
 *
 * Each event is a JSON object published on ota/v1/events/{kind}/{vin} with client id NULL
 * (to every subscriber the ACL lets read it: admins), QoS 1, not retained, content type
 * application/json. Conditions, evaluated independently for every upgrade_status event
 * the engine hands over (one event may set off several):
 *   failure      status "failed", or error in FAILURE_ERRORS (also when the status
 *                says otherwise, e.g. rolling_back with upgrade_failed).
 *   ops_alert    failure, and the trigger is not "diagnostic" (rule 1: ADI injections
 *                are the after-sales workshop's own business).
 *   work_order   vehicle in the catalog, sold and activated, trigger forced or normal, error
 *                in WORK_ORDER_ERRORS (rule 2). Not required: status "failed".
 *   log_replay   error in plugin_opt_log_replay_errors (rule 3; default upgrade_failed,
 *                rollback_failed, peripheral_failed; "none": never). The stored
 *                upgrade_status row is the error record the seed checks. Asks for the
 *                ssp-vds-service log of the LOG_WINDOW_MS (30 min) before the event's ts,
 *                up to ts. Any vehicle, any trigger, any status.
 *   compensation vehicle in the catalog, activated and a passenger car, error in
 *                COMPENSATION_ERRORS (rule 4). With a task and resends < max_resend:
 *                action "resend" and ota_effects_on_status returns true (the engine
 *                re-sends the notice and counts it); else action "none" with the reason.
 *   push         vehicle in the catalog and sold (rule 6: an owner exists; activation is
 *                not required), any trigger: a failure → kind "upgrade_failed"; else
 *                status "succeeded" → "upgrade_succeeded".
 * Rule 5 (keep the error) is the ota_vehicle_upgrade_status row the writer stores; rule 7
 * (status MQ message) is report.c's ota/v1/events/status/{vin}. Words match exactly
 * (case-sensitive). No deduplication here: each event carries vin, task and ts.
 * Broker thread only; decides nothing about execution states.
 */
#include "effects.h"
#include "ota_catalog_json.h"

#include <cjson/cJSON.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_WINDOW_MS (30 * 60 * 1000LL)
#define LOG_SERVICE "ssp-vds-service"
#define OPS_RECIPIENT "ota_ops_assistant"
#define WORK_ORDER_GROUP "ota_upgrade_failure"

static const char *const FAILURE_ERRORS[] = {"download_failed",
                                             "prepare_failed",
                                             "upgrade_failed",
                                             "rollback_failed",
                                             "rollback_succeeded",
                                             "peripheral_failed",
                                             NULL};
static const char *const WORK_ORDER_ERRORS[] = {"upgrade_failed", "rollback_failed",
                                                "rollback_succeeded", "peripheral_failed", NULL};
static const char *const COMPENSATION_ERRORS[] = {"download_failed", "prepare_failed", NULL};

static bool word_in(const char *w, const char *const *set)
{
    for (size_t i = 0; w && set[i]; i++) {
        if (strcmp(w, set[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool str_is(const char *s, const char *word)
{
    return s && strcmp(s, word) == 0;
}

/* w in a normalized "w1,w2" list (config.c). */
static bool word_in_list(const char *w, const char *list)
{
    size_t n = w ? strlen(w) : 0;
    for (const char *s = list; n && s && *s;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (len == n && memcmp(s, w, n) == 0) {
            return true;
        }
        s = comma ? comma + 1 : NULL;
    }
    return false;
}

bool ota_effects_is_failure(const ota_event *ev)
{
    return str_is(ev->status, "failed") || word_in(ev->error, FAILURE_ERRORS);
}

/* ---- publishing ---- */

static void add_str_or_null(cJSON *o, const char *key, const char *val)
{
    if (val) {
        cJSON_AddStringToObject(o, key, val);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

/* The fields every event starts with: vin, task, error (null when absent), ts. */
static cJSON *event_new(const ota_effect_ctx *cx)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    if (cx->ev->id) { /* the status event's: one side effect of a kind per status event */
        cJSON_AddStringToObject(o, "id", cx->ev->id);
    }
    cJSON_AddStringToObject(o, "vin", cx->vin);
    add_str_or_null(o, "task", cx->task_id ? cx->task_id : cx->ev->task);
    add_str_or_null(o, "error", cx->ev->error);
    ota_json_add_i64(o, "ts", cx->ev->ts);
    return o;
}

/* Publishes o (and frees it) on ota/v1/events/{kind}/{vin}. */
static void publish_event(const char *kind, const char *vin, cJSON *o)
{
    (void)ota_effects_publish(kind, vin, o);
}

bool ota_effects_publish(const char *kind, const char *vin, cJSON *o)
{
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!json) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: %s event for %s: out of memory", kind, vin);
        return false;
    }
    char topic[96];
    snprintf(topic, sizeof(topic), "ota/v1/events/%s/%s", kind, vin);
    mosquitto_property *props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
    int rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(json), json, 1, false, props);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&props);
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: %s not published (error %d)", topic, rc);
    }
    free(json);
    return rc == MOSQ_ERR_SUCCESS;
}

/* ---- the rules ---- */

static void ops_alert(const ota_effect_ctx *cx)
{
    cJSON *o = event_new(cx);
    if (o) {
        cJSON_AddStringToObject(o, "status", cx->ev->status);
        cJSON_AddStringToObject(o, "trigger", cx->ev->trigger);
        add_str_or_null(o, "fw", cx->ev->fw);
        cJSON_AddStringToObject(o, "recipient", OPS_RECIPIENT);
    }
    publish_event("ops_alert", cx->vin, o);
}

static void work_order(const ota_effect_ctx *cx)
{
    cJSON *o = event_new(cx);
    if (o) {
        cJSON_AddStringToObject(o, "status", cx->ev->status);
        cJSON_AddStringToObject(o, "trigger", cx->ev->trigger);
        add_str_or_null(o, "fw", cx->ev->fw);
        add_str_or_null(o, "model", cx->vehicle->model);
        add_str_or_null(o, "series", cx->vehicle->series);
        cJSON_AddStringToObject(o, "group", WORK_ORDER_GROUP);
    }
    publish_event("work_order", cx->vin, o);
}

static void log_replay(const ota_effect_ctx *cx)
{
    int64_t to = cx->ev->ts;
    int64_t from = to > LOG_WINDOW_MS ? to - LOG_WINDOW_MS : 0;
    cJSON *o = event_new(cx);
    if (o) {
        cJSON_AddStringToObject(o, "service", LOG_SERVICE);
        ota_json_add_i64(o, "from", from);
        ota_json_add_i64(o, "to", to);
        ota_json_add_i64(o, "window_ms", to - from);
    }
    publish_event("log_replay", cx->vin, o);
}

/* Returns true when the notice is to be re-sent. */
static bool compensation(const ota_effect_ctx *cx)
{
    bool resend = cx->task_id && cx->resends < cx->max_resend;
    cJSON *o = event_new(cx);
    if (o) {
        cJSON_AddStringToObject(o, "action", resend ? "resend" : "none");
        ota_json_add_i64(o, "resend", (int64_t)cx->resends + (resend ? 1 : 0));
        ota_json_add_i64(o, "max_resend", cx->max_resend);
        if (!resend) {
            cJSON_AddStringToObject(o, "reason", cx->task_id ? "resend limit reached" : "no task");
        }
    }
    publish_event("compensation", cx->vin, o);
    return resend;
}

static void push(const ota_effect_ctx *cx, bool failed)
{
    cJSON *o = event_new(cx);
    if (o) {
        cJSON_AddStringToObject(o, "kind", failed ? "upgrade_failed" : "upgrade_succeeded");
        add_str_or_null(o, "fw", cx->ev->fw);
    }
    publish_event("push", cx->vin, o);
}

bool ota_effects_on_status(ota_plugin *p, const ota_effect_ctx *cx)
{
    const ota_event *ev = cx->ev;
    const ota_vehicle *v = cx->vehicle;
    bool failed = ota_effects_is_failure(ev);
    bool resend = false;
    if (failed && !str_is(ev->trigger, "diagnostic")) {
        ops_alert(cx);
    }
    if (v && v->sold && v->activated &&
        (str_is(ev->trigger, "forced") || str_is(ev->trigger, "normal")) &&
        word_in(ev->error, WORK_ORDER_ERRORS)) {
        work_order(cx);
    }
    if (word_in_list(ev->error, p->cfg.log_replay_errors)) {
        log_replay(cx);
    }
    if (v && v->activated && v->passenger && word_in(ev->error, COMPENSATION_ERRORS)) {
        resend = compensation(cx);
    }
    if (v && v->sold && (failed || str_is(ev->status, "succeeded"))) {
        push(cx, failed);
    }
    return resend;
}
