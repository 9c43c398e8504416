/*
 * task_window.c — a task's maintenance window and end action (task_window.h).
 */
#include "task_window.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const end_names[] = {"cancel_pending", "cancel_all"};

int ota_task_window_parse(const cJSON *obj, const char *path, ota_task_window **out, char *err,
                          size_t errlen)
{
    static const char *const fields[] = {"cron", "duration_min", "tz", NULL};
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "maintenance_window");
    *out = NULL;
    if (!j) {
        return 0;
    }
    char p[64];
    snprintf(p, sizeof(p), "%s%smaintenance_window", path ? path : "", path && *path ? "." : "");
    const cJSON *cron = cJSON_GetObjectItemCaseSensitive(j, "cron");
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(j, "tz");
    uint64_t dur = 0;
    if (ota_json_check_fields(j, p, fields, err, errlen) != 0 ||
        ota_json_get_uint(j, p, "duration_min", true, 1, OTA_WINDOW_DURATION_MAX, &dur, err,
                          errlen) != 0) {
        return -1;
    }
    if (!cJSON_IsString(cron) || strlen(cron->valuestring) >= 64) {
        return ota_json_errf(err, errlen, p, "cron", "expected \"MIN HOURS * * WEEKDAYS\"");
    }
    if (tz && (!cJSON_IsString(tz) || strlen(tz->valuestring) >= 256)) {
        return ota_json_errf(err, errlen, p, "tz", "expected a zone name");
    }
    ota_task_window *w = calloc(1, sizeof(*w));
    if (!w) {
        return ota_json_errf(err, errlen, p, NULL, "out of memory");
    }
    char e2[200];
    snprintf(w->cron, sizeof(w->cron), "%s", cron->valuestring);
    snprintf(w->tz_name, sizeof(w->tz_name), "%s", tz ? tz->valuestring : "UTC");
    w->w.duration_min = (uint32_t)dur;
    if (ota_window_parse(w->cron, &w->w, e2, sizeof(e2)) != 0) {
        ota_task_window_free(w);
        return ota_json_errf(err, errlen, p, "cron", "%s", e2);
    }
    w->w.tz = ota_tz_load(w->tz_name, e2, sizeof(e2));
    ota_window_state st;
    if (!w->w.tz) {
        ota_task_window_free(w);
        return ota_json_errf(err, errlen, p, "tz", "%s", e2);
    }
    if (ota_window_at(&w->w, 0, &st) != 0) {
        ota_task_window_free(w);
        return ota_json_errf(err, errlen, p, "cron", "never opens");
    }
    w->next_ms = INT64_MIN; /* computed at first use */
    *out = w;
    return 0;
}

int ota_task_end_action_parse(const cJSON *obj, const char *path, ota_end_action *out, char *err,
                              size_t errlen)
{
    int a = OTA_END_CANCEL_PENDING;
    if (ota_json_get_enum(obj, path, "end_action", false, end_names, 2, &a, err, errlen) != 0) {
        return -1;
    }
    *out = (ota_end_action)a;
    return 0;
}

const char *ota_task_end_action_name(ota_end_action a)
{
    return end_names[a == OTA_END_CANCEL_ALL ? 1 : 0];
}

cJSON *ota_task_window_json(const ota_task_window *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cron", w->cron);
    cJSON_AddNumberToObject(o, "duration_min", w->w.duration_min);
    cJSON_AddStringToObject(o, "tz", w->tz_name);
    return o;
}

void ota_task_window_free(ota_task_window *w)
{
    if (w) {
        ota_tz_free((ota_tz *)w->w.tz);
        free(w);
    }
}

bool ota_task_window_is_open(ota_task_window *w, int64_t now)
{
    if (w->next_ms != INT64_MIN && now < w->next_ms) {
        return w->open;
    }
    ota_window_state st;
    if (ota_window_at(&w->w, now, &st) != 0) {
        w->open = false;
        w->next_ms = INT64_MAX;
        return false;
    }
    w->open = st.open;
    w->next_ms = st.open ? st.close_ms : st.open_ms;
    return w->open;
}
