/*
 * batch.c — the pacing of batched writes shared by shadows and the task engine, and the
 * plugin's monotonic clock (see batch.h).
 */
#include "batch.h"

#include <mosquitto_broker.h>
#include <mosquitto.h>
#include <time.h>

int64_t ota_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool ota_batch_due(const ota_batcher *b, size_t pending, int64_t now)
{
    return pending > 0 && !b->in_flight && now >= b->retry_after &&
           (now - b->last >= OTA_BATCH_MS || pending >= OTA_BATCH_MAX);
}

void ota_batch_started(ota_batcher *b, int64_t now)
{
    b->in_flight = true;
    b->last = now;
}

void ota_batch_later(ota_batcher *b, int64_t now)
{
    b->retry_after = now + OTA_BATCH_RETRY_MS;
}

void ota_batch_ended(ota_batcher *b, int rc, const char *what, size_t n, const char *err)
{
    b->in_flight = false;
    if (rc != 0) {
        if (!b->failing) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: %zu %s not stored (%s); retrying", n, what,
                                 err);
        }
        b->failing = true;
        ota_batch_later(b, ota_mono_ms());
    } else if (b->failing) {
        b->failing = false;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: %s stored again", what);
    }
}
