/*
 * ota-catalog-bench.c — the in-memory catalog's benchmark (issue 3): start-up load time,
 * resident memory per vehicle and lookup latency, each beside a baseline from the same run
 * on the same SQLite file.
 *
 *   ota-catalog-bench [--vehicles N] [--packages N] [--rxswin PCT] [--json]
 *                                             (defaults 1000000, 10000, 0)
 *
 * 1. A child process fills a fresh SQLite store in a temporary directory through
 *    ota_store_apply (batches of 10,000 vehicles / 1,000 documents): 20 model/series, their
 *    models, strategies and default bindings, 2 files per package, N packages (documents
 *    from the codec's ota_json_from_package: 4 of 5 full, 1 of 5 delta, a third released),
 *    N vehicles (a few statuses, usages and fw versions, 32 config words on half of them,
 *    a public key on 10%, with --rxswin one of 8 RXSWIN lists on PCT% of them) and 1,000
 *    blacklisted VINs. A child, so that the parent's heap holds nothing of it when memory
 *    is measured.
 * 2. The parent measures opening the store + ota_catalog_load + closing it: time, and
 *    VmRSS (after malloc_trim) before and after, divided by the vehicle count (so SQLite's
 *    page cache is not counted, but any heap the load left fragmented is).
 * 3. Lookups: ns per ota_catalog_vehicle on random known VINs and on unknown ones, per
 *    ota_catalog_strategy_for, per ota_catalog_package_full and per max_version.
 * 4. Baselines with plain SQLite on the same file: one SELECT of all vehicle rows (reading
 *    every column, building nothing), and ns per indexed SELECT of one vehicle by VIN with
 *    a prepared statement.
 * It prints a table with ratios (or one JSON object with --json) and removes its files.
 */
#include "catalog_impl.h"
#include "ota_catalog_json.h"

#include <sqlite3.h>

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_MS 20
#define VEHICLE_BATCH 10000
#define DOC_BATCH 1000
#define N_BLACKLIST 1000
#define LOOKUPS 1000000
#define SQL_LOOKUPS 200000

static const char *const MODELS[] = {"EV01", "EV02", "EV03", "PH10", "PH20"};
static const char *const SERIES[] = {"S1", "S2", "LR", "PERF"};
static const char *const PLATFORMS[] = {"PA", "PB", "PC"};
static const char *const STATUSES[] = {"assembly_offline", "ok_offline", "certificate_printed",
                                       "in_stock", "sold"};
static const char *const USAGES[] = {"retail", "fleet", "test"};
static const char *const FWS[] = {"1.0.0", "1.1.0", "1.2.3", "2.0.0", "2.0.1", "2.1.0"};
static const char *const ECUS[] = {"BCM", "VCU", "TBOX", "ADAS"};

typedef struct {
    size_t vehicles, packages;
    bool json;
    unsigned rxswin_pct; /* vehicles with an RXSWIN list, % */
} opts;

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Bytes malloc has handed out and not had back (heap and mmap()ed blocks). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    return x ^ (x >> 33);
}

static void vin_of(char out[18], size_t i, bool known)
{
    snprintf(out, 18, "LSV%c0%012zu", known ? 'W' : 'X', i % 1000000000000u);
}

static const char *model_of(size_t ms)
{
    return MODELS[ms % 5];
}

static const char *series_of(size_t ms)
{
    return SERIES[ms / 5 % 4];
}

/* The k-th version of a model/series: 1.0.0, 1.0.1, ... */
static void version_of(char out[24], size_t k)
{
    snprintf(out, 24, "%zu.%zu.%zu", k / 100 + 1, k / 10 % 10, k % 10);
}

static int die(const char *what, const char *err)
{
    fprintf(stderr, "ota-catalog-bench: %s: %s\n", what, err);
    return -1;
}

/* ---- generating the store (child process) ---- */

typedef struct {
    ota_store *s;
    ota_store_doc docs[DOC_BATCH];
    char *texts[DOC_BATCH];
    char keys[DOC_BATCH][80];
    size_t n;
} doc_batch;

static int flush_docs(doc_batch *b)
{
    char err[256] = "";
    ota_catalog_change ch = {.docs = b->docs, .n_docs = b->n};
    int rc = b->n ? ota_store_apply(b->s, &ch, err, sizeof err) : 0;
    for (size_t i = 0; i < b->n; i++)
        free(b->texts[i]);
    b->n = 0;
    return rc ? die("ota_store_apply (documents)", err) : 0;
}

