/*
 * test_waves.c — cmocka tests of the wave plan (plugin/core/waves.h): spec checks, wave
 * sizes (percentages cumulative and exact, counts, the rest, tiny targets), and the plan
 * itself: sizes as ota_waves_sizes says, the same plan whatever the order of the VINs,
 * another task id picking another first wave, and the key fixed (stored plans must not
 * move if this code is rebuilt).
 */
#include "waves.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PCT(p) ((ota_wave_spec){true, (uint64_t)((p)*100)})
#define CNT(c) ((ota_wave_spec){false, (c)})

static void test_check(void **state)
{
    (void)state;
    char err[128];
    ota_wave_spec ok[] = {PCT(1), PCT(10), PCT(50), CNT(1000)};
    assert_int_equal(ota_waves_check(ok, 4, err, sizeof err), 0);
    assert_int_equal(ota_waves_check(ok, 0, err, sizeof err), -1);
    assert_string_equal(err, "waves: expected 1..32 waves, not 0");
    ota_wave_spec over[] = {PCT(60), PCT(41)};
    assert_int_equal(ota_waves_check(over, 2, err, sizeof err), -1);
    assert_string_equal(err, "waves[1]: the percentages add up to more than 100%");
    ota_wave_spec zero[] = {PCT(1), CNT(0)};
    assert_int_equal(ota_waves_check(zero, 2, err, sizeof err), -1);
    assert_string_equal(err, "waves[1]: a count of at least 1");
}

static void test_sizes(void **state)
{
    (void)state;
    size_t s[8];
    ota_wave_spec p[] = {PCT(1), PCT(10), PCT(50)};
    assert_int_equal(ota_waves_sizes(p, 3, 1000, s), 4);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 100);
    assert_int_equal(s[2], 500);
    assert_int_equal(s[3], 390);
    /* 7 vehicles: each share gets one at least, the rest what is left */
    assert_int_equal(ota_waves_sizes(p, 3, 7, s), 4);
    assert_int_equal(s[0] + s[1] + s[2] + s[3], 7);
    assert_true(s[0] == 1 && s[1] == 1 && s[2] == 2 && s[3] == 3);
    /* counts take what remains; no rest */
    ota_wave_spec c[] = {CNT(5), CNT(20)};
    assert_int_equal(ota_waves_sizes(c, 2, 12, s), 2);
    assert_true(s[0] == 5 && s[1] == 7 && s[2] == 0);
    /* 100% in one wave: no rest */
    ota_wave_spec all[] = {PCT(100)};
    assert_int_equal(ota_waves_sizes(all, 1, 12345, s), 1);
    assert_int_equal(s[0], 12345);
    /* an empty target */
    assert_int_equal(ota_waves_sizes(p, 3, 0, s), 0);
    /* sums are exact for any size */
    for (size_t n = 0; n < 3000; n += 7) {
        ota_wave_spec m[] = {PCT(0.5), CNT(3), PCT(33.33), PCT(33.33)};
        ota_waves_sizes(m, 4, n, s);
        assert_int_equal(s[0] + s[1] + s[2] + s[3] + s[4], n);
    }
}

#define N 5000

static char vins_buf[N][18];

static void make_vins(const char *v[N])
{
    for (size_t i = 0; i < N; i++) {
        snprintf(vins_buf[i], sizeof vins_buf[i], "LSVWV%012zu", i * 7919 % 1000000);
        v[i] = vins_buf[i];
    }
}

static void test_plan(void **state)
{
    (void)state;
    static const char *v[N], *shuffled[N];
    static uint8_t w[N], w2[N], w3[N];
    size_t sizes[8], counted[8] = {0};
    ota_wave_spec p[] = {PCT(1), PCT(10), PCT(50)};
    make_vins(v);
    assert_int_equal(ota_waves_plan("T000001", v, N, p, 3, w), 0);
    ota_waves_sizes(p, 3, N, sizes);
    for (size_t i = 0; i < N; i++)
        counted[w[i]]++;
    for (int k = 0; k < 4; k++)
        assert_int_equal(counted[k], sizes[k]);
    /* the order of the VINs does not matter */
    size_t perm[N];
    for (size_t i = 0; i < N; i++)
        perm[i] = (i * 4447 + 13) % N; /* 4447 is prime to 5000: a permutation */
    for (size_t i = 0; i < N; i++)
        shuffled[i] = v[perm[i]];
    assert_int_equal(ota_waves_plan("T000001", shuffled, N, p, 3, w2), 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(w2[i], w[perm[i]]);
    /* another task ranks the fleet otherwise */
    assert_int_equal(ota_waves_plan("T000002", v, N, p, 3, w3), 0);
    size_t same_first = 0;
    for (size_t i = 0; i < N; i++)
        same_first += w[i] == 0 && w3[i] == 0;
    assert_true(same_first < sizes[0] / 2);
}

static void test_key_is_fixed(void **state)
{
    (void)state;
    /* Stored plans do not depend on it, but the ranks of new tasks should not change
     * between builds without a reason: FNV-1a + splitmix64 of "T000001\x1fLSVTA...1". */
    assert_true(ota_waves_key("T000001", "LSVTA000000000001") == 0xf383877d90193284ull);
    assert_true(ota_waves_key("T000001", "LSVTA000000000001") !=
                ota_waves_key("T00000", "1LSVTA000000000001"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_key_is_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
