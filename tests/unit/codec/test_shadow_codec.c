/*
 * test_shadow_codec.c — cmocka tests of the device shadow's codec (codec/shadow_msg.c):
 * shadow/update and shadow/get decoding (valid messages, unknown keys, indefinite-length
 * containers, and every class of rejection with the field named in the message), and the
 * encoders of shadow/accepted, shadow/state, shadow/delta and the generic cJSON -> CBOR
 * encoder, whose output is decoded again with libcbor and compared field by field.
 *
 * Inputs are built with libcbor's builders (helpers below) and serialized, so each test
 * states the message in the terms of SPEC §3; malformed inputs are written as bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cbor.h>
#include <cjson/cJSON.h>

#include "cbor_util.h"
#include "ota_codec.h"
#include "test_util.h"

/* ---- building CBOR inputs ---- */

static cbor_item_t *new_map(void)
{
    return cbor_new_definite_map(300);
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

/* A copy of map without key (references to the other keys and values are shared). */
static cbor_item_t *without(cbor_item_t *map, const char *key)
{
    cbor_item_t *out = new_map();
    struct cbor_pair *h = cbor_map_handle(map);
    for (size_t i = 0; i < cbor_map_size(map); i++) {
        if (cbor_string_length(h[i].key) == strlen(key) &&
            memcmp(cbor_string_handle(h[i].key), key, strlen(key)) == 0)
            continue;
        assert_true(cbor_map_add(out, (struct cbor_pair){.key = h[i].key, .value = h[i].value}));
    }
    cbor_decref(&map);
    return out;
}

/* Replaces (or adds) key's value in map; takes value. */
static cbor_item_t *with(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    map = without(map, key);
    put(map, key, value);
    return map;
}

static cbor_item_t *valid_ecus(void)
{
    cbor_item_t *ecus = new_map();
    put_str(ecus, "VCU", "2.0.1");
    put_str(ecus, "BMS", "1.4.0");
    put_str(ecus, "ADAS", "7");
    return ecus;
}

static cbor_item_t *valid_reported(void)
{
    cbor_item_t *r = new_map();
    put_str(r, "fw", "3.2.1");
    put_str(r, "state", "idle");
    put(r, "ecus", valid_ecus());
    put_str(r, "config_word", "0xA5F0");
    put_str(r, "usage", "retail");
    return r;
}

static cbor_item_t *update_with(cbor_item_t *reported)
{
    cbor_item_t *m = new_map();
    put(m, "reported", reported);
    put_str(m, "token", "tok-1");
    return m;
}

static cbor_item_t *valid_update(void)
{
    return update_with(valid_reported());
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- decoding helpers ---- */

static int decode_update_raw(const void *buf, size_t len, ota_shadow_update *u, ota_error *e)
{
    memset(u, 0xAB, sizeof *u); /* garbage the decoder must overwrite */
    memset(e, 0, sizeof *e);
    return ota_codec_decode_shadow_update(buf, len, u, e);
}

static void check_failed(int rc, const ota_error *e, ota_err_code code, const char *needle)
{
    assert_int_equal(rc, -1);
    if (e->code != code)
        fail_msg("code %s, expected %s (msg \"%s\")", ota_err_name(e->code), ota_err_name(code),
                 e->msg);
    if (strstr(e->msg, needle) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", e->msg, needle);
}

static void expect_update_raw_error(const void *buf, size_t len, ota_err_code code,
                                    const char *needle)
{
    ota_shadow_update u;
    ota_error e;
    int rc = decode_update_raw(buf, len, &u, &e);
    check_failed(rc, &e, code, needle);
    assert_null(u.mem_);
    assert_null(u.ecus);
    assert_null(u.fw);
    assert_int_equal(u.n_ecus, 0);
}

static void expect_update_error(cbor_item_t *item, ota_err_code code, const char *needle)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    expect_update_raw_error(buf, len, code, needle);
    free(buf);
}

/* An update whose reported map is `reported` must fail so. */
static void expect_reported_error(cbor_item_t *reported, ota_err_code code, const char *needle)
{
    expect_update_error(update_with(reported), code, needle);
}

static void expect_update_ok_raw(const void *buf, size_t len, ota_shadow_update *u)
{
    ota_error e;
    if (decode_update_raw(buf, len, u, &e) != 0)
        fail_msg("decode failed: %s: %s", ota_err_name(e.code), e.msg);
}

static void expect_update_ok(cbor_item_t *item, ota_shadow_update *u)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    expect_update_ok_raw(buf, len, u);
    free(buf); /* the result must not point into the payload */
}

static int decode_get_raw(const void *buf, size_t len, ota_shadow_get *g, ota_error *e)
{
    memset(g, 0xAB, sizeof *g);
    memset(e, 0, sizeof *e);
    return ota_codec_decode_shadow_get(buf, len, g, e);
}

static void expect_get_raw_error(const void *buf, size_t len, ota_err_code code, const char *needle)
{
    ota_shadow_get g;
    ota_error e;
    check_failed(decode_get_raw(buf, len, &g, &e), &e, code, needle);
    assert_false(g.has_token);
}

static void expect_get_error(cbor_item_t *item, ota_err_code code, const char *needle)
{
    size_t len;
    uint8_t *buf = test_cbor_serialize(item, &len);
    expect_get_raw_error(buf, len, code, needle);
    free(buf);
}

/* ---- shadow/update: valid ---- */

static void test_update_full(void **state)
{
    (void)state;
    ota_shadow_update u;
    expect_update_ok(valid_update(), &u);
    assert_string_equal(u.fw, "3.2.1");
    assert_string_equal(u.state, "idle");
    assert_string_equal(u.config_word, "0xA5F0");
    assert_string_equal(u.usage, "retail");
    assert_string_equal(u.token, "tok-1");
    assert_int_equal(u.n_ecus, 3);
    /* sorted by name */
    assert_string_equal(u.ecus[0].ecu, "ADAS");
    assert_string_equal(u.ecus[0].version, "7");
    assert_string_equal(u.ecus[1].ecu, "BMS");
    assert_string_equal(u.ecus[1].version, "1.4.0");
    assert_string_equal(u.ecus[2].ecu, "VCU");
    assert_string_equal(u.ecus[2].version, "2.0.1");
    ota_shadow_update_free(&u);
    assert_null(u.mem_);
    ota_shadow_update_free(&u); /* twice is harmless */
    ota_shadow_update_free(NULL);
}

static void test_update_minimal(void **state)
{
    (void)state;
    cbor_item_t *r = new_map();
    put_str(r, "fw", "1");
    put_str(r, "state", "x");
    put(r, "ecus", new_map());
    cbor_item_t *m = new_map();
    put(m, "reported", r);
    ota_shadow_update u;
    expect_update_ok(m, &u);
    assert_string_equal(u.fw, "1");
    assert_string_equal(u.state, "x");
    assert_null(u.config_word);
    assert_null(u.usage);
    assert_null(u.token);
    assert_int_equal(u.n_ecus, 0);
    ota_shadow_update_free(&u);
}

static void test_update_unknown_keys_ignored(void **state)
{
    (void)state;
    cbor_item_t *r = valid_reported();
    put(r, "odometer", cbor_build_uint32(123456));
    put(r, "nested", cbor_new_definite_array(0));
    cbor_item_t *m = update_with(r);
    cbor_item_t *extra = new_map();
    put_str(extra, "a", "b");
    put(m, "future", extra);
    put(m, "n", cbor_build_negint8(3));
    ota_shadow_update u;
    expect_update_ok(m, &u);
    assert_string_equal(u.fw, "3.2.1");
    assert_int_equal(u.n_ecus, 3);
    ota_shadow_update_free(&u);
}

/* {_ "reported": {_ "fw": "1", "state": "s", "ecus": {_ "A": "1"}}, "token": "t"} */
static void test_update_indefinite_maps(void **state)
{
    (void)state;
    static const uint8_t buf[] = {
        0xbf, 0x68, 'r',  'e', 'p',  'o',  'r',  't',  'e', 'd',  0xbf, 0x62, 'f',  'w', 0x61,
        '1',  0x65, 's',  't', 'a',  't',  'e',  0x61, 's', 0x64, 'e',  'c',  'u',  's', 0xbf,
        0x61, 'A',  0x61, '1', 0xff, 0xff, 0x65, 't',  'o', 'k',  'e',  'n',  0x61, 't', 0xff,
    };
    ota_shadow_update u;
    expect_update_ok_raw(buf, sizeof buf, &u);
    assert_string_equal(u.fw, "1");
    assert_string_equal(u.state, "s");
    assert_int_equal(u.n_ecus, 1);
    assert_string_equal(u.ecus[0].ecu, "A");
    assert_string_equal(u.token, "t");
    ota_shadow_update_free(&u);
}

static cbor_item_t *ecus_n(size_t n)
{
    cbor_item_t *ecus = cbor_new_definite_map(n);
    for (size_t i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "ECU%03zu", n - i);
        put_str(ecus, name, "1.0");
    }
    return ecus;
}

