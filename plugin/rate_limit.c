/*
 * rate_limit.c — token buckets per VIN and the queue of vehicles to disconnect (rate_limit.h).
 *
 * A bucket counts thousandths of a token so that integer arithmetic refills it exactly:
 * `rate` tokens per second are `rate` thousandths per millisecond. Refusals are counted in
 * fixed windows of OTA_RATE_WINDOW_MS; the window restarts at the first refusal after it
 * ends. Kicks wait in a small ring of client ids until TICK performs them. Publishes the
 * ACL refused have their own reply and log-line gates in the same bucket.
 */
#include "rate_limit.h"
#include "map.h"
#include "ota_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    int64_t milli_tokens;
    int64_t last_ms;
    int64_t window_ms;         /* start of the current refusal window */
    uint32_t refused;          /* refusals in that window */
    int64_t replied_ms;        /* last refusal answered; INT64_MIN: never */
    int64_t denied_replied_ms; /* last refused publish answered; INT64_MIN: never */
    int64_t denied_logged_ms;  /* last log line about refused publishes; INT64_MIN: never */
    uint32_t denied_unlogged;  /* refused publishes since that line */
} bucket;

struct ota_limits {
    ota_rate_config cfg;
    ota_map buckets;
    char *kicks[OTA_RATE_KICKS_MAX];
    size_t kick_head, kick_count;
};

static ota_map_key bucket_key(const void *rec)
{
    return ota_map_key_str(((const bucket *)rec)->vin);
}

ota_limits *ota_limits_new(const ota_rate_config *cfg)
{
    ota_limits *l = calloc(1, sizeof(*l));
    if (!l) {
        return NULL;
    }
    l->cfg = *cfg;
    if (l->cfg.burst == 0) {
        l->cfg.burst = 1;
    }
    ota_map_init(&l->buckets, sizeof(bucket), bucket_key);
    return l;
}

void ota_limits_free(ota_limits *l)
{
    if (!l) {
        return;
    }
    char *id;
    while ((id = ota_limits_pop_kick(l)) != NULL) {
        free(id);
    }
    ota_map_destroy(&l->buckets, NULL);
    free(l);
}

static bucket *bucket_of(ota_limits *l, const char *vin, int64_t now_ms)
{
    bucket *b = ota_map_get_str(&l->buckets, vin);
    if (b || strlen(vin) > OTA_VIN_LEN) {
        return b;
    }
    bucket rec = {.milli_tokens = (int64_t)l->cfg.burst * 1000,
                  .last_ms = now_ms,
                  .window_ms = now_ms,
                  .replied_ms = INT64_MIN,
                  .denied_replied_ms = INT64_MIN,
                  .denied_logged_ms = INT64_MIN};
    snprintf(rec.vin, sizeof(rec.vin), "%s", vin);
    return ota_map_put(&l->buckets, &rec);
}

static void refill(const ota_rate_config *c, bucket *b, int64_t now_ms)
{
    int64_t full = (int64_t)c->burst * 1000;
    int64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
    b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
    /* elapsed * rate could overflow after years idle: cap elapsed at a full refill. */
    int64_t cap = full / (c->rate ? c->rate : 1) + 1;
    b->milli_tokens += (elapsed < cap ? elapsed : cap) * (int64_t)c->rate;
    if (b->milli_tokens > full) {
        b->milli_tokens = full;
    }
}

static ota_rate_verdict refuse(const ota_rate_config *c, bucket *b, int64_t now_ms, bool *reply)
{
    if (now_ms - b->window_ms >= OTA_RATE_WINDOW_MS) {
        b->window_ms = now_ms;
        b->refused = 0;
    }
    b->refused++;
    if (reply && (b->replied_ms == INT64_MIN || now_ms - b->replied_ms >= OTA_RATE_REPLY_GAP_MS)) {
        *reply = true;
        b->replied_ms = now_ms;
    }
    if (c->kick_after && b->refused >= c->kick_after) {
        b->refused = 0; /* one kick per window of flooding */
        b->window_ms = now_ms;
        return OTA_RATE_KICK;
    }
    return OTA_RATE_REFUSED;
}

ota_rate_verdict ota_limits_take(ota_limits *l, const char *vin, int64_t now_ms, bool *reply)
{
    if (reply) {
        *reply = false;
    }
    if (l->cfg.rate == 0) {
        return OTA_RATE_OK;
    }
    bucket *b = bucket_of(l, vin, now_ms);
    if (!b) {
        return OTA_RATE_OK; /* out of memory: do not punish the vehicle for it */
    }
    refill(&l->cfg, b, now_ms);
    if (b->milli_tokens >= 1000) {
        b->milli_tokens -= 1000;
        return OTA_RATE_OK;
    }
    return refuse(&l->cfg, b, now_ms, reply);
}

/* True when at least gap_ms passed since *last_ms (INT64_MIN: never); then *last_ms = now. */
static bool gate(int64_t *last_ms, int64_t now_ms, int64_t gap_ms)
{
    if (*last_ms != INT64_MIN && now_ms - *last_ms < gap_ms) {
        return false;
    }
    *last_ms = now_ms;
    return true;
}

ota_rate_verdict ota_limits_denied(ota_limits *l, const char *vin, int64_t now_ms, bool *reply,
                                   uint32_t *log_n)
{
    *reply = false;
    *log_n = 0;
    bucket *b = bucket_of(l, vin, now_ms);
    if (!b) {
        return OTA_RATE_OK; /* out of memory: refused anyway, just not answered */
    }
    *reply = gate(&b->denied_replied_ms, now_ms, OTA_RATE_REPLY_GAP_MS);
    b->denied_unlogged++;
    if (gate(&b->denied_logged_ms, now_ms, OTA_RATE_WINDOW_MS)) {
        *log_n = b->denied_unlogged;
        b->denied_unlogged = 0;
    }
    if (l->cfg.rate == 0) {
        return OTA_RATE_OK;
    }
    refill(&l->cfg, b, now_ms);
    if (b->milli_tokens >= 1000) {
        b->milli_tokens -= 1000;
        return OTA_RATE_OK;
    }
    return refuse(&l->cfg, b, now_ms, NULL);
}

void ota_limits_queue_kick(ota_limits *l, const char *client_id)
{
    if (!client_id || l->kick_count == OTA_RATE_KICKS_MAX) {
        return;
    }
    if (l->kick_count > 0 &&
        strcmp(l->kicks[(l->kick_head + l->kick_count - 1) % OTA_RATE_KICKS_MAX], client_id) == 0) {
        return; /* already waiting: a flood between two TICKs queues it once */
    }
    char *id = strdup(client_id);
    if (id) {
        l->kicks[(l->kick_head + l->kick_count) % OTA_RATE_KICKS_MAX] = id;
        l->kick_count++;
    }
}

char *ota_limits_pop_kick(ota_limits *l)
{
    if (l->kick_count == 0) {
        return NULL;
    }
    char *id = l->kicks[l->kick_head];
    l->kick_head = (l->kick_head + 1) % OTA_RATE_KICKS_MAX;
    l->kick_count--;
    return id;
}

size_t ota_limits_vehicles(const ota_limits *l)
{
    return ota_map_count(&l->buckets);
}
