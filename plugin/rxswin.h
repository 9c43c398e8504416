/*
 * rxswin.h — the vehicle's RXSWINs after a committed success (issue 17, rxswin.c).
 */
#ifndef OTA_RXSWIN_H
#define OTA_RXSWIN_H

#include "ota_plugin.h"
#include "tasks.h"

#include <cjson/cJSON.h>

typedef struct ota_rxswin ota_rxswin;

ota_rxswin *ota_rxswin_new(void);
void ota_rxswin_free(ota_rxswin *r);
/* An execution of task ended succeeded: queue the vehicle's RXSWIN update when the task's
 * package declares RXSWINs and no record of it exists yet. */
void ota_rxswin_on_success(ota_plugin *p, const ota_task *task, const char *vin);
/* TICK: puts the queued updates on the operator queue (one command at a time). */
void ota_rxswin_tick(ota_plugin *p);
/* Start: queues succeeded executions of active tasks that have no record (a change not
 * stored before a stop or crash). Returns how many. */
size_t ota_rxswin_reconcile(ota_plugin *p);
/* getStats' "rxswin": committed, queued, store_failures, records. */
void ota_rxswin_stats(const ota_plugin *p, cJSON *data);

#endif