/* Queues a document (j is consumed). */
static int add_doc(doc_batch *b, ota_doc_kind kind, const char *key, cJSON *j)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (text == NULL)
        return die("emitting a document", key);
    snprintf(b->keys[b->n], sizeof b->keys[0], "%s", key);
    b->texts[b->n] = text;
    b->docs[b->n] = (ota_store_doc){kind, b->keys[b->n], text};
    return ++b->n == DOC_BATCH ? flush_docs(b) : 0;
}

static int gen_models(doc_batch *b)
{
    char key[80];
    for (size_t ms = 0; ms < N_MS; ms++) {
        ota_model_rec m = {
            (char *)model_of(ms), (char *)series_of(ms), ms % 2 == 0, 4, (char **)ECUS, 0, NULL};
        snprintf(key, sizeof key, "%s/%s", model_of(ms), series_of(ms));
        if (add_doc(b, OTA_DOC_MODEL, key, ota_json_from_model(&m)) != 0)
            return -1;
        snprintf(key, sizeof key, "default:%s/%s", model_of(ms), series_of(ms));
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "strategy", ms % 2 ? "st-odd" : "st-even");
        if (add_doc(b, OTA_DOC_BINDING, key, j) != 0)
            return -1;
    }
    ota_strategy_ecu se[] = {{(char *)"BCM", 0, true}, {(char *)"VCU", 1, true}};
    ota_strategy_rec st[] = {{(char *)"st-even", OTA_KIND_AUTO, OTA_CMP_AUTO, 2, se, 0, 0},
                             {(char *)"st-odd", OTA_KIND_FULL, OTA_CMP_ALWAYS, 2, se, 0, 0}};
    for (size_t i = 0; i < 2; i++)
        if (add_doc(b, OTA_DOC_STRATEGY, st[i].id, ota_json_from_strategy(&st[i])) != 0)
            return -1;
    return 0;
}

/* Package j: model/series j % 20, its k = j / 20-th; every 5th a delta. */
static int gen_package(doc_batch *b, size_t j)
{
    size_t ms = j % N_MS, k = j / N_MS;
    char version[24], from[24], key[32];
    ota_pkg_ecu ecus[2] = {{0}};
    ota_package_rec p = {.id = j + 1,
                         .model = (char *)model_of(ms),
                         .series = (char *)series_of(ms),
                         .baseline_description = (char *)"baseline of the bench",
                         .status = (ota_pkg_status)(k % 3 == 0   ? OTA_PKG_RELEASED
                                                    : k % 3 == 1 ? OTA_PKG_VERIFIED
                                                                 : OTA_PKG_DRAFT),
                         .n_ecus = 2,
                         .ecus = ecus};
    p.delta = k % 5 == 4;
    version_of(version, p.delta ? k - 1 : k);
    version_of(from, p.delta ? k - 2 : 0);
    p.version = version;
    p.from = p.delta ? from : NULL;
    for (size_t e = 0; e < 2; e++) {
        ecus[e] = (ota_pkg_ecu){(char *)ECUS[e],  OTA_ECU_TYPE_ECU, version, "",
                                (char *)"fw.bin", 1000000 + j};
        snprintf(ecus[e].sha256, sizeof ecus[e].sha256, "%016" PRIx64 "%016" PRIx64 "%032x", mix(j),
                 mix(e), 0);
        ota_file_rec f = {"", ecus[e].size};
        memcpy(f.sha256, ecus[e].sha256, sizeof f.sha256);
        if (add_doc(b, OTA_DOC_FILE, f.sha256, ota_json_from_file(&f)) != 0)
            return -1;
    }
    snprintf(key, sizeof key, "%zu", j + 1);
    return add_doc(b, OTA_DOC_PACKAGE, key, ota_json_from_package(&p));
}

/* One of 8 RXSWIN lists (a fleet has a few per model and software level), or NULL. */
static char *rxswin_of(uint64_t h, unsigned pct)
{
    static char lists[8][48];
    if (lists[0][0] == '\0')
        for (int l = 0; l < 8; l++)
            snprintf(lists[l], sizeof lists[l], "R10-EMC.%d,R79-STEER.%d,R100-BAT.1", l % 3, l);
    return h % 100 < pct ? lists[(h >> 8) % 8] : NULL;
}

