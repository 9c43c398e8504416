/*
 * vcrypto.h — what a vehicle checks and decrypts, shared by ota-fleet (the load simulator)
 * and ota-agent (the vehicle gateway): a signed package description (COSE_Sign1 with
 * EdDSA/Ed25519, alg -8, or ES256/ECDSA P-256, alg -7), its fields (vin, exp, ctr, req),
 * the content key of an encrypted package unwrapped for the vehicle (X25519 + HKDF-SHA256
 * + AES-256-GCM), a whole downloaded file decrypted (nonce || ciphertext || tag), and the
 * seed-derived vehicle key pair of the simulator.
 *
 * The formats are the cross-team decisions of docs/protocol.md and docs/vehicle-crypto.md.
 * Unit-tested against vectors made by an independent implementation (Python cryptography +
 * cbor2: tests/unit/fleet/fleet_vectors.py, tests/unit/agent/).
 */
#ifndef OTA_VCRYPTO_H
#define OTA_VCRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VC_MAX_ECUS 16
#define VC_ID_MAX 64
#define VC_KEY_LEN 32

typedef enum {
    VC_DESC_OK,
    VC_DESC_BAD_COSE,      /* not a COSE_Sign1 of the agreed shape */
    VC_DESC_BAD_ALG,       /* protected header is not the trusted key's alg ({1: -8} / {1: -7}) */
    VC_DESC_BAD_KID,       /* kid does not name the plugin's key */
    VC_DESC_BAD_SIGNATURE, /* the signature does not verify */
    VC_DESC_BAD_PAYLOAD,   /* the description misses a field or has a wrong type */
    VC_DESC_WRONG_VIN,
    VC_DESC_EXPIRED,
    VC_DESC_OLD_CTR,   /* ctr not above the last one accepted */
    VC_DESC_WRONG_TASK /* task or target version not those of the notice */
} vc_verdict;

typedef struct {
    char ecu[VC_ID_MAX + 1];
    char version[VC_ID_MAX + 1];
    char name[256];
    uint64_t order;
    uint64_t size;
    uint8_t sha256[32];
    char sha_hex[65]; /* the `file` of file/get */
} vc_desc_ecu;

typedef struct {
    char vin[VC_ID_MAX + 1];
    char task[VC_ID_MAX + 1];
    char to[VC_ID_MAX + 1];
    uint64_t ctr, iat, exp;
    bool has_req; /* `req` in the payload or in the unprotected header (pre-signed) */
    uint64_t req;
    uint32_t n_ecus;
    vc_desc_ecu ecus[VC_MAX_ECUS];
    bool has_key;
    uint8_t epk[32], iv[12], ct[48];
    uint8_t digest[32]; /* SHA-256 of the signed payload: a retry's answer has the same */
} vc_desc;

const char *vc_verdict_name(vc_verdict v);

#define VC_ALG_EDDSA (-8)
#define VC_ALG_ES256 (-7)

/* The server's public key: its COSE alg and raw form (Ed25519: 32 bytes; P-256: the
 * 65-byte uncompressed point). kid = the first 8 bytes of SHA-256 of the raw form. */
typedef struct {
    int alg;
    uint8_t raw[65];
    size_t len;
} vc_pub;

/* Reads the server's public key (PEM SubjectPublicKeyInfo, Ed25519 or P-256). 0 or -1. */
int vc_load_pub(const char *path, vc_pub *pub);

/* An Ed25519 key from its 32 raw bytes. */
void vc_pub_ed25519(const uint8_t raw[32], vc_pub *pub);

/* Checks the COSE_Sign1 envelope (its alg must be the key's) and signature and decodes
 * the description into *out. */
vc_verdict vc_desc_verify(const vc_pub *pub, const void *msg, size_t len, vc_desc *out);

/* The user information of a description (issue 17): field "prompt" or "result_info" in
 * lang (a tag, e.g. "de"; NULL or "": none), else in the description's default language
 * (texts.language), else its plain field; *used is the language taken ("" for the plain
 * field). For a message vc_desc_verify accepted (it does not check the signature again).
 * 0, or -1 when msg is not a COSE_Sign1 with a map payload. */
int vc_desc_user_text(const void *msg, size_t len, const char *field, const char *lang, char *out,
                      size_t cap, char *used, size_t used_cap);

/* The vehicle's own checks: vin is its VIN, exp after now_ms, ctr above last_ctr. */
vc_verdict vc_desc_check(const vc_desc *d, const char *vin, int64_t now_ms, uint64_t last_ctr);
/* The same, also accepting ctr equal to last_ctr when the payload is the very one accepted
 * then (last_digest, its vc_desc.digest; NULL: none): the plugin answers a retry of a
 * request with the same signed description (issue 14, docs/vehicle-crypto.md). */
vc_verdict vc_desc_check_retry(const vc_desc *d, const char *vin, int64_t now_ms, uint64_t last_ctr,
                               const uint8_t *last_digest);

/* The vehicle's X25519 key pair: private = SHA-256("ota-fleet vehicle key v1" || seed ||
 * VIN). Returns 0, or -1 on an OpenSSL failure. */
int vc_seed_vehicle_key(const char *seed, const char *vin, uint8_t priv[32], uint8_t pub[32]);

/* Unwraps the content key of d (d->has_key) for the vehicle (priv, VIN). Returns 0, or
 * -1 when the key does not open (wrong vehicle, tampered). */
int vc_unwrap(const vc_desc *d, const uint8_t priv[32], const char *vin, uint8_t key[VC_KEY_LEN]);

/* Decrypts the file `in` (nonce (12) || AES-256-GCM ciphertext || tag (16), no AAD) into
 * `out` with the content key, streaming. 0, or -1 (I/O, short file, tag mismatch: out is
 * then removed). */
int vc_decrypt_file(const char *in, const char *out, const uint8_t key[VC_KEY_LEN]);

/* SHA-256 of a whole file. 0 or -1. */
int vc_sha256_file(const char *path, uint8_t out[32]);

void vc_hex(const uint8_t *in, size_t n, char *out); /* out: 2n + 1 */

/* The value of text key `name` in a CBOR map, or NULL (not a map, no such key). */
struct cbor_item_t;
struct cbor_item_t *vc_cbor_get(struct cbor_item_t *map, const char *name);

#endif
