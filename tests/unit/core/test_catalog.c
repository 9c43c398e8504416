/*
 * test_catalog.c — cmocka tests of the in-memory catalog (plugin/core/catalog.h) and of the
 * hash map under it (plugin/core/map.h).
 *
 * Covers: the map (growth, removal with backward shift checked against a reference under
 * random churn, wrap-around in a small table, iteration, uint64 keys, record references);
 * vehicles (put, replace, delete, interned strings shared, public keys, record copies,
 * RXSWIN lists by id and the flags beside them); models and
 * ecu_known; files; packages (full and delta lookups, version order 2.10 > 2.9, max_version
 * with and without released_only, iteration order and filters, next id, replacement,
 * status); strategies, bindings, strategy_for and strategies_of; lists; the generation every
 * change renews (and no two catalogs share); and the load from
 * a real SQLite store (documents made by the codec's emitters), including the errors for
 * documents that no longer parse.
 */
#include "catalog.h"
#include "map.h"
#include "ota_catalog_json.h"
#include "test_fixtures.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define VIN_A "LSVAA000000000001"
#define VIN_B "LSVAA000000000002"
#define VIN_C "LSVAA000000000003"
#define SHA_1 TEST_SHA_1
#define SHA_2 "2222222222222222222222222222222222222222222222222222222222222222"

/* ---- building records ---- */

static ota_vehicle_rec vehicle(const char *vin, const char *model, const char *series,
                               const char *fw, int key_byte)
{
    ota_vehicle_rec r = test_vehicle(vin, model, series, "in_stock", "retail", fw);
    if (key_byte >= 0) {
        r.has_public_key = true;
        memset(r.public_key, key_byte, OTA_PUBKEY_LEN);
    }
    return r;
}

static void put_vehicle(ota_catalog *c, const char *vin, const char *model, const char *series,
                        const char *fw, int key_byte)
{
    ota_vehicle_rec r = vehicle(vin, model, series, fw, key_byte);
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    assert_null(r.vin); /* taken */
}

static void put_package(ota_catalog *c, uint64_t id, const char *m, const char *s,
                        const char *version, const char *from)
{
    ota_package_rec r = test_package(id, m, s, version, from, "baseline");
    assert_int_equal(ota_catalog_put_package(c, &r), 0);
    assert_null(r.model);
}

static ota_strategy_rec strategy(const char *id, const char *ecu)
{
    ota_strategy_rec r = test_strategy(id, 1, &(ota_strategy_ecu){(char *)ecu, 0, true});
    r.package_kind = OTA_KIND_AUTO;
    return r;
}

static void put_strategy(ota_catalog *c, const char *id, const char *ecu)
{
    ota_strategy_rec r = strategy(id, ecu);
    assert_int_equal(ota_catalog_put_strategy(c, &r), 0);
    assert_null(r.id);
}

/* ---- the map ---- */

typedef struct {
    char key[24];
    int value;
} kv;

static ota_map_key kv_key(const void *rec)
{
    return ota_map_key_str(((const kv *)rec)->key);
}

static void kv_put(ota_map *m, const char *key, int value)
{
    kv r = {{0}, value};
    snprintf(r.key, sizeof r.key, "%s", key);
    assert_null(ota_map_get_str(m, key));
    kv *stored = ota_map_put(m, &r);
    assert_non_null(stored);
    assert_int_equal(stored->value, value);
}

static void test_map_growth_and_removal(void **state)
{
    (void)state;
    ota_map m;
    ota_map_init(&m, sizeof(kv), kv_key);
    assert_null(ota_map_get_str(&m, "nothing"));
    enum { N = 50000 };
    char key[24];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        kv_put(&m, key, i);
    }
    assert_int_equal(ota_map_count(&m), N);
    assert_true(m.mask + 1 >= N * 4 / 3); /* at most 3/4 full */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        kv *r = ota_map_get_str(&m, key);
        assert_non_null(r);
        assert_int_equal(r->value, i);
    }
    for (int i = 0; i < N; i += 2) { /* every other one out */
        snprintf(key, sizeof key, "key-%d", i);
        ota_map_remove(&m, ota_map_get_str(&m, key), NULL);
    }
    assert_int_equal(ota_map_count(&m), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        kv *r = ota_map_get_str(&m, key);
        if (i % 2 == 0) {
            assert_null(r);
        } else {
            assert_non_null(r);
            assert_int_equal(r->value, i);
        }
    }
    size_t pos = 0, seen = 0;
    for (kv *r; (r = ota_map_next(&m, &pos)) != NULL; seen++)
        assert_int_equal(r->value % 2, 1);
    assert_int_equal(seen, N / 2);
    assert_true(ota_map_bytes(&m) > N * sizeof(kv));
    ota_map_destroy(&m, NULL);
    assert_int_equal(ota_map_count(&m), 0);
}

/* Random puts and removes over a small key space, checked against a plain array: keeps
 * the table small, so clusters wrap around its end and backward shifts cross it. */
static void churn(size_t keys, size_t ops, unsigned seed)
{
    ota_map m;
    ota_map_init(&m, sizeof(kv), kv_key);
    int *ref = calloc(keys, sizeof *ref); /* 0 absent, else value */
    assert_non_null(ref);
    char key[24];
    srand(seed);
    for (size_t op = 0; op < ops; op++) {
        size_t k = (size_t)rand() % keys;
        snprintf(key, sizeof key, "k%zu", k);
        kv *r = ota_map_get_str(&m, key);
        assert_int_equal(r != NULL, ref[k] != 0);
        if (r != NULL) {
            assert_int_equal(r->value, ref[k]);
            ota_map_remove(&m, r, NULL);
            ref[k] = 0;
        } else {
            ref[k] = (int)op + 1;
            kv_put(&m, key, ref[k]);
        }
    }
    size_t live = 0;
    for (size_t k = 0; k < keys; k++) {
        snprintf(key, sizeof key, "k%zu", k);
        kv *r = ota_map_get_str(&m, key);
        assert_int_equal(r != NULL, ref[k] != 0);
        live += ref[k] != 0;
    }
    assert_int_equal(ota_map_count(&m), live);
    free(ref);
    ota_map_destroy(&m, NULL);
}

static void test_map_churn(void **state)
{
    (void)state;
    churn(12, 20000, 1);    /* a 16-slot table */
    churn(40, 50000, 2);    /* 64 slots */
    churn(5000, 200000, 3); /* many keys */
}

