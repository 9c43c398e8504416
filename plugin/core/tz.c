/*
 * tz.c — TZif parsing and UTC offsets of a named zone (tz.h).
 *
 * A TZif file (RFC 8536) has a version-1 block with 32-bit times and, from version 2, a
 * second header and block with 64-bit times followed by a footer holding a POSIX TZ
 * string. We read the 64-bit block when there is one (else the 32-bit one) and the
 * footer; leap-second records are skipped (the "right/" zones are not supported: their
 * times are not POSIX times).
 *
 * POSIX TZ rules: "std offset [dst [offset] [,start[/time],end[/time]]]" where the
 * offsets count west-positive hours ("CET-1" is UTC+1), a missing dst offset is std + 1 h,
 * and dates are Mm.w.d (month, week 1..5 with 5 the last, weekday 0 = Sunday), Jn (1..365,
 * February 29 never counted) or n (0..365). Transition times are local wall time in the
 * offset in force before the change, -167..167 hours (RFC 8536 extension).
 */
#include "tz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1 << 20)

typedef struct {
    char kind;   /* 'M', 'J' or 'N' */
    int m, w, d; /* M */
    int n;       /* J, N */
    int32_t time;
} rule_date;

typedef struct {
    int32_t std_off, dst_off; /* east positive */
    bool has_dst;
    rule_date start, end;
} posix_rule;

struct ota_tz {
    int64_t *trans; /* transition instants, ascending */
    uint8_t *idx;   /* the type after each transition */
    size_t n_trans;
    int32_t *offs; /* per type */
    size_t n_types;
    bool has_rule;
    posix_rule rule;
};

/* ---- the civil calendar (H. Hinnant's algorithms) ---- */

int64_t ota_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void ota_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

unsigned ota_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday (3 when Monday is 0) */
    int64_t w = (days + 3) % 7;
    return (unsigned)(w < 0 ? w + 7 : w);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return days[m - 1] + (m == 2 && leap(y));
}

/* ---- the POSIX TZ footer ---- */

typedef struct {
    const char *p;
    bool ok;
} cursor;

static void skip_name(cursor *c)
{
    if (*c->p == '<') {
        const char *end = strchr(c->p, '>');
        c->ok = c->ok && end != NULL && end - c->p >= 4;
        c->p = end ? end + 1 : c->p + strlen(c->p);
        return;
    }
    const char *s = c->p;
    while ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z'))
        c->p++;
    c->ok = c->ok && c->p - s >= 3;
}

static int read_num(cursor *c, int max)
{
    int v = 0, digits = 0;
    while (*c->p >= '0' && *c->p <= '9' && digits < 4) {
        v = v * 10 + (*c->p++ - '0');
        digits++;
    }
    c->ok = c->ok && digits > 0 && v <= max;
    return v;
}

/* [+-]hh[:mm[:ss]] in seconds. */
static int32_t read_hms(cursor *c, int max_hours)
{
    int sign = 1;
    if (*c->p == '+' || *c->p == '-')
        sign = *c->p++ == '-' ? -1 : 1;
    int32_t s = read_num(c, max_hours) * 3600;
    if (*c->p == ':') {
        c->p++;
        s += read_num(c, 59) * 60;
        if (*c->p == ':') {
            c->p++;
            s += read_num(c, 59);
        }
    }
    return sign * s;
}

static rule_date read_date(cursor *c)
{
    rule_date r = {0};
    r.time = 2 * 3600;
    if (*c->p == 'M') {
        c->p++;
        r.kind = 'M';
        r.m = read_num(c, 12);
        c->ok = c->ok && r.m >= 1 && *c->p++ == '.';
        r.w = read_num(c, 5);
        c->ok = c->ok && r.w >= 1 && *c->p++ == '.';
        r.d = read_num(c, 6);
    } else if (*c->p == 'J') {
        c->p++;
        r.kind = 'J';
        r.n = read_num(c, 365);
        c->ok = c->ok && r.n >= 1;
    } else {
        r.kind = 'N';
        r.n = read_num(c, 365);
    }
    if (c->ok && *c->p == '/') {
        c->p++;
        r.time = read_hms(c, 167);
    }
    return r;
}

