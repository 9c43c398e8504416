/*
 * task_events.h — task-level events for downstream systems (issue 16, docs/events.md):
 * JSON on ota/v1/events/task/{id}, QoS 1, not retained, published by the broker (client
 * id NULL): created, wave_started, wave_approved, paused, resumed, aborted (with the
 * reason), finished, canceled, members (a continuous task's joiners and leavers).
 * Broker thread only.
 */
#ifndef OTA_TASK_EVENTS_H
#define OTA_TASK_EVENTS_H

#include "tasks.h"

/* Publishes {"task", "event", "at", "state", "wave"? (wave >= 0), "reason"?, "counts":
 * {succeeded, failed, queued, in_flight}}. */
void ota_task_event(const ota_task *task, const char *event, int wave, const char *reason,
                    int64_t at_ms);

#endif
