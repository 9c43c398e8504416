/*
 * ota-target-bench.c — benchmark of targeting by query and of the timer heap (issue 16:
 * plugin/core/target.c, timers.c).
 *
 * Builds a catalog of N vehicles in memory (default 1,000,000, all of model M1/S1 so
 * that a task's target can match every one of them; statuses, usages, firmware versions
 * and config words vary; 1% blacklisted; a static group of N/100 VINs and a dynamic
 * group). Times, best and median of R rounds (default 5):
 *   count     compile + count of several queries (every vehicle; fw_below + status;
 *             a static group; a dynamic group; a VIN prefix)
 *   preview   previewTarget's work for {} on a normal task: match + every SPEC §6 per-VIN
 *             rule on all N vehicles (the issue's < 1 s target)
 *   resolve   createTask's resolution of {}: the sorted list of N VINs (copied)
 *   create    what createTask does on the broker thread (plugin/control_tasks.c), at N
 *             up to plugin_opt_max_task_vins (1,000,000): resolve (the matching vehicles
 *             sorted by VIN, their VINs copied), every rule on every vehicle (check_vins:
 *             no lookup by VIN, no duplicate set for a target), the executions and the
 *             store records (create_change), then the apply: the task added (its
 *             executions already in VIN order, ota_tasks_add), counted, and the answer's
 *             counts (over 100,000 VINs the answer gives counts, not lists)
 *   store     once: the writer's part, N executions into a fresh SQLite store in
 *             batches of 50,000 (one transaction each, as control_tasks.c create_run)
 *   memory    bytes per execution in memory (ota_task_exec)
 *   timers    N timers set at random due times, each moved once, then all popped in order
 * Checks that {} matches N and that the preview accepts what it should (exit 1 if not).
 *
 * Usage: ota-target-bench [--json] [vehicles [rounds]]
 */
#include "catalog.h"
#include "groups.h"
#include "ota_catalog_json.h"
#include "target.h"
#include "tasks.h"
#include "timers.h"

