/*
 * ota_store.h — the one interface to where mosquitto-ota keeps its data.
 *
 * Two backends implement it: SQLite (embedded default, `sqlite:PATH`) and MongoDB
 * (`mongodb://...`, a later issue). The interface speaks in domain terms — report
 * events, latest status — never in SQL or BSON, so callers do not know which backend
 * they talk to. A store handle is used by one thread at a time: in the plugin that is
 * the writer thread; tools and tests may open their own handle on the same database.
 *
 * Report events are unique by (vin, seq, index): putting an event that is already
 * stored is not an error, it is counted as a duplicate. A batch is atomic: on error
 * nothing of it is stored and the caller may retry the whole batch.
 *
 * Kinds of report event and where each backend keeps them (names from seed 000):
 *   download_progress -> ota_vehicle_download_progress
 *   upgrade_progress  -> ota_vehicle_upgrade_progress
 *   upgrade_status    -> ota_vehicle_upgrade_status
 *   command           -> ota_vehicle_upgrade_command
 *   eeprom_clear      -> ota_vehicle_eeprom_clear
 */
#ifndef OTA_STORE_H
#define OTA_STORE_H

#include "ota_codec.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ota_store ota_store;

/* A report event with the context the store keeps beside it. */
typedef struct {
    const char *vin;
    uint64_t seq;        /* the report's seq; (vin, seq, ev->index) is the key */
    int64_t received_ms; /* when the broker received the report */
    const ota_event *ev;
} ota_store_event;

typedef struct {
    size_t inserted;
    size_t duplicates;
} ota_store_put_result;

/* Opens the store named by uri: "sqlite:PATH" (or a bare path) for now. Creates the
 * schema if needed. Returns NULL and an error text in err on failure. */
ota_store *ota_store_open(const char *uri, char *err, size_t errlen);
void ota_store_close(ota_store *s);
/* "sqlite" or "mongo". */
const char *ota_store_backend(const ota_store *s);

/* Stores a batch of events atomically; duplicates (same vin, seq, index) are skipped
 * and counted. Returns 0, or -1 with err set (nothing stored). */
int ota_store_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                         ota_store_put_result *res, char *err, size_t errlen);

/* The newest upgrade_status event of a VIN (highest seq, then index).
 * Returns 1 and calls fn once, 0 if the VIN has none, -1 on error. */
typedef void (*ota_store_event_fn)(void *ctx, const ota_store_event *ev);
int ota_store_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx);

/* Number of stored events of a type, for one VIN or (vin NULL) for all.
 * Returns 0 and sets *count, or -1. */
int ota_store_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count);

/* Stored events of a VIN, newest first (seq desc, index desc), of one type or (type 0) of
 * every type, at most limit of them. fn sees each one; its pointers are valid only during
 * the call. Returns the number of events seen, or -1. */
int ota_store_history(ota_store *s, const char *vin, ota_event_type type, size_t limit,
                      ota_store_event_fn fn, void *ctx);

#endif
