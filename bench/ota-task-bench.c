/*
 * ota-task-bench.c — benchmark of the task rules (plugin/core/task_rules.h, SPEC §6).
 *
 * Builds a catalog of N vehicles in memory (no store; default 100,000) and one normal
 * task naming every one of them, in shuffled order. One VIN in 50 is rejected, the
 * reasons taking turns (unknown, duplicate, model, blacklist, usage, status, firmware 0,
 * upgrade in progress, same version, downgrade, config word); among the accepted ones
 * some are on the forced or same-version whitelist and some have a latest upgrade status
 * that does not block. Each round times ota_task_check plus ota_task_check_vin over all
 * VINs (with a fresh duplicate set), and, as the baseline, ota_catalog_vehicle over the
 * same VINs. Every round's codes are checked against the expected ones (exit 1 on a
 * difference). Prints the best and median of the rounds, the cost per VIN and the ratio.
 *
 * Usage: ota-task-bench [--json] [vehicles [rounds]]   (--json: one JSON object instead)
 */
#include "catalog.h"
#include "map.h"
#include "task_rules.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TARGET "2.0.0"
#define REJECT_EVERY 50

/* Why vehicle i is rejected (REASON_NONE: accepted). */
enum {
    REASON_NONE = -1,
    REASON_UNKNOWN,
    REASON_DUPLICATE,
    REASON_MODEL,
    REASON_BLACKLIST,
    REASON_USAGE,
    REASON_STATUS,
    REASON_FW_ZERO,
    REASON_BUSY,
    REASON_SAME_VERSION,
    REASON_DOWNGRADE,
    REASON_CONFIG_WORD,
    REASON_COUNT
};

static const ota_reject_code reason_code[REASON_COUNT] = {
    OTA_REJ_UNKNOWN_VEHICLE, OTA_REJ_DUPLICATE_VIN,       OTA_REJ_MODEL_MISMATCH,
    OTA_REJ_BLACKLISTED,     OTA_REJ_USAGE_MISMATCH,      OTA_REJ_STATUS_MISMATCH,
    OTA_REJ_FIRMWARE_ZERO,   OTA_REJ_UPGRADE_IN_PROGRESS, OTA_REJ_SAME_VERSION,
    OTA_REJ_DOWNGRADE,       OTA_REJ_CONFIG_WORD_MISSING};

/* The latest upgrade status of a VIN, as the task engine keeps it: a map by VIN. */
typedef struct {
    char vin[18];
    ota_upgrade_state st;
} latest_rec;

typedef struct {
    ota_catalog *c;
    ota_map latest;
    ota_task_rec task;
    size_t *vehicle_of; /* task VIN number -> vehicle index */
    ota_reject_code *expected;
    size_t n_vehicles;
} bench;

static void die(const char *what)
{
    fprintf(stderr, "ota-task-bench: %s\n", what);
    exit(2);
}

static char *dup_or_die(const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        die("out of memory");
    return d;
}

