/*
 * window.c — maintenance windows (window.h): the cron-like spec and the calculator.
 *
 * The calculator walks local days from a little before now (a window opened on an earlier
 * day may still be open) forward, turns each opening of each allowed day into a UTC
 * interval [start, start + duration) and merges intervals that overlap or touch. The first
 * merged window that ends after now is the answer: open when it started at or before now.
 * Windows chained across more than a year (openings that never leave a gap) are "never
 * closes" (INT64_MAX).
 */
#include "window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HORIZON_DAYS 400

/* ---- the spec ---- */

/* One item: "*", "n", "a-b", with an optional "/step". Sets bits lo..hi of *mask. */
static int parse_item(const char *s, const char *end, int lo, int hi, uint64_t *mask)
{
    int a = lo, b = hi, step = 1;
    char *p;
    if (*s == '*') {
        s++;
    } else {
        a = (int)strtol(s, &p, 10);
        if (p == s)
            return -1;
        b = a;
        s = p;
        if (*s == '-') {
            b = (int)strtol(s + 1, &p, 10);
            if (p == s + 1)
                return -1;
            s = p;
        }
    }
    if (*s == '/') {
        step = (int)strtol(s + 1, &p, 10);
        if (p == s + 1 || step < 1)
            return -1;
        s = p;
    }
    if (s != end || a < lo || b > hi || a > b)
        return -1;
    for (int v = a; v <= b; v += step)
        *mask |= 1ull << v;
    return 0;
}

static int parse_list(const char *field, int lo, int hi, uint64_t *mask)
{
    *mask = 0;
    for (const char *s = field;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        if (end == s || parse_item(s, end, lo, hi, mask) != 0)
            return -1;
        if (comma == NULL)
            return 0;
        s = comma + 1;
    }
}

int ota_window_parse(const char *spec, ota_window *w, char *err, size_t errlen)
{
    char f[5][64];
    int n = sscanf(spec ? spec : "", "%63s %63s %63s %63s %63s", f[0], f[1], f[2], f[3], f[4]);
    uint64_t minute, hours, days;
    char extra;
    if (n != 5 || sscanf(spec, "%*s %*s %*s %*s %*s %c", &extra) == 1) {
        snprintf(err, errlen, "expected \"MIN HOURS * * WEEKDAYS\" (5 fields)");
        return -1;
    }
    if (parse_list(f[0], 0, 59, &minute) != 0 || (minute & (minute - 1)) != 0) {
        snprintf(err, errlen, "minute: \"%s\" is not one minute 0..59", f[0]);
        return -1;
    }
    if (parse_list(f[1], 0, 23, &hours) != 0) {
        snprintf(err, errlen, "hours: \"%s\" is not hours 0..23", f[1]);
        return -1;
    }
    if (strcmp(f[2], "*") != 0 || strcmp(f[3], "*") != 0) {
        snprintf(err, errlen, "day of month and month: only \"*\"");
        return -1;
    }
    if (parse_list(f[4], 0, 7, &days) != 0) {
        snprintf(err, errlen, "weekdays: \"%s\" is not weekdays 0..7 (0 and 7 Sunday)", f[4]);
        return -1;
    }
    for (w->minute = 0; !(minute & 1ull << w->minute); w->minute++)
        ;
    w->hours = (uint32_t)hours;
    /* cron: 0/7 Sunday, 1 Monday ... -> bit 0 Monday ... bit 6 Sunday */
    w->weekdays = (uint8_t)(((days >> 1) & 0x3f) | (((days & 1) | (days >> 7 & 1)) << 6));
    return 0;
}

/* ---- the calculator ---- */

typedef struct {
    int64_t a, b; /* the merged window being built [a, b), seconds */
    bool have;    /* one is being built */
} merge;

/* The openings of local day d as UTC intervals, in order; how many. */
static size_t day_openings(const ota_window *w, int64_t d, int64_t starts[24])
{
    size_t n = 0;
    if (!(w->weekdays & 1u << ota_weekday(d)))
        return 0;
    for (int h = 0; h < 24; h++) {
        if (w->hours & 1u << h)
            starts[n++] = ota_tz_from_local(w->tz, d * 86400 + h * 3600 + w->minute * 60);
    }
    return n;
}

static void answer(const merge *m, int64_t now, ota_window_state *out)
{
    out->open = m->a <= now;
    out->open_ms = m->a * 1000;
    out->close_ms = m->b == INT64_MAX ? INT64_MAX : m->b * 1000;
}

int ota_window_at(const ota_window *w, int64_t now_ms, ota_window_state *out)
{
    if ((w->hours & 0xffffff) == 0 || (w->weekdays & 0x7f) == 0 || w->duration_min == 0 ||
        w->duration_min > OTA_WINDOW_DURATION_MAX || w->tz == NULL)
        return -1;
    int64_t now = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
    int64_t len = (int64_t)w->duration_min * 60;
    int64_t local = now + ota_tz_offset(w->tz, now);
    int64_t day0 = (local >= 0 ? local : local - 86399) / 86400;
    merge m = {0, 0, false};
    for (int64_t d = day0 - len / 86400 - 2; d <= day0 + HORIZON_DAYS; d++) {
        int64_t starts[24];
        size_t n = day_openings(w, d, starts);
        for (size_t i = 0; i < n; i++) {
            int64_t s = starts[i], e = s + len;
            if (m.have && s <= m.b) {
                m.b = e > m.b ? e : m.b;
                continue;
            }
            if (m.have && m.b > now) {
                answer(&m, now, out);
                return 0;
            }
            m = (merge){s, e, true};
        }
    }
    if (!m.have)
        return -1;
    if (m.b <= now) /* cannot happen: the horizon is far past now */
        return -1;
    m.b = INT64_MAX; /* still chained at the horizon: it never closes */
    answer(&m, now, out);
    return 0;
}
