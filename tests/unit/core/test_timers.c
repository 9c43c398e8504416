/*
 * test_timers.c — cmocka tests of the timer heap (plugin/core/timers.h).
 *
 * The basics (empty heap, ties in id order, reschedule both ways, cancel, pop only what is
 * due), then a model test: 200,000 random operations (set new, move, cancel, pop due at a
 * random now) on ids from a small range, each compared with a brute-force list of
 * (id, due) — after every operation the count and the next due time agree, and every pop
 * returns the minimum (due, id) of the model.
 */
#include "timers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

static void test_basics(void **state)
{
    (void)state;
    ota_timers *t = ota_timers_new();
    uint64_t id;
    int64_t due;
    assert_non_null(t);
    assert_int_equal(ota_timers_count(t), 0);
    assert_true(ota_timers_next_due(t) == INT64_MAX);
    assert_int_equal(ota_timers_pop_due(t, INT64_MAX, &id, &due), 0);
    assert_int_equal(ota_timers_set(t, 7, 100), 0);
    assert_int_equal(ota_timers_set(t, 3, 100), 0);
    assert_int_equal(ota_timers_set(t, 5, 50), 0);
    assert_int_equal(ota_timers_set(t, 9, 300), 0);
    assert_true(ota_timers_next_due(t) == 50);
    assert_int_equal(ota_timers_pop_due(t, 49, &id, &due), 0); /* nothing due yet */
    assert_int_equal(ota_timers_pop_due(t, 100, &id, &due), 1);
    assert_true(id == 5 && due == 50);
    /* a tie comes out in id order */
    assert_int_equal(ota_timers_pop_due(t, 100, &id, NULL), 1);
    assert_true(id == 3);
    /* moving 9 earlier and 7 later */
    assert_int_equal(ota_timers_set(t, 9, 10), 0);
    assert_int_equal(ota_timers_set(t, 7, 1000), 0);
    assert_true(ota_timers_get(t, 7, &due) && due == 1000);
    assert_int_equal(ota_timers_pop_due(t, 100, &id, NULL), 1);
    assert_true(id == 9);
    assert_int_equal(ota_timers_pop_due(t, 100, &id, NULL), 0);
    assert_int_equal(ota_timers_cancel(t, 7), 1);
    assert_int_equal(ota_timers_cancel(t, 7), 0);
    assert_false(ota_timers_get(t, 7, NULL));
    assert_int_equal(ota_timers_count(t), 0);
    ota_timers_free(t);
}

/* ---- the model test ---- */

#define IDS 512
#define OPS 200000

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

typedef struct {
    bool on;
    int64_t due;
} model_timer;

static model_timer model[IDS];

static size_t model_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < IDS; i++)
        n += model[i].on;
    return n;
}

/* The minimum (due, id), or -1. */
static int model_min(void)
{
    int best = -1;
    for (int i = 0; i < IDS; i++) {
        if (model[i].on && (best < 0 || model[i].due < model[best].due))
            best = i; /* ascending i: the first of equal dues has the smallest id */
    }
    return best;
}

static void pop_due(ota_timers *t, int64_t now)
{
    uint64_t id;
    int64_t due;
    for (;;) {
        int m = model_min();
        bool want = m >= 0 && model[m].due <= now;
        int got = ota_timers_pop_due(t, now, &id, &due);
        assert_int_equal(got, want);
        if (!want)
            return;
        assert_int_equal(id, (uint64_t)m);
        assert_true(due == model[m].due);
        model[m].on = false;
    }
}

static void test_against_a_model(void **state)
{
    (void)state;
    ota_timers *t = ota_timers_new();
    assert_non_null(t);
    int64_t now = 0;
    for (int op = 0; op < OPS; op++) {
        uint64_t id = rnd(IDS);
        switch (rnd(8)) {
        case 0:
        case 1:
        case 2: /* schedule or move, around now (dues repeat: ties happen) */
        case 3: {
            int64_t due = now + (int64_t)rnd(1000);
            assert_int_equal(ota_timers_set(t, id, due), 0);
            model[id] = (model_timer){true, due};
            break;
        }
        case 4:
        case 5:
            assert_int_equal(ota_timers_cancel(t, id), model[id].on);
            model[id].on = false;
            break;
        default:
            now += (int64_t)rnd(300);
            pop_due(t, now);
            break;
        }
        int m = model_min();
        assert_int_equal(ota_timers_count(t), model_count());
        assert_true(ota_timers_next_due(t) == (m >= 0 ? model[m].due : INT64_MAX));
    }
    pop_due(t, INT64_MAX);
    assert_int_equal(ota_timers_count(t), 0);
    ota_timers_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_against_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
