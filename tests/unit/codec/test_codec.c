/*
 * test_codec.c — cmocka tests of the codec: report decoding (valid reports of every event
 * type and every class of rejection, with the field path in the message, and which error
 * wins when there are several), the shared validators, the cbor_util pull reader and field
 * helpers, and the CBOR / JSON encoders. test_decode_speed prints (does not assert) the
 * time of one decode of typical reports.
 *
 * Inputs are built with libcbor's builders (helpers below) and serialized, so each test
 * states the message it sends in the same terms as the specification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cbor.h>
#include <cjson/cJSON.h>

#include "cbor_util.h"
#include "ota_codec.h"
#include "ota_errf.h"
#include "test_util.h"

/* ---- building CBOR inputs ---- */

static cbor_item_t *new_map(void)
{
    return cbor_new_definite_map(32); /* serialized with the number of pairs added */
}

static void put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    assert_true(cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string(key)),
                                                     .value = cbor_move(value)}));
}

static void put_str(cbor_item_t *map, const char *key, const char *value)
{
    put(map, key, cbor_build_string(value));
}

static void put_uint(cbor_item_t *map, const char *key, uint64_t value)
{
    put(map, key, ota_cbor_build_uint(value));
}

/* An event map with type, task and ts; the caller adds the type's fields. */
static cbor_item_t *event(const char *type, const char *task, uint64_t ts)
{
    cbor_item_t *m = new_map();
    put_str(m, "type", type);
    put_str(m, "task", task);
    put_uint(m, "ts", ts);
    return m;
}

static cbor_item_t *valid_download_progress(void)
{
    cbor_item_t *ev = event("download_progress", "T-1", 1700000000001);
    put_str(ev, "ecu", "BMS");
    put_uint(ev, "pct", 40);
    put_uint(ev, "bytes", 123456789);
    return ev;
}

/* A report {seq, events:[...]} taking ownership of the n events. */
static cbor_item_t *report_n(uint64_t seq, cbor_item_t **events, size_t n)
{
    cbor_item_t *arr = cbor_new_definite_array(n);
    for (size_t i = 0; i < n; i++)
        assert_true(cbor_array_push(arr, cbor_move(events[i])));
    cbor_item_t *m = new_map();
    put_uint(m, "seq", seq);
    put(m, "events", arr);
    return m;
}

static cbor_item_t *report1(cbor_item_t *ev)
{
    return report_n(7, &ev, 1);
}

/* Serializes and releases item; the buffer is malloc()ed. */
/* ---- decoding helpers ---- */

static int decode_raw(const void *buf, size_t len, const ota_report_limits *lim, ota_report *r,
                      ota_error *e)
{
    memset(r, 0xAB, sizeof *r); /* garbage the decoder must overwrite */
    memset(e, 0, sizeof *e);
    return ota_codec_decode_report(buf, len, lim, r, e);
}

static int decode_item(cbor_item_t *item, const ota_report_limits *lim, ota_report *r, ota_error *e)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    int rc = decode_raw(buf, len, lim, r, e);
    free(buf);
    return rc;
}

static void check_failed(int rc, const ota_report *r, const ota_error *e, ota_err_code code,
                         const char *needle)
{
    assert_int_equal(rc, -1);
    if (e->code != code)
        fail_msg("code %s, expected %s (msg \"%s\")", ota_err_name(e->code), ota_err_name(code),
                 e->msg);
    if (strstr(e->msg, needle) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", e->msg, needle);
    assert_int_equal(r->n_events, 0);
    assert_null(r->events);
    assert_null(r->mem_);
}

static void expect_raw_error(const void *buf, size_t len, ota_err_code code, const char *needle)
{
    ota_report r;
    ota_error e;
    int rc = decode_raw(buf, len, NULL, &r, &e);
    check_failed(rc, &r, &e, code, needle);
}

static void expect_error_lim(cbor_item_t *item, const ota_report_limits *lim, ota_err_code code,
                             const char *needle)
{
    ota_report r;
    ota_error e;
    int rc = decode_item(item, lim, &r, &e);
    check_failed(rc, &r, &e, code, needle);
}

static void expect_error(cbor_item_t *item, ota_err_code code, const char *needle)
{
    expect_error_lim(item, NULL, code, needle);
}

/* A one-event report must fail with the given code and a message containing needle. */
static void expect_event_error(cbor_item_t *ev, ota_err_code code, const char *needle)
{
    expect_error(report1(ev), code, needle);
}

static void expect_ok(cbor_item_t *item, ota_report *r)
{
    ota_error e;
    if (decode_item(item, NULL, r, &e) != 0)
        fail_msg("decode failed: %s: %s", ota_err_name(e.code), e.msg);
}

/* ---- valid reports ---- */

static void test_report_all_types(void **state)
{
    (void)state;
    cbor_item_t *evs[5];
    evs[0] = valid_download_progress();
    evs[1] = event("upgrade_progress", "T-2", 1700000000002);
    put_str(evs[1], "ecu", "VCU");
    put_uint(evs[1], "pct", 100);
    put_str(evs[1], "step", "flashing bank B");
    evs[2] = event("upgrade_status", "T-3", 1700000000003);
    put_str(evs[2], "status", "failed");
    put_str(evs[2], "error", "upgrade_failed: CRC mismatch \xc3\xa9");
    put_str(evs[2], "trigger", "forced");
    put_str(evs[2], "fw", "2.1.0");
    evs[3] = event("command", "T-4", 1700000000004);
    put_str(evs[3], "cmd", "schedule");
    put_uint(evs[3], "at", 1700000999000);
    evs[4] = event("eeprom_clear", "T-5", 0);
    put_str(evs[4], "ecu", "ADAS");
    put_str(evs[4], "result", "ok");

    ota_report r;
    expect_ok(report_n(INT64_MAX, evs, 5), &r);
    assert_true(r.seq == (uint64_t)INT64_MAX); /* the largest seq a store can key on */
    assert_int_equal(r.n_events, 5);
    assert_non_null(r.mem_);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(r.events[i].index, i);

    const ota_event *ev = &r.events[0];
    assert_int_equal(ev->type, OTA_EV_DOWNLOAD_PROGRESS);
    assert_string_equal(ev->task, "T-1");
    assert_true(ev->ts == 1700000000001);
    assert_string_equal(ev->ecu, "BMS");
    assert_int_equal(ev->pct, 40);
    assert_true(ev->bytes == 123456789);
    assert_null(ev->step);
    assert_null(ev->status);
    assert_null(ev->cmd);
    assert_true(ev->at == -1);
    assert_null(ev->result);

    ev = &r.events[1];
    assert_int_equal(ev->type, OTA_EV_UPGRADE_PROGRESS);
    assert_string_equal(ev->task, "T-2");
    assert_true(ev->ts == 1700000000002);
    assert_string_equal(ev->ecu, "VCU");
    assert_int_equal(ev->pct, 100);
    assert_true(ev->bytes == -1);
    assert_string_equal(ev->step, "flashing bank B");

    ev = &r.events[2];
    assert_int_equal(ev->type, OTA_EV_UPGRADE_STATUS);
    assert_string_equal(ev->task, "T-3");
    assert_true(ev->ts == 1700000000003);
    assert_string_equal(ev->status, "failed");
    assert_string_equal(ev->error, "upgrade_failed: CRC mismatch \xc3\xa9");
    assert_string_equal(ev->trigger, "forced");
    assert_string_equal(ev->fw, "2.1.0");
    assert_null(ev->ecu);
    assert_int_equal(ev->pct, -1);

    ev = &r.events[3];
    assert_int_equal(ev->type, OTA_EV_COMMAND);
    assert_string_equal(ev->task, "T-4");
    assert_string_equal(ev->cmd, "schedule");
    assert_true(ev->at == 1700000999000);
    assert_null(ev->status);

    ev = &r.events[4];
    assert_int_equal(ev->type, OTA_EV_EEPROM_CLEAR);
    assert_string_equal(ev->task, "T-5");
    assert_true(ev->ts == 0);
    assert_string_equal(ev->ecu, "ADAS");
    assert_string_equal(ev->result, "ok");
    assert_int_equal(ev->pct, -1);

    ota_report_free(&r);
    assert_null(r.events);
    assert_null(r.mem_);
    assert_int_equal(r.n_events, 0);
    ota_report_free(&r); /* idempotent */
    ota_report_free(NULL);
}

static void test_report_optional_absent(void **state)
{
    (void)state;
    cbor_item_t *evs[4];
    evs[0] = event("download_progress", "T", 1);
    put_uint(evs[0], "pct", 0);
    evs[1] = event("upgrade_progress", "T", 2);
    put_str(evs[1], "ecu", "BMS");
    put_uint(evs[1], "pct", 5);
    evs[2] = event("upgrade_status", "T", 3);
    put_str(evs[2], "status", "succeeded");
    put_str(evs[2], "trigger", "normal");
    evs[3] = event("command", "T", 4);
    put_str(evs[3], "cmd", "now");

    ota_report r;
    expect_ok(report_n(0, evs, 4), &r);
    assert_true(r.seq == 0);
    assert_int_equal(r.n_events, 4);
    for (size_t i = 0; i < r.n_events; i++) {
        const ota_event *ev = &r.events[i];
        assert_string_equal(ev->task, "T");
        assert_true(ev->ts == (int64_t)i + 1);
        assert_true(ev->bytes == -1);
        assert_true(ev->at == -1);
        assert_null(ev->step);
        assert_null(ev->error);
        assert_null(ev->fw);
        assert_null(ev->result);
    }
    assert_null(r.events[0].ecu);
    assert_int_equal(r.events[0].pct, 0);
    assert_string_equal(r.events[2].status, "succeeded");
    assert_string_equal(r.events[3].cmd, "now");
    ota_report_free(&r);
}

static void test_report_unknown_keys_ignored(void **state)
{
    (void)state;
    cbor_item_t *ev = valid_download_progress();
    cbor_item_t *nested = new_map();
    put(nested, "list", cbor_new_definite_array(0));
    put(nested, "f", cbor_build_float8(1.5));
    put(ev, "future_field", nested);
    put(ev, "status", cbor_build_negint8(3)); /* not a download_progress field: ignored */
    cbor_item_t *rep = report1(ev);
    put(rep, "extra", cbor_build_bool(true));

    ota_report r;
    expect_ok(rep, &r);
    assert_int_equal(r.n_events, 1);
    assert_int_equal(r.events[0].pct, 40);
    assert_null(r.events[0].status);
    ota_report_free(&r);
}

static void test_report_indefinite_containers(void **state)
{
    (void)state;
    /* {_ "seq": 1, "events": [_ {_ type, task, ts, pct } ] } */
    cbor_item_t *ev = cbor_new_indefinite_map();
    put_str(ev, "type", "download_progress");
    put_str(ev, "task", "T");
    put_uint(ev, "ts", 9);
    put_uint(ev, "pct", 1);
    cbor_item_t *arr = cbor_new_indefinite_array();
    assert_true(cbor_array_push(arr, cbor_move(ev)));
    cbor_item_t *rep = cbor_new_indefinite_map();
    put_uint(rep, "seq", 1);
    put(rep, "events", arr);

    ota_report r;
    expect_ok(rep, &r);
    assert_int_equal(r.n_events, 1);
    assert_int_equal(r.events[0].pct, 1);
    ota_report_free(&r);
}

static void test_report_max_events_accepted(void **state)
{
    (void)state;
    cbor_item_t *evs[OTA_REPORT_MAX_EVENTS_DEFAULT];
    for (size_t i = 0; i < OTA_REPORT_MAX_EVENTS_DEFAULT; i++)
        evs[i] = valid_download_progress();
    ota_report r;
    expect_ok(report_n(1, evs, OTA_REPORT_MAX_EVENTS_DEFAULT), &r);
    assert_int_equal(r.n_events, OTA_REPORT_MAX_EVENTS_DEFAULT);
    assert_int_equal(r.events[255].index, 255);
    assert_string_equal(r.events[255].ecu, "BMS");
    ota_report_free(&r);
}

/* ---- malformed CBOR and payload limits ---- */

static void test_report_truncated(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = test_cbor_serialize(report1(valid_download_progress()), &len);
    for (size_t cut = 1; cut < len; cut++)
        expect_raw_error(buf, len - cut, OTA_E_BAD_CBOR, "report: ");
    expect_raw_error(buf, 0, OTA_E_BAD_CBOR, "report: ");
    free(buf);
}

static void test_report_trailing_bytes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = test_cbor_serialize(report1(valid_download_progress()), &len);
    uint8_t *longer = malloc(len + 2);
    memcpy(longer, buf, len);
    longer[len] = 0x01;
    longer[len + 1] = 0x02;
    expect_raw_error(longer, len + 2, OTA_E_BAD_CBOR, "2 trailing bytes");
    free(longer);
    free(buf);
}