static void test_update_word_and_ecu_limits_accepted(void **state)
{
    (void)state;
    char *w64 = repeat('w', OTA_ID_MAX);
    cbor_item_t *r = with(valid_reported(), "fw", cbor_build_string(w64));
    r = with(r, "ecus", ecus_n(OTA_SHADOW_MAX_ECUS));
    cbor_item_t *m = with(update_with(r), "token", cbor_build_string(w64));
    ota_shadow_update u;
    expect_update_ok(m, &u);
    assert_string_equal(u.fw, w64);
    assert_string_equal(u.token, w64);
    assert_int_equal(u.n_ecus, OTA_SHADOW_MAX_ECUS);
    assert_string_equal(u.ecus[0].ecu, "ECU001");
    assert_string_equal(u.ecus[OTA_SHADOW_MAX_ECUS - 1].ecu, "ECU256");
    ota_shadow_update_free(&u);
    free(w64);
}

/* ---- shadow/update: rejected ---- */

static void test_update_bad_cbor(void **state)
{
    (void)state;
    expect_update_raw_error("", 0, OTA_E_BAD_CBOR, "shadow/update: empty payload");
    static const uint8_t truncated[] = {0xa1, 0x68, 'r', 'e', 'p'};
    expect_update_raw_error(truncated, sizeof truncated, OTA_E_BAD_CBOR, "truncated");
    static const uint8_t malformed[] = {0xa1, 0x1c};
    expect_update_raw_error(malformed, sizeof malformed, OTA_E_BAD_CBOR, "shadow/update");
    static const uint8_t bad_utf8[] = {0xa1, 0x62, 0xff, 0xfe, 0x01};
    expect_update_raw_error(bad_utf8, sizeof bad_utf8, OTA_E_BAD_CBOR, "UTF-8");
    /* a valid update followed by a byte */
    size_t len;
    uint8_t *buf = test_cbor_serialize(valid_update(), &len);
    uint8_t *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0x00;
    expect_update_raw_error(more, len + 1, OTA_E_BAD_CBOR, "trailing");
    free(more);
    free(buf);
}