static void *alloc_or_die(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void vin_of(size_t i, char vin[18])
{
    snprintf(vin, 18, "LSVBN%012llu", (unsigned long long)(i % 1000000000000ULL));
}

static int reason_of(size_t i)
{
    return i % REJECT_EVERY == REJECT_EVERY - 1 ? (int)((i / REJECT_EVERY) % REASON_COUNT)
                                                : REASON_NONE;
}

/* ---- the catalog ---- */

static void add_model_package_strategy(ota_catalog *c)
{
    ota_model_rec m = {
        .model = dup_or_die("M1"), .series = dup_or_die("S1"), .supports_config_word = true};
    ota_package_rec p = {.id = 1,
                         .model = dup_or_die("M1"),
                         .series = dup_or_die("S1"),
                         .version = dup_or_die(TARGET),
                         .baseline_description = dup_or_die("baseline"),
                         .status = OTA_PKG_RELEASED};
    ota_strategy_rec s = {.id = dup_or_die("ST1"), .n_ecus = 2};
    s.ecus = alloc_or_die(2, sizeof *s.ecus);
    s.ecus[0] = (ota_strategy_ecu){dup_or_die("BCM"), 1, true};
    s.ecus[1] = (ota_strategy_ecu){dup_or_die("VCU"), 2, true};
    if (ota_catalog_put_model(c, &m) != 0 || ota_catalog_put_package(c, &p) != 0 ||
        ota_catalog_put_strategy(c, &s) != 0 || ota_catalog_bind_default(c, "M1", "S1", "ST1") != 0)
        die("cannot set the model up");
}

static void set_latest(bench *b, const char *vin, const char *status, const char *trigger)
{
    latest_rec r = {.st = {status, trigger}};
    memcpy(r.vin, vin, 18);
    if (ota_map_put(&b->latest, &r) == NULL)
        die("out of memory");
}

/* The vehicle record of vehicle i, shaped by its reason. */
static ota_vehicle_rec vehicle_rec(size_t i, int reason)
{
    static const char *const statuses[] = {"in_stock", "sold"};
    static const char *const usages[] = {"retail", "fleet", "test"};
    char vin[18], fw[32];
    vin_of(i, vin);
    snprintf(fw, sizeof fw, "1.%zu.%zu", i % 7, i % 13);
    ota_vehicle_rec r = {.passenger = true, .sold = i % 2 == 1};
    r.vin = dup_or_die(vin);
    r.model = dup_or_die(reason == REASON_MODEL ? "M2" : "M1");
    r.series = dup_or_die("S1");
    r.status = dup_or_die(reason == REASON_STATUS ? "scrapped" : statuses[i % 2]);
    r.usage = dup_or_die(reason == REASON_USAGE ? "rental" : usages[i % 3]);
    r.fw = dup_or_die(reason == REASON_FW_ZERO        ? "0"
                      : reason == REASON_SAME_VERSION ? TARGET
                      : reason == REASON_DOWNGRADE    ? "2.1.0"
                                                      : fw);
    r.config_word = reason == REASON_CONFIG_WORD ? NULL : dup_or_die("CW-0001");
    return r;
}

/* Accepted vehicles that still exercise the whitelists and the latest statuses. */
static void add_accepted_extras(bench *b, size_t i, ota_vehicle_rec *r)
{
    if (i % 97 == 5) { /* same version, but whitelisted */
        free(r->fw);
        r->fw = dup_or_die(TARGET);
        ota_catalog_list_add(b->c, OTA_LIST_SAME_VERSION_WHITELIST, r->vin);
    } else if (i % 89 == 3) { /* wrong usage, but on the forced whitelist */
        free(r->usage);
        r->usage = dup_or_die("rental");
        ota_catalog_list_add(b->c, OTA_LIST_FORCED_WHITELIST, r->vin);
    } else if (i % 20 == 7) { /* a finished upgrade, or one of another task type */
        set_latest(b, r->vin, i % 40 == 7 ? "succeeded" : "upgrading",
                   i % 40 == 7 ? "normal" : "forced");
    }
}

static void add_vehicle(bench *b, size_t i)
{
    int reason = reason_of(i);
    if (reason == REASON_UNKNOWN)
        return;
    ota_vehicle_rec r = vehicle_rec(i, reason);
    if (reason == REASON_BLACKLIST)
        ota_catalog_list_add(b->c, OTA_LIST_BLACKLIST, r.vin);
    else if (reason == REASON_BUSY)
        set_latest(b, r.vin, "rolling_back", "normal");
    else if (reason == REASON_NONE)
        add_accepted_extras(b, i, &r);
    if (ota_catalog_put_vehicle(b->c, &r) != 0)
        die("cannot add a vehicle");
}

static ota_map_key latest_key(const void *rec)
{
    return ota_map_key_str(((const latest_rec *)rec)->vin);
}

static const ota_upgrade_state *latest_of(void *ctx, const char *vin)
{
    const latest_rec *r = ota_map_get_str(ctx, vin);
    return r ? &r->st : NULL;
}

/* ---- the task ---- */

/* Task VIN k names vehicle vehicle_of[k]; a duplicate names the vehicle before it. */
static void build_task(bench *b)
{
    size_t n = b->n_vehicles;
    ota_task_rec *t = &b->task;
    *t = (ota_task_rec){.id = dup_or_die("T1"),
                        .name = dup_or_die("bench"),
                        .type = OTA_TASK_NORMAL,
                        .model = dup_or_die("M1"),
                        .series = dup_or_die("S1"),
                        .version = dup_or_die(TARGET),
                        .n_vins = n,
                        .start_ms = -1,
                        .end_ms = -1};
    t->vins = alloc_or_die(n, sizeof *t->vins);
    b->vehicle_of = alloc_or_die(n, sizeof *b->vehicle_of);
    for (size_t i = 0; i < n; i++)
        b->vehicle_of[i] = reason_of(i) == REASON_DUPLICATE && i > 0 ? i - 1 : i;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(xorshift(&seed) % i), tmp = b->vehicle_of[i - 1];
        b->vehicle_of[i - 1] = b->vehicle_of[j];
        b->vehicle_of[j] = tmp;
    }
    char vin[18];
    for (size_t k = 0; k < n; k++) {
        vin_of(b->vehicle_of[k], vin);
        t->vins[k] = dup_or_die(vin);
    }
}

