/*
 * task_window.h — a task's maintenance window and end action (issue 16): a recurring
 * window (window.h: cron-like "MIN HOURS * * WEEKDAYS", a duration, a time zone) outside
 * which the engine sends no notice (a vehicle notified inside may finish), and what the
 * task's end does: "cancel_pending" (queued executions expire; those notified finish —
 * the behaviour before issue 16) or "cancel_all" (those in flight are canceled too).
 * Kept in the task document ("maintenance_window", "end_action"). Broker-free.
 */
#ifndef OTA_TASK_WINDOW_H
#define OTA_TASK_WINDOW_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window.h"

typedef enum { OTA_END_CANCEL_PENDING = 0, OTA_END_CANCEL_ALL } ota_end_action;

typedef struct {
    char cron[64];
    char tz_name[256];
    ota_window w; /* w.tz owned here */
    /* runtime: the state cached until next_ms */
    bool open;
    int64_t next_ms;
} ota_task_window;

/* obj's "maintenance_window": {"cron", "duration_min", "tz"? (default "UTC")} under path.
 * 0 (*out NULL when absent), or -1 with err. Loads the zone (tz.h). */
int ota_task_window_parse(const cJSON *obj, const char *path, ota_task_window **out, char *err,
                          size_t errlen);
/* obj's "end_action" (absent: cancel_pending). 0, or -1 with err. */
int ota_task_end_action_parse(const cJSON *obj, const char *path, ota_end_action *out, char *err,
                              size_t errlen);
const char *ota_task_end_action_name(ota_end_action a);
cJSON *ota_task_window_json(const ota_task_window *w);
void ota_task_window_free(ota_task_window *w);
/* Whether the window is open at now (recomputed only when now passes the cached edge). */
bool ota_task_window_is_open(ota_task_window *w, int64_t now);

#endif
