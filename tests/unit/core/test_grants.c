/*
 * test_grants.c — unit tests of plugin/core/grants.c: which files a vehicle may fetch and its
 * description counter, from descriptions added and from descriptions stored (loaded at
 * start), and refusal of malformed file lists.
 */
#include "grants.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define VIN_A "1HGCM82633A004352"
#define VIN_B "WVWZZZ1JZXW000001"
#define F1 "0000000000000000000000000000000000000000000000000000000000000001"
#define F2 "ab00000000000000000000000000000000000000000000000000000000000002"
#define F3 "ff000000000000000000000000000000000000000000000000000000000000ee"

static void test_add_and_allow(void **state)
{
    (void)state;
    ota_grants *g = ota_grants_new();
    assert_int_equal(ota_grants_counter(g, VIN_A), 0);
    assert_false(ota_grants_allows(g, VIN_A, F1));
    assert_int_equal(ota_grants_add(g, VIN_A, 1, F1 "," F2), 0);
    assert_int_equal(ota_grants_add(g, VIN_A, 3, F2), 0);
    assert_int_equal(ota_grants_add(g, VIN_A, 2, F3), 0); /* an older counter: kept 3 */
    assert_int_equal(ota_grants_counter(g, VIN_A), 3);
    assert_true(ota_grants_allows(g, VIN_A, F1));
    assert_true(ota_grants_allows(g, VIN_A, F2));
    assert_true(ota_grants_allows(g, VIN_A, F3));
    /* another vehicle is allowed nothing of VIN_A's */
    assert_false(ota_grants_allows(g, VIN_B, F1));
    assert_int_equal(ota_grants_counter(g, VIN_B), 0);
    /* not a digest: never allowed */
    assert_false(ota_grants_allows(g, VIN_A, "ab"));
    assert_false(ota_grants_allows(g, VIN_A, F1 "0"));
    ota_grants_free(g);
}

static void test_malformed(void **state)
{
    (void)state;
    ota_grants *g = ota_grants_new();
    assert_int_equal(ota_grants_add(g, VIN_A, 1, ""), -1);
    assert_int_equal(ota_grants_add(g, VIN_A, 1, F1 ","), -1);
    assert_int_equal(ota_grants_add(g, VIN_A, 1, F1 ";" F2), -1);
    assert_int_equal(ota_grants_add(g, VIN_A, 1, "AB" F1), -1);
    assert_int_equal(ota_grants_add(g, "SHORT", 1, F1), -1);
    assert_int_equal(ota_grants_counter(g, VIN_A), 0);
    assert_false(ota_grants_allows(g, VIN_A, F1));
    ota_grants_free(g);
}

static void test_load(void **state)
{
    test_db *d = *state;
    static const uint8_t cose[] = {0xd2};
    ota_description_rec ds[] = {
        {VIN_A, 4, "t1", 1, 11, F1, cose, 1, 10, 20},
        {VIN_B, 1, "t1", 1, 11, F2 "," F3, cose, 1, 10, 20},
    };
    char err[256] = "";
    assert_int_equal(
        ota_store_apply(d->s,
                        &(ota_catalog_change){.add_descriptions = ds, .n_add_descriptions = 2}, err,
                        sizeof err),
        0);
    ota_grants *g = ota_grants_new();
    assert_int_equal(ota_grants_load(g, d->s, err, sizeof err), 0);
    assert_int_equal(ota_grants_counter(g, VIN_A), 4);
    assert_true(ota_grants_allows(g, VIN_A, F1));
    assert_false(ota_grants_allows(g, VIN_A, F2));
    assert_true(ota_grants_allows(g, VIN_B, F3));
    ota_grants_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_allow),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test_setup_teardown(test_load, test_db_setup, test_db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
