/*
 * test_describe.c — cmocka tests of the description rules (plugin/core/describe.c, SPEC §6
 * "Building a description") on an in-memory catalog: the VIN's strategy over the
 * model/series default, the delta chosen when the strategy's kind is not full and one
 * exists (full otherwise, and always for spot checks), compare_version always / never /
 * auto, ECUs filtered by the strategy (order, upgrade flag) and by the config word's
 * ignore bits and sorted by order, released packages for formal tasks, encrypted packages
 * needing the vehicle's public key, and the version checks (tgt, cur, whitelists).
 */
#include "catalog.h"
#include "describe.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define M "EX5"
#define S "S1"
#define V1 "LSVTD000000000001"
#define V2 "LSVTD000000000002"
#define SHA_A "aa00000000000000000000000000000000000000000000000000000000000000"
#define SHA_B "bb00000000000000000000000000000000000000000000000000000000000000"
#define SHA_C "cc00000000000000000000000000000000000000000000000000000000000000"
#define SHA_D "dd00000000000000000000000000000000000000000000000000000000000000"

/* ---- the fixture: EX5/S1 with ECUs A, B, C, D; bit 3 of the config word ignores C ---- */

static void put_model(ota_catalog *c)
{
    ota_model_rec r = {.model = test_strdup(M),
                       .series = test_strdup(S),
                       .supports_config_word = true,
                       .n_ignore = 1};
    r.ignore = calloc(1, sizeof *r.ignore);
    r.ignore[0].bit = 3;
    r.ignore[0].n_ecus = 1;
    r.ignore[0].ecus = calloc(1, sizeof(char *));
    r.ignore[0].ecus[0] = test_strdup("C");
    assert_int_equal(ota_catalog_put_model(c, &r), 0);
}

static void put_file(ota_catalog *c, const char *sha, uint64_t size)
{
    ota_file_rec f = {.size = size};
    memcpy(f.sha256, sha, OTA_SHA256_HEX + 1);
    assert_int_equal(ota_catalog_put_file(c, &f), 0);
}

/* A package of ECUs "A", "B", ... (names[i], file shas[i]). */
static void put_package(ota_catalog *c, uint64_t id, const char *version, const char *from,
                        ota_pkg_status st, bool encrypted, size_t n, const char *const *names,
                        const char *const *shas)
{
    ota_package_rec r = {.id = id,
                         .model = test_strdup(M),
                         .series = test_strdup(S),
                         .version = test_strdup(version),
                         .delta = from != NULL,
                         .from = test_strdup(from),
                         .baseline_description = test_strdup("b"),
                         .status = st,
                         .encrypted = encrypted,
                         .n_ecus = n};
    r.ecus = calloc(n, sizeof *r.ecus);
    for (size_t i = 0; i < n; i++) {
        r.ecus[i].ecu = test_strdup(names[i]);
        r.ecus[i].type = i == 1 ? OTA_ECU_TYPE_COMPONENT : OTA_ECU_TYPE_ECU;
        r.ecus[i].version = test_strdup(version);
        r.ecus[i].name = test_strdup(names[i]);
        memcpy(r.ecus[i].sha256, shas[i], OTA_SHA256_HEX + 1);
    }
    assert_int_equal(ota_catalog_put_package(c, &r), 0);
}

typedef struct {
    const char *ecu;
    int32_t order;
    bool upgrade;
} strat_ecu;

static void put_strategy(ota_catalog *c, const char *id, ota_pkg_kind_pref kind,
                         ota_compare_pref cmp, size_t n, const strat_ecu *e)
{
    ota_strategy_rec r = {
        .id = test_strdup(id), .package_kind = kind, .compare_version = cmp, .n_ecus = n};
    r.ecus = calloc(n, sizeof *r.ecus);
    for (size_t i = 0; i < n; i++)
        r.ecus[i] = (ota_strategy_ecu){test_strdup(e[i].ecu), e[i].order, e[i].upgrade};
    assert_int_equal(ota_catalog_put_strategy(c, &r), 0);
}

