/*
 * ota-count-bench.c — what one count of a task's executions over every broker costs (the
 * count job of plugin/engine_end.c, issue 15), before and after the store counts them:
 * "rows" reads the task's succeeded, failed and open executions as rows and keeps the VINs
 * of the succeeded and failed ones (what the job did before: ota_store_load_task_execs),
 * "store" has the store count them by state and wave (ota_store_count_task_execs: SQLite
 * GROUP BY, MongoDB one aggregate). Per task size and backend (a fresh SQLite file, then a
 * MongoDB URI when given: a real server or the test peer): the median ms per count and this
 * process's CPU ms per count (the broker's writer thread's share; on MongoDB the server's
 * work is in the other process), the
 * rows (or groups) handed to the broker, on MongoDB the bytes of the documents the server
 * ships for it (the same find / aggregate as the store's, run again through the bench's own
 * client), and the pause before the next count each pace rule gives.
 *
 *   ota-count-bench [--vehicles N[,N...]] [--reps R] [--mongo URI]
 *       (default 10000, 5 reps; URI default $OTA_TEST_MONGO_PEER_URI:
 *        tests/mongo_peer/run_with_peer.py -- ota-count-bench sets it)
 */
#include "ota_store.h"

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 8
#define MAX_REPS 32

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* The open states and the done ones: what the count job read before (as rows). */
#define COUNTED_STATES                                                                             \
    ((1u << OTA_EXEC_SUCCEEDED) | (1u << OTA_EXEC_FAILED) | (1u << OTA_EXEC_QUEUED) |              \
     (1u << OTA_EXEC_NOTIFIED) | (1u << OTA_EXEC_DOWNLOADING) | (1u << OTA_EXEC_INSTALLING) |      \
     (1u << OTA_EXEC_ACCEPTED) | (1u << OTA_EXEC_POSTPONED))

/* ---- the bytes MongoDB ships per count: the store's find and aggregate (COMMANDS.md) ---- */

static mongoc_cursor_t *rows_cursor(mongoc_collection_t *c, const char *task)
{
    bson_t *filter = bson_new(), in, names;
    BSON_APPEND_UTF8(filter, "task", task);
    BSON_APPEND_DOCUMENT_BEGIN(filter, "state", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &names);
    for (int i = 0, k = 0; i < OTA_EXEC_STATE_COUNT; i++) {
        char key[16];
        if (!(COUNTED_STATES & (1u << i)))
            continue;
        snprintf(key, sizeof key, "%d", k++);
        BSON_APPEND_UTF8(&names, key, ota_exec_state_name((ota_exec_state)i));
    }
    bson_append_array_end(&in, &names);
    bson_append_document_end(filter, &in);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    bson_destroy(filter);
    return cur;
}

static mongoc_cursor_t *groups_cursor(mongoc_collection_t *c, const char *task)
{
    bson_t *pipe =
        BCON_NEW("pipeline", "[", "{", "$match", "{", "task", BCON_UTF8(task), "}", "}", "{",
                 "$group", "{", "_id", "{", "state", BCON_UTF8("$state"), "wave",
                 BCON_UTF8("$wave"), "}", "n", "{", "$sum", BCON_INT32(1), "}", "}", "}", "]");
    mongoc_cursor_t *cur = mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, pipe, NULL, NULL);
    bson_destroy(pipe);
    return cur;
}

/* The bytes of the documents the server sends for one count, or -1. */
static long long shipped(const char *uri, const char *task, bool by_store)
{
    mongoc_uri_t *u = mongoc_uri_new(uri);
    mongoc_client_t *client = u ? mongoc_client_new_from_uri(u) : NULL;
    if (!client) {
        mongoc_uri_destroy(u);
        return -1;
    }
    const char *db = mongoc_uri_get_database(u);
    mongoc_collection_t *c = mongoc_client_get_collection(client, db ? db : "ota", "ota_task_vin");
    mongoc_cursor_t *cur = by_store ? groups_cursor(c, task) : rows_cursor(c, task);
    const bson_t *doc;
    long long bytes = 0;
    while (mongoc_cursor_next(cur, &doc))
        bytes += doc->len;
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error))
        bytes = -1;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(u);
    return bytes;
}

