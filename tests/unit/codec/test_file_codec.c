/*
 * test_file_codec.c — the file/get decoder (each bad input and its error code), the block
 * arithmetic (block count, short last block, clipping a selection to the file) and the
 * file/data encoders (codec/file_msg.c, codec/encode.c).
 *
 * Requests are written with libcbor's streaming encoders into a buffer, pair by pair, so
 * each case states exactly the bytes the plugin receives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cbor.h>
#include <cmocka.h>

#include "ota_codec.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct {
    uint8_t b[4096];
    size_t n;
} buf;

static void put(buf *o, size_t w)
{
    assert_true(w > 0);
    o->n += w;
}

static void map(buf *o, size_t pairs)
{
    put(o, cbor_encode_map_start(pairs, o->b + o->n, sizeof o->b - o->n));
}

static void text(buf *o, const char *s)
{
    size_t len = strlen(s);
    put(o, cbor_encode_string_start(len, o->b + o->n, sizeof o->b - o->n));
    memcpy(o->b + o->n, s, len);
    o->n += len;
}

static void bytes(buf *o, const uint8_t *p, size_t len)
{
    put(o, cbor_encode_bytestring_start(len, o->b + o->n, sizeof o->b - o->n));
    memcpy(o->b + o->n, p, len);
    o->n += len;
}

static void uint_(buf *o, const char *key, uint64_t v)
{
    text(o, key);
    put(o, cbor_encode_uint(v, o->b + o->n, sizeof o->b - o->n));
}

/* {file: SHA, from, n} plus `extra` more pairs the caller appends. */
static buf *req(buf *o, uint64_t from, uint64_t n, size_t extra)
{
    o->n = 0;
    map(o, 3 + extra);
    text(o, "file");
    text(o, SHA);
    uint_(o, "from", from);
    uint_(o, "n", n);
    return o;
}

static int decode(const buf *o, ota_file_get *g, ota_error *e)
{
    return ota_codec_decode_file_get(o->b, o->n, g, e);
}

/* Decoding fails with code and a message containing needle. */
static void refused(const buf *o, ota_err_code code, const char *needle)
{
    ota_file_get g;
    ota_error e = {0};
    assert_int_equal(decode(o, &g, &e), -1);
    if (e.code != code || !strstr(e.msg, needle))
        fail_msg("got %s \"%s\", expected %s with \"%s\"", ota_err_name(e.code), e.msg,
                 ota_err_name(code), needle);
}

/* ---------------------------------------------------------------- valid requests */

static void test_minimal_defaults(void **state)
{
    (void)state;
    buf o;
    ota_file_get g;
    ota_error e;
    assert_int_equal(decode(req(&o, 7, 5, 0), &g, &e), 0);
    assert_string_equal(g.file, SHA);
    assert_int_equal(g.bs, OTA_FILE_BS_DEFAULT);
    assert_int_equal(g.from, 7);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.blocks, 0x1f);
    assert_int_equal(decode(req(&o, 0, 64, 0), &g, &e), 0);
    assert_true(g.blocks == UINT64_MAX);
    assert_int_equal(decode(req(&o, UINT64_MAX, 1, 0), &g, &e), 0);
    assert_true(g.from == UINT64_MAX);
}

static void test_block_size_bounds(void **state)
{
    (void)state;
    buf o;
    ota_file_get g;
    ota_error e;
    req(&o, 0, 1, 1);
    uint_(&o, "bs", 256);
    assert_int_equal(decode(&o, &g, &e), 0);
    assert_int_equal(g.bs, 256);
    req(&o, 0, 1, 1);
    uint_(&o, "bs", 131072);
    assert_int_equal(decode(&o, &g, &e), 0);
    assert_int_equal(g.bs, 131072);
    req(&o, 0, 1, 1);
    uint_(&o, "bs", 255);
    refused(&o, OTA_E_BLOCK_SIZE, "bs: 255 not in 256..131072");
    req(&o, 0, 1, 1);
    uint_(&o, "bs", 131073);
    refused(&o, OTA_E_BLOCK_SIZE, "bs");
    req(&o, 0, 1, 1);
    uint_(&o, "bs", 0);
    refused(&o, OTA_E_BLOCK_SIZE, "bs");
    req(&o, 0, 1, 1);
    text(&o, "bs");
    text(&o, "16384");
    refused(&o, OTA_E_BAD_REQUEST, "bs: expected unsigned integer");
}