static void gen_vehicle(ota_vehicle_rec *v, char vin[18], char key_seed, size_t i, unsigned rx)
{
    uint64_t h = mix(i);
    vin_of(vin, i, true);
    memset(v, 0, sizeof *v);
    v->vin = vin;
    v->model = (char *)model_of(h % N_MS);
    v->series = (char *)series_of(h % N_MS);
    v->platform = (char *)PLATFORMS[(h >> 8) % 3];
    v->status = (char *)STATUSES[(h >> 12) % 5];
    v->usage = (char *)USAGES[(h >> 16) % 3];
    v->fw = (char *)FWS[(h >> 20) % 6];
    static char words[32][12];
    if (words[0][0] == '\0')
        for (int w = 0; w < 32; w++)
            snprintf(words[w], sizeof words[w], "CW%08x", (unsigned)mix((uint64_t)w) & 0xffffff);
    v->config_word = (h >> 24) % 2 ? words[(h >> 25) % 32] : NULL;
    v->sold = v->status == STATUSES[4];
    v->activated = (h >> 30) % 2;
    v->passenger = (h >> 31) % 10 != 0;
    v->has_public_key = (h >> 40) % 10 == 0;
    if (v->has_public_key)
        memset(v->public_key, key_seed, OTA_PUBKEY_LEN);
    v->rxswin = rxswin_of(mix(h), rx);
}

static int gen_vehicles(ota_store *s, size_t n, unsigned rxswin_pct)
{
    static ota_vehicle_rec recs[VEHICLE_BATCH];
    static char vins[VEHICLE_BATCH][18];
    char err[256] = "";
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < VEHICLE_BATCH && i < n; k++, i++)
            gen_vehicle(&recs[k], vins[k], (char)i, i, rxswin_pct);
        ota_catalog_change ch = {.put_vehicles = recs, .n_put_vehicles = k};
        if (ota_store_apply(s, &ch, err, sizeof err) != 0)
            return die("ota_store_apply (vehicles)", err);
    }
    static const char *list[N_BLACKLIST];
    for (size_t i = 0; i < N_BLACKLIST; i++)
        list[i] = vins[i % VEHICLE_BATCH];
    ota_catalog_change ch = {.list = OTA_LIST_BLACKLIST,
                             .list_add = list,
                             .n_list_add = n < N_BLACKLIST ? n : N_BLACKLIST};
    return ota_store_apply(s, &ch, err, sizeof err) ? die("ota_store_apply (list)", err) : 0;
}

static int generate(const char *uri, const opts *o)
{
    char err[256] = "";
    static doc_batch b;
    b.s = ota_store_open(uri, err, sizeof err);
    if (b.s == NULL)
        return die("ota_store_open", err);
    int rc = gen_models(&b);
    for (size_t j = 0; rc == 0 && j < o->packages; j++)
        rc = gen_package(&b, j);
    if (rc == 0)
        rc = flush_docs(&b);
    if (rc == 0)
        rc = gen_vehicles(b.s, o->vehicles, o->rxswin_pct);
    ota_store_close(b.s);
    return rc;
}

/* ---- lookups ---- */

typedef struct {
    double vehicle_ns, vehicle_miss_ns, strategy_for_ns, package_full_ns, max_version_ns;
} lookup_times;

static volatile uintptr_t sink; /* keeps the lookups from being optimised away */

static char (*random_vins(size_t count, size_t n, bool known, unsigned seed))[18]
{
    char(*v)[18] = malloc(count * sizeof *v);
    for (size_t i = 0; v && i < count; i++)
        vin_of(v[i], mix(i ^ ((uint64_t)seed << 40)) % n, known);
    return v;
}

static double time_vehicles(const ota_catalog *c, char (*vins)[18], size_t count, bool strategy)
{
    uintptr_t acc = 0;
    double t = now_s();
    for (size_t i = 0; i < count; i++) {
        const ota_vehicle *v = ota_catalog_vehicle(c, vins[i]);
        acc += strategy && v ? (uintptr_t)ota_catalog_strategy_for(c, v) : (uintptr_t)v;
    }
    t = now_s() - t;
    sink = acc;
    return t * 1e9 / (double)count;
}

