/*
 * ota-sub-baseline.c — "what a user would build instead" (issue 14): a subscriber service
 * beside a plain Mosquitto that takes the vehicles' reports (ota/v1/+/report, QoS 1,
 * persistent session: clean_session false, a fixed client id) and writes them into the
 * same SQLite schema as the plugin's store, batched in transactions: one transaction per
 * BATCH reports or per FLUSH_MS, whichever comes first. It uses the project's report
 * codec and store layer (ota_codec_decode_report, ota_store_put_events), so the baseline
 * and the plugin decode the same bytes and run the same SQL: what differs is the
 * architecture (broker -> network -> subscriber -> SQLite), not the code.
 *
 * libmosquitto 2.0 sends the PUBACK of a QoS 1 message before it calls on_message and has
 * no manual-ack API, so the reports of a batch not yet committed are already acked to the
 * broker: a kill -9 of this service loses them. That is the property ota-baseline-bench
 * measures (docs/benchmarks.md), not a bug to work around here.
 *
 *   ota-sub-baseline --port P --db PATH [--id CLIENT_ID] [--batch N] [--flush-ms T]
 *
 * Runs until SIGTERM/SIGINT (commits what it holds, then exits 0); reconnects when the
 * broker goes away. Prints "ready" on stderr once subscribed, and its counts at exit.
 */
#include "ota_codec.h"
#include "ota_store.h"

#include <mosquitto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "ota/v1/+/report"
#define VIN_MAX 64

typedef struct {
    char vin[VIN_MAX];
    int64_t received_ms;
    ota_report rep;
} sub_report;

typedef struct {
    ota_store *store;
    sub_report *pending; /* decoded, not yet committed (already acked to the broker) */
    size_t n_pending, batch;
    int64_t first_pending_ms;
    unsigned long long stored_reports, stored_events, bad, commits;
    bool subscribed;
} sub_state;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The VIN of ota/v1/{VIN}/report, or false. */
static bool topic_vin(const char *topic, char vin[VIN_MAX])
{
    if (strncmp(topic, "ota/v1/", 7) != 0)
        return false;
    const char *p = topic + 7;
    const char *slash = strchr(p, '/');
    if (slash == NULL || slash == p || (size_t)(slash - p) >= VIN_MAX)
        return false;
    memcpy(vin, p, (size_t)(slash - p));
    vin[slash - p] = '\0';
    return true;
}

/* Commits the pending reports in one transaction (ota_store_put_events is atomic). */
static int sub_flush(sub_state *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_pending; i++)
        n += s->pending[i].rep.n_events;
    ota_store_event *evs = malloc((n ? n : 1) * sizeof *evs);
    if (evs == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < s->n_pending; i++) {
        sub_report *r = &s->pending[i];
        for (size_t e = 0; e < r->rep.n_events; e++)
            evs[k++] = (ota_store_event){r->vin, r->rep.seq, r->received_ms, &r->rep.events[e],
                                         r->rep.epoch};
    }
    char err[256];
    ota_store_put_result res;
    int rc = ota_store_put_events(s->store, evs, n, &res, err, sizeof err);
    free(evs);
    if (rc != 0) {
        fprintf(stderr, "ota-sub-baseline: put_events: %s\n", err);
        return -1;
    }
    s->stored_reports += s->n_pending;
    s->stored_events += res.inserted;
    s->commits++;
    for (size_t i = 0; i < s->n_pending; i++)
        ota_report_free(&s->pending[i].rep);
    s->n_pending = 0;
    return 0;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    sub_state *s = ud;
    if (s->n_pending == s->batch)
        return; /* a failed commit: stopping (the report is lost, as it would be) */
    sub_report *r = &s->pending[s->n_pending];
    ota_report_limits lim = {OTA_REPORT_MAX_PAYLOAD_DEFAULT, OTA_REPORT_MAX_EVENTS_DEFAULT};
    ota_error err;
    if (!topic_vin(msg->topic, r->vin) ||
        ota_codec_decode_report(msg->payload, (size_t)msg->payloadlen, &lim, &r->rep, &err) != 0) {
        s->bad++;
        return;
    }
    r->received_ms = now_ms();
    if (s->n_pending++ == 0)
        s->first_pending_ms = r->received_ms;
    if (s->n_pending == s->batch && sub_flush(s) != 0)
        stop_flag = 1;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    sub_state *s = ud;
    if (rc != 0)
        return;
    mosquitto_subscribe(m, NULL, TOPIC, 1);
    if (!s->subscribed)
        fprintf(stderr, "ota-sub-baseline: ready\n");
    s->subscribed = true;
}

typedef struct {
    int port, flush_ms;
    size_t batch;
    const char *db, *id;
} sub_opts;

static int parse(int argc, char **argv, sub_opts *o)
{
    *o = (sub_opts){0, 50, 256, NULL, "ota-sub-baseline"};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            o->port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--db") == 0)
            o->db = argv[i + 1];
        else if (strcmp(argv[i], "--id") == 0)
            o->id = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0)
            o->batch = (size_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--flush-ms") == 0)
            o->flush_ms = atoi(argv[i + 1]);
        else
            return -1;
    }
    return (argc % 2 == 1 && o->port > 0 && o->db && o->batch > 0 && o->flush_ms > 0) ? 0 : -1;
}

/* The event loop: network, then a commit when the oldest pending report is FLUSH_MS old;
 * reconnects after a lost connection. */
static void run(struct mosquitto *m, sub_state *s, const sub_opts *o)
{
    while (!stop_flag) {
        int rc = mosquitto_loop(m, o->flush_ms / 2 + 1, 1);
        if (rc != MOSQ_ERR_SUCCESS && !stop_flag) {
            usleep(100 * 1000);
            mosquitto_reconnect(m);
        }
        if (s->n_pending > 0 && now_ms() - s->first_pending_ms >= o->flush_ms && sub_flush(s) != 0)
            break;
    }
}

int main(int argc, char **argv)
{
    sub_opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: %s --port P --db PATH [--id CLIENT_ID] [--batch N] "
                "[--flush-ms T]\n",
                argv[0]);
        return 2;
    }
    char err[256], uri[1100];
    snprintf(uri, sizeof uri, "sqlite:%s", o.db);
    sub_state s = {.batch = o.batch};
    s.store = ota_store_open(uri, err, sizeof err);
    s.pending = calloc(o.batch, sizeof *s.pending);
    if (s.store == NULL || s.pending == NULL) {
        fprintf(stderr, "ota-sub-baseline: %s\n", s.store ? "out of memory" : err);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(o.id, false, &s); /* clean_session false */
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_max_inflight_messages_set(m, 0);
    while (!stop_flag && mosquitto_connect(m, "127.0.0.1", o.port, 30) != MOSQ_ERR_SUCCESS)
        usleep(100 * 1000);
    run(m, &s, &o);
    int rc = s.n_pending > 0 ? sub_flush(&s) : 0;
    fprintf(stderr,
            "ota-sub-baseline: %llu reports, %llu events stored in %llu commits, "
            "%llu undecodable\n",
            s.stored_reports, s.stored_events, s.commits, s.bad);
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    ota_store_close(s.store);
    free(s.pending);
    return rc == 0 ? 0 : 1;
}
