/*
 * cose.c — COSE_Sign1 with Ed25519 or ES256 (ota_cose.h): signing of package descriptions
 * on the signer threads, the reply's copy with the request's `req`, verification for tests
 * and tools.
 *
 * The envelope has a fixed shape, so it is written with libcbor's streaming encoders into
 * one buffer sized up front: tag 18, array of 4, the protected header bytes ({1: -8} or
 * {1: -7}, by the key's type), the unprotected map {4: kid}, the payload and the
 * signature. The Sig_structure ["Signature1", protected, h'', payload] is written the same
 * way into a second buffer and signed with EVP_DigestSign: Ed25519 one-shot (no digest),
 * ES256 with SHA-256, its DER signature turned into the raw r || s (2 x 32 bytes) COSE
 * wants (RFC 9053 §2.1). A caller that signs often (the signer threads, plugin/signer.c)
 * keeps one EVP_MD_CTX per thread. Verification loads the message with the strict reader
 * (cbor_util.h) and checks every part before the signature.
 */
#include "ota_cose.h"
#include "cbor_util.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t PROT_EDDSA[] = {0xA1, 0x01, 0x27}; /* {1: -8} */
static const uint8_t PROT_ES256[] = {0xA1, 0x01, 0x26}; /* {1: -7} */
#define PROT_LEN 3
static const char CONTEXT[] = "Signature1";
static const char REQ_LABEL[] = "req";
#define HEAD_MAX 9
/* tag 18, array of 4, bstr(3) protected: the bytes before the unprotected map */
#define ENVELOPE_HEAD (1 + 1 + 1 + PROT_LEN)
/* the unprotected map {4: kid} as signed: A1 04 48 kid */
#define UNPROT_LEN (3 + OTA_COSE_KID_LEN)

ota_cose_alg ota_codec_cose_alg(EVP_PKEY *key)
{
    if (key != NULL && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519)
        return OTA_COSE_EDDSA;
    char group[32];
    if (key != NULL && EVP_PKEY_get_id(key) == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       NULL) == 1 &&
        strcmp(group, "prime256v1") == 0)
        return OTA_COSE_ES256;
    return OTA_COSE_NONE;
}

const char *ota_codec_cose_alg_name(ota_cose_alg alg)
{
    return alg == OTA_COSE_EDDSA ? "ed25519" : alg == OTA_COSE_ES256 ? "es256" : "?";
}

static const uint8_t *protected_of(ota_cose_alg alg)
{
    return alg == OTA_COSE_ES256 ? PROT_ES256 : PROT_EDDSA;
}

/* The encoded public key (Ed25519: raw 32 bytes; P-256: the uncompressed SEC1 point,
 * 65 bytes) into raw (OTA_COSE_PUB_MAX bytes); its length, or 0. */
#define OTA_COSE_PUB_MAX 65
static size_t encoded_public(EVP_PKEY *key, uint8_t raw[OTA_COSE_PUB_MAX])
{
    size_t n = OTA_COSE_PUB_MAX;
    switch (ota_codec_cose_alg(key)) {
    case OTA_COSE_EDDSA:
        return EVP_PKEY_get_raw_public_key(key, raw, &n) == 1 ? n : 0;
    case OTA_COSE_ES256:
        return EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, raw, n, &n) == 1 &&
                       n == OTA_COSE_PUB_MAX && raw[0] == 0x04
                   ? n
                   : 0;
    case OTA_COSE_NONE:
        break;
    }
    return 0;
}

