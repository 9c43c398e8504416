/*
 * ota_cose.h — COSE_Sign1 (RFC 9052) with Ed25519 or ES256, the envelope of package
 * descriptions (pkg/desc, docs/vehicle-crypto.md), and the content-key cryptography of
 * encrypted packages: the key wrap for one vehicle (X25519 + HKDF-SHA256 + AES-256-GCM) and
 * the AES-256-GCM sealing used for package files and for the plugin's sealed content keys.
 *
 * Layout of a pkg/desc message (cross-team brief; ES256 and "req" added by issue 14):
 *   18([ protected bstr, {4: kid, "req"?: uint}, payload bstr, signature bstr(64) ])
 * protected = h'A10127' ({1: -8}, EdDSA, an Ed25519 key) or h'A10126' ({1: -7}, ES256, a
 * P-256 key): the algorithm follows the key, never the message. kid = the first 8 bytes
 * of SHA-256 of the encoded public key (Ed25519: the raw 32 bytes; P-256: the uncompressed
 * SEC1 point, 65 bytes). The signature is over the Sig_structure ["Signature1",
 * protected, h'', payload]: Ed25519, or ECDSA P-256 with SHA-256 as raw r || s (32 + 32
 * bytes, not DER). "req" (the request's id) is unprotected: it only pairs a reply with its
 * request and is added to a copy of the signed message at reply time, so one signature
 * serves every retry.
 *
 * Everything uses OpenSSL 3's EVP interface; nothing here keeps state, any thread may call
 * (an EVP_MD_CTX passed in is used by one thread at a time).
 */
#ifndef OTA_COSE_H
#define OTA_COSE_H

#include <openssl/evp.h>

#include "ota_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OTA_COSE_KID_LEN 8
#define OTA_COSE_SIG_LEN 64 /* Ed25519, and ES256's r || s */
#define OTA_X25519_LEN 32
#define OTA_CONTENT_KEY_LEN 32 /* AES-256 */
#define OTA_GCM_NONCE_LEN 12
#define OTA_GCM_TAG_LEN 16
/* nonce || ciphertext || tag around n bytes of plaintext */
#define OTA_SEALED_LEN(n) (OTA_GCM_NONCE_LEN + (n) + OTA_GCM_TAG_LEN)
#define OTA_KEYWRAP_ALG "X25519-HKDF-SHA256-A256GCM"
#define OTA_KEYWRAP_INFO "mosquitto-ota content key v1"

/* ---- COSE_Sign1 ---- */

/* The COSE algorithms of a signing key (RFC 9053). */
typedef enum { OTA_COSE_NONE = 0, OTA_COSE_ES256 = -7, OTA_COSE_EDDSA = -8 } ota_cose_alg;

/* The algorithm of key: EdDSA for Ed25519, ES256 for an EC P-256 key, else NONE. */
ota_cose_alg ota_codec_cose_alg(EVP_PKEY *key);
/* "ed25519", "es256" (plugin_opt_signing_alg's words), "?". */
const char *ota_codec_cose_alg_name(ota_cose_alg alg);
/* kid of an Ed25519 or P-256 key (private or public). 0, or -1. */
int ota_codec_cose_kid(EVP_PKEY *key, uint8_t kid[OTA_COSE_KID_LEN]);
/* Signs payload with the private key (its algorithm); returns the COSE_Sign1 with the
 * unprotected map {4: kid} (malloc'd, *out_len) or NULL (out of memory, another key). */
uint8_t *ota_codec_cose_sign(EVP_PKEY *key, const uint8_t kid[OTA_COSE_KID_LEN],
                             const uint8_t *payload, size_t len, size_t *out_len);
/* The same with the caller's context (one per thread; reset and reused each call). */
uint8_t *ota_codec_cose_sign_ctx(EVP_MD_CTX *ctx, EVP_PKEY *key,
                                 const uint8_t kid[OTA_COSE_KID_LEN], const uint8_t *payload,
                                 size_t len, size_t *out_len);