/* A task of n executions over 4 waves: 40% succeeded, 5% failed, 30% queued, 20% notified,
 * 5% downloading (a rollout half done). */
static int write_task(ota_store *s, const char *task, size_t n)
{
    ota_exec_rec *x = calloc(n, sizeof *x);
    char(*vins)[18] = calloc(n, sizeof *vins);
    static const ota_exec_state mix[20] = {
        OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED,
        OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED,
        OTA_EXEC_FAILED,    OTA_EXEC_QUEUED,    OTA_EXEC_QUEUED,    OTA_EXEC_QUEUED,
        OTA_EXEC_QUEUED,    OTA_EXEC_QUEUED,    OTA_EXEC_QUEUED,    OTA_EXEC_NOTIFIED,
        OTA_EXEC_NOTIFIED,  OTA_EXEC_NOTIFIED,  OTA_EXEC_NOTIFIED,  OTA_EXEC_DOWNLOADING};
    int rc = x && vins ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(vins[i], sizeof vins[i], "LCNTB%012u", (unsigned)(i % 1000000000u));
        bool sent = mix[i % 20] != OTA_EXEC_QUEUED;
        x[i] = (ota_exec_rec){.task = task,
                              .vin = vins[i],
                              .state = mix[i % 20],
                              .msg_id = sent ? "T:msg:1" : NULL,
                              .notified_ms = sent ? 1700000000000 : -1,
                              .updated_ms = 1700000000000,
                              .wave = (int64_t)(i * 4 / n)};
    }
    char err[256] = "";
    ota_catalog_change c = {.put_execs = x, .n_put_execs = n};
    if (rc == 0 && (rc = ota_store_apply(s, &c, err, sizeof err)) != 0)
        fprintf(stderr, "ota-count-bench: writing %zu executions: %s\n", n, err);
    free(x);
    free(vins);
    return rc;
}

/* ---- before: the executions read as rows, the done ones' VINs kept ---- */

typedef struct {
    size_t rows, kept;
    char (*vins)[18];
    size_t cap;
} rows_count;

static int row_seen(void *ctx, const ota_exec_rec *e)
{
    rows_count *r = ctx;
    r->rows++;
    if (e->state != OTA_EXEC_SUCCEEDED && e->state != OTA_EXEC_FAILED)
        return 0;
    if (r->kept == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        void *grown = realloc(r->vins, cap * sizeof *r->vins);
        if (!grown)
            return 1;
        r->vins = grown;
        r->cap = cap;
    }
    snprintf(r->vins[r->kept++], sizeof r->vins[0], "%s", e->vin);
    return 0;
}

static int count_rows(ota_store *s, const char *task, size_t *rows)
{
    rows_count r = {0};
    int rc = ota_store_load_task_execs(s, task, COUNTED_STATES, row_seen, &r);
    *rows = r.rows;
    free(r.vins);
    return rc;
}

/* ---- after: counted by the store ---- */

static int group_seen(void *ctx, ota_exec_state state, int64_t wave, uint64_t n)
{
    (void)state, (void)wave, (void)n;
    ++*(size_t *)ctx;
    return 0;
}

static int count_store(ota_store *s, const char *task, size_t *groups)
{
    char err[256] = "";
    *groups = 0;
    int rc = ota_store_count_task_execs(s, task, group_seen, groups, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "ota-count-bench: %s\n", err);
    return rc;
}

/* ---- measuring ---- */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef int (*count_fn)(ota_store *s, const char *task, size_t *out);

/* Runs fn reps times: the median ms, the mean CPU ms of this process, what fn returned. */
static int measure(ota_store *s, const char *task, count_fn fn, int reps, double *ms, double *cpu,
                   size_t *out)
{
    double t[MAX_REPS], c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        if (fn(s, task, out) != 0)
            return -1;
        t[i] = now_ms() - t0;
    }
    *cpu = (clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0) / reps;
    qsort(t, (size_t)reps, sizeof t[0], dbl_cmp);
    *ms = t[reps / 2];
    return 0;
}