/* A field error found first does not hide a CBOR error after it. */
static void test_update_cbor_error_wins(void **state)
{
    (void)state;
    /* {"reported": 1, "x": <truncated text>} */
    static const uint8_t buf[] = {0xa2, 0x68, 'r',  'e',  'p', 'o',  'r', 't',
                                  'e',  'd',  0x01, 0x61, 'x', 0x65, 'a'};
    expect_update_raw_error(buf, sizeof buf, OTA_E_BAD_CBOR, "truncated");
}

static void test_update_payload_too_large(void **state)
{
    (void)state;
    char *big = repeat('x', OTA_SHADOW_MAX_PAYLOAD);
    cbor_item_t *m = valid_update();
    put_str(m, "padding", big);
    expect_update_error(m, OTA_E_TOO_LARGE, "payload of");
    free(big);
    /* just under the limit is fine */
    size_t base_len;
    free(test_cbor_serialize(valid_update(), &base_len));
    size_t pad = OTA_SHADOW_MAX_PAYLOAD - base_len - 8 - 3; /* key "padding", text head */
    big = repeat('x', pad);
    m = valid_update();
    put_str(m, "padding", big);
    size_t len;
    uint8_t *buf = test_cbor_serialize(m, &len);
    assert_int_equal(len, OTA_SHADOW_MAX_PAYLOAD);
    ota_shadow_update u;
    expect_update_ok_raw(buf, len, &u);
    ota_shadow_update_free(&u);
    free(buf);
    free(big);
}

