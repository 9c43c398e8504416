/*
 * dedupe.h — the events broker's window of event keys seen (issue 15, docs/events.md
 * "Deduplication on the events broker"), broker-free: plugin/dedupe/ is its broker glue.
 *
 * A key is a 64-bit keyed hash (SipHash-2-4, OpenSSL) of an event's topic and id. The
 * window holds the last `cap` distinct keys: a FIFO ring says which is oldest, an
 * open-addressing hash set (linear probing, load at most 1/2, deletion by backward
 * shift) says whether a key is in it. Both are allocated once: nothing is allocated per
 * message. The window can be saved to a file and read back, with its hash key, so that a
 * restart of the events broker keeps it. Not thread-safe (the broker thread only).
 */
#ifndef OTA_DEDUPE_H
#define OTA_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_DEDUPE_WINDOW_DEFAULT (4u * 1024 * 1024)
#define OTA_DEDUPE_WINDOW_MAX (256u * 1024 * 1024)

typedef struct ota_dedupe ota_dedupe;

/* A window of cap keys (1..OTA_DEDUPE_WINDOW_MAX) with a random hash key; NULL when out
 * of memory, cap out of range, or no random bytes. */
ota_dedupe *ota_dedupe_new(size_t cap);
void ota_dedupe_free(ota_dedupe *d);

/* The key of (topic, id); never 0 (0 marks an empty slot). */
uint64_t ota_dedupe_key(const ota_dedupe *d, const char *topic, size_t topic_len, const char *id,
                        size_t id_len);

/* True when key is in the window (a duplicate); else adds it, evicting the oldest key
 * when the window is full, and returns false. */
bool ota_dedupe_seen(ota_dedupe *d, uint64_t key);

/* How many keys the window holds; how many were evicted since it was made. */
size_t ota_dedupe_count(const ota_dedupe *d);
uint64_t ota_dedupe_evicted(const ota_dedupe *d);
/* Bytes the window allocated (ring and set). */
size_t ota_dedupe_bytes(const ota_dedupe *d);

/* The id of an event payload: the JSON text of its first member when that member is
 * "id" with a string value, e.g. {"id":"LSVTA000000000001:42:0:0",...} (blanks allowed
 * around the tokens). The id is the string as written, escapes not decoded (every
 * publisher of one event writes it the same way). 0 with *id, *len set; -1 when the
 * payload has no such first member. */
int ota_dedupe_payload_id(const char *payload, size_t len, const char **id, size_t *id_len);

/* Writes the window (oldest key first) and its hash key to path, through path.tmp,
 * fsync and rename. 0, or -1 with errno. */
int ota_dedupe_save(const ota_dedupe *d, const char *path);
/* Reads a window saved by ota_dedupe_save into d (made empty first): its hash key and its
 * newest keys, as many as d holds. 1 when read, 0 when there is no file, -1 when the file
 * is unreadable or damaged (d is then left empty with its own hash key). */
int ota_dedupe_load(ota_dedupe *d, const char *path);

#endif
