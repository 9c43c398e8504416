/*
 * report.c — decoder of vehicle reports (ota/v1/{vin}/report: {seq, events:[...]}).
 *
 * Design: the payload is loaded with libcbor and walked once. Each event map is scanned
 * once for all the keys any event type uses (EVENT_KEYS); the event's type then decides
 * which of them are required, optional or ignored, and each is checked by the strict
 * helpers of cbor_util.h, so errors name the field ("events[3].pct: ...").
 * The events and copies of their strings live in one malloc'd block owned by the report:
 * the events array first, then the NUL-terminated strings. Each copied string is a
 * distinct CBOR text item of the payload whose header takes at least one byte, so all
 * strings with their NULs fit in `len` bytes: the block is sized
 * n_events * sizeof(ota_event) + len up front and never grows.
 */
#include <assert.h>
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
    K_COUNT
};
static const char *const EVENT_KEYS[K_COUNT] = {
    "type",   "task",  "ts",      "ecu", "pct", "bytes", "step",
    "status", "error", "trigger", "fw",  "cmd", "at",    "result",
};

/* Everything the per-field helpers of one event need. */
typedef struct {
    const cbor_item_t *v[K_COUNT]; /* values by key, NULL when absent */
    const char *ctx;               /* "events[i]" */
    arena *strings;
    ota_event *ev;
    ota_error *err;
} event_ctx;

typedef int (*event_decoder)(event_ctx *c);

static const char *arena_copy(arena *a, ota_cbor_text t)
{
    assert((size_t)(a->end - a->next) >= t.len + 1);
    char *s = a->next;
    memcpy(s, t.ptr, t.len);
    s[t.len] = '\0';
    a->next += t.len + 1;
    return s;
}

/* ---- typed fields of an event; each returns -1 on error, else 0 or 1 ---- */

static int get_string(event_ctx *c, int key, ota_cbor_need need, size_t min, size_t max,
                      const char **out)
{
    ota_cbor_text t;
    int rc = ota_cbor_get_text(c->v[key], c->ctx, EVENT_KEYS[key], need, min, max, &t, c->err);
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
    int rc = ota_cbor_get_uint(c->v[key], c->ctx, EVENT_KEYS[key], need, 0, INT64_MAX, &v, c->err);
    if (rc == 1)
        *out = (int64_t)v;
    return rc;
}

static int get_pct(event_ctx *c, int32_t *out)
{
    uint64_t v;
    int rc = ota_cbor_get_uint(c->v[K_PCT], c->ctx, EVENT_KEYS[K_PCT], OTA_CBOR_REQUIRED, 0, 100,
                               &v, c->err);
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

static int decode_upgrade_status(event_ctx *c)
{
    ota_event *ev = c->ev;
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

/* Indexed by ota_event_type - 1. */
static const struct {
    const char *name;
    event_decoder decode;
} EVENT_TYPES[OTA_EV_TYPE_COUNT] = {
    {"download_progress", decode_download_progress}, {"upgrade_progress", decode_upgrade_progress},
    {"upgrade_status", decode_upgrade_status},       {"command", decode_command},
    {"eeprom_clear", decode_eeprom_clear},
};

const char *ota_event_type_name(ota_event_type type)
{
    if (type < OTA_EV_DOWNLOAD_PROGRESS || type > OTA_EV_EEPROM_CLEAR)
        return NULL;
    return EVENT_TYPES[type - 1].name;
}

static int decode_type(event_ctx *c)
{
    ota_cbor_text t;
    if (ota_cbor_get_text(c->v[K_TYPE], c->ctx, EVENT_KEYS[K_TYPE], OTA_CBOR_REQUIRED, 1,
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
    *ev = (ota_event){.index = index, .pct = -1, .bytes = -1, .at = -1};
}

/* Writes "events[i]" into buf (at least 20 bytes); without printf, as it runs per event. */
static void event_path(char *buf, uint32_t i)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    memcpy(buf, "events[", 7);
    char *p = buf + 7;
    while (n > 0)
        *p++ = digits[--n];
    *p++ = ']';
    *p = '\0';
}

static int decode_event(const cbor_item_t *item, uint32_t index, arena *strings, ota_event *ev,
                        ota_error *err)
{
    char ctx[24];
    event_path(ctx, index);
    event_ctx c = {.ctx = ctx, .strings = strings, .ev = ev, .err = err};
    event_clear(ev, index);
    if (ota_cbor_map_fields(item, ctx, "", EVENT_KEYS, K_COUNT, c.v, err) < 0 ||
        decode_type(&c) < 0 || get_id(&c, K_TASK, OTA_CBOR_REQUIRED, &ev->task) < 0 ||
        get_i64(&c, K_TS, OTA_CBOR_REQUIRED, &ev->ts) < 0)
        return -1;
    return EVENT_TYPES[ev->type - 1].decode(&c);
}

/* Decodes the events array into a new block; on success out->events/mem_ own it. */
static int decode_events(const cbor_item_t *array, size_t len, ota_report *out, ota_error *err)
{
    size_t n = cbor_array_size(array);
    size_t events_size = n * sizeof(ota_event);
    char *block = malloc(events_size + len);
    if (block == NULL)
        return ota_error_set(err, OTA_E_INTERNAL, "report: out of memory");
    ota_event *events = (ota_event *)(void *)block;
    arena strings = {.next = block + events_size, .end = block + events_size + len};
    cbor_item_t **items = cbor_array_handle(array);
    for (size_t i = 0; i < n; i++) {
        if (decode_event(items[i], (uint32_t)i, &strings, &events[i], err) < 0) {
            free(block);
            return -1;
        }
    }
    out->n_events = n;
    out->events = events;
    out->mem_ = block;
    return 0;
}

static int decode_root(const cbor_item_t *root, size_t len, size_t max_events, ota_report *out,
                       ota_error *err)
{
    static const char *const keys[] = {"seq", "events"};
    const cbor_item_t *v[2];
    uint64_t seq;
    const cbor_item_t *events;
    if (ota_cbor_map_fields(root, "", "", keys, 2, v, err) < 0 ||
        ota_cbor_get_uint(v[0], "", "seq", OTA_CBOR_REQUIRED, 0, INT64_MAX, &seq, err) < 0 ||
        ota_cbor_get_array(v[1], "", "events", OTA_CBOR_REQUIRED, 1, max_events, &events, err) < 0)
        return -1;
    if (decode_events(events, len, out, err) < 0)
        return -1;
    out->seq = seq;
    return 0;
}

int ota_codec_decode_report(const void *buf, size_t len, const ota_report_limits *lim,
                            ota_report *out, ota_error *err)
{
    size_t max_payload =
        lim && lim->max_payload ? lim->max_payload : OTA_REPORT_MAX_PAYLOAD_DEFAULT;
    size_t max_events = lim && lim->max_events ? lim->max_events : OTA_REPORT_MAX_EVENTS_DEFAULT;
    *out = (ota_report){0};
    if (len > max_payload)
        return ota_error_set(err, OTA_E_TOO_LARGE, "report: payload of %zu bytes over %zu", len,
                             max_payload);
    cbor_item_t *root = ota_cbor_load(buf, len, "report", err);
    if (root == NULL)
        return -1;
    int rc = decode_root(root, len, max_events, out, err);
    cbor_decref(&root);
    return rc;
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