static void test_bitmap_bits(void **state)
{
    (void)state;
    buf o;
    ota_file_get g;
    ota_error e;
    /* n 10: two bytes; bit k mod 8 of byte k div 8 selects block from+k */
    req(&o, 100, 10, 1);
    text(&o, "bitmap");
    bytes(&o, (const uint8_t[]){0x09, 0x03}, 2); /* k = 0, 3, 8, 9 */
    assert_int_equal(decode(&o, &g, &e), 0);
    assert_int_equal(g.blocks, (1u << 0) | (1u << 3) | (1u << 8) | (1u << 9));
    /* n 64: eight bytes, the last bit is block from+63 */
    uint8_t full[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    req(&o, 0, 64, 1);
    text(&o, "bitmap");
    bytes(&o, full, 8);
    assert_int_equal(decode(&o, &g, &e), 0);
    assert_true(g.blocks == (uint64_t)1 << 63);
}

static void test_unknown_keys_ignored(void **state)
{
    (void)state;
    buf o;
    ota_file_get g;
    ota_error e;
    req(&o, 1, 2, 1);
    uint_(&o, "future", 9);
    assert_int_equal(decode(&o, &g, &e), 0);
    assert_int_equal(g.blocks, 3);
}

/* ---------------------------------------------------------------- bad requests */

static void test_block_count(void **state)
{
    (void)state;
    buf o;
    refused(req(&o, 0, 0, 0), OTA_E_BLOCK_COUNT, "n: 0 not in 1..64");
    refused(req(&o, 0, 65, 0), OTA_E_BLOCK_COUNT, "n: 65");
    req(&o, 0, 8, 1);
    text(&o, "bitmap");
    bytes(&o, (const uint8_t[]){0}, 1);
    refused(&o, OTA_E_BLOCK_COUNT, "bitmap: selects no block");
}

static void test_bad_bitmap(void **state)
{
    (void)state;
    buf o;
    req(&o, 0, 9, 1); /* 9 blocks need 2 bytes */
    text(&o, "bitmap");
    bytes(&o, (const uint8_t[]){1}, 1);
    refused(&o, OTA_E_BAD_REQUEST, "bitmap: 1 bytes for n = 9: expected 2");
    req(&o, 0, 3, 1);
    text(&o, "bitmap");
    bytes(&o, (const uint8_t[]){0x09}, 1); /* bit 3: beyond n */
    refused(&o, OTA_E_BAD_REQUEST, "bitmap: selects a block at n = 3 or beyond");
    req(&o, 0, 3, 1);
    text(&o, "bitmap");
    text(&o, "\x01");
    refused(&o, OTA_E_BAD_REQUEST, "bitmap: expected definite-length bytes");
}

static void test_bad_file(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
    };
    for (size_t i = 0; i < 3; i++) {
        buf o = {.n = 0};
        map(&o, 3);
        text(&o, "file");
        text(&o, texts[i]);
        uint_(&o, "from", 0);
        uint_(&o, "n", 1);
        refused(&o, OTA_E_BAD_REQUEST, "file");
    }
    buf o = {.n = 0};
    map(&o, 3);
    text(&o, "file");
    text(&o, SHA "0");
    uint_(&o, "from", 0);
    uint_(&o, "n", 1);
    refused(&o, OTA_E_TOO_LARGE, "file: longer than 64 bytes");
    o.n = 0;
    map(&o, 3);
    text(&o, "file");
    bytes(&o, (const uint8_t *)SHA, 32);
    uint_(&o, "from", 0);
    uint_(&o, "n", 1);
    refused(&o, OTA_E_BAD_REQUEST, "file: expected definite-length text");
    o.n = 0;
    map(&o, 2);
    uint_(&o, "from", 0);
    uint_(&o, "n", 1);
    refused(&o, OTA_E_BAD_REQUEST, "file: missing");
}

