/*
 * report_msg.c — decoder of vehicle reports (ota/v1/{vin}/report: {seq, events:[...]}).
 *
 * {seq, epoch?, events}: epoch and the integral floats of integer fields in ota_codec.h.
 * Design: one pass of the pull reader of cbor_util.h over the payload, no tree and no
 * allocation but the report's own block. Each event map is scanned once for all the keys
 * any event type uses (EVENT_KEYS); the event's type then decides which of them are
 * required, optional or ignored, and each is checked by the strict helpers, so errors name
 * the field ("events[3].pct: ..."). The events array is decoded where it stands in the
 * top-level map; what must be checked before it (the top-level keys, seq, the array's
 * size) may come after it, so its errors wait for those checks, and a CBOR error anywhere
 * in the payload beats them all (the reader reads to the end): the error reported is the
 * one a decoder that loads the whole payload, then checks keys, seq, events in that order,
 * would report.
 * The events and copies of their strings live in one malloc'd block owned by the report:
 * the events array first, then the NUL-terminated strings. Each copied string is a
 * distinct CBOR text item of the payload whose header takes at least one byte, so all
 * strings with their NULs fit in `len` bytes: the block is sized
 * events * sizeof(ota_event) + len up front and never grows (events: the declared count
 * of a definite array; for an indefinite one, the most it may hold).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_util.h"

/* Bump allocator over the string part of the report's block. */
typedef struct {
    char *next;
    char *end;
} arena;

/* The keys of an event, of all types; collected in one pass over each event map. */
enum {
    K_TYPE,
    K_TASK,
    K_TS,
    K_ECU,
    K_PCT,
    K_BYTES,
    K_STEP,
    K_STATUS,
    K_ERROR,
    K_TRIGGER,
    K_FW,
    K_CMD,
    K_AT,
    K_RESULT,
    K_ANSWER,
    K_UNTIL,
    K_CONDITIONS,
    K_COUNT
};
static const char *const EVENT_KEYS[K_COUNT] = {
    "type",    "task", "ts",  "ecu", "pct",    "bytes",  "step",  "status",     "error",
    "trigger", "fw",   "cmd", "at",  "result", "answer", "until", "conditions",
};

/* Everything the per-field helpers of one event need. */
typedef struct {
    ota_cbor_item v[K_COUNT]; /* headers of the values, by key */
    uint32_t found;           /* bit k: key k present */
    const char *ctx;          /* "events[i]" */
    arena *strings;
    ota_event *ev;
    ota_error *err;
} event_ctx;

typedef int (*event_decoder)(event_ctx *c);

/* The value of key k, or NULL when absent. */
static const ota_cbor_item *field(const event_ctx *c, int k)
{
    return c->found >> k & 1 ? &c->v[k] : NULL;
}

static const char *arena_copy(arena *a, ota_cbor_text t)
{
    assert((size_t)(a->end - a->next) >= t.len + 1);
    char *s = a->next;
    memcpy(s, t.ptr, t.len);
    s[t.len] = '\0';
    a->next += t.len + 1;
    return s;
}

/* v itself, or when v is a float whose value is exactly an unsigned integer, that integer
 * in *tmp: integer fields take integral floats (cbor-x writes integers above 2^32 as
 * float64). A negative or fractional float, NaN or infinity stays a float and is refused
 * by the integer check. */
static const ota_cbor_item *integral(const ota_cbor_item *v, ota_cbor_item *tmp)
{
    if (v == NULL || v->type != OTA_CBOR_FLOAT)
        return v;
    double f = v->f;
    if (!(f >= 0.0 && f < 18446744073709551616.0) || (double)(uint64_t)f != f)
        return v;
    *tmp = *v;
    tmp->type = OTA_CBOR_UINT;
    tmp->u = (uint64_t)f;
    return tmp;
}

/* An unsigned integer (or integral float) in min..max. */
static int want_uint(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                     uint64_t min, uint64_t max, uint64_t *out, ota_error *err)
{
    ota_cbor_item tmp;
    return ota_cbor_want_uint(integral(v, &tmp), ctx, key, need, min, max, out, err);
}

/* ---- typed fields of an event; each returns -1 on error, else 0 or 1 ---- */

static int get_string(event_ctx *c, int key, ota_cbor_need need, size_t min, size_t max,
                      const char **out)
{
    ota_cbor_text t;
    int rc = ota_cbor_want_text(field(c, key), c->ctx, EVENT_KEYS[key], need, min, max, &t, c->err);
    if (rc == 1)
        *out = arena_copy(c->strings, t);
    return rc;
}

