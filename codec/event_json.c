/*
 * event_json.c — JSON events for downstream subscribers (SPEC §4).
 *
 * Written straight into one buffer (no cJSON tree): the broker thread builds one for every
 * upgrade_status and consent event it publishes, and the tree cost ~14,000 instructions per
 * event (callgrind), more than the rest of a report's handling. Strings are escaped as
 * cJSON escapes them; integers are printed exactly, even beyond 2^53.
 */
#include <stdlib.h>
#include <string.h>

#include "ota_codec.h"

typedef struct {
    char *p; /* the next byte; the buffer is sized for the worst case (json_size) */
} jw;

static void put_raw(jw *w, const char *s)
{
    size_t n = strlen(s);
    memcpy(w->p, s, n);
    w->p += n;
}

/* s escaped as cJSON prints it: \" \\ \b \f \n \r \t, other bytes below 0x20 as
 * \u00XX, the rest (UTF-8 included) as they are. At most 6 bytes per input byte. */
static void put_escaped(jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *w->p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        const char *esc = NULL;
        switch (*c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc != NULL) {
            put_raw(w, esc);
        } else if (*c < 0x20) {
            put_raw(w, "\\u00");
            *w->p++ = hex[*c >> 4];
            *w->p++ = hex[*c & 0xf];
        } else {
            *w->p++ = (char)*c;
        }
    }
    *w->p++ = '"';
}

/* ,"key": (no comma before the first member, right after the '{'). */
static void put_key(jw *w, const char *key)
{
    if (w->p[-1] != '{')
        *w->p++ = ',';
    *w->p++ = '"';
    put_raw(w, key);
    *w->p++ = '"';
    *w->p++ = ':';
}

/* A string member, or null when a required value is missing. */
static void put_str(jw *w, const char *key, const char *s)
{
    put_key(w, key);
    if (s == NULL)
        put_raw(w, "null");
    else
        put_escaped(w, s);
}

/* A string member only when the value is present. */
static void put_opt_str(jw *w, const char *key, const char *s)
{
    if (s != NULL)
        put_str(w, key, s);
}

static void put_digits(jw *w, uint64_t v)
{
    w->p += ota_dec_u64(w->p, v);
}

static void put_u64(jw *w, const char *key, uint64_t v)
{
    put_key(w, key);
    put_digits(w, v);
}

static void put_i64(jw *w, const char *key, int64_t v)
{
    put_key(w, key);
    if (v < 0)
        *w->p++ = '-';
    put_digits(w, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

static size_t escaped_max(const char *s)
{
    return s != NULL ? 6 * strlen(s) + 2 : 4;
}

/* An upper bound of the event's JSON: keys and numbers fit in 256 bytes. */
static size_t json_size(const char *vin, const ota_event *ev)
{
    return 256 + escaped_max(vin) + escaped_max(ev->task) + escaped_max(ev->status) +
           escaped_max(ev->error) + escaped_max(ev->trigger) + escaped_max(ev->fw) +
           escaped_max(ev->answer) + escaped_max(ev->id);
}

/* The members both events start with. */
static void put_head(jw *w, const char *vin, uint64_t seq, const ota_event *ev)
{
    put_opt_str(w, "id", ev->id);
    put_str(w, "vin", vin);
    put_u64(w, "seq", seq);
    put_u64(w, "index", ev->index);
    put_str(w, "task", ev->task);
    put_i64(w, "ts", ev->ts);
}

static void fill_status(jw *w, const char *vin, uint64_t seq, const ota_event *ev,
                        int64_t received_ms)
{
    put_head(w, vin, seq, ev);
    put_str(w, "status", ev->status);
    put_opt_str(w, "error", ev->error);
    put_str(w, "trigger", ev->trigger);
    put_opt_str(w, "fw", ev->fw);
    put_i64(w, "received_at", received_ms);
}

static void fill_consent(jw *w, const char *vin, uint64_t seq, const ota_event *ev,
                         int64_t received_ms)
{
    put_head(w, vin, seq, ev);
    put_str(w, "answer", ev->answer);
    if (ev->until >= 0)
        put_i64(w, "until", ev->until);
    put_opt_str(w, "error", ev->error);
    put_i64(w, "received_at", received_ms);
}

char *ota_codec_status_event_json(const char *vin, uint64_t seq, const ota_event *ev,
                                  int64_t received_ms, size_t *len)
{
    char *json = malloc(json_size(vin, ev));
    if (json == NULL)
        return NULL;
    jw w = {json};
    *w.p++ = '{';
    if (ev->type == OTA_EV_CONSENT)
        fill_consent(&w, vin, seq, ev, received_ms);
    else
        fill_status(&w, vin, seq, ev, received_ms);
    *w.p++ = '}';
    *w.p = '\0';
    if (len != NULL)
        *len = (size_t)(w.p - json);
    return json;
}
