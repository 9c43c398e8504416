/*
 * dedupe_plugin.c — mosquitto_ota_dedupe.so, the events broker's plugin (issue 15,
 * docs/events.md "Deduplication on the events broker").
 *
 * The vehicle-facing brokers bridge ota/v1/events/# here; a killed broker replays its spool
 * at restart and publishes those reports' events again, with the same ids. On MESSAGE, an
 * event on ota/v1/events/# whose JSON payload starts with an "id" member is keyed by
 * (topic, id) (plugin/core/dedupe.c); a key already in the window is refused with
 * MOSQ_ERR_ACL_DENIED, which Mosquitto 2.0.11 answers with a PUBACK (handle_publish.c
 * process_bad_message: reason 0x87 for an MQTT 5 sender, a plain PUBACK for the 3.1.1
 * bridge, which drops the message from its queue either way) and delivers to no one.
 * Other topics and payloads without an id pass. Options: plugin_opt_window (keys, default
 * 4194304), plugin_opt_state_file (the window saved at a clean stop, read at start).
 * Counters are logged once a minute when they moved, and at the stop.
 */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>

#include "dedupe.h"
#include "opt_value.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_PREFIX "ota/v1/events/"
#define STATS_EVERY_S 60

typedef struct {
    mosquitto_plugin_id_t *id;
    ota_dedupe *window;
    char *state_file;
    uint64_t seen, dropped, no_id;
    uint64_t logged_seen; /* seen + dropped at the last stats line */
    time_t last_log;
} dedupe_plugin;

/* ---- options ---- */

static int parse_window(const char *v, size_t *cap)
{
    unsigned long long n;
    if (ota_opt_uint(v, 1, OTA_DEDUPE_WINDOW_MAX, &n) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota-dedupe: plugin_opt_window must be 1..%u keys",
                             (unsigned)OTA_DEDUPE_WINDOW_MAX);
        return -1;
    }
    *cap = (size_t)n;
    return 0;
}

static int parse_opts(dedupe_plugin *d, struct mosquitto_opt *opts, int n, size_t *cap)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(opts[i].key, "window") == 0) {
            if (parse_window(opts[i].value, cap) != 0) {
                return -1;
            }
        } else if (strcmp(opts[i].key, "state_file") == 0) {
            free(d->state_file);
            d->state_file = ota_opt_trimmed(opts[i].value);
            if (!d->state_file || !*d->state_file) {
                mosquitto_log_printf(MOSQ_LOG_ERR, "ota-dedupe: plugin_opt_state_file is empty");
                return -1;
            }
        } else {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota-dedupe: unknown option plugin_opt_%s",
                                 opts[i].key);
            return -1;
        }
    }
    return 0;
}

/* ---- counters ---- */

static void log_stats(dedupe_plugin *d, const char *when)
{
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "ota-dedupe%s: %" PRIu64 " events passed, %" PRIu64
                         " duplicates dropped, %" PRIu64 " without id; window %zu keys "
                         "(%" PRIu64 " evicted)",
                         when, d->seen, d->dropped, d->no_id, ota_dedupe_count(d->window),
                         ota_dedupe_evicted(d->window));
    d->logged_seen = d->seen + d->dropped;
    d->last_log = time(NULL);
}

static int on_tick(int event, void *event_data, void *userdata)
{
    (void)event, (void)event_data;
    dedupe_plugin *d = userdata;
    if (d->seen + d->dropped != d->logged_seen && time(NULL) - d->last_log >= STATS_EVERY_S) {
        log_stats(d, "");
    }
    return MOSQ_ERR_SUCCESS;
}

/* ---- messages ---- */

static int on_message(int event, void *event_data, void *userdata)
{
    (void)event;
    const struct mosquitto_evt_message *m = event_data;
    dedupe_plugin *d = userdata;
    const char *id;
    size_t id_len;
    if (!m->topic || strncmp(m->topic, EVENTS_PREFIX, sizeof EVENTS_PREFIX - 1) != 0) {
        return MOSQ_ERR_SUCCESS;
    }
    if (!m->payload || ota_dedupe_payload_id(m->payload, m->payloadlen, &id, &id_len) != 0) {
        d->no_id++;
        return MOSQ_ERR_SUCCESS;
    }
    uint64_t key = ota_dedupe_key(d->window, m->topic, strlen(m->topic), id, id_len);
    if (!ota_dedupe_seen(d->window, key)) {
        d->seen++;
        return MOSQ_ERR_SUCCESS;
    }
    d->dropped++;
    mosquitto_log_printf(MOSQ_LOG_DEBUG, "ota-dedupe: duplicate dropped: %s id %.*s", m->topic,
                         (int)(id_len > 200 ? 200 : id_len), id);
    return MOSQ_ERR_ACL_DENIED; /* acked to the sender, delivered to no one (2.0.11) */
}

/* ---- entry points ---- */

static void load_state(dedupe_plugin *d)
{
    int rc = ota_dedupe_load(d->window, d->state_file);
    if (rc < 0) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota-dedupe: %s unreadable or damaged (%s): starting with an "
                             "empty window",
                             d->state_file, strerror(errno));
    } else if (rc > 0) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota-dedupe: window of %zu keys read from %s",
                             ota_dedupe_count(d->window), d->state_file);
    }
}

static void plugin_free(dedupe_plugin *d)
{
    ota_dedupe_free(d->window);
    free(d->state_file);
    free(d);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    (void)supported_version_count, (void)supported_versions;
    return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
    dedupe_plugin *d = calloc(1, sizeof *d);
    size_t cap = OTA_DEDUPE_WINDOW_DEFAULT;
    if (!d || parse_opts(d, opts, opt_count, &cap) != 0 || !(d->window = ota_dedupe_new(cap))) {
        if (d && d->window == NULL) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota-dedupe: cannot make a window of %zu keys", cap);
        }
        if (d) {
            plugin_free(d);
        }
        return MOSQ_ERR_UNKNOWN;
    }
    d->id = identifier;
    d->last_log = time(NULL);
    if (d->state_file) {
        load_state(d);
    }
    int rc = mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, d);
    rc = rc ? rc : mosquitto_callback_register(identifier, MOSQ_EVT_TICK, on_tick, NULL, d);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_callback_unregister(identifier, MOSQ_EVT_MESSAGE, on_message, NULL);
        plugin_free(d);
        return rc;
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota-dedupe: window of %zu keys (%zu MB)", cap,
                         ota_dedupe_bytes(d->window) >> 20);
    *userdata = d;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
    (void)opts, (void)opt_count;
    dedupe_plugin *d = userdata;
    if (!d) {
        return MOSQ_ERR_SUCCESS;
    }
    mosquitto_callback_unregister(d->id, MOSQ_EVT_MESSAGE, on_message, NULL);
    mosquitto_callback_unregister(d->id, MOSQ_EVT_TICK, on_tick, NULL);
    log_stats(d, " at stop");
    if (d->state_file && ota_dedupe_save(d->window, d->state_file) != 0) {
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota-dedupe: window not saved to %s: %s",
                             d->state_file, strerror(errno));
    } else if (d->state_file) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota-dedupe: window of %zu keys saved to %s",
                             ota_dedupe_count(d->window), d->state_file);
    }
    plugin_free(d);
    return MOSQ_ERR_SUCCESS;
}
