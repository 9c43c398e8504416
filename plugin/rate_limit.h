/*
 * rate_limit.h — per-vehicle request rate limiting (issue 8: a fleet is a hostile network).
 *
 * Every request a vehicle publishes (report, shadow/update, shadow/get, pkg/get,
 * file/get) takes one token from its VIN's bucket. A bucket holds at most `burst` tokens
 * and refills at `rate` tokens per second, so a vehicle may send `burst` requests at once
 * and `rate` per second sustained. A request with no token left is refused
 * (E_RATE_LIMITED); a vehicle that keeps flooding — `kick_after` refusals within one
 * OTA_RATE_WINDOW_MS window — is disconnected (the router queues the kick, TICK performs
 * it: kicking a client from inside its own PUBLISH callback is unsafe in 2.0.11). Buckets
 * are per VIN, not per connection, so reconnecting does not refill them; one vehicle's
 * bucket never touches another's.
 *
 * Pure bookkeeping on the broker thread: no broker calls, no locks, O(1) per request
 * (a hash lookup). Times are passed in (monotonic milliseconds) so tests can drive them.
 */
#ifndef OTA_LIMITS_H
#define OTA_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_RATE_WINDOW_MS 10000   /* flooding is judged over windows of 10 s */
#define OTA_RATE_REPLY_GAP_MS 1000 /* at most one E_RATE_LIMITED reply per VIN per second */
#define OTA_RATE_DEFAULT 20        /* requests per second per vehicle */
#define OTA_RATE_BURST_DEFAULT 200 /* requests at once */
#define OTA_RATE_KICK_DEFAULT 200  /* refusals within a window that disconnect */
#define OTA_REQUEST_MAX_PAYLOAD_DEFAULT 4096 /* bytes of a pkg/get or file/get */
#define OTA_TASK_VINS_DEFAULT 1000000 /* VINs of one createTask (a target; a list: 100,000) */

typedef struct {
    unsigned rate;       /* tokens per second; 0: no rate limit at all */
    unsigned burst;      /* bucket size, >= 1 */
    unsigned kick_after; /* refusals per window that disconnect; 0: never disconnect */
} ota_rate_config;

typedef enum {
    OTA_RATE_OK = 0,  /* serve the request */
    OTA_RATE_REFUSED, /* refuse it */
    OTA_RATE_KICK,    /* refuse it and disconnect the vehicle: it keeps flooding */
} ota_rate_verdict;

typedef struct ota_limits ota_limits;

ota_limits *ota_limits_new(const ota_rate_config *cfg);
void ota_limits_free(ota_limits *l);

/* Takes a token for one request of vin at now_ms (monotonic). *reply (may be NULL) is set
 * true when a refusal should be answered (the first in OTA_RATE_REPLY_GAP_MS). */
ota_rate_verdict ota_limits_take(ota_limits *l, const char *vin, int64_t now_ms, bool *reply);

/* A publish of vin that the ACL refused (a topic outside its own, e.g. another VIN's) at
 * now_ms. It costs a token like a request, so a vehicle that keeps doing it is refused and
 * kicked like any flooder (the verdict). *reply is set true for at most one answer per
 * OTA_RATE_REPLY_GAP_MS. *log_n is the number of such publishes to report in one log line
 * now, 0 to stay quiet: the first is logged at once, the rest as one summary line per
 * OTA_RATE_WINDOW_MS. Works with rate 0 too (then never refused). */
ota_rate_verdict ota_limits_denied(ota_limits *l, const char *vin, int64_t now_ms, bool *reply,
                                   uint32_t *log_n);

/* Kicks to perform: ota_limits_queue_kick copies client_id; ota_limits_pop_kick returns the
 * oldest (malloc'd, the caller frees) or NULL. At most OTA_RATE_KICKS_MAX wait; more are
 * dropped (their vehicles are refused anyway and queued again on the next window). */
#define OTA_RATE_KICKS_MAX 1024
void ota_limits_queue_kick(ota_limits *l, const char *client_id); /* no repeat of the last */
char *ota_limits_pop_kick(ota_limits *l);

/* Buckets held (one per VIN seen). */
size_t ota_limits_vehicles(const ota_limits *l);

#endif