static void test_report_malformed_bytes(void **state)
{
    (void)state;
    static const uint8_t reserved[] = {0xa1, 0x1c}; /* reserved additional info */
    expect_raw_error(reserved, sizeof reserved, OTA_E_BAD_CBOR, "report: ");
    static const uint8_t stray_break[] = {0xff};
    expect_raw_error(stray_break, sizeof stray_break, OTA_E_BAD_CBOR, "report: ");
    static const uint8_t break_in_array[] = {0x82, 0x01, 0xff};
    expect_raw_error(break_in_array, sizeof break_in_array, OTA_E_BAD_CBOR, "misplaced break");
}

static void test_report_huge_declared_sizes(void **state)
{
    (void)state;
    /* Headers declaring 2^27 entries: rejected before libcbor allocates for them. */
    static const uint8_t array[] = {0x9a, 0x08, 0x00, 0x00, 0x00};
    expect_raw_error(array, sizeof array, OTA_E_BAD_CBOR, "declared sizes");
    static const uint8_t map[] = {0xba, 0x08, 0x00, 0x00, 0x00};
    expect_raw_error(map, sizeof map, OTA_E_BAD_CBOR, "declared sizes");
    /* Nested arrays, each plausible alone, declaring far more entries in total. */
    uint8_t nested[5 * 100];
    for (size_t i = 0; i < 100; i++) {
        uint8_t *h = nested + 5 * i;
        h[0] = 0x9a, h[1] = 0x00, h[2] = 0x00, h[3] = 0x01, h[4] = 0x00; /* 256 entries */
    }
    expect_raw_error(nested, sizeof nested, OTA_E_BAD_CBOR, "declared sizes");
}

static void test_report_too_deep(void **state)
{
    (void)state;
    /* {"x": [[[[...0]]]]} nested deeper than libcbor's decoding stack (2048). */
    size_t depth = 3000;
    uint8_t *buf = malloc(depth + 4);
    buf[0] = 0xa1, buf[1] = 0x61, buf[2] = 'x';
    memset(buf + 3, 0x81, depth);
    buf[3 + depth] = 0x00;
    expect_raw_error(buf, depth + 4, OTA_E_TOO_LARGE, "report: ");
    free(buf);
}

static void test_report_payload_over_max(void **state)
{
    (void)state;
    ota_report_limits lim = {.max_payload = 20, .max_events = 256};
    expect_error_lim(report1(valid_download_progress()), &lim, OTA_E_TOO_LARGE, "payload");

    /* Over the default: rejected on its size alone, before parsing. */
    size_t len = OTA_REPORT_MAX_PAYLOAD_DEFAULT + 1;
    uint8_t *big = calloc(1, len);
    expect_raw_error(big, len, OTA_E_TOO_LARGE, "payload of 65537 bytes");
    free(big);
}

/* ---- shape of the report ---- */

static void test_report_top_level_not_map(void **state)
{
    (void)state;
    cbor_item_t *arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_uint8(1))));
    expect_error(arr, OTA_E_BAD_REQUEST, "top level: expected map");
    expect_error(cbor_build_string("report"), OTA_E_BAD_REQUEST, "top level: expected map");
}

static void test_report_non_text_keys(void **state)
{
    (void)state;
    cbor_item_t *rep = report1(valid_download_progress());
    assert_true(cbor_map_add(rep, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(1)),
                                                     .value = cbor_move(cbor_build_uint8(2))}));
    expect_error(rep, OTA_E_BAD_REQUEST, "top level: map key 2 is not definite-length text");

    cbor_item_t *ev = valid_download_progress();
    assert_true(cbor_map_add(
        ev, (struct cbor_pair){.key = cbor_move(cbor_build_bytestring((cbor_data) "k", 1)),
                               .value = cbor_move(cbor_build_uint8(2))}));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0]: map key 6 is not");
}

static void test_report_seq(void **state)
{
    (void)state;
    cbor_item_t *ev = valid_download_progress();
    cbor_item_t *arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, cbor_move(ev)));
    cbor_item_t *rep = new_map();
    put(rep, "events", arr);
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: missing");

    ev = valid_download_progress();
    arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, cbor_move(ev)));
    rep = new_map();
    put(rep, "seq", cbor_build_negint8(0)); /* -1 */
    put(rep, "events", arr);
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: expected unsigned integer");

    rep = new_map();
    put(rep, "seq", cbor_build_string("1"));
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: expected unsigned integer");

    /* seq is a signed 64-bit key in the stores: 2^63 must be refused, not spooled */
    ev = valid_download_progress();
    arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, cbor_move(ev)));
    rep = new_map();
    put(rep, "seq", cbor_build_uint64((uint64_t)INT64_MAX + 1));
    put(rep, "events", arr);
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: expected unsigned integer 0..9223372036854775807");
}

/* A failed decode still tells the seq when it was valid, so the error reply can name
 * the report; never when the payload is not CBOR or the seq itself is wrong. */
static void test_failed_report_keeps_valid_seq(void **state)
{
    (void)state;
    cbor_item_t *ev = valid_download_progress();
    put(ev, "pct", cbor_build_uint8(101));
    cbor_item_t *evs[1] = {ev};
    ota_report r;
    ota_error e;
    assert_int_equal(decode_item(report_n(41, evs, 1), NULL, &r, &e), -1);
    assert_true(r.seq_valid);
    assert_true(r.seq == 41);

    cbor_item_t *rep = new_map();
    put(rep, "seq", cbor_build_string("41"));
    assert_int_equal(decode_item(rep, NULL, &r, &e), -1);
    assert_false(r.seq_valid);

    size_t len;
    evs[0] = valid_download_progress();
    uint8_t *buf = test_cbor_serialize(report_n(41, evs, 1), &len);
    assert_int_equal(decode_raw(buf, len - 1, NULL, &r, &e), -1); /* truncated */
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    assert_false(r.seq_valid);
    free(buf);

    evs[0] = valid_download_progress();
    assert_int_equal(decode_item(report_n(7, evs, 1), NULL, &r, &e), 0);
    assert_true(r.seq_valid);
    ota_report_free(&r);
}

static void test_report_events_shape(void **state)
{
    (void)state;
    cbor_item_t *rep = new_map();
    put_uint(rep, "seq", 1);
    expect_error(rep, OTA_E_BAD_REQUEST, "events: missing");

    rep = new_map();
    put_uint(rep, "seq", 1);
    put(rep, "events", valid_download_progress());
    expect_error(rep, OTA_E_BAD_REQUEST, "events: expected array");

    expect_error(report_n(1, NULL, 0), OTA_E_BAD_REQUEST, "events: empty");

    cbor_item_t *evs[2] = {valid_download_progress(), cbor_build_string("event")};
    expect_error(report_n(1, evs, 2), OTA_E_BAD_REQUEST, "events[1]: expected map");
}

static void test_report_too_many_events(void **state)
{
    (void)state;
    enum { N = OTA_REPORT_MAX_EVENTS_DEFAULT + 1 };
    cbor_item_t *evs[N];
    for (size_t i = 0; i < N; i++)
        evs[i] = valid_download_progress();
    expect_error(report_n(1, evs, N), OTA_E_TOO_LARGE, "events: more than 256 entries");

    ota_report_limits lim = {.max_payload = 65536, .max_events = 2};
    cbor_item_t *three[3] = {valid_download_progress(), valid_download_progress(),
                             valid_download_progress()};
    expect_error_lim(report_n(1, three, 3), &lim, OTA_E_TOO_LARGE, "events: more than 2");
}

static void test_report_duplicate_key(void **state)
{
    (void)state;
    cbor_item_t *ev = valid_download_progress();
    put_uint(ev, "pct", 41);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].pct: duplicate key");
}

/* ---- error precedence and the reader's checks beyond the known fields ---- */

static cbor_item_t *bad_pct_event(void)
{
    cbor_item_t *ev = event("download_progress", "T", 1);
    put_uint(ev, "pct", 101);
    return ev;
}

static cbor_item_t *array1(cbor_item_t *item)
{
    cbor_item_t *arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, cbor_move(item)));
    return arr;
}