#include <unistd.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *bdup(const char *s)
{
    char *p = s ? strdup(s) : NULL;
    if (s && !p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void make_vin(char out[18], size_t i)
{
    char buf[32];
    snprintf(buf, sizeof buf, "LSV%c%013zu", "ABCDEFGH"[i % 8], i % 10000000000000u);
    memcpy(out, buf, 17);
    out[17] = '\0';
}

static const char *const STATUSES[] = {"in_stock", "sold", "sold", "sold", "ok_offline"};
static const char *const USAGES[] = {"retail", "retail", "fleet", "test"};
static const char *const FWS[] = {"1.0.0", "1.2.0", "1.10.0", "1.9.3", "2.0.0"};
static const char *const CWS[] = {"0001", "0003", "0009", "000F"};

static ota_catalog *build(size_t n)
{
    ota_catalog *c = ota_catalog_new();
    ota_model_rec m = {0};
    m.model = bdup("M1");
    m.series = bdup("S1");
    m.supports_config_word = true;
    if (!c || ota_catalog_put_model(c, &m) != 0)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        char vin[18];
        make_vin(vin, i);
        ota_vehicle_rec r = {0};
        r.vin = bdup(vin);
        r.model = bdup("M1");
        r.series = bdup("S1");
        r.status = bdup(STATUSES[i % 5]);
        r.usage = bdup(USAGES[i % 4]);
        r.fw = bdup(FWS[(i / 7) % 5]);
        r.config_word = bdup(CWS[(i / 3) % 4]);
        r.passenger = true;
        if (ota_catalog_put_vehicle(c, &r) != 0)
            exit(2);
        ota_vehicle_rec_free(&r);
        if (i % 100 == 0 && ota_catalog_list_add(c, OTA_LIST_BLACKLIST, vin) < 0)
            exit(2);
    }
    return c;
}

static void add_groups(ota_catalog *c, size_t n)
{
    ota_group_rec g = {0};
    g.name = bdup("pilot");
    g.n_vins = n / 100;
    g.vins = calloc(g.n_vins ? g.n_vins : 1, sizeof *g.vins);
    for (size_t i = 0; i < g.n_vins; i++) {
        char vin[18];
        make_vin(vin, i * 100 + 1);
        g.vins[i] = bdup(vin);
    }
    if (ota_catalog_put_group(c, &g) != 0)
        exit(2);
    ota_group_rec_free(&g);
    cJSON *q = cJSON_Parse("{\"status\":[\"sold\"],\"usage\":[\"retail\"]}");
    char err[256];
    g = (ota_group_rec){0};
    g.name = bdup("sold_retail");
    g.dynamic = true;
    if (ota_json_target(q, "", &g.query, err, sizeof err) != 0 || ota_catalog_put_group(c, &g) != 0)
        exit(2);
    cJSON_Delete(q);
    ota_group_rec_free(&g);
}

static ota_target_match *compile(ota_catalog *c, const char *json, ota_target *t)
{
    char err[256];
    cJSON *j = cJSON_Parse(json);
    ota_target_match *m = NULL;
    if (!j || ota_json_target(j, "", t, err, sizeof err) != 0 ||
        ota_target_compile(c, t, NULL, NULL, "", &m, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", json, err);
        exit(2);
    }
    cJSON_Delete(j);
    return m;
}

static const char *const QUERIES[] = {
    "{}",
    "{\"fw_below\":\"1.10.0\",\"status\":[\"sold\",\"in_stock\"]}",
    "{\"groups\":[\"pilot\"]}",
    "{\"groups\":[\"sold_retail\"],\"config_bits_set\":[3]}",
    "{\"vin_prefix\":\"LSVA\",\"not_lists\":[\"blacklist\"]}",
};
#define N_QUERIES (sizeof QUERIES / sizeof QUERIES[0])

static double run_counts(ota_catalog *c, size_t counts[N_QUERIES])
{
    double t0 = now_s();
    for (size_t q = 0; q < N_QUERIES; q++) {
        ota_target t;
        ota_target_match *m = compile(c, QUERIES[q], &t);
        counts[q] = ota_target_count(c, m);
        ota_target_match_free(m);
        ota_target_free(&t);
    }
    return now_s() - t0;
}

__attribute__((noinline)) static double run_preview(ota_catalog *c, ota_target_preview *pv)
{
    ota_task_rec task = {
        .type = OTA_TASK_NORMAL, .model = "M1", .series = "S1", .version = "2.0.0"};
    ota_rules_env env = {NULL, NULL, NULL};
    double t0 = now_s();
    ota_target t;
    ota_target_match *m = compile(c, "{\"model\":\"M1\",\"series\":\"S1\"}", &t);
    ota_target_preview_run(c, m, &env, &task, pv);
    double dt = now_s() - t0;
    ota_target_match_free(m);
    ota_target_free(&t);
    return dt;
}

/* Every one of the n vehicles as a sorted VIN list, as createTask resolves a target. */
static char **resolve_all(ota_catalog *c, size_t n)
{
    ota_target t;
    ota_target_match *m = compile(c, "{\"model\":\"M1\",\"series\":\"S1\"}", &t);
    char **vins = NULL;
    size_t got = 0;
    if (ota_target_vins(c, m, n, &vins, &got) != 0 || got != n)
        exit(1);
    ota_target_match_free(m);
    ota_target_free(&t);
    return vins;
}

static double run_resolve(ota_catalog *c, size_t n)
{
    double t0 = now_s();
    char **vins = resolve_all(c, n);
    double dt = now_s() - t0;
    ota_json_strings_free(vins, n);
    return dt;
}

/* The executions and store records of the accepted and rejected VINs (create_change). */
static ota_exec_rec *make_recs(char **vins, const uint8_t *codes, size_t n, ota_task_exec *execs)
{
    ota_exec_rec *recs = calloc(n ? n : 1, sizeof *recs);
    if (recs == NULL)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        ota_reject_code r = (ota_reject_code)codes[i];
        execs[i] = (ota_task_exec){.state = r ? OTA_EXEC_REJECTED : OTA_EXEC_QUEUED,
                                   .code = (uint16_t)r,
                                   .notified_ms = -1};
        memcpy(execs[i].vin, vins[i], OTA_VIN_LEN);
        recs[i] = (ota_exec_rec){.task = "T000001",
                                 .vin = vins[i],
                                 .state = r ? OTA_EXEC_REJECTED : OTA_EXEC_QUEUED,
                                 .code = r ? ota_reject_name(r) : NULL,
                                 .notified_ms = -1,
                                 .updated_ms = 1};
    }
    return recs;
}

/* createTask's resolution (plugin/control_targets.c resolve): the matching vehicles sorted
 * by VIN (ota_target_vehicles), and their VINs copied. */
static char **resolve_vehicles(ota_catalog *c, size_t n, const ota_vehicle ***v)
{
    ota_target t;
    ota_target_match *m = compile(c, "{\"model\":\"M1\",\"series\":\"S1\"}", &t);
    size_t got = 0;
    if (ota_target_vehicles(c, m, n, v, &got) != 0 || got != n)
        exit(1);
    char **vins = calloc(n, sizeof *vins);
    if (vins == NULL)
        exit(2);
    for (size_t i = 0; i < n; i++)
        vins[i] = bdup((*v)[i]->vin);
    ota_target_match_free(m);
    ota_target_free(&t);
    return vins;
}

static ota_exec_rec *g_recs; /* the last round's records, for the store stage */
static char **g_vins;
/* create's stages in the last round, CPU seconds of this process (the machine is shared:
 * CPU time is what the broker thread would spend, wall time adds the waiting) */
static double g_stage[4];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static double run_create(ota_catalog *c, size_t n, size_t *accepted)
{
    ota_task_rec task = {
        .type = OTA_TASK_NORMAL, .model = "M1", .series = "S1", .version = "2.0.0"};
    ota_rules_env env = {NULL, NULL, NULL};
    double t0 = now_s(), c0 = cpu_s();
    const ota_vehicle **veh = NULL;
    char **vins = resolve_vehicles(c, n, &veh);
    double c1 = cpu_s();
    uint8_t *codes = malloc(n);
    ota_task_exec *execs = malloc(n * sizeof *execs);
    if (codes == NULL || execs == NULL)
        exit(2);
    *accepted = 0;
    for (size_t i = 0; i < n; i++) { /* a target's VINs are distinct: no duplicate set */
        codes[i] = (uint8_t)ota_task_check_vehicle(c, &env, &task, vins[i], veh[i], NULL);
        *accepted += codes[i] == OTA_REJ_NONE;
    }
    double c2 = cpu_s();
    ota_exec_rec *recs = make_recs(vins, codes, n, execs);
    double c3 = cpu_s();
    /* the apply: the task takes its executions (sorted by VIN) and counts them */
    ota_tasks *tasks = ota_tasks_new();
    ota_task_rec rec = {.id = bdup("T000001"),
                        .name = bdup("bench"),
                        .model = bdup("M1"),
                        .series = bdup("S1"),
                        .version = bdup("2.0.0")};
    if (tasks == NULL || ota_tasks_add(tasks, &rec, OTA_TASK_ACTIVE, 1, 1, execs, n) != 0)
        exit(2);
    size_t by[OTA_REJ_SLOTS] = {0};
    for (size_t i = 0; i < n; i++)
        by[codes[i] < OTA_REJ_SLOTS ? codes[i] : 0]++;
    double dt = now_s() - t0, c4 = cpu_s();
    g_stage[0] = c1 - c0, g_stage[1] = c2 - c1, g_stage[2] = c3 - c2, g_stage[3] = c4 - c3;
    if (by[OTA_REJ_NONE] != *accepted ||
        ota_tasks_get(tasks, "T000001")->count[OTA_EXEC_QUEUED] != *accepted)
        exit(1);
    ota_tasks_free(tasks);
    free(veh);
    free(codes);
    free(g_recs);
    if (g_vins)
        ota_json_strings_free(g_vins, n);
    g_recs = recs, g_vins = vins;
    return dt;
}

/* The writer's part: N executions stored in batches of 50,000 into a fresh SQLite file. */
static double run_store(size_t n)
{
    char dir[] = "/tmp/ota-target-bench-XXXXXX", uri[128], path[96], err[256];
    if (mkdtemp(dir) == NULL)
        exit(2);
    snprintf(path, sizeof path, "%s/store.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "store: %s\n", err);
        exit(2);
    }
    double t0 = now_s();
    for (size_t k = 0; k < n; k += 50000) {
        ota_catalog_change part = {.put_execs = g_recs + k,
                                   .n_put_execs = n - k < 50000 ? n - k : 50000};
        if (ota_store_apply(s, &part, err, sizeof err) != 0) {
            fprintf(stderr, "store: %s\n", err);
            exit(2);
        }
    }
    double dt = now_s() - t0;
    ota_store_close(s);
    unlink(path);
    char side[128];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    rmdir(dir);
    return dt;
}

static double run_timers(size_t n)
{
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    ota_timers *t = ota_timers_new();
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        if (ota_timers_set(t, i, (int64_t)(rng % 3600000)) != 0)
            exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        ota_timers_set(t, i, (int64_t)(rng % 3600000));
    }
    uint64_t id;
    int64_t due, last = -1;
    size_t popped = 0;
    while (ota_timers_pop_due(t, INT64_MAX, &id, &due)) {
        if (due < last)
            exit(1);
        last = due;
        popped++;
    }
    double dt = now_s() - t0;
    ota_timers_free(t);
    if (popped != n)
        exit(1);
    return dt;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double best, median;
} stat;