static void test_bad_from_and_n(void **state)
{
    (void)state;
    buf o = {.n = 0};
    map(&o, 2);
    text(&o, "file");
    text(&o, SHA);
    uint_(&o, "n", 1);
    refused(&o, OTA_E_BAD_REQUEST, "from: missing");
    o.n = 0;
    map(&o, 2);
    text(&o, "file");
    text(&o, SHA);
    uint_(&o, "from", 1);
    refused(&o, OTA_E_BAD_REQUEST, "n: missing");
    /* from: -1 */
    o.n = 0;
    map(&o, 3);
    text(&o, "file");
    text(&o, SHA);
    text(&o, "from");
    o.b[o.n++] = 0x20;
    uint_(&o, "n", 1);
    refused(&o, OTA_E_BAD_REQUEST, "from: expected unsigned integer");
    /* n: 1.0 (half float) */
    o.n = 0;
    map(&o, 3);
    text(&o, "file");
    text(&o, SHA);
    uint_(&o, "from", 0);
    text(&o, "n");
    memcpy(o.b + o.n, "\xf9\x3c\x00", 3);
    o.n += 3;
    refused(&o, OTA_E_BAD_REQUEST, "n: expected unsigned integer");
}

static void test_file_kept_when_a_later_field_fails(void **state)
{
    (void)state;
    buf o;
    ota_file_get g;
    ota_error e;
    req(&o, 0, 0, 0);
    assert_int_equal(decode(&o, &g, &e), -1);
    assert_int_equal(e.code, OTA_E_BLOCK_COUNT);
    assert_string_equal(g.file, SHA);
}

static void test_shape_and_cbor(void **state)
{
    (void)state;
    buf o = {.n = 0};
    put(&o, cbor_encode_array_start(1, o.b, sizeof o.b));
    text(&o, SHA);
    refused(&o, OTA_E_BAD_REQUEST, "expected map");
    /* a key twice */
    req(&o, 0, 1, 1);
    uint_(&o, "n", 2);
    refused(&o, OTA_E_BAD_REQUEST, "n: duplicate key");
    /* trailing byte, truncated, empty, garbage */
    req(&o, 0, 1, 0);
    o.b[o.n++] = 0;
    refused(&o, OTA_E_BAD_CBOR, "file/get");
    req(&o, 0, 1, 0);
    o.n -= 2;
    refused(&o, OTA_E_BAD_CBOR, "truncated");
    o.n = 0;
    refused(&o, OTA_E_BAD_CBOR, "file/get");
    memcpy(o.b, "\xff\xfe\xfd", 3);
    o.n = 3;
    refused(&o, OTA_E_BAD_CBOR, "file/get");
    /* a CBOR error hides the file: the reply cannot trust it */
    ota_file_get g;
    ota_error e;
    req(&o, 0, 1, 0);
    o.b[o.n++] = 0xff;
    assert_int_equal(decode(&o, &g, &e), -1);
    assert_string_equal(g.file, "");
    /* over the payload limit, whatever it holds */
    req(&o, 0, 1, 1);
    text(&o, "pad");
    uint8_t pad[OTA_FILE_GET_MAX_PAYLOAD] = {0};
    bytes(&o, pad, sizeof pad);
    refused(&o, OTA_E_TOO_LARGE, "over 1024");
}

/* ---------------------------------------------------------------- block arithmetic */

static void test_block_count_and_len(void **state)
{
    (void)state;
    assert_int_equal(ota_file_block_count(0, 256), 0);
    assert_int_equal(ota_file_block_count(1, 256), 1);
    assert_int_equal(ota_file_block_count(256, 256), 1);
    assert_int_equal(ota_file_block_count(257, 256), 2);
    assert_int_equal(ota_file_block_count((uint64_t)1 << 30, 131072), 8192);
    assert_int_equal(ota_file_block_count(((uint64_t)1 << 40) + 1, 256), ((uint64_t)1 << 32) + 1);
    assert_int_equal(ota_file_block_len(257, 256, 0), 256);
    assert_int_equal(ota_file_block_len(257, 256, 1), 1);
    assert_int_equal(ota_file_block_len(512, 256, 1), 256);
    assert_int_equal(ota_file_block_len(10123, 1000, 10), 123);
}