typedef struct {
    uint64_t id;
    char *name;
} u64rec;

static ota_map_key u64_key(const void *rec)
{
    return (ota_map_key){&((const u64rec *)rec)->id, sizeof(uint64_t)};
}

static int finis;

static void u64_fini(void *rec)
{
    free(((u64rec *)rec)->name);
    finis++;
}

static void test_map_binary_keys_and_fini(void **state)
{
    (void)state;
    ota_map m;
    ota_map_init(&m, sizeof(u64rec), u64_key);
    for (uint64_t id = 1; id <= 1000; id++) {
        u64rec r = {id << 40, test_strdup("x")};
        assert_non_null(ota_map_put(&m, &r));
    }
    uint64_t id = 7ull << 40;
    u64rec *r = ota_map_get(&m, &id, sizeof id);
    assert_non_null(r);
    assert_true(r->id == id);
    finis = 0;
    ota_map_remove(&m, r, u64_fini);
    assert_int_equal(finis, 1);
    assert_null(ota_map_get(&m, &id, sizeof id));
    /* a freed record is reused, and records never move */
    id = 1ull << 40;
    u64rec *first = ota_map_get(&m, &id, sizeof id);
    u64rec nr = {12345, test_strdup("y")};
    assert_ptr_equal(ota_map_put(&m, &nr), r);
    assert_ptr_equal(ota_map_get(&m, &id, sizeof id), first);
    ota_map_destroy(&m, u64_fini);
    assert_int_equal(finis, 1001);
    assert_int_not_equal(ota_map_hash("abc", 3), ota_map_hash("abd", 3));
    assert_int_not_equal(ota_map_hash("", 0), ota_map_hash("\0", 1));
}

/* A reference names its record while the record stays, across growth of the table and the
 * removal of others; a freed number is given again. */
static void test_map_refs(void **state)
{
    (void)state;
    ota_map m;
    ota_map_init(&m, sizeof(kv), kv_key);
    assert_int_equal(ota_map_ref(&m, "a", 1), 0);
    kv_put(&m, "a", 1);
    kv_put(&m, "b", 2);
    uint32_t ra = ota_map_ref(&m, "a", 1), rb = ota_map_ref(&m, "b", 1);
    assert_int_not_equal(ra, 0);
    assert_int_not_equal(rb, 0);
    assert_int_not_equal(ra, rb);
    char key[24];
    for (int i = 0; i < 5000; i++) { /* the table grows many times */
        snprintf(key, sizeof key, "k%d", i);
        kv_put(&m, key, i);
    }
    ota_map_remove(&m, ota_map_get_str(&m, "a"), NULL);
    assert_int_equal(ota_map_ref(&m, "a", 1), 0);
    assert_int_equal(ota_map_ref(&m, "b", 1), rb);
    assert_int_equal(((kv *)ota_map_at(&m, rb))->value, 2);
    assert_ptr_equal(ota_map_at(&m, rb), ota_map_get_str(&m, "b"));
    kv_put(&m, "c", 3);
    assert_int_equal(ota_map_ref(&m, "c", 1), ra); /* the freed number again */
    ota_map_destroy(&m, NULL);
}

/* ---- vehicles ---- */

static void test_vehicles(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    assert_non_null(c);
    assert_null(ota_catalog_vehicle(c, VIN_A));
    put_vehicle(c, VIN_A, "M1", "S1", "1.0", 0x11);
    put_vehicle(c, VIN_B, "M1", "S1", NULL, -1);
    assert_int_equal(ota_catalog_vehicle_count(c), 2);

    const ota_vehicle *a = ota_catalog_vehicle(c, VIN_A), *b = ota_catalog_vehicle(c, VIN_B);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->vin, VIN_A);
    assert_string_equal(a->model, "M1");
    assert_string_equal(a->series, "S1");
    assert_string_equal(a->status, "in_stock");
    assert_string_equal(a->usage, "retail");
    assert_string_equal(a->fw, "1.0");
    assert_null(a->platform);
    assert_null(a->config_word);
    assert_true(a->passenger);
    assert_false(a->sold);
    assert_non_null(a->public_key);
    assert_int_equal(a->public_key[0], 0x11);
    assert_null(b->fw);
    assert_null(b->public_key);
    /* interned: one copy */
    assert_ptr_equal(a->model, b->model);
    assert_ptr_equal(a->series, b->series);
    assert_ptr_equal(a->status, b->status);
    const char *m1 = a->model;

    /* replace: the whole vehicle, in place; old key dropped (ASan sees leaks) */
    ota_vehicle_rec r = vehicle(VIN_A, "M2", "S1", "2.0", -1);
    r.sold = true;
    r.platform = test_strdup("P9");
    r.config_word = test_strdup("0x3");
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    assert_null(r.model);
    assert_int_equal(ota_catalog_vehicle_count(c), 2);
    a = ota_catalog_vehicle(c, VIN_A);
    assert_string_equal(a->model, "M2");
    assert_string_equal(a->fw, "2.0");
    assert_string_equal(a->platform, "P9");
    assert_string_equal(a->config_word, "0x3");
    assert_true(a->sold);
    assert_null(a->public_key);
    assert_ptr_equal(b->model, m1); /* the other vehicle's strings are untouched */
    /* key added, then changed in place */
    put_vehicle(c, VIN_A, "M1", "S1", "2.0", 0x22);
    assert_int_equal(ota_catalog_vehicle(c, VIN_A)->public_key[31], 0x22);
    assert_ptr_equal(ota_catalog_vehicle(c, VIN_A)->model, m1);
    put_vehicle(c, VIN_A, "M1", "S1", "2.0", 0x33);
    assert_int_equal(ota_catalog_vehicle(c, VIN_A)->public_key[0], 0x33);

    /* a record copy */
    ota_vehicle_rec out;
    assert_int_equal(ota_catalog_vehicle_rec(c, ota_catalog_vehicle(c, VIN_A), &out), 0);
    assert_string_equal(out.vin, VIN_A);
    assert_string_equal(out.model, "M1");
    assert_string_equal(out.fw, "2.0");
    assert_null(out.platform);
    assert_true(out.has_public_key);
    assert_int_equal(out.public_key[5], 0x33);
    assert_true(out.passenger);
    ota_vehicle_rec_free(&out);
    assert_int_equal(ota_catalog_vehicle_rec(c, ota_catalog_vehicle(c, VIN_B), &out), 0);
    assert_false(out.has_public_key);
    assert_null(out.fw);
    ota_vehicle_rec_free(&out);

    /* a VIN too long for the record is refused, and the record still taken */
    ota_vehicle_rec bad = vehicle("LSVAA0000000000012", "M1", "S1", NULL, -1);
    assert_int_equal(ota_catalog_put_vehicle(c, &bad), -1);
    assert_null(bad.vin);

    assert_int_equal(ota_catalog_delete_vehicle(c, VIN_A), 1);
    assert_int_equal(ota_catalog_delete_vehicle(c, VIN_A), 0);
    assert_int_equal(ota_catalog_delete_vehicle(c, VIN_C), 0);
    assert_null(ota_catalog_vehicle(c, VIN_A));
    assert_non_null(ota_catalog_vehicle(c, VIN_B));
    assert_int_equal(ota_catalog_vehicle_count(c), 1);
    ota_catalog_free(c);
}

