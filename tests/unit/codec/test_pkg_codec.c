/*
 * test_pkg_codec.c — cmocka tests of the package description codec: COSE_Sign1 signing
 * and verification with Ed25519 and ES256 (codec/cose.c: layout, the reply's "req"
 * header, tampering, wrong key, wrong kid, wrong algorithm), the content
 * key cryptography (codec/keywrap.c: wrap/unwrap per vehicle and VIN, sealing, file
 * streams), the pkg/get decoder (codec/pkg_msg.c: every class of bad input, and the forms
 * its fast path leaves to the strict reader), the description encoder (decoded again with
 * libcbor and checked field by field) and the heads cbor_out.h writes (libcbor's bytes).
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
#include <openssl/evp.h>

#include "cbor_util.h"
#include "cbor_out.h"
#include "ota_cose.h"
#include "ota_pkg_codec.h"
#include "test_util.h"

static EVP_PKEY *ed25519(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    return k;
}

static EVP_PKEY *p256(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    return k;
}

/* Each COSE test runs with both algorithms. */
static EVP_PKEY *(*const KEYGEN[])(void) = {ed25519, p256};

/* ---------------------------------------------------------------- COSE */

static uint8_t *sign(EVP_PKEY *k, const char *payload, size_t *len)
{
    uint8_t kid[OTA_COSE_KID_LEN];
    assert_int_equal(ota_codec_cose_kid(k, kid), 0);
    uint8_t *m = ota_codec_cose_sign(k, kid, (const uint8_t *)payload, strlen(payload), len);
    assert_non_null(m);
    return m;
}