static void test_report_error_precedence(void **state)
{
    (void)state;
    /* Errors come in the order: CBOR, top-level keys, seq, events array, events; wherever
     * they stand in the payload. */
    cbor_item_t *rep = new_map();
    put(rep, "events", array1(bad_pct_event()));
    put(rep, "seq", cbor_build_string("x"));
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: expected unsigned integer");

    rep = new_map();
    put(rep, "events", array1(bad_pct_event()));
    expect_error(rep, OTA_E_BAD_REQUEST, "seq: missing");

    rep = new_map();
    put(rep, "events", array1(bad_pct_event()));
    put_uint(rep, "seq", 1);
    assert_true(cbor_map_add(rep, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(5)),
                                                     .value = cbor_move(cbor_build_uint8(6))}));
    expect_error(rep, OTA_E_BAD_REQUEST, "top level: map key 2 is not definite-length text");

    ota_report_limits lim = {.max_payload = 65536, .max_events = 1};
    cbor_item_t *two[2] = {bad_pct_event(), valid_download_progress()};
    expect_error_lim(report_n(1, two, 2), &lim, OTA_E_TOO_LARGE, "events: more than 1 entries");

    /* A CBOR error after a field error, even in the value of an unknown key. */
    rep = report1(bad_pct_event());
    put(rep, "extra", cbor_build_stringn("\xff", 1));
    expect_error(rep, OTA_E_BAD_CBOR, "report: invalid CBOR (text not valid UTF-8) before byte");

    rep = report1(valid_download_progress());
    put(rep, "seq", cbor_build_uint8(2));
    put(rep, "extra", cbor_build_stringn("\xc3", 1));
    expect_error(rep, OTA_E_BAD_CBOR, "not valid UTF-8");
}

static void test_report_unknown_values_checked(void **state)
{
    (void)state;
    /* Unknown keys and values of any type are skipped, but must be well-formed CBOR. */
    cbor_item_t *ev = valid_download_progress();
    cbor_item_t *chunks = cbor_new_indefinite_string();
    assert_true(cbor_string_add_chunk(chunks, cbor_move(cbor_build_string("a"))));
    assert_true(cbor_string_add_chunk(chunks, cbor_move(cbor_build_string("b"))));
    put(ev, "tagged", cbor_build_tag(1, cbor_move(chunks)));
    cbor_item_t *bytes = cbor_new_indefinite_bytestring();
    assert_true(
        cbor_bytestring_add_chunk(bytes, cbor_move(cbor_build_bytestring((cbor_data) "\x01", 1))));
    put(ev, "bytes_chunks", bytes);
    put(ev, "nothing", cbor_new_null());
    put(ev, "neg", cbor_build_negint64(UINT64_MAX));
    cbor_item_t *rep = report1(ev);
    put(rep, "list", cbor_new_indefinite_array());
    ota_report r;
    expect_ok(rep, &r);
    assert_int_equal(r.n_events, 1);
    assert_string_equal(r.events[0].ecu, "BMS");
    ota_report_free(&r);

    ev = valid_download_progress();
    put(ev, "note", cbor_build_stringn("\xed\xa0\x80", 3)); /* surrogate */
    expect_event_error(ev, OTA_E_BAD_CBOR, "report: invalid CBOR (text not valid UTF-8)");

    ev = valid_download_progress();
    assert_true(
        cbor_map_add(ev, (struct cbor_pair){.key = cbor_move(cbor_build_stringn("k\xff", 2)),
                                            .value = cbor_move(cbor_build_uint8(1))}));
    expect_event_error(ev, OTA_E_BAD_CBOR, "not valid UTF-8");

    /* {"x": (_ "a", h'01')}: a byte string chunk in a text. */
    static const uint8_t mixed[] = {0xa1, 0x61, 'x', 0x7f, 0x61, 'a', 0x41, 0x01, 0xff};
    expect_raw_error(mixed, sizeof mixed, OTA_E_BAD_CBOR,
                     "report: invalid CBOR (not a chunk of the indefinite-length string) before "
                     "byte 8");
    /* {"x": 1, break}: a break in a definite map. */
    static const uint8_t brk[] = {0xa2, 0x61, 'x', 0x01, 0xff};
    expect_raw_error(brk, sizeof brk, OTA_E_BAD_CBOR,
                     "report: invalid CBOR (misplaced break) before byte 5");
    /* {_ "x" break}: a break where a value is due. */
    static const uint8_t half[] = {0xbf, 0x61, 'x', 0xff};
    expect_raw_error(half, sizeof half, OTA_E_BAD_CBOR, "misplaced break");
    static const uint8_t reserved[] = {0xa1, 0x61, 'x', 0xfc};
    expect_raw_error(reserved, sizeof reserved, OTA_E_BAD_CBOR, "report: malformed CBOR at byte 3");
}

static void test_report_indefinite_events_limits(void **state)
{
    (void)state;
    ota_report_limits lim = {.max_payload = 65536, .max_events = 2};
    cbor_item_t *arr = cbor_new_indefinite_array();
    for (int i = 0; i < 3; i++)
        assert_true(
            cbor_array_push(arr, cbor_move(i == 0 ? bad_pct_event() : valid_download_progress())));
    cbor_item_t *rep = new_map();
    put_uint(rep, "seq", 1);
    put(rep, "events", arr);
    expect_error_lim(rep, &lim, OTA_E_TOO_LARGE, "events: more than 2 entries");

    arr = cbor_new_indefinite_array();
    for (int i = 0; i < 2; i++)
        assert_true(cbor_array_push(arr, cbor_move(valid_download_progress())));
    rep = new_map();
    put_uint(rep, "seq", 1);
    put(rep, "events", arr);
    ota_report r;
    ota_error e;
    assert_int_equal(decode_item(rep, &lim, &r, &e), 0);
    assert_int_equal(r.n_events, 2);
    assert_int_equal(r.events[1].index, 1);
    assert_string_equal(r.events[1].task, "T-1");
    ota_report_free(&r);

    rep = new_map();
    put_uint(rep, "seq", 1);
    put(rep, "events", cbor_new_indefinite_array());
    expect_error(rep, OTA_E_BAD_REQUEST, "events: empty");
}

static void test_report_declared_sizes_precedence(void **state)
{
    (void)state;
    /* An absurd size declared anywhere (trailing bytes, after another error) is what the
     * vehicle hears about. */
    size_t len;
    uint8_t *buf = test_cbor_serialize(report1(valid_download_progress()), &len);
    uint8_t *longer = malloc(len + 5);
    memcpy(longer, buf, len);
    memcpy(longer + len, "\x9a\x08\x00\x00\x00", 5);
    expect_raw_error(longer, len + 5, OTA_E_BAD_CBOR, "declared sizes");
    free(longer);
    free(buf);

    static const uint8_t after_break[] = {0xff, 0x9a, 0x08, 0x00, 0x00, 0x00};
    expect_raw_error(after_break, sizeof after_break, OTA_E_BAD_CBOR, "declared sizes");
    /* ...but not past a header that does not decode. */
    static const uint8_t after_reserved[] = {0xff, 0xfc, 0x9a, 0x08, 0x00, 0x00, 0x00};
    expect_raw_error(after_reserved, sizeof after_reserved, OTA_E_BAD_CBOR, "misplaced break");
}

static void test_report_nesting_limit(void **state)
{
    (void)state;
    /* {"x": [[...0]]}: the top-level map and the arrays, CBOR_MAX_STACK_SIZE open at most. */
    for (size_t arrays = CBOR_MAX_STACK_SIZE - 1; arrays <= CBOR_MAX_STACK_SIZE; arrays++) {
        uint8_t *buf = malloc(arrays + 4);
        buf[0] = 0xa1, buf[1] = 0x61, buf[2] = 'x';
        memset(buf + 3, 0x81, arrays);
        buf[3 + arrays] = 0x00;
        if (arrays < CBOR_MAX_STACK_SIZE)
            expect_raw_error(buf, arrays + 4, OTA_E_BAD_REQUEST, "seq: missing");
        else
            expect_raw_error(buf, arrays + 4, OTA_E_TOO_LARGE,
                             "report: CBOR too deeply nested or too large");
        free(buf);
    }
}

/* ---- the pull reader ---- */

static void expect_item(ota_cbor_reader *r, const ota_cbor_item *c, ota_cbor_type type, uint64_t u,
                        ota_cbor_item *it)
{
    if (ota_cbor_entry(r, c, it) != 1)
        fail_msg("no entry: %s", r->failed ? r->err->msg : "end of container");
    assert_int_equal(it->type, type);
    if (type == OTA_CBOR_UINT || type == OTA_CBOR_NEGINT || type == OTA_CBOR_TAG)
        assert_true(it->u == u);
}

