/*
 * test_fleet_crypto.c — the pure parts of ota-fleet's campaign mode (tools/vehicle-crypto/vcrypto.c,
 * tools/ota-fleet/fleet_dl.c) against vectors made by an independent implementation (Python
 * cryptography + cbor2, fleet_vectors.py): COSE_Sign1 verification with Ed25519 and
 * ES256 (the header's req, a wrong algorithm, tampering) and the vehicle's checks (a
 * retry's same counter accepted only with the same payload), the vehicle key from a seed,
 * content-key unwrapping, and the block download (windows, drops, resume bitmaps, SHA-256 and GCM
 * of an encrypted file).
 */
#include "fleet_crypto.h"
#include "fleet_vectors.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_MS 1763700000000LL
#define BS 256

static vc_verdict verify(const unsigned char *msg, size_t len, vc_desc *d)
{
    vc_pub pub;

    vc_pub_ed25519(vec_pub, &pub);
    return vc_desc_verify(&pub, msg, len, d);
}

static void test_plain_description(void **state)
{
    vc_desc d;
    (void)state;

    assert_int_equal(verify(vec_desc_plain, sizeof vec_desc_plain, &d), VC_DESC_OK);
    assert_string_equal(d.vin, VEC_VIN);
    assert_string_equal(d.task, "T-1");
    assert_string_equal(d.to, "2.0");
    assert_int_equal(d.ctr, 5);
    assert_int_equal(d.exp, VEC_EXP);
    assert_int_equal(d.n_ecus, 1);
    assert_string_equal(d.ecus[0].ecu, "BMS");
    assert_string_equal(d.ecus[0].name, "bms.bin");
    assert_int_equal(d.ecus[0].size, sizeof vec_enc_file);
    assert_memory_equal(d.ecus[0].sha256, vec_enc_sha, 32);
    assert_false(d.has_key);
    assert_int_equal(vc_desc_check(&d, VEC_VIN, NOW_MS, 4), VC_DESC_OK);
    assert_int_equal(vc_desc_check(&d, "LSVTA000000000043", NOW_MS, 4), VC_DESC_WRONG_VIN);
    assert_int_equal(vc_desc_check(&d, VEC_VIN, NOW_MS, 5), VC_DESC_OLD_CTR);
    assert_int_equal(vc_desc_check(&d, VEC_VIN, (int64_t)VEC_EXP, 0), VC_DESC_EXPIRED);
}

static void test_refused_descriptions(void **state)
{
    vc_desc d;
    unsigned char bad[sizeof vec_desc_plain];
    (void)state;

    assert_int_equal(verify(vec_desc_expired, sizeof vec_desc_expired, &d), VC_DESC_OK);
    assert_int_equal(vc_desc_check(&d, VEC_VIN, NOW_MS, 0), VC_DESC_EXPIRED);
    assert_int_equal(verify(vec_desc_bad_kid, sizeof vec_desc_bad_kid, &d), VC_DESC_BAD_KID);
    assert_int_equal(verify(vec_desc_no_ecus, sizeof vec_desc_no_ecus, &d), VC_DESC_BAD_PAYLOAD);
    /* a flipped bit in the signature, then in the payload */
    memcpy(bad, vec_desc_plain, sizeof bad);
    bad[sizeof bad - 1] ^= 1;
    assert_int_equal(verify(bad, sizeof bad, &d), VC_DESC_BAD_SIGNATURE);
    memcpy(bad, vec_desc_plain, sizeof bad);
    bad[sizeof bad - 80] ^= 1;
    assert_int_equal(verify(bad, sizeof bad, &d), VC_DESC_BAD_SIGNATURE);
    /* truncated, trailing bytes, not CBOR, a plain error map */
    assert_int_equal(verify(vec_desc_plain, sizeof vec_desc_plain - 1, &d), VC_DESC_BAD_COSE);
    assert_int_equal(verify((const unsigned char *)"\xff", 1, &d), VC_DESC_BAD_COSE);
    static const unsigned char err_map[] = {0xa1, 0x63, 'e', 'r', 'r', 0x61, 'x'};
    assert_int_equal(verify(err_map, sizeof err_map, &d), VC_DESC_BAD_COSE);
    /* another signer's key */
    uint8_t raw[32];
    vc_pub other;
    memcpy(raw, vec_pub, 32);
    raw[0] ^= 1;
    vc_pub_ed25519(raw, &other);
    assert_int_not_equal(vc_desc_verify(&other, vec_desc_plain, sizeof vec_desc_plain, &d),
                         VC_DESC_OK);
}

