/*
 * standby.h — start without the database (issue 15): the local snapshot of a broker on a
 * shared store, <spool_dir>/snapshot.db, refreshed by the writer, and the start from it
 * when the store is unreachable (docs/mongodb.md "Start without the database").
 */
#ifndef OTA_STANDBY_H
#define OTA_STANDBY_H

#include "ota_plugin.h"

#include <cjson/cJSON.h>

/* Start-up: opens the store for the loaders. On a shared store that cannot be reached and
 * a snapshot on disk, the snapshot (*from_snapshot set). NULL (err) with neither. */
ota_store *ota_standby_open(ota_plugin *p, bool *from_snapshot, char *err, size_t errlen);
/* After the load: the handle the writer takes. The store itself, or, after a start from
 * the snapshot, closes it and returns a handle that opens the store on first use. */
ota_store *ota_standby_writer_store(ota_plugin *p, ota_store *loaded, bool from_snapshot, char *err,
                                    size_t errlen);
/* The snapshot's path into buf (empty on SQLite: no snapshot kept). */
void ota_standby_path(const ota_plugin *p, char *buf, size_t len);
/* TICK: starts the snapshot thread (once): a refresh every 5 s, a whole save every 60 s. */
void ota_standby_tick(ota_plugin *p);
/* getStats: {from_snapshot, refreshes, saves, errors, last_refresh_ms}. */
void ota_standby_stats(const ota_plugin *p, cJSON *data);
void ota_standby_free(ota_plugin *p);

#endif