static void cose_roundtrip(EVP_PKEY *k, const char *prot)
{
    size_t len = 0, plen = 0, rlen = 0;
    uint8_t *m = sign(k, "hello vehicle", &len);
    /* tag 18, array of 4, protected h'A10127' (EdDSA) or h'A10126' (ES256) */
    assert_int_equal(m[0], 0xD2);
    assert_int_equal(m[1], 0x84);
    assert_memory_equal(m + 2, prot, 4);
    const uint8_t *p = NULL;
    ota_error e = {0};
    ota_cose_info info;
    if (ota_codec_cose_verify_info(k, m, len, &p, &plen, &info, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(plen, 13);
    assert_memory_equal(p, "hello vehicle", 13);
    assert_int_equal(info.alg, ota_codec_cose_alg(k));
    assert_true(info.has_kid);
    assert_false(info.has_req);
    /* the reply's copy: {4: kid, "req": 70000} unprotected, the same signature */
    uint8_t *r = malloc(len + OTA_COSE_REQ_EXTRA);
    assert_int_equal(ota_codec_cose_with_req(m, len, 70000, r, len + OTA_COSE_REQ_EXTRA - 1), 0);
    assert_int_equal(ota_codec_cose_with_req(m + 1, len - 1, 70000, r, len + 9), 0);
    rlen = ota_codec_cose_with_req(m, len, UINT64_MAX, r, len + OTA_COSE_REQ_EXTRA);
    assert_int_equal(rlen, len + OTA_COSE_REQ_EXTRA); /* the most it adds */
    rlen = ota_codec_cose_with_req(m, len, 70000, r, len + OTA_COSE_REQ_EXTRA);
    assert_int_equal(rlen, len + 4 + 5);
    assert_memory_equal(r + rlen - 64, m + len - 64, 64);
    if (ota_codec_cose_verify_info(k, r, rlen, &p, &plen, &info, &e) != 0)
        fail_msg("%s", e.msg);
    assert_true(info.has_req);
    assert_int_equal(info.req, 70000);
    assert_memory_equal(p, "hello vehicle", 13);
    free(r);
    free(m);
}

static void test_cose_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *k = ed25519();
    assert_int_equal(ota_codec_cose_alg(k), OTA_COSE_EDDSA);
    cose_roundtrip(k, "\x43\xA1\x01\x27");
    EVP_PKEY_free(k);
    k = p256();
    assert_int_equal(ota_codec_cose_alg(k), OTA_COSE_ES256);
    cose_roundtrip(k, "\x43\xA1\x01\x26");
    EVP_PKEY_free(k);
    /* P-384 is not ES256: no algorithm, no signature */
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    size_t len;
    uint8_t kid[OTA_COSE_KID_LEN] = {0};
    assert_int_equal(ota_codec_cose_alg(k), OTA_COSE_NONE);
    assert_null(ota_codec_cose_sign(k, kid, (const uint8_t *)"x", 1, &len));
    EVP_PKEY_free(k);
}

/* A message signed with one algorithm, checked with a key of the other under a forged
 * kid and protected header: refused (the algorithm comes from the key, never the
 * message). */
static void test_cose_wrong_alg(void **state)
{
    (void)state;
    EVP_PKEY *ed = ed25519(), *ec = p256();
    size_t len = 0, plen = 0;
    const uint8_t *p;
    ota_error e = {0};
    uint8_t *m = sign(ed, "x", &len);
    assert_int_equal(ota_codec_cose_verify(ec, m, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "ES256"));
    m[5] = 0x26; /* claims ES256 */
    assert_int_equal(ota_codec_cose_verify(ed, m, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "EdDSA"));
    uint8_t kid[OTA_COSE_KID_LEN];
    ota_codec_cose_kid(ec, kid);
    memcpy(m + 9, kid, OTA_COSE_KID_LEN); /* and names the P-256 key */
    assert_int_equal(ota_codec_cose_verify(ec, m, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "signature"));
    free(m);
    /* the unprotected map's head made {}: its kid then breaks the array of 4 */
    m = sign(ed, "x", &len);
    m[6] = 0xA0;
    assert_int_equal(ota_codec_cose_verify(ed, m, len, &p, &plen, &e), -1);
    free(m);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
}

static void cose_tampered(EVP_PKEY *k)
{
    size_t len = 0, plen = 0;
    const uint8_t *p;
    ota_error e = {0};
    uint8_t *m = sign(k, "hello vehicle", &len);
    m[len - 70] ^= 1; /* a payload byte */
    assert_int_equal(ota_codec_cose_verify(k, m, len, &p, &plen, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_REQUEST);
    assert_non_null(strstr(e.msg, "signature"));
    m[len - 70] ^= 1;
    m[len - 1] ^= 1; /* the signature */
    assert_int_equal(ota_codec_cose_verify(k, m, len, &p, &plen, &e), -1);
    m[len - 1] ^= 1;
    m[0] = 0xD1; /* tag 17 */
    assert_int_equal(ota_codec_cose_verify(k, m, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "tag 18"));
    m[0] = 0xD2;
    assert_int_equal(ota_codec_cose_verify(k, m, len - 1, &p, &plen, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    free(m);
}

static void test_cose_tampered(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof KEYGEN / sizeof KEYGEN[0]; i++) {
        EVP_PKEY *k = KEYGEN[i]();
        cose_tampered(k);
        EVP_PKEY_free(k);
    }
}

static void cose_wrong_key(EVP_PKEY *(*keygen)(void))
{
    EVP_PKEY *k = keygen(), *other = keygen();
    size_t len = 0, plen = 0;
    const uint8_t *p;
    ota_error e = {0};
    uint8_t *m = sign(k, "x", &len);
    assert_int_equal(ota_codec_cose_verify(other, m, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "kid"));
    /* signed by other under k's kid: the kid matches, the signature does not */
    uint8_t kid[OTA_COSE_KID_LEN];
    ota_codec_cose_kid(k, kid);
    uint8_t *forged = ota_codec_cose_sign(other, kid, (const uint8_t *)"x", 1, &len);
    assert_int_equal(ota_codec_cose_verify(k, forged, len, &p, &plen, &e), -1);
    assert_non_null(strstr(e.msg, "signature"));
    /* an X25519 key cannot sign */
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_null(ota_codec_cose_sign(x, kid, (const uint8_t *)"x", 1, &len));
    EVP_PKEY_free(x);
    free(forged);
    free(m);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void test_cose_wrong_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof KEYGEN / sizeof KEYGEN[0]; i++)
        cose_wrong_key(KEYGEN[i]);
}

/* ---------------------------------------------------------------- content keys */

static void x25519_pair(uint8_t priv[32], uint8_t pub[32])
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    size_t n = 32;
    assert_int_equal(EVP_PKEY_get_raw_private_key(k, priv, &n), 1);
    n = 32;
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &n), 1);
    EVP_PKEY_free(k);
}