static int bench_one(const char *backend, const char *uri, ota_store *s, size_t n, int reps)
{
    char task[32];
    snprintf(task, sizeof task, "TCOUNT%zu", n);
    double t0 = now_ms();
    if (write_task(s, task, n) != 0)
        return -1;
    double wrote = now_ms() - t0;
    double ms_rows, ms_store, cpu_rows, cpu_store;
    size_t rows = 0, groups = 0;
    bool mongo = strncmp(uri, "mongodb", 7) == 0;
    long long b_rows = mongo ? shipped(uri, task, false) : -1;
    long long b_store = mongo ? shipped(uri, task, true) : -1;
    if (measure(s, task, count_rows, reps, &ms_rows, &cpu_rows, &rows) != 0 ||
        measure(s, task, count_store, reps, &ms_store, &cpu_store, &groups) != 0) {
        fprintf(stderr, "ota-count-bench: counting on %s failed\n", backend);
        return -1;
    }
    /* the pause before the next count: before 500 ms + 1 ms per 100 rows; now 500 + 10x */
    char sent_rows[24] = "-", sent_store[24] = "-"; /* SQLite: nothing sent */
    if (b_rows >= 0 && b_store >= 0) {
        snprintf(sent_rows, sizeof sent_rows, "%lld", b_rows);
        snprintf(sent_store, sizeof sent_store, "%lld", b_store);
    }
    printf("%-7s %9zu %6s %10.1f %8.1f %9zu %12s %10.0f\n", backend, n, "rows", ms_rows, cpu_rows,
           rows, sent_rows, 500.0 + (double)rows / 100.0);
    printf("%-7s %9zu %6s %10.1f %8.1f %9zu %12s %10.0f   (task written in %.0f ms)\n", backend, n,
           "store", ms_store, cpu_store, groups, sent_store, 500.0 + 10.0 * ms_store, wrote);
    fflush(stdout);
    return 0;
}

static int bench_backend(const char *backend, const char *uri, const size_t *sizes, int n_sizes,
                         int reps)
{
    char err[512] = "";
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ota-count-bench: %s: %s\n", uri, err);
        return -1;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < n_sizes; i++)
        rc = bench_one(backend, uri, s, sizes[i], reps);
    ota_store_close(s);
    return rc;
}

static int parse_sizes(const char *arg, size_t *sizes)
{
    int n = 0;
    for (const char *p = arg; *p && n < MAX_SIZES; n++) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v == 0 || v > 10000000)
            return -1;
        sizes[n] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {10000};
    int n_sizes = 1, reps = 5;
    const char *mongo = getenv("OTA_TEST_MONGO_PEER_URI");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--vehicles") == 0)
            n_sizes = parse_sizes(argv[i + 1], sizes);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--mongo") == 0)
            mongo = argv[i + 1];
    }
    if (n_sizes <= 0 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr,
                "usage: ota-count-bench [--vehicles N[,N...]] [--reps 1..%d] [--mongo "
                "URI]\n",
                MAX_REPS);
        return 2;
    }
    char dir[] = "/tmp/ota-count-bench-XXXXXX", uri[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(uri, sizeof uri, "sqlite:%s/ota.db", dir);
    printf("%-7s %9s %6s %10s %8s %9s %12s %10s\n", "store", "vehicles", "count", "ms/count",
           "cpu ms", "rows|grp", "bytes sent", "next ms");
    int rc = bench_backend("sqlite", uri, sizes, n_sizes, reps);
    if (rc == 0 && mongo && *mongo)
        rc = bench_backend("mongodb", mongo, sizes, n_sizes, reps);
    char path[96];
    snprintf(path, sizeof path, "%s/ota.db", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ota.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ota.db-shm", dir);
    unlink(path);
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}
