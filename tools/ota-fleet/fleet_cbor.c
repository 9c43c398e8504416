/*
 * fleet_cbor.c — the CBOR payloads of ota-fleet: report generation, error replies, and
 * (shadow mode) the shadow/update a vehicle sends and the task notices it receives.
 *
 * A report is {"seq": uint, "events": [event...]} (SPEC §3). Payloads are written with
 * libcbor's streaming encoder straight into a scratch buffer (no item trees, no
 * allocation per report). Content is a pure function of (config, t0, report index), so
 * a report re-sent after a reconnect is byte-identical to the first copy.
 *
 * Events of one vehicle form one upgrade story over the whole run: event number e of
 * E = reports * events cycles through the five types (e % 8: 0 upgrade_status,
 * 2 command, 4 eeprom_clear, else progress); progress is download_progress with a
 * rising pct during the first half of the run and upgrade_progress during the second;
 * the last event is upgrade_status succeeded (trigger normal). Any run of 6 or more
 * events per vehicle contains all five types.
 */
#include "fleet.h"
#include "fleet_crypto.h"

#include <cbor.h>
#include <stdio.h>
#include <string.h>

#define FLEET_TASK "fleet-task-0001"
#define FLEET_PKG_BYTES 104857600ULL /* size used for download_progress.bytes */
#define FLEET_EVENT_BOUND 224        /* generous bound of one encoded event */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
} cbor_writer;

static const char *const fleet_ecus[] = {"BCM", "VCU", "ADCU", "IVI"};

static void w_advance(cbor_writer *w, size_t n)
{
    if (n == 0)
        w->overflow = true;
    w->len += n;
}

static void w_uint(cbor_writer *w, uint64_t value)
{
    if (!w->overflow)
        w_advance(w, cbor_encode_uint(value, w->buf + w->len, w->cap - w->len));
}

static void w_map(cbor_writer *w, size_t pairs)
{
    if (!w->overflow)
        w_advance(w, cbor_encode_map_start(pairs, w->buf + w->len, w->cap - w->len));
}

static void w_array(cbor_writer *w, size_t items)
{
    if (!w->overflow)
        w_advance(w, cbor_encode_array_start(items, w->buf + w->len, w->cap - w->len));
}

