/*
 * cose.c — COSE_Sign1 with Ed25519 (ota_cose.h): signing of package descriptions (on the
 * plugin's signer threads, plugin/signer.c), verification for tests and tools.
 *
 * The envelope has a fixed shape, so it is written with libcbor's streaming encoders into
 * one buffer sized up front: tag 18, array of 4, the protected header bytes (always
 * h'A10127', {1: -8}), the unprotected map {4: kid}, the payload and the signature. The
 * Sig_structure ["Signature1", protected, h'', payload] is written the same way into a
 * second buffer and signed with EVP_DigestSign (Ed25519 is one-shot: no digest). A caller
 * that signs often (the signer threads, plugin/signer.c) keeps one EVP_MD_CTX per thread.
 * Verification loads the message with the strict reader (cbor_util.h) and checks every
 * part before the signature.
 */
#include "ota_cose.h"
#include "cbor_util.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t PROTECTED[] = {0xA1, 0x01, 0x27}; /* {1: -8} */
static const char CONTEXT[] = "Signature1";
#define HEAD_MAX 9

int ota_codec_cose_kid(EVP_PKEY *key, uint8_t kid[OTA_COSE_KID_LEN])
{
    uint8_t raw[32], md[SHA256_DIGEST_LENGTH];
    size_t n = sizeof raw;
    if (key == NULL || EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != sizeof raw)
        return -1;
    SHA256(raw, n, md);
    memcpy(kid, md, OTA_COSE_KID_LEN);
    return 0;
}

typedef struct {
    uint8_t *buf;
    size_t size, pos;
} out_buf;

static void put_head(out_buf *o, size_t (*enc)(size_t, unsigned char *, size_t), size_t n)
{
    o->pos += enc(n, o->buf + o->pos, o->size - o->pos);
}

static void put_bytes(out_buf *o, const uint8_t *b, size_t n)
{
    put_head(o, cbor_encode_bytestring_start, n);
    if (n > 0) /* b may be NULL for the empty external_aad */
        memcpy(o->buf + o->pos, b, n);
    o->pos += n;
}

/* ["Signature1", protected, h'', payload] (malloc'd) or NULL. */
static uint8_t *sig_structure(const uint8_t *payload, size_t len, size_t *out_len)
{
    out_buf o = {malloc(len + 32 + 2 * HEAD_MAX), len + 32 + 2 * HEAD_MAX, 0};
    if (o.buf == NULL)
        return NULL;
    put_head(&o, cbor_encode_array_start, 4);
    put_head(&o, cbor_encode_string_start, sizeof CONTEXT - 1);
    memcpy(o.buf + o.pos, CONTEXT, sizeof CONTEXT - 1);
    o.pos += sizeof CONTEXT - 1;
    put_bytes(&o, PROTECTED, sizeof PROTECTED);
    put_bytes(&o, NULL, 0);
    put_bytes(&o, payload, len);
    *out_len = o.pos;
    return o.buf;
}

/* Ed25519 signature of the Sig_structure of payload into sig, with ctx (reset first, so
 * one context serves many signatures). 0, or -1. */
static int sign_payload(EVP_MD_CTX *ctx, EVP_PKEY *key, const uint8_t *payload, size_t len,
                        uint8_t sig[OTA_ED25519_SIG_LEN])
{
    size_t tbs_len = 0, sig_len = OTA_ED25519_SIG_LEN;
    uint8_t *tbs = sig_structure(payload, len, &tbs_len);
    int ok = tbs != NULL && EVP_MD_CTX_reset(ctx) == 1 &&
             EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &sig_len, tbs, tbs_len) == 1 &&
             sig_len == OTA_ED25519_SIG_LEN;
    free(tbs);
    return ok ? 0 : -1;
}

uint8_t *ota_codec_cose_sign(EVP_PKEY *key, const uint8_t kid[OTA_COSE_KID_LEN],
                             const uint8_t *payload, size_t len, size_t *out_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *out = ctx ? ota_codec_cose_sign_ctx(ctx, key, kid, payload, len, out_len) : NULL;
    EVP_MD_CTX_free(ctx);
    return out;
}

uint8_t *ota_codec_cose_sign_ctx(EVP_MD_CTX *ctx, EVP_PKEY *key,
                                 const uint8_t kid[OTA_COSE_KID_LEN], const uint8_t *payload,
                                 size_t len, size_t *out_len)
{
    uint8_t sig[OTA_ED25519_SIG_LEN];
    if (key == NULL || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
        sign_payload(ctx, key, payload, len, sig) != 0)
        return NULL;
    size_t size = len + sizeof PROTECTED + OTA_COSE_KID_LEN + OTA_ED25519_SIG_LEN + 8 * HEAD_MAX;
    out_buf o = {malloc(size), size, 0};
    if (o.buf == NULL)
        return NULL;
    o.pos += cbor_encode_tag(18, o.buf, o.size);
    put_head(&o, cbor_encode_array_start, 4);
    put_bytes(&o, PROTECTED, sizeof PROTECTED);
    put_head(&o, cbor_encode_map_start, 1);
    o.pos += cbor_encode_uint(4, o.buf + o.pos, o.size - o.pos);
    put_bytes(&o, kid, OTA_COSE_KID_LEN);
    put_bytes(&o, payload, len);
    put_bytes(&o, sig, sizeof sig);
    *out_len = o.pos;
    return o.buf;
}

