/*
 * test_dedupe.c — cmocka tests of the events broker's window (plugin/core/dedupe.h): a key
 * seen twice is a duplicate; the window holds at most its capacity and evicts the oldest
 * first (checked against a brute-force model over 200,000 random keys, with keys chosen to
 * collide in the hash set so that backward-shift deletion is exercised); (topic, id) keys;
 * the payload's id; a saved window read back (newest keys kept when smaller), a damaged
 * file refused.
 */
#include "dedupe.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_seen_twice_is_a_duplicate(void **state)
{
    (void)state;
    ota_dedupe *d = ota_dedupe_new(8);
    assert_non_null(d);
    assert_false(ota_dedupe_seen(d, 42));
    assert_true(ota_dedupe_seen(d, 42));
    assert_false(ota_dedupe_seen(d, 43));
    assert_int_equal(ota_dedupe_count(d), 2);
    ota_dedupe_free(d);
}

static void test_bound_and_fifo_eviction(void **state)
{
    (void)state;
    ota_dedupe *d = ota_dedupe_new(3);
    for (uint64_t k = 1; k <= 4; k++) {
        assert_false(ota_dedupe_seen(d, k));
    }
    assert_int_equal(ota_dedupe_count(d), 3);
    assert_int_equal(ota_dedupe_evicted(d), 1);
    assert_true(ota_dedupe_seen(d, 4)); /* 2, 3, 4 remain: a hit does not refresh */
    assert_true(ota_dedupe_seen(d, 2));
    assert_false(ota_dedupe_seen(d, 1)); /* evicted: new again; 2 leaves */
    assert_false(ota_dedupe_seen(d, 2));
    assert_int_equal(ota_dedupe_count(d), 3);
    ota_dedupe_free(d);
}

/* The window against a model: the last cap distinct keys added, in order. Keys share low
 * bits (a small key space times the set's size) so that probe runs are long. */
static void test_matches_a_model(void **state)
{
    (void)state;
    enum { CAP = 1000, N = 200000 };
    ota_dedupe *d = ota_dedupe_new(CAP);
    uint64_t *model = calloc(CAP, sizeof *model);
    size_t head = 0, n = 0;
    srand(7);
    for (int i = 0; i < N; i++) {
        uint64_t key = ((uint64_t)(rand() % 3000) << 11) | (uint64_t)(rand() % 4) | 1;
        bool in = false;
        for (size_t j = 0; j < n && !in; j++) {
            in = model[(head + j) % CAP] == key;
        }
        assert_int_equal(ota_dedupe_seen(d, key), in);
        if (!in && n == CAP) {
            model[head] = key;
            head = (head + 1) % CAP;
        } else if (!in) {
            model[(head + n++) % CAP] = key;
        }
    }
    assert_int_equal(ota_dedupe_count(d), CAP);
    free(model);
    ota_dedupe_free(d);
}

static uint64_t key_of(const ota_dedupe *d, const char *topic, const char *id)
{
    return ota_dedupe_key(d, topic, strlen(topic), id, strlen(id));
}

static void test_key_of_topic_and_id(void **state)
{
    (void)state;
    ota_dedupe *d = ota_dedupe_new(4);
    uint64_t a = key_of(d, "ota/v1/events/status/V", "V:1:0:0");
    assert_int_equal(a, key_of(d, "ota/v1/events/status/V", "V:1:0:0"));
    assert_int_not_equal(a, key_of(d, "ota/v1/events/push/V", "V:1:0:0"));
    assert_int_not_equal(a, key_of(d, "ota/v1/events/status/V", "V:1:0:1"));
    /* the separator: "a" + "bc" is not "ab" + "c" */
    assert_int_not_equal(key_of(d, "a", "bc"), key_of(d, "ab", "c"));
    assert_int_not_equal(a, 0);
    ota_dedupe_free(d);
}

static int id_of(const char *payload, char *out)
{
    const char *id;
    size_t n;
    if (ota_dedupe_payload_id(payload, strlen(payload), &id, &n) != 0) {
        return -1;
    }
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
}