/* The code each task VIN must get: the vehicle's reason, or duplicate on a second sight. */
static void build_expected(bench *b)
{
    size_t n = b->n_vehicles;
    unsigned char *seen = alloc_or_die(n, 1);
    b->expected = alloc_or_die(n, sizeof *b->expected);
    for (size_t k = 0; k < n; k++) {
        size_t v = b->vehicle_of[k];
        int reason = reason_of(v);
        b->expected[k] = seen[v]                 ? OTA_REJ_DUPLICATE_VIN
                         : reason == REASON_NONE ? OTA_REJ_NONE
                                                 : reason_code[reason];
        seen[v] = 1;
    }
    free(seen);
}

/* ---- the runs ---- */

/* Looks every VIN up; returns how many were found (so the loop is not optimised away). */
static size_t run_lookup(const bench *b)
{
    size_t found = 0;
    for (size_t k = 0; k < b->task.n_vins; k++)
        found += ota_catalog_vehicle(b->c, b->task.vins[k]) != NULL;
    return found;
}

/* The whole validation of the task; codes[k] receives VIN k's code. */
static void run_rules(const bench *b, const ota_rules_env *env, ota_reject_code *codes)
{
    const ota_package_rec *pkg;
    if (ota_task_check(b->c, &b->task, &pkg) != OTA_TASK_OK)
        die("the task fails its task-level check");
    ota_vin_set *seen = ota_vin_set_new(b->task.n_vins);
    if (seen == NULL)
        die("out of memory");
    for (size_t k = 0; k < b->task.n_vins; k++)
        codes[k] = ota_task_check_vin(b->c, env, &b->task, b->task.vins[k], seen);
    ota_vin_set_free(seen);
}