static void put_vehicle(ota_catalog *c, const char *vin, const char *fw, const char *cw,
                        bool with_key)
{
    ota_vehicle_rec r = {.vin = test_strdup(vin),
                         .model = test_strdup(M),
                         .series = test_strdup(S),
                         .status = test_strdup("in_stock"),
                         .usage = test_strdup("retail"),
                         .fw = test_strdup(fw),
                         .config_word = test_strdup(cw),
                         .has_public_key = with_key};
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
}

static const char *const ALL[] = {"A", "B", "C", "D"};
static const char *const ALL_SHA[] = {SHA_A, SHA_B, SHA_C, SHA_D};

/* Full 2.0 (id 1, A B C D, released), delta 1.0 -> 2.0 (id 2, A B, released), full 3.0
 * (id 3, draft); default strategy "def" (auto, auto: D order 1, A order 2, B order 3,
 * C order 4); V1 fw 1.0 config word 0000, V2 fw 1.0 config word 0008. */
static int setup(void **state)
{
    ota_catalog *c = ota_catalog_new();
    put_model(c);
    for (size_t i = 0; i < 4; i++)
        put_file(c, ALL_SHA[i], 1000 + i);
    put_package(c, 1, "2.0", NULL, OTA_PKG_RELEASED, false, 4, ALL, ALL_SHA);
    put_package(c, 2, "2.0", "1.0", OTA_PKG_RELEASED, false, 2, ALL, ALL_SHA);
    put_package(c, 3, "3.0", NULL, OTA_PKG_DRAFT, false, 4, ALL, ALL_SHA);
    const strat_ecu def[] = {{"A", 2, true}, {"B", 3, true}, {"C", 4, true}, {"D", 1, true}};
    put_strategy(c, "def", OTA_KIND_AUTO, OTA_CMP_AUTO, 4, def);
    assert_int_equal(ota_catalog_bind_default(c, M, S, "def"), 0);
    put_vehicle(c, V1, "1.0", "0000", false);
    put_vehicle(c, V2, "1.0", "0008", false);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ota_catalog_free(*state);
    return 0;
}

static ota_describe_in request(const char *cur, const char *tgt, ota_task_type type)
{
    return (ota_describe_in){
        .cur = cur, .tgt = tgt, .model = M, .series = S, .version = tgt, .type = type};
}

/* Describes for vin; asserts the result. */
static void describe(ota_catalog *c, const char *vin, ota_describe_in in, ota_desc_result want,
                     ota_describe_out *out)
{
    ota_desc_result r = ota_describe(c, ota_catalog_vehicle(c, vin), &in, out);
    if (r != want)
        fail_msg("result %d, want %d: %s", r, want, out->msg);
}

static void assert_ecus(const ota_describe_out *o, const char *want)
{
    char got[64] = "";
    for (size_t i = 0; i < o->n_ecus; i++)
        strcat(got, o->ecus[i].ecu);
    assert_string_equal(got, want);
}

/* ---- tests ---- */

static void test_default_auto_takes_delta(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_int_equal(o.pkg->id, 2);
    assert_string_equal(o.strategy->id, "def");
    assert_false(o.compare_version); /* auto, but a delta */
    assert_ecus(&o, "AB");           /* orders 2, 3 */
    assert_int_equal(o.ecus[0].order, 2);
    assert_int_equal(o.ecus[0].size, 1000);
    assert_int_equal(o.ecus[0].sha256[0], 0xAA);
    assert_string_equal(o.ecus[0].file_id, SHA_A);
    assert_true(o.ecus[1].component);
    ota_describe_free(&o);
}