/* Id-like text: task, ecu, status, trigger, fw, cmd, result. */
static int get_id(event_ctx *c, int key, ota_cbor_need need, const char **out)
{
    return get_string(c, key, need, 1, OTA_ID_MAX, out);
}

/* Free text: step, error. */
static int get_free_text(event_ctx *c, int key, ota_cbor_need need, const char **out)
{
    return get_string(c, key, need, 0, OTA_TEXT_MAX, out);
}

/* An id that must be one of a fixed set of words; `what` names the set in errors. */
static int get_word(event_ctx *c, int key, ota_cbor_need need, bool (*valid)(const char *),
                    const char *what, const char **out)
{
    int rc = get_id(c, key, need, out);
    if (rc == 1 && !valid(*out))
        return ota_cbor_field_error(c->err, OTA_E_BAD_REQUEST, c->ctx, EVENT_KEYS[key],
                                    "unknown %s \"%s\"", what, *out);
    return rc;
}

/* Unsigned integer that fits int64_t (times, byte counts). */
static int get_i64(event_ctx *c, int key, ota_cbor_need need, int64_t *out)
{
    uint64_t v;
    int rc = want_uint(field(c, key), c->ctx, EVENT_KEYS[key], need, 0, INT64_MAX, &v, c->err);
    if (rc == 1)
        *out = (int64_t)v;
    return rc;
}

static int get_pct(event_ctx *c, int32_t *out)
{
    uint64_t v;
    int rc = want_uint(field(c, K_PCT), c->ctx, EVENT_KEYS[K_PCT], OTA_CBOR_REQUIRED, 0, 100, &v,
                       c->err);
    if (rc == 1)
        *out = (int32_t)v;
    return rc;
}

/* ---- per-type fields, as in the table of ota_codec.h ---- */

static int decode_download_progress(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_id(c, K_ECU, OTA_CBOR_OPTIONAL, &ev->ecu) < 0 || get_pct(c, &ev->pct) < 0)
        return -1;
    return get_i64(c, K_BYTES, OTA_CBOR_OPTIONAL, &ev->bytes) < 0 ? -1 : 0;
}

static int decode_upgrade_progress(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_id(c, K_ECU, OTA_CBOR_REQUIRED, &ev->ecu) < 0 || get_pct(c, &ev->pct) < 0)
        return -1;
    return get_free_text(c, K_STEP, OTA_CBOR_OPTIONAL, &ev->step) < 0 ? -1 : 0;
}

/* "battery,parked": known pre-condition words, comma-separated, none twice, none empty. */
static bool conditions_valid(const char *s)
{
    static const char *const words[] = {"battery", "parked", "ignition_off", "not_charging"};
    unsigned seen = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int k = -1;
        for (int i = 0; i < 4 && k < 0; i++)
            k = strlen(words[i]) == n && memcmp(words[i], s, n) == 0 ? i : -1;
        if (k < 0 || (seen & 1u << k))
            return false;
        seen |= 1u << k;
        s += n;
        if (*s == ',' && *++s == '\0')
            return false; /* a trailing comma */
    }
    return true;
}

static int decode_upgrade_status(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_word(c, K_CONDITIONS, OTA_CBOR_OPTIONAL, conditions_valid, "pre-condition list",
                 &ev->conditions) < 0)
        return -1;
    if (get_word(c, K_STATUS, OTA_CBOR_REQUIRED, ota_status_valid, "status", &ev->status) < 0 ||
        get_free_text(c, K_ERROR, OTA_CBOR_OPTIONAL, &ev->error) < 0 ||
        get_word(c, K_TRIGGER, OTA_CBOR_REQUIRED, ota_trigger_valid, "trigger", &ev->trigger) < 0)
        return -1;
    return get_id(c, K_FW, OTA_CBOR_OPTIONAL, &ev->fw) < 0 ? -1 : 0;
}

static bool command_word_valid(const char *s)
{
    return strcmp(s, "schedule") == 0 || strcmp(s, "now") == 0 || strcmp(s, "cancel_schedule") == 0;
}