typedef struct {
    const char *model, *series;
    char version[24];
} pkg_query;

static void time_packages(const ota_catalog *c, const opts *o, lookup_times *lt)
{
    enum { NQ = 4096 };
    static pkg_query q[NQ];
    size_t per_ms = o->packages / N_MS ? o->packages / N_MS : 1;
    for (size_t i = 0; i < NQ; i++) {
        size_t ms = mix(i) % N_MS, k = mix(i + NQ) % per_ms;
        q[i].model = model_of(ms);
        q[i].series = series_of(ms);
        version_of(q[i].version, k % 5 == 4 ? k - 1 : k); /* a full version */
    }
    uintptr_t acc = 0;
    double t = now_s();
    for (size_t i = 0; i < LOOKUPS; i++) {
        const pkg_query *x = &q[i % NQ];
        acc += (uintptr_t)ota_catalog_package_full(c, x->model, x->series, x->version);
    }
    lt->package_full_ns = (now_s() - t) * 1e9 / LOOKUPS;
    t = now_s();
    for (size_t i = 0; i < LOOKUPS; i++) {
        const pkg_query *x = &q[i % NQ];
        acc += (uintptr_t)ota_catalog_max_version(c, x->model, x->series, i & 1);
    }
    lt->max_version_ns = (now_s() - t) * 1e9 / LOOKUPS;
    sink = acc;
}

static int time_lookups(const ota_catalog *c, const opts *o, lookup_times *lt)
{
    size_t n = o->vehicles ? o->vehicles : 1;
    char(*hit)[18] = random_vins(LOOKUPS, n, true, 1);
    char(*miss)[18] = random_vins(LOOKUPS, n, false, 2);
    if (hit == NULL || miss == NULL) {
        free(hit);
        free(miss);
        return die("lookups", "out of memory");
    }
    lt->vehicle_ns = time_vehicles(c, hit, LOOKUPS, false);
    lt->vehicle_miss_ns = time_vehicles(c, miss, LOOKUPS, false);
    lt->strategy_for_ns = time_vehicles(c, hit, LOOKUPS, true) - lt->vehicle_ns;
    time_packages(c, o, lt);
    free(hit);
    free(miss);
    return 0;
}

/* ---- SQLite baselines ---- */

#define VEHICLE_COLS                                                                               \
    "vin, model, series, platform, status, usage, sold, activated, passenger, config_word, fw, "   \
    "public_key, rxswin"

/* Reads every column of the current row (what a loader must at least do). */
static size_t touch_row(sqlite3_stmt *st)
{
    size_t acc = 0;
    for (int i = 0; i < 12; i++) {
        acc += (size_t)sqlite3_column_bytes(st, i);
        acc += sqlite3_column_type(st, i) == SQLITE_INTEGER ? (size_t)sqlite3_column_int(st, i)
                                                            : (size_t)sqlite3_column_text(st, i);
    }
    return acc;
}

static int sql_baselines(const char *path, size_t n, double *scan_s, double *select_ns)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *all = NULL, *one = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT " VEHICLE_COLS " FROM ota_vehicle", -1, &all, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT " VEHICLE_COLS " FROM ota_vehicle WHERE vin = ?1", -1,
                                &one, NULL);
    char(*vins)[18] = rc == SQLITE_OK ? random_vins(SQL_LOOKUPS, n ? n : 1, true, 3) : NULL;
    if (vins != NULL) {
        size_t acc = 0;
        double t = now_s();
        while ((rc = sqlite3_step(all)) == SQLITE_ROW)
            acc += touch_row(all);
        *scan_s = now_s() - t;
        t = now_s();
        for (size_t i = 0; i < SQL_LOOKUPS && rc == SQLITE_DONE; i++) {
            sqlite3_bind_text(one, 1, vins[i], 17, SQLITE_STATIC);
            if ((rc = sqlite3_step(one)) == SQLITE_ROW)
                acc += touch_row(one);
            rc = sqlite3_reset(one) == SQLITE_OK ? SQLITE_DONE : SQLITE_ERROR;
        }
        *select_ns = (now_s() - t) * 1e9 / SQL_LOOKUPS;
        sink = acc;
    }
    if (rc != SQLITE_DONE)
        die("SQLite baseline", db ? sqlite3_errmsg(db) : "cannot open");
    free(vins);
    sqlite3_finalize(all);
    sqlite3_finalize(one);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- report ---- */

