/*
 * keywrap.c — content keys of encrypted packages (ota_cose.h): AES-256-GCM sealing (files,
 * the plugin's sealed content keys) and the per-vehicle key wrap (X25519 ECDH with an
 * ephemeral key, HKDF-SHA256, AES-256-GCM with the VIN as AAD), all through OpenSSL EVP;
 * and ota_codec_hex, the lowercase hex text of bytes (keys, digests).
 */
#include "ota_cose.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <string.h>

/* ---------------------------------------------------------------- AES-256-GCM */

/* One AES-256-GCM pass: enc 1 seals (writes tag), 0 opens (checks tag). */
static int gcm(int enc, const uint8_t *key, const uint8_t *iv, const void *aad, size_t aad_len,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c != NULL && len <= INT32_MAX && aad_len <= INT32_MAX &&
                    EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
                    (aad_len == 0 || EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
                    (len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)len) == 1);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, OTA_GCM_TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + (len ? n : 0), &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, OTA_GCM_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

int ota_codec_seal(const uint8_t key[OTA_CONTENT_KEY_LEN], const void *aad, size_t aad_len,
                   const uint8_t *in, size_t len, uint8_t *out)
{
    if (RAND_bytes(out, OTA_GCM_NONCE_LEN) != 1)
        return -1;
    return gcm(1, key, out, aad, aad_len, in, len, out + OTA_GCM_NONCE_LEN,
               out + OTA_GCM_NONCE_LEN + len);
}

int ota_codec_open(const uint8_t key[OTA_CONTENT_KEY_LEN], const void *aad, size_t aad_len,
                   const uint8_t *in, size_t len, uint8_t *out)
{
    if (len < OTA_SEALED_LEN(0))
        return -1;
    size_t n = len - OTA_SEALED_LEN(0);
    uint8_t tag[OTA_GCM_TAG_LEN];
    memcpy(tag, in + OTA_GCM_NONCE_LEN + n, sizeof tag);
    return gcm(0, key, in, aad, aad_len, in + OTA_GCM_NONCE_LEN, n, out, tag);
}

/* Streams in through the cipher into out. */
static int seal_copy(EVP_CIPHER_CTX *c, FILE *in, FILE *out)
{
    uint8_t buf[65536], enc[65536 + 32];
    size_t n;
    int m = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (EVP_EncryptUpdate(c, enc, &m, buf, (int)n) != 1 ||
            fwrite(enc, 1, (size_t)m, out) != (size_t)m)
            return -1;
    }
    if (ferror(in) || EVP_EncryptFinal_ex(c, enc, &m) != 1 ||
        fwrite(enc, 1, (size_t)m, out) != (size_t)m)
        return -1;
    return 0;
}

int ota_codec_seal_stream(const uint8_t key[OTA_CONTENT_KEY_LEN], FILE *in, FILE *out)
{
    uint8_t iv[OTA_GCM_NONCE_LEN], tag[OTA_GCM_TAG_LEN];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c != NULL && RAND_bytes(iv, sizeof iv) == 1 &&
             EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
             fwrite(iv, 1, sizeof iv, out) == sizeof iv && seal_copy(c, in, out) == 0 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag) == 1 &&
             fwrite(tag, 1, sizeof tag, out) == sizeof tag;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- key wrap */

/* X25519 shared secret of mine and the raw public key peer. 0, or -1 (also for a peer of
 * low order, whose secret would be zero: OpenSSL refuses it). */
static int x25519(EVP_PKEY *mine, const uint8_t peer_raw[OTA_X25519_LEN],
                  uint8_t secret[OTA_X25519_LEN])
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_raw, OTA_X25519_LEN);
    EVP_PKEY_CTX *c = peer ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
    size_t n = OTA_X25519_LEN;
    int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, secret, &n) == 1 && n == OTA_X25519_LEN;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(peer);
    return ok ? 0 : -1;
}

/* HKDF-SHA256(ikm = secret, salt = epk || vehicle_pub, info) -> 32-byte wrapping key. */
static int hkdf(const uint8_t secret[OTA_X25519_LEN], const uint8_t epk[OTA_X25519_LEN],
                const uint8_t vehicle_pub[OTA_X25519_LEN], uint8_t out[OTA_CONTENT_KEY_LEN])
{
    uint8_t salt[2 * OTA_X25519_LEN];
    memcpy(salt, epk, OTA_X25519_LEN);
    memcpy(salt + OTA_X25519_LEN, vehicle_pub, OTA_X25519_LEN);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, OTA_X25519_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)OTA_KEYWRAP_INFO,
                                          sizeof OTA_KEYWRAP_INFO - 1),
        OSSL_PARAM_construct_end()};
    int ok = c != NULL && EVP_KDF_derive(c, out, OTA_CONTENT_KEY_LEN, params) == 1;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* A fresh X25519 key pair; its raw public key in pub. */
static EVP_PKEY *ephemeral(uint8_t pub[OTA_X25519_LEN])
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    size_t n = OTA_X25519_LEN;
    if (k != NULL && (EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 || n != OTA_X25519_LEN)) {
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

int ota_codec_key_wrap(const uint8_t key[OTA_CONTENT_KEY_LEN],
                       const uint8_t vehicle_pub[OTA_X25519_LEN], const char *vin,
                       ota_wrapped_key *out)
{
    uint8_t secret[OTA_X25519_LEN], kw[OTA_CONTENT_KEY_LEN];
    EVP_PKEY *eph = ephemeral(out->epk);
    int ok = eph != NULL && x25519(eph, vehicle_pub, secret) == 0 &&
             hkdf(secret, out->epk, vehicle_pub, kw) == 0 &&
             RAND_bytes(out->iv, OTA_GCM_NONCE_LEN) == 1 &&
             gcm(1, kw, out->iv, vin, strlen(vin), key, OTA_CONTENT_KEY_LEN, out->ct,
                 out->ct + OTA_CONTENT_KEY_LEN) == 0;
    EVP_PKEY_free(eph);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(kw, sizeof kw);
    return ok ? 0 : -1;
}

int ota_codec_key_unwrap(const ota_wrapped_key *w, const uint8_t vehicle_priv[OTA_X25519_LEN],
                         const char *vin, uint8_t key[OTA_CONTENT_KEY_LEN])
{
    uint8_t secret[OTA_X25519_LEN], kw[OTA_CONTENT_KEY_LEN], pub[OTA_X25519_LEN];
    size_t n = sizeof pub;
    EVP_PKEY *mine =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, vehicle_priv, OTA_X25519_LEN);
    int ok = mine != NULL && EVP_PKEY_get_raw_public_key(mine, pub, &n) == 1 &&
             x25519(mine, w->epk, secret) == 0 && hkdf(secret, w->epk, pub, kw) == 0 &&
             gcm(0, kw, w->iv, vin, strlen(vin), w->ct, OTA_CONTENT_KEY_LEN, key,
                 (uint8_t *)w->ct + OTA_CONTENT_KEY_LEN) == 0;
    EVP_PKEY_free(mine);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(kw, sizeof kw);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- hex */

void ota_codec_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int ota_codec_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ota_codec_unhex(const char *s, uint8_t *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = ota_codec_hex_value(s[2 * i]), lo = ota_codec_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
