/*
 * fleet_crypto.c — what a simulated vehicle checks in a package description: the
 * COSE_Sign1 envelope (tag 18, [protected, {4: kid, "req"?: uint}, payload, signature]),
 * the signature over the RFC 9052 Sig_structure ["Signature1", protected, h'', payload]
 * with the algorithm of the key it trusts (Ed25519: protected {1: -8}; ECDSA P-256 with
 * SHA-256: {1: -7}, the signature raw r || s), the description's fields (vin, ctr, iat,
 * exp, task, to, ecus, key), and the
 * content key wrapped for the vehicle (X25519 with the description's ephemeral key,
 * HKDF-SHA256 with salt epk || vehicle public key, AES-256-GCM with the VIN as AAD).
 *
 * libcbor decodes, OpenSSL 3 does every primitive; nothing here is hand-written crypto.
 */
#include "fleet_crypto.h"

#include <cbor.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COSE_TAG_SIGN1 18
#define COSE_HDR_ALG 1
#define COSE_HDR_KID 4
#define COSE_ALG_EDDSA (-8)
#define COSE_ALG_ES256 (-7)
#define KEY_ALG "X25519-HKDF-SHA256-A256GCM"
#define KEY_INFO "mosquitto-ota content key v1"
#define VEHICLE_KEY_LABEL "ota-fleet vehicle key v1"

const char *fleet_desc_verdict_name(fleet_desc_verdict v)
{
    static const char *const names[] = {"ok",
                                        "not a COSE_Sign1",
                                        "algorithm is not the key's",
                                        "kid is not the plugin's key",
                                        "bad signature",
                                        "bad description",
                                        "issued to another VIN",
                                        "expired",
                                        "counter below the last one, or equal with another payload",
                                        "not the notified task or version"};
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "?";
}

void fleet_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- CBOR access ---- */

cbor_item_t *fleet_cbor_get(cbor_item_t *map, const char *name)
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
    cbor_item_t *v = fleet_cbor_get(map, key);
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
    cbor_item_t *v = fleet_cbor_get(map, key);

    if (v == NULL || !cbor_isa_uint(v))
        return false;
    *out = cbor_get_int(v);
    return true;
}

static bool get_bytes(cbor_item_t *map, const char *key, uint8_t *out, size_t n)
{
    cbor_item_t *v = fleet_cbor_get(map, key);

    if (!is_bytes(v) || cbor_bytestring_length(v) != n)
        return false;
    memcpy(out, cbor_bytestring_handle(v), n);
    return true;
}

/* ---- the description ---- */

static bool parse_ecu(cbor_item_t *item, fleet_desc_ecu *e)
{
    cbor_item_t *file = fleet_cbor_get(item, "file");

    if (!get_text(item, "ecu", e->ecu, sizeof e->ecu) || !get_uint(item, "order", &e->order) ||
        file == NULL || !get_text(file, "name", e->name, sizeof e->name) ||
        !get_uint(file, "size", &e->size) || !get_bytes(file, "sha256", e->sha256, 32))
        return false;
    if (!get_text(item, "version", e->version, sizeof e->version))
        e->version[0] = '\0';
    fleet_hex(e->sha256, 32, e->sha_hex);
    return true;
}

static bool parse_key(cbor_item_t *key, fleet_desc *d)
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

static bool parse_description(cbor_item_t *root, fleet_desc *d)
{
    cbor_item_t *ecus = fleet_cbor_get(root, "ecus");

    memset(d, 0, sizeof *d);
    if (!get_text(root, "vin", d->vin, sizeof d->vin) ||
        !get_text(root, "task", d->task, sizeof d->task) ||
        !get_text(root, "to", d->to, sizeof d->to) || !get_uint(root, "ctr", &d->ctr) ||
        !get_uint(root, "iat", &d->iat) || !get_uint(root, "exp", &d->exp) || ecus == NULL ||
        !cbor_isa_array(ecus) || cbor_array_size(ecus) == 0 ||
        cbor_array_size(ecus) > FLEET_MAX_ECUS)
        return false;
    d->n_ecus = (uint32_t)cbor_array_size(ecus);
    for (uint32_t i = 0; i < d->n_ecus; i++)
        if (!parse_ecu(cbor_array_handle(ecus)[i], &d->ecus[i]))
            return false;
    return parse_key(fleet_cbor_get(root, "key"), d);
}