static stat summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (stat){v[0], v[n / 2]};
}

int main(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    int a = json ? 2 : 1;
    size_t n = argc > a ? strtoul(argv[a], NULL, 10) : 1000000;
    int rounds = argc > a + 1 ? atoi(argv[a + 1]) : 5;
    if (n < 100 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: ota-target-bench [--json] [vehicles>=100 [rounds 1..100]]\n");
        return 2;
    }
    double t0 = now_s();
    ota_catalog *c = build(n);
    add_groups(c, n);
    double build_s = now_s() - t0;
    double *tc = calloc((size_t)rounds, sizeof *tc), *tp = calloc((size_t)rounds, sizeof *tp);
    double *tr = calloc((size_t)rounds, sizeof *tr), *tt = calloc((size_t)rounds, sizeof *tt);
    double *tk = calloc((size_t)rounds, sizeof *tk);
    size_t created = 0;
    size_t counts[N_QUERIES];
    ota_target_preview pv;
    for (int r = 0; r < rounds; r++) {
        tc[r] = run_counts(c, counts);
        tp[r] = run_preview(c, &pv);
        tr[r] = run_resolve(c, n);
        tk[r] = run_create(c, n, &created);
        tt[r] = run_timers(n);
    }
    /* {} matches all; 1% blacklisted; fw 2.0.0 (1 in 5) is the same version */
    if (counts[0] != n || pv.matched != n || pv.by_code[OTA_REJ_BLACKLISTED] != (n + 99) / 100 ||
        pv.by_code[OTA_REJ_SAME_VERSION] == 0 || created != pv.by_code[OTA_REJ_NONE]) {
        fprintf(stderr, "unexpected counts\n");
        return 1;
    }
    stat sc = summarize(tc, rounds), sp = summarize(tp, rounds), sr = summarize(tr, rounds),
         st = summarize(tt, rounds), sk = summarize(tk, rounds);
    double store_s = getenv("OTA_BENCH_NO_STORE") ? 0 : run_store(n);
    if (json) {
        printf("{\"vehicles\":%zu,\"rounds\":%d,\"build_s\":%.3f,\"count_%zu_queries_s\":%.4f,"
               "\"preview_s\":%.4f,\"resolve_s\":%.4f,\"create_s\":%.4f,\"timers_s\":%.4f,"
               "\"store_s\":%.3f,\"exec_bytes\":%zu,\"accepted\":%zu,"
               "\"create_cpu_s\":{\"resolve\":%.4f,\"rules\":%.4f,\"records\":%.4f,"
               "\"apply\":%.4f}}\n",
               n, rounds, build_s, N_QUERIES, sc.median, sp.median, sr.median, sk.median, st.median,
               store_s, sizeof(ota_task_exec), pv.by_code[OTA_REJ_NONE], g_stage[0], g_stage[1],
               g_stage[2], g_stage[3]);
    } else {
        printf("vehicles %zu, rounds %d (best / median), catalog built in %.2f s\n", n, rounds,
               build_s);
        printf("  count, %zu queries   %8.1f / %8.1f ms  (%.1f ns per vehicle and query)\n",
               N_QUERIES, sc.best * 1e3, sc.median * 1e3, sc.median * 1e9 / (double)n / N_QUERIES);
        for (size_t q = 0; q < N_QUERIES; q++)
            printf("      %-60s %zu\n", QUERIES[q], counts[q]);
        printf("  preview (match+rules)%8.1f / %8.1f ms  (accepted %zu of %zu)\n", sp.best * 1e3,
               sp.median * 1e3, pv.by_code[OTA_REJ_NONE], pv.matched);
        printf("  resolve sorted VINs  %8.1f / %8.1f ms\n", sr.best * 1e3, sr.median * 1e3);
        printf("  create (broker)      %8.1f / %8.1f ms  (resolve, rules, records, apply)\n",
               sk.best * 1e3, sk.median * 1e3);
        printf("      CPU: resolve %.1f, rules %.1f, records %.1f, apply %.1f ms (last round)\n",
               g_stage[0] * 1e3, g_stage[1] * 1e3, g_stage[2] * 1e3, g_stage[3] * 1e3);
        printf("  store (writer)       %8.1f ms once  (%zu executions, SQLite, 50,000 a batch)\n",
               store_s * 1e3, n);
        printf("  memory               %zu bytes per execution (ota_task_exec)\n",
               sizeof(ota_task_exec));
        printf("  timers set+move+pop  %8.1f / %8.1f ms  (%zu timers)\n", st.best * 1e3,
               st.median * 1e3, n);
    }
    free(tc);
    free(tp);
    free(tr);
    free(tt);
    free(tk);
    free(g_recs);
    ota_json_strings_free(g_vins, n);
    ota_catalog_free(c);
    return 0;
}