/* The RXSWIN list (kept as a 32-bit id of the interned list) and the three flags (bits
 * beside it): each read back on its own, shared lists interned once, kept in record
 * copies (what a fw change writes back to the store) and cleared by a replacement. */
static void test_vehicle_rxswin_and_flags(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    ota_vehicle_rec r = vehicle(VIN_A, "M1", "S1", "1.0", -1);
    r.rxswin = test_strdup("R10-EMC.1,R79-STEER.1");
    r.sold = true;
    r.passenger = false;
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    r = vehicle(VIN_B, "M1", "S1", "1.0", 0x44);
    r.rxswin = test_strdup("R10-EMC.1,R79-STEER.1");
    r.activated = true;
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    put_vehicle(c, VIN_C, "M1", "S1", "1.0", -1);

    const ota_vehicle *a = ota_catalog_vehicle(c, VIN_A), *b = ota_catalog_vehicle(c, VIN_B);
    assert_string_equal(ota_catalog_vehicle_rxswin(c, a), "R10-EMC.1,R79-STEER.1");
    assert_ptr_equal(ota_catalog_vehicle_rxswin(c, a), ota_catalog_vehicle_rxswin(c, b));
    assert_null(ota_catalog_vehicle_rxswin(c, ota_catalog_vehicle(c, VIN_C)));
    assert_true(a->sold && !a->activated && !a->passenger);
    assert_true(!b->sold && b->activated && b->passenger);
    assert_int_equal(b->public_key[0], 0x44);
    char fw[16];
    for (int i = 0; i < 3000; i++) { /* more interned strings: ids stay */
        snprintf(fw, sizeof fw, "9.%d", i);
        put_vehicle(c, VIN_C, "M1", "S1", fw, -1);
    }
    assert_string_equal(ota_catalog_vehicle_rxswin(c, a), "R10-EMC.1,R79-STEER.1");

    ota_vehicle_rec out;
    assert_int_equal(ota_catalog_vehicle_rec(c, b, &out), 0);
    assert_string_equal(out.rxswin, "R10-EMC.1,R79-STEER.1");
    assert_true(!out.sold && out.activated && out.passenger);
    ota_vehicle_rec_free(&out);

    r = vehicle(VIN_A, "M1", "S1", "2.0", -1); /* a replacement without RXSWINs */
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    a = ota_catalog_vehicle(c, VIN_A);
    assert_null(ota_catalog_vehicle_rxswin(c, a));
    assert_true(!a->sold && a->passenger);
    assert_int_equal(ota_catalog_vehicle_rec(c, a, &out), 0);
    assert_null(out.rxswin);
    ota_vehicle_rec_free(&out);
    ota_catalog_free(c);
}

static void test_many_vehicles(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    char vin[18];
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        snprintf(vin, sizeof vin, "LSVBB%012d", i);
        put_vehicle(c, vin, i % 2 ? "M1" : "M2", "S1", i % 3 ? "1.0" : "1.1", i % 10 ? -1 : i);
    }
    for (int i = 0; i < N; i += 3) {
        snprintf(vin, sizeof vin, "LSVBB%012d", i);
        assert_int_equal(ota_catalog_delete_vehicle(c, vin), 1);
    }
    for (int i = 0; i < N; i++) {
        snprintf(vin, sizeof vin, "LSVBB%012d", i);
        const ota_vehicle *v = ota_catalog_vehicle(c, vin);
        if (i % 3 == 0) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        assert_string_equal(v->model, i % 2 ? "M1" : "M2");
        assert_int_equal(v->public_key != NULL, i % 10 == 0);
    }
    assert_int_equal(ota_catalog_vehicle_count(c), N - (N + 2) / 3);
    ota_catalog_free(c);
}

/* ---- models, ECUs, files ---- */

static void test_models_and_ecus(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    static const char *const e1[] = {"BCM", "VCU"}, *const e2[] = {"VCU", "TBOX"},
                             *const e3[] = {"ADAS"};
    assert_null(ota_catalog_model(c, "M1", "S1"));
    assert_false(ota_catalog_ecu_known(c, "BCM"));
    ota_model_rec r = test_model("M1", "S1", true, 2, e1);
    assert_int_equal(ota_catalog_put_model(c, &r), 0);
    assert_null(r.model);
    r = test_model("M2", "S1", true, 2, e2);
    assert_int_equal(ota_catalog_put_model(c, &r), 0);

    const ota_model_rec *m = ota_catalog_model(c, "M1", "S1");
    assert_non_null(m);
    assert_string_equal(m->model, "M1");
    assert_string_equal(m->series, "S1");
    assert_true(m->supports_config_word);
    assert_int_equal(m->n_ecus, 2);
    assert_string_equal(m->ecus[1], "VCU");
    assert_null(ota_catalog_model(c, "M1", "S2"));
    assert_null(ota_catalog_model(c, "M1\x1fS1", ""));
    assert_true(ota_catalog_ecu_known(c, "BCM"));
    assert_true(ota_catalog_ecu_known(c, "VCU"));
    assert_true(ota_catalog_ecu_known(c, "TBOX"));
    assert_false(ota_catalog_ecu_known(c, "ADAS"));
    assert_false(ota_catalog_ecu_known(c, NULL));

    /* replacing M1 forgets BCM but not VCU (M2 declares it) */
    r = test_model("M1", "S1", true, 1, e3);
    r.supports_config_word = false;
    assert_int_equal(ota_catalog_put_model(c, &r), 0);
    m = ota_catalog_model(c, "M1", "S1");
    assert_false(m->supports_config_word);
    assert_int_equal(m->n_ecus, 1);
    assert_false(ota_catalog_ecu_known(c, "BCM"));
    assert_true(ota_catalog_ecu_known(c, "VCU"));
    assert_true(ota_catalog_ecu_known(c, "ADAS"));
    ota_catalog_free(c);
}

