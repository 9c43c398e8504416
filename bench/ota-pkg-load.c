/*
 * ota-pkg-load — the client side of the pkg/get benchmark (bench/ota-pkg-bench drives it
 * against the echo plugin and mosquitto-ota; docs/benchmarks.md).
 *
 *   ota-pkg-load PORT TASK REQUESTS VEHICLES WINDOW [VIN_PREFIX]
 *
 * VEHICLES connections (MQTT 5, client id = VIN = VIN_PREFIX + 12 digits, default
 * "LSVTB"), each keeping WINDOW pkg/get requests {req, task, cur, tgt} (QoS 1) in flight
 * until REQUESTS were sent in all. Replies arrive on ota/v1/{VIN}/pkg/desc (the plugin
 * sends them to the client id: no subscription): a COSE_Sign1 (tag 18) whose unprotected
 * header holds `req` (outside the signature: issue 14), a plain map {req, err, msg} (an
 * error), or — from the echo plugin — the request itself. Each reply is matched to its request by `req`: latency = request
 * publish -> reply arrival.
 *
 * Prints one JSON line {"replies", "errors", "seconds", "replies_per_s", "p50_ms",
 * "p99_ms"}; seconds = first request -> last reply. Exit status 0 when every reply arrived
 * (timeout 300 s), 1 otherwise, 2 on a usage or connection error. libmosquitto, one
 * network thread per connection (mosquitto_loop_start); the shared state is atomics, so a
 * C client (unlike the Python one it replaces) is not the bottleneck of either run.
 */
#include <cbor.h>
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 300

typedef struct {
    const char *task;
    uint64_t requests;
    atomic_uint_fast64_t sent, slots, done, errors;
    atomic_uint_fast64_t *sent_ns; /* by req (1..requests): publish time */
    double *lat_ms;                /* by reply slot */
    atomic_uint_fast64_t last_ns;
    atomic_int connected;
} load;

typedef struct {
    load *l;
    struct mosquitto *m;
    char vin[18];
} vehicle;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t put_text(const char *s, uint8_t *buf, size_t cap)
{
    size_t n = strlen(s), p = cbor_encode_string_start(n, buf, cap);
    if (p == 0 || p + n > cap)
        return 0;
    memcpy(buf + p, s, n);
    return p + n;
}

/* pkg/get {req, task, cur: "1.0", tgt: "2.0"} into buf; its length (0: too small). */
static size_t encode_request(const load *l, uint64_t req, uint8_t *buf, size_t cap)
{
    size_t p = cbor_encode_map_start(4, buf, cap);
    p += put_text("req", buf + p, cap - p);
    p += cbor_encode_uint(req, buf + p, cap - p);
    const char *kv[] = {"task", l->task, "cur", "1.0", "tgt", "2.0"};
    for (int i = 0; i < 6; i++)
        p += put_text(kv[i], buf + p, cap - p);
    return p;
}

/* Sends the next request, if any are left. */
static void send_next(vehicle *v)
{
    load *l = v->l;
    uint64_t req = atomic_fetch_add(&l->sent, 1) + 1;
    if (req > l->requests)
        return;
    uint8_t buf[256];
    size_t n = encode_request(l, req, buf, sizeof buf);
    char topic[64];
    snprintf(topic, sizeof topic, "ota/v1/%s/pkg/get", v->vin);
    atomic_store(&l->sent_ns[req], now_ns());
    mosquitto_publish(v->m, NULL, topic, (int)n, buf, 1, false);
}

/* The value of text key `key` in a CBOR map item, or NULL. */
static cbor_item_t *map_get(const cbor_item_t *map, const char *key)
{
    if (!cbor_isa_map(map))
        return NULL;
    struct cbor_pair *pairs = cbor_map_handle(map);
    for (size_t i = 0; i < cbor_map_size(map); i++) {
        const cbor_item_t *k = pairs[i].key;
        if (cbor_isa_string(k) && cbor_string_is_definite(k) &&
            cbor_string_length(k) == strlen(key) &&
            memcmp(cbor_string_handle(k), key, strlen(key)) == 0)
            return pairs[i].value;
    }
    return NULL;
}

/* The unsigned `req` of a map item, or 0. */
static uint64_t map_req(const cbor_item_t *map)
{
    const cbor_item_t *v = map ? map_get(map, "req") : NULL;
    return v && cbor_isa_uint(v) ? cbor_get_int(v) : 0;
}

/* The req of a reply (0 when it has none); *err set for an error map. libcbor 0.8's
 * cbor_load refuses a tagged array (CBOR_ERR_MALFORMATED), so the one-byte tag 18 (0xd2)
 * of a COSE_Sign1 is stepped over by hand and the array loaded on its own. */