typedef struct {
    double gen_s, load_s, scan_s, select_ns;
    double rss_per_vehicle, heap_per_vehicle, map_per_vehicle;
    double keys_per_vehicle, other_maps_per_vehicle;
    long rss_before_kb, rss_after_kb;
    lookup_times lt;
} results;

static void print_json(const opts *o, const results *r)
{
    printf("{\"vehicles\": %zu, \"packages\": %zu, \"rxswin_pct\": %u, \"generate_s\": %.3f, "
           "\"load_s\": %.3f, "
           "\"sqlite_select_all_s\": %.3f, \"load_vs_select_all\": %.2f, "
           "\"rss_before_kb\": %ld, \"rss_after_kb\": %ld, \"rss_bytes_per_vehicle\": %.1f, "
           "\"heap_bytes_per_vehicle\": %.1f, \"vehicle_map_bytes_per_vehicle\": %.1f, "
           "\"vehicle_record_bytes\": %zu, \"public_key_bytes_per_vehicle\": %.1f, "
           "\"other_map_bytes_per_vehicle\": %.1f, "
           "\"vehicle_lookup_ns\": %.1f, "
           "\"vehicle_miss_ns\": %.1f, \"sqlite_select_by_vin_ns\": %.1f, "
           "\"select_vs_lookup\": %.1f, \"strategy_for_ns\": %.1f, \"package_full_ns\": %.1f, "
           "\"max_version_ns\": %.1f}\n",
           o->vehicles, o->packages, o->rxswin_pct, r->gen_s, r->load_s, r->scan_s,
           r->load_s / r->scan_s, r->rss_before_kb, r->rss_after_kb, r->rss_per_vehicle,
           r->heap_per_vehicle, r->map_per_vehicle, sizeof(ota_vehicle), r->keys_per_vehicle,
           r->other_maps_per_vehicle, r->lt.vehicle_ns, r->lt.vehicle_miss_ns, r->select_ns,
           r->select_ns / r->lt.vehicle_ns, r->lt.strategy_for_ns, r->lt.package_full_ns,
           r->lt.max_version_ns);
}

static void print_table(const opts *o, const results *r)
{
    printf("ota-catalog-bench: %zu vehicles (%u%% with RXSWINs), %zu packages (store written in "
           "%.1f s)\n\n",
           o->vehicles, o->rxswin_pct, o->packages, r->gen_s);
    printf("%-34s %14s   %-34s %10s\n", "catalog", "", "baseline (same run)", "ratio");
    printf("%-34s %12.3f s   %-25s %6.3f s %9.2fx\n", "start-up load (ota_catalog_load)", r->load_s,
           "SQLite SELECT all rows", r->scan_s, r->load_s / r->scan_s);
    printf("%-34s %12.1f B   %-25s %6.0f B %10s\n", "resident memory per vehicle",
           r->rss_per_vehicle, "limit", 128.0, "");
    printf("%-34s %12.1f B   (VmRSS %ld -> %ld kB)\n", "  malloc()ed and kept, per vehicle",
           r->heap_per_vehicle, r->rss_before_kb, r->rss_after_kb);
    printf("%-34s %12.1f B   (%zu-byte record + index + bitmap)\n", "  of which the vehicle map",
           r->map_per_vehicle, sizeof(ota_vehicle));
    printf("%-34s %12.1f B   (32-byte blocks in slabs)\n", "  of which public keys",
           r->keys_per_vehicle);
    printf("%-34s %12.1f B   (records and tables; not the texts they own)\n",
           "  of which the other maps", r->other_maps_per_vehicle);
    printf("%-34s %11.1f ns   %-23s %6.0f ns %9.1fx\n", "vehicle lookup (random VIN)",
           r->lt.vehicle_ns, "SQLite SELECT by VIN", r->select_ns, r->select_ns / r->lt.vehicle_ns);
    printf("%-34s %11.1f ns\n", "vehicle lookup (unknown VIN)", r->lt.vehicle_miss_ns);
    printf("%-34s %11.1f ns\n", "strategy_for (after the lookup)", r->lt.strategy_for_ns);
    printf("%-34s %11.1f ns\n", "package_full (model/series/version)", r->lt.package_full_ns);
    printf("%-34s %11.1f ns\n", "max_version", r->lt.max_version_ns);
}