static void test_update_shape(void **state)
{
    (void)state;
    expect_update_error(cbor_new_definite_array(0), OTA_E_BAD_REQUEST, "top level: expected map");
    expect_update_error(cbor_build_string("x"), OTA_E_BAD_REQUEST, "top level: expected map");
    expect_update_error(new_map(), OTA_E_BAD_REQUEST, "reported: missing");
    expect_update_error(without(valid_update(), "reported"), OTA_E_BAD_REQUEST,
                        "reported: missing");
    expect_reported_error(cbor_build_string("x"), OTA_E_BAD_REQUEST, "reported: expected map");
    expect_reported_error(cbor_new_definite_array(1), OTA_E_BAD_REQUEST, "reported: expected map");
    /* non-text keys at each level */
    cbor_item_t *m = valid_update();
    assert_true(cbor_map_add(m, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(1)),
                                                   .value = cbor_move(cbor_build_uint8(1))}));
    expect_update_error(m, OTA_E_BAD_REQUEST, "top level: map key 2 is not definite-length text");
    cbor_item_t *r = valid_reported();
    assert_true(cbor_map_add(r, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(1)),
                                                   .value = cbor_move(cbor_build_uint8(1))}));
    expect_reported_error(r, OTA_E_BAD_REQUEST, "reported: map key 5 is not definite-length text");
    cbor_item_t *ecus = valid_ecus();
    assert_true(cbor_map_add(ecus, (struct cbor_pair){.key = cbor_move(cbor_build_bool(true)),
                                                      .value = cbor_move(cbor_build_string("1"))}));
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus: map key 3 is not definite-length text");
}

static void test_update_required_fields(void **state)
{
    (void)state;
    expect_reported_error(without(valid_reported(), "fw"), OTA_E_BAD_REQUEST,
                          "reported.fw: missing");
    expect_reported_error(without(valid_reported(), "state"), OTA_E_BAD_REQUEST,
                          "reported.state: missing");
    expect_reported_error(without(valid_reported(), "ecus"), OTA_E_BAD_REQUEST,
                          "reported.ecus: missing");
}