static void test_cbor_reader_walk(void **state)
{
    (void)state;
    /* [1, -2, "ab", h'0102', {_ "k": true}, 1("x"), 1.5, [_ 0], (_ "c", "d"), [2, 3]] */
    static const uint8_t doc[] = {0x8a, 0x01, 0x21, 0x62, 'a',  'b', 0x42, 0x01, 0x02, 0xbf, 0x61,
                                  'k',  0xf5, 0xff, 0xc1, 0x61, 'x', 0xf9, 0x3e, 0x00, 0x9f, 0x00,
                                  0xff, 0x7f, 0x61, 'c',  0x61, 'd', 0xff, 0x82, 0x02, 0x03};
    ota_error e = {0};
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, doc, sizeof doc, "doc", &e);
    ota_cbor_item top, it, inner;
    assert_int_equal(ota_cbor_next(&r, &top), 0);
    assert_int_equal(top.type, OTA_CBOR_ARRAY);
    assert_false(top.indefinite);
    assert_int_equal(top.u, 10);
    assert_int_equal(top.depth, 0);
    expect_item(&r, &top, OTA_CBOR_UINT, 1, &it);
    assert_int_equal(it.depth, 1);
    expect_item(&r, &top, OTA_CBOR_NEGINT, 1, &it);
    expect_item(&r, &top, OTA_CBOR_TEXT, 0, &it);
    assert_int_equal(it.len, 2);
    assert_memory_equal(it.ptr, "ab", 2);
    assert_true(it.clean);
    expect_item(&r, &top, OTA_CBOR_BYTES, 0, &it);
    assert_int_equal(it.len, 2);
    expect_item(&r, &top, OTA_CBOR_MAP, 0, &it);
    assert_true(it.indefinite);
    expect_item(&r, &it, OTA_CBOR_TEXT, 0, &inner);
    expect_item(&r, &it, OTA_CBOR_BOOL, 0, &inner);
    assert_true(inner.boolean);
    assert_int_equal(ota_cbor_entry(&r, &it, &inner), 0); /* the break */
    expect_item(&r, &top, OTA_CBOR_TAG, 1, &it);
    expect_item(&r, &it, OTA_CBOR_TEXT, 0, &inner);
    assert_int_equal(ota_cbor_entry(&r, &it, &inner), 0); /* the tag is complete */
    expect_item(&r, &top, OTA_CBOR_FLOAT, 0, &it);
    assert_true(it.f == 1.5);
    expect_item(&r, &top, OTA_CBOR_ARRAY, 0, &it);
    assert_int_equal(ota_cbor_skip(&r, &it), 0);
    expect_item(&r, &top, OTA_CBOR_TEXT, 0, &it);
    assert_true(it.indefinite);
    expect_item(&r, &it, OTA_CBOR_TEXT, 0, &inner); /* chunk "c" */
    assert_memory_equal(inner.ptr, "c", 1);
    assert_int_equal(ota_cbor_skip(&r, &it), 0);
    expect_item(&r, &top, OTA_CBOR_ARRAY, 0, &it);
    expect_item(&r, &it, OTA_CBOR_UINT, 2, &inner);
    assert_int_equal(ota_cbor_skip(&r, &top), 0); /* from inside a nested array */
    assert_true(r.done);
    assert_int_equal(ota_cbor_entry(&r, &top, &it), 0);
    assert_int_equal(ota_cbor_reader_end(&r), 0);

    /* Stopping early: the end reads and checks the rest. */
    ota_cbor_reader_init(&r, doc, sizeof doc - 1, "doc", &e);
    assert_int_equal(ota_cbor_next(&r, &top), 0);
    assert_int_equal(ota_cbor_reader_end(&r), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    assert_string_equal(e.msg, "doc: truncated CBOR");
    assert_int_equal(ota_cbor_next(&r, &it), -1);

    ota_cbor_reader_init(&r, "\x01\x02", 2, "doc", &e);
    assert_int_equal(ota_cbor_reader_end(&r), -1);
    assert_string_equal(e.msg, "doc: 1 trailing bytes after the CBOR item");

    ota_cbor_reader_init(&r, "", 0, "doc", &e);
    assert_int_equal(ota_cbor_reader_end(&r), -1);
    assert_string_equal(e.msg, "doc: empty payload");

    /* Deeper than the frames held inline, within the limit. */
    uint8_t deep[200];
    memset(deep, 0x9f, 100);
    memset(deep + 100, 0xff, 100);
    ota_cbor_reader_init(&r, deep, sizeof deep, "doc", &e);
    assert_int_equal(ota_cbor_reader_end(&r), 0);
}

static void test_cbor_reader_map_scan(void **state)
{
    (void)state;
    static const char *const keys[] = {"a", "bb", "", "ccc"};
    ota_cbor_item v[4], m;
    uint32_t found;
    ota_error e = {0};
    ota_cbor_reader r;
    /* {"bb": [1, 2], "zz": {"a": 1}, "": "t\x01", "a": 5} */
    static const uint8_t doc[] = {0xa4, 0x62, 'b',  'b',  0x82, 0x01, 0x02, 0x62, 'z', 'z', 0xa1,
                                  0x61, 'a',  0x01, 0x60, 0x62, 't',  0x01, 0x61, 'a', 0x05};
    ota_cbor_reader_init(&r, doc, sizeof doc, "doc", &e);
    assert_int_equal(ota_cbor_next(&r, &m), 0);
    assert_int_equal(ota_cbor_map_scan(&r, &m, "", "", keys, 4, v, &found, &e), 0);
    assert_int_equal(found, 0x7);
    assert_int_equal(v[1].type, OTA_CBOR_ARRAY);
    uint64_t u;
    assert_int_equal(ota_cbor_want_uint(&v[0], "", "a", OTA_CBOR_REQUIRED, 0, 9, &u, &e), 1);
    assert_int_equal(u, 5);
    assert_int_equal(ota_cbor_want_array(&v[1], "m", "bb", OTA_CBOR_REQUIRED, 3, 9, &e), -1);
    assert_string_equal(e.msg, "m.bb: fewer than 3 entries");
    ota_cbor_text t;
    assert_int_equal(ota_cbor_want_text(&v[2], "m", "e", OTA_CBOR_REQUIRED, 0, 9, &t, &e), -1);
    assert_string_equal(e.msg, "m.e: invalid UTF-8 or control character");
    assert_int_equal(ota_cbor_want_text(NULL, "m", "ccc", OTA_CBOR_OPTIONAL, 0, 9, &t, &e), 0);
    assert_int_equal(ota_cbor_want_bytes(&v[0], "", "a", OTA_CBOR_REQUIRED, 0, 9, NULL, NULL, &e),
                     -1);
    assert_string_equal(e.msg, "a: expected definite-length bytes");
    bool b;
    assert_int_equal(ota_cbor_want_bool(NULL, "x", "ok", OTA_CBOR_REQUIRED, &b, &e), -1);
    assert_string_equal(e.msg, "x.ok: missing");
    assert_int_equal(ota_cbor_reader_end(&r), 0);

    /* {"a": 1, "a": 2}: refused at the second; the rest is skipped from there. */
    static const uint8_t dup[] = {0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02};
    ota_cbor_reader_init(&r, dup, sizeof dup, "doc", &e);
    assert_int_equal(ota_cbor_next(&r, &m), 0);
    assert_int_equal(ota_cbor_map_scan(&r, &m, "p", "q", keys, 4, v, &found, &e), -1);
    assert_string_equal(e.msg, "p.a: duplicate key");
    assert_int_equal(ota_cbor_skip(&r, &m), 0);
    assert_int_equal(ota_cbor_reader_end(&r), 0);

    /* Not a map; then a key that is not text. */
    ota_cbor_reader_init(&r, "\x80", 1, "doc", &e);
    assert_int_equal(ota_cbor_next(&r, &m), 0);
    assert_int_equal(ota_cbor_map_scan(&r, &m, "", "list", keys, 4, v, &found, &e), -1);
    assert_string_equal(e.msg, "list: expected map");
    assert_int_equal(ota_cbor_reader_end(&r), 0);
    ota_cbor_reader_init(&r, "\xa1\x01\x02", 3, "doc", &e);
    assert_int_equal(ota_cbor_next(&r, &m), 0);
    assert_int_equal(ota_cbor_map_scan(&r, &m, "", "", keys, 4, v, &found, &e), -1);
    assert_string_equal(e.msg, "top level: map key 0 is not definite-length text");
    assert_int_equal(ota_cbor_reader_end(&r), 0);

    assert_int_equal(ota_cbor_want_count(0, "", "xs", 1, 3, &e), -1);
    assert_string_equal(e.msg, "xs: empty");
    assert_int_equal(ota_cbor_want_count(4, "", "xs", 1, 3, &e), -1);
    assert_int_equal(e.code, OTA_E_TOO_LARGE);
    assert_int_equal(ota_cbor_want_count(3, "", "xs", 1, 3, &e), 0);
}

/* ---- event fields ---- */

static void test_event_unknown_type(void **state)
{
    (void)state;
    cbor_item_t *evs[3] = {valid_download_progress(), valid_download_progress(),
                           event("foo", "T", 1)};
    ota_report r;
    ota_error e;
    int rc = decode_item(report_n(1, evs, 3), NULL, &r, &e);
    check_failed(rc, &r, &e, OTA_E_BAD_REQUEST, "");
    assert_string_equal(e.msg, "events[2].type: unknown event type \"foo\"");

    cbor_item_t *ev = new_map();
    put_str(ev, "task", "T");
    put_uint(ev, "ts", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].type: missing");

    ev = new_map();
    put_uint(ev, "type", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].type: expected definite-length text");
}

static void test_event_task(void **state)
{
    (void)state;
    cbor_item_t *ev = new_map();
    put_str(ev, "type", "download_progress");
    put_uint(ev, "ts", 1);
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].task: missing");

    char id[OTA_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[OTA_ID_MAX + 1] = '\0';
    ev = event("download_progress", id, 1);
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_TOO_LARGE, "events[0].task: longer than 64 bytes");

    id[OTA_ID_MAX] = '\0'; /* exactly 64: accepted */
    ev = event("download_progress", id, 1);
    put_uint(ev, "pct", 1);
    ota_report r;
    expect_ok(report1(ev), &r);
    assert_string_equal(r.events[0].task, id);
    ota_report_free(&r);

    ev = event("download_progress", "", 1);
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].task: shorter than 1 bytes");
}

static void test_event_ts(void **state)
{
    (void)state;
    cbor_item_t *ev = new_map();
    put_str(ev, "type", "download_progress");
    put_str(ev, "task", "T");
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ts: missing");

    ev = event("download_progress", "T", (uint64_t)INT64_MAX + 1);
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ts: expected unsigned integer");

    ev = new_map();
    put_str(ev, "type", "download_progress");
    put_str(ev, "task", "T");
    put(ev, "ts", cbor_build_float8(1700000000000.5)); /* not an integer */
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ts: expected unsigned integer");

    ev = new_map();
    put_str(ev, "type", "download_progress");
    put_str(ev, "task", "T");
    put(ev, "ts", cbor_build_float8(-1.0));
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ts: expected unsigned integer");
}

/* Integer fields take floats that are exactly an integer in range (cbor-x writes integers
 * above 2^32 as float64); seq and epoch too. */
static void test_integral_floats(void **state)
{
    (void)state;
    cbor_item_t *ev = new_map();
    put_str(ev, "type", "download_progress");
    put_str(ev, "task", "T");
    put(ev, "ts", cbor_build_float8(1700000000000.0));
    put(ev, "pct", cbor_build_float2(50.0f));
    put(ev, "bytes", cbor_build_float4(1024.0f));
    cbor_item_t *rep = new_map();
    put(rep, "seq", cbor_build_float8(4294967297.0));
    put(rep, "epoch", cbor_build_float8(7.0));
    cbor_item_t *arr = cbor_new_definite_array(1);
    assert_true(cbor_array_push(arr, ev));
    cbor_decref(&ev);
    put(rep, "events", arr);
    ota_report r;
    ota_error e;
    assert_int_equal(decode_item(rep, NULL, &r, &e), 0);
    assert_int_equal(r.seq, 4294967297ULL);
    assert_string_equal(r.epoch, "7");
    assert_int_equal(r.events[0].ts, 1700000000000LL);
    assert_int_equal(r.events[0].pct, 50);
    assert_int_equal(r.events[0].bytes, 1024);
    ota_report_free(&r);
}

/* epoch: absent is "0", an integer is its decimal text, a text is itself; anything else,
 * or a text over 64 bytes, is refused; the envelope check reads seq and epoch alone. */