static bool parse_rule(const char *s, posix_rule *r)
{
    cursor c = {s, true};
    memset(r, 0, sizeof *r);
    skip_name(&c);
    r->std_off = -read_hms(&c, 24);
    if (!c.ok)
        return false;
    if (*c.p == '\0')
        return true;
    r->has_dst = true;
    skip_name(&c);
    r->dst_off = r->std_off + 3600;
    if (*c.p != ',' && *c.p != '\0')
        r->dst_off = -read_hms(&c, 24);
    if (*c.p == '\0') { /* no rule: POSIX leaves it to the implementation; the US one */
        r->start = (rule_date){'M', 3, 2, 0, 0, 7200};
        r->end = (rule_date){'M', 11, 1, 0, 0, 7200};
        return c.ok;
    }
    c.ok = c.ok && *c.p++ == ',';
    r->start = read_date(&c);
    c.ok = c.ok && *c.p++ == ',';
    r->end = read_date(&c);
    return c.ok && *c.p == '\0';
}

/* Day of the year (0-based) of a rule date in year y. */
static int64_t rule_day(const rule_date *r, int64_t y)
{
    if (r->kind == 'J')
        return r->n - 1 + (leap(y) && r->n >= 60);
    if (r->kind == 'N')
        return r->n;
    int64_t first = ota_days_from_civil(y, (unsigned)r->m, 1);
    unsigned wd_first = (ota_weekday(first) + 1) % 7; /* 0 = Sunday */
    int64_t day = 1 + ((r->d - (int)wd_first + 7) % 7) + (r->w - 1) * 7;
    while (day > (int64_t)month_days(y, (unsigned)r->m))
        day -= 7;
    return first - ota_days_from_civil(y, 1, 1) + day - 1;
}

/* The UTC instant of a rule's change in year y, the offset before it being `before`. */
static int64_t rule_instant(const rule_date *r, int64_t y, int32_t before)
{
    return (ota_days_from_civil(y, 1, 1) + rule_day(r, y)) * 86400 + r->time - before;
}

static int32_t rule_offset(const posix_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y;
    unsigned m, d;
    ota_civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
    int64_t s = rule_instant(&r->start, y, r->std_off);
    int64_t e = rule_instant(&r->end, y, r->dst_off);
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? r->dst_off : r->std_off;
}