static int decode_command(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_word(c, K_CMD, OTA_CBOR_REQUIRED, command_word_valid, "command", &ev->cmd) < 0)
        return -1;
    bool schedule = strcmp(ev->cmd, "schedule") == 0;
    int rc = get_i64(c, K_AT, OTA_CBOR_OPTIONAL, &ev->at);
    if (rc == 0 && schedule)
        return ota_cbor_field_error(c->err, OTA_E_BAD_REQUEST, c->ctx, EVENT_KEYS[K_AT],
                                    "missing (required when cmd is schedule)");
    return rc < 0 ? -1 : 0;
}

static int decode_eeprom_clear(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_id(c, K_ECU, OTA_CBOR_REQUIRED, &ev->ecu) < 0)
        return -1;
    return get_id(c, K_RESULT, OTA_CBOR_REQUIRED, &ev->result) < 0 ? -1 : 0;
}

static bool answer_word_valid(const char *s)
{
    return strcmp(s, "accepted") == 0 || strcmp(s, "declined") == 0 || strcmp(s, "postponed") == 0;
}

/* The driver's answer to a notice's prompt (install modes soft, time_forced). */
static int decode_consent(event_ctx *c)
{
    ota_event *ev = c->ev;
    if (get_word(c, K_ANSWER, OTA_CBOR_REQUIRED, answer_word_valid, "answer", &ev->answer) < 0 ||
        get_free_text(c, K_ERROR, OTA_CBOR_OPTIONAL, &ev->error) < 0)
        return -1;
    bool postponed = strcmp(ev->answer, "postponed") == 0;
    int rc = get_i64(c, K_UNTIL, OTA_CBOR_OPTIONAL, &ev->until);
    if (rc == 0 && postponed)
        return ota_cbor_field_error(c->err, OTA_E_BAD_REQUEST, c->ctx, EVENT_KEYS[K_UNTIL],
                                    "missing (required when answer is postponed)");
    return rc < 0 ? -1 : 0;
}

/* Indexed by ota_event_type - 1. */
static const struct {
    const char *name;
    event_decoder decode;
} EVENT_TYPES[OTA_EV_TYPE_COUNT] = {
    {"download_progress", decode_download_progress}, {"upgrade_progress", decode_upgrade_progress},
    {"upgrade_status", decode_upgrade_status},       {"command", decode_command},
    {"eeprom_clear", decode_eeprom_clear},           {"consent", decode_consent},
};

const char *ota_event_type_name(ota_event_type type)
{
    if (type < OTA_EV_DOWNLOAD_PROGRESS || type > OTA_EV_CONSENT)
        return NULL;
    return EVENT_TYPES[type - 1].name;
}

static int decode_type(event_ctx *c)
{
    ota_cbor_text t;
    if (ota_cbor_want_text(field(c, K_TYPE), c->ctx, EVENT_KEYS[K_TYPE], OTA_CBOR_REQUIRED, 1,
                           OTA_ID_MAX, &t, c->err) < 0)
        return -1;
    for (int i = 0; i < OTA_EV_TYPE_COUNT; i++) {
        const char *name = EVENT_TYPES[i].name;
        if (strlen(name) == t.len && memcmp(name, t.ptr, t.len) == 0) {
            c->ev->type = (ota_event_type)(i + 1);
            return 0;
        }
    }
    return ota_cbor_field_error(c->err, OTA_E_BAD_REQUEST, c->ctx, EVENT_KEYS[K_TYPE],
                                "unknown event type \"%.*s\"", (int)t.len, t.ptr);
}

static void event_clear(ota_event *ev, uint32_t index)
{
    *ev = (ota_event){.index = index, .pct = -1, .bytes = -1, .at = -1, .until = -1};
}

/* Writes "events[i]" into buf (at least 20 bytes); without printf, as it runs per event. */
static void event_path(char *buf, uint32_t i)
{
    memcpy(buf, "events[", 7);
    char *p = buf + 7 + ota_dec_u64(buf + 7, i);
    *p++ = ']';
    *p = '\0';
}

/* Decodes the event whose header ev_hdr was just read. On a field error the event may be
 * partly read: the caller skips the rest. */
static int decode_event(ota_cbor_reader *r, const ota_cbor_item *ev_hdr, uint32_t index,
                        arena *strings, ota_event *ev, ota_error *err)
{
    char ctx[24];
    event_path(ctx, index);
    event_ctx c; /* not zeroed: v[k] is only read when bit k of found is set */
    c.ctx = ctx;
    c.strings = strings;
    c.ev = ev;
    c.err = err;
    event_clear(ev, index);
    if (ota_cbor_map_scan(r, ev_hdr, ctx, "", EVENT_KEYS, K_COUNT, c.v, &c.found, err) < 0 ||
        decode_type(&c) < 0 || get_id(&c, K_TASK, OTA_CBOR_REQUIRED, &ev->task) < 0 ||
        get_i64(&c, K_TS, OTA_CBOR_REQUIRED, &ev->ts) < 0)
        return -1;
    return EVENT_TYPES[ev->type - 1].decode(&c);
}