int ota_codec_cose_kid(EVP_PKEY *key, uint8_t kid[OTA_COSE_KID_LEN])
{
    uint8_t raw[OTA_COSE_PUB_MAX], md[SHA256_DIGEST_LENGTH];
    size_t n = encoded_public(key, raw);
    if (n == 0)
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

static void put_raw(out_buf *o, const void *b, size_t n)
{
    if (n > 0) /* b may be NULL for the empty external_aad */
        memcpy(o->buf + o->pos, b, n);
    o->pos += n;
}

static void put_bytes(out_buf *o, const uint8_t *b, size_t n)
{
    put_head(o, cbor_encode_bytestring_start, n);
    put_raw(o, b, n);
}

/* ["Signature1", protected, h'', payload] (malloc'd) or NULL. */
static uint8_t *sig_structure(const uint8_t *prot, const uint8_t *payload, size_t len,
                              size_t *out_len)
{
    out_buf o = {malloc(len + 32 + 2 * HEAD_MAX), len + 32 + 2 * HEAD_MAX, 0};
    if (o.buf == NULL)
        return NULL;
    put_head(&o, cbor_encode_array_start, 4);
    put_head(&o, cbor_encode_string_start, sizeof CONTEXT - 1);
    put_raw(&o, CONTEXT, sizeof CONTEXT - 1);
    put_bytes(&o, prot, PROT_LEN);
    put_bytes(&o, NULL, 0);
    put_bytes(&o, payload, len);
    *out_len = o.pos;
    return o.buf;
}

/* DER ECDSA-Sig-Value -> r || s, 32 bytes each. 0, or -1. */
static int ecdsa_der_to_raw(const uint8_t *der, size_t len, uint8_t sig[OTA_COSE_SIG_LEN])
{
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &der, (long)len);
    int ok = s != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
             BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32;
    ECDSA_SIG_free(s);
    return ok ? 0 : -1;
}

/* r || s -> DER (malloc'd by OpenSSL, *len), or NULL. */
static uint8_t *ecdsa_raw_to_der(const uint8_t sig[OTA_COSE_SIG_LEN], size_t *len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
    uint8_t *der = NULL;
    if (s == NULL || r == NULL || ss == NULL || ECDSA_SIG_set0(s, r, ss) != 1) {
        BN_free(r);
        BN_free(ss);
        ECDSA_SIG_free(s);
        return NULL;
    }
    int n = i2d_ECDSA_SIG(s, &der);
    ECDSA_SIG_free(s);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? der : NULL;
}

/* The signature of the Sig_structure of payload into sig, with ctx (reset first, so one
 * context serves many signatures). 0, or -1. */
static int sign_payload(EVP_MD_CTX *ctx, EVP_PKEY *key, ota_cose_alg alg, const uint8_t *payload,
                        size_t len, uint8_t sig[OTA_COSE_SIG_LEN])
{
    size_t tbs_len = 0;
    uint8_t der[80];
    size_t der_len = alg == OTA_COSE_ES256 ? sizeof der : OTA_COSE_SIG_LEN;
    uint8_t *out = alg == OTA_COSE_ES256 ? der : sig;
    uint8_t *tbs = sig_structure(protected_of(alg), payload, len, &tbs_len);
    int ok = tbs != NULL && EVP_MD_CTX_reset(ctx) == 1 &&
             EVP_DigestSignInit(ctx, NULL, alg == OTA_COSE_ES256 ? EVP_sha256() : NULL, NULL,
                                key) == 1 &&
             EVP_DigestSign(ctx, out, &der_len, tbs, tbs_len) == 1;
    free(tbs);
    if (ok && alg == OTA_COSE_ES256)
        return ecdsa_der_to_raw(der, der_len, sig);
    return ok && der_len == OTA_COSE_SIG_LEN ? 0 : -1;
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
    uint8_t sig[OTA_COSE_SIG_LEN];
    ota_cose_alg alg = ota_codec_cose_alg(key);
    if (alg == OTA_COSE_NONE || sign_payload(ctx, key, alg, payload, len, sig) != 0)
        return NULL;
    size_t size = len + PROT_LEN + OTA_COSE_KID_LEN + OTA_COSE_SIG_LEN + 8 * HEAD_MAX;
    out_buf o = {malloc(size), size, 0};
    if (o.buf == NULL)
        return NULL;
    o.pos += cbor_encode_tag(18, o.buf, o.size);
    put_head(&o, cbor_encode_array_start, 4);
    put_bytes(&o, protected_of(alg), PROT_LEN);
    put_head(&o, cbor_encode_map_start, 1);
    o.pos += cbor_encode_uint(4, o.buf + o.pos, o.size - o.pos);
    put_bytes(&o, kid, OTA_COSE_KID_LEN);
    put_bytes(&o, payload, len);
    put_bytes(&o, sig, sizeof sig);
    *out_len = o.pos;
    return o.buf;
}

