/*
 * ota-store-bench.c — report ingestion into each store backend, through the store
 * interface the writer thread uses: N upgrade events (the writer's batch size, 4096 per
 * ota_store_put_events) into a fresh SQLite file, then into a MongoDB URI when one is
 * given (a real server, or the wire-protocol test peer: tests/mongo_peer/run_with_peer.py
 * -- ota-store-bench sets OTA_TEST_MONGO_PEER_URI), then the same batches again (all
 * duplicates: what a retried batch after an outage costs). Prints events/s per backend
 * and MongoDB's ratio to SQLite, measured in the same run.
 *
 *   ota-store-bench [--events N] [--mongo URI] [--json]   (default 100000; URI default
 *                                                   from $OTA_TEST_MONGO_PEER_URI; --json:
 *                                                   one JSON object instead of the table)
 */
#include "ota_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Puts n events in batches; the seconds taken, or -1. */
static double ingest(ota_store *s, size_t n, size_t *dups)
{
    static char vins[1000][18];
    for (int v = 0; v < 1000; v++)
        snprintf(vins[v], sizeof vins[v], "LBENCH%011d", v);
    ota_event ev = {.type = OTA_EV_DOWNLOAD_PROGRESS,
                    .task = "T1",
                    .ts = 1,
                    .ecu = "BMS",
                    .pct = 50,
                    .bytes = 1 << 20,
                    .at = -1};
    ota_store_event *b = calloc(BATCH, sizeof *b);
    char err[256];
    double t0 = now_s();
    *dups = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < BATCH && i < n; k++, i++)
            b[k] = (ota_store_event){.vin = vins[i % 1000], .seq = i / 1000 + 1, .received_ms = 1, .ev = &ev};
        ota_store_put_result r;
        if (ota_store_put_events(s, b, k, &r, err, sizeof err) != 0) {
            fprintf(stderr, "put_events: %s\n", err);
            free(b);
            return -1;
        }
        *dups += r.duplicates;
    }
    free(b);
    return now_s() - t0;
}

/* events/s of a first and a repeated ingestion; 0 on error. */
static int run(const char *name, const char *uri, size_t n, double rate[2])
{
    char err[512];
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "%s: %s\n", name, err);
        return -1;
    }
    size_t dups;
    double t1 = ingest(s, n, &dups), t2 = t1 >= 0 ? ingest(s, n, &dups) : -1;
    ota_store_close(s);
    if (t1 <= 0 || t2 <= 0 || dups != n)
        return -1;
    rate[0] = (double)n / t1;
    rate[1] = (double)n / t2;
    return 0;
}

static void print_table(const double sq[2], const double *mg)
{
    printf("%-34s %14s %18s\n", "store (events, batches of 4096)", "new events/s",
           "duplicate events/s");
    printf("%-34s %14.0f %18.0f\n", "sqlite (baseline)", sq[0], sq[1]);
    if (mg == NULL) {
        printf("mongo: skipped (no --mongo URI and OTA_TEST_MONGO_PEER_URI unset)\n");
        return;
    }
    printf("%-34s %14.0f %18.0f\n", "mongo", mg[0], mg[1]);
    printf("%-34s %14.2f %18.2f\n", "mongo / sqlite", mg[0] / sq[0], mg[1] / sq[1]);
}

static void print_json(size_t n, const double sq[2], const double *mg)
{
    printf("{\"events\": %zu, \"sqlite\": {\"new_per_s\": %.0f, \"duplicate_per_s\": %.0f}", n,
           sq[0], sq[1]);
    if (mg != NULL)
        printf(", \"mongo\": {\"new_per_s\": %.0f, \"duplicate_per_s\": %.0f}, "
               "\"ratio_new\": %.3f, \"ratio_duplicate\": %.3f",
               mg[0], mg[1], mg[0] / sq[0], mg[1] / sq[1]);
    printf("}\n");
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    bool json = false;
    const char *mongo = getenv("OTA_TEST_MONGO_PEER_URI");
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--events") == 0)
            n = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--mongo") == 0)
            mongo = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: %s [--events N] [--mongo URI] [--json]\n", argv[0]);
            return 2;
        }
    }
    char path[256], uri[300];
    snprintf(path, sizeof path, "/tmp/ota-store-bench-%d.db", (int)getpid());
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    double sq[2], mg[2];
    int rc = run("sqlite", uri, n, sq);
    static const char *const SUFFIX[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[300];
        snprintf(f, sizeof f, "%s%s", path, SUFFIX[i]);
        unlink(f);
    }
    if (rc != 0)
        return 1;
    bool with_mongo = mongo != NULL && mongo[0] != '\0';
    if (with_mongo && run("mongo", mongo, n, mg) != 0)
        return 1;
    if (json)
        print_json(n, sq, with_mongo ? mg : NULL);
    else
        print_table(sq, with_mongo ? mg : NULL);
    return 0;
}