static void test_key_wrap(void **state)
{
    (void)state;
    uint8_t priv[32], pub[32], priv2[32], pub2[32], key[32], got[32];
    x25519_pair(priv, pub);
    x25519_pair(priv2, pub2);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7);
    const char *vin = "LSVTA000000000001";
    ota_wrapped_key w, w2;
    assert_int_equal(ota_codec_key_wrap(key, pub, vin, &w), 0);
    assert_int_equal(ota_codec_key_unwrap(&w, priv, vin, got), 0);
    assert_memory_equal(got, key, 32);
    /* every wrap has its own ephemeral key and iv */
    assert_int_equal(ota_codec_key_wrap(key, pub, vin, &w2), 0);
    assert_memory_not_equal(w.epk, w2.epk, 32);
    /* another vehicle's key, another VIN, a flipped bit: refused */
    assert_int_equal(ota_codec_key_unwrap(&w, priv2, vin, got), -1);
    assert_int_equal(ota_codec_key_unwrap(&w, priv, "LSVTA000000000002", got), -1);
    w.ct[5] ^= 1;
    assert_int_equal(ota_codec_key_unwrap(&w, priv, vin, got), -1);
    /* a low-order public key (all zeros) gives no shared secret */
    uint8_t zero[32] = {0};
    assert_int_equal(ota_codec_key_wrap(key, zero, vin, &w), -1);
}

static void test_seal_open(void **state)
{
    (void)state;
    uint8_t key[32] = {1, 2, 3}, in[32] = {9, 9, 9}, sealed[OTA_SEALED_LEN(32)], out[32];
    assert_int_equal(ota_codec_seal(key, "7", 1, in, 32, sealed), 0);
    assert_int_equal(ota_codec_open(key, "7", 1, sealed, sizeof sealed, out), 0);
    assert_memory_equal(out, in, 32);
    assert_int_equal(ota_codec_open(key, "8", 1, sealed, sizeof sealed, out), -1);
    sealed[OTA_GCM_NONCE_LEN] ^= 1;
    assert_int_equal(ota_codec_open(key, "7", 1, sealed, sizeof sealed, out), -1);
    assert_int_equal(ota_codec_open(key, "7", 1, sealed, 10, out), -1);
}

static void test_seal_stream(void **state)
{
    (void)state;
    uint8_t key[32] = {5};
    size_t n = 200000;
    uint8_t *plain = malloc(n);
    for (size_t i = 0; i < n; i++)
        plain[i] = (uint8_t)(i * 31);
    FILE *in = fmemopen(plain, n, "rb");
    char *enc = NULL;
    size_t enc_len = 0;
    FILE *out = open_memstream(&enc, &enc_len);
    assert_int_equal(ota_codec_seal_stream(key, in, out), 0);
    fclose(in);
    fclose(out);
    assert_int_equal(enc_len, OTA_SEALED_LEN(n));
    uint8_t *back = malloc(n);
    assert_int_equal(ota_codec_open(key, NULL, 0, (uint8_t *)enc, enc_len, back), 0);
    assert_memory_equal(back, plain, n);
    free(back);
    free(enc);
    free(plain);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t b[3] = {0x00, 0xAB, 0x7F}, back[3];
    char s[7];
    ota_codec_hex(b, 3, s);
    assert_string_equal(s, "00ab7f");
    assert_int_equal(ota_codec_unhex("00AB7f", back, 3), 0);
    assert_memory_equal(back, b, 3);
    assert_int_equal(ota_codec_unhex("00ab7", back, 3), -1);
    assert_int_equal(ota_codec_unhex("00ab7g", back, 3), -1);
}

/* ---------------------------------------------------------------- pkg/get */

static cbor_item_t *request(void)
{
    cbor_item_t *m = cbor_new_definite_map(8);
    struct {
        const char *k;
        cbor_item_t *v;
    } f[] = {{"req", cbor_build_uint8(7)},
             {"task", cbor_build_string("T000001")},
             {"cur", cbor_build_string("2.0.9")},
             {"tgt", cbor_build_string("2.1.0")}};
    for (size_t i = 0; i < 4; i++)
        assert_true(cbor_map_add(m, (struct cbor_pair){.key = cbor_move(cbor_build_string(f[i].k)),
                                                       .value = cbor_move(f[i].v)}));
    return m;
}

