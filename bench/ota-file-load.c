/*
 * ota-file-load — the client side of the block-download benchmark (bench/ota-file-bench
 * drives it; docs/benchmarks.md).
 *
 *   ota-file-load plugin PORT VIN SHA256 SIZE BS WINDOW
 *       One vehicle (client id VIN) downloads the whole file with file/get requests of 64
 *       blocks (the last one shorter), keeping WINDOW requests outstanding; a request
 *       counts as done when its blocks have arrived (they arrive in order).
 *   ota-file-load plain PORT COUNT PAYLOAD WINDOW
 *       A publisher sends COUNT messages of PAYLOAD bytes, QoS 1, at most WINDOW x 64 in
 *       flight, to a subscriber (QoS 1) on another connection: plain Mosquitto moving the
 *       same bytes.
 *
 * Prints one JSON line {"messages", "bytes", "seconds"}: from the first request (publish)
 * to the last message received, payload bytes as received. Exit status 0 when every
 * message arrived, 1 otherwise (timeout: 120 s). libmosquitto, one network thread per
 * connection (mosquitto_loop_start); counters are atomics.
 */
#include <cbor.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCKS_PER_REQ 64

typedef struct {
    /* plugin mode */
    const char *vin, *sha;
    uint64_t size;
    uint32_t bs;
    uint64_t blocks, next_from; /* next block to ask for */
    struct mosquitto *req_conn;
    /* both */
    uint64_t expect;
    atomic_uint_fast64_t got, bytes;
    atomic_bool subscribed;
    double t_last;
} load;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *q)
{
    (void)m, (void)mid, (void)n, (void)q;
    atomic_store(&((load *)ud)->subscribed, true);
}

static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;

/* file/get {file, bs, from, n} for the next 64 blocks; false when all were asked for.
 * Called from the main thread (the first WINDOW) and the network thread. */
static bool send_request_locked(load *l)
{
    if (l->next_from >= l->blocks) {
        return false;
    }
    uint64_t n =
        l->blocks - l->next_from < BLOCKS_PER_REQ ? l->blocks - l->next_from : BLOCKS_PER_REQ;
    uint8_t buf[256];
    size_t p = cbor_encode_map_start(4, buf, sizeof buf);
    const char *keys[] = {"file", "bs", "from", "n"};
    uint64_t vals[] = {0, l->bs, l->next_from, n};
    for (int k = 0; k < 4; k++) {
        p += cbor_encode_string_start(strlen(keys[k]), buf + p, sizeof buf - p);
        memcpy(buf + p, keys[k], strlen(keys[k]));
        p += strlen(keys[k]);
        if (k == 0) {
            p += cbor_encode_string_start(64, buf + p, sizeof buf - p);
            memcpy(buf + p, l->sha, 64);
            p += 64;
        } else {
            p += cbor_encode_uint(vals[k], buf + p, sizeof buf - p);
        }
    }
    char topic[64];
    snprintf(topic, sizeof topic, "ota/v1/%s/file/get", l->vin);
    l->next_from += n;
    return mosquitto_publish(l->req_conn, NULL, topic, (int)p, buf, 1, false) == MOSQ_ERR_SUCCESS;
}

static bool send_request(load *l)
{
    pthread_mutex_lock(&req_lock);
    bool ok = send_request_locked(l);
    pthread_mutex_unlock(&req_lock);
    return ok;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    load *l = ud;
    uint64_t got = atomic_fetch_add(&l->got, 1) + 1;
    atomic_fetch_add(&l->bytes, (uint64_t)msg->payloadlen);
    if (l->vin && got % BLOCKS_PER_REQ == 0) {
        send_request(l); /* a request is complete: keep WINDOW outstanding */
    }
    if (got == l->expect) {
        l->t_last = now_s();
    }
}

static struct mosquitto *connect_to(int port, const char *id, load *l)
{
    struct mosquitto *m = mosquitto_new(id, true, l);
    if (!m) {
        return NULL;
    }
    int v5 = MQTT_PROTOCOL_V5;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, v5);
    mosquitto_max_inflight_messages_set(m, 0); /* the broker's window applies */
    mosquitto_message_callback_set(m, on_message);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