static void test_report_epoch(void **state)
{
    (void)state;
    static const uint8_t text_epoch[] = {0xa3, 0x63, 's', 'e', 'q', 0x05, 0x65, 'e', 'p', 'o',
                                         'c', 'h', 0x62, 'u', '1', 0x66, 'e', 'v', 'e', 'n',
                                         't', 's', 0x80};
    ota_report r;
    ota_error e;
    assert_int_equal(ota_codec_report_envelope(text_epoch, sizeof text_epoch, &r, &e), 0);
    assert_int_equal(r.seq, 5);
    assert_string_equal(r.epoch, "u1");
    /* the full decoder refuses the empty events array, but names the report */
    assert_int_equal(decode_raw(text_epoch, sizeof text_epoch, NULL, &r, &e), -1);
    assert_true(r.seq_valid);
    assert_string_equal(r.epoch, "u1");
    static const uint8_t bad_epoch[] = {0xa2, 0x63, 's', 'e', 'q', 0x05, 0x65, 'e',
                                        'p',  'o',  'c', 'h', 0xf5};
    assert_int_equal(ota_codec_report_envelope(bad_epoch, sizeof bad_epoch, &r, &e), -1);
    assert_non_null(strstr(e.msg, "epoch: expected unsigned integer or text"));
    static const uint8_t no_seq[] = {0xa1, 0x65, 'e', 'p', 'o', 'c', 'h', 0x01};
    assert_int_equal(ota_codec_report_envelope(no_seq, sizeof no_seq, &r, &e), -1);
    assert_non_null(strstr(e.msg, "seq: missing"));
}

/* The envelope's skim of plain reports answers as the strict reader on reports it takes
 * (epoch after the events, floats, bytes, nesting) and on those it leaves to it (indefinite
 * lengths, tags, bad UTF-8, trailing or missing bytes, duplicates, a seq over 2^63-1). */
static void check_skim_same(const uint8_t *b, size_t n, int want_rc)
{
    ota_report a, s;
    ota_error ea = {0}, es = {0};
    int ra = ota_codec_report_envelope(b, n, &a, &ea);
    int rs = ota_codec_report_envelope_strict(b, n, &s, &es);
    assert_int_equal(ra, want_rc);
    assert_int_equal(ra, rs);
    if (ra == 0) {
        assert_true(a.seq == s.seq && a.seq_valid);
        assert_string_equal(a.epoch, s.epoch);
    } else {
        assert_string_equal(ea.msg, es.msg);
    }
}

static void test_report_envelope_skim(void **state)
{
    (void)state;
    /* {"events": [{"a": 1.5f16, "b": h'0102', "c": [true, null, -3]}], "epoch": "e2",
     *  "seq": 300} */
    static const uint8_t late_epoch[] = {
        0xa3, 0x66, 'e', 'v', 'e', 'n', 't', 's', 0x81, 0xa3, 0x61, 'a', 0xf9, 0x3e, 0x00,
        0x61, 'b', 0x42, 0x01, 0x02, 0x61, 'c', 0x83, 0xf5, 0xf6, 0x22, 0x65, 'e', 'p', 'o',
        'c', 'h', 0x62, 'e', '2', 0x63, 's', 'e', 'q', 0x19, 0x01, 0x2c};
    check_skim_same(late_epoch, sizeof late_epoch, 0);
    ota_report r;
    ota_error e;
    assert_int_equal(ota_codec_report_envelope(late_epoch, sizeof late_epoch, &r, &e), 0);
    assert_int_equal(r.seq, 300);
    assert_string_equal(r.epoch, "e2");
    /* {"seq": 9, "epoch": 17, "events": [_ ]} (indefinite array: the strict reader) */
    static const uint8_t indef[] = {0xa3, 0x63, 's', 'e', 'q', 0x09, 0x65, 'e', 'p', 'o', 'c',
                                    'h', 0x11, 0x66, 'e', 'v', 'e', 'n', 't', 's', 0x9f, 0xff};
    check_skim_same(indef, sizeof indef, 0);
    /* {"seq": 1, "events": [tag 1 (0)]} */
    static const uint8_t tagged[] = {0xa2, 0x63, 's', 'e', 'q', 0x01, 0x66, 'e', 'v',
                                     'e',  'n',  't', 's', 0x81, 0xc1, 0x00};
    check_skim_same(tagged, sizeof tagged, 0);
    /* {"seq": 1, "events": ["\xc3\x28"]}: not UTF-8 */
    static const uint8_t bad_utf8[] = {0xa2, 0x63, 's', 'e', 'q', 0x01, 0x66, 'e', 'v',
                                       'e',  'n',  't', 's', 0x81, 0x62, 0xc3, 0x28};
    check_skim_same(bad_utf8, sizeof bad_utf8, -1);
    uint8_t trailing[sizeof late_epoch + 1];
    memcpy(trailing, late_epoch, sizeof late_epoch);
    trailing[sizeof late_epoch] = 0x00;
    check_skim_same(trailing, sizeof trailing, -1);
    check_skim_same(late_epoch, sizeof late_epoch - 1, -1); /* truncated */
    static const uint8_t dup[] = {0xa2, 0x63, 's', 'e', 'q', 0x01, 0x63, 's', 'e', 'q', 0x02};
    check_skim_same(dup, sizeof dup, -1);
    static const uint8_t big_seq[] = {0xa1, 0x63, 's',  'e',  'q',  0x1b, 0x80,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    check_skim_same(big_seq, sizeof big_seq, -1);
    static const uint8_t long_count[] = {0xa2, 0x63, 's', 'e', 'q', 0x01, 0x61, 'x', 0x9a,
                                         0x00, 0x01, 0x00, 0x00}; /* 65536 entries declared */
    check_skim_same(long_count, sizeof long_count, -1);
    /* 20 nested arrays: deeper than the skim goes */
    uint8_t deep[6 + 2 + 20 + 1] = {0xa2, 0x63, 's', 'e', 'q', 0x01, 0x61, 'x'};
    memset(deep + 8, 0x81, 20);
    deep[28] = 0x00;
    check_skim_same(deep, sizeof deep, 0);
}

static void test_event_invalid_text(void **state)
{
    (void)state;
    cbor_item_t *ev = event("download_progress", "T", 1);
    put(ev, "ecu", cbor_build_stringn("\xc3\x28", 2));
    put_uint(ev, "pct", 1);
    /* libcbor rejects text that is not UTF-8 while loading: the CBOR is invalid. */
    expect_event_error(ev, OTA_E_BAD_CBOR, "report: invalid CBOR (text not valid UTF-8");

    ev = event("download_progress", "T", 1);
    put(ev, "ecu", cbor_build_stringn("\xed\xa0\x80", 3)); /* surrogate */
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_CBOR, "not valid UTF-8");

    /* Control characters are valid UTF-8 but not allowed: the field is named. */
    ev = event("download_progress", "T", 1);
    put(ev, "ecu", cbor_build_stringn("B\x1bMS", 4));
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ecu: invalid UTF-8 or control");

    ev = event("upgrade_progress", "T", 1);
    put_str(ev, "ecu", "BMS");
    put_uint(ev, "pct", 1);
    put_str(ev, "step", "line\nbreak");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].step: invalid UTF-8 or control");

    ev = event("upgrade_progress", "T", 1);
    put_str(ev, "ecu", "BMS");
    put_uint(ev, "pct", 1);
    put(ev, "step", cbor_build_stringn("a\0b", 3));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].step: invalid UTF-8");

    /* Indefinite-length text is refused even when its chunks are fine. */
    cbor_item_t *indef = cbor_new_indefinite_string();
    assert_true(cbor_string_add_chunk(indef, cbor_move(cbor_build_string("BM"))));
    assert_true(cbor_string_add_chunk(indef, cbor_move(cbor_build_string("S"))));
    ev = event("eeprom_clear", "T", 1);
    put(ev, "ecu", indef);
    put_str(ev, "result", "ok");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ecu: expected definite-length text");

    ev = event("eeprom_clear", "T", 1);
    put(ev, "ecu", cbor_build_bytestring((cbor_data) "BMS", 3));
    put_str(ev, "result", "ok");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ecu: expected definite-length text");
}

static void test_event_text_limits(void **state)
{
    (void)state;
    char text[OTA_TEXT_MAX + 2];
    memset(text, 'x', sizeof text - 1);
    text[OTA_TEXT_MAX + 1] = '\0';
    cbor_item_t *ev = event("upgrade_status", "T", 1);
    put_str(ev, "status", "failed");
    put_str(ev, "trigger", "normal");
    put_str(ev, "error", text);
    expect_event_error(ev, OTA_E_TOO_LARGE, "events[0].error: longer than 256 bytes");

    text[OTA_TEXT_MAX] = '\0';
    ev = event("upgrade_status", "T", 1);
    put_str(ev, "status", "failed");
    put_str(ev, "trigger", "normal");
    put_str(ev, "error", text);
    ota_report r;
    expect_ok(report1(ev), &r);
    assert_int_equal(strlen(r.events[0].error), OTA_TEXT_MAX);
    ota_report_free(&r);

    char id[OTA_ID_MAX + 2];
    memset(id, 'e', sizeof id - 1);
    id[OTA_ID_MAX + 1] = '\0';
    ev = event("eeprom_clear", "T", 1);
    put_str(ev, "ecu", "BMS");
    put_str(ev, "result", id);
    expect_event_error(ev, OTA_E_TOO_LARGE, "events[0].result: longer than 64 bytes");
}

static void test_event_pct(void **state)
{
    (void)state;
    ota_report r;
    ota_error e;
    cbor_item_t *ev = event("download_progress", "T", 1);
    put_uint(ev, "pct", 101);
    int rc = decode_item(report1(ev), NULL, &r, &e);
    check_failed(rc, &r, &e, OTA_E_BAD_REQUEST, "");
    assert_string_equal(e.msg, "events[0].pct: expected unsigned integer 0..100");

    ev = event("download_progress", "T", 1);
    put(ev, "pct", cbor_build_float4(50.5f));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].pct: expected unsigned integer 0..100");

    ev = event("upgrade_progress", "T", 1);
    put_str(ev, "ecu", "BMS");
    put(ev, "pct", cbor_build_negint8(4));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].pct: expected unsigned integer");

    ev = event("upgrade_progress", "T", 1);
    put_str(ev, "ecu", "BMS");
    put(ev, "pct", cbor_build_bool(true));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].pct: expected unsigned integer");

    ev = event("upgrade_progress", "T", 1);
    put_str(ev, "ecu", "BMS");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].pct: missing");

    ev = event("download_progress", "T", 1);
    put_uint(ev, "pct", 1);
    put(ev, "bytes", cbor_build_negint8(0));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].bytes: expected unsigned integer");
}

