/*
 * keys.h — the plugin's keys (docs/vehicle-crypto.md): the key that signs package
 * descriptions (Ed25519 or ES256, plugin_opt_signing_alg), and the key-encryption key
 * (KEK) that seals the content keys of encrypted packages, so that a package document in
 * the store never holds a content key in clear.
 *
 * Both are files, created on first start with mode 0600 (plugin_opt_signing_key, default
 * ota-signing.pem, PKCS#8 PEM, with its public key written beside it as <path>.pub, PEM
 * SubjectPublicKeyInfo; plugin_opt_content_kek, default ota-content.kek, 64 hex characters
 * and a newline); the absolute path of a created file is logged. An existing file is used
 * as it is; one that does not parse, or that group or others may read or write, stops the
 * start (the message says which chmod fixes it). Read at start only; afterwards broker
 * thread only.
 */
#ifndef OTA_KEYS_H
#define OTA_KEYS_H

#include "ota_cose.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ota_keys ota_keys; /* also declared in ota_plugin.h */
struct ota_keys {
    EVP_PKEY *signing;
    uint8_t kid[OTA_COSE_KID_LEN];
    uint8_t kek[OTA_CONTENT_KEY_LEN];
};

/* Loads (or creates) both keys; the signing key is of signing_alg ("ed25519", NULL for
 * the same, or "es256": EC P-256). NULL with err. */
ota_keys *ota_keys_open(const char *signing_path, const char *signing_alg, const char *kek_path,
                        char *err, size_t errlen);
void ota_keys_free(ota_keys *k);

/* A content key sealed for package id under the KEK (AAD: "ota-package:" id), as hex into
 * out (2 * OTA_SEALED_LEN(32) + 1 bytes). 0, or -1. */
#define OTA_SEALED_KEY_HEX (2 * OTA_SEALED_LEN(OTA_CONTENT_KEY_LEN))
int ota_keys_seal_content(const ota_keys *k, uint64_t package,
                          const uint8_t key[OTA_CONTENT_KEY_LEN], char out[OTA_SEALED_KEY_HEX + 1]);
/* The content key of package id from its sealed hex. 0, or -1 (wrong KEK, tampered). */
int ota_keys_open_content(const ota_keys *k, uint64_t package, const char *sealed_hex,
                          uint8_t key[OTA_CONTENT_KEY_LEN]);

#endif
