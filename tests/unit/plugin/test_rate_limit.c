/*
 * test_rate_limit.c — unit tests of plugin/rate_limit.c: the per-VIN token bucket (burst, refill at
 * the configured rate, no refill from reconnecting), refusal replies at most once per
 * second, the kick after kick_after refusals in one window, vehicles kept apart, rate 0 as
 * "no limit", and the queue of vehicles to kick (a repeat of the last queued is dropped);
 * publishes refused by the ACL: a token each, one reply a second, one log line per window.
 */
#include "rate_limit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define VIN_A "1HGCM82633A004352"
#define VIN_B "WVWZZZ1JZXW000001"
#define T0 1000000

static void test_burst_then_rate(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 10, .burst = 3, .kick_after = 0};
    ota_limits *l = ota_limits_new(&c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_OK);
    }
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_REFUSED);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 99, NULL), OTA_RATE_REFUSED);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 100, NULL), OTA_RATE_OK); /* 1 per 100 ms */
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 100, NULL), OTA_RATE_REFUSED);
    /* A long pause refills up to the burst only. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ota_limits_take(l, VIN_A, T0 + 3600000, NULL), OTA_RATE_OK);
    }
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 3600000, NULL), OTA_RATE_REFUSED);
    /* A clock that goes back does not refill. */
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_REFUSED);
    assert_int_equal(ota_limits_vehicles(l), 1);
    ota_limits_free(l);
}

static void test_vehicles_apart_and_no_limit(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 1, .burst = 1, .kick_after = 0};
    ota_limits *l = ota_limits_new(&c);
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_OK);
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_REFUSED);
    assert_int_equal(ota_limits_take(l, VIN_B, T0, NULL), OTA_RATE_OK);
    ota_limits_free(l);
    ota_rate_config off = {.rate = 0, .burst = 1, .kick_after = 1};
    l = ota_limits_new(&off);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_OK);
    }
    assert_int_equal(ota_limits_vehicles(l), 0);
    ota_limits_free(l);
}

static void test_reply_once_per_second(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 1, .burst = 1, .kick_after = 0};
    ota_limits *l = ota_limits_new(&c);
    bool reply = true;
    assert_int_equal(ota_limits_take(l, VIN_A, T0, &reply), OTA_RATE_OK);
    assert_false(reply);
    assert_int_equal(ota_limits_take(l, VIN_A, T0, &reply), OTA_RATE_REFUSED);
    assert_true(reply);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 500, &reply), OTA_RATE_REFUSED);
    assert_false(reply);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 999, &reply), OTA_RATE_REFUSED);
    assert_false(reply);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 1000, &reply), OTA_RATE_OK);
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 1001, &reply), OTA_RATE_REFUSED);
    assert_true(reply);
    ota_limits_free(l);
}

static void test_kick_after_refusals_in_a_window(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 1, .burst = 1, .kick_after = 5};
    ota_limits *l = ota_limits_new(&c);
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ota_limits_take(l, VIN_A, T0 + i, NULL), OTA_RATE_REFUSED);
    }
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 10, NULL), OTA_RATE_KICK);
    /* Counting starts again after a kick. */
    assert_int_equal(ota_limits_take(l, VIN_A, T0 + 20, NULL), OTA_RATE_REFUSED);
    /* Refusals spread over windows never add up to a kick. */
    ota_limits_free(l);
    l = ota_limits_new(&c);
    int64_t t = T0;
    assert_int_equal(ota_limits_take(l, VIN_B, t, NULL), OTA_RATE_OK);
    for (int w = 0; w < 5; w++) {
        for (int i = 0; i < 4; i++) {
            assert_int_equal(ota_limits_take(l, VIN_B, t + i, NULL), OTA_RATE_REFUSED);
        }
        t += OTA_RATE_WINDOW_MS;
        assert_int_equal(ota_limits_take(l, VIN_B, t - 1, NULL), OTA_RATE_OK);
    }
    ota_limits_free(l);
}

static void test_kick_queue(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 1, .burst = 1, .kick_after = 1};
    ota_limits *l = ota_limits_new(&c);
    assert_null(ota_limits_pop_kick(l));
    ota_limits_queue_kick(l, "car-1");
    ota_limits_queue_kick(l, "car-2");
    ota_limits_queue_kick(l, NULL);
    char *id = ota_limits_pop_kick(l);
    assert_string_equal(id, "car-1");
    free(id);
    for (int i = 0; i < OTA_RATE_KICKS_MAX + 10; i++) {
        ota_limits_queue_kick(l, "flood");
    }
    id = ota_limits_pop_kick(l);
    assert_string_equal(id, "car-2");
    free(id);
    id = ota_limits_pop_kick(l); /* a flood between two TICKs is queued once */
    assert_string_equal(id, "flood");
    free(id);
    assert_null(ota_limits_pop_kick(l));
    ota_limits_queue_kick(l, "car-3");
    ota_limits_free(l); /* frees what is still queued */
}

static void test_denied_publishes(void **state)
{
    (void)state;
    ota_rate_config c = {.rate = 10, .burst = 2, .kick_after = 3};
    ota_limits *l = ota_limits_new(&c);
    bool reply;
    uint32_t log_n;
    /* The first: answered and logged; tokens are the request bucket's. */
    assert_int_equal(ota_limits_denied(l, VIN_A, T0, &reply, &log_n), OTA_RATE_OK);
    assert_true(reply);
    assert_int_equal(log_n, 1);
    assert_int_equal(ota_limits_take(l, VIN_A, T0, NULL), OTA_RATE_OK);
    /* Out of tokens: refused, and the third refusal in the window kicks. */
    assert_int_equal(ota_limits_denied(l, VIN_A, T0 + 1, &reply, &log_n), OTA_RATE_REFUSED);
    assert_false(reply);
    assert_int_equal(log_n, 0);
    assert_int_equal(ota_limits_denied(l, VIN_A, T0 + 2, &reply, &log_n), OTA_RATE_REFUSED);
    assert_int_equal(ota_limits_denied(l, VIN_A, T0 + 3, &reply, &log_n), OTA_RATE_KICK);
    /* One reply a second, one log line per window with the count since the last. */
    ota_limits_denied(l, VIN_A, T0 + 1000, &reply, &log_n);
    assert_true(reply);
    assert_int_equal(log_n, 0);
    ota_limits_denied(l, VIN_A, T0 + OTA_RATE_WINDOW_MS, &reply, &log_n);
    assert_int_equal(log_n, 5);
    /* Another vehicle has its own gates; rate 0 never refuses but still throttles. */
    assert_int_equal(ota_limits_denied(l, VIN_B, T0 + 3, &reply, &log_n), OTA_RATE_OK);
    assert_true(reply);
    ota_limits_free(l);
    ota_rate_config none = {.rate = 0, .burst = 1, .kick_after = 1};
    l = ota_limits_new(&none);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(ota_limits_denied(l, VIN_A, T0 + i, &reply, &log_n), OTA_RATE_OK);
        assert_int_equal(reply, i == 0);
    }
    ota_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_vehicles_apart_and_no_limit),
        cmocka_unit_test(test_reply_once_per_second),
        cmocka_unit_test(test_kick_after_refusals_in_a_window),
        cmocka_unit_test(test_kick_queue),
        cmocka_unit_test(test_denied_publishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
