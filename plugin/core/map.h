/*
 * map.h — the catalog's hash map: fixed-size records with their key inside, stored in
 * chunks that never move, indexed by an open-addressing table of 32-bit record numbers.
 *
 * One map type serves every index of the catalog (vehicles by VIN, packages by id,
 * model/series entries, files by sha256, strategies, VIN bindings, list members) and the
 * string interning table. Keys are bytes (a string without its NUL, or e.g. a uint64_t),
 * read from a record by the map's key function. Record pointers stay valid until that
 * record is removed: growth moves only the table. Single-threaded; no locks.
 *
 * Usage: fill a record on the stack, ota_map_put() copies it in (the key must not be in the
 * map yet: ota_map_get() first); ota_map_remove() takes it out again.
 */
#ifndef OTA_MAP_H
#define OTA_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const void *p;
    size_t n;
} ota_map_key;

/* The key of a record. */
typedef ota_map_key (*ota_map_key_fn)(const void *rec);

#define OTA_POOL_CHUNKS 29 /* chunk c holds 16 << c records: 2^32 records in all */

/* Fixed-size records, allocated in chunks of growing size (16, 16, 32, 64, ... records),
 * addressed by a record number. Freed records are reused first. */
typedef struct {
    size_t size; /* bytes per record (>= 4) */
    uint8_t *chunks[OTA_POOL_CHUNKS];
    uint32_t used;      /* record numbers handed out so far (high-water mark) */
    uint32_t free_head; /* number + 1 of the first free record; 0: none */
    size_t count;       /* live records */
    uint64_t *live;     /* one bit per record number */
    size_t live_words;
} ota_pool;

typedef struct {
    ota_pool pool;
    ota_map_key_fn key;
    uint32_t *slots; /* record number + 1; 0 = empty */
    size_t mask;     /* slot count - 1 (a power of two), 0 before the first put */
} ota_map;

/* The hash the map uses (exposed for tests). */
uint64_t ota_map_hash(const void *p, size_t n);

/* Key helpers for key functions. */
static inline ota_map_key ota_map_key_str(const char *s)
{
    return (ota_map_key){s, strlen(s)};
}

void ota_map_init(ota_map *m, size_t rec_size, ota_map_key_fn key);
/* Calls fini (when not NULL) on each record, then frees everything. */
void ota_map_destroy(ota_map *m, void (*fini)(void *rec));

size_t ota_map_count(const ota_map *m);
/* The record with this key, or NULL. */
void *ota_map_get(const ota_map *m, const void *key, size_t len);
void *ota_map_get_str(const ota_map *m, const char *key);
/* A record's reference: its record number + 1, stable while the record is in the map, so a
 * 32-bit field can stand for a record (the catalog's string ids). 0 when the key is not in
 * the map. ota_map_at gives the record of a reference taken from a record still there. */
uint32_t ota_map_ref(const ota_map *m, const void *key, size_t len);
void *ota_map_at(const ota_map *m, uint32_t ref);
/* Copies rec (m's record size) in and indexes it; its key must not be in the map.
 * Returns the stored record, or NULL when out of memory (nothing changed). */
void *ota_map_put(ota_map *m, const void *rec);
/* Removes a record returned by get/put/next: unindexes it, calls fini (when not NULL) on
 * it, and frees it. */
void ota_map_remove(ota_map *m, void *rec, void (*fini)(void *rec));
/* Iteration in record-number order (not key order): *pos starts at 0; NULL at the end.
 * The map must not change during an iteration. */
void *ota_map_next(const ota_map *m, size_t *pos);
/* Bytes the map has touched (records handed out, table, bitmap): what it costs resident. */
size_t ota_map_bytes(const ota_map *m);

#endif
