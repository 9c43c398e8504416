/*
 * vcrypto.c — what a vehicle (ota-agent, ota-fleet's simulated ones) checks in a package
 * description: the COSE_Sign1 envelope (tag 18, [protected {1: alg}, {4: kid}, payload,
 * signature]), the signature over the RFC 9052 Sig_structure ["Signature1", protected,
 * h'', payload] — Ed25519 (alg -8) or ECDSA P-256 with SHA-256 (alg -7, r || s), the one
 * the trusted key is for —, the description's fields (vin, ctr, iat, exp, task, to, ecus, key), and
 * the content key wrapped for the vehicle (X25519 with the description's ephemeral key, HKDF-SHA256
 * with salt epk || vehicle public key, AES-256-GCM with the VIN as AAD).
 *
 * libcbor decodes, OpenSSL 3 does every primitive; nothing here is hand-written crypto.
 */
#include "vcrypto.h"

#include <cbor.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COSE_TAG_SIGN1 18
#define COSE_HDR_ALG 1
#define COSE_HDR_KID 4
#define KEY_ALG "X25519-HKDF-SHA256-A256GCM"
#define KEY_INFO "mosquitto-ota content key v1"
#define VEHICLE_KEY_LABEL "ota-fleet vehicle key v1"

const char *vc_verdict_name(vc_verdict v)
{
    static const char *const names[] = {"ok",
                                        "not a COSE_Sign1",
                                        "algorithm is not EdDSA",
                                        "kid is not the plugin's key",
                                        "bad signature",
                                        "bad description",
                                        "issued to another VIN",
                                        "expired",
                                        "counter not above the last one",
                                        "not the notified task or version"};
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "?";
}

void vc_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- CBOR access ---- */

cbor_item_t *vc_cbor_get(cbor_item_t *map, const char *name)
{
    struct cbor_pair *pairs;
    size_t n = strlen(name);

    if (map == NULL || !cbor_isa_map(map))
        return NULL;
    pairs = cbor_map_handle(map);
    for (size_t i = 0; i < cbor_map_size(map); i++) {
        cbor_item_t *k = pairs[i].key;
        if (cbor_isa_string(k) && cbor_string_is_definite(k) && cbor_string_length(k) == n &&
            memcmp(cbor_string_handle(k), name, n) == 0)
            return pairs[i].value;
    }
    return NULL;
}

/* The value of integer key `key` in map (COSE headers have integer labels). */
static cbor_item_t *map_int(cbor_item_t *map, uint64_t key)
{
    struct cbor_pair *pairs = cbor_map_handle(map);

    for (size_t i = 0; i < cbor_map_size(map); i++)
        if (cbor_isa_uint(pairs[i].key) && cbor_get_int(pairs[i].key) == key)
            return pairs[i].value;
    return NULL;
}

static bool is_bytes(const cbor_item_t *item)
{
    return item && cbor_isa_bytestring(item) && cbor_bytestring_is_definite(item);
}

static bool get_text(cbor_item_t *map, const char *key, char *out, size_t cap)
{
    cbor_item_t *v = vc_cbor_get(map, key);
    size_t n;

    if (v == NULL || !cbor_isa_string(v) || !cbor_string_is_definite(v))
        return false;
    n = cbor_string_length(v);
    if (n >= cap)
        return false;
    memcpy(out, cbor_string_handle(v), n);
    out[n] = '\0';
    return true;
}

static bool get_uint(cbor_item_t *map, const char *key, uint64_t *out)
{
    cbor_item_t *v = vc_cbor_get(map, key);

    if (v == NULL || !cbor_isa_uint(v))
        return false;
    *out = cbor_get_int(v);
    return true;
}

static bool get_bytes(cbor_item_t *map, const char *key, uint8_t *out, size_t n)
{
    cbor_item_t *v = vc_cbor_get(map, key);

    if (!is_bytes(v) || cbor_bytestring_length(v) != n)
        return false;
    memcpy(out, cbor_bytestring_handle(v), n);
    return true;
}

/* ---- the description ---- */

static bool parse_ecu(cbor_item_t *item, vc_desc_ecu *e)
{
    cbor_item_t *file = vc_cbor_get(item, "file");

    if (!get_text(item, "ecu", e->ecu, sizeof e->ecu) || !get_uint(item, "order", &e->order) ||
        file == NULL || !get_text(file, "name", e->name, sizeof e->name) ||
        !get_uint(file, "size", &e->size) || !get_bytes(file, "sha256", e->sha256, 32))
        return false;
    if (!get_text(item, "version", e->version, sizeof e->version))
        e->version[0] = '\0';
    vc_hex(e->sha256, 32, e->sha_hex);
    return true;
}

