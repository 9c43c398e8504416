/*
 * batch.h — the pace at which state that changes at report rate (device shadows,
 * executions and notices) is handed to the writer: one job in flight at a time, at most
 * every OTA_BATCH_MS unless OTA_BATCH_MAX changes are waiting, and not before
 * OTA_BATCH_RETRY_MS after a job failed (the changes are then marked dirty again by their
 * owner). A fleet reporting at full rate thus costs a few store transactions per second.
 * Broker thread only; shadow.c and the task engine (engine_flush.c) each keep one
 * ota_batcher. Also the plugin's one monotonic clock, ota_mono_ms (batches, rate limits, pkg
 * and engine deadlines).
 */
#ifndef OTA_BATCH_H
#define OTA_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_BATCH_MS 50
#define OTA_BATCH_MAX 4096
#define OTA_BATCH_RETRY_MS 1000

typedef struct {
    bool in_flight;      /* a job is with the writer */
    bool failing;        /* the last job failed (logged once) */
    int64_t last;        /* monotonic ms of the last job */
    int64_t retry_after; /* monotonic ms */
} ota_batcher;

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t ota_mono_ms(void);

/* True when a job should be built now for `pending` changes waiting. */
bool ota_batch_due(const ota_batcher *b, size_t pending, int64_t now);
/* The job was handed to the writer. */
void ota_batch_started(ota_batcher *b, int64_t now);
/* No job could be built or handed over (out of memory, writer stopping): try later. */
void ota_batch_later(ota_batcher *b, int64_t now);
/* The job ended (from its done callback). On failure, logs "n <what> not stored (err);
 * retrying" once until a job succeeds again, which is logged too. */
void ota_batch_ended(ota_batcher *b, int rc, const char *what, size_t n, const char *err);

#endif
