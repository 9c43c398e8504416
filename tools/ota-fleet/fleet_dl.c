/*
 * fleet_dl.c — the block download of one file by a simulated vehicle: which blocks to
 * ask for next, which arrived, and the checks on the bytes.
 *
 * Design: a bitmap of every block received (bit i = block i). Blocks before `next` were
 * fed, in order, to SHA-256 (and to the AES-256-GCM decryption of an encrypted file);
 * blocks that arrive ahead of `next` (another block was lost, or dropped on purpose) are
 * kept in a stash of `window` slots (slot = index mod window, allocated on first use) and
 * fed as soon as the gap is filled. Every request starts at `next` and spans at most
 * `window` blocks, so any block worth keeping fits the stash. A request after a loss
 * (reconnect or timeout) asks only for the blocks still missing in its range: with a
 * bitmap when some of them are already here (SPEC §3 resume).
 *
 * An encrypted file is nonce(12) || ciphertext || tag(16): the nonce starts the
 * decryption, the ciphertext is decrypted as it streams by (the plaintext is discarded:
 * the vehicle only proves it could open it), the tag is checked at the end.
 */
#include "fleet_crypto.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN 16

struct fleet_dl {
    uint64_t size;
    uint32_t bs, window, nblocks;
    uint32_t next;  /* blocks before it are fed */
    uint8_t *have;  /* bitmap of received blocks */
    uint8_t *stash; /* window * bs bytes, lazily */
    uint32_t req_from, req_n;
    uint64_t req_sel, req_answered; /* bits relative to req_from */
    EVP_MD_CTX *sha;
    EVP_CIPHER_CTX *aes; /* NULL: not encrypted */
    uint8_t key[32], nonce[NONCE_LEN], tag[TAG_LEN];
    uint8_t *plain; /* decryption scratch, bs + 16 bytes */
    bool dec_failed;
};

static bool have(const fleet_dl *d, uint32_t i)
{
    return (d->have[i / 8] >> (i % 8)) & 1;
}

static size_t block_len(const fleet_dl *d, uint32_t i)
{
    uint64_t off = (uint64_t)i * d->bs;
    return d->size - off < d->bs ? (size_t)(d->size - off) : d->bs;
}

fleet_dl *fleet_dl_new(uint64_t size, uint32_t bs, uint32_t window, const uint8_t *key)
{
    fleet_dl *d;
    uint64_t nblocks = size == 0 ? 0 : (size + bs - 1) / bs;

    if (bs == 0 || window == 0 || window > FLEET_DL_MAX_WINDOW || nblocks > UINT32_MAX ||
        (key && size < NONCE_LEN + TAG_LEN) || (d = calloc(1, sizeof *d)) == NULL)
        return NULL;
    d->size = size;
    d->bs = bs;
    d->window = window;
    d->nblocks = (uint32_t)nblocks;
    d->have = calloc(nblocks / 8 + 1, 1);
    d->sha = EVP_MD_CTX_new();
    if (d->have && d->sha && EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) == 1) {
        if (key == NULL)
            return d;
        memcpy(d->key, key, 32);
        d->aes = EVP_CIPHER_CTX_new();
        d->plain = malloc((size_t)bs + TAG_LEN);
        if (d->aes && d->plain)
            return d;
    }
    fleet_dl_free(d);
    return NULL;
}

void fleet_dl_free(fleet_dl *d)
{
    if (d == NULL)
        return;
    free(d->have);
    free(d->stash);
    free(d->plain);
    EVP_MD_CTX_free(d->sha);
    EVP_CIPHER_CTX_free(d->aes);
    free(d);
}

/* ---- feeding bytes in order ---- */

static void dec_start(fleet_dl *d)
{
    if (EVP_DecryptInit_ex(d->aes, EVP_aes_256_gcm(), NULL, d->key, d->nonce) != 1)
        d->dec_failed = true;
}

static void dec_body(fleet_dl *d, const uint8_t *data, size_t n)
{
    int out = 0;

    if (!d->dec_failed && EVP_DecryptUpdate(d->aes, d->plain, &out, data, (int)n) != 1)
        d->dec_failed = true;
}

/* Bytes [pos, pos+len) of the file: nonce, ciphertext or tag. */
static void dec_feed(fleet_dl *d, uint64_t pos, const uint8_t *data, size_t len)
{
    uint64_t body_end = d->size - TAG_LEN;

    while (len > 0) {
        size_t take;
        if (pos < NONCE_LEN) {
            take = len < NONCE_LEN - pos ? len : (size_t)(NONCE_LEN - pos);
            memcpy(d->nonce + pos, data, take);
            if (pos + take == NONCE_LEN)
                dec_start(d);
        } else if (pos < body_end) {
            take = len < body_end - pos ? len : (size_t)(body_end - pos);
            dec_body(d, data, take);
        } else {
            take = len;
            memcpy(d->tag + (pos - body_end), data, take);
        }
        pos += take;
        data += take;
        len -= take;
    }
}

