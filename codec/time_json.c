/*
 * time_json.c — times in the operator API (issue 18): ms since the Unix epoch, or ISO 8601
 * text with a zone ("2026-12-08T10:00:00Z", "2026-12-08T18:00:00.250+08:00"), read into
 * ms; and ms printed back as ISO 8601 UTC for people (otactl). A number that is clearly
 * seconds (below 1e11, i.e. before 1973 in ms) is refused rather than taken for 1970.
 * Calendar arithmetic is done here (days from civil), not with timegm or the local zone.
 */
#include "ota_catalog_json.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SECONDS_LOOK_BELOW 100000000000LL /* 1e11 ms = 1973-03-03 */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* n digits at *s into *v; advances s. */
static int digits(const char **s, int n, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*s)++) {
        if (!isdigit((unsigned char)**s))
            return -1;
        *v = *v * 10 + (unsigned)(**s - '0');
    }
    return 0;
}

static int expect(const char **s, char c)
{
    return **s == c ? ((*s)++, 0) : -1;
}

static bool is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int valid_date(unsigned y, unsigned m, unsigned d)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return -1;
    return d <= mdays[m - 1] + (m == 2 && is_leap(y)) ? 0 : -1;
}

/* ".fff" (1..9 digits; ms kept) into *ms. */
static int fraction(const char **s, unsigned *ms)
{
    *ms = 0;
    if (**s != '.' && **s != ',')
        return 0;
    (*s)++;
    int n = 0;
    for (; isdigit((unsigned char)**s); (*s)++, n++)
        if (n < 3)
            *ms = *ms * 10 + (unsigned)(**s - '0');
    if (n == 0 || n > 9)
        return -1;
    for (; n < 3; n++)
        *ms *= 10;
    return 0;
}

/* "Z", "+hh:mm", "-hh:mm" (or +hhmm) into seconds east of UTC. */
static int zone(const char **s, int *east)
{
    if (**s == 'Z' || **s == 'z') {
        (*s)++;
        *east = 0;
        return 0;
    }
    int sign = **s == '+' ? 1 : **s == '-' ? -1 : 0;
    unsigned hh, mm;
    if (sign == 0)
        return -1;
    (*s)++;
    if (digits(s, 2, &hh) != 0)
        return -1;
    if (**s == ':')
        (*s)++;
    if (digits(s, 2, &mm) != 0 || hh > 23 || mm > 59)
        return -1;
    *east = sign * (int)(hh * 3600 + mm * 60);
    return 0;
}

int ota_iso8601_parse(const char *text, int64_t *ms_out)
{
    const char *s = text;
    unsigned y, mo, d, h, mi, sec, ms;
    int east;
    if (digits(&s, 4, &y) || expect(&s, '-') || digits(&s, 2, &mo) || expect(&s, '-') ||
        digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' ') || !++s || digits(&s, 2, &h) ||
        expect(&s, ':') || digits(&s, 2, &mi) || expect(&s, ':') || digits(&s, 2, &sec) ||
        fraction(&s, &ms) || zone(&s, &east) || *s != '\0')
        return -1;
    if (y < 1970 || valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - east;
    if (t < 0)
        return -1;
    *ms_out = t * 1000 + ms;
    return 0;
}

void ota_iso8601_format(int64_t ms, char *buf, size_t len)
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t days = sec >= 0 ? sec / 86400 : (sec - 86399) / 86400;
    int64_t rem = sec - days * 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned frac = (unsigned)(ms - sec * 1000);
    if (frac)
        snprintf(buf, len, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d, (unsigned)(rem / 3600),
                 (unsigned)(rem / 60 % 60), (unsigned)(rem % 60), frac);
    else
        snprintf(buf, len, "%04d-%02u-%02uT%02u:%02u:%02uZ", y, m, d, (unsigned)(rem / 3600),
                 (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

int ota_json_get_time(const cJSON *obj, const char *path, const char *key, bool required,
                      int64_t *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (j == NULL) {
        if (required)
            return ota_json_errf(err, errlen, path, key, "missing");
        return 0;
    }
    if (cJSON_IsString(j)) {
        if (ota_iso8601_parse(j->valuestring, out) != 0)
            return ota_json_errf(err, errlen, path, key,
                                 "\"%.40s\" is not an ISO 8601 time with a zone "
                                 "(e.g. 2026-12-08T10:00:00Z or 2026-12-08T18:00:00+08:00)",
                                 j->valuestring);
        return 0;
    }
    uint64_t v = 0;
    if (ota_json_get_uint(obj, path, key, true, 0, OTA_JSON_UINT_MAX, &v, err, errlen) != 0)
        return ota_json_errf(err, errlen, path, key,
                             "expected ms since the Unix epoch or an ISO 8601 text");
    if (v < SECONDS_LOOK_BELOW)
        return ota_json_errf(err, errlen, path, key,
                             "%" PRIu64 " looks like seconds (before 1973 in ms): give ms since "
                             "the Unix epoch or an ISO 8601 text",
                             v);
    *out = (int64_t)v;
    return 0;
}