static void test_files(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    ota_file_rec f = {SHA_1, 1000};
    assert_null(ota_catalog_file(c, SHA_1));
    assert_int_equal(ota_catalog_put_file(c, &f), 0);
    f.size = 2000;
    assert_int_equal(ota_catalog_put_file(c, &f), 0);
    const ota_file_rec *got = ota_catalog_file(c, SHA_1);
    assert_non_null(got);
    assert_string_equal(got->sha256, SHA_1);
    assert_int_equal(got->size, 2000);
    assert_null(ota_catalog_file(c, SHA_2));
    ota_catalog_free(c);
}

/* ---- packages ---- */

typedef struct {
    char seen[32][48];
    size_t n;
} pkg_list;

static void collect_pkg(void *ctx, const ota_package_rec *p)
{
    pkg_list *l = ctx;
    assert_true(l->n < 32);
    snprintf(l->seen[l->n++], sizeof l->seen[0], "%s/%s/%s%s%s", p->model, p->series, p->version,
             p->delta ? "<" : "", p->delta ? p->from : "");
}

static void test_packages(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    ota_file_rec f = {SHA_1, 4096};
    assert_int_equal(ota_catalog_put_file(c, &f), 0);
    assert_int_equal(ota_catalog_next_package_id(c), 1);
    assert_null(ota_catalog_max_version(c, "M1", "S1", false));
    put_package(c, 1, "M1", "S1", "2.9", NULL);
    put_package(c, 2, "M1", "S1", "2.10", NULL);
    put_package(c, 3, "M1", "S1", "2.10", "2.9");
    put_package(c, 4, "M1", "S1", "1.0", NULL);
    put_package(c, 5, "M1", "S1", "2.10", "1.0");
    put_package(c, 7, "A1", "S1", "3.0", NULL);
    put_package(c, 6, "M1", "S0", "9.0", NULL);
    assert_int_equal(ota_catalog_next_package_id(c), 8);

    const ota_package_rec *p = ota_catalog_package(c, 2);
    assert_non_null(p);
    assert_string_equal(p->version, "2.10");
    assert_int_equal(p->status, OTA_PKG_DRAFT);
    assert_int_equal(p->ecus[0].size, 4096); /* resolved from the repository */
    assert_null(ota_catalog_package(c, 99));
    assert_ptr_equal(ota_catalog_package_full(c, "M1", "S1", "2.10"), p);
    assert_ptr_equal(ota_catalog_package_full(c, "M1", "S1", "2.9"), ota_catalog_package(c, 1));
    assert_null(ota_catalog_package_full(c, "M1", "S1", "2.1"));
    assert_null(ota_catalog_package_full(c, "M1", "S2", "2.10"));
    assert_null(ota_catalog_package_full(c, "M9", "S1", "2.10"));
    assert_ptr_equal(ota_catalog_package_delta(c, "M1", "S1", "2.9", "2.10"),
                     ota_catalog_package(c, 3));
    assert_ptr_equal(ota_catalog_package_delta(c, "M1", "S1", "1.0", "2.10"),
                     ota_catalog_package(c, 5));
    assert_null(ota_catalog_package_delta(c, "M1", "S1", "2.8", "2.10"));
    assert_null(ota_catalog_package_delta(c, "M1", "S1", "2.9", "2.9"));

    /* 2.10 > 2.9, deltas are not candidates */
    assert_ptr_equal(ota_catalog_max_version(c, "M1", "S1", false), p);
    assert_null(ota_catalog_max_version(c, "M1", "S1", true));
    assert_int_equal(ota_catalog_set_package_status(c, 1, OTA_PKG_RELEASED), 0);
    assert_int_equal(ota_catalog_set_package_status(c, 4, OTA_PKG_RELEASED), 0);
    assert_int_equal(ota_catalog_set_package_status(c, 3, OTA_PKG_RELEASED), 0);
    assert_int_equal(ota_catalog_set_package_status(c, 99, OTA_PKG_RELEASED), -1);
    assert_int_equal(ota_catalog_set_package_status(c, 1, (ota_pkg_status)7), -1);
    assert_int_equal(ota_catalog_package(c, 1)->status, OTA_PKG_RELEASED);
    assert_ptr_equal(ota_catalog_max_version(c, "M1", "S1", true), ota_catalog_package(c, 1));
    assert_int_equal(ota_catalog_set_package_status(c, 2, OTA_PKG_VERIFIED), 0);
    assert_ptr_equal(ota_catalog_max_version(c, "M1", "S1", true), ota_catalog_package(c, 1));
    assert_int_equal(ota_catalog_set_package_status(c, 2, OTA_PKG_RELEASED), 0);
    assert_ptr_equal(ota_catalog_max_version(c, "M1", "S1", true), p);

    /* iteration: (model, series, version) order, full before deltas */
    pkg_list l = {.n = 0};
    ota_catalog_packages_each(c, NULL, NULL, collect_pkg, &l);
    static const char *const all[] = {"A1/S1/3.0",  "M1/S0/9.0",      "M1/S1/1.0",     "M1/S1/2.9",
                                      "M1/S1/2.10", "M1/S1/2.10<1.0", "M1/S1/2.10<2.9"};
    assert_int_equal(l.n, 7);
    for (size_t i = 0; i < l.n; i++)
        assert_string_equal(l.seen[i], all[i]);
    l.n = 0;
    ota_catalog_packages_each(c, "M1", "S1", collect_pkg, &l);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.seen[0], "M1/S1/1.0");
    l.n = 0;
    ota_catalog_packages_each(c, "M1", NULL, collect_pkg, &l);
    assert_int_equal(l.n, 6);
    assert_string_equal(l.seen[0], "M1/S0/9.0");
    l.n = 0;
    ota_catalog_packages_each(c, NULL, "S1", collect_pkg, &l);
    assert_int_equal(l.n, 6);
    assert_string_equal(l.seen[0], "A1/S1/3.0");
    l.n = 0;
    ota_catalog_packages_each(c, "M9", "S1", collect_pkg, &l);
    assert_int_equal(l.n, 0);

    /* id 0 gets the next id; replacing by id moves the package in the order */
    put_package(c, 0, "M1", "S1", "2.11", NULL);
    assert_non_null(ota_catalog_package(c, 8));
    assert_int_equal(ota_catalog_next_package_id(c), 9);
    assert_string_equal(ota_catalog_max_version(c, "M1", "S1", false)->version, "2.11");
    put_package(c, 8, "M1", "S1", "2.8", NULL);
    assert_null(ota_catalog_package_full(c, "M1", "S1", "2.11"));
    assert_ptr_equal(ota_catalog_package_full(c, "M1", "S1", "2.8"), ota_catalog_package(c, 8));
    assert_string_equal(ota_catalog_max_version(c, "M1", "S1", false)->version, "2.10");
    put_package(c, 8, "M2", "S1", "2.8", NULL); /* to another model/series */
    assert_null(ota_catalog_package_full(c, "M1", "S1", "2.8"));
    assert_ptr_equal(ota_catalog_package_full(c, "M2", "S1", "2.8"), ota_catalog_package(c, 8));
    /* the exact text of a version is its identity */
    put_package(c, 20, "M2", "S1", "2.08", NULL);
    assert_int_equal(ota_catalog_package_full(c, "M2", "S1", "2.08")->id, 20);
    assert_int_equal(ota_catalog_package_full(c, "M2", "S1", "2.8")->id, 8);
    assert_int_equal(ota_catalog_next_package_id(c), 21);
    /* two packages of one name (refused by the control layer, but a store might hold
     * them): when one goes, the name finds the other */
    put_package(c, 30, "M3", "S1", "1.0", "0.9");
    put_package(c, 31, "M3", "S1", "1.0", "0.9");
    const ota_package_rec *d = ota_catalog_package_delta(c, "M3", "S1", "0.9", "1.0");
    assert_non_null(d);
    uint64_t other = d->id == 30 ? 31 : 30;
    put_package(c, d->id, "M3", "S1", "1.1", "0.9");
    assert_int_equal(ota_catalog_package_delta(c, "M3", "S1", "0.9", "1.0")->id, other);
    put_package(c, other, "M3", "S1", "1.2", "0.9");
    assert_null(ota_catalog_package_delta(c, "M3", "S1", "0.9", "1.0"));
    assert_null(ota_catalog_package_full(c, "M3", "S1", "1.1"));
    assert_non_null(ota_catalog_package_delta(c, "M3", "S1", "0.9", "1.2"));
    ota_package_rec bad = test_package(0, "M1", "S1", "1", NULL, "baseline");
    free(bad.version);
    bad.version = NULL;
    assert_int_equal(ota_catalog_put_package(c, &bad), -1);
    assert_null(bad.model);
    ota_catalog_free(c);
}

