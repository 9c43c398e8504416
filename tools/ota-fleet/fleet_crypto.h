/*
 * fleet_crypto.h — ota-fleet's block download bookkeeping (windows, resume bitmap,
 * in-order SHA-256 and streaming decryption of nonce || ciphertext || tag), on top of the
 * vehicle checks shared with ota-agent (tools/vehicle-crypto/vcrypto.h).
 */
#ifndef OTA_FLEET_CRYPTO_H
#define OTA_FLEET_CRYPTO_H

#include "vcrypto.h"

#define FLEET_DL_MAX_WINDOW 64 /* blocks per file/get (SPEC §3: n <= 64) */

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