static void test_event_required_fields(void **state)
{
    (void)state;
    cbor_item_t *ev = event("upgrade_progress", "T", 1);
    put_uint(ev, "pct", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ecu: missing");

    ev = event("upgrade_status", "T", 1);
    put_str(ev, "trigger", "normal");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].status: missing");

    ev = event("upgrade_status", "T", 1);
    put_str(ev, "status", "idle");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].trigger: missing");

    ev = event("command", "T", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].cmd: missing");

    ev = event("eeprom_clear", "T", 1);
    put_str(ev, "ecu", "BMS");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].result: missing");

    ev = event("eeprom_clear", "T", 1);
    put_str(ev, "result", "ok");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].ecu: missing");
}

static void test_event_words(void **state)
{
    (void)state;
    cbor_item_t *ev = event("upgrade_status", "T", 1);
    put_str(ev, "status", "exploded");
    put_str(ev, "trigger", "normal");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].status: unknown status \"exploded\"");

    ev = event("upgrade_status", "T", 1);
    put_str(ev, "status", "failed");
    put_str(ev, "trigger", "whenever");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].trigger: unknown trigger \"whenever\"");

    ev = event("command", "T", 1);
    put_str(ev, "cmd", "later");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].cmd: unknown command \"later\"");

    ev = event("command", "T", 1);
    put_str(ev, "cmd", "schedule");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].at: missing");

    ev = event("command", "T", 1);
    put_str(ev, "cmd", "cancel_schedule");
    put(ev, "at", cbor_build_string("tomorrow"));
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].at: expected unsigned integer");

    static const char *const statuses[] = {"idle",      "downloading", "downloaded",
                                           "waiting",   "upgrading",   "rolling_back",
                                           "succeeded", "failed",      "canceled"};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        assert_true(ota_status_valid(statuses[i]));
    assert_false(ota_status_valid("cancelled"));
    assert_false(ota_status_valid("Idle"));
    assert_false(ota_status_valid(""));
    assert_false(ota_status_valid(NULL));
    static const char *const triggers[] = {"normal", "forced", "factory", "spot_check",
                                           "diagnostic"};
    for (size_t i = 0; i < sizeof triggers / sizeof triggers[0]; i++)
        assert_true(ota_trigger_valid(triggers[i]));
    assert_false(ota_trigger_valid("spot-check"));
    assert_false(ota_trigger_valid(NULL));
}

static void test_event_type_names(void **state)
{
    (void)state;
    assert_string_equal(ota_event_type_name(OTA_EV_DOWNLOAD_PROGRESS), "download_progress");
    assert_string_equal(ota_event_type_name(OTA_EV_UPGRADE_PROGRESS), "upgrade_progress");
    assert_string_equal(ota_event_type_name(OTA_EV_UPGRADE_STATUS), "upgrade_status");
    assert_string_equal(ota_event_type_name(OTA_EV_COMMAND), "command");
    assert_string_equal(ota_event_type_name(OTA_EV_EEPROM_CLEAR), "eeprom_clear");
    assert_string_equal(ota_event_type_name(OTA_EV_CONSENT), "consent");
    assert_null(ota_event_type_name((ota_event_type)0));
    assert_null(ota_event_type_name((ota_event_type)(OTA_EV_TYPE_COUNT + 1)));
}

/* consent: answer a word, until required when postponed, error (the reason) free text. */
static void test_event_consent(void **state)
{
    (void)state;
    ota_report r;
    cbor_item_t *ev = event("consent", "T-9", 7);
    put_str(ev, "answer", "postponed");
    put_uint(ev, "until", 1800000000000ull);
    put_str(ev, "error", "driving");
    expect_ok(report1(ev), &r);
    assert_int_equal(r.events[0].type, OTA_EV_CONSENT);
    assert_string_equal(r.events[0].task, "T-9");
    assert_string_equal(r.events[0].answer, "postponed");
    assert_int_equal(r.events[0].until, 1800000000000ll);
    assert_string_equal(r.events[0].error, "driving");
    ota_report_free(&r);

    ev = event("consent", "T", 1);
    put_str(ev, "answer", "declined");
    expect_ok(report1(ev), &r);
    assert_string_equal(r.events[0].answer, "declined");
    assert_int_equal(r.events[0].until, -1);
    assert_null(r.events[0].error);
    ota_report_free(&r);

    ev = event("consent", "T", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].answer: missing");
    ev = event("consent", "T", 1);
    put_str(ev, "answer", "maybe");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].answer: unknown answer \"maybe\"");
    ev = event("consent", "T", 1);
    put_str(ev, "answer", "postponed");
    expect_event_error(ev, OTA_E_BAD_REQUEST,
                       "events[0].until: missing (required when answer is postponed)");
    ev = event("consent", "T", 1);
    put_str(ev, "answer", "postponed");
    put_str(ev, "until", "soon");
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].until");
    ev = event("consent", "T", 1);
    put_uint(ev, "answer", 1);
    expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].answer");
}

/* upgrade_status's conditions: known words, comma-separated, once each. */
static void test_event_conditions(void **state)
{
    (void)state;
    static const char *const good[] = {"battery", "battery,parked",
                                       "not_charging,ignition_off,parked,battery"};
    static const char *const bad[] = {"",        "fuel",          "battery,",
                                      ",parked", "parked,parked", "battery,,parked",
                                      "Battery", "parked "};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ota_report r;
        cbor_item_t *ev = event("upgrade_status", "T", 1);
        put_str(ev, "status", "waiting");
        put_str(ev, "trigger", "normal");
        put_str(ev, "conditions", good[i]);
        expect_ok(report1(ev), &r);
        assert_string_equal(r.events[0].conditions, good[i]);
        ota_report_free(&r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cbor_item_t *ev = event("upgrade_status", "T", 1);
        put_str(ev, "status", "waiting");
        put_str(ev, "trigger", "normal");
        put_str(ev, "conditions", bad[i]);
        expect_event_error(ev, OTA_E_BAD_REQUEST, "events[0].conditions");
    }
}

/* ---- shared helpers ---- */

static void test_vin_valid(void **state)
{
    (void)state;
    assert_true(ota_vin_valid("1HGCM82633A004352"));
    assert_true(ota_vin_valid("WVWZZZ1JZ3W386752"));
    assert_false(ota_vin_valid("1HGCM82633A00435"));   /* 16 */
    assert_false(ota_vin_valid("1HGCM82633A0043521")); /* 18 */
    assert_false(ota_vin_valid("1HGCM82633I004352"));
    assert_false(ota_vin_valid("1HGCM82633O004352"));
    assert_false(ota_vin_valid("1HGCM82633Q004352"));
    assert_false(ota_vin_valid("1hgcm82633a004352"));
    assert_false(ota_vin_valid("1HGCM82633A00435+"));
    assert_false(ota_vin_valid(""));
    assert_false(ota_vin_valid(NULL));
}