/* ---- strategies ---- */

typedef struct {
    const char *ids[8];
    size_t n;
} strat_list;

static void collect_strat(void *ctx, const ota_strategy_rec *s)
{
    strat_list *l = ctx;
    assert_true(l->n < 8);
    l->ids[l->n++] = s->id;
}

static bool has_strat(const strat_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->ids[i], id) == 0)
            return true;
    }
    return false;
}

static strat_list strategies_of(ota_catalog *c, const char *m, const char *s)
{
    strat_list l = {.n = 0};
    ota_catalog_strategies_of(c, m, s, collect_strat, &l);
    return l;
}

static void test_strategies(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    put_vehicle(c, VIN_A, "M1", "S1", "1.0", -1);
    put_vehicle(c, VIN_B, "M1", "S1", "1.0", -1);
    const ota_vehicle *a = ota_catalog_vehicle(c, VIN_A), *b = ota_catalog_vehicle(c, VIN_B);
    assert_null(ota_catalog_strategy(c, "st-default"));
    assert_null(ota_catalog_strategy_for(c, a));
    assert_null(ota_catalog_default_strategy(c, "M1", "S1"));
    assert_int_equal(strategies_of(c, "M1", "S1").n, 0);

    put_strategy(c, "st-default", "BCM");
    put_strategy(c, "st-vin", "VCU");
    const ota_strategy_rec *sd = ota_catalog_strategy(c, "st-default");
    assert_non_null(sd);
    assert_string_equal(sd->ecus[0].ecu, "BCM");
    assert_int_equal(sd->package_kind, OTA_KIND_AUTO);

    assert_int_equal(ota_catalog_bind_default(c, "M1", "S1", "st-default"), 0);
    assert_ptr_equal(ota_catalog_default_strategy(c, "M1", "S1"), sd);
    assert_ptr_equal(ota_catalog_strategy_for(c, a), sd);
    assert_int_equal(ota_catalog_bind_vin(c, VIN_A, "st-vin"), 0);
    assert_string_equal(ota_catalog_strategy_for(c, a)->id, "st-vin"); /* the VIN wins */
    assert_ptr_equal(ota_catalog_strategy_for(c, b), sd);

    strat_list l = strategies_of(c, "M1", "S1");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "st-default");
    assert_true(has_strat(&l, "st-vin"));
    assert_int_equal(strategies_of(c, "M2", "S1").n, 0);

    /* a replaced strategy is found through the same bindings */
    ota_strategy_rec r = strategy("st-vin", "TBOX");
    r.package_kind = OTA_KIND_FULL;
    assert_int_equal(ota_catalog_put_strategy(c, &r), 0);
    assert_int_equal(ota_catalog_strategy_for(c, a)->package_kind, OTA_KIND_FULL);
    assert_string_equal(ota_catalog_strategy_for(c, a)->ecus[0].ecu, "TBOX");

    /* the vehicle moves to M2/S1: its strategy goes with it */
    put_vehicle(c, VIN_A, "M2", "S1", "1.0", -1);
    a = ota_catalog_vehicle(c, VIN_A);
    assert_string_equal(ota_catalog_strategy_for(c, a)->id, "st-vin");
    assert_int_equal(strategies_of(c, "M1", "S1").n, 1);
    l = strategies_of(c, "M2", "S1");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], "st-vin");
    /* two vehicles on it: one leaving keeps it listed */
    assert_int_equal(ota_catalog_bind_vin(c, VIN_B, "st-vin"), 0);
    put_vehicle(c, VIN_B, "M2", "S1", "1.0", -1);
    assert_int_equal(strategies_of(c, "M2", "S1").n, 1);
    assert_int_equal(ota_catalog_delete_vehicle(c, VIN_B), 1);
    assert_int_equal(strategies_of(c, "M2", "S1").n, 1);
    assert_int_equal(ota_catalog_delete_vehicle(c, VIN_A), 1);
    assert_int_equal(strategies_of(c, "M2", "S1").n, 0);

    /* a binding made before the vehicle is known counts once it comes */
    assert_int_equal(ota_catalog_bind_vin(c, VIN_C, "st-vin"), 0);
    assert_int_equal(strategies_of(c, "M1", "S1").n, 1);
    put_vehicle(c, VIN_C, "M1", "S1", "1.0", -1);
    assert_int_equal(strategies_of(c, "M1", "S1").n, 2);
    /* rebinding to the default strategy: listed once */
    assert_int_equal(ota_catalog_bind_vin(c, VIN_C, "st-default"), 0);
    l = strategies_of(c, "M1", "S1");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], "st-default");
    /* unbinding falls back to the default; a binding to a missing strategy too */
    assert_int_equal(ota_catalog_bind_vin(c, VIN_C, "st-vin"), 0);
    assert_int_equal(ota_catalog_bind_vin(c, VIN_C, NULL), 0);
    const ota_vehicle *vc = ota_catalog_vehicle(c, VIN_C);
    assert_ptr_equal(ota_catalog_strategy_for(c, vc), sd);
    assert_int_equal(strategies_of(c, "M1", "S1").n, 1);
    assert_int_equal(ota_catalog_bind_vin(c, VIN_C, "st-none"), 0);
    assert_ptr_equal(ota_catalog_strategy_for(c, vc), sd);
    /* unbinding the default leaves nothing */
    assert_int_equal(ota_catalog_bind_default(c, "M1", "S1", NULL), 0);
    assert_null(ota_catalog_strategy_for(c, vc));
    assert_null(ota_catalog_default_strategy(c, "M1", "S1"));
    assert_int_equal(ota_catalog_bind_vin(c, "LSVAA0000000000012", "st-vin"), -1);
    ota_catalog_free(c);
}

