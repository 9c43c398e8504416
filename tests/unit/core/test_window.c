/*
 * test_window.c — cmocka tests of time zones (plugin/core/tz.h) and maintenance windows
 * (plugin/core/window.h).
 *
 * Time zones: the offsets of ten zones (two-rule, no-DST, southern, negative DST in
 * Dublin, quarter-hour Chatham, Kolkata, far-future dates on the footer rule) agree with
 * glibc's localtime_r at 20,000 random instants from 1950 to 2150 each — glibc is the
 * oracle, switched with TZ inside this single-threaded test; local-to-UTC in a skipped
 * and in a repeated hour; bad names and files. Windows: the cron-like spec and its errors,
 * then hand-computed cases (open now, next opening, overnight and weekday-only windows,
 * openings in the spring-forward gap and the autumn repeat, merged overlaps, a window that
 * never closes), and a brute-force check: for 30 random instants and specs, nothing between
 * now and the next opening is inside any opening, computed minute by minute from glibc's
 * local time.
 */
#include "tz.h"
#include "window.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static const char *const ZONES[] = {
    "Europe/Berlin", "America/New_York", "Australia/Sydney",  "Europe/Dublin", "Pacific/Chatham",
    "Asia/Kolkata",  "Asia/Shanghai",    "America/Sao_Paulo", "UTC",           "America/St_Johns"};
#define N_ZONES (sizeof ZONES / sizeof ZONES[0])

static uint64_t rng = 0x853c49e6748fea9bull;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

static ota_tz *load(const char *name)
{
    char err[256];
    ota_tz *z = ota_tz_load(name, err, sizeof err);
    if (z == NULL)
        fail_msg("%s: %s", name, err);
    return z;
}

/* glibc's offset of zone name at t (this test is single-threaded: TZ may change). */
static long glibc_offset(const char *name, int64_t t)
{
    char tz[128];
    snprintf(tz, sizeof tz, ":%s", name);
    setenv("TZ", tz, 1);
    tzset();
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(localtime_r(&tt, &tm));
    return tm.tm_gmtoff;
}

static void test_offsets_match_glibc(void **state)
{
    (void)state;
    const int64_t from = -631152000; /* 1950 */
    const int64_t span = 6311433600; /* 200 years */
    for (size_t k = 0; k < N_ZONES; k++) {
        ota_tz *z = load(ZONES[k]);
        for (int i = 0; i < 20000; i++) {
            int64_t t = from + (int64_t)rnd((uint64_t)span);
            long want = glibc_offset(ZONES[k], t);
            if (ota_tz_offset(z, t) != want)
                fail_msg("%s at %lld: %d, glibc %ld", ZONES[k], (long long)t, ota_tz_offset(z, t),
                         want);
        }
        ota_tz_free(z);
    }
    unsetenv("TZ");
    tzset();
}