/* A retry is answered with the same signed description under another req (issue 14):
 * the same counter is accepted with the same payload, never with another one. */
static void test_retry_same_counter(void **state)
{
    vc_desc first, retry, other;
    (void)state;

    assert_int_equal(verify(vec_desc_plain, sizeof vec_desc_plain, &first), VC_DESC_OK);
    assert_true(first.has_req);
    assert_int_equal(first.req, 1); /* from the unprotected header */
    assert_int_equal(verify(vec_desc_retry, sizeof vec_desc_retry, &retry), VC_DESC_OK);
    assert_int_equal(retry.req, 2);
    assert_memory_equal(retry.digest, first.digest, 32);
    assert_int_equal(vc_desc_check_retry(&retry, VEC_VIN, NOW_MS, 5, first.digest), VC_DESC_OK);
    assert_int_equal(vc_desc_check_retry(&retry, VEC_VIN, NOW_MS, 5, NULL), VC_DESC_OLD_CTR);
    assert_int_equal(vc_desc_check(&retry, VEC_VIN, NOW_MS, 5), VC_DESC_OLD_CTR);
    assert_int_equal(verify(vec_desc_other_ctr5, sizeof vec_desc_other_ctr5, &other), VC_DESC_OK);
    assert_int_equal(other.ctr, 5);
    assert_int_equal(vc_desc_check_retry(&other, VEC_VIN, NOW_MS, 5, first.digest),
                     VC_DESC_OLD_CTR);
    assert_int_equal(vc_desc_check_retry(&other, VEC_VIN, NOW_MS, 6, first.digest),
                     VC_DESC_OLD_CTR);
}