/* Each word field: wrong type, empty, too long, control character. */
static void check_word_field(const char *key, bool top_level)
{
    char path[64];
    snprintf(path, sizeof path, "%s%s: ", top_level ? "" : "reported.", key);
    char *w65 = repeat('w', OTA_ID_MAX + 1);
    struct {
        cbor_item_t *value;
        ota_err_code code;
        const char *detail;
    } cases[] = {
        {cbor_build_uint8(1), OTA_E_BAD_REQUEST, "expected definite-length text"},
        {cbor_build_bytestring((const unsigned char *)"ab", 2), OTA_E_BAD_REQUEST,
         "expected definite-length text"},
        {cbor_new_null(), OTA_E_BAD_REQUEST, "expected definite-length text"},
        {cbor_build_string(""), OTA_E_BAD_REQUEST, "shorter than 1 bytes"},
        {cbor_build_string(w65), OTA_E_TOO_LARGE, "longer than 64 bytes"},
        {cbor_build_string("a\nb"), OTA_E_BAD_REQUEST, "invalid UTF-8 or control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "%s%s", path, cases[i].detail);
        cbor_item_t *m = top_level ? with(valid_update(), key, cases[i].value)
                                   : update_with(with(valid_reported(), key, cases[i].value));
        expect_update_error(m, cases[i].code, needle);
    }
    free(w65);
}

static void test_update_word_fields(void **state)
{
    (void)state;
    check_word_field("fw", false);
    check_word_field("state", false);
    check_word_field("config_word", false);
    check_word_field("usage", false);
    check_word_field("token", true);
}

static void test_update_ecus(void **state)
{
    (void)state;
    expect_reported_error(with(valid_reported(), "ecus", cbor_new_definite_array(0)),
                          OTA_E_BAD_REQUEST, "reported.ecus: expected map");
    expect_reported_error(with(valid_reported(), "ecus", cbor_build_string("BMS")),
                          OTA_E_BAD_REQUEST, "reported.ecus: expected map");
    cbor_item_t *ecus = valid_ecus();
    put(ecus, "TBOX", cbor_build_uint8(3));
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus.TBOX: expected definite-length text");
    ecus = valid_ecus();
    put_str(ecus, "TBOX", "");
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus.TBOX: shorter than 1 bytes");
    char *w65 = repeat('v', OTA_ID_MAX + 1);
    ecus = valid_ecus();
    put_str(ecus, "TBOX", w65);
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_TOO_LARGE,
                          "reported.ecus.TBOX: longer than 64 bytes");
    ecus = valid_ecus();
    put_str(ecus, w65, "1");
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_TOO_LARGE,
                          "reported.ecus: ECU name 3 longer than 64 bytes");
    free(w65);
    ecus = valid_ecus();
    put_str(ecus, "", "1");
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus: ECU name 3 is empty");
    ecus = valid_ecus();
    put_str(ecus, "B\tMS", "1");
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus: ECU name 3: invalid UTF-8 or control character");
    ecus = valid_ecus();
    put_str(ecus, "BMS", "9.9");
    expect_reported_error(with(valid_reported(), "ecus", ecus), OTA_E_BAD_REQUEST,
                          "reported.ecus.BMS: duplicate key");
    expect_reported_error(with(valid_reported(), "ecus", ecus_n(OTA_SHADOW_MAX_ECUS + 1)),
                          OTA_E_TOO_LARGE, "reported.ecus: more than 256 entries");
}

/* An indefinite-length ecus map is counted while it is read. */
static void test_update_ecus_indefinite_too_many(void **state)
{
    (void)state;
    uint8_t buf[64 + 8 * (OTA_SHADOW_MAX_ECUS + 1)];
    size_t n = 0;
    static const uint8_t head[] = {0xa1, 0x68, 'r',  'e', 'p',  'o', 'r',  't', 'e', 'd',
                                   0xa3, 0x62, 'f',  'w', 0x61, '1', 0x65, 's', 't', 'a',
                                   't',  'e',  0x61, 's', 0x64, 'e', 'c',  'u', 's', 0xbf};
    memcpy(buf, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i <= OTA_SHADOW_MAX_ECUS; i++) {
        n += (size_t)sprintf((char *)buf + n, "%c%03d%c1", 0x63, i, 0x61);
    }
    buf[n++] = 0xff;
    expect_update_raw_error(buf, n, OTA_E_TOO_LARGE, "reported.ecus: more than 256 entries");
}

static void test_update_duplicate_keys(void **state)
{
    (void)state;
    cbor_item_t *m = valid_update();
    put(m, "reported", valid_reported());
    expect_update_error(m, OTA_E_BAD_REQUEST, "reported: duplicate key");
    m = valid_update();
    put_str(m, "token", "again");
    expect_update_error(m, OTA_E_BAD_REQUEST, "token: duplicate key");
    cbor_item_t *r = valid_reported();
    put_str(r, "fw", "again");
    expect_reported_error(r, OTA_E_BAD_REQUEST, "reported.fw: duplicate key");
    r = valid_reported();
    put(r, "ecus", valid_ecus());
    expect_reported_error(r, OTA_E_BAD_REQUEST, "reported.ecus: duplicate key");
}

/* ---- shadow/get ---- */

static void test_get(void **state)
{
    (void)state;
    ota_shadow_get g;
    ota_error e;
    static const uint8_t empty_map[] = {0xa0};
    assert_int_equal(decode_get_raw(empty_map, 1, &g, &e), 0);
    assert_false(g.has_token);
    cbor_item_t *m = new_map();
    put_str(m, "token", "abc");
    put_str(m, "other", "ignored");
    size_t len;
    uint8_t *buf = test_cbor_serialize(m, &len);
    assert_int_equal(decode_get_raw(buf, len, &g, &e), 0);
    assert_true(g.has_token);
    assert_string_equal(g.token, "abc");
    free(buf);
}