static uint64_t reply_req(const uint8_t *p, size_t n, bool *err)
{
    struct cbor_load_result res;
    bool cose = n > 1 && p[0] == 0xd2;
    cbor_item_t *item = cose ? cbor_load(p + 1, n - 1, &res) : cbor_load(p, n, &res);
    cbor_item_t *inner = NULL;
    uint64_t req = 0;
    *err = false;
    if (item && cose && cbor_isa_array(item) && cbor_array_size(item) == 4) {
        inner = cbor_array_get(item, 1); /* the unprotected header {4: kid, "req": uint} */
        req = map_req(inner);
    } else if (item && cbor_isa_map(item)) {
        req = map_req(item);
        *err = map_get(item, "err") != NULL;
    }
    if (inner)
        cbor_decref(&inner);
    if (item)
        cbor_decref(&item);
    return req;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    vehicle *v = ud;
    load *l = v->l;
    uint64_t t = now_ns();
    bool err;
    uint64_t req = reply_req(msg->payload, (size_t)msg->payloadlen, &err);
    if (err)
        atomic_fetch_add(&l->errors, 1);
    uint64_t slot = atomic_fetch_add(&l->slots, 1);
    if (slot < l->requests) {
        uint64_t t0 = req >= 1 && req <= l->requests ? atomic_load(&l->sent_ns[req]) : 0;
        l->lat_ms[slot] = t0 ? (double)(t - t0) / 1e6 : -1.0;
    }
    atomic_store(&l->last_ns, t);
    atomic_fetch_add(&l->done, 1);
    send_next(v);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    if (rc == 0)
        atomic_fetch_add(&((vehicle *)ud)->l->connected, 1);
}

/* Waits until n connections have their CONNACK; false after 10 s. */
static bool wait_connected(load *l, int n)
{
    uint64_t t0 = now_ns();
    while (atomic_load(&l->connected) < n && now_ns() - t0 < 10000000000ull)
        usleep(1000);
    return atomic_load(&l->connected) >= n;
}

static int connect_vehicle(vehicle *v, int port)
{
    v->m = mosquitto_new(v->vin, true, v);
    if (!v->m)
        return -1;
    mosquitto_int_option(v->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(v->m, MOSQ_OPT_TCP_NODELAY, 1); /* as the brokers: no Nagle delays */
    mosquitto_max_inflight_messages_set(v->m, 0);
    mosquitto_message_callback_set(v->m, on_message);
    mosquitto_connect_callback_set(v->m, on_connect);
    if (mosquitto_connect(v->m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(v->m) != MOSQ_ERR_SUCCESS)
        return -1;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p of the n latencies that were matched (sorted in place). */
static double percentile(double *xs, size_t n, double p)
{
    qsort(xs, n, sizeof *xs, cmp_double);
    size_t first = 0;
    while (first < n && xs[first] < 0)
        first++;
    if (first == n)
        return -1.0;
    size_t k = first + (size_t)((double)(n - first) * p);
    return xs[k < n ? k : n - 1];
}

static int run(load *l, vehicle *vs, int n_vehicles, int window)
{
    uint64_t t0 = now_ns();
    for (int w = 0; w < window; w++)
        for (int i = 0; i < n_vehicles; i++)
            send_next(&vs[i]);
    while (atomic_load(&l->done) < l->requests && now_ns() - t0 < TIMEOUT_S * 1000000000ull)
        usleep(1000);
    uint64_t done = atomic_load(&l->done);
    bool ok = done >= l->requests;
    double secs = (double)((ok ? atomic_load(&l->last_ns) : now_ns()) - t0) / 1e9;
    size_t n = done < l->requests ? done : l->requests;
    double p50 = percentile(l->lat_ms, n, 0.50), p99 = percentile(l->lat_ms, n, 0.99);
    printf("{\"replies\": %llu, \"errors\": %llu, \"seconds\": %.6f, \"replies_per_s\": %.1f, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
           (unsigned long long)done, (unsigned long long)atomic_load(&l->errors), secs,
           (double)done / (secs > 0 ? secs : 1e-9), p50, p99);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: ota-pkg-load PORT TASK REQUESTS VEHICLES WINDOW [VIN_PREFIX]\n");
        return 2;
    }
    static load l;
    int port = atoi(argv[1]), n_vehicles = atoi(argv[4]), window = atoi(argv[5]);
    const char *prefix = argc == 7 ? argv[6] : "LSVTB";
    l.task = argv[2];
    l.requests = strtoull(argv[3], NULL, 10);
    if (port <= 0 || l.requests == 0 || n_vehicles <= 0 || window <= 0 || strlen(prefix) != 5) {
        fprintf(stderr, "ota-pkg-load: bad arguments\n");
        return 2;
    }
    l.sent_ns = calloc(l.requests + 1, sizeof *l.sent_ns);
    l.lat_ms = calloc(l.requests, sizeof *l.lat_ms);
    vehicle *vs = calloc((size_t)n_vehicles, sizeof *vs);
    if (!l.sent_ns || !l.lat_ms || !vs)
        return 2;
    mosquitto_lib_init();
    int rc = 0;
    for (int i = 0; i < n_vehicles && rc == 0; i++) {
        vs[i].l = &l;
        snprintf(vs[i].vin, sizeof vs[i].vin, "%s%012d", prefix, i);
        rc = connect_vehicle(&vs[i], port);
    }
    if (rc == 0 && wait_connected(&l, n_vehicles)) {
        rc = run(&l, vs, n_vehicles, window);
    } else {
        fprintf(stderr, "ota-pkg-load: cannot connect\n");
        rc = 2;
    }
    for (int i = 0; i < n_vehicles; i++) {
        if (vs[i].m) {
            mosquitto_disconnect(vs[i].m);
            mosquitto_loop_stop(vs[i].m, false);
            mosquitto_destroy(vs[i].m);
        }
    }
    mosquitto_lib_cleanup();
    free(vs);
    free(l.sent_ns);
    free(l.lat_ms);
    return rc;
}