static void test_text_valid(void **state)
{
    (void)state;
    assert_true(ota_text_valid("", 0));
    assert_true(ota_text_valid(NULL, 0));
    assert_false(ota_text_valid(NULL, 1));
    assert_true(ota_text_valid("plain ASCII ~", 13));
    assert_true(ota_text_valid("\xc3\xa9", 2));          /* U+00E9 */
    assert_true(ota_text_valid("\xe2\x82\xac", 3));      /* U+20AC */
    assert_true(ota_text_valid("\xef\xbf\xbf", 3));      /* U+FFFF */
    assert_true(ota_text_valid("\xf0\x9f\x9a\x97", 4));  /* U+1F697 */
    assert_true(ota_text_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_true(ota_text_valid("\x7f", 1));              /* DEL is not a C0 control */
    assert_false(ota_text_valid("a\0b", 3));             /* NUL */
    assert_false(ota_text_valid("\t", 1));               /* C0 */
    assert_false(ota_text_valid("\x1f", 1));             /* C0 */
    assert_false(ota_text_valid("\x80", 1));             /* lone continuation */
    assert_false(ota_text_valid("\xc3", 1));             /* truncated */
    assert_false(ota_text_valid("\xe2\x82", 2));         /* truncated */
    assert_false(ota_text_valid("\xc3\xa9", 1));         /* n cuts the sequence */
    assert_false(ota_text_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(ota_text_valid("\xc1\xbf", 2));         /* overlong */
    assert_false(ota_text_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(ota_text_valid("\xf0\x80\x80\xaf", 4)); /* overlong */
    assert_false(ota_text_valid("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    assert_false(ota_text_valid("\xed\xbf\xbf", 3));     /* surrogate U+DFFF */
    assert_true(ota_text_valid("\xed\x9f\xbf", 3));      /* U+D7FF */
    assert_false(ota_text_valid("\xf4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(ota_text_valid("\xf5\x80\x80\x80", 4)); /* beyond */
    assert_false(ota_text_valid("\xff", 1));
    assert_false(ota_text_valid("\xe2\x28\xa1", 3));     /* bad continuation */
    assert_false(ota_text_valid("\xf0\x9f\x9a\x28", 4)); /* bad last continuation */
}

static void test_err_names_and_set(void **state)
{
    (void)state;
    assert_string_equal(ota_err_name(OTA_OK), "OK");
    assert_string_equal(ota_err_name(OTA_E_BAD_CBOR), "E_BAD_CBOR");
    assert_string_equal(ota_err_name(OTA_E_BAD_REQUEST), "E_BAD_REQUEST");
    assert_string_equal(ota_err_name(OTA_E_TOO_LARGE), "E_TOO_LARGE");
    assert_string_equal(ota_err_name(OTA_E_UNAUTHORIZED), "E_UNAUTHORIZED");
    assert_string_equal(ota_err_name(OTA_E_RATE_LIMITED), "E_RATE_LIMITED");
    assert_string_equal(ota_err_name(OTA_E_INTERNAL), "E_INTERNAL");

    ota_error e;
    assert_int_equal(ota_error_set(&e, OTA_E_RATE_LIMITED, "slow down %d", 5), -1);
    assert_int_equal(e.code, OTA_E_RATE_LIMITED);
    assert_string_equal(e.msg, "slow down 5");
    assert_int_equal(ota_error_set(NULL, OTA_E_INTERNAL, "x"), -1);

    /* A truncated message never ends inside a multi-byte character. */
    char long_text[400];
    size_t n = 0;
    long_text[n++] = 'a';
    while (n + 2 < sizeof long_text) {
        long_text[n++] = '\xc3';
        long_text[n++] = '\xa9';
    }
    long_text[n] = '\0';
    ota_error_set(&e, OTA_E_BAD_REQUEST, "%s", long_text);
    assert_true(strlen(e.msg) < OTA_ERRMSG_MAX);
    assert_true(strlen(e.msg) >= OTA_ERRMSG_MAX - 4);
    assert_true(ota_text_valid(e.msg, strlen(e.msg)));
    ota_error_set(&e, OTA_E_BAD_REQUEST, "b%s", long_text);
    assert_true(ota_text_valid(e.msg, strlen(e.msg)));
}

/* ota_errf.h: the one formatter every layer's error texts go through. */
static void test_errf(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(ota_errf(buf, sizeof buf, "n=%d", 42), -1);
    assert_string_equal(buf, "n=42");
    assert_int_equal(ota_errf_append(buf, sizeof buf, "/%s", "x"), -1);
    assert_string_equal(buf, "n=42/x");
    ota_errf_append(buf, sizeof buf, "%s", "yz"); /* cut at the capacity */
    assert_string_equal(buf, "n=42/xy");
    ota_errf_append(buf, sizeof buf, "more"); /* a full buffer stays as it is */
    assert_string_equal(buf, "n=42/xy");
    ota_errf(buf, sizeof buf, "abcdef\xc3\xa9"); /* "é" would end past byte 7: left out */
    assert_string_equal(buf, "abcdef");
    ota_errf(buf, sizeof buf, "ab");
    ota_errf_append(buf, sizeof buf, "cde\xe2\x82\xac"); /* "€" would end past byte 7 */
    assert_string_equal(buf, "abcde");
    assert_int_equal(ota_errf(NULL, 0, "x"), -1);
    assert_int_equal(ota_errf_append(buf, 0, "x"), -1);
    assert_string_equal(buf, "abcde");
}

/* ---- cbor_util helpers not exercised by the report decoder ---- */

static cbor_item_t *load_item(cbor_item_t *item)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    ota_error e;
    cbor_item_t *loaded = ota_cbor_load(buf, len, "msg", &e);
    free(buf);
    assert_non_null(loaded);
    return loaded;
}

static void test_cbor_util_helpers(void **state)
{
    (void)state;
    cbor_item_t *m = new_map();
    put(m, "flag", cbor_build_bool(false));
    put(m, "blob", cbor_build_bytestring((cbor_data) "\x01\x02\x03", 3));
    cbor_item_t *inner = new_map();
    put_uint(inner, "n", 3);
    put(m, "inner", inner);
    put_uint(m, "num", 7);
    put_uint(m, "ignored", 1);
    cbor_item_t *root = load_item(m);
    ota_error e;
    static const char *const keys[] = {"flag", "blob", "inner", "num", "nope"};
    const cbor_item_t *v[5];
    assert_int_equal(ota_cbor_map_fields(root, "", "", keys, 5, v, &e), 0);
    assert_non_null(v[0]);
    assert_non_null(v[3]);
    assert_null(v[4]);
    assert_ptr_equal(ota_cbor_map_find(root, "num"), v[3]);
    assert_null(ota_cbor_map_find(root, "nu"));
    assert_null(ota_cbor_map_find(root, "numb"));

    bool flag = true;
    assert_int_equal(ota_cbor_get_bool(v[0], "", "flag", OTA_CBOR_REQUIRED, &flag, &e), 1);
    assert_false(flag);
    assert_int_equal(ota_cbor_get_bool(v[4], "", "nope", OTA_CBOR_OPTIONAL, &flag, &e), 0);
    assert_int_equal(ota_cbor_get_bool(v[4], "", "nope", OTA_CBOR_REQUIRED, &flag, &e), -1);
    assert_string_equal(e.msg, "nope: missing");
    assert_int_equal(ota_cbor_get_bool(v[3], "", "num", OTA_CBOR_REQUIRED, &flag, &e), -1);
    assert_string_equal(e.msg, "num: expected true or false");

    const uint8_t *p;
    size_t n;
    assert_int_equal(ota_cbor_get_bytes(v[1], "", "blob", OTA_CBOR_REQUIRED, 1, 8, &p, &n, &e), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "\x01\x02\x03", 3);
    assert_int_equal(ota_cbor_get_bytes(v[1], "", "blob", OTA_CBOR_REQUIRED, 0, 2, &p, &n, &e), -1);
    assert_int_equal(e.code, OTA_E_TOO_LARGE);
    assert_int_equal(ota_cbor_get_bytes(v[1], "", "blob", OTA_CBOR_REQUIRED, 4, 8, &p, &n, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_REQUEST);
    assert_int_equal(ota_cbor_get_bytes(v[0], "", "flag", OTA_CBOR_REQUIRED, 0, 2, &p, &n, &e), -1);
    assert_string_equal(e.msg, "flag: expected definite-length bytes");

    static const char *const inner_keys[] = {"n"};
    const cbor_item_t *nv;
    assert_int_equal(ota_cbor_map_fields(v[2], "", "inner", inner_keys, 1, &nv, &e), 0);
    uint64_t u;
    assert_int_equal(ota_cbor_get_uint(nv, "inner", "n", OTA_CBOR_REQUIRED, 5, 9, &u, &e), -1);
    assert_string_equal(e.msg, "inner.n: expected unsigned integer 5..9");
    assert_int_equal(ota_cbor_get_uint(nv, "inner", "n", OTA_CBOR_REQUIRED, 0, 9, &u, &e), 1);
    assert_int_equal(u, 3);
    assert_int_equal(ota_cbor_map_fields(v[3], "", "num", inner_keys, 1, &nv, &e), -1);
    assert_string_equal(e.msg, "num: expected map");

    const cbor_item_t *arr;
    assert_int_equal(ota_cbor_get_array(v[3], "x", "num", OTA_CBOR_REQUIRED, 0, 9, &arr, &e), -1);
    assert_string_equal(e.msg, "x.num: expected array");

    char path[32];
    ota_cbor_index_path(path, sizeof path, "reported", "ecus", 12);
    assert_string_equal(path, "reported.ecus[12]");
    ota_cbor_index_path(path, sizeof path, "", "events", 3);
    assert_string_equal(path, "events[3]");
    cbor_decref(&root);
}

/* ---- encoders ---- */

static const cbor_item_t *map_get(const cbor_item_t *map, const char *key)
{
    return ota_cbor_map_find(map, key);
}

static void check_text(const cbor_item_t *item, const char *want)
{
    assert_non_null(item);
    assert_true(cbor_isa_string(item));
    assert_int_equal(cbor_string_length(item), strlen(want));
    assert_memory_equal(cbor_string_handle(item), want, strlen(want));
}

static cbor_item_t *load_reply(const uint8_t *buf, size_t len)
{
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(buf, len, &res);
    assert_int_equal(res.error.code, CBOR_ERR_NONE);
    assert_int_equal(res.read, len);
    assert_true(cbor_isa_map(item));
    return item;
}

static void test_encode_error(void **state)
{
    (void)state;
    ota_error e;
    ota_error_set(&e, OTA_E_BAD_REQUEST, "events[3].pct: expected unsigned integer 0..100");
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_error(&e, 42, &len);
    assert_non_null(buf);
    cbor_item_t *m = load_reply(buf, len);
    assert_int_equal(cbor_map_size(m), 3);
    check_text(map_get(m, "err"), "E_BAD_REQUEST");
    check_text(map_get(m, "msg"), "events[3].pct: expected unsigned integer 0..100");
    const cbor_item_t *seq = map_get(m, "seq");
    assert_non_null(seq);
    assert_true(cbor_isa_uint(seq));
    assert_int_equal(cbor_get_int(seq), 42);
    cbor_decref(&m);
    free(buf);

    /* No seq; the longest message; a large seq. */
    memset(e.msg, 'm', sizeof e.msg - 1);
    e.msg[sizeof e.msg - 1] = '\0';
    e.code = OTA_E_TOO_LARGE;
    buf = ota_codec_encode_error(&e, -1, &len);
    assert_non_null(buf);
    m = load_reply(buf, len);
    assert_int_equal(cbor_map_size(m), 2);
    check_text(map_get(m, "err"), "E_TOO_LARGE");
    check_text(map_get(m, "msg"), e.msg);
    assert_null(map_get(m, "seq"));
    cbor_decref(&m);
    free(buf);

    buf = ota_codec_encode_error(&e, INT64_MAX, &len);
    assert_non_null(buf);
    m = load_reply(buf, len);
    assert_true(cbor_get_int(map_get(m, "seq")) == (uint64_t)INT64_MAX);
    cbor_decref(&m);
    free(buf);
}

static ota_event status_event(void)
{
    return (ota_event){.type = OTA_EV_UPGRADE_STATUS,
                       .index = 3,
                       .task = "T-9",
                       .ts = 1700000000123,
                       .pct = -1,
                       .bytes = -1,
                       .status = "failed",
                       .error = "rollback_failed: \"bank\" B",
                       .trigger = "spot_check",
                       .fw = "3.0.1",
                       .at = -1};
}

static void check_json_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want);
}

static void check_json_num(const cJSON *o, const char *key, double want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == want);
}

static void test_consent_event_json(void **state)
{
    (void)state;
    ota_event ev = {.type = OTA_EV_CONSENT,
                    .index = 1,
                    .task = "T-9",
                    .ts = 5,
                    .pct = -1,
                    .bytes = -1,
                    .at = -1,
                    .answer = "postponed",
                    .until = 9007199254740993,
                    .error = "driving"};
    char *json = ota_codec_status_event_json("LSVTA000000000001", 7, &ev, 6, NULL);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"until\":9007199254740993")); /* exact beyond 2^53 */
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    check_json_str(o, "answer", "postponed");
    check_json_str(o, "error", "driving");
    check_json_str(o, "task", "T-9");
    check_json_num(o, "seq", 7);
    check_json_num(o, "received_at", 6);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "status"));
    cJSON_Delete(o);
    free(json);
    ev.answer = "declined";
    ev.until = -1;
    ev.error = NULL;
    json = ota_codec_status_event_json("LSVTA000000000001", 7, &ev, 6, NULL);
    assert_non_null(json);
    assert_null(strstr(json, "until"));
    assert_null(strstr(json, "error"));
    free(json);
}

/* The event's id (set by the publisher) is the first member, escaped like any string; an
 * event without one has no "id". */
static void test_event_json_id_first(void **state)
{
    (void)state;
    ota_event ev = status_event();
    ev.id = "LSVTA000000000001:7:0:e\"1~2";
    char *json = ota_codec_status_event_json("LSVTA000000000001", 7, &ev, 6, NULL);
    assert_non_null(json);
    const char *head = "{\"id\":\"LSVTA000000000001:7:0:e\\\"1~2\",\"vin\":";
    assert_int_equal(strncmp(json, head, strlen(head)), 0);
    cJSON *o = cJSON_Parse(json);
    check_json_str(o, "id", "LSVTA000000000001:7:0:e\"1~2");
    cJSON_Delete(o);
    free(json);
    ev.id = NULL;
    json = ota_codec_status_event_json("LSVTA000000000001", 7, &ev, 6, NULL);
    assert_int_equal(strncmp(json, "{\"vin\":", 7), 0);
    free(json);
}