/* The request with key's value replaced by v (NULL: key left out). */
static cbor_item_t *request_with(const char *key, cbor_item_t *v)
{
    cbor_item_t *base = request(), *m = cbor_new_definite_map(8);
    struct cbor_pair *h = cbor_map_handle(base);
    for (size_t i = 0; i < cbor_map_size(base); i++) {
        bool is = cbor_string_length(h[i].key) == strlen(key) &&
                  memcmp(cbor_string_handle(h[i].key), key, strlen(key)) == 0;
        if (!is)
            assert_true(cbor_map_add(m, h[i]));
    }
    if (v != NULL)
        assert_true(cbor_map_add(m, (struct cbor_pair){.key = cbor_move(cbor_build_string(key)),
                                                       .value = cbor_move(v)}));
    cbor_decref(&base);
    return m;
}

static int decode_item(cbor_item_t *item, ota_pkg_request *r, ota_error *e)
{
    size_t len = 0;
    uint8_t *buf = test_cbor_serialize(item, &len);
    int rc = ota_codec_decode_pkg_get(buf, len, r, e);
    free(buf);
    return rc;
}

static void expect_error(cbor_item_t *item, ota_err_code code, const char *needle)
{
    ota_pkg_request r;
    ota_error e = {0};
    assert_int_equal(decode_item(item, &r, &e), -1);
    assert_int_equal(e.code, code);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("message \"%s\" does not name \"%s\"", e.msg, needle);
}

static void test_request_valid(void **state)
{
    (void)state;
    ota_pkg_request r;
    ota_error e = {0};
    cbor_item_t *m = request_with("extra", cbor_build_string("ignored"));
    assert_int_equal(decode_item(m, &r, &e), 0);
    assert_true(r.req_valid);
    assert_int_equal(r.req, 7);
    assert_string_equal(r.task, "T000001");
    assert_string_equal(r.cur, "2.0.9");
    assert_string_equal(r.tgt, "2.1.0");
}

static void test_request_bad(void **state)
{
    (void)state;
    char w65[66];
    memset(w65, 'a', 65);
    w65[65] = '\0';
    expect_error(request_with("req", NULL), OTA_E_BAD_REQUEST, "req");
    expect_error(request_with("req", cbor_build_string("7")), OTA_E_BAD_REQUEST, "req");
    expect_error(request_with("req", cbor_build_negint8(0)), OTA_E_BAD_REQUEST, "req");
    expect_error(request_with("task", NULL), OTA_E_BAD_REQUEST, "task");
    expect_error(request_with("task", cbor_build_uint8(1)), OTA_E_BAD_REQUEST, "task");
    expect_error(request_with("task", cbor_build_string("")), OTA_E_BAD_REQUEST, "task");
    expect_error(request_with("task", cbor_build_string(w65)), OTA_E_TOO_LARGE, "task");
    expect_error(request_with("cur", cbor_build_bool(true)), OTA_E_BAD_REQUEST, "cur");
    expect_error(request_with("cur", cbor_build_string("a\x01")), OTA_E_BAD_REQUEST, "cur");
    expect_error(request_with("tgt", NULL), OTA_E_BAD_REQUEST, "tgt");
    expect_error(request_with("tgt", cbor_build_bytestring((const uint8_t *)"2.1", 3)),
                 OTA_E_BAD_REQUEST, "tgt");
    expect_error(cbor_build_string("not a map"), OTA_E_BAD_REQUEST, "map");
    /* a bad field still lets the error echo a valid req */
    ota_pkg_request r;
    ota_error e;
    assert_int_equal(decode_item(request_with("tgt", NULL), &r, &e), -1);
    assert_true(r.req_valid);
    assert_int_equal(r.req, 7);
}

/* Decodes the n bytes at b: rc, and r/e as the decoder left them. */
static int decode_bytes(const char *b, size_t n, ota_pkg_request *r, ota_error *e)
{
    *e = (ota_error){0};
    return ota_codec_decode_pkg_get(b, n, r, e);
}

#define REQ7                                                                                       \
    "\x63"                                                                                         \
    "req\x07"
#define TASK                                                                                       \
    "\x64"                                                                                         \
    "task\x67"                                                                                     \
    "T000001"
#define CUR                                                                                        \
    "\x63"                                                                                         \
    "cur\x65"                                                                                      \
    "2.0.9"
#define TGT                                                                                        \
    "\x63"                                                                                         \
    "tgt\x65"                                                                                      \
    "2.1.0"

/* Forms the fast path (pkg_msg.c's skim) does not take are read by the strict reader: the
 * same answer either way. */
