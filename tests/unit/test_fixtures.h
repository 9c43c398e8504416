/*
 * test_fixtures.h — record fixtures shared by the unit tests (linked into each with
 * test_util.c): collectors that deep-copy what the store's loaders call back with, the
 * ota_store_apply checks, and builders of catalog records.
 *
 * A collector's ctx is its test_got_* struct, zeroed first (test_load_*_ok does that);
 * it keeps at most TEST_GOT_MAX records and asks the loader to stop after stop_after of
 * them (0: never). Failures fail the running test.
 */
#ifndef OTA_TEST_FIXTURES_H
#define OTA_TEST_FIXTURES_H

#include "ota_records.h"
#include "ota_store.h"
#include "test_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- changes ---- */

/* ota_store_apply(s, c), failing the test with the error text when it fails. */
void test_apply_ok(ota_store *s, const ota_catalog_change *c);
/* ota_store_apply must fail with an error containing want and the database file's path. */
void test_apply_fails(const test_db *d, const ota_catalog_change *c, const char *want);

/* ---- collecting what the loaders call back with (deep copies) ---- */

#define TEST_GOT_MAX 64

typedef struct {
    size_t n;
    size_t stop_after; /* 0: never stop */
    ota_vehicle_rec v[TEST_GOT_MAX];
} test_got_vehicles;

typedef struct {
    size_t n;
    size_t stop_after;
    char *key[TEST_GOT_MAX];
    char *json[TEST_GOT_MAX];
} test_got_docs;

typedef struct {
    size_t n;
    size_t stop_after;
    ota_list_kind list[TEST_GOT_MAX];
    char vin[TEST_GOT_MAX][OTA_VIN_LEN + 1];
} test_got_lists;

typedef struct {
    size_t n;
    size_t stop_after; /* 0: never stop */
    ota_exec_rec e[TEST_GOT_MAX];
} test_got_execs;

typedef struct {
    size_t n;
    size_t stop_after;
    ota_shadow_rec s[TEST_GOT_MAX];
} test_got_shadows;

typedef struct {
    size_t n;
    size_t stop_after;
    ota_notice_rec r[TEST_GOT_MAX];
} test_got_notices;

/* The catalog's loaders: vehicles, documents of one kind, list members. */
int test_collect_vehicle(void *ctx, const ota_vehicle_rec *v);
void test_got_vehicles_free(test_got_vehicles *g);
void test_load_vehicles_ok(ota_store *s, test_got_vehicles *g);
void test_assert_vehicle(const ota_vehicle_rec *got, const ota_vehicle_rec *want);
int test_collect_doc(void *ctx, const char *key, const char *json);
void test_got_docs_free(test_got_docs *g);
void test_load_docs_ok(ota_store *s, ota_doc_kind kind, test_got_docs *g);
int test_collect_list(void *ctx, ota_list_kind list, const char *vin);
void test_load_lists_ok(ota_store *s, test_got_lists *g);

/* The task engine's loaders: executions, shadows, notices of one task (NULL: all). */
int test_collect_exec(void *ctx, const ota_exec_rec *e);
void test_got_execs_free(test_got_execs *g);
void test_load_execs_ok(ota_store *s, test_got_execs *g);
void test_assert_exec(const ota_exec_rec *got, const ota_exec_rec *want);
int test_collect_shadow(void *ctx, const ota_shadow_rec *s);
void test_got_shadows_free(test_got_shadows *g);
void test_load_shadows_ok(ota_store *s, test_got_shadows *g);
void test_assert_shadow(const ota_shadow_rec *got, const ota_shadow_rec *want);
int test_collect_notice(void *ctx, const ota_notice_rec *n);
void test_got_notices_free(test_got_notices *g);
void test_load_notices_ok(ota_store *s, const char *task, test_got_notices *g);
void test_assert_notice(const ota_notice_rec *got, const ota_notice_rec *want);

/* ---- catalog records (owned texts, free with their ota_*_rec_free) ---- */

/* The sha256 (hex) of the builders' ECU images. */
#define TEST_SHA_1 "1111111111111111111111111111111111111111111111111111111111111111"

/* n strdup()ed copies of v in a calloc()ed array (of one entry when n is 0). */
char **test_strings(size_t n, const char *const *v);
/* A passenger vehicle; optional fields absent, no public key. */
ota_vehicle_rec test_vehicle(const char *vin, const char *model, const char *series,
                             const char *status, const char *usage, const char *fw);
/* A model with the given ECUs. */
ota_model_rec test_model(const char *model, const char *series, bool config_word, size_t n,
                         const char *const *ecus);
/* A package (status draft) with one ECU, BCM at `version` in bcm.bin (TEST_SHA_1): a delta
 * from `from`, or a full package when from is NULL. */
ota_package_rec test_package(uint64_t id, const char *model, const char *series,
                             const char *version, const char *from, const char *baseline);
/* A strategy (package kind full, compare always) over copies of ecus. */
ota_strategy_rec test_strategy(const char *id, size_t n, const ota_strategy_ecu *ecus);

#endif