static void w_text(cbor_writer *w, const char *s)
{
    size_t n = strlen(s);

    if (w->overflow)
        return;
    w_advance(w, cbor_encode_string_start(n, w->buf + w->len, w->cap - w->len));
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/* Key-value helpers. */
static void kv_text(cbor_writer *w, const char *key, const char *value)
{
    w_text(w, key);
    w_text(w, value);
}

static void kv_uint(cbor_writer *w, const char *key, uint64_t value)
{
    w_text(w, key);
    w_uint(w, value);
}

/* The three keys every event has. */
static void event_head(cbor_writer *w, size_t pairs, const char *type, int64_t ts)
{
    w_map(w, pairs);
    kv_text(w, "type", type);
    kv_text(w, "task", FLEET_TASK);
    kv_uint(w, "ts", (uint64_t)ts);
}

static const char *status_for_phase(uint64_t e, uint64_t total)
{
    if (e * 100 < total * 45)
        return "downloading";
    if (e * 100 < total * 50)
        return "downloaded";
    if (e * 100 < total * 55)
        return "waiting";
    return "upgrading";
}

static void put_status(cbor_writer *w, int64_t ts, const char *status, bool last)
{
    event_head(w, last ? 6 : 5, "upgrade_status", ts);
    kv_text(w, "status", status);
    kv_text(w, "trigger", "normal");
    if (last)
        kv_text(w, "fw", "2.1.0");
}

static void put_command(cbor_writer *w, int64_t ts, uint64_t e)
{
    unsigned which = (unsigned)((e / 8) % 3);

    if (which == 0) {
        event_head(w, 5, "command", ts);
        kv_text(w, "cmd", "schedule");
        kv_uint(w, "at", (uint64_t)ts + 3600000u);
    } else {
        event_head(w, 4, "command", ts);
        kv_text(w, "cmd", which == 1 ? "now" : "cancel_schedule");
    }
}

static void put_eeprom(cbor_writer *w, int64_t ts, uint64_t e)
{
    event_head(w, 5, "eeprom_clear", ts);
    kv_text(w, "ecu", fleet_ecus[(e / 8) % 4]);
    kv_text(w, "result", "ok");
}

static void put_progress(cbor_writer *w, int64_t ts, uint64_t e, uint64_t total)
{
    uint64_t half = total / 2;
    const char *ecu = fleet_ecus[e % 4];

    if (e < half) {
        uint64_t pct = e * 100 / half;
        bool with_ecu = e % 2 == 1;
        event_head(w, with_ecu ? 6 : 5, "download_progress", ts);
        if (with_ecu)
            kv_text(w, "ecu", ecu);
        kv_uint(w, "pct", pct);
        kv_uint(w, "bytes", FLEET_PKG_BYTES * pct / 100);
    } else {
        uint64_t pct = (e - half) * 100 / (total - half);
        bool with_step = e % 3 == 0;
        event_head(w, with_step ? 6 : 5, "upgrade_progress", ts);
        kv_text(w, "ecu", ecu);
        kv_uint(w, "pct", pct);
        if (with_step)
            kv_text(w, "step", pct < 50 ? "flash" : "verify");
    }
}

static void put_event(cbor_writer *w, int64_t ts, uint64_t e, uint64_t total)
{
    if (e + 1 == total) {
        put_status(w, ts, "succeeded", true);
        return;
    }
    switch (e % 8) {
    case 0:
        put_status(w, ts, status_for_phase(e, total), false);
        break;
    case 2:
        put_command(w, ts, e);
        break;
    case 4:
        put_eeprom(w, ts, e);
        break;
    default:
        put_progress(w, ts, e, total);
        break;
    }
}

size_t fleet_cbor_report_bound(uint32_t events)
{
    return 64 + (size_t)events * FLEET_EVENT_BOUND;
}

size_t fleet_cbor_report(const fleet_config *cfg, int64_t t0_ms, uint64_t report, uint8_t *buf,
                         size_t cap)
{
    cbor_writer w = {.buf = buf, .cap = cap};
    uint64_t total = cfg->reports * cfg->events;

    w_map(&w, 2);
    kv_uint(&w, "seq", cfg->seq_start + report);
    w_text(&w, "events");
    w_array(&w, cfg->events);
    for (uint32_t j = 0; j < cfg->events; j++) {
        uint64_t e = report * cfg->events + j;
        put_event(&w, t0_ms + (int64_t)e, e, total);
    }
    return w.overflow ? 0 : w.len;
}

/* ---- shadow mode ---- */

size_t fleet_cbor_shadow_state(uint8_t *buf, size_t cap, const char *fw, const char *state)
{
    cbor_writer w = {.buf = buf, .cap = cap};

    w_map(&w, 1);
    w_text(&w, "reported");
    w_map(&w, 3);
    kv_text(&w, "fw", fw);
    kv_text(&w, "state", state);
    w_text(&w, "ecus");
    w_map(&w, 0);
    return w.overflow ? 0 : w.len;
}

size_t fleet_cbor_shadow_update(uint8_t *buf, size_t cap)
{
    return fleet_cbor_shadow_state(buf, cap, "1.0.0", "idle");
}

/* ---- campaign mode ---- */

static void w_bytes(cbor_writer *w, const uint8_t *data, size_t n)
{
    if (w->overflow)
        return;
    w_advance(w, cbor_encode_bytestring_start(n, w->buf + w->len, w->cap - w->len));
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static void put_campaign_event(cbor_writer *w, const char *task, const char *trigger,
                               const fleet_event *ev)
{
    static const char *const types[] = {"download_progress", "upgrade_progress", "upgrade_status"};
    size_t pairs = 3;

    if (ev->type == FLEET_EV_STATUS)
        pairs += 2 + (ev->error != NULL) + (ev->fw != NULL);
    else
        pairs += 3 - (ev->type == FLEET_EV_UPGRADE && ev->step == NULL);
    w_map(w, pairs);
    kv_text(w, "type", types[ev->type]);
    kv_text(w, "task", task);
    kv_uint(w, "ts", (uint64_t)ev->ts);
    if (ev->type == FLEET_EV_STATUS) {
        kv_text(w, "status", ev->status);
        kv_text(w, "trigger", trigger);
        if (ev->error)
            kv_text(w, "error", ev->error);
        if (ev->fw)
            kv_text(w, "fw", ev->fw);
        return;
    }
    kv_text(w, "ecu", ev->ecu);
    kv_uint(w, "pct", ev->pct);
    if (ev->type == FLEET_EV_DOWNLOAD)
        kv_uint(w, "bytes", ev->bytes);
    else if (ev->step)
        kv_text(w, "step", ev->step);
}

size_t fleet_cbor_campaign_report(uint8_t *buf, size_t cap, uint64_t seq, const char *task,
                                  const char *trigger, const fleet_event *ev)
{
    cbor_writer w = {.buf = buf, .cap = cap};

    w_map(&w, 2);
    kv_uint(&w, "seq", seq);
    w_text(&w, "events");
    w_array(&w, 1);
    put_campaign_event(&w, task, trigger, ev);
    return w.overflow ? 0 : w.len;
}

size_t fleet_cbor_pkg_get(uint8_t *buf, size_t cap, uint64_t req, const char *task, const char *cur,
                          const char *tgt)
{
    cbor_writer w = {.buf = buf, .cap = cap};

    w_map(&w, 4);
    kv_uint(&w, "req", req);
    kv_text(&w, "task", task);
    kv_text(&w, "cur", cur);
    kv_text(&w, "tgt", tgt);
    return w.overflow ? 0 : w.len;
}

size_t fleet_cbor_file_get(uint8_t *buf, size_t cap, const char *file, uint32_t bs, uint32_t from,
                           uint32_t n, const uint8_t *bitmap, uint32_t bitmap_len)
{
    cbor_writer w = {.buf = buf, .cap = cap};

    w_map(&w, bitmap_len > 0 ? 5 : 4);
    kv_text(&w, "file", file);
    kv_uint(&w, "bs", bs);
    kv_uint(&w, "from", from);
    kv_uint(&w, "n", n);
    if (bitmap_len > 0) {
        w_text(&w, "bitmap");
        w_bytes(&w, bitmap, bitmap_len);
    }
    return w.overflow ? 0 : w.len;
}

bool fleet_cbor_is_notice(const void *payload, int len)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(payload, (size_t)(len > 0 ? len : 0), &res);
    cbor_item_t *task;
    bool notice;

    if (root == NULL)
        return false;
    task = vc_cbor_get(vc_cbor_get(root, "desired"), "task");
    notice = task != NULL && cbor_isa_map(task); /* a cancel has task: null */
    cbor_decref(&root);
    return notice;
}

/* ---- error replies ---- */

static void text_of(cbor_item_t *item, char *out, size_t cap)
{
    size_t n;

    if (!cbor_isa_string(item) || !cbor_string_is_definite(item)) {
        snprintf(out, cap, "?");
        return;
    }
    n = cbor_string_length(item);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, cbor_string_handle(item), n);
    out[n] = '\0';
}