/* ---- COSE_Sign1 ---- */

/* kid: the first 8 bytes of SHA-256 of the encoded public key (Ed25519: its raw 32
 * bytes; P-256: the uncompressed point, 65 bytes). */
static int pub_kid(EVP_PKEY *k, int alg, uint8_t kid[8])
{
    uint8_t raw[65], digest[32];
    size_t n = sizeof raw;
    unsigned int dlen = 0;
    int ok = alg == COSE_ALG_EDDSA
                 ? EVP_PKEY_get_raw_public_key(k, raw, &n) == 1
                 : EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, raw, n, &n) == 1;

    if (!ok || EVP_Digest(raw, n, digest, &dlen, EVP_sha256(), NULL) != 1)
        return -1;
    memcpy(kid, digest, 8);
    return 0;
}

static int pub_take(EVP_PKEY *k, fleet_pub *pub)
{
    char group[32] = "";

    memset(pub, 0, sizeof *pub);
    if (k != NULL && EVP_PKEY_id(k) == EVP_PKEY_ED25519)
        pub->alg = COSE_ALG_EDDSA;
    else if (k != NULL && EVP_PKEY_id(k) == EVP_PKEY_EC &&
             EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            NULL) == 1 &&
             strcmp(group, "prime256v1") == 0)
        pub->alg = COSE_ALG_ES256;
    if (pub->alg == 0 || pub_kid(k, pub->alg, pub->kid) != 0) {
        EVP_PKEY_free(k);
        pub->alg = 0;
        return -1;
    }
    pub->key = k;
    return 0;
}

int fleet_crypto_load_pub(const char *path, fleet_pub *pub)
{
    FILE *fp = fopen(path, "r");

    memset(pub, 0, sizeof *pub);
    if (fp == NULL)
        return -1;
    EVP_PKEY *k = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    return pub_take(k, pub);
}

int fleet_crypto_pub_from_pem(const char *pem, fleet_pub *pub)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    return pub_take(k, pub);
}

void fleet_pub_free(fleet_pub *pub)
{
    EVP_PKEY_free(pub->key);
    memset(pub, 0, sizeof *pub);
}

/* The protected header is exactly {1: alg} of the key. */
static bool protected_is(cbor_item_t *prot, int alg)
{
    struct cbor_load_result res;
    cbor_item_t *hdr = cbor_load(cbor_bytestring_handle(prot), cbor_bytestring_length(prot), &res);
    cbor_item_t *v;
    bool ok;

    if (hdr == NULL)
        return false;
    ok = cbor_isa_map(hdr) && cbor_map_size(hdr) == 1 && (v = map_int(hdr, COSE_HDR_ALG)) != NULL &&
         cbor_isa_negint(v) && -1 - (int64_t)cbor_get_int(v) == alg;
    cbor_decref(&hdr);
    return ok;
}

static bool kid_matches(cbor_item_t *unprot, const fleet_pub *pub)
{
    cbor_item_t *kid = cbor_isa_map(unprot) ? map_int(unprot, COSE_HDR_KID) : NULL;

    return is_bytes(kid) && cbor_bytestring_length(kid) == 8 &&
           memcmp(cbor_bytestring_handle(kid), pub->kid, 8) == 0;
}