static void test_blocks_in_file(void **state)
{
    (void)state;
    ota_file_get g = {.from = 8, .n = 5, .blocks = 0x1f};
    assert_int_equal(ota_file_blocks_in(&g, 11), 0x7);  /* 8, 9, 10 */
    assert_int_equal(ota_file_blocks_in(&g, 13), 0x1f); /* all */
    assert_int_equal(ota_file_blocks_in(&g, 8), 0);     /* from is past the end */
    assert_int_equal(ota_file_blocks_in(&g, 9), 0x1);
    g = (ota_file_get){.from = 0, .n = 64, .blocks = UINT64_MAX};
    assert_true(ota_file_blocks_in(&g, 64) == UINT64_MAX);
    assert_true(ota_file_blocks_in(&g, 1000) == UINT64_MAX);
    assert_true(ota_file_blocks_in(&g, 63) == UINT64_MAX >> 1);
    g = (ota_file_get){.from = 16, .n = 8, .blocks = 1u << 5}; /* only block 21 */
    assert_int_equal(ota_file_blocks_in(&g, 20), 0);
    assert_int_equal(ota_file_blocks_in(&g, 22), 1u << 5);
    g = (ota_file_get){.from = UINT64_MAX, .n = 1, .blocks = 1};
    assert_int_equal(ota_file_blocks_in(&g, UINT64_MAX), 0);
}

/* ---------------------------------------------------------------- encoders */

static const cbor_item_t *field(const cbor_item_t *m, const char *key)
{
    struct cbor_pair *h = cbor_map_handle(m);
    for (size_t i = 0; i < cbor_map_size(m); i++)
        if (cbor_string_length(h[i].key) == strlen(key) &&
            memcmp(cbor_string_handle(h[i].key), key, strlen(key)) == 0)
            return h[i].value;
    fail_msg("no key %s", key);
    return NULL;
}

static void test_file_data_head(void **state)
{
    (void)state;
    static uint8_t out[OTA_FILE_DATA_HEAD_MAX + OTA_FILE_BS_MAX];
    size_t h = ota_codec_file_data_head(SHA, UINT64_MAX, OTA_FILE_BS_MAX, out);
    assert_true(h > 0 && h <= OTA_FILE_DATA_HEAD_MAX);
    h = ota_codec_file_data_head(SHA, 42, 5, out);
    memcpy(out + h, "hello", 5);
    struct cbor_load_result res;
    cbor_item_t *m = cbor_load(out, h + 5, &res);
    assert_non_null(m);
    assert_int_equal(res.read, h + 5);
    assert_int_equal(cbor_map_size(m), 3);
    const cbor_item_t *f = field(m, "file"), *d = field(m, "data");
    assert_memory_equal(cbor_string_handle(f), SHA, 64);
    assert_int_equal(cbor_get_int(field(m, "i")), 42);
    assert_int_equal(cbor_bytestring_length(d), 5);
    assert_memory_equal(cbor_bytestring_handle(d), "hello", 5);
    cbor_decref(&m);
}

static void test_file_error(void **state)
{
    (void)state;
    ota_error e;
    ota_error_set(&e, OTA_E_OFFSET, "from 9: past the end");
    size_t len = 0;
    uint8_t *b = ota_codec_encode_file_error(SHA, &e, &len);
    assert_non_null(b);
    struct cbor_load_result res;
    cbor_item_t *m = cbor_load(b, len, &res);
    assert_non_null(m);
    assert_int_equal(cbor_map_size(m), 3);
    assert_memory_equal(cbor_string_handle(field(m, "err")), "E_OFFSET", 8);
    assert_int_equal(cbor_string_length(field(m, "msg")), strlen(e.msg));
    assert_int_equal(cbor_string_length(field(m, "file")), 64);
    cbor_decref(&m);
    free(b);
    assert_string_equal(ota_err_name(OTA_E_NOT_FOUND), "E_NOT_FOUND");
    assert_string_equal(ota_err_name(OTA_E_BLOCK_SIZE), "E_BLOCK_SIZE");
    assert_string_equal(ota_err_name(OTA_E_BLOCK_COUNT), "E_BLOCK_COUNT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_block_size_bounds),
        cmocka_unit_test(test_bitmap_bits),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_block_count),
        cmocka_unit_test(test_bad_bitmap),
        cmocka_unit_test(test_bad_file),
        cmocka_unit_test(test_bad_from_and_n),
        cmocka_unit_test(test_file_kept_when_a_later_field_fails),
        cmocka_unit_test(test_shape_and_cbor),
        cmocka_unit_test(test_block_count_and_len),
        cmocka_unit_test(test_blocks_in_file),
        cmocka_unit_test(test_file_data_head),
        cmocka_unit_test(test_file_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
