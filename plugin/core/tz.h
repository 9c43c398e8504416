/*
 * tz.h — UTC offsets of a named time zone, read from the compiled tz database (TZif
 * files, RFC 8536) without touching the process's TZ (issue 16: maintenance windows).
 *
 * Why not the C library: glibc converts with the zone named by the TZ environment
 * variable only (localtime_r, mktime); switching zones per call means setenv + tzset,
 * which races with every other thread that reads the time zone (the broker logs with
 * localtime). glibc 2.36 has no tzalloc / localtime_rz (NetBSD, tzcode). So the zone's
 * file is parsed here into an immutable ota_tz: any thread may query it.
 *
 * Offsets come from the file's 64-bit transitions; after the last one, from the POSIX TZ
 * rule in its footer ("CET-1CEST,M3.5.0,M10.5.0/3"), so dates far in the future follow
 * the current rules, as glibc does. Before the first transition: the first local time
 * type (RFC 8536 §3.2).
 */
#ifndef OTA_TZ_H
#define OTA_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct ota_tz ota_tz;

/* Loads zone name ("Europe/Berlin", "UTC") from $TZDIR, else /usr/share/zoneinfo. A name
 * is 1..255 characters of A-Z a-z 0-9 _ + - / without "..". NULL with err when it is not
 * valid, not found or not a TZif file. */
ota_tz *ota_tz_load(const char *name, char *err, size_t errlen);
/* The same from the bytes of a TZif file. */
ota_tz *ota_tz_parse(const uint8_t *data, size_t len, char *err, size_t errlen);
void ota_tz_free(ota_tz *z);

/* The offset from UTC (seconds, east positive) in force at UTC instant t (seconds). */
int32_t ota_tz_offset(const ota_tz *z, int64_t t);
/* The UTC instant (seconds) of a local wall-clock time, given as seconds since
 * 1970-01-01T00:00 local. A time that does not exist (skipped by a change to summer time)
 * is moved forward by the skip (02:30 -> 03:30); one that exists twice (the hour repeated
 * in autumn) is the earlier instant. */
int64_t ota_tz_from_local(const ota_tz *z, int64_t local);

/* Civil calendar helpers (proleptic Gregorian), shared with window.c. */
int64_t ota_days_from_civil(int64_t y, unsigned m, unsigned d);
void ota_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* 0 = Monday ... 6 = Sunday. */
unsigned ota_weekday(int64_t days);

#endif
