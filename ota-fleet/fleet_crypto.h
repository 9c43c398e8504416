/*
 * fleet_crypto.h — the pure parts of a simulated vehicle's campaign (no MQTT): checking a
 * signed package description (COSE_Sign1, Ed25519 or ES256), unwrapping the content key of an
 * encrypted package (X25519 + HKDF-SHA256 + AES-256-GCM), the vehicle's key pair derived
 * from a seed and its VIN, and the block download bookkeeping (windows, resume bitmap,
 * in-order SHA-256 and streaming decryption of nonce || ciphertext || tag).
 *
 * The formats are the cross-team decisions of docs/protocol.md (pkg/desc, file/data).
 * Everything here is unit-tested against vectors made by an independent implementation
 * (Python cryptography + cbor2: tests/unit/fleet_vectors.py).
 */
#ifndef OTA_FLEET_CRYPTO_H
#define OTA_FLEET_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLEET_MAX_ECUS 16
#define FLEET_ID_MAX 64
#define FLEET_KEY_LEN 32
#define FLEET_DL_MAX_WINDOW 64 /* blocks per file/get (SPEC §3: n <= 64) */

typedef enum {
    FLEET_DESC_OK,
    FLEET_DESC_BAD_COSE,      /* not a COSE_Sign1 of the agreed shape */
    FLEET_DESC_BAD_ALG,       /* protected header is not the key's: {1: -8} or {1: -7} */
    FLEET_DESC_BAD_KID,       /* kid does not name the plugin's key */
    FLEET_DESC_BAD_SIGNATURE, /* Ed25519 / ECDSA P-256 verification failed */
    FLEET_DESC_BAD_PAYLOAD,   /* the description misses a field or has a wrong type */
    FLEET_DESC_WRONG_VIN,
    FLEET_DESC_EXPIRED,
    FLEET_DESC_OLD_CTR,   /* ctr below the last one accepted, or equal with other bytes */
    FLEET_DESC_WRONG_TASK /* task or target version not those of the notice */
} fleet_desc_verdict;

typedef struct {
    char ecu[FLEET_ID_MAX + 1];
    char version[FLEET_ID_MAX + 1];
    char name[256];
    uint64_t order;
    uint64_t size;
    uint8_t sha256[32];
    char sha_hex[65]; /* the `file` of file/get */
} fleet_desc_ecu;

typedef struct {
    char vin[FLEET_ID_MAX + 1];
    char task[FLEET_ID_MAX + 1];
    char to[FLEET_ID_MAX + 1];
    uint64_t ctr, iat, exp;
    uint32_t n_ecus;
    fleet_desc_ecu ecus[FLEET_MAX_ECUS];
    bool has_key;
    uint8_t epk[32], iv[12], ct[48];
    bool has_req;       /* the unprotected header named the request */
    uint64_t req;       /* (outside the signature: it only pairs reply and request) */
    uint8_t digest[32]; /* SHA-256 of the signed payload: a retry has the same */
} fleet_desc;

/* The plugin's public key as the vehicle trusts it: the algorithm follows the key. */
typedef struct {
    int alg; /* COSE: -8 EdDSA (Ed25519), -7 ES256 (P-256) */
    struct evp_pkey_st *key;
    uint8_t kid[8]; /* first 8 bytes of SHA-256 of the encoded public key */
} fleet_pub;

const char *fleet_desc_verdict_name(fleet_desc_verdict v);

/* Reads the plugin's public key (PEM SubjectPublicKeyInfo; Ed25519 or EC P-256).
 * 0, or -1 (unreadable, another key type). */
int fleet_crypto_load_pub(const char *path, fleet_pub *pub);
/* The same from PEM text in memory. */
int fleet_crypto_pub_from_pem(const char *pem, fleet_pub *pub);
void fleet_pub_free(fleet_pub *pub);

/* Checks the COSE_Sign1 envelope and signature and decodes the description into *out
 * (with the header's req and the payload's digest). */
fleet_desc_verdict fleet_desc_verify(const fleet_pub *pub, const void *msg, size_t len,
                                     fleet_desc *out);

/* The vehicle's own checks: vin is its VIN, exp after now_ms, ctr above last_ctr — or
 * equal to it with the very payload accepted then (last_digest; NULL: none), which is a
 * retry answered with the same signed description. */
fleet_desc_verdict fleet_desc_check(const fleet_desc *d, const char *vin, int64_t now_ms,
                                    uint64_t last_ctr, const uint8_t *last_digest);

/* The vehicle's X25519 key pair: private = SHA-256("ota-fleet vehicle key v1" || seed ||
 * VIN). Returns 0, or -1 on an OpenSSL failure. */
int fleet_crypto_vehicle_key(const char *seed, const char *vin, uint8_t priv[32], uint8_t pub[32]);

/* Unwraps the content key of d (d->has_key) for the vehicle (priv, VIN). Returns 0, or
 * -1 when the key does not open (wrong vehicle, tampered). */
int fleet_crypto_unwrap(const fleet_desc *d, const uint8_t priv[32], const char *vin,
                        uint8_t key[FLEET_KEY_LEN]);

void fleet_hex(const uint8_t *in, size_t n, char *out); /* out: 2n + 1 */

/* The value of text key `name` in a CBOR map, or NULL (not a map, no such key). */
struct cbor_item_t;
struct cbor_item_t *fleet_cbor_get(struct cbor_item_t *map, const char *name);

/* ---- block download ---- */

typedef enum {
    FLEET_BLOCK_OK,
    FLEET_BLOCK_DUPLICATE,  /* already have it */
    FLEET_BLOCK_UNEXPECTED, /* not in the current request */
    FLEET_BLOCK_BAD_LENGTH,
} fleet_block_result;

typedef struct fleet_dl fleet_dl;

/* A download of a file of `size` bytes in blocks of `bs`, `window` blocks per request;
 * key != NULL: the file is nonce || AES-256-GCM ciphertext || tag and is decrypted as it
 * arrives. NULL when out of memory or the arguments are bad. */
fleet_dl *fleet_dl_new(uint64_t size, uint32_t bs, uint32_t window, const uint8_t *key);
void fleet_dl_free(fleet_dl *d);

/* The next file/get: from, n and, when only some blocks of the range are missing, a
 * bitmap (bit k of byte k/8, LSB first, selects block from+k; *bitmap_len bytes, 0 =
 * none). Also resets what the current request is waiting for (call it after a reconnect
 * or a timeout to ask for what is still missing). Returns false when nothing is missing. */
bool fleet_dl_request(fleet_dl *d, uint32_t *from, uint32_t *n, uint8_t bitmap[8],
                      uint32_t *bitmap_len);

/* One file/data block. Hashes (and decrypts) every block that is now in order. */
fleet_block_result fleet_dl_block(fleet_dl *d, uint32_t i, const uint8_t *data, size_t len);

/* Counts a block of the current request as answered without keeping it (lost). */
void fleet_dl_drop(fleet_dl *d, uint32_t i);

/* True when every block asked for by the last request was answered (kept or dropped). */
bool fleet_dl_request_answered(const fleet_dl *d);

bool fleet_dl_complete(const fleet_dl *d);
uint64_t fleet_dl_bytes(const fleet_dl *d); /* bytes received in order so far */
uint32_t fleet_dl_blocks(const fleet_dl *d);

/* After completion: true when the SHA-256 of the file equals sha and (encrypted) the GCM
 * tag verified. *decrypt_ok is false when the tag failed. */
bool fleet_dl_finish(fleet_dl *d, const uint8_t sha[32], bool *decrypt_ok);

#endif