static void test_get_rejected(void **state)
{
    (void)state;
    expect_get_raw_error("", 0, OTA_E_BAD_CBOR, "shadow/get: empty payload");
    static const uint8_t trailing[] = {0xa0, 0xa0};
    expect_get_raw_error(trailing, 2, OTA_E_BAD_CBOR, "trailing");
    expect_get_error(cbor_new_definite_array(0), OTA_E_BAD_REQUEST, "top level: expected map");
    cbor_item_t *m = new_map();
    put(m, "token", cbor_build_uint8(7));
    expect_get_error(m, OTA_E_BAD_REQUEST, "token: expected definite-length text");
    char *w65 = repeat('t', OTA_ID_MAX + 1);
    m = new_map();
    put_str(m, "token", w65);
    expect_get_error(m, OTA_E_TOO_LARGE, "token: longer than 64 bytes");
    free(w65);
    m = new_map();
    put_str(m, "token", "a");
    put_str(m, "token", "b");
    expect_get_error(m, OTA_E_BAD_REQUEST, "token: duplicate key");
    char *big = repeat('x', OTA_SHADOW_MAX_PAYLOAD);
    m = new_map();
    put_str(m, "pad", big);
    expect_get_error(m, OTA_E_TOO_LARGE, "shadow/get: payload of");
    free(big);
}

/* ---- encoders ---- */

static cbor_item_t *load_ok(const uint8_t *buf, size_t len)
{
    assert_non_null(buf);
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(buf, len, &res);
    assert_non_null(item);
    assert_int_equal(res.read, len);
    return item;
}

static const cbor_item_t *field(const cbor_item_t *map, const char *key)
{
    assert_true(cbor_isa_map(map));
    return ota_cbor_map_find(map, key);
}

static void assert_text(const cbor_item_t *it, const char *want)
{
    assert_non_null(it);
    assert_true(cbor_isa_string(it) && cbor_string_is_definite(it));
    assert_int_equal(cbor_string_length(it), strlen(want));
    assert_memory_equal(cbor_string_handle(it), want, strlen(want));
}

static void assert_uint(const cbor_item_t *it, uint64_t want)
{
    assert_non_null(it);
    assert_true(cbor_isa_uint(it));
    assert_int_equal(cbor_get_int(it), want);
}

static void test_encode_accepted(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_accepted(1, NULL, &len);
    cbor_item_t *m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(m), 1);
    assert_uint(field(m, "version"), 1);
    cbor_decref(&m);
    free(buf);
    buf = ota_codec_encode_shadow_accepted(4000000000LL, "tok", &len);
    m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(m), 2);
    assert_uint(field(m, "version"), 4000000000ULL);
    assert_text(field(m, "token"), "tok");
    cbor_decref(&m);
    free(buf);
}

/* A JSON document with every kind of value. */
static const char *const DOC =
    "{\"fw\":\"3.2.1\",\"ecus\":{\"BMS\":\"1.4.0\",\"VCU\":\"2\"},\"n\":-5,\"zero\":0,"
    "\"f\":1.5,\"big\":1700000000000,\"neg_big\":-9007199254740993,\"t\":true,\"no\":false,"
    "\"z\":null,\"a\":[1,\"x\",[],{}],\"e\":{},\"uni\":\"\\u00e9\\u4e2d\"}";