static void test_status_event_json(void **state)
{
    (void)state;
    ota_event ev = status_event();
    size_t len = 0;
    char *json = ota_codec_status_event_json("1HGCM82633A004352", 77, &ev, 1700000000999, &len);
    assert_non_null(json);
    assert_int_equal(len, strlen(json));
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 10);
    check_json_str(o, "vin", "1HGCM82633A004352");
    check_json_num(o, "seq", 77);
    check_json_num(o, "index", 3);
    check_json_str(o, "task", "T-9");
    check_json_num(o, "ts", 1700000000123.0);
    check_json_str(o, "status", "failed");
    check_json_str(o, "error", "rollback_failed: \"bank\" B");
    check_json_str(o, "trigger", "spot_check");
    check_json_str(o, "fw", "3.0.1");
    check_json_num(o, "received_at", 1700000000999.0);
    cJSON_Delete(o);
    free(json);

    /* error and fw omitted when absent; integers printed exactly beyond 2^53. */
    ev.error = NULL;
    ev.fw = NULL;
    json = ota_codec_status_event_json("1HGCM82633A004352", UINT64_MAX, &ev, 5, &len);
    assert_non_null(json);
    o = cJSON_Parse(json);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 8);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "error"));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "fw"));
    check_json_str(o, "status", "failed");
    check_json_num(o, "received_at", 5);
    assert_non_null(strstr(json, "\"seq\":18446744073709551615"));
    cJSON_Delete(o);
    free(json);

    /* escapes: every control character, quotes, backslashes; UTF-8 as it is */
    ev.error = "a\nb\x01" "c\\d\"e\tf\x1f g\xc3\xa9";
    json = ota_codec_status_event_json("1HGCM82633A004352", 1, &ev, 5, &len);
    assert_non_null(json);
    assert_int_equal(len, strlen(json));
    o = cJSON_Parse(json);
    assert_non_null(o);
    check_json_str(o, "error", ev.error);
    assert_non_null(strstr(json, "\\u0001"));
    cJSON_Delete(o);
    free(json);
}

/* ---- decode speed (printed, not asserted) ---- */

/* A typical report of n (1..4) events of about 100 bytes each, as vehicles send them. */
static uint8_t *typical_report(size_t n, size_t *len)
{
    cbor_item_t *evs[4];
    evs[0] = event("upgrade_status", "fleet-task-0001", 1700000000001);
    put_str(evs[0], "status", "failed");
    put_str(evs[0], "trigger", "normal");
    put_str(evs[0], "error", "upgrade_failed: CRC mismatch");
    put_str(evs[0], "fw", "2.1.0");
    evs[1] = event("download_progress", "fleet-task-0001", 1700000000002);
    put_str(evs[1], "ecu", "ADCU");
    put_uint(evs[1], "pct", 40);
    put_uint(evs[1], "bytes", 41943040);
    evs[2] = event("upgrade_progress", "fleet-task-0001", 1700000000003);
    put_str(evs[2], "ecu", "VCU");
    put_uint(evs[2], "pct", 75);
    put_str(evs[2], "step", "flashing bank B");
    evs[3] = event("command", "fleet-task-0001", 1700000000004);
    put_str(evs[3], "cmd", "schedule");
    put_uint(evs[3], "at", 1700003600000);
    for (size_t i = n; i < 4; i++)
        cbor_decref(&evs[i]);
    return test_cbor_serialize(report_n(1234567, evs, n), len);
}

/* Best-of-rounds nanoseconds per ota_codec_decode_report of buf. */
static double decode_ns(const uint8_t *buf, size_t len)
{
    enum { ROUNDS = 7, ITERS = 2000 };
    double best = 1e18;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t t0 = test_now_ns();
        for (int i = 0; i < ITERS; i++) {
            ota_report r;
            ota_error e;
            if (ota_codec_decode_report(buf, len, NULL, &r, &e) != 0)
                fail_msg("decode failed: %s", e.msg);
            ota_report_free(&r);
        }
        double ns = (double)(test_now_ns() - t0) / ITERS;
        if (ns < best)
            best = ns;
    }
    return best;
}

static void test_decode_speed(void **state)
{
    (void)state;
    for (size_t n = 2; n <= 4; n += 2) {
        size_t len;
        uint8_t *buf = typical_report(n, &len);
        print_message("decode_report: %zu events, %zu bytes: %.0f ns per decode (best of 7)\n", n,
                      len, decode_ns(buf, len));
        free(buf);
    }
}

/* ---- upload chunks ($CONTROL/ota/v1/file) ---- */

#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static cbor_item_t *chunk_item(const char *sha, uint64_t offset, uint64_t total, size_t len)
{
    cbor_item_t *m = new_map();
    if (sha)
        put_str(m, "sha256", sha);
    put(m, "offset", cbor_build_uint64(offset));
    put(m, "total", cbor_build_uint64(total));
    uint8_t *data = calloc(1, len ? len : 1);
    assert_non_null(data);
    put(m, "data", cbor_build_bytestring(data, len));
    free(data);
    return m;
}

static int decode_chunk_item(cbor_item_t *item, ota_upload_chunk *c, ota_error *e)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    int rc = ota_codec_decode_chunk(buf, len, c, e);
    free(buf);
    return rc;
}

static void expect_chunk_error(cbor_item_t *item, ota_err_code code, const char *needle)
{
    ota_upload_chunk c;
    ota_error e = {0};
    assert_int_equal(decode_chunk_item(item, &c, &e), -1);
    if (e.code != code || !strstr(e.msg, needle))
        fail_msg("got %s \"%s\", expected %s containing \"%s\"", ota_err_name(e.code), e.msg,
                 ota_err_name(code), needle);
}

static void test_upload_chunk(void **state)
{
    (void)state;
    ota_upload_chunk c;
    ota_error e;
    /* the chunk's data points into the payload: keep the payload while checking */
    size_t len;
    uint8_t *buf = test_cbor_serialize(chunk_item(SHA_A, 100, 1000, 300), &len);
    assert_int_equal(ota_codec_decode_chunk(buf, len, &c, &e), 0);
    assert_string_equal(c.sha256, SHA_A);
    assert_true(c.offset == 100 && c.total == 1000 && c.len == 300);
    assert_true(c.data > buf && c.data + c.len <= buf + len);
    free(buf);

    assert_int_equal(decode_chunk_item(chunk_item(SHA_A, 1000, 1000, 0), &c, &e), 0);
    expect_chunk_error(chunk_item(NULL, 0, 10, 1), OTA_E_BAD_REQUEST, "sha256: missing");
    expect_chunk_error(
        chunk_item("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", 0, 10, 1),
        OTA_E_BAD_REQUEST, "sha256: expected 64 lowercase hex");
    expect_chunk_error(chunk_item("abc", 0, 10, 1), OTA_E_BAD_REQUEST, "sha256");
    expect_chunk_error(chunk_item(SHA_A, 5, 10, 6), OTA_E_BAD_REQUEST, "past total");
    expect_chunk_error(chunk_item(SHA_A, 0, 0, 0), OTA_E_BAD_REQUEST, "total");
    expect_chunk_error(chunk_item(SHA_A, 0, 4u << 20, (1u << 20) + 1), OTA_E_TOO_LARGE, "");

    cbor_item_t *m = new_map();
    put_str(m, "sha256", SHA_A);
    put(m, "offset", cbor_build_uint8(0));
    put(m, "total", cbor_build_uint8(4));
    put_str(m, "data", "text, not bytes");
    expect_chunk_error(m, OTA_E_BAD_REQUEST, "data");

    const uint8_t junk[] = {0xa4, 0x66};
    assert_int_equal(ota_codec_decode_chunk(junk, sizeof junk, &c, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_all_types),
        cmocka_unit_test(test_event_consent),
        cmocka_unit_test(test_consent_event_json),
        cmocka_unit_test(test_event_conditions),
        cmocka_unit_test(test_report_optional_absent),
        cmocka_unit_test(test_report_unknown_keys_ignored),
        cmocka_unit_test(test_report_indefinite_containers),
        cmocka_unit_test(test_report_max_events_accepted),
        cmocka_unit_test(test_report_truncated),
        cmocka_unit_test(test_report_trailing_bytes),
        cmocka_unit_test(test_report_malformed_bytes),
        cmocka_unit_test(test_report_huge_declared_sizes),
        cmocka_unit_test(test_report_too_deep),
        cmocka_unit_test(test_report_payload_over_max),
        cmocka_unit_test(test_report_top_level_not_map),
        cmocka_unit_test(test_report_non_text_keys),
        cmocka_unit_test(test_report_seq),
        cmocka_unit_test(test_failed_report_keeps_valid_seq),
        cmocka_unit_test(test_report_events_shape),
        cmocka_unit_test(test_report_too_many_events),
        cmocka_unit_test(test_report_duplicate_key),
        cmocka_unit_test(test_report_error_precedence),
        cmocka_unit_test(test_report_unknown_values_checked),
        cmocka_unit_test(test_report_indefinite_events_limits),
        cmocka_unit_test(test_report_declared_sizes_precedence),
        cmocka_unit_test(test_report_nesting_limit),
        cmocka_unit_test(test_cbor_reader_walk),
        cmocka_unit_test(test_cbor_reader_map_scan),
        cmocka_unit_test(test_event_unknown_type),
        cmocka_unit_test(test_event_task),
        cmocka_unit_test(test_event_ts),
        cmocka_unit_test(test_event_invalid_text),
        cmocka_unit_test(test_integral_floats),
        cmocka_unit_test(test_report_epoch),
        cmocka_unit_test(test_report_envelope_skim),
        cmocka_unit_test(test_event_text_limits),
        cmocka_unit_test(test_event_pct),
        cmocka_unit_test(test_event_required_fields),
        cmocka_unit_test(test_event_words),
        cmocka_unit_test(test_event_type_names),
        cmocka_unit_test(test_vin_valid),
        cmocka_unit_test(test_text_valid),
        cmocka_unit_test(test_err_names_and_set),
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_cbor_util_helpers),
        cmocka_unit_test(test_encode_error),
        cmocka_unit_test(test_status_event_json),
        cmocka_unit_test(test_event_json_id_first),
        cmocka_unit_test(test_upload_chunk),
        cmocka_unit_test(test_decode_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