/* ---------------------------------------------------------------- the reply's req */

size_t ota_codec_cose_with_req(const uint8_t *cose, size_t len, uint64_t req, uint8_t *out,
                               size_t cap)
{
    size_t rest = ENVELOPE_HEAD + UNPROT_LEN;
    if (len < rest || cose[0] != 0xD2 || cose[ENVELOPE_HEAD] != 0xA1 ||
        cap < len + OTA_COSE_REQ_EXTRA)
        return 0; /* not what ota_codec_cose_sign wrote, or no room */
    out_buf o = {out, cap, 0};
    put_raw(&o, cose, ENVELOPE_HEAD);
    put_head(&o, cbor_encode_map_start, 2);
    put_raw(&o, cose + ENVELOPE_HEAD + 1, UNPROT_LEN - 1); /* 4: kid */
    put_head(&o, cbor_encode_string_start, sizeof REQ_LABEL - 1);
    put_raw(&o, REQ_LABEL, sizeof REQ_LABEL - 1);
    o.pos += cbor_encode_uint(req, o.buf + o.pos, o.size - o.pos);
    put_raw(&o, cose + rest, len - rest); /* payload, signature */
    return o.pos;
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

static bool is_req_label(const cbor_item_t *k)
{
    return cbor_isa_string(k) && cbor_string_is_definite(k) &&
           cbor_string_length(k) == sizeof REQ_LABEL - 1 &&
           memcmp(cbor_string_handle(k), REQ_LABEL, sizeof REQ_LABEL - 1) == 0;
}

/* One entry of the unprotected map: 4: kid (of this key) or "req": uint. */
static int check_header(EVP_PKEY *pub, const struct cbor_pair *p, ota_cose_info *info,
                        ota_error *err)
{
    uint8_t kid[OTA_COSE_KID_LEN];
    if (is_req_label(p->key) && cbor_isa_uint(p->value) && !info->has_req) {
        info->has_req = true;
        info->req = cbor_get_int(p->value);
        return 0;
    }
    if (!cbor_isa_uint(p->key) || cbor_get_int(p->key) != 4 || info->has_kid ||
        !bytes_item(p->value, OTA_COSE_KID_LEN))
        return bad(err, "unprotected header is not {4: kid, \"req\"?: uint}");
    info->has_kid = true;
    if (ota_codec_cose_kid(pub, kid) != 0 ||
        memcmp(kid, cbor_bytestring_handle(p->value), OTA_COSE_KID_LEN) != 0)
        return bad(err, "kid is not the one of this key");
    return 0;
}

/* The unprotected map: {4: kid?, "req"?: uint} with the key's kid. */
static int check_unprotected(EVP_PKEY *pub, const cbor_item_t *m, ota_cose_info *info,
                             ota_error *err)
{
    if (!cbor_isa_map(m) || cbor_map_size(m) > 2)
        return bad(err, "unprotected header is not {4: kid, \"req\"?: uint}");
    struct cbor_pair *p = cbor_map_handle(m);
    for (size_t i = 0; i < cbor_map_size(m); i++)
        if (check_header(pub, &p[i], info, err) != 0)
            return -1;
    return 0;
}

/* The signature over the Sig_structure of payload, with the algorithm of the key. */
static int check_signature(EVP_PKEY *pub, ota_cose_alg alg, const uint8_t *payload, size_t len,
                           const uint8_t *sig, ota_error *err)
{
    size_t tbs_len = 0, sig_len = OTA_COSE_SIG_LEN;
    uint8_t *der = alg == OTA_COSE_ES256 ? ecdsa_raw_to_der(sig, &sig_len) : NULL;
    uint8_t *tbs = sig_structure(protected_of(alg), payload, len, &tbs_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = tbs != NULL && ctx != NULL && (alg != OTA_COSE_ES256 || der != NULL) &&
             EVP_DigestVerifyInit(ctx, NULL, alg == OTA_COSE_ES256 ? EVP_sha256() : NULL, NULL,
                                  pub) == 1 &&
             EVP_DigestVerify(ctx, der ? der : sig, sig_len, tbs, tbs_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    free(tbs);
    return ok ? 0 : bad(err, "signature does not verify");
}

/* Checks the 4 parts of the array a; *payload is the third. */
static int check_parts(EVP_PKEY *pub, const cbor_item_t *a, const cbor_item_t **payload,
                       ota_cose_info *info, ota_error *err)
{
    cbor_item_t *const *v = cbor_isa_array(a) ? cbor_array_handle(a) : NULL;
    ota_cose_alg alg = ota_codec_cose_alg(pub);
    if (v == NULL || cbor_array_size(a) != 4)
        return bad(err, "COSE_Sign1 is not an array of 4");
    if (alg == OTA_COSE_NONE)
        return bad(err, "the key is neither Ed25519 nor P-256");
    if (!bytes_item(v[0], PROT_LEN) ||
        memcmp(cbor_bytestring_handle(v[0]), protected_of(alg), PROT_LEN) != 0)
        return bad(err, alg == OTA_COSE_ES256 ? "protected header is not {1: -7} (ES256)"
                                              : "protected header is not {1: -8} (EdDSA)");
    if (check_unprotected(pub, v[1], info, err) != 0)
        return -1;
    if (!cbor_isa_bytestring(v[2]) || !cbor_bytestring_is_definite(v[2]) ||
        !bytes_item(v[3], OTA_COSE_SIG_LEN))
        return bad(err, "payload or signature is not a definite byte string");
    if (check_signature(pub, alg, cbor_bytestring_handle(v[2]), cbor_bytestring_length(v[2]),
                        cbor_bytestring_handle(v[3]), err) != 0)
        return -1;
    *payload = v[2];
    info->alg = alg;
    return 0;
}

/* Where the bytes of the loaded payload p are inside buf (they are there: p was read from
 * buf, which holds exactly one copy of them as the third part). */
static const uint8_t *locate(const uint8_t *buf, size_t len, const cbor_item_t *p)
{
    size_t n = cbor_bytestring_length(p);
    /* The payload ends right before the signature: 2 header bytes + 64 bytes. */
    size_t end = len - 2 - OTA_COSE_SIG_LEN;
    return n <= end ? buf + end - n : NULL;
}

/* libcbor 0.8's decoder refuses tags 6..20 as "unassigned", tag 18 among them: the tag's
 * head (one byte, 0xD2, as RFC 9052 and the encoder write it) is checked here and the
 * array after it loaded alone. */
int ota_codec_cose_verify_info(EVP_PKEY *pub, const uint8_t *buf, size_t len,
                               const uint8_t **payload, size_t *payload_len, ota_cose_info *info,
                               ota_error *err)
{
    *info = (ota_cose_info){0};
    if (len == 0 || buf[0] != 0xD2)
        return bad(err, "not a COSE_Sign1 (tag 18)");
    cbor_item_t *root = ota_cbor_load(buf + 1, len - 1, "pkg/desc", err);
    if (root == NULL)
        return -1;
    const cbor_item_t *p = NULL;
    int rc = check_parts(pub, root, &p, info, err);
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

int ota_codec_cose_verify(EVP_PKEY *pub, const uint8_t *buf, size_t len, const uint8_t **payload,
                          size_t *payload_len, ota_error *err)
{
    ota_cose_info info;
    return ota_codec_cose_verify_info(pub, buf, len, payload, payload_len, &info, err);
}