static size_t count_mismatches(const bench *b, const ota_reject_code *codes)
{
    size_t bad = 0;
    for (size_t k = 0; k < b->task.n_vins; k++) {
        if (codes[k] != b->expected[k] && bad++ < 5)
            fprintf(stderr, "VIN %s: %s, expected %s\n", b->task.vins[k], ota_reject_name(codes[k]),
                    ota_reject_name(b->expected[k]));
    }
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_codes(const ota_reject_code *codes, size_t n)
{
    size_t count[OTA_REJ_CONFIG_WORD_MISSING + 1] = {0};
    for (size_t k = 0; k < n; k++)
        count[codes[k]]++;
    printf("  codes:");
    for (int r = 0; r <= OTA_REJ_CONFIG_WORD_MISSING; r++)
        printf(" %s %zu%s", ota_reject_name((ota_reject_code)r), count[r],
               r < OTA_REJ_CONFIG_WORD_MISSING ? "," : "\n");
}

static void print_line(const char *what, const double *ms, int rounds, size_t n)
{
    printf("  %-26s best %8.2f ms (%6.0f ns/VIN), median %8.2f ms\n", what, ms[0],
           ms[0] * 1e6 / (double)n, ms[rounds / 2]);
}

/* What one run measured; lookup_ms and rules_ms are sorted (best first). */
typedef struct {
    size_t found, rejected;
    int rounds;
    double built_ms, lookup_ms[100], rules_ms[100];
} results;

static void print_table(const bench *b, const results *r, const ota_reject_code *codes)
{
    size_t n = b->task.n_vins;
    printf("ota-task-bench: %zu vehicles (%zu found), one normal task naming %zu VINs, "
           "%zu rejected (%.1f%%), %d rounds; catalog built in %.0f ms\n",
           ota_catalog_vehicle_count(b->c), r->found, n, r->rejected,
           100.0 * (double)r->rejected / (double)n, r->rounds, r->built_ms);
    print_codes(codes, n);
    print_line("lookup only (baseline):", r->lookup_ms, r->rounds, n);
    print_line("task check + VIN rules:", r->rules_ms, r->rounds, n);
    printf("  ratio rules / lookup: %.1fx; whole task %s 1 s\n", r->rules_ms[0] / r->lookup_ms[0],
           r->rules_ms[r->rounds / 2] < 1000 ? "<" : ">=");
}

static void print_json(const bench *b, const results *r)
{
    size_t n = b->task.n_vins;
    printf("{\"vehicles\": %zu, \"vins\": %zu, \"rejected\": %zu, \"rounds\": %d, "
           "\"lookup_best_ms\": %.3f, \"lookup_median_ms\": %.3f, \"rules_best_ms\": %.3f, "
           "\"rules_median_ms\": %.3f, \"rules_ns_per_vin\": %.1f, \"lookup_ns_per_vin\": %.1f, "
           "\"rules_vs_lookup\": %.2f}\n",
           ota_catalog_vehicle_count(b->c), n, r->rejected, r->rounds, r->lookup_ms[0],
           r->lookup_ms[r->rounds / 2], r->rules_ms[0], r->rules_ms[r->rounds / 2],
           r->rules_ms[0] * 1e6 / (double)n, r->lookup_ms[0] * 1e6 / (double)n,
           r->rules_ms[0] / r->lookup_ms[0]);
}

/* [--json] [vehicles [rounds]] in any order; false on a usage error. */
static bool parse_args(int argc, char **argv, size_t *vehicles, int *rounds, bool *json)
{
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else if (pos == 0 && ++pos)
            *vehicles = strtoul(argv[i], NULL, 10);
        else if (pos == 1 && ++pos)
            *rounds = atoi(argv[i]);
        else
            return false;
    }
    return *vehicles >= REJECT_EVERY && *rounds >= 1 && *rounds <= 100;
}

int main(int argc, char **argv)
{
    bench b = {.n_vehicles = 100000};
    results r = {.rounds = 5};
    bool json = false;
    if (!parse_args(argc, argv, &b.n_vehicles, &r.rounds, &json))
        die("usage: ota-task-bench [--json] [vehicles >= 50 [rounds 1..100]]");

    double t0 = now_ms();
    if ((b.c = ota_catalog_new()) == NULL)
        die("out of memory");
    ota_map_init(&b.latest, sizeof(latest_rec), latest_key);
    add_model_package_strategy(b.c);
    for (size_t i = 0; i < b.n_vehicles; i++)
        add_vehicle(&b, i);
    build_task(&b);
    build_expected(&b);
    r.built_ms = now_ms() - t0;

    ota_task_type_rules rules[OTA_TASK_TYPE_COUNT];
    ota_task_default_type_rules(rules);
    ota_rules_env env = {rules, latest_of, &b.latest};
    ota_reject_code *codes = alloc_or_die(b.n_vehicles, sizeof *codes);
    size_t bad = 0;
    for (int k = 0; k < r.rounds; k++) {
        double a = now_ms();
        r.found = run_lookup(&b);
        double m = now_ms();
        run_rules(&b, &env, codes);
        double z = now_ms();
        r.lookup_ms[k] = m - a;
        r.rules_ms[k] = z - m;
        bad += count_mismatches(&b, codes);
    }
    qsort(r.lookup_ms, (size_t)r.rounds, sizeof r.lookup_ms[0], cmp_double);
    qsort(r.rules_ms, (size_t)r.rounds, sizeof r.rules_ms[0], cmp_double);
    for (size_t k = 0; k < b.n_vehicles; k++)
        r.rejected += codes[k] != OTA_REJ_NONE;
    if (json)
        print_json(&b, &r);
    else
        print_table(&b, &r, codes);

    free(codes);
    free(b.expected);
    free(b.vehicle_of);
    ota_task_rec_free(&b.task);
    ota_map_destroy(&b.latest, NULL);
    ota_catalog_free(b.c);
    if (bad) {
        fprintf(stderr, "ota-task-bench: %zu codes differ from the expected ones\n", bad);
        return 1;
    }
    return 0;
}