/* The request id of the unprotected header {"req": uint}, when there. */
static void header_req(cbor_item_t *unprot, fleet_desc *out)
{
    cbor_item_t *req = fleet_cbor_get(unprot, "req");

    out->has_req = req != NULL && cbor_isa_uint(req);
    out->req = out->has_req ? cbor_get_int(req) : 0;
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

/* ES256's raw r || s as the DER OpenSSL verifies (malloc'd by OpenSSL), or NULL. */
static uint8_t *es256_der(const uint8_t sig[64], size_t *len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
    uint8_t *der = NULL;
    int n = 0;

    if (s && r && ss && ECDSA_SIG_set0(s, r, ss) == 1) {
        r = ss = NULL; /* owned by s */
        n = i2d_ECDSA_SIG(s, &der);
    }
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? der : NULL;
}

static bool signature_ok(const fleet_pub *pub, cbor_item_t *prot, cbor_item_t *payload,
                         cbor_item_t *sig)
{
    size_t plen = cbor_bytestring_length(prot), ylen = cbor_bytestring_length(payload);
    size_t cap = 64 + plen + ylen, len, slen = 64;
    uint8_t *tbs = malloc(cap);
    uint8_t *der =
        pub->alg == COSE_ALG_ES256 ? es256_der(cbor_bytestring_handle(sig), &slen) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = false;

    if (tbs && md && (der || pub->alg == COSE_ALG_EDDSA)) {
        len = cbor_encode_array_start(4, tbs, cap);
        len = put_head_bytes(tbs, len, cap, true, "Signature1", 10);
        len = put_head_bytes(tbs, len, cap, false, cbor_bytestring_handle(prot), plen);
        len = put_head_bytes(tbs, len, cap, false, "", 0);
        len = put_head_bytes(tbs, len, cap, false, cbor_bytestring_handle(payload), ylen);
        ok = EVP_DigestVerifyInit(md, NULL, pub->alg == COSE_ALG_ES256 ? EVP_sha256() : NULL, NULL,
                                  pub->key) == 1 &&
             EVP_DigestVerify(md, der ? der : cbor_bytestring_handle(sig), slen, tbs, len) == 1;
    }
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    free(tbs);
    return ok;
}

static fleet_desc_verdict verify_sign1(const fleet_pub *pub, cbor_item_t *arr, fleet_desc *out)
{
    cbor_item_t **it = cbor_array_handle(arr);
    struct cbor_load_result res;
    cbor_item_t *desc;
    bool parsed;

    if (!is_bytes(it[0]) || !cbor_isa_map(it[1]) || !is_bytes(it[2]) || !is_bytes(it[3]) ||
        cbor_bytestring_length(it[3]) != 64)
        return FLEET_DESC_BAD_COSE;
    if (!protected_is(it[0], pub->alg))
        return FLEET_DESC_BAD_ALG;
    if (!kid_matches(it[1], pub))
        return FLEET_DESC_BAD_KID;
    if (!signature_ok(pub, it[0], it[2], it[3]))
        return FLEET_DESC_BAD_SIGNATURE;
    desc = cbor_load(cbor_bytestring_handle(it[2]), cbor_bytestring_length(it[2]), &res);
    if (desc == NULL)
        return FLEET_DESC_BAD_PAYLOAD;
    parsed = cbor_isa_map(desc) && parse_description(desc, out);
    cbor_decref(&desc);
    header_req(it[1], out);
    EVP_Digest(cbor_bytestring_handle(it[2]), cbor_bytestring_length(it[2]), out->digest, NULL,
               EVP_sha256(), NULL);
    return parsed ? FLEET_DESC_OK : FLEET_DESC_BAD_PAYLOAD;
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

fleet_desc_verdict fleet_desc_verify(const fleet_pub *pub, const void *msg, size_t len,
                                     fleet_desc *out)
{
    struct cbor_load_result res;
    size_t head = sign1_head(msg, len);
    cbor_item_t *arr;
    fleet_desc_verdict v = FLEET_DESC_BAD_COSE;

    if (head == 0 || (arr = cbor_load((const uint8_t *)msg + head, len - head, &res)) == NULL)
        return FLEET_DESC_BAD_COSE;
    if (res.read == len - head && cbor_isa_array(arr) && cbor_array_is_definite(arr) &&
        cbor_array_size(arr) == 4)
        v = verify_sign1(pub, arr, out);
    cbor_decref(&arr);
    return v;
}

fleet_desc_verdict fleet_desc_check(const fleet_desc *d, const char *vin, int64_t now_ms,
                                    uint64_t last_ctr, const uint8_t *last_digest)
{
    if (strcmp(d->vin, vin) != 0)
        return FLEET_DESC_WRONG_VIN;
    if (now_ms < 0 || d->exp <= (uint64_t)now_ms)
        return FLEET_DESC_EXPIRED;
    if (d->ctr < last_ctr ||
        (d->ctr == last_ctr && (last_digest == NULL || memcmp(d->digest, last_digest, 32) != 0)))
        return FLEET_DESC_OLD_CTR;
    return FLEET_DESC_OK;
}

/* ---- the vehicle's key and the content key ---- */

int fleet_crypto_vehicle_key(const char *seed, const char *vin, uint8_t priv[32], uint8_t pub[32])
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

int fleet_crypto_unwrap(const fleet_desc *d, const uint8_t priv[32], const char *vin,
                        uint8_t key[FLEET_KEY_LEN])
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
