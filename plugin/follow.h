/*
 * follow.h — the change log's follower (issue 15): every broker applies the catalog, list,
 * strategy, rule and task changes any broker stored, within about 200 ms (docs/mongodb.md,
 * "Change propagation").
 */
#ifndef OTA_FOLLOW_H
#define OTA_FOLLOW_H

#include "ota_plugin.h"

#include <cjson/cJSON.h>

/* Start-up, before the load: on a store other brokers may share (every backend but
 * SQLite) p->follow follows the log from its last seq now (entries stored during the load
 * are applied again: harmless, each carries the full new state); after a start from the
 * local snapshot, from the snapshot's position. 0, or -1 with err. */
int ota_follow_start(ota_plugin *p, ota_store *store, bool from_snapshot, char *err, size_t errlen);
void ota_follow_free(ota_follow *f);
/* TICK: submits the next read (at most one in flight, one per 200 ms). */
void ota_follow_tick(ota_plugin *p);
/* getStats: {position, last, lag, lag_ms, applied, skipped, errors, behind}. */
void ota_follow_stats(const ota_plugin *p, cJSON *data);

#endif