static bool parse_key(cbor_item_t *key, vc_desc *d)
{
    char alg[64];

    if (key == NULL)
        return true;
    if (!get_text(key, "alg", alg, sizeof alg) || strcmp(alg, KEY_ALG) != 0 ||
        !get_bytes(key, "epk", d->epk, 32) || !get_bytes(key, "iv", d->iv, 12) ||
        !get_bytes(key, "ct", d->ct, 48))
        return false;
    d->has_key = true;
    return true;
}

static bool is_text(const cbor_item_t *v)
{
    return v != NULL && cbor_isa_string(v) && cbor_string_is_definite(v);
}

/* A {tag: text} map of the description's texts (issue 17), or absent. */
static bool lang_map_ok(cbor_item_t *m)
{
    if (m == NULL)
        return true;
    if (!cbor_isa_map(m) || !cbor_map_is_definite(m))
        return false;
    struct cbor_pair *p = cbor_map_handle(m);
    for (size_t i = 0; i < cbor_map_size(m); i++)
        if (!is_text(p[i].key) || !is_text(p[i].value))
            return false;
    return true;
}

/* texts?: {language: text, prompt?: {tag: text}, result_info?: {tag: text}}. */
static bool texts_ok(cbor_item_t *t)
{
    return t == NULL ||
           (cbor_isa_map(t) && is_text(vc_cbor_get(t, "language")) &&
            lang_map_ok(vc_cbor_get(t, "prompt")) && lang_map_ok(vc_cbor_get(t, "result_info")));
}

static bool parse_description(cbor_item_t *root, vc_desc *d)
{
    cbor_item_t *ecus = vc_cbor_get(root, "ecus");

    memset(d, 0, sizeof *d);
    if (!get_text(root, "vin", d->vin, sizeof d->vin) ||
        !get_text(root, "task", d->task, sizeof d->task) ||
        !get_text(root, "to", d->to, sizeof d->to) || !get_uint(root, "ctr", &d->ctr) ||
        !get_uint(root, "iat", &d->iat) || !get_uint(root, "exp", &d->exp) || ecus == NULL ||
        !cbor_isa_array(ecus) || cbor_array_size(ecus) == 0 ||
        cbor_array_size(ecus) > VC_MAX_ECUS || !texts_ok(vc_cbor_get(root, "texts")))
        return false;
    d->has_req = get_uint(root, "req", &d->req);
    d->n_ecus = (uint32_t)cbor_array_size(ecus);
    for (uint32_t i = 0; i < d->n_ecus; i++)
        if (!parse_ecu(cbor_array_handle(ecus)[i], &d->ecus[i]))
            return false;
    return parse_key(vc_cbor_get(root, "key"), d);
}

/* ---- COSE_Sign1 ---- */

void vc_pub_ed25519(const uint8_t raw[32], vc_pub *pub)
{
    memset(pub, 0, sizeof *pub);
    pub->alg = VC_ALG_EDDSA;
    memcpy(pub->raw, raw, 32);
    pub->len = 32;
}

int vc_load_pub(const char *path, vc_pub *pub)
{
    FILE *fp = fopen(path, "r");
    EVP_PKEY *k;
    size_t n = sizeof pub->raw;
    int rc = -1;

    if (fp == NULL)
        return -1;
    k = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    memset(pub, 0, sizeof *pub);
    if (k && EVP_PKEY_id(k) == EVP_PKEY_ED25519 &&
        EVP_PKEY_get_raw_public_key(k, pub->raw, &n) == 1 && n == 32) {
        pub->alg = VC_ALG_EDDSA;
        rc = 0;
    } else if (k && EVP_PKEY_id(k) == EVP_PKEY_EC && EVP_PKEY_get_bits(k) == 256 &&
               EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub->raw,
                                               sizeof pub->raw, &n) == 1 &&
               n == 65) {
        pub->alg = VC_ALG_ES256;
        rc = 0;
    }
    pub->len = n;
    EVP_PKEY_free(k);
    return rc;
}

/* The protected header must be exactly {1: alg} of the trusted key: the algorithm is
 * never taken from the message. */