static void check_doc(const cbor_item_t *d)
{
    assert_int_equal(cbor_map_size(d), 13);
    assert_text(field(d, "fw"), "3.2.1");
    const cbor_item_t *ecus = field(d, "ecus");
    assert_int_equal(cbor_map_size(ecus), 2);
    assert_text(field(ecus, "BMS"), "1.4.0");
    assert_text(field(ecus, "VCU"), "2");
    const cbor_item_t *n = field(d, "n");
    assert_true(cbor_isa_negint(n));
    assert_int_equal(cbor_get_int(n), 4); /* -1 - 4 = -5 */
    assert_uint(field(d, "zero"), 0);
    const cbor_item_t *f = field(d, "f");
    assert_true(cbor_isa_float_ctrl(f) && cbor_float_get_width(f) != CBOR_FLOAT_0);
    assert_true(cbor_float_get_float(f) == 1.5);
    assert_uint(field(d, "big"), 1700000000000ULL);
    const cbor_item_t *nb = field(d, "neg_big");
    assert_true(cbor_isa_negint(nb));
    /* cJSON keeps a double: -9007199254740993 reads as -9007199254740992 */
    assert_int_equal(cbor_get_int(nb), 9007199254740991ULL);
    assert_true(cbor_is_bool(field(d, "t")) && cbor_get_bool(field(d, "t")));
    assert_true(cbor_is_bool(field(d, "no")) && !cbor_get_bool(field(d, "no")));
    assert_true(cbor_is_null(field(d, "z")));
    const cbor_item_t *a = field(d, "a");
    assert_true(cbor_isa_array(a));
    assert_int_equal(cbor_array_size(a), 4);
    assert_uint(cbor_array_handle(a)[0], 1);
    assert_text(cbor_array_handle(a)[1], "x");
    assert_int_equal(cbor_array_size(cbor_array_handle(a)[2]), 0);
    assert_int_equal(cbor_map_size(cbor_array_handle(a)[3]), 0);
    assert_int_equal(cbor_map_size(field(d, "e")), 0);
    assert_text(field(d, "uni"), "\xc3\xa9\xe4\xb8\xad");
}

static void test_encode_json_to_cbor(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse(DOC);
    assert_non_null(doc);
    size_t len = 0;
    uint8_t *buf = ota_codec_json_to_cbor(doc, &len);
    cbor_item_t *d = load_ok(buf, len);
    check_doc(d);
    cbor_decref(&d);
    free(buf);
    cJSON_Delete(doc);
    /* scalars at the top */
    cJSON *s = cJSON_CreateString("only");
    buf = ota_codec_json_to_cbor(s, &len);
    d = load_ok(buf, len);
    assert_text(d, "only");
    cbor_decref(&d);
    free(buf);
    cJSON_Delete(s);
    /* what JSON cannot hold */
    assert_null(ota_codec_json_to_cbor(NULL, &len));
    cJSON *raw = cJSON_CreateRaw("{\"x\":1}");
    assert_null(ota_codec_json_to_cbor(raw, &len));
    cJSON_Delete(raw);
}

static void test_encode_json_depth(void **state)
{
    (void)state;
    cJSON *root = cJSON_CreateArray(), *cur = root;
    for (int i = 1; i < OTA_JSON_CBOR_DEPTH; i++) {
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(cur, a);
        cur = a;
    }
    size_t len = 0;
    uint8_t *buf = ota_codec_json_to_cbor(root, &len); /* OTA_JSON_CBOR_DEPTH arrays */
    assert_non_null(buf);
    assert_int_equal(len, OTA_JSON_CBOR_DEPTH);
    free(buf);
    cJSON_AddItemToArray(cur, cJSON_CreateArray());
    assert_null(ota_codec_json_to_cbor(root, &len));
    cJSON_Delete(root);
}

static void test_encode_state(void **state)
{
    (void)state;
    cJSON *reported = cJSON_Parse(DOC);
    cJSON *desired = cJSON_Parse("{\"task\":{\"task\":\"T-1\",\"version\":\"4.0\"}}");
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_state(12, reported, desired, "tk", &len);
    cbor_item_t *m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(m), 4);
    assert_uint(field(m, "version"), 12);
    check_doc(field(m, "reported"));
    const cbor_item_t *task = field(field(m, "desired"), "task");
    assert_text(field(task, "task"), "T-1");
    assert_text(field(task, "version"), "4.0");
    assert_text(field(m, "token"), "tk");
    cbor_decref(&m);
    free(buf);
    /* nothing yet: empty maps, no token */
    buf = ota_codec_encode_shadow_state(0, NULL, NULL, NULL, &len);
    m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(m), 3);
    assert_uint(field(m, "version"), 0);
    assert_int_equal(cbor_map_size(field(m, "reported")), 0);
    assert_int_equal(cbor_map_size(field(m, "desired")), 0);
    cbor_decref(&m);
    free(buf);
    cJSON_Delete(reported);
    cJSON_Delete(desired);
}

