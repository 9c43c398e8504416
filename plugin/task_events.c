/*
 * task_events.c — publishes task-level events on ota/v1/events/task/{id} (task_events.h).
 */
#include "task_events.h"
#include "effects.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *event_json(const ota_task *task, const char *event, int wave, const char *reason,
                         int64_t at_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *c = cJSON_CreateObject();
    if (!o || !c || !cJSON_AddItemToObject(o, "counts", c)) {
        cJSON_Delete(o);
        cJSON_Delete(c);
        return NULL;
    }
    cJSON_AddStringToObject(o, "task", task->rec.id);
    cJSON_AddStringToObject(o, "event", event);
    ota_json_add_i64(o, "at", at_ms);
    cJSON_AddStringToObject(o, "state", ota_task_state_name(task->state));
    if (wave >= 0) {
        cJSON_AddNumberToObject(o, "wave", wave);
    }
    if (reason) {
        cJSON_AddStringToObject(o, "reason", reason);
    }
    size_t n[OTA_EXEC_STATE_COUNT]; /* several brokers on one store: every broker's */
    ota_task_seen(task, n);
    size_t flight = n[OTA_EXEC_NOTIFIED] + n[OTA_EXEC_DOWNLOADING] + n[OTA_EXEC_INSTALLING];
    cJSON_AddNumberToObject(c, "queued", (double)n[OTA_EXEC_QUEUED]);
    cJSON_AddNumberToObject(c, "in_flight", (double)flight);
    cJSON_AddNumberToObject(c, "succeeded", (double)n[OTA_EXEC_SUCCEEDED]);
    cJSON_AddNumberToObject(c, "failed", (double)n[OTA_EXEC_FAILED]);
    return o;
}

void ota_task_event(const ota_task *task, const char *event, int wave, const char *reason,
                    int64_t at_ms)
{
    /* ota/v1/events/task/{id}: the events' one publisher (effects.c) */
    (void)ota_effects_publish("task", task->rec.id, event_json(task, event, wave, reason, at_ms));
}