/* What the top-level map held, checked once it has been read. */
typedef struct {
    size_t max_events;
    bool has_seq, has_events, has_epoch;
    ota_cbor_item seq, events, epoch; /* headers */
    size_t n_events;                  /* entries read from the events array */
    bool too_many;                    /* an indefinite events array went past max_events */
    bool events_failed;               /* *err holds the first error in the events */
    char *block;                      /* events, then strings (see the top of the file) */
} report_state;

/* Room for the events of arr: its count, or for an indefinite-length array the limit (it
 * has fewer entries than the payload has bytes). */
static size_t events_cap(const ota_cbor_item *arr, size_t max_events, size_t len)
{
    if (!arr->indefinite)
        return (size_t)arr->u;
    return max_events < len ? max_events : len;
}

/* Allocates the block for cap events and their strings (at most len bytes). When out of
 * memory, the error waits like those of the events: the array's size still comes first. */
static void alloc_block(report_state *st, size_t cap, size_t len, arena *strings, ota_error *err)
{
    st->block = malloc(cap * sizeof(ota_event) + len);
    if (st->block == NULL) {
        st->events_failed = true;
        ota_error_set(err, OTA_E_INTERNAL, "report: out of memory");
        return;
    }
    strings->next = st->block + cap * sizeof(ota_event);
    strings->end = strings->next + len;
}

/* True when the report has a valid seq (stored in *seq). */
static bool seq_valid(const report_state *st, uint64_t *seq)
{
    return st->has_seq &&
           want_uint(&st->seq, "", "seq", OTA_CBOR_REQUIRED, 0, INT64_MAX, seq, NULL) > 0;
}

/* The epoch (ota_codec.h) into out: "0" when absent, an integer in decimal, or the text.
 * 0, or -1 with *err set (err may be NULL). */
static int get_epoch(const report_state *st, char out[OTA_EPOCH_MAX + 1], ota_error *err)
{
    uint64_t n = 0;
    if (!st->has_epoch ||
        want_uint(&st->epoch, "", "epoch", OTA_CBOR_REQUIRED, 0, UINT64_MAX, &n, NULL) > 0) {
        out[ota_dec_u64(out, n)] = '\0'; /* OTA_EPOCH_MAX >= 20 digits */
        return 0;
    }
    ota_cbor_text t;
    if (st->epoch.type != OTA_CBOR_TEXT)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "epoch",
                                    "expected unsigned integer or text");
    if (ota_cbor_want_text(&st->epoch, "", "epoch", OTA_CBOR_REQUIRED, 1, OTA_EPOCH_MAX, &t, err) <
        0)
        return -1;
    memcpy(out, t.ptr, t.len);
    out[t.len] = '\0';
    return 0;
}

/* True when the report names itself: a valid seq and a valid (or no) epoch. */
static bool names_valid(const report_state *st, uint64_t *seq, char epoch[OTA_EPOCH_MAX + 1])
{
    return seq_valid(st, seq) && get_epoch(st, epoch, NULL) == 0;
}

/* True when the events must be decoded: the array is acceptable so far and nothing to be
 * reported first (seq, epoch) is known to be wrong. */
static bool events_wanted(const report_state *st, const ota_cbor_item *arr)
{
    uint64_t seq;
    char epoch[OTA_EPOCH_MAX + 1];
    if ((st->has_seq && !seq_valid(st, &seq)) || (st->has_epoch && get_epoch(st, epoch, NULL) < 0))
        return false;
    return arr->type == OTA_CBOR_ARRAY &&
           (arr->indefinite || (arr->u >= 1 && arr->u <= st->max_events));
}

/* Decodes the events array whose header arr was just read, up to its end or past the
 * limit. Field errors are kept for later (st->events_failed); returns -1 only when the
 * reader fails. */