static void feed(fleet_dl *d, const uint8_t *data, size_t len)
{
    uint64_t pos = (uint64_t)d->next * d->bs;

    EVP_DigestUpdate(d->sha, data, len);
    if (d->aes)
        dec_feed(d, pos, data, len);
    d->next++;
}

static uint8_t *slot(fleet_dl *d, uint32_t i)
{
    return d->stash + (size_t)(i % d->window) * d->bs;
}

static void drain_stash(fleet_dl *d)
{
    while (d->next < d->nblocks && have(d, d->next))
        feed(d, slot(d, d->next), block_len(d, d->next));
}

/* ---- requests and blocks ---- */

bool fleet_dl_request(fleet_dl *d, uint32_t *from, uint32_t *n, uint8_t bitmap[8],
                      uint32_t *bitmap_len)
{
    uint32_t end = d->nblocks - d->next < d->window ? d->nblocks : d->next + d->window;
    uint32_t last = d->next;
    bool gaps = false;

    if (d->next >= d->nblocks)
        return false;
    for (uint32_t i = d->next; i < end; i++)
        if (!have(d, i))
            last = i;
    d->req_from = d->next;
    d->req_n = last - d->next + 1;
    d->req_sel = 0;
    d->req_answered = 0;
    memset(bitmap, 0, 8);
    for (uint32_t k = 0; k < d->req_n; k++) {
        if (have(d, d->req_from + k)) {
            gaps = true;
            continue;
        }
        d->req_sel |= 1ULL << k;
        bitmap[k / 8] |= (uint8_t)(1u << (k % 8));
    }
    *from = d->req_from;
    *n = d->req_n;
    *bitmap_len = gaps ? (d->req_n + 7) / 8 : 0;
    return true;
}

static void mark_answered(fleet_dl *d, uint32_t i)
{
    if (i >= d->req_from && i - d->req_from < d->req_n)
        d->req_answered |= 1ULL << (i - d->req_from);
}

void fleet_dl_drop(fleet_dl *d, uint32_t i)
{
    mark_answered(d, i);
}

fleet_block_result fleet_dl_block(fleet_dl *d, uint32_t i, const uint8_t *data, size_t len)
{
    if (i >= d->nblocks || i - d->next >= d->window || i < d->next) {
        if (i < d->nblocks && have(d, i)) {
            mark_answered(d, i);
            return FLEET_BLOCK_DUPLICATE;
        }
        return FLEET_BLOCK_UNEXPECTED;
    }
    if (len != block_len(d, i))
        return FLEET_BLOCK_BAD_LENGTH;
    mark_answered(d, i);
    if (have(d, i))
        return FLEET_BLOCK_DUPLICATE;
    d->have[i / 8] |= (uint8_t)(1u << (i % 8));
    if (i == d->next) {
        feed(d, data, len);
    } else {
        if (d->stash == NULL && (d->stash = malloc((size_t)d->window * d->bs)) == NULL) {
            d->have[i / 8] &= (uint8_t) ~(1u << (i % 8)); /* cannot keep it: ask again */
            return FLEET_BLOCK_OK;
        }
        memcpy(slot(d, i), data, len);
    }
    drain_stash(d);
    return FLEET_BLOCK_OK;
}

bool fleet_dl_request_answered(const fleet_dl *d)
{
    return (d->req_answered & d->req_sel) == d->req_sel;
}

bool fleet_dl_complete(const fleet_dl *d)
{
    return d->next >= d->nblocks;
}

uint64_t fleet_dl_bytes(const fleet_dl *d)
{
    uint64_t b = (uint64_t)d->next * d->bs;
    return b < d->size ? b : d->size;
}

uint32_t fleet_dl_blocks(const fleet_dl *d)
{
    return d->nblocks;
}

bool fleet_dl_finish(fleet_dl *d, const uint8_t sha[32], bool *decrypt_ok)
{
    uint8_t digest[32];
    int out = 0;

    *decrypt_ok = true;
    if (!fleet_dl_complete(d) || EVP_DigestFinal_ex(d->sha, digest, NULL) != 1)
        return false;
    if (d->aes) {
        *decrypt_ok = !d->dec_failed &&
                      EVP_CIPHER_CTX_ctrl(d->aes, EVP_CTRL_GCM_SET_TAG, TAG_LEN, d->tag) == 1 &&
                      EVP_DecryptFinal_ex(d->aes, d->plain, &out) == 1;
    }
    return memcmp(digest, sha, 32) == 0 && *decrypt_ok;
}