static bool protected_is(cbor_item_t *prot, int alg)
{
    struct cbor_load_result res;
    cbor_item_t *hdr = cbor_load(cbor_bytestring_handle(prot), cbor_bytestring_length(prot), &res);
    cbor_item_t *a;
    bool ok;

    if (hdr == NULL)
        return false;
    ok = cbor_isa_map(hdr) && cbor_map_size(hdr) == 1 && (a = map_int(hdr, COSE_HDR_ALG)) != NULL &&
         cbor_isa_negint(a) && (int)cbor_get_int(a) == -alg - 1;
    cbor_decref(&hdr);
    return ok;
}

static bool kid_matches(cbor_item_t *unprot, const vc_pub *pub)
{
    uint8_t digest[32];
    unsigned int dlen = 0;
    cbor_item_t *kid = cbor_isa_map(unprot) ? map_int(unprot, COSE_HDR_KID) : NULL;

    if (!is_bytes(kid) || cbor_bytestring_length(kid) != 8)
        return false;
    if (EVP_Digest(pub->raw, pub->len, digest, &dlen, EVP_sha256(), NULL) != 1)
        return false;
    return memcmp(cbor_bytestring_handle(kid), digest, 8) == 0;
}

/* Appends a CBOR head plus raw bytes; returns the new length. */
static size_t put_head_bytes(uint8_t *buf, size_t len, size_t cap, bool text, const void *data,
                             size_t n)
{
    size_t h = text ? cbor_encode_string_start(n, buf + len, cap - len)
                    : cbor_encode_bytestring_start(n, buf + len, cap - len);
    memcpy(buf + len + h, data, n);
    return len + h + n;
}

/* The Sig_structure ["Signature1", protected, h'', payload]; *len its size. */
static uint8_t *sig_structure(cbor_item_t *prot, cbor_item_t *payload, size_t *len)
{
    size_t plen = cbor_bytestring_length(prot), ylen = cbor_bytestring_length(payload);
    size_t cap = 64 + plen + ylen;
    uint8_t *tbs = malloc(cap);

    if (tbs == NULL)
        return NULL;
    *len = cbor_encode_array_start(4, tbs, cap);
    *len = put_head_bytes(tbs, *len, cap, true, "Signature1", 10);
    *len = put_head_bytes(tbs, *len, cap, false, cbor_bytestring_handle(prot), plen);
    *len = put_head_bytes(tbs, *len, cap, false, "", 0);
    *len = put_head_bytes(tbs, *len, cap, false, cbor_bytestring_handle(payload), ylen);
    return tbs;
}

/* The P-256 public key from its uncompressed point. */
static EVP_PKEY *p256_key(const vc_pub *pub)
{
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *k = NULL;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub->raw, pub->len);
    params[2] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(ctx);
    return k;
}

/* COSE's ECDSA signature is r || s (32 bytes each); OpenSSL verifies DER. *der_len 0 on
 * failure; the caller frees *der with OPENSSL_free. */