/* ---- main ---- */

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){1000000, 10000, false, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--vehicles") == 0) {
            o->vehicles = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--packages") == 0) {
            o->packages = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--rxswin") == 0) {
            unsigned long pct = strtoul(argv[++i], NULL, 10);
            o->rxswin_pct = pct > 100 ? 100 : (unsigned)pct;
        } else {
            fprintf(stderr, "usage: %s [--vehicles N] [--packages N] [--rxswin PCT] [--json]\n",
                    argv[0]);
            return -1;
        }
    }
    return 0;
}

/* Fills the store in a child process. 0, or -1. */
static int generate_in_child(const char *uri, const opts *o)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(generate(uri, o) == 0 ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return die("generating the store", "the child failed");
    return 0;
}

/* Bytes of the public keys' slabs. */
static size_t key_slab_bytes(const cat_keys *k)
{
    size_t n = 0;
    for (const cat_key_slab *s = k->slabs; s != NULL; s = s->next)
        n += sizeof *s;
    return n;
}

/* Bytes of every map but the vehicles' (their records and tables, not what records point
 * to: package texts, interned strings' bytes). */
static size_t other_map_bytes(const ota_catalog *c)
{
    const ota_map *maps[] = {&c->strings,  &c->ms,        &c->ecus,       &c->files,
                             &c->packages, &c->pkg_names, &c->strategies, &c->vin_bindings,
                             &c->groups,   &c->rxswin};
    size_t n = 0;
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        n += ota_map_bytes(maps[i]);
    for (size_t l = 0; l < OTA_LIST_COUNT; l++)
        n += ota_map_bytes(&c->lists[l]);
    return n;
}

static int measure_load(const char *uri, ota_catalog *c, results *r, size_t n)
{
    char err[256] = "";
    malloc_trim(0);
    r->rss_before_kb = rss_kb();
    size_t heap0 = heap_in_use();
    double t = now_s();
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (s == NULL)
        return die("ota_store_open", err);
    int rc = ota_catalog_load(c, s, err, sizeof err);
    ota_store_close(s);
    r->load_s = now_s() - t;
    malloc_trim(0); /* what is left is the catalog (and any heap it fragmented) */
    r->rss_after_kb = rss_kb();
    size_t heap1 = heap_in_use();
    if (rc != 0)
        return die("ota_catalog_load", err);
    n = n ? n : 1;
    r->rss_per_vehicle = (double)(r->rss_after_kb - r->rss_before_kb) * 1024.0 / (double)n;
    r->map_per_vehicle = (double)ota_map_bytes(&c->vehicles) / (double)n;
    r->keys_per_vehicle = (double)key_slab_bytes(&c->keys) / (double)n;
    r->other_maps_per_vehicle = (double)other_map_bytes(c) / (double)n;
    r->heap_per_vehicle = ((double)heap1 - (double)heap0) / (double)n;
    return 0;
}

static void remove_files(const char *dir, const char *db)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[600];
    for (size_t i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%s%s", db, suffixes[i]);
        unlink(buf);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    const char *tmp = getenv("TMPDIR");
    char dir[512], db[560], uri[600];
    snprintf(dir, sizeof dir, "%s/ota-catalog-bench-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp", dir);
        return 1;
    }
    snprintf(db, sizeof db, "%s/catalog.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", db);

    results r = {0};
    ota_catalog *c = NULL;
    double t = now_s();
    int rc = generate_in_child(uri, &o);
    r.gen_s = now_s() - t;
    if (rc == 0 && (c = ota_catalog_new()) == NULL)
        rc = die("ota_catalog_new", "out of memory");
    if (rc == 0)
        rc = measure_load(uri, c, &r, o.vehicles);
    if (rc == 0 && ota_catalog_vehicle_count(c) != o.vehicles)
        rc = die("ota_catalog_load", "wrong vehicle count");
    if (rc == 0)
        rc = time_lookups(c, &o, &r.lt);
    if (rc == 0)
        rc = sql_baselines(db, o.vehicles, &r.scan_s, &r.select_ns);
    if (rc == 0)
        (o.json ? print_json : print_table)(&o, &r);
    ota_catalog_free(c);
    remove_files(dir, db);
    return rc == 0 ? 0 : 1;
}