static void test_calendar(void **state)
{
    (void)state;
    int64_t y;
    unsigned m, d;
    assert_int_equal(ota_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(ota_days_from_civil(2000, 3, 1), 11017);
    ota_civil_from_days(-1, &y, &m, &d);
    assert_true(y == 1969 && m == 12 && d == 31);
    assert_int_equal(ota_weekday(0), 3);                                /* Thursday */
    assert_int_equal(ota_weekday(ota_days_from_civil(2026, 12, 7)), 0); /* a Monday */
    assert_int_equal(ota_weekday(-1), 2);
}

#define UTC(y, mo, d, h, mi) (ota_days_from_civil(y, mo, d) * 86400 + (h)*3600 + (mi)*60)

static void test_from_local(void **state)
{
    (void)state;
    ota_tz *berlin = load("Europe/Berlin"), *ny = load("America/New_York");
    /* an ordinary time */
    assert_true(ota_tz_from_local(berlin, UTC(2026, 6, 1, 12, 0)) == UTC(2026, 6, 1, 10, 0));
    /* 2026-03-29 02:30 does not exist in Berlin: 03:30 CEST = 01:30 UTC */
    assert_true(ota_tz_from_local(berlin, UTC(2026, 3, 29, 2, 30)) == UTC(2026, 3, 29, 1, 30));
    /* 2026-10-25 02:30 happens twice: the first (CEST) = 00:30 UTC */
    assert_true(ota_tz_from_local(berlin, UTC(2026, 10, 25, 2, 30)) == UTC(2026, 10, 25, 0, 30));
    /* New York 2026-11-01 01:30 twice: EDT first = 05:30 UTC */
    assert_true(ota_tz_from_local(ny, UTC(2026, 11, 1, 1, 30)) == UTC(2026, 11, 1, 5, 30));
    /* far future, on the footer rule: 2100-07-01 12:00 EDT */
    assert_true(ota_tz_from_local(ny, UTC(2100, 7, 1, 12, 0)) == UTC(2100, 7, 1, 16, 0));
    ota_tz_free(berlin);
    ota_tz_free(ny);
}

static void test_bad_zones(void **state)
{
    (void)state;
    char err[256];
    assert_null(ota_tz_load("Mars/Olympus", err, sizeof err));
    assert_non_null(strstr(err, "unknown time zone \"Mars/Olympus\""));
    assert_null(ota_tz_load("../etc/passwd", err, sizeof err));
    assert_non_null(strstr(err, "is not a time zone name"));
    assert_null(ota_tz_load("/etc/localtime", err, sizeof err));
    const uint8_t junk[60] = "TZif2 not really";
    assert_null(ota_tz_parse(junk, sizeof junk, err, sizeof err));
    assert_null(ota_tz_parse(junk, 10, err, sizeof err));
}

/* ---- windows ---- */

static void parse_ok(const char *spec, ota_window *w)
{
    char err[128];
    if (ota_window_parse(spec, w, err, sizeof err) != 0)
        fail_msg("%s: %s", spec, err);
}

static void parse_fails(const char *spec, const char *expect)
{
    char err[128] = "";
    ota_window w = {0};
    assert_int_equal(ota_window_parse(spec, &w, err, sizeof err), -1);
    if (strstr(err, expect) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", spec, err, expect);
}

static void test_spec(void **state)
{
    (void)state;
    ota_window w = {0};
    parse_ok("0 2 * * 1-5", &w);
    assert_true(w.minute == 0 && w.hours == 1u << 2 && w.weekdays == 0x1f);
    parse_ok("30 22,23 * * 5,6,0", &w);
    assert_true(w.minute == 30 && w.hours == (3u << 22) && w.weekdays == 0x70);
    parse_ok("45 */6 * * 7", &w);
    assert_true(w.hours == (1u | 1u << 6 | 1u << 12 | 1u << 18) && w.weekdays == 0x40);
    parse_ok("59 1-23/11 * * *", &w);
    assert_true(w.minute == 59 && w.hours == (1u << 1 | 1u << 12 | 1u << 23) && w.weekdays == 0x7f);
    parse_fails("0 2 * *", "5 fields");
    parse_fails("0 2 * * 1 extra", "5 fields");
    parse_fails("60 2 * * 1", "minute:");
    parse_fails("0,30 2 * * 1", "minute:");
    parse_fails("0 24 * * 1", "hours:");
    parse_fails("0 5-2 * * 1", "hours:");
    parse_fails("0 2 1 * 1", "day of month and month");
    parse_fails("0 2 * * 8", "weekdays:");
    parse_fails("0 2 * * 1,", "weekdays:");
}

static ota_window_state at(const ota_window *w, int64_t t)
{
    ota_window_state s;
    assert_int_equal(ota_window_at(w, t * 1000, &s), 0);
    return s;
}

static void expect(const ota_window *w, int64_t now, bool open, int64_t from, int64_t to)
{
    ota_window_state s = at(w, now);
    if (s.open != open || s.open_ms != from * 1000 ||
        (to == INT64_MAX ? s.close_ms != INT64_MAX : s.close_ms != to * 1000))
        fail_msg("at %lld: open %d [%lld, %lld), expected %d [%lld, %lld)", (long long)now, s.open,
                 (long long)s.open_ms / 1000, (long long)s.close_ms / 1000, open, (long long)from,
                 (long long)to);
}

static void test_window_cases(void **state)
{
    (void)state;
    ota_tz *berlin = load("Europe/Berlin"), *ny = load("America/New_York");
    ota_window_state s;
    ota_window w = {.tz = berlin, .duration_min = 60};
    parse_ok("0 2 * * *", &w); /* 02:00-03:00 local, daily */
    /* summer: 02:00 CEST = 00:00 UTC; open at 00:30 UTC, next after 01:00 UTC */
    expect(&w, UTC(2026, 6, 1, 0, 30), true, UTC(2026, 6, 1, 0, 0), UTC(2026, 6, 1, 1, 0));
    expect(&w, UTC(2026, 6, 1, 1, 0), false, UTC(2026, 6, 2, 0, 0), UTC(2026, 6, 2, 1, 0));
    /* 2026-03-29 02:00 is skipped: it opens at 03:00 CEST = 01:00 UTC, for an hour */
    expect(&w, UTC(2026, 3, 28, 12, 0), false, UTC(2026, 3, 29, 1, 0), UTC(2026, 3, 29, 2, 0));
    /* weekdays 22:00 for 8 hours: Friday's window is still open on Saturday 03:00 */
    ota_window night = {.tz = berlin, .duration_min = 480};
    parse_ok("0 22 * * 1-5", &night);
    /* 2026-12-05 is a Saturday; CET = UTC+1 */
    expect(&night, UTC(2026, 12, 5, 2, 0), true, UTC(2026, 12, 4, 21, 0), UTC(2026, 12, 5, 5, 0));
    /* Saturday noon: next is Monday 2026-12-07 22:00 CET */
    expect(&night, UTC(2026, 12, 5, 11, 0), false, UTC(2026, 12, 7, 21, 0), UTC(2026, 12, 8, 5, 0));
    /* the repeated hour: 01:30 in New York on 2026-11-01 opens at its first (EDT) time */
    ota_window rep = {.tz = ny, .duration_min = 30};
    parse_ok("30 1 * * *", &rep);
    expect(&rep, UTC(2026, 11, 1, 0, 0), false, UTC(2026, 11, 1, 5, 30), UTC(2026, 11, 1, 6, 0));
    /* overlapping openings are one window: 02:00 and 03:00 for 90 minutes */
    ota_window ov = {.tz = berlin, .duration_min = 90};
    parse_ok("0 2,3 * * *", &ov);
    expect(&ov, UTC(2026, 6, 1, 1, 45), true, UTC(2026, 6, 1, 0, 0), UTC(2026, 6, 1, 2, 30));
    /* every hour for an hour, in UTC: never closes */
    ota_tz *utc = load("UTC");
    ota_window always = {.tz = utc, .duration_min = 60};
    parse_ok("0 * * * *", &always);
    s = at(&always, UTC(2026, 6, 1, 12, 0));
    assert_true(s.open && s.open_ms <= UTC(2026, 6, 1, 12, 0) * 1000 && s.close_ms == INT64_MAX);
    ota_tz_free(utc);
    /* the same in Berlin closes for the repeated hour of 2026-10-25: "02:00" opens once
     * (00:00 UTC, CEST) and "03:00" CET is 02:00 UTC, so 01:00-02:00 UTC is a gap */
    always.tz = berlin;
    s = at(&always, UTC(2026, 6, 1, 12, 0));
    assert_true(s.open && s.close_ms == UTC(2026, 10, 25, 1, 0) * 1000);
    expect(&always, UTC(2026, 10, 25, 1, 30), false, UTC(2026, 10, 25, 2, 0),
           UTC(2027, 10, 31, 1, 0)); /* until the next repeated hour */
    /* never opens */
    ota_window none = {.tz = berlin, .duration_min = 60, .minute = 0, .hours = 0x4, .weekdays = 0};
    assert_int_equal(ota_window_at(&none, 0, &s), -1);
    ota_tz_free(berlin);
    ota_tz_free(ny);
}

/* Brute force: is UTC instant t inside some opening, read from glibc's local time? An
 * opening at local day D, hour h covers [from_local(D h:m), + duration); for instants
 * away from DST changes (checked by the caller) that is: local(t) - opening < duration. */
static bool inside_brute(const ota_window *w, const char *zone, int64_t t)
{
    long off = glibc_offset(zone, t);
    int64_t local = t + off;
    int64_t len = (int64_t)w->duration_min * 60;
    for (int64_t back = 0; back < len; back += 60) {
        int64_t l = local - back; /* a local minute that might be an opening */
        int64_t d = (l >= 0 ? l : l - 86399) / 86400, sec = l - d * 86400;
        if (sec % 3600 / 60 == w->minute && sec % 60 == 0 && (w->hours >> (sec / 3600) & 1) &&
            (w->weekdays >> ota_weekday(d) & 1))
            return true;
    }
    return false;
}

static void test_window_brute_force(void **state)
{
    (void)state;
    const char *zone = "Asia/Shanghai"; /* no DST since 1991: local arithmetic is exact */
    ota_tz *z = load(zone);
    for (int k = 0; k < 30; k++) {
        ota_window w = {.tz = z, .duration_min = 1 + (uint32_t)rnd(300)};
        w.minute = (uint8_t)rnd(60);
        w.hours = (uint32_t)(rnd(1u << 24) & rnd(1u << 24) & rnd(1u << 24)) | 1u << rnd(24);
        w.weekdays = (uint8_t)(rnd(127) + 1);
        int64_t now = UTC(2026, 1, 1, 0, 0) + (int64_t)rnd(365 * 86400);
        now -= now % 60;
        ota_window_state s = at(&w, now);
        assert_int_equal(s.open, inside_brute(&w, zone, now));
        if (s.open)
            continue;
        /* nothing is open from now until the next opening, which is open */
        for (int64_t t = now; t < s.open_ms / 1000; t += 60) {
            if (inside_brute(&w, zone, t))
                fail_msg("spec %u %x %x +%u: %lld is open before %lld", w.minute, w.hours,
                         w.weekdays, w.duration_min, (long long)t, (long long)s.open_ms / 1000);
        }
        assert_true(inside_brute(&w, zone, s.open_ms / 1000));
        assert_false(inside_brute(&w, zone, s.open_ms / 1000 - 60));
        if (s.close_ms != INT64_MAX) {
            assert_true(inside_brute(&w, zone, s.close_ms / 1000 - 60));
            assert_false(inside_brute(&w, zone, s.close_ms / 1000));
        }
    }
    ota_tz_free(z);
    unsetenv("TZ");
    tzset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_offsets_match_glibc),
        cmocka_unit_test(test_from_local),
        cmocka_unit_test(test_bad_zones),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_window_cases),
        cmocka_unit_test(test_window_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