/* ---- lists ---- */

typedef struct {
    char vins[8][18];
    size_t n;
} vin_list;

static void collect_vin(void *ctx, const char *vin)
{
    vin_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->vins[l->n++], sizeof l->vins[0], "%s", vin);
}

static void test_lists(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    assert_false(ota_catalog_listed(c, OTA_LIST_BLACKLIST, VIN_A));
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, VIN_C), 1);
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, VIN_A), 1);
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, VIN_A), 0); /* twice */
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, VIN_B), 1);
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_B), 1);
    assert_int_equal(ota_catalog_list_count(c, OTA_LIST_BLACKLIST), 3);
    assert_int_equal(ota_catalog_list_count(c, OTA_LIST_DOWNGRADE_WHITELIST), 1);
    assert_int_equal(ota_catalog_list_count(c, OTA_LIST_FORCED_WHITELIST), 0);
    assert_true(ota_catalog_listed(c, OTA_LIST_BLACKLIST, VIN_A));
    assert_false(ota_catalog_listed(c, OTA_LIST_FORCED_WHITELIST, VIN_A));
    assert_true(ota_catalog_listed(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_B));

    vin_list l = {.n = 0};
    ota_catalog_list_each(c, OTA_LIST_BLACKLIST, collect_vin, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.vins[0], VIN_A);
    assert_string_equal(l.vins[1], VIN_B);
    assert_string_equal(l.vins[2], VIN_C);

    assert_int_equal(ota_catalog_list_remove(c, OTA_LIST_BLACKLIST, VIN_B), 1);
    assert_int_equal(ota_catalog_list_remove(c, OTA_LIST_BLACKLIST, VIN_B), 0);
    assert_false(ota_catalog_listed(c, OTA_LIST_BLACKLIST, VIN_B));
    assert_true(ota_catalog_listed(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_B));
    assert_int_equal(ota_catalog_list_count(c, OTA_LIST_BLACKLIST), 2);
    l.n = 0;
    ota_catalog_list_each(c, OTA_LIST_BLACKLIST, collect_vin, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.vins[1], VIN_C);
    l.n = 0;
    ota_catalog_list_each(c, OTA_LIST_SAME_VERSION_WHITELIST, collect_vin, &l);
    assert_int_equal(l.n, 0);

    assert_int_equal(ota_catalog_list_add(c, (ota_list_kind)9, VIN_A), -1);
    assert_false(ota_catalog_listed(c, (ota_list_kind)9, VIN_A));
    assert_int_equal(ota_catalog_list_count(c, (ota_list_kind)9), 0);
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, "LSVAA0000000000012"), -1);
    ota_catalog_free(c);
}

/* ---- generations ---- */

/* expr changes the catalog's generation (to one it never had) */
#define NEW_GEN(c, seen, expr)                                                                     \
    do {                                                                                           \
        uint64_t before_ = ota_catalog_gen(c);                                                     \
        (void)(expr);                                                                              \
        assert_true(ota_catalog_gen(c) > before_);                                                 \
        assert_true(ota_catalog_gen(c) > (seen));                                                  \
        (seen) = ota_catalog_gen(c);                                                               \
    } while (0)

/* Every change gives a new generation (pkg.c serves a held description while it is the
 * same), lookups none, and a second catalog never has one the first had (follow.c swaps
 * catalogs). */