/* ---------------------------------------------------------------- verification */

static int bad(ota_error *err, const char *what)
{
    return ota_error_set(err, OTA_E_BAD_REQUEST, "pkg/desc: %s", what);
}

static bool bytes_item(const cbor_item_t *it, size_t len_or_0)
{
    return cbor_isa_bytestring(it) && cbor_bytestring_is_definite(it) &&
           (len_or_0 == 0 || cbor_bytestring_length(it) == len_or_0);
}

/* The unprotected map: empty, or {4: kid} with the key's kid. */
static int check_unprotected(EVP_PKEY *pub, const cbor_item_t *m, ota_error *err)
{
    uint8_t kid[OTA_COSE_KID_LEN];
    if (!cbor_isa_map(m) || cbor_map_size(m) > 1)
        return bad(err, "unprotected header is not {4: kid}");
    if (cbor_map_size(m) == 0)
        return 0;
    struct cbor_pair *p = cbor_map_handle(m);
    if (!cbor_isa_uint(p[0].key) || cbor_get_int(p[0].key) != 4 ||
        !bytes_item(p[0].value, OTA_COSE_KID_LEN))
        return bad(err, "unprotected header is not {4: kid}");
    if (ota_codec_cose_kid(pub, kid) != 0 ||
        memcmp(kid, cbor_bytestring_handle(p[0].value), OTA_COSE_KID_LEN) != 0)
        return bad(err, "kid is not the one of this key");
    return 0;
}

/* The Ed25519 signature over the Sig_structure of payload. */
static int check_signature(EVP_PKEY *pub, const uint8_t *payload, size_t len, const uint8_t *sig,
                           ota_error *err)
{
    size_t tbs_len = 0;
    uint8_t *tbs = sig_structure(payload, len, &tbs_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = tbs != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, OTA_ED25519_SIG_LEN, tbs, tbs_len) == 1;
    EVP_MD_CTX_free(ctx);
    free(tbs);
    return ok ? 0 : bad(err, "signature does not verify");
}

/* Checks the 4 parts of the array a; *payload is the third. */
static int check_parts(EVP_PKEY *pub, const cbor_item_t *a, const cbor_item_t **payload,
                       ota_error *err)
{
    cbor_item_t *const *v = cbor_isa_array(a) ? cbor_array_handle(a) : NULL;
    if (v == NULL || cbor_array_size(a) != 4)
        return bad(err, "COSE_Sign1 is not an array of 4");
    if (!bytes_item(v[0], sizeof PROTECTED) ||
        memcmp(cbor_bytestring_handle(v[0]), PROTECTED, sizeof PROTECTED) != 0)
        return bad(err, "protected header is not {1: -8} (EdDSA)");
    if (check_unprotected(pub, v[1], err) != 0)
        return -1;
    if (!cbor_isa_bytestring(v[2]) || !cbor_bytestring_is_definite(v[2]) ||
        !bytes_item(v[3], OTA_ED25519_SIG_LEN))
        return bad(err, "payload or signature is not a definite byte string");
    if (check_signature(pub, cbor_bytestring_handle(v[2]), cbor_bytestring_length(v[2]),
                        cbor_bytestring_handle(v[3]), err) != 0)
        return -1;
    *payload = v[2];
    return 0;
}

/* Where the bytes of the loaded payload p are inside buf (they are there: p was read from
 * buf, which holds exactly one copy of them as the third part). */
static const uint8_t *locate(const uint8_t *buf, size_t len, const cbor_item_t *p)
{
    size_t n = cbor_bytestring_length(p);
    /* The payload ends right before the signature: 2 header bytes + 64 bytes. */
    size_t end = len - 2 - OTA_ED25519_SIG_LEN;
    return n <= end ? buf + end - n : NULL;
}

/* libcbor 0.8's decoder refuses tags 6..20 as "unassigned", tag 18 among them: the tag's
 * head (one byte, 0xD2, as RFC 9052 and the encoder write it) is checked here and the
 * array after it loaded alone. */
int ota_codec_cose_verify(EVP_PKEY *pub, const uint8_t *buf, size_t len, const uint8_t **payload,
                          size_t *payload_len, ota_error *err)
{
    if (len == 0 || buf[0] != 0xD2)
        return bad(err, "not a COSE_Sign1 (tag 18)");
    cbor_item_t *root = ota_cbor_load(buf + 1, len - 1, "pkg/desc", err);
    if (root == NULL)
        return -1;
    const cbor_item_t *p = NULL;
    int rc = check_parts(pub, root, &p, err);
    if (rc == 0) {
        *payload_len = cbor_bytestring_length(p);
        *payload = locate(buf, len, p);
        rc = *payload != NULL && memcmp(*payload, cbor_bytestring_handle(p), *payload_len) == 0
                 ? 0
                 : bad(err, "payload not where expected");
    }
    cbor_decref(&root);
    return rc;
}