static int wait_all(load *l, double t0)
{
    while (atomic_load(&l->got) < l->expect && now_s() - t0 < 120) {
        usleep(1000);
    }
    bool ok = atomic_load(&l->got) == l->expect;
    printf("{\"messages\": %llu, \"bytes\": %llu, \"seconds\": %.6f}\n",
           (unsigned long long)atomic_load(&l->got), (unsigned long long)atomic_load(&l->bytes),
           (ok ? l->t_last : now_s()) - t0);
    return ok ? 0 : 1;
}

static int subscribe_wait(struct mosquitto *m, load *l, const char *topic)
{
    if (mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS) {
        return -1;
    }
    double t0 = now_s();
    while (!atomic_load(&l->subscribed) && now_s() - t0 < 10) {
        usleep(1000);
    }
    return atomic_load(&l->subscribed) ? 0 : -1;
}

static int run_plugin(int port, char **argv)
{
    static load l;
    l.vin = argv[0];
    l.sha = argv[1];
    l.size = strtoull(argv[2], NULL, 10);
    l.bs = (uint32_t)strtoul(argv[3], NULL, 10);
    int window = atoi(argv[4]);
    l.blocks = (l.size + l.bs - 1) / l.bs;
    l.expect = l.blocks;
    char topic[64];
    snprintf(topic, sizeof topic, "ota/v1/%s/file/data", l.vin);
    l.req_conn = connect_to(port, l.vin, &l);
    if (!l.req_conn || subscribe_wait(l.req_conn, &l, topic) != 0) {
        fprintf(stderr, "ota-file-load: cannot connect and subscribe\n");
        return 2;
    }
    double t0 = now_s();
    for (int k = 0; k < window; k++) {
        send_request(&l);
    }
    int rc = wait_all(&l, t0);
    mosquitto_disconnect(l.req_conn);
    mosquitto_loop_stop(l.req_conn, false);
    mosquitto_destroy(l.req_conn);
    return rc;
}

static int run_plain(int port, char **argv)
{
    static load l;
    l.expect = strtoull(argv[0], NULL, 10);
    size_t payload = strtoul(argv[1], NULL, 10);
    struct mosquitto *sub = connect_to(port, "bench-sub", &l);
    static load pl; /* the publisher's counters: unused */
    struct mosquitto *pub = connect_to(port, "bench-pub", &pl);
    if (!sub || !pub || subscribe_wait(sub, &l, "bench/data") != 0) {
        fprintf(stderr, "ota-file-load: cannot connect and subscribe\n");
        return 2;
    }
    uint8_t *buf = malloc(payload);
    memset(buf, 0xa5, payload);
    double t0 = now_s();
    for (uint64_t i = 0; i < l.expect; i++) {
        /* WINDOW x 64 in flight: the publisher waits when it is that far ahead */
        while (i - atomic_load(&l.got) >= (uint64_t)atoi(argv[2]) * BLOCKS_PER_REQ) {
            usleep(50);
        }
        mosquitto_publish(pub, NULL, "bench/data", (int)payload, buf, 1, false);
    }
    int rc = wait_all(&l, t0);
    free(buf);
    mosquitto_disconnect(pub);
    mosquitto_disconnect(sub);
    mosquitto_loop_stop(pub, false);
    mosquitto_loop_stop(sub, false);
    mosquitto_destroy(pub);
    mosquitto_destroy(sub);
    return rc;
}

int main(int argc, char **argv)
{
    mosquitto_lib_init();
    int rc = 2;
    if (argc == 8 && strcmp(argv[1], "plugin") == 0) {
        rc = run_plugin(atoi(argv[2]), argv + 3);
    } else if (argc == 6 && strcmp(argv[1], "plain") == 0) {
        rc = run_plain(atoi(argv[2]), argv + 3);
    } else {
        fprintf(stderr, "usage: ota-file-load plugin PORT VIN SHA256 SIZE BS WINDOW\n"
                        "       ota-file-load plain PORT COUNT PAYLOAD WINDOW\n");
    }
    mosquitto_lib_cleanup();
    return rc;
}