static int decode_events(ota_cbor_reader *r, const ota_cbor_item *arr, report_state *st,
                         ota_error *err)
{
    if (!events_wanted(st, arr))
        return 0;
    size_t cap = events_cap(arr, st->max_events, r->len);
    arena strings = {0};
    alloc_block(st, cap, r->len, &strings, err);
    ota_event *events = (ota_event *)(void *)st->block;
    ota_cbor_item ev;
    int rc;
    while ((rc = ota_cbor_entry(r, arr, &ev)) == 1) {
        size_t i = st->n_events;
        if (i == cap) {
            st->too_many = true;
            return 0;
        }
        if (!st->events_failed &&
            decode_event(r, &ev, (uint32_t)i, &strings, &events[i], err) < 0) {
            if (r->failed)
                return -1;
            st->events_failed = true;
        }
        if (ota_cbor_skip(r, &ev) < 0)
            return -1;
        st->n_events++;
    }
    return rc;
}

/* Reads the top-level map: its keys (first error returned at once), seq's header, and
 * the events in place. */
static int decode_root(ota_cbor_reader *r, report_state *st, ota_error *err)
{
    static const char *const keys[] = {"seq", "events", "epoch"};
    ota_cbor_item root, key, value;
    if (ota_cbor_next(r, &root) < 0)
        return -1;
    if (root.type != OTA_CBOR_MAP)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "", "expected map");
    int rc;
    for (size_t i = 0; (rc = ota_cbor_entry(r, &root, &key)) == 1; i++) {
        if (key.type != OTA_CBOR_TEXT || key.indefinite)
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "",
                                        "map key %zu is not definite-length text", i);
        bool is_seq = key.len == 3 && memcmp(key.ptr, keys[0], 3) == 0;
        bool is_events = key.len == 6 && memcmp(key.ptr, keys[1], 6) == 0;
        bool is_epoch = key.len == 5 && memcmp(key.ptr, keys[2], 5) == 0;
        if ((is_seq && st->has_seq) || (is_events && st->has_events) || (is_epoch && st->has_epoch))
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", keys[is_events + 2 * is_epoch],
                                        "duplicate key");
        if (ota_cbor_next(r, &value) < 0)
            return -1;
        if (is_seq) {
            st->has_seq = true;
            st->seq = value;
        } else if (is_epoch) {
            st->has_epoch = true;
            st->epoch = value;
        } else if (is_events) {
            st->has_events = true;
            st->events = value;
            if (decode_events(r, &value, st, err) < 0)
                return -1;
        }
        if (ota_cbor_skip(r, &value) < 0)
            return -1;
    }
    return rc;
}

/* The checks that come after the keys, in order: seq, epoch, the events array, its
 * events. */
static int check_root(const report_state *st, uint64_t *seq, char epoch[OTA_EPOCH_MAX + 1],
                      ota_error *err)
{
    const ota_cbor_item *events = st->has_events ? &st->events : NULL;
    if (want_uint(st->has_seq ? &st->seq : NULL, "", "seq", OTA_CBOR_REQUIRED, 0, INT64_MAX, seq,
                  err) < 0 ||
        get_epoch(st, epoch, err) < 0 ||
        ota_cbor_want_array(events, "", "events", OTA_CBOR_REQUIRED, 1, st->max_events, err) < 0)
        return -1;
    if (events->indefinite && ota_cbor_want_count(st->too_many ? st->n_events + 1 : st->n_events,
                                                  "", "events", 1, st->max_events, err) < 0)
        return -1;
    return st->events_failed ? -1 : 0;
}

int ota_codec_decode_report(const void *buf, size_t len, const ota_report_limits *lim,
                            ota_report *out, ota_error *err)
{
    size_t max_payload =
        lim && lim->max_payload ? lim->max_payload : OTA_REPORT_MAX_PAYLOAD_DEFAULT;
    report_state st = {
        .max_events = lim && lim->max_events ? lim->max_events : OTA_REPORT_MAX_EVENTS_DEFAULT,
    };
    *out = (ota_report){0};
    if (ota_cbor_check_size(len, max_payload, "report", err) != 0)
        return -1;
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "report", err);
    int rc = decode_root(&r, &st, err);
    uint64_t seq = 0;
    bool well_formed = ota_cbor_reader_end(&r) == 0; /* a CBOR error replaces any other */
    if (!well_formed)
        rc = -1;
    else if (rc == 0)
        rc = check_root(&st, &seq, out->epoch, err);
    if (rc < 0) {
        free(st.block);
        out->seq_valid = well_formed && names_valid(&st, &out->seq, out->epoch);
        return -1;
    }
    out->seq = seq;
    out->seq_valid = true;
    out->n_events = st.n_events;
    out->events = (ota_event *)(void *)st.block;
    out->mem_ = st.block;
    return 0;
}

