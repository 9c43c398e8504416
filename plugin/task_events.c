/*
 * task_events.c — publishes task-level events on ota/v1/events/task/{id} (task_events.h),
 * each with its id for the events broker's deduplication (plugin/dedupe).
 */
#include "task_events.h"
#include "effects.h"
#include "ota_catalog_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True for the events a task has once in its life: created and its end. */
static bool once_per_task(const char *event)
{
    static const char *const once[] = {"created", "finished", "aborted", "canceled"};
    for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
        if (strcmp(event, once[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The event's id (docs/events.md "Event ids"): "{task}:{event}" for the events a task has
 * once (so an end told twice, by two brokers, is one event downstream), else
 * "{task}:{event}:{wave}:{at}" (a task may be paused again; a wave starts once). */
static void task_event_id(char *buf, size_t len, const ota_task *task, const char *event, int wave,
                          int64_t at_ms)
{
    if (once_per_task(event)) {
        snprintf(buf, len, "%s:%s", task->rec.id, event);
    } else {
        snprintf(buf, len, "%s:%s:%d:%" PRId64, task->rec.id, event, wave, at_ms);
    }
}

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
    char id[OTA_ID_MAX + 64];
    task_event_id(id, sizeof id, task, event, wave, at_ms);
    cJSON_AddStringToObject(o, "id", id);
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