/* ES256 vectors (python cryptography, raw r || s): verified with the P-256 key only. */
static void test_es256(void **state)
{
    char path[600];
    vc_pub es, ed;
    vc_desc d;
    FILE *fp;
    (void)state;

    const char *dir = test_fresh_dir("es");
    test_mkdir_p(dir);
    snprintf(path, sizeof path, "%s/es.pem.pub", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(vec_es_pub_pem, fp);
    fclose(fp);
    assert_int_equal(vc_load_pub(path, &es), 0);
    assert_int_equal(es.alg, VC_ALG_ES256);
    vc_pub_ed25519(vec_pub, &ed);
    assert_int_equal(vc_desc_verify(&es, vec_desc_es256, sizeof vec_desc_es256, &d), VC_DESC_OK);
    assert_int_equal(d.ctr, 5);
    assert_int_equal(d.req, 7);
    assert_int_equal(vc_desc_check(&d, VEC_VIN, NOW_MS, 4), VC_DESC_OK);
    assert_int_equal(
        vc_desc_verify(&es, vec_desc_es256_tampered, sizeof vec_desc_es256_tampered, &d),
        VC_DESC_BAD_SIGNATURE);
    /* the algorithm comes from the trusted key, never from the message */
    assert_int_equal(
        vc_desc_verify(&es, vec_desc_es256_as_eddsa, sizeof vec_desc_es256_as_eddsa, &d),
        VC_DESC_BAD_ALG);
    assert_int_equal(vc_desc_verify(&ed, vec_desc_es256, sizeof vec_desc_es256, &d),
                     VC_DESC_BAD_ALG);
    assert_int_equal(vc_desc_verify(&es, vec_desc_plain, sizeof vec_desc_plain, &d),
                     VC_DESC_BAD_ALG);
    test_remove_dir();
}

static void test_load_pub(void **state)
{
    char path[600];
    vc_pub pub;
    FILE *fp;
    (void)state;

    const char *dir = test_fresh_dir("pub");
    test_mkdir_p(dir);
    snprintf(path, sizeof path, "%s/signing.pem.pub", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(vec_pub_pem, fp);
    fclose(fp);
    assert_int_equal(vc_load_pub(path, &pub), 0);
    assert_int_equal(pub.alg, VC_ALG_EDDSA);
    assert_int_equal(pub.len, 32);
    assert_memory_equal(pub.raw, vec_pub, 32);
    assert_int_equal(vc_load_pub("/nonexistent/x.pub", &pub), -1);
    test_remove_dir();
}

static void test_vehicle_key_and_unwrap(void **state)
{
    uint8_t priv[32], pub[32], key[32], other[32];
    vc_desc d;
    (void)state;

    assert_int_equal(vc_seed_vehicle_key(VEC_SEED, VEC_VIN, priv, pub), 0);
    assert_memory_equal(pub, vec_vehicle_pub, 32);
    assert_int_equal(verify(vec_desc_key, sizeof vec_desc_key, &d), VC_DESC_OK);
    assert_true(d.has_key);
    assert_int_equal(vc_unwrap(&d, priv, VEC_VIN, key), 0);
    assert_memory_equal(key, vec_content_key, 32);
    /* the AAD is the VIN; another vehicle's key does not open it */
    assert_int_equal(vc_unwrap(&d, priv, "LSVTA000000000043", key), -1);
    assert_int_equal(vc_seed_vehicle_key("other-seed", VEC_VIN, other, pub), 0);
    assert_int_equal(vc_unwrap(&d, other, VEC_VIN, key), -1);
}

/* Delivers every block the request asks for, except those in `drop` (a bitmap). */
static void deliver_bs(fleet_dl *dl, uint64_t drop_mask, size_t bs)
{
    uint32_t from, n, blen;
    uint8_t bm[8];

    assert_true(fleet_dl_request(dl, &from, &n, bm, &blen));
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = from + k;
        size_t off = (size_t)i * bs;
        size_t len = sizeof vec_enc_file - off < bs ? sizeof vec_enc_file - off : bs;
        if (blen > 0 && !(bm[k / 8] & (1u << (k % 8))))
            continue;
        if (drop_mask & (1ULL << i)) {
            fleet_dl_drop(dl, i);
            continue;
        }
        assert_int_equal(fleet_dl_block(dl, i, vec_enc_file + off, len), FLEET_BLOCK_OK);
    }
    assert_true(fleet_dl_request_answered(dl));
}

static void deliver(fleet_dl *dl, uint64_t drop_mask)
{
    deliver_bs(dl, drop_mask, BS);
}

static void test_download_in_order(void **state)
{
    fleet_dl *dl = fleet_dl_new(sizeof vec_enc_file, BS, 8, vec_content_key);
    bool dec;
    (void)state;

    assert_non_null(dl);
    assert_int_equal(fleet_dl_blocks(dl), (sizeof vec_enc_file + BS - 1) / BS);
    while (!fleet_dl_complete(dl))
        deliver(dl, 0);
    assert_int_equal(fleet_dl_bytes(dl), sizeof vec_enc_file);
    assert_true(fleet_dl_finish(dl, vec_enc_sha, &dec));
    assert_true(dec);
    fleet_dl_free(dl);
}

static void test_download_resume_bitmap(void **state)
{
    fleet_dl *dl = fleet_dl_new(sizeof vec_enc_file, BS, 8, vec_content_key);
    uint32_t from, n, blen;
    uint8_t bm[8];
    bool dec;
    (void)state;

    /* first window 0..7: blocks 0, 3 and 6 are lost */
    deliver(dl, (1u << 0) | (1u << 3) | (1u << 6));
    assert_int_equal(fleet_dl_bytes(dl), 0); /* block 0 missing: nothing in order yet */
    assert_true(fleet_dl_request(dl, &from, &n, bm, &blen));
    assert_int_equal(from, 0);
    assert_int_equal(n, 7); /* 0..6 */
    assert_int_equal(blen, 1);
    assert_int_equal(bm[0], (1u << 0) | (1u << 3) | (1u << 6));
    /* a block outside the window, a duplicate, a wrong length */
    assert_int_equal(fleet_dl_block(dl, 30, vec_enc_file, BS), FLEET_BLOCK_UNEXPECTED);
    assert_int_equal(fleet_dl_block(dl, 1, vec_enc_file + BS, BS), FLEET_BLOCK_DUPLICATE);
    assert_int_equal(fleet_dl_block(dl, 0, vec_enc_file, BS - 1), FLEET_BLOCK_BAD_LENGTH);
    /* the bitmap request, then the rest */
    deliver(dl, 0);
    assert_int_equal(fleet_dl_bytes(dl), 8 * BS);
    while (!fleet_dl_complete(dl))
        deliver(dl, 0);
    assert_true(fleet_dl_finish(dl, vec_enc_sha, &dec));
    fleet_dl_free(dl);
}

static void test_download_tampered(void **state)
{
    unsigned char copy[sizeof vec_enc_file];
    fleet_dl *dl = fleet_dl_new(sizeof copy, BS, 64, vec_content_key);
    bool dec;
    uint32_t from, n, blen;
    uint8_t bm[8];
    (void)state;

    memcpy(copy, vec_enc_file, sizeof copy);
    copy[1000] ^= 0x80;
    while (fleet_dl_request(dl, &from, &n, bm, &blen))
        for (uint32_t i = from; i < from + n; i++) {
            size_t off = (size_t)i * BS, len = sizeof copy - off < BS ? sizeof copy - off : BS;
            fleet_dl_block(dl, i, copy + off, len);
        }
    assert_false(fleet_dl_finish(dl, vec_enc_sha, &dec));
    assert_false(dec); /* the GCM tag fails too */
    fleet_dl_free(dl);
}

static void test_download_plain(void **state)
{
    /* the same bytes as an unencrypted file: only the SHA-256 is checked */
    fleet_dl *dl = fleet_dl_new(sizeof vec_enc_file, 4096, 1, NULL);
    uint8_t wrong[32] = {0};
    bool dec;
    (void)state;

    while (!fleet_dl_complete(dl))
        deliver_bs(dl, 0, 4096);
    assert_true(fleet_dl_finish(dl, vec_enc_sha, &dec));
    fleet_dl_free(dl);
    dl = fleet_dl_new(sizeof vec_enc_file, 4096, 2, NULL);
    while (!fleet_dl_complete(dl))
        deliver_bs(dl, 0, 4096);
    assert_false(fleet_dl_finish(dl, wrong, &dec));
    assert_true(dec);
    fleet_dl_free(dl);
    assert_null(fleet_dl_new(100, 256, 65, NULL));          /* window over 64 */
    assert_null(fleet_dl_new(10, 256, 8, vec_content_key)); /* shorter than nonce + tag */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_description),  cmocka_unit_test(test_refused_descriptions),
        cmocka_unit_test(test_retry_same_counter), cmocka_unit_test(test_es256),
        cmocka_unit_test(test_load_pub),           cmocka_unit_test(test_vehicle_key_and_unwrap),
        cmocka_unit_test(test_download_in_order),  cmocka_unit_test(test_download_resume_bitmap),
        cmocka_unit_test(test_download_tampered),  cmocka_unit_test(test_download_plain),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