/* The envelope of a plain report, skimmed (cbor_util.h): a definite map whose seq is an
 * unsigned integer up to 2^63-1 and whose epoch, if any, an unsigned integer or plain text
 * of 1..OTA_EPOCH_MAX bytes, its other values passed without decoding. 1 with out set, 0
 * when not sure (the strict reader below decides): what it accepts, that one accepts too,
 * with the same seq and epoch. Most reports take this path; the strict reader walks every
 * event through libcbor, several times the cost, on the broker thread. */
static int envelope_skim(const uint8_t *b, size_t len, ota_report *out)
{
    size_t pos = 0;
    unsigned major;
    uint64_t n, v;
    bool has_seq = false, has_epoch = false;
    if (ota_cbor_skim_head(b, len, &pos, &major, &n) != 0 || major != 5)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        if (ota_cbor_skim_head(b, len, &pos, &major, &v) != 0 || major != 3)
            return 0;
        const char *k = (const char *)b + pos - v;
        bool is_seq = v == 3 && memcmp(k, "seq", 3) == 0;
        bool is_epoch = v == 5 && memcmp(k, "epoch", 5) == 0;
        if ((is_seq && has_seq) || (is_epoch && has_epoch))
            return 0; /* a duplicate: the strict reader names it */
        if (!is_seq && !is_epoch) {
            if (ota_cbor_skim(b, len, &pos) != 0)
                return 0;
            continue;
        }
        if (ota_cbor_skim_head(b, len, &pos, &major, &v) != 0)
            return 0;
        if (is_seq) {
            if (major != 0 || v > INT64_MAX)
                return 0;
            out->seq = v;
            has_seq = true;
        } else if (major == 0) {
            snprintf(out->epoch, sizeof out->epoch, "%" PRIu64, v);
            has_epoch = true;
        } else if (major == 3 && v >= 1 && v <= OTA_EPOCH_MAX) {
            memcpy(out->epoch, b + pos - v, (size_t)v);
            out->epoch[v] = '\0';
            has_epoch = true;
        } else {
            return 0;
        }
    }
    if (pos != len || !has_seq)
        return 0;
    if (!has_epoch)
        memcpy(out->epoch, "0", 2);
    out->seq_valid = true;
    return 1;
}

int ota_codec_report_envelope(const void *buf, size_t len, ota_report *out, ota_error *err)
{
    *out = (ota_report){0};
    if (envelope_skim(buf, len, out) == 1)
        return 0;
    return ota_codec_report_envelope_strict(buf, len, out, err);
}

int ota_codec_report_envelope_strict(const void *buf, size_t len, ota_report *out, ota_error *err)
{
    static const char *const keys[] = {"seq", "epoch"};
    report_state st = {0};
    ota_cbor_item root, v[2];
    uint32_t found = 0;
    *out = (ota_report){0};
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "report", err);
    int rc = ota_cbor_next(&r, &root);
    if (rc == 0 && root.type != OTA_CBOR_MAP)
        rc = ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "", "expected map");
    else if (rc == 0)
        rc = ota_cbor_map_scan(&r, &root, "", "", keys, 2, v, &found, err);
    if (ota_cbor_reader_end(&r) != 0 || rc < 0)
        return -1;
    st.has_seq = found & 1;
    st.seq = v[0];
    st.has_epoch = found >> 1 & 1;
    st.epoch = v[1];
    uint64_t seq;
    if (want_uint(st.has_seq ? &st.seq : NULL, "", "seq", OTA_CBOR_REQUIRED, 0, INT64_MAX, &seq,
                  err) < 0 ||
        get_epoch(&st, out->epoch, err) < 0)
        return -1;
    out->seq = seq;
    out->seq_valid = true;
    return 0;
}

void ota_report_free(ota_report *r)
{
    if (r == NULL)
        return;
    free(r->mem_);
    *r = (ota_report){0};
}

bool ota_status_valid(const char *s)
{
    static const char *const words[] = {"idle",      "downloading", "downloaded",
                                        "waiting",   "upgrading",   "rolling_back",
                                        "succeeded", "failed",      "canceled"};
    for (size_t i = 0; s != NULL && i < sizeof words / sizeof words[0]; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

bool ota_trigger_valid(const char *s)
{
    static const char *const words[] = {"normal", "forced", "factory", "spot_check", "diagnostic"};
    for (size_t i = 0; s != NULL && i < sizeof words / sizeof words[0]; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}
