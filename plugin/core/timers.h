/*
 * timers.h — an ordered set of timers keyed by due time (issue 16): a binary min-heap of
 * (due, id) with an index from id to heap position, so that scheduling, rescheduling and
 * cancelling one timer are O(log n) and the next due one is found in O(1).
 *
 * Made for the task engine, which today scans every execution of every task each 100 ms
 * to find timeouts: with the timers it asks only for what is due (ota_timers_pop_due) and
 * sleeps until ota_timers_next_due. Ids are the caller's 64-bit names (the engine's plan:
 * kind << 56 | task number << 32 | execution index, docs/task-engine.md "Timers"); one
 * id is scheduled at most once (setting it again moves it). Timers due at the same
 * instant come out in id order, so runs are reproducible.
 *
 * Memory: 16 bytes per heap slot plus ~16 bytes per id in the index (catalog map, map.h),
 * ~40 MB for 1,000,000 timers. Broker-free, single-threaded, plain malloc.
 */
#ifndef OTA_TIMERS_H
#define OTA_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ota_timers ota_timers;

ota_timers *ota_timers_new(void);
void ota_timers_free(ota_timers *t);

/* Schedules timer id at due_ms, or moves it there when it is scheduled already.
 * 0, or -1 out of memory (nothing changed). */
int ota_timers_set(ota_timers *t, uint64_t id, int64_t due_ms);
/* 1 cancelled, 0 it was not scheduled. */
int ota_timers_cancel(ota_timers *t, uint64_t id);
/* True when id is scheduled; *due_ms (may be NULL) its time. */
bool ota_timers_get(const ota_timers *t, uint64_t id, int64_t *due_ms);
size_t ota_timers_count(const ota_timers *t);
/* The earliest due time, INT64_MAX when there is no timer. */
int64_t ota_timers_next_due(const ota_timers *t);
/* Takes the earliest timer due at or before now_ms out: 1 with *id and *due_ms (either
 * may be NULL), 0 when none is due. Call until 0 to run everything that is due. */
int ota_timers_pop_due(ota_timers *t, int64_t now_ms, uint64_t *id, int64_t *due_ms);

#endif