/* Bytes ota_codec_cose_with_req adds at most: the map's 2nd entry, "req" and a uint. */
#define OTA_COSE_REQ_EXTRA (4 + 9)
/* cose (as ota_codec_cose_sign wrote it) with {4: kid, "req": req} as its unprotected map,
 * written into out (cap >= len + OTA_COSE_REQ_EXTRA): the reply to one request, built
 * where the caller wants it (pkg.c: the buffer the broker takes). Its length, or 0 when
 * cose is not such a message or cap is too small. */
size_t ota_codec_cose_with_req(const uint8_t *cose, size_t len, uint64_t req, uint8_t *out,
                               size_t cap);

/* What the unprotected map held. */
typedef struct {
    ota_cose_alg alg;
    bool has_kid, has_req;
    uint64_t req;
} ota_cose_info;

/* Checks a COSE_Sign1 against the public key: the layout above exactly (tag 18, the
 * protected header of the key's algorithm, kid of this key and req when present, 64-byte
 * signature) and the signature. 0 with *payload pointing into buf and *info, or -1 with
 * *err (E_BAD_CBOR: not CBOR; E_BAD_REQUEST: wrong layout, algorithm, kid or signature). */
int ota_codec_cose_verify_info(EVP_PKEY *pub, const uint8_t *buf, size_t len,
                               const uint8_t **payload, size_t *payload_len, ota_cose_info *info,
                               ota_error *err);
/* The same without the info. */
int ota_codec_cose_verify(EVP_PKEY *pub, const uint8_t *buf, size_t len, const uint8_t **payload,
                          size_t *payload_len, ota_error *err);

/* ---- content keys ---- */

/* The key of an encrypted package wrapped for one vehicle (description field `key`). */
typedef struct {
    uint8_t epk[OTA_X25519_LEN]; /* ephemeral X25519 public key */
    uint8_t iv[OTA_GCM_NONCE_LEN];
    uint8_t ct[OTA_CONTENT_KEY_LEN + OTA_GCM_TAG_LEN]; /* AES-256-GCM(key) || tag */
} ota_wrapped_key;

/* Wraps key for the vehicle whose X25519 public key is vehicle_pub: a fresh ephemeral key,
 * wrapping key = HKDF-SHA256(ikm = ECDH, salt = epk || vehicle_pub, info = OTA_KEYWRAP_INFO),
 * AAD = the VIN. 0, or -1. */
int ota_codec_key_wrap(const uint8_t key[OTA_CONTENT_KEY_LEN],
                       const uint8_t vehicle_pub[OTA_X25519_LEN], const char *vin,
                       ota_wrapped_key *out);
/* The vehicle's side (tests, tools, docs): 0 with key, or -1 (wrong key, VIN or tampering). */
int ota_codec_key_unwrap(const ota_wrapped_key *w, const uint8_t vehicle_priv[OTA_X25519_LEN],
                         const char *vin, uint8_t key[OTA_CONTENT_KEY_LEN]);

/* AES-256-GCM with a fresh random nonce: out (OTA_SEALED_LEN(len) bytes) = nonce || ct ||
 * tag. 0, or -1. */
int ota_codec_seal(const uint8_t key[OTA_CONTENT_KEY_LEN], const void *aad, size_t aad_len,
                   const uint8_t *in, size_t len, uint8_t *out);
/* Opens what ota_codec_seal made (len >= OTA_SEALED_LEN(0)); out gets len - 28 bytes.
 * 0, or -1 (wrong key or AAD, tampered). */
int ota_codec_open(const uint8_t key[OTA_CONTENT_KEY_LEN], const void *aad, size_t aad_len,
                   const uint8_t *in, size_t len, uint8_t *out);
/* Encrypts a package file as stored in the repository: nonce || AES-256-GCM(in) || tag, no
 * AAD, streaming. 0, or -1 (read, write or crypto error; errno may tell). */
int ota_codec_seal_stream(const uint8_t key[OTA_CONTENT_KEY_LEN], FILE *in, FILE *out);

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void ota_codec_hex(const uint8_t *b, size_t n, char *out);
/* The value of a hex digit (either case), or -1. */
int ota_codec_hex_value(char c);
/* Exactly 2n hex characters into n bytes. 0, or -1. */
int ota_codec_unhex(const char *s, uint8_t *out, size_t n);

#endif