/* ---- TZif ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
    uint32_t isut, isstd, leap, time, type, chars;
} counts;

static bool read_header(const uint8_t *p, size_t left, counts *c)
{
    if (left < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    *c = (counts){be32(p + 20), be32(p + 24), be32(p + 28),
                  be32(p + 32), be32(p + 36), be32(p + 40)};
    return c->type >= 1 && c->type <= 256 && c->time <= 100000 && c->leap <= 10000 &&
           c->chars <= 65536 && (c->isut == 0 || c->isut == c->type) &&
           (c->isstd == 0 || c->isstd == c->type);
}

static size_t block_size(const counts *c, size_t tsize)
{
    return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd +
           c->isut;
}

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return -1;
}

/* Reads the block at p (times of tsize bytes) into z. */
static int read_block(ota_tz *z, const uint8_t *p, const counts *c, size_t tsize, char *err,
                      size_t errlen)
{
    z->n_trans = c->time;
    z->n_types = c->type;
    z->trans = malloc((c->time ? c->time : 1) * sizeof *z->trans);
    z->idx = malloc(c->time ? c->time : 1);
    z->offs = malloc(c->type * sizeof *z->offs);
    if (!z->trans || !z->idx || !z->offs)
        return fail(err, errlen, "out of memory");
    for (size_t i = 0; i < c->time; i++) {
        z->trans[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
        if (i > 0 && z->trans[i] <= z->trans[i - 1])
            return fail(err, errlen, "TZif: transitions out of order");
    }
    p += c->time * tsize;
    for (size_t i = 0; i < c->time; i++) {
        if ((z->idx[i] = p[i]) >= c->type)
            return fail(err, errlen, "TZif: bad local time type index");
    }
    p += c->time;
    for (size_t i = 0; i < c->type; i++) {
        int32_t off = (int32_t)be32(p + i * 6);
        if (off < -89999 || off > 93599)
            return fail(err, errlen, "TZif: bad UT offset");
        z->offs[i] = off;
    }
    return 0;
}

/* The footer "\nTZ\n" after the v2+ block; an empty one means no rule. */
static int read_footer(ota_tz *z, const uint8_t *p, size_t left, char *err, size_t errlen)
{
    char rule[256];
    if (left < 2 || p[0] != '\n')
        return fail(err, errlen, "TZif: no footer");
    const uint8_t *end = memchr(p + 1, '\n', left - 1);
    size_t n = end ? (size_t)(end - p - 1) : sizeof rule;
    if (n >= sizeof rule)
        return fail(err, errlen, "TZif: bad footer");
    if (n == 0)
        return 0;
    memcpy(rule, p + 1, n);
    rule[n] = '\0';
    if (!parse_rule(rule, &z->rule))
        return fail(err, errlen, "TZif: footer is not a POSIX TZ rule I can read");
    z->has_rule = true;
    return 0;
}

ota_tz *ota_tz_parse(const uint8_t *data, size_t len, char *err, size_t errlen)
{
    counts c1, c2;
    ota_tz *z = calloc(1, sizeof *z);
    if (z == NULL) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    if (!read_header(data, len, &c1) || block_size(&c1, 4) > len - 44) {
        fail(err, errlen, "not a TZif file");
        goto bad;
    }
    if (data[4] == '\0') { /* version 1: 32-bit times only, no footer */
        if (read_block(z, data + 44, &c1, 4, err, errlen) != 0)
            goto bad;
        return z;
    }
    const uint8_t *p2 = data + 44 + block_size(&c1, 4);
    size_t left = len - (size_t)(p2 - data);
    if (!read_header(p2, left, &c2) || block_size(&c2, 8) > left - 44) {
        fail(err, errlen, "TZif: bad version 2 header");
        goto bad;
    }
    if (read_block(z, p2 + 44, &c2, 8, err, errlen) != 0 ||
        read_footer(z, p2 + 44 + block_size(&c2, 8), left - 44 - block_size(&c2, 8), err, errlen) !=
            0)
        goto bad;
    return z;
bad:
    ota_tz_free(z);
    return NULL;
}

void ota_tz_free(ota_tz *z)
{
    if (z == NULL)
        return;
    free(z->trans);
    free(z->idx);
    free(z->offs);
    free(z);
}

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '/' || strstr(name, "..") != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '-' || ch == '/'))
            return false;
    }
    return true;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = malloc(MAX_FILE);
    size_t n = buf ? fread(buf, 1, MAX_FILE, f) : 0;
    fclose(f);
    if (buf != NULL && (n == 0 || n == MAX_FILE)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

ota_tz *ota_tz_load(const char *name, char *err, size_t errlen)
{
    if (name == NULL || !name_valid(name)) {
        snprintf(err, errlen, "\"%s\" is not a time zone name", name ? name : "");
        return NULL;
    }
    const char *dir = getenv("TZDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
    size_t len = 0;
    uint8_t *data = read_all(path, &len);
    if (data == NULL) {
        snprintf(err, errlen, "unknown time zone \"%s\" (no readable %s)", name, path);
        return NULL;
    }
    char perr[128];
    ota_tz *z = ota_tz_parse(data, len, perr, sizeof perr);
    free(data);
    if (z == NULL)
        snprintf(err, errlen, "time zone \"%s\": %s", name, perr);
    return z;
}

/* ---- offsets ---- */

int32_t ota_tz_offset(const ota_tz *z, int64_t t)
{
    if (z->n_trans == 0 || t < z->trans[0])
        return z->n_trans == 0 && z->has_rule ? rule_offset(&z->rule, t) : z->offs[0];
    if (t >= z->trans[z->n_trans - 1] && z->has_rule)
        return rule_offset(&z->rule, t);
    size_t lo = 0, hi = z->n_trans; /* the last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offs[z->idx[lo]];
}

int64_t ota_tz_from_local(const ota_tz *z, int64_t local)
{
    int32_t before = ota_tz_offset(z, local - 86400 - 93600);
    int32_t after = ota_tz_offset(z, local + 86400 + 93600);
    int64_t t1 = local - before, t2 = local - after;
    bool ok1 = ota_tz_offset(z, t1) == before, ok2 = ota_tz_offset(z, t2) == after;
    if (ok1 && ok2)
        return t1 < t2 ? t1 : t2;
    if (ok1 || ok2)
        return ok1 ? t1 : t2;
    return t1; /* skipped: read with the offset before the change, i.e. moved forward */
}