static void test_generations(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new(), *other = ota_catalog_new();
    uint64_t seen = ota_catalog_gen(c);
    assert_true(ota_catalog_gen(other) > seen);
    seen = ota_catalog_gen(other);
    static const char *const ecus[] = {"VCU"};
    ota_model_rec m = test_model("M1", "S1", true, 1, ecus);
    NEW_GEN(c, seen, ota_catalog_put_model(c, &m));
    ota_file_rec f = {SHA_1, 1000};
    NEW_GEN(c, seen, ota_catalog_put_file(c, &f));
    ota_package_rec pr = test_package(1, "M1", "S1", "2.0", NULL, "baseline");
    NEW_GEN(c, seen, ota_catalog_put_package(c, &pr));
    NEW_GEN(c, seen, ota_catalog_set_package_status(c, 1, OTA_PKG_RELEASED));
    ota_strategy_rec sr = strategy("s1", "VCU");
    NEW_GEN(c, seen, ota_catalog_put_strategy(c, &sr));
    NEW_GEN(c, seen, ota_catalog_bind_default(c, "M1", "S1", "s1"));
    NEW_GEN(c, seen, ota_catalog_bind_vin(c, VIN_A, "s1"));
    ota_vehicle_rec vr = vehicle(VIN_A, "M1", "S1", "1.0", 7);
    NEW_GEN(c, seen, ota_catalog_put_vehicle(c, &vr));
    NEW_GEN(c, seen, ota_catalog_list_add(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_A));
    NEW_GEN(c, seen, ota_catalog_list_remove(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_A));
    ota_rxswin_change_rec rx = {.task = "T1", .vin = VIN_A, .package = 1, .after = "R10"};
    NEW_GEN(c, seen, ota_catalog_put_rxswin_change(c, &rx));
    uint64_t now = ota_catalog_gen(c); /* lookups change nothing */
    const ota_vehicle *v = ota_catalog_vehicle(c, VIN_A);
    assert_non_null(v);
    assert_non_null(ota_catalog_strategy_for(c, v));
    assert_non_null(ota_catalog_package_full(c, "M1", "S1", "2.0"));
    assert_false(ota_catalog_listed(c, OTA_LIST_DOWNGRADE_WHITELIST, VIN_A));
    assert_int_equal(ota_catalog_gen(c), now);
    NEW_GEN(c, seen, ota_catalog_delete_package(c, 1));
    NEW_GEN(c, seen, ota_catalog_delete_vehicle(c, VIN_A));
    NEW_GEN(c, seen, ota_catalog_delete_vehicle(c, VIN_A)); /* not there: new all the same */
    ota_catalog_free(other);
    ota_catalog_free(c);
}

/* ---- load from a real store ---- */

/* The stored JSON of a record (cJSON_Delete'd here); free() the text. */
static char *doc_text(cJSON *j)
{
    assert_non_null(j);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(t);
    return t;
}

static void apply(ota_store *s, const ota_catalog_change *ch)
{
    char err[256] = "";
    if (ota_store_apply(s, ch, err, sizeof err) != 0)
        fail_msg("ota_store_apply: %s", err);
}

static void apply_doc(ota_store *s, ota_doc_kind kind, const char *key, const char *json)
{
    ota_store_doc d = {kind, key, json};
    ota_catalog_change ch = {.docs = &d, .n_docs = 1};
    apply(s, &ch);
}

static void fill_store(ota_store *s)
{
    static const char *const ecus[] = {"BCM", "VCU"};
    ota_model_rec m = test_model("M1", "S1", true, 2, ecus),
                  slashed = test_model("A/B", "S/1", true, 1, ecus);
    ota_file_rec f = {SHA_1, 777};
    ota_strategy_rec st = strategy("st1", "BCM"), st2 = strategy("st2", "VCU");
    ota_package_rec p1 = test_package(1, "M1", "S1", "2.9", NULL, "baseline"),
                    p2 = test_package(2, "M1", "S1", "2.10", NULL, "baseline"),
                    p3 = test_package(3, "M1", "S1", "2.10", "2.9", "baseline");
    p1.status = OTA_PKG_RELEASED;
    p2.ecus[0].size = 777;
    char *docs_json[] = {
        doc_text(ota_json_from_model(&m)),       doc_text(ota_json_from_file(&f)),
        doc_text(ota_json_from_model(&slashed)), doc_text(ota_json_from_strategy(&st)),
        doc_text(ota_json_from_strategy(&st2)),  doc_text(ota_json_from_package(&p1)),
        doc_text(ota_json_from_package(&p2)),    doc_text(ota_json_from_package(&p3))};
    ota_store_doc docs[] = {
        {OTA_DOC_MODEL, "M1/S1", docs_json[0]},
        {OTA_DOC_FILE, SHA_1, docs_json[1]},
        {OTA_DOC_MODEL, "A/B/S/1", docs_json[2]},
        {OTA_DOC_STRATEGY, "st1", docs_json[3]},
        {OTA_DOC_STRATEGY, "st2", docs_json[4]},
        {OTA_DOC_PACKAGE, "1", docs_json[5]},
        {OTA_DOC_PACKAGE, "2", docs_json[6]},
        {OTA_DOC_PACKAGE, "3", docs_json[7]},
        {OTA_DOC_BINDING, "default:M1/S1", "{\"strategy\":\"st1\"}"},
        {OTA_DOC_BINDING, "default:A/B/S/1", "{\"strategy\":\"st2\"}"},
        {OTA_DOC_BINDING, "default:X/Y/Z", "{\"strategy\":\"st1\"}"},
        {OTA_DOC_BINDING, "vin:" VIN_B, "{\"strategy\":\"st2\"}"},
    };
    ota_vehicle_rec vs[] = {vehicle(VIN_A, "M1", "S1", "2.9", 0x5a),
                            vehicle(VIN_B, "M1", "S1", NULL, -1)};
    vs[1].platform = test_strdup("P1");
    vs[1].config_word = test_strdup("0x1");
    vs[1].activated = true;
    vs[1].passenger = false;
    const char *black[] = {VIN_C, VIN_A};
    ota_catalog_change ch = {.put_vehicles = vs,
                             .n_put_vehicles = 2,
                             .docs = docs,
                             .n_docs = sizeof docs / sizeof docs[0],
                             .list = OTA_LIST_BLACKLIST,
                             .list_add = black,
                             .n_list_add = 2};
    apply(s, &ch);
    const char *forced[] = {VIN_B};
    ota_catalog_change ch2 = {
        .list = OTA_LIST_FORCED_WHITELIST, .list_add = forced, .n_list_add = 1};
    apply(s, &ch2);
    for (size_t i = 0; i < sizeof docs_json / sizeof docs_json[0]; i++)
        free(docs_json[i]);
    ota_vehicle_rec_free(&vs[0]);
    ota_vehicle_rec_free(&vs[1]);
    ota_model_rec_free(&m);
    ota_model_rec_free(&slashed);
    ota_strategy_rec_free(&st);
    ota_strategy_rec_free(&st2);
    ota_package_rec_free(&p1);
    ota_package_rec_free(&p2);
    ota_package_rec_free(&p3);
}

