/*
 * event_json.c — JSON events for downstream subscribers (SPEC §4), built with cJSON.
 *
 * Integers are added as raw JSON number text rather than cJSON doubles (ota_json_add_u64,
 * ota_json_add_i64), so sequence numbers and times are printed exactly even beyond 2^53.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ota_catalog_json.h"
#include "ota_codec.h"

/* A string member, or null when a required value is missing (not an out-of-memory). */
static bool add_str(cJSON *obj, const char *key, const char *s)
{
    if (s == NULL)
        return cJSON_AddNullToObject(obj, key) != NULL;
    return cJSON_AddStringToObject(obj, key, s) != NULL;
}

/* A string member only when the value is present. */
static bool add_opt_str(cJSON *obj, const char *key, const char *s)
{
    return s == NULL || cJSON_AddStringToObject(obj, key, s) != NULL;
}

static bool fill_status(cJSON *o, const char *vin, uint64_t seq, const ota_event *ev,
                        int64_t received_ms)
{
    return add_str(o, "vin", vin) && ota_json_add_u64(o, "seq", seq) &&
           ota_json_add_u64(o, "index", ev->index) && add_str(o, "task", ev->task) &&
           ota_json_add_i64(o, "ts", ev->ts) && add_str(o, "status", ev->status) &&
           add_opt_str(o, "error", ev->error) && add_str(o, "trigger", ev->trigger) &&
           add_opt_str(o, "fw", ev->fw) && ota_json_add_i64(o, "received_at", received_ms);
}

static bool fill_consent(cJSON *o, const char *vin, uint64_t seq, const ota_event *ev,
                         int64_t received_ms)
{
    return add_str(o, "vin", vin) && ota_json_add_u64(o, "seq", seq) &&
           ota_json_add_u64(o, "index", ev->index) && add_str(o, "task", ev->task) &&
           ota_json_add_i64(o, "ts", ev->ts) && add_str(o, "answer", ev->answer) &&
           (ev->until < 0 || ota_json_add_i64(o, "until", ev->until)) &&
           add_opt_str(o, "error", ev->error) && ota_json_add_i64(o, "received_at", received_ms);
}

char *ota_codec_status_event_json(const char *vin, uint64_t seq, const ota_event *ev,
                                  int64_t received_ms, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    char *json = NULL;
    bool consent = ev->type == OTA_EV_CONSENT;
    if (consent ? fill_consent(o, vin, seq, ev, received_ms)
                : fill_status(o, vin, seq, ev, received_ms))
        json = cJSON_PrintUnformatted(o); /* malloc()ed: cJSON's default hooks */
    cJSON_Delete(o);
    if (json != NULL && len != NULL)
        *len = strlen(json);
    return json;
}
