/*
 * window.h — maintenance windows (issue 16): recurring openings given cron-like (a
 * minute, a set of hours, a set of weekdays) with a duration, in a named time zone; the
 * calculator says whether a window is open at an instant and when it closes, or when it
 * next opens.
 *
 * Form: "MIN HOURS * * WEEKDAYS" — the five fields of cron with the day of month and the
 * month always "*": MIN is 0..59; HOURS and WEEKDAYS are "*", a number, a range "a-b", a
 * step "*\/n" or "a-b/n", or a comma list of those (weekdays 0..7, 0 and 7 Sunday, 1
 * Monday). "0 2 * * 1-5" + 240 minutes: weekdays 02:00-06:00 local.
 *
 * Openings are local wall-clock times (tz.h: a time skipped by a change to summer time
 * opens at the end of the skip; a repeated time at its first occurrence); a duration is
 * elapsed time. Openings that overlap or touch are one window. Pure and thread-safe over
 * an immutable ota_tz.
 */
#ifndef OTA_WINDOW_H
#define OTA_WINDOW_H

#include "tz.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_WINDOW_DURATION_MAX (7 * 24 * 60) /* minutes */

typedef struct {
    uint8_t minute;        /* 0..59 */
    uint32_t hours;        /* bit h: an opening at h:minute */
    uint8_t weekdays;      /* bit 0 Monday ... bit 6 Sunday */
    uint32_t duration_min; /* 1..OTA_WINDOW_DURATION_MAX */
    const ota_tz *tz;
} ota_window;

/* Parses the cron-like spec into w (tz and duration left as they are). 0, or -1 with err
 * naming the field ("hours: 24 is not 0..23"). */
int ota_window_parse(const char *spec, ota_window *w, char *err, size_t errlen);

typedef struct {
    bool open;        /* now is inside a window */
    int64_t open_ms;  /* open: when it opened (looking back at most duration + 2 days);
                         else when the next one opens */
    int64_t close_ms; /* when that window closes (INT64_MAX: openings never stop) */
} ota_window_state;

/* The window at now_ms (ms since the epoch). 0, or -1 when w never opens (no hour or no
 * weekday, or a duration out of range). */
int ota_window_at(const ota_window *w, int64_t now_ms, ota_window_state *out);

#endif