static void test_request_forms(void **state)
{
    (void)state;
    ota_pkg_request r;
    ota_error e;
    static const char plain[] = "\xA4" REQ7 TASK CUR TGT;
    assert_int_equal(decode_bytes(plain, sizeof plain - 1, &r, &e), 0);
    assert_true(r.req_valid);
    assert_int_equal(r.req, 7);
    assert_string_equal(r.cur, "2.0.9");
    /* indefinite-length map, keys in another order */
    static const char indef[] = "\xBF" TGT CUR REQ7 TASK "\xFF";
    assert_int_equal(decode_bytes(indef, sizeof indef - 1, &r, &e), 0);
    assert_int_equal(r.req, 7);
    assert_string_equal(r.task, "T000001");
    assert_string_equal(r.tgt, "2.1.0");
    /* UTF-8 beyond ASCII, the largest req, an unknown key with a nested value */
    static const char wide[] = "\xA5\x63"
                               "req\x1B\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF" TASK "\x63"
                               "cur\x66"
                               "2.0-\xCE\xB2" TGT "\x61"
                               "x\xA1\x61"
                               "y\x82\x01\x02";
    assert_int_equal(decode_bytes(wide, sizeof wide - 1, &r, &e), 0);
    assert_int_equal(r.req, UINT64_MAX);
    assert_string_equal(r.cur, "2.0-\xCE\xB2");
    /* a known key twice, a text of 64 bytes (the most) and of 65 */
    static const char twice[] = "\xA5" REQ7 TASK CUR TGT "\x63"
                                "cur\x63"
                                "1.0";
    assert_int_equal(decode_bytes(twice, sizeof twice - 1, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_REQUEST);
    assert_non_null(strstr(e.msg, "duplicate"));
    char w[128] = "\xA4" REQ7 TASK CUR "\x63"
                  "tgt\x78\x40";
    size_t n = strlen(w);
    memset(w + n, '9', 64);
    assert_int_equal(decode_bytes(w, n + 64, &r, &e), 0);
    assert_int_equal(strlen(r.tgt), 64);
    w[n - 1] = 0x41;
    memset(w + n, '9', 65);
    assert_int_equal(decode_bytes(w, n + 65, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_TOO_LARGE);
    /* a field missing after the fast path had filled the others: nothing kept */
    static const char three[] = "\xA3" REQ7 TASK CUR;
    assert_int_equal(decode_bytes(three, sizeof three - 1, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_REQUEST);
    assert_string_equal(r.tgt, "");
}

/* cbor_out.h writes the heads libcbor's encoders write (the description's bytes were
 * libcbor's before): every width boundary, for uints, texts, arrays and maps. */
static void test_cbor_out_heads(void **state)
{
    (void)state;
    static const uint64_t args[] = {0,     23,    24,         255,        256,
                                    65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX};
    size_t (*const enc[])(size_t, unsigned char *, size_t) = {cbor_encode_uint,
                                                              NULL,
                                                              cbor_encode_bytestring_start,
                                                              cbor_encode_string_start,
                                                              cbor_encode_array_start,
                                                              cbor_encode_map_start};
    for (unsigned major = 0; major <= 5; major++) {
        for (size_t i = 0; major != 1 && i < sizeof args / sizeof args[0]; i++) {
            uint8_t want[9];
            size_t n = enc[major](args[i], want, sizeof want), len = 0;
            ota_cbor_out o;
            ota_cbor_out_init(&o, 1); /* grows */
            ota_cbor_out_head(&o, major, args[i]);
            uint8_t *got = ota_cbor_out_take(&o, &len);
            assert_int_equal(len, n);
            assert_memory_equal(got, want, n);
            free(got);
        }
    }
}

static void test_request_bad_bytes(void **state)
{
    (void)state;
    ota_pkg_request r;
    ota_error e;
    static const uint8_t truncated[] = {0xA4, 0x63, 'r', 'e', 'q'};
    assert_int_equal(ota_codec_decode_pkg_get(truncated, sizeof truncated, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    assert_false(r.req_valid);
    static const uint8_t huge_map[] = {0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(ota_codec_decode_pkg_get(huge_map, sizeof huge_map, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    assert_int_equal(ota_codec_decode_pkg_get("", 0, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    /* trailing bytes after a valid request */
    size_t len = 0;
    uint8_t *buf = test_cbor_serialize(request(), &len);
    uint8_t *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0x00;
    assert_int_equal(ota_codec_decode_pkg_get(more, len + 1, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_BAD_CBOR);
    free(more);
    free(buf);
    uint8_t *big = calloc(1, OTA_PKG_GET_MAX_PAYLOAD + 1);
    assert_int_equal(ota_codec_decode_pkg_get(big, OTA_PKG_GET_MAX_PAYLOAD + 1, &r, &e), -1);
    assert_int_equal(e.code, OTA_E_TOO_LARGE);
    free(big);
}

/* ---------------------------------------------------------------- description */

static const cbor_item_t *field(const cbor_item_t *m, const char *k)
{
    const cbor_item_t *v = ota_cbor_map_find(m, k);
    if (v == NULL)
        fail_msg("field %s missing", k);
    return v;
}

static void assert_text(const cbor_item_t *v, const char *want)
{
    assert_true(cbor_isa_string(v));
    assert_int_equal(cbor_string_length(v), strlen(want));
    assert_memory_equal(cbor_string_handle(v), want, strlen(want));
}

/* The issue-17 keys of a description as a map (freed by the caller). */
static cbor_item_t *described(const ota_description *d)
{
    size_t len = 0;
    ota_error e;
    uint8_t *buf = ota_codec_encode_description(d, &len);
    assert_non_null(buf);
    cbor_item_t *m = ota_cbor_load(buf, len, "desc", &e);
    assert_non_null(m);
    free(buf);
    return m;
}

/* Install modes and pre-conditions (issue 17): forced and no pre-condition are left out. */
static void check_description_r156(ota_description *d)
{
    d->install_mode = "forced";
    d->install_deadline = 5;
    cbor_item_t *m = described(d);
    assert_int_equal(cbor_map_size(m), 13);
    assert_null(ota_cbor_map_find(m, "install_mode"));
    cbor_decref(&m);
    d->install_mode = "time_forced";
    d->install_deadline = 1800000000000;
    m = described(d);
    assert_int_equal(cbor_map_size(m), 15);
    assert_text(field(m, "install_mode"), "time_forced");
    assert_int_equal(cbor_get_int(field(m, "install_deadline")), 1800000000000);
    cbor_decref(&m);
    d->install_mode = "soft";
    d->install_deadline = -1;
    m = described(d);
    assert_int_equal(cbor_map_size(m), 14);
    assert_null(ota_cbor_map_find(m, "install_deadline"));
    assert_null(ota_cbor_map_find(m, "preconditions"));
    cbor_decref(&m);
    d->pre_flags = OTA_PRE_BATTERY | OTA_PRE_IGNITION_OFF;
    d->battery_min_pct = 40;
    m = described(d);
    assert_int_equal(cbor_map_size(m), 15);
    const cbor_item_t *pre = field(m, "preconditions");
    assert_int_equal(cbor_map_size(pre), 2);
    assert_int_equal(cbor_get_int(field(pre, "battery_min_pct")), 40);
    assert_true(cbor_get_bool(field(pre, "ignition_off")));
    assert_null(ota_cbor_map_find(pre, "parked"));
    cbor_decref(&m);
    /* per-language texts and RXSWINs (issue 17): texts {language, prompt, result_info?} */
    ota_lang_text prompts[] = {{"de", "Bitte parken"}, {"en", "please park"}};
    d->language = "en";
    d->n_prompts = 2;
    d->prompts = prompts;
    d->rxswin = "R10-EMC.1,R79-STEER.2";
    m = described(d);
    assert_int_equal(cbor_map_size(m), 17);
    const cbor_item_t *texts = field(m, "texts");
    assert_int_equal(cbor_map_size(texts), 2); /* no result_info map */
    assert_text(field(texts, "language"), "en");
    assert_text(field(field(texts, "prompt"), "de"), "Bitte parken");
    assert_text(field(field(texts, "prompt"), "en"), "please park");
    const cbor_item_t *rx = field(m, "rxswin");
    assert_int_equal(cbor_array_size(rx), 2);
    assert_memory_equal(cbor_string_handle(cbor_array_handle(rx)[1]), "R79-STEER.2", 11);
    cbor_decref(&m);
}

static void test_description(void **state)
{
    (void)state;
    ota_desc_ecu ecus[2] = {
        {.ecu = "BMS",
         .order = 1,
         .version = "1.1",
         .file_id = "ab",
         .file_name = "bms.bin",
         .size = 1000,
         .sha256 = {0xAB}},
        {.ecu = "CAM",
         .component = true,
         .order = 2,
         .version = "3",
         .file_id = "cd",
         .file_name = "cam.bin",
         .size = 70000},
    };
    ota_wrapped_key k = {.epk = {1}, .iv = {2}, .ct = {3}};
    ota_description d = {.task = "T1",
                         .package = 5,
                         .delta = true,
                         .from = "2.0",
                         .to = "2.1",
                         .compare_version = false,
                         .n_ecus = 2,
                         .ecus = ecus,
                         .prompt = "please park",
                         .vin = "LSVTA000000000001",
                         .ctr = 4,
                         .iat = 1700000000000,
                         .exp = 1700086400000,
                         .key = &k};
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_description(&d, &len);
    assert_non_null(buf);
    ota_error e;
    cbor_item_t *m = ota_cbor_load(buf, len, "desc", &e);
    assert_non_null(m);
    assert_int_equal(cbor_map_size(m), 14);
    assert_null(ota_cbor_map_find(m, "req")); /* signed before any request */
    assert_text(field(m, "kind"), "delta");
    assert_text(field(m, "from"), "2.0");
    assert_false(cbor_get_bool(field(m, "compare_version")));
    assert_text(field(m, "result_info"), "");
    assert_text(field(m, "vin"), "LSVTA000000000001");
    assert_int_equal(cbor_get_int(field(m, "exp")), 1700086400000);
    const cbor_item_t *arr = field(m, "ecus");
    assert_int_equal(cbor_array_size(arr), 2);
    cbor_item_t *e1 = cbor_array_get(arr, 1);
    assert_text(field(e1, "type"), "component");
    const cbor_item_t *f = field(e1, "file");
    assert_int_equal(cbor_get_int(field(f, "size")), 70000);
    assert_int_equal(cbor_bytestring_length(field(f, "sha256")), 32);
    cbor_decref(&e1);
    const cbor_item_t *key = field(m, "key");
    assert_text(field(key, "alg"), OTA_KEYWRAP_ALG);
    assert_int_equal(cbor_bytestring_length(field(key, "ct")), 48);
    cbor_decref(&m);
    free(buf);
    /* without a key: 13 fields */
    d.key = NULL;
    buf = ota_codec_encode_description(&d, &len);
    m = ota_cbor_load(buf, len, "desc", &e);
    assert_int_equal(cbor_map_size(m), 13);
    assert_null(ota_cbor_map_find(m, "key"));
    assert_null(ota_cbor_map_find(m, "install_mode")); /* NULL: forced, left out */
    cbor_decref(&m);
    free(buf);
    check_description_r156(&d);
}

static void test_pkg_error(void **state)
{
    (void)state;
    size_t len = 0;
    ota_error e;
    uint8_t *buf = ota_codec_encode_pkg_error(true, 9, "E_NO_PACKAGE", "none", &len);
    cbor_item_t *m = ota_cbor_load(buf, len, "err", &e);
    assert_int_equal(cbor_map_size(m), 3);
    assert_int_equal(cbor_get_int(field(m, "req")), 9);
    assert_text(field(m, "err"), "E_NO_PACKAGE");
    cbor_decref(&m);
    free(buf);
    buf = ota_codec_encode_pkg_error(false, 0, "E_BAD_CBOR", "x", &len);
    m = ota_cbor_load(buf, len, "err", &e);
    assert_int_equal(cbor_map_size(m), 2);
    assert_null(ota_cbor_map_find(m, "req"));
    cbor_decref(&m);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cose_roundtrip),    cmocka_unit_test(test_cose_tampered),
        cmocka_unit_test(test_cose_wrong_key),    cmocka_unit_test(test_cose_wrong_alg),
        cmocka_unit_test(test_key_wrap),          cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_seal_stream),       cmocka_unit_test(test_hex),
        cmocka_unit_test(test_request_valid),     cmocka_unit_test(test_request_bad),
        cmocka_unit_test(test_request_bad_bytes), cmocka_unit_test(test_request_forms),
        cmocka_unit_test(test_cbor_out_heads),    cmocka_unit_test(test_description),
        cmocka_unit_test(test_pkg_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