bool fleet_error_is_replay(const char *described)
{
    return strncmp(described, "err=E_REPLAY ", 13) == 0;
}

void fleet_cbor_describe_error(const void *payload, int len, char *out, size_t cap)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(payload, (size_t)(len > 0 ? len : 0), &res);
    char err[64] = "?", msg[256] = "?", key[16];
    long long seq = -1;

    if (root == NULL || !cbor_isa_map(root)) {
        snprintf(out, cap, "(not a CBOR map, %d bytes)", len);
        if (root)
            cbor_decref(&root);
        return;
    }
    struct cbor_pair *pairs = cbor_map_handle(root);
    for (size_t i = 0; i < cbor_map_size(root); i++) {
        text_of(pairs[i].key, key, sizeof key);
        if (strcmp(key, "err") == 0)
            text_of(pairs[i].value, err, sizeof err);
        else if (strcmp(key, "msg") == 0)
            text_of(pairs[i].value, msg, sizeof msg);
        else if (strcmp(key, "seq") == 0 && cbor_isa_uint(pairs[i].value))
            seq = (long long)cbor_get_int(pairs[i].value);
    }
    cbor_decref(&root);
    if (seq >= 0)
        snprintf(out, cap, "err=%s seq=%lld msg=\"%s\"", err, seq, msg);
    else
        snprintf(out, cap, "err=%s msg=\"%s\"", err, msg);
}