static void test_payload_id(void **state)
{
    (void)state;
    char id[128];
    assert_int_equal(id_of("{\"id\":\"V:1:0:0\",\"vin\":\"V\"}", id), 0);
    assert_string_equal(id, "V:1:0:0");
    assert_int_equal(id_of(" { \"id\" : \"a\\\"b\" }", id), 0);
    assert_string_equal(id, "a\\\"b");                               /* as written */
    assert_int_equal(id_of("{\"vin\":\"V\",\"id\":\"x\"}", id), -1); /* not first */
    assert_int_equal(id_of("{\"id\":7}", id), -1);
    assert_int_equal(id_of("{\"id\":\"\"}", id), -1);
    assert_int_equal(id_of("{\"id\":\"open", id), -1);
    assert_int_equal(id_of("{\"id\":\"a\\", id), -1);
    assert_int_equal(id_of("{\"id\":\"a\nb\"}", id), -1);
    assert_int_equal(id_of("{\"id\":\"a\\\x1e\"}", id), -1); /* an escaped control byte */
    assert_int_equal(id_of("[\"id\"]", id), -1);
    assert_int_equal(id_of("", id), -1);
}

/* <fresh dir name>/window, in a directory made for it. */
static void window_path(char *path, size_t len, const char *name)
{
    const char *dir = test_fresh_dir(name);
    test_mkdir_p(dir);
    snprintf(path, len, "%s/window", dir);
}

static void test_saved_window_is_read_back(void **state)
{
    (void)state;
    char path[512];
    window_path(path, sizeof path, "dedupe");
    ota_dedupe *d = ota_dedupe_new(4);
    uint64_t k1 = key_of(d, "t", "1");
    for (uint64_t k = 10; k < 16; k++) { /* 12..15 stay, in a wrapped ring */
        ota_dedupe_seen(d, k);
    }
    assert_int_equal(ota_dedupe_save(d, path), 0);
    ota_dedupe_free(d);

    ota_dedupe *same = ota_dedupe_new(4);
    assert_int_equal(ota_dedupe_load(same, path), 1);
    assert_int_equal(key_of(same, "t", "1"), k1); /* the hash key came back */
    assert_false(ota_dedupe_seen(same, 11));
    assert_true(ota_dedupe_seen(same, 13));
    ota_dedupe_free(same);

    ota_dedupe *small = ota_dedupe_new(2); /* the newest two: 14, 15 */
    assert_int_equal(ota_dedupe_load(small, path), 1);
    assert_int_equal(ota_dedupe_count(small), 2);
    assert_true(ota_dedupe_seen(small, 15));
    assert_true(ota_dedupe_seen(small, 14));
    assert_false(ota_dedupe_seen(small, 13));
    ota_dedupe_free(small);
    test_remove_dir();
}

static void test_damaged_file_is_refused(void **state)
{
    (void)state;
    char path[512];
    window_path(path, sizeof path, "dedupe-bad");
    ota_dedupe *d = ota_dedupe_new(4);
    assert_int_equal(ota_dedupe_load(d, path), 0); /* none yet */
    ota_dedupe_seen(d, 5);
    ota_dedupe_seen(d, 6);
    assert_int_equal(ota_dedupe_save(d, path), 0);
    FILE *f = fopen(path, "r+b");
    fseek(f, -6, SEEK_END); /* a byte of the last key */
    fputc(0x5a, f);
    fclose(f);
    assert_int_equal(ota_dedupe_load(d, path), -1);
    assert_int_equal(ota_dedupe_count(d), 0);
    assert_false(ota_dedupe_seen(d, 5));
    ota_dedupe_free(d);
    test_remove_dir();
}

static void test_bad_capacity(void **state)
{
    (void)state;
    assert_null(ota_dedupe_new(0));
    assert_null(ota_dedupe_new((size_t)OTA_DEDUPE_WINDOW_MAX + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seen_twice_is_a_duplicate),
        cmocka_unit_test(test_bound_and_fifo_eviction),
        cmocka_unit_test(test_matches_a_model),
        cmocka_unit_test(test_key_of_topic_and_id),
        cmocka_unit_test(test_payload_id),
        cmocka_unit_test(test_saved_window_is_read_back),
        cmocka_unit_test(test_damaged_file_is_refused),
        cmocka_unit_test(test_bad_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