static void test_full_when_no_delta_compares_under_auto(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    ota_vehicle_rec r;
    ota_catalog_vehicle_rec(c, ota_catalog_vehicle(c, V1), &r);
    free(r.fw);
    r.fw = test_strdup("1.5");
    ota_catalog_put_vehicle(c, &r);
    describe(c, V1, request("1.5", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_int_equal(o.pkg->id, 1);
    assert_true(o.compare_version);
    assert_ecus(&o, "DABC"); /* every ECU, by order */
    ota_describe_free(&o);
}

static void test_kind_full_and_compare_always_never(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    const strat_ecu all[] = {{"A", 1, true}, {"B", 2, true}};
    put_strategy(c, "def", OTA_KIND_FULL, OTA_CMP_ALWAYS, 2, all);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_int_equal(o.pkg->id, 1); /* full although a delta exists */
    assert_true(o.compare_version);
    ota_describe_free(&o);
    put_strategy(c, "def", OTA_KIND_DELTA, OTA_CMP_NEVER, 2, all);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_int_equal(o.pkg->id, 2);
    assert_false(o.compare_version);
    ota_describe_free(&o);
    put_strategy(c, "def", OTA_KIND_AUTO, OTA_CMP_ALWAYS, 2, all);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_true(o.compare_version); /* always, delta or not */
    ota_describe_free(&o);
}

static void test_vin_strategy_over_default(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    const strat_ecu own[] = {{"C", 0, true}, {"B", 9, true}};
    put_strategy(c, "own", OTA_KIND_FULL, OTA_CMP_NEVER, 2, own);
    assert_int_equal(ota_catalog_bind_vin(c, V1, "own"), 0);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_string_equal(o.strategy->id, "own");
    assert_int_equal(o.pkg->id, 1);
    assert_false(o.compare_version);
    assert_ecus(&o, "CB");
    ota_describe_free(&o);
}

static void test_ecu_filter_order_flag_config_word(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    /* B without order, D not to be upgraded, X not in the package */
    const strat_ecu f[] = {
        {"A", 5, true}, {"B", -1, true}, {"C", 1, true}, {"D", 0, false}, {"X", 2, true}};
    put_strategy(c, "def", OTA_KIND_FULL, OTA_CMP_AUTO, 5, f);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_ecus(&o, "CA");
    ota_describe_free(&o);
    /* V2's config word 0008 sets bit 3: C is ignored */
    describe(c, V2, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_ecus(&o, "A");
    ota_describe_free(&o);
    /* nothing left: no package to describe */
    const strat_ecu only_c[] = {{"C", 1, true}};
    put_strategy(c, "def", OTA_KIND_FULL, OTA_CMP_AUTO, 1, only_c);
    describe(c, V2, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_NO_PACKAGE, &o);
    assert_non_null(strstr(o.msg, "no ECU"));
    ota_describe_free(&o);
}

static void test_equal_orders_sorted_by_name(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    const strat_ecu f[] = {{"D", 1, true}, {"B", 1, true}, {"A", 0, true}};
    put_strategy(c, "def", OTA_KIND_FULL, OTA_CMP_AUTO, 3, f);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    assert_ecus(&o, "ABD");
    ota_describe_free(&o);
}

static void test_spot_check_full_no_compare(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    const strat_ecu f[] = {{"A", 1, true}, {"B", 2, true}};
    put_strategy(c, "def", OTA_KIND_DELTA, OTA_CMP_ALWAYS, 2, f);
    describe(c, V1, request("1.0", "2.0", OTA_TASK_SPOT_CHECK), OTA_DESC_OK, &o);
    assert_int_equal(o.pkg->id, 1);
    assert_false(o.compare_version);
    ota_describe_free(&o);
    /* a spot check may install the version a vehicle has, without the whitelist */
    ota_vehicle_rec r;
    ota_catalog_vehicle_rec(c, ota_catalog_vehicle(c, V1), &r);
    free(r.fw);
    r.fw = test_strdup("2.0");
    ota_catalog_put_vehicle(c, &r);
    describe(c, V1, request("2.0", "2.0", OTA_TASK_SPOT_CHECK), OTA_DESC_OK, &o);
    ota_describe_free(&o);
    describe(c, V1, request("2.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_VERSION_MISMATCH, &o);
    assert_non_null(strstr(o.msg, "same-version"));
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_SAME_VERSION_WHITELIST, V1), 1);
    describe(c, V1, request("2.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    ota_describe_free(&o);
}

static void test_version_checks(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    ota_describe_in in = request("1.0", "2.1", OTA_TASK_NORMAL);
    in.version = "2.0";
    describe(c, V1, in, OTA_DESC_VERSION_MISMATCH, &o);
    assert_non_null(strstr(o.msg, "task's version"));
    describe(c, V1, request("0.9", "2.0", OTA_TASK_NORMAL), OTA_DESC_VERSION_MISMATCH, &o);
    assert_non_null(strstr(o.msg, "firmware"));
    /* a downgrade needs the downgrade whitelist */
    describe(c, V1, request("1.0", "0.5", OTA_TASK_NORMAL), OTA_DESC_VERSION_MISMATCH, &o);
    assert_non_null(strstr(o.msg, "downgrade"));
}

static void test_no_package_cases(void **state)
{
    ota_catalog *c = *state;
    ota_describe_out o;
    describe(c, V1, request("1.0", "4.0", OTA_TASK_NORMAL), OTA_DESC_NO_PACKAGE, &o);
    /* 3.0 is a draft: refused for a normal task, fine for a diagnostic one */
    describe(c, V1, request("1.0", "3.0", OTA_TASK_NORMAL), OTA_DESC_NO_PACKAGE, &o);
    assert_non_null(strstr(o.msg, "not released"));
    describe(c, V1, request("1.0", "3.0", OTA_TASK_DIAGNOSTIC), OTA_DESC_OK, &o);
    ota_describe_free(&o);
    /* encrypted: the vehicle needs a public key */
    put_package(c, 4, "5.0", NULL, OTA_PKG_RELEASED, true, 1, ALL, ALL_SHA);
    describe(c, V1, request("1.0", "5.0", OTA_TASK_NORMAL), OTA_DESC_NO_PACKAGE, &o);
    assert_non_null(strstr(o.msg, "public_key"));
    put_vehicle(c, V1, "1.0", "0000", true);
    describe(c, V1, request("1.0", "5.0", OTA_TASK_NORMAL), OTA_DESC_OK, &o);
    ota_describe_free(&o);
}

static void test_no_strategy(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    put_model(c);
    put_package(c, 1, "2.0", NULL, OTA_PKG_RELEASED, false, 4, ALL, ALL_SHA);
    put_vehicle(c, V1, "1.0", "0000", false);
    ota_describe_out o;
    describe(c, V1, request("1.0", "2.0", OTA_TASK_NORMAL), OTA_DESC_NO_PACKAGE, &o);
    assert_non_null(strstr(o.msg, "strategy"));
    ota_catalog_free(c);
}

static void test_config_word_bits(void **state)
{
    (void)state;
    assert_true(ota_config_word_bit("0008", 3));
    assert_false(ota_config_word_bit("0008", 2));
    assert_true(ota_config_word_bit("1000", 12));
    assert_true(ota_config_word_bit("F", 0));
    assert_false(ota_config_word_bit("F", 4));
    assert_true(ota_config_word_bit("a0", 7));
    assert_false(ota_config_word_bit("zz", 0));
    assert_false(ota_config_word_bit(NULL, 0));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_default_auto_takes_delta),
        T(test_full_when_no_delta_compares_under_auto),
        T(test_kind_full_and_compare_always_never),
        T(test_vin_strategy_over_default),
        T(test_ecu_filter_order_flag_config_word),
        T(test_equal_orders_sorted_by_name),
        T(test_spot_check_full_no_compare),
        T(test_version_checks),
        T(test_no_package_cases),
        cmocka_unit_test(test_no_strategy),
        cmocka_unit_test(test_config_word_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