static void test_load(void **state)
{
    test_db *f = *state;
    fill_store(f->s);
    ota_catalog *c = ota_catalog_new();
    char err[256] = "";
    if (ota_catalog_load(c, f->s, err, sizeof err) != 0)
        fail_msg("ota_catalog_load: %s", err);

    assert_int_equal(ota_catalog_vehicle_count(c), 2);
    const ota_vehicle *a = ota_catalog_vehicle(c, VIN_A), *b = ota_catalog_vehicle(c, VIN_B);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->fw, "2.9");
    assert_non_null(a->public_key);
    assert_int_equal(a->public_key[9], 0x5a);
    assert_null(b->public_key);
    assert_null(b->fw);
    assert_string_equal(b->platform, "P1");
    assert_string_equal(b->config_word, "0x1");
    assert_true(b->activated);
    assert_false(b->passenger);
    assert_ptr_equal(a->model, b->model);

    const ota_model_rec *m = ota_catalog_model(c, "M1", "S1");
    assert_non_null(m);
    assert_int_equal(m->n_ecus, 2);
    assert_true(ota_catalog_ecu_known(c, "VCU"));
    assert_int_equal(ota_catalog_file(c, SHA_1)->size, 777);

    assert_int_equal(ota_catalog_next_package_id(c), 4);
    assert_int_equal(ota_catalog_package_full(c, "M1", "S1", "2.10")->id, 2);
    assert_int_equal(ota_catalog_package_delta(c, "M1", "S1", "2.9", "2.10")->id, 3);
    assert_int_equal(ota_catalog_max_version(c, "M1", "S1", false)->id, 2);
    assert_int_equal(ota_catalog_max_version(c, "M1", "S1", true)->id, 1);
    assert_int_equal(ota_catalog_package(c, 1)->ecus[0].size, 777);
    assert_string_equal(ota_catalog_package(c, 1)->baseline_description, "baseline");

    assert_string_equal(ota_catalog_strategy_for(c, a)->id, "st1");
    assert_string_equal(ota_catalog_strategy_for(c, b)->id, "st2");
    assert_int_equal(strategies_of(c, "M1", "S1").n, 2);
    /* '/' in model names: the split naming a known model, else the last '/' */
    assert_non_null(ota_catalog_model(c, "A/B", "S/1"));
    assert_string_equal(ota_catalog_default_strategy(c, "A/B", "S/1")->id, "st2");
    assert_string_equal(ota_catalog_default_strategy(c, "X/Y", "Z")->id, "st1");

    assert_int_equal(ota_catalog_list_count(c, OTA_LIST_BLACKLIST), 2);
    assert_true(ota_catalog_listed(c, OTA_LIST_BLACKLIST, VIN_C));
    assert_true(ota_catalog_listed(c, OTA_LIST_FORCED_WHITELIST, VIN_B));
    assert_false(ota_catalog_listed(c, OTA_LIST_FORCED_WHITELIST, VIN_A));
    ota_catalog_free(c);
}

static void load_fails(ota_store *s, const char *expect)
{
    ota_catalog *c = ota_catalog_new();
    char err[256] = "";
    assert_int_equal(ota_catalog_load(c, s, err, sizeof err), -1);
    if (strstr(err, expect) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, expect);
    ota_catalog_free(c);
}

static void test_load_errors(void **state)
{
    test_db *f = *state;
    ota_catalog *c = ota_catalog_new();
    char err[256] = "";
    assert_int_equal(ota_catalog_load(c, f->s, err, sizeof err), 0); /* an empty store */
    assert_int_equal(ota_catalog_vehicle_count(c), 0);
    ota_catalog_free(c);

    apply_doc(f->s, OTA_DOC_PACKAGE, "7", "{\"model\":");
    load_fails(f->s, "package 7: not valid JSON");
    apply_doc(f->s, OTA_DOC_PACKAGE, "7", NULL);
    apply_doc(f->s, OTA_DOC_MODEL, "M1/S1", "{\"model\":\"M1\",\"series\":\"S1\"}");
    load_fails(f->s, "model M1/S1: supports_config_word");
    apply_doc(f->s, OTA_DOC_MODEL, "M1/S1", NULL);
    apply_doc(f->s, OTA_DOC_BINDING, "vin:" VIN_A, "{\"strat\":\"x\"}");
    load_fails(f->s, "binding vin:" VIN_A ": strategy: missing");
    apply_doc(f->s, OTA_DOC_BINDING, "vin:" VIN_A, NULL);
    apply_doc(f->s, OTA_DOC_BINDING, "default:M1", "{\"strategy\":\"x\"}");
    load_fails(f->s, "binding default:M1: expected a key");
    apply_doc(f->s, OTA_DOC_BINDING, "default:M1", NULL);

    ota_package_rec p = test_package(5, "M1", "S1", "1.0", NULL, "baseline");
    char *j = doc_text(ota_json_from_package(&p));
    ota_package_rec_free(&p);
    apply_doc(f->s, OTA_DOC_PACKAGE, "6", j);
    free(j);
    load_fails(f->s, "package 6: id 5 does not match the key");
    apply_doc(f->s, OTA_DOC_PACKAGE, "6", NULL);
    apply_doc(f->s, OTA_DOC_STRATEGY, "st9",
              "{\"id\":\"st8\",\"package_kind\":\"full\","
              "\"compare_version\":\"auto\",\"ecus\":[{\"ecu\":\"BCM\"}]}");
    load_fails(f->s, "strategy st9: id st8 does not match the key");
    apply_doc(f->s, OTA_DOC_STRATEGY, "st9", NULL);
    ota_file_rec file = {SHA_1, 5};
    j = doc_text(ota_json_from_file(&file));
    apply_doc(f->s, OTA_DOC_FILE, SHA_2, j);
    free(j);
    load_fails(f->s, "file " SHA_2 ": sha256 " SHA_1 " does not match the key");
}

#define STORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, test_db_setup, test_db_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_growth_and_removal),
        cmocka_unit_test(test_map_churn),
        cmocka_unit_test(test_map_binary_keys_and_fini),
        cmocka_unit_test(test_map_refs),
        cmocka_unit_test(test_vehicles),
        cmocka_unit_test(test_vehicle_rxswin_and_flags),
        cmocka_unit_test(test_many_vehicles),
        cmocka_unit_test(test_models_and_ecus),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_packages),
        cmocka_unit_test(test_strategies),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_generations),
        STORE_TEST(test_load),
        STORE_TEST(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