static void test_encode_delta(void **state)
{
    (void)state;
    cJSON *desired = cJSON_Parse("{\"task\":null,\"cancel\":\"T-9\"}");
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_delta(5, desired, &len);
    cbor_item_t *m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(m), 2);
    assert_uint(field(m, "version"), 5);
    const cbor_item_t *d = field(m, "desired");
    assert_true(cbor_is_null(field(d, "task")));
    assert_text(field(d, "cancel"), "T-9");
    cbor_decref(&m);
    free(buf);
    buf = ota_codec_encode_shadow_delta(6, NULL, &len);
    m = load_ok(buf, len);
    assert_int_equal(cbor_map_size(field(m, "desired")), 0);
    cbor_decref(&m);
    free(buf);
    cJSON_Delete(desired);
}

/* Raw items (the task engine's notice integers) become CBOR integers, exact to 64 bits;
 * a raw item that is not a decimal integer fails the encoding. */
static void test_encode_raw_integers(void **state)
{
    (void)state;
    cJSON *desired = cJSON_CreateObject();
    cJSON_AddRawToObject(desired, "package", "18446744073709551615");
    cJSON_AddRawToObject(desired, "back", "-5");
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_delta(2, desired, &len);
    cbor_item_t *m = load_ok(buf, len);
    const cbor_item_t *d = field(m, "desired");
    assert_uint(field(d, "package"), UINT64_MAX);
    assert_true(cbor_isa_negint(field(d, "back")));
    assert_int_equal(cbor_get_int(field(d, "back")), 4); /* -1 - 4 */
    cbor_decref(&m);
    free(buf);
    const char *bad[] = {"1.5", "", "12x", "[1]", "+3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON_ReplaceItemInObject(desired, "back", cJSON_CreateRaw(bad[i]));
        assert_null(ota_codec_encode_shadow_delta(2, desired, &len));
    }
    cJSON_Delete(desired);
}

/* A large document makes the output buffer grow several times. */
static void test_encode_large(void **state)
{
    (void)state;
    cJSON *doc = cJSON_CreateObject();
    cJSON *ecus = cJSON_AddObjectToObject(doc, "ecus");
    for (int i = 0; i < 2000; i++) {
        char k[16];
        snprintf(k, sizeof k, "E%04d", i);
        cJSON_AddStringToObject(ecus, k, "version-string-of-some-length");
    }
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_state(1, doc, NULL, NULL, &len);
    cbor_item_t *m = load_ok(buf, len);
    const cbor_item_t *e = field(field(m, "reported"), "ecus");
    assert_int_equal(cbor_map_size(e), 2000);
    assert_text(field(e, "E1999"), "version-string-of-some-length");
    cbor_decref(&m);
    free(buf);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_full),
        cmocka_unit_test(test_update_minimal),
        cmocka_unit_test(test_update_unknown_keys_ignored),
        cmocka_unit_test(test_update_indefinite_maps),
        cmocka_unit_test(test_update_word_and_ecu_limits_accepted),
        cmocka_unit_test(test_update_bad_cbor),
        cmocka_unit_test(test_update_cbor_error_wins),
        cmocka_unit_test(test_update_payload_too_large),
        cmocka_unit_test(test_update_shape),
        cmocka_unit_test(test_update_required_fields),
        cmocka_unit_test(test_update_word_fields),
        cmocka_unit_test(test_update_ecus),
        cmocka_unit_test(test_update_ecus_indefinite_too_many),
        cmocka_unit_test(test_update_duplicate_keys),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_get_rejected),
        cmocka_unit_test(test_encode_accepted),
        cmocka_unit_test(test_encode_json_to_cbor),
        cmocka_unit_test(test_encode_json_depth),
        cmocka_unit_test(test_encode_state),
        cmocka_unit_test(test_encode_delta),
        cmocka_unit_test(test_encode_raw_integers),
        cmocka_unit_test(test_encode_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