static unsigned char *ecdsa_der(const uint8_t rs[64], int *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
    unsigned char *der = NULL;

    *der_len = 0;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig */
        *der_len = i2d_ECDSA_SIG(sig, &der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return *der_len > 0 ? der : NULL;
}

static bool signature_ok(const vc_pub *pub, cbor_item_t *prot, cbor_item_t *payload,
                         cbor_item_t *sig)
{
    size_t len = 0;
    uint8_t *tbs = sig_structure(prot, payload, &len);
    bool es = pub->alg == VC_ALG_ES256;
    EVP_PKEY *k =
        es ? p256_key(pub) : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub->raw, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const unsigned char *sb = cbor_bytestring_handle(sig);
    unsigned char *der = NULL;
    int slen = (int)cbor_bytestring_length(sig);
    bool ok = false;

    if (es)
        sb = der = ecdsa_der(sb, &slen);
    if (tbs && k && md && sb &&
        EVP_DigestVerifyInit(md, NULL, es ? EVP_sha256() : NULL, NULL, k) == 1)
        ok = EVP_DigestVerify(md, sb, (size_t)slen, tbs, len) == 1;
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(tbs);
    return ok;
}

/* A pre-signed description carries the request id outside the signed payload: text key
 * "req" of the unprotected header. The payload's `req`, when present, wins. */
static void unprotected_req(cbor_item_t *unprot, vc_desc *d)
{
    cbor_item_t *v = vc_cbor_get(unprot, "req");

    if (!d->has_req && v && cbor_isa_uint(v)) {
        d->has_req = true;
        d->req = cbor_get_int(v);
    }
}

static vc_verdict verify_sign1(const vc_pub *pub, cbor_item_t *arr, vc_desc *out)
{
    cbor_item_t **it = cbor_array_handle(arr);
    struct cbor_load_result res;
    cbor_item_t *desc;
    bool parsed;

    if (!is_bytes(it[0]) || !cbor_isa_map(it[1]) || !is_bytes(it[2]) || !is_bytes(it[3]) ||
        cbor_bytestring_length(it[3]) != 64)
        return VC_DESC_BAD_COSE;
    if (!protected_is(it[0], pub->alg))
        return VC_DESC_BAD_ALG;
    if (!kid_matches(it[1], pub))
        return VC_DESC_BAD_KID;
    if (!signature_ok(pub, it[0], it[2], it[3]))
        return VC_DESC_BAD_SIGNATURE;
    desc = cbor_load(cbor_bytestring_handle(it[2]), cbor_bytestring_length(it[2]), &res);
    if (desc == NULL)
        return VC_DESC_BAD_PAYLOAD;
    parsed = cbor_isa_map(desc) && parse_description(desc, out);
    cbor_decref(&desc);
    if (parsed) {
        unprotected_req(it[1], out);
        EVP_Digest(cbor_bytestring_handle(it[2]), cbor_bytestring_length(it[2]), out->digest, NULL,
                   EVP_sha256(), NULL);
    }
    return parsed ? VC_DESC_OK : VC_DESC_BAD_PAYLOAD;
}

/* Length of the tag-18 head at the start of msg (0: none). libcbor 0.8 refuses the tags
 * 6..20 in their one-byte form ("unassigned" in its decoder), COSE_Sign1's 0xd2 included:
 * the head is checked here and the tagged array decoded on its own. */
static size_t sign1_head(const uint8_t *m, size_t len)
{
    if (len >= 1 && m[0] == 0xc0 + COSE_TAG_SIGN1)
        return 1;
    if (len >= 2 && m[0] == 0xd8 && m[1] == COSE_TAG_SIGN1)
        return 2;
    return 0;
}

/* libcbor's cbor_load allocates a definite array or map for its declared size before it
 * reads the items: a hostile head (0x9b and 2^64 - 1) asks for more memory than exists.
 * Every item takes at least one byte, so a declared size must fit the bytes left; the
 * heads are walked with the streaming decoder, which allocates nothing (fuzz_desc_texts). */
typedef struct {
    size_t left;
    bool bad;
} size_walk;

static void on_array(void *ctx, size_t n)
{
    size_walk *w = ctx;
    w->bad |= n > w->left;
}

static void on_map(void *ctx, size_t n)
{
    size_walk *w = ctx;
    w->bad |= n > w->left / 2;
}

static bool sizes_fit(const uint8_t *m, size_t len)
{
    struct cbor_callbacks cb = cbor_empty_callbacks;
    cb.array_start = on_array;
    cb.map_start = on_map;
    size_walk w = {0, false};
    for (size_t at = 0; at < len && !w.bad;) {
        w.left = len - at;
        struct cbor_decoder_result r = cbor_stream_decode(m + at, len - at, &cb, &w);
        if (r.status != CBOR_DECODER_FINISHED || r.read == 0)
            return false;
        at += r.read;
    }
    return !w.bad;
}

vc_verdict vc_desc_verify(const vc_pub *pub, const void *msg, size_t len, vc_desc *out)
{
    struct cbor_load_result res;
    size_t head = sign1_head(msg, len);
    cbor_item_t *arr;
    vc_verdict v = VC_DESC_BAD_COSE;

    if (head == 0 || !sizes_fit((const uint8_t *)msg + head, len - head) ||
        (arr = cbor_load((const uint8_t *)msg + head, len - head, &res)) == NULL)
        return VC_DESC_BAD_COSE;
    if (res.read == len - head && cbor_isa_array(arr) && cbor_array_is_definite(arr) &&
        cbor_array_size(arr) == 4)
        v = verify_sign1(pub, arr, out);
    cbor_decref(&arr);
    return v;
}

/* Copies text item v (definite) into out, cut to cap - 1 bytes. */
static void copy_text(const cbor_item_t *v, char *out, size_t cap)
{
    size_t n = cbor_string_length(v);
    n = n < cap ? n : cap - 1;
    memcpy(out, cbor_string_handle(v), n);
    out[n] = '\0';
}

/* The text of field in lang, else in the description's default language, else the
 * plain field; *used the language taken ("" for the plain field). */
static void pick_text(cbor_item_t *root, const char *field, const char *lang, char *out, size_t cap,
                      char *used, size_t used_cap)
{
    cbor_item_t *texts = vc_cbor_get(root, "texts"), *m = vc_cbor_get(texts, field);
    cbor_item_t *def = vc_cbor_get(texts, "language"), *v = NULL;
    char deflang[64] = "";
    if (is_text(def))
        copy_text(def, deflang, sizeof deflang);
    const char *tried[2] = {lang, deflang};
    for (int i = 0; i < 2 && m != NULL && v == NULL; i++) {
        if (tried[i] != NULL && tried[i][0] != '\0' && is_text(vc_cbor_get(m, tried[i]))) {
            v = vc_cbor_get(m, tried[i]);
            snprintf(used, used_cap, "%s", tried[i]);
        }
    }
    if (v == NULL) {
        v = vc_cbor_get(root, field);
        snprintf(used, used_cap, "%s", "");
    }
    if (is_text(v))
        copy_text(v, out, cap);
}

int vc_desc_user_text(const void *msg, size_t len, const char *field, const char *lang, char *out,
                      size_t cap, char *used, size_t used_cap)
{
    struct cbor_load_result res;
    size_t head = sign1_head(msg, len);
    cbor_item_t *arr = NULL, *desc = NULL;
    out[0] = used[0] = '\0';
    if (cap == 0 || head == 0 || !sizes_fit((const uint8_t *)msg + head, len - head) ||
        (arr = cbor_load((const uint8_t *)msg + head, len - head, &res)) == NULL)
        return -1;
    cbor_item_t *payload = cbor_isa_array(arr) && cbor_array_size(arr) == 4
                               ? cbor_array_handle(arr)[2]
                               : NULL;
    if (payload != NULL && is_bytes(payload) &&
        sizes_fit(cbor_bytestring_handle(payload), cbor_bytestring_length(payload)))
        desc = cbor_load(cbor_bytestring_handle(payload), cbor_bytestring_length(payload), &res);
    if (desc != NULL && cbor_isa_map(desc))
        pick_text(desc, field, lang, out, cap, used, used_cap);
    int rc = desc != NULL && cbor_isa_map(desc) ? 0 : -1;
    if (desc != NULL)
        cbor_decref(&desc);
    cbor_decref(&arr);
    return rc;
}

vc_verdict vc_desc_check(const vc_desc *d, const char *vin, int64_t now_ms, uint64_t last_ctr)
{
    return vc_desc_check_retry(d, vin, now_ms, last_ctr, NULL);
}

vc_verdict vc_desc_check_retry(const vc_desc *d, const char *vin, int64_t now_ms, uint64_t last_ctr,
                               const uint8_t *last_digest)
{
    if (strcmp(d->vin, vin) != 0)
        return VC_DESC_WRONG_VIN;
    if (now_ms < 0 || d->exp <= (uint64_t)now_ms)
        return VC_DESC_EXPIRED;
    if (d->ctr < last_ctr ||
        (d->ctr == last_ctr && (last_digest == NULL || memcmp(d->digest, last_digest, 32) != 0)))
        return VC_DESC_OLD_CTR;
    return VC_DESC_OK;
}

/* ---- the vehicle's key and the content key ---- */

int vc_seed_vehicle_key(const char *seed, const char *vin, uint8_t priv[32], uint8_t pub[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY *k = NULL;
    size_t n = 32;
    int rc = -1;

    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, VEHICLE_KEY_LABEL, sizeof VEHICLE_KEY_LABEL) == 1 && /* with NUL */
        EVP_DigestUpdate(md, seed, strlen(seed) + 1) == 1 &&
        EVP_DigestUpdate(md, vin, strlen(vin)) == 1 && EVP_DigestFinal_ex(md, priv, NULL) == 1 &&
        (k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32)) != NULL &&
        EVP_PKEY_get_raw_public_key(k, pub, &n) == 1)
        rc = 0;
    EVP_PKEY_free(k);
    EVP_MD_CTX_free(md);
    return rc;
}

static int x25519(const uint8_t priv[32], const uint8_t peer_pub[32], uint8_t shared[32])
{
    EVP_PKEY *me = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, 32);
    EVP_PKEY_CTX *ctx = me ? EVP_PKEY_CTX_new(me, NULL) : NULL;
    size_t n = 32;
    int rc = -1;

    if (ctx && peer && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
        EVP_PKEY_derive(ctx, shared, &n) == 1 && n == 32)
        rc = 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(me);
    return rc;
}

static int hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                       const char *info, uint8_t out[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = 32;
    int rc = -1;

    if (ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len) == 1 &&
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)) == 1 &&
        EVP_PKEY_derive(ctx, out, &n) == 1 && n == 32)
        rc = 0;
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* AES-256-GCM open of ct (ct_len bytes, tag appended) into out (ct_len - 16 bytes). */
static int gcm_open(const uint8_t key[32], const uint8_t iv[12], const void *aad, size_t aad_len,
                    const uint8_t *ct, size_t ct_len, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, rc = -1;
    size_t body = ct_len - 16;

    if (c && ct_len >= 16 && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
        EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
        EVP_DecryptUpdate(c, out, &n, ct, (int)body) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(ct + body)) == 1 &&
        EVP_DecryptFinal_ex(c, out + n, &n) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int vc_unwrap(const vc_desc *d, const uint8_t priv[32], const char *vin, uint8_t key[VC_KEY_LEN])
{
    uint8_t shared[32], salt[64], wrap[32], pub[32];
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    size_t n = 32;
    int rc = -1;

    if (d->has_key && k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 &&
        x25519(priv, d->epk, shared) == 0) {
        memcpy(salt, d->epk, 32);
        memcpy(salt + 32, pub, 32);
        if (hkdf_sha256(shared, 32, salt, 64, KEY_INFO, wrap) == 0)
            rc = gcm_open(wrap, d->iv, vin, strlen(vin), d->ct, sizeof d->ct, key);
    }
    EVP_PKEY_free(k);
    return rc;
}

/* ---- whole files ---- */

int vc_sha256_file(const char *path, uint8_t out[32])
{
    FILE *fp = fopen(path, "rb");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t buf[65536];
    size_t n;
    int rc = -1;

    if (fp && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
        while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
            EVP_DigestUpdate(md, buf, n);
        if (!ferror(fp) && EVP_DigestFinal_ex(md, out, NULL) == 1)
            rc = 0;
    }
    EVP_MD_CTX_free(md);
    if (fp)
        fclose(fp);
    return rc;
}

/* Streams the ciphertext between the nonce and the tag of `in` (body bytes) into out. */
static int gcm_stream(EVP_CIPHER_CTX *c, FILE *in, FILE *out, long body)
{
    uint8_t buf[65536], plain[65536 + 32];
    int n;

    while (body > 0) {
        size_t want = body < (long)sizeof buf ? (size_t)body : sizeof buf;
        if (fread(buf, 1, want, in) != want ||
            EVP_DecryptUpdate(c, plain, &n, buf, (int)want) != 1 ||
            fwrite(plain, 1, (size_t)n, out) != (size_t)n)
            return -1;
        body -= (long)want;
    }
    return 0;
}

int vc_decrypt_file(const char *in, const char *out, const uint8_t key[VC_KEY_LEN])
{
    FILE *fi = fopen(in, "rb"), *fo = fopen(out, "wb");
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t iv[12], tag[16], tail[32];
    long size = -1;
    int n = 0, rc = -1;

    if (fi && fseek(fi, 0, SEEK_END) == 0)
        size = ftell(fi);
    if (fi && fo && c && size >= 28 && fseek(fi, size - 16, SEEK_SET) == 0 &&
        fread(tag, 1, 16, fi) == 16 && fseek(fi, 0, SEEK_SET) == 0 && fread(iv, 1, 12, fi) == 12 &&
        EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
        gcm_stream(c, fi, fo, size - 28) == 0 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
        EVP_DecryptFinal_ex(c, tail, &n) == 1 && fflush(fo) == 0 && fsync(fileno(fo)) == 0)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    if (fi)
        fclose(fi);
    if (fo && fclose(fo) != 0)
        rc = -1;
    if (rc != 0)
        unlink(out);
    return rc;
}
