/*
 * dedupe.c — the events broker's window of event keys seen (dedupe.h): a FIFO ring of the
 * keys in arrival order and an open-addressing set of the same keys, both allocated once.
 * Keys are SipHash-2-4 of (topic, id) under a random 128-bit key kept with the saved
 * window, so a vehicle that chooses its epoch text cannot aim a collision at another
 * vehicle's event.
 */
#include "dedupe.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct ota_dedupe {
    uint64_t *ring; /* the keys, oldest at head */
    size_t cap, head, n;
    uint64_t *set; /* 0: empty slot */
    size_t mask;   /* slots - 1, slots a power of two >= 2 * cap */
    uint64_t evicted;
    unsigned char hkey[16];
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
};

static const char MAGIC[8] = {'O', 'T', 'A', 'D', 'E', 'D', 'U', 'P'};
#define FORMAT_VERSION 1u

/* ---- the window ---- */

static size_t slots_for(size_t cap)
{
    size_t s = 16;
    while (s < 2 * cap) {
        s *= 2;
    }
    return s;
}

/* Empties d and gives it a new random hash key; -1 when no random bytes. */
static int reset(ota_dedupe *d)
{
    memset(d->set, 0, (d->mask + 1) * sizeof *d->set);
    d->head = d->n = 0;
    return RAND_bytes(d->hkey, sizeof d->hkey) == 1 ? 0 : -1;
}

ota_dedupe *ota_dedupe_new(size_t cap)
{
    if (cap == 0 || cap > OTA_DEDUPE_WINDOW_MAX) {
        return NULL;
    }
    ota_dedupe *d = calloc(1, sizeof *d);
    if (!d) {
        return NULL;
    }
    d->cap = cap;
    d->mask = slots_for(cap) - 1;
    d->ring = malloc(cap * sizeof *d->ring);
    d->set = malloc((d->mask + 1) * sizeof *d->set);
    d->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    d->ctx = d->mac ? EVP_MAC_CTX_new(d->mac) : NULL;
    if (!d->ring || !d->set || !d->ctx || reset(d) != 0) {
        ota_dedupe_free(d);
        return NULL;
    }
    return d;
}

void ota_dedupe_free(ota_dedupe *d)
{
    if (d) {
        EVP_MAC_CTX_free(d->ctx);
        EVP_MAC_free(d->mac);
        free(d->ring);
        free(d->set);
        free(d);
    }
}

uint64_t ota_dedupe_key(const ota_dedupe *d, const char *topic, size_t topic_len, const char *id,
                        size_t id_len)
{
    static const unsigned char sep = 0; /* never in a topic */
    unsigned char out[16];
    size_t outl = 0;
    uint64_t k = 0;
    if (EVP_MAC_init(d->ctx, d->hkey, sizeof d->hkey, NULL) == 1 &&
        EVP_MAC_update(d->ctx, (const unsigned char *)topic, topic_len) == 1 &&
        EVP_MAC_update(d->ctx, &sep, 1) == 1 &&
        EVP_MAC_update(d->ctx, (const unsigned char *)id, id_len) == 1 &&
        EVP_MAC_final(d->ctx, out, &outl, sizeof out) == 1 && outl >= sizeof k) {
        memcpy(&k, out, sizeof k);
    }
    return k != 0 ? k : 1;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t slot_of(const ota_dedupe *d, uint64_t key)
{
    size_t i = (size_t)key & d->mask;
    while (d->set[i] != 0 && d->set[i] != key) {
        i = (i + 1) & d->mask;
    }
    return i;
}

/* True when slot h (a key's home) is cyclically outside (i, j]: the key at j may move
 * back to i. */
static bool may_move(size_t h, size_t i, size_t j)
{
    return i <= j ? (h <= i || h > j) : (h <= i && h > j);
}

/* Removes key from the set, shifting the keys after it back (no tombstones). */
static void set_remove(ota_dedupe *d, uint64_t key)
{
    size_t i = slot_of(d, key);
    if (d->set[i] == 0) {
        return;
    }
    for (size_t j = (i + 1) & d->mask; d->set[j] != 0; j = (j + 1) & d->mask) {
        if (may_move((size_t)d->set[j] & d->mask, i, j)) {
            d->set[i] = d->set[j];
            i = j;
        }
    }
    d->set[i] = 0;
}

bool ota_dedupe_seen(ota_dedupe *d, uint64_t key)
{
    size_t i = slot_of(d, key);
    if (d->set[i] == key) {
        return true;
    }
    if (d->n == d->cap) { /* full: the oldest key leaves */
        set_remove(d, d->ring[d->head]);
        d->ring[d->head] = key;
        d->head = (d->head + 1) % d->cap;
        d->evicted++;
        i = slot_of(d, key); /* the removal may have shifted the empty slot */
    } else {
        d->ring[(d->head + d->n) % d->cap] = key;
        d->n++;
    }
    d->set[i] = key;
    return false;
}

size_t ota_dedupe_count(const ota_dedupe *d)
{
    return d->n;
}

uint64_t ota_dedupe_evicted(const ota_dedupe *d)
{
    return d->evicted;
}

size_t ota_dedupe_bytes(const ota_dedupe *d)
{
    return d->cap * sizeof *d->ring + (d->mask + 1) * sizeof *d->set;
}

/* ---- the payload's id ---- */

static size_t skip_blanks(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    return i;
}

/* i after the expected text t at p + i (blanks before it skipped), or len + 1. */
static size_t expect(const char *p, size_t len, size_t i, const char *t)
{
    i = skip_blanks(p, len, i);
    size_t n = strlen(t);
    return len - i >= n && memcmp(p + i, t, n) == 0 ? i + n : len + 1;
}

int ota_dedupe_payload_id(const char *payload, size_t len, const char **id, size_t *id_len)
{
    size_t i = expect(payload, len, 0, "{");
    i = i <= len ? expect(payload, len, i, "\"id\"") : i;
    i = i <= len ? expect(payload, len, i, ":") : i;
    i = i <= len ? expect(payload, len, i, "\"") : i;
    if (i > len) {
        return -1;
    }
    for (size_t j = i; j < len; j++) {
        unsigned char c = (unsigned char)payload[j];
        if (c < 0x20) {
            return -1; /* not JSON */
        }
        if (c == '\\') {
            j++; /* the escaped character: any but a control byte (or none) */
            if (j == len || (unsigned char)payload[j] < 0x20) {
                return -1;
            }
        } else if (c == '"') {
            *id = payload + i;
            *id_len = j - i;
            return j > i ? 0 : -1; /* an empty id is none */
        }
    }
    return -1;
}

/* ---- saved windows ---- */

typedef struct {
    char magic[8];
    uint32_t version, reserved;
    unsigned char hkey[16];
    uint64_t n;
} file_head;

/* fwrite that also updates the CRC; false on a write error. */
static bool put(FILE *f, uLong *crc, const void *p, size_t n)
{
    *crc = crc32(*crc, p, (uInt)n);
    return fwrite(p, 1, n, f) == n;
}

static bool write_keys(const ota_dedupe *d, FILE *f, uLong *crc)
{
    size_t first = d->head, run = d->n < d->cap - first ? d->n : d->cap - first;
    return put(f, crc, d->ring + first, run * sizeof *d->ring) &&
           put(f, crc, d->ring, (d->n - run) * sizeof *d->ring);
}

static int finish_file(FILE *f, bool ok)
{
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    errno = ok ? 0 : e;
    return ok ? 0 : -1;
}

int ota_dedupe_save(const ota_dedupe *d, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        return -1;
    }
    file_head h = {.version = FORMAT_VERSION, .n = d->n};
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    memcpy(h.hkey, d->hkey, sizeof h.hkey);
    uLong crc = crc32(0, Z_NULL, 0);
    bool ok = put(f, &crc, &h, sizeof h) && write_keys(d, f, &crc);
    uint32_t c = (uint32_t)crc;
    ok = ok && fwrite(&c, sizeof c, 1, f) == 1;
    if (finish_file(f, ok) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* fread that also updates the CRC. */
static bool get(FILE *f, uLong *crc, void *p, size_t n)
{
    if (fread(p, 1, n, f) != n) {
        return false;
    }
    *crc = crc32(*crc, p, (uInt)n);
    return true;
}

/* Reads the n keys after the head, keeping the newest d->cap; false when short or the
 * CRC at the end does not match. */
static bool read_keys(ota_dedupe *d, FILE *f, uLong crc, uint64_t n)
{
    uint64_t key;
    for (uint64_t i = 0; i < n; i++) {
        if (!get(f, &crc, &key, sizeof key)) {
            return false;
        }
        if (n - i <= d->cap && key != 0) {
            (void)ota_dedupe_seen(d, key);
        }
    }
    uint32_t c;
    return fread(&c, sizeof c, 1, f) == 1 && c == (uint32_t)crc && fgetc(f) == EOF;
}

int ota_dedupe_load(ota_dedupe *d, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return errno == ENOENT ? 0 : -1;
    }
    file_head h;
    uLong crc = crc32(0, Z_NULL, 0);
    bool ok = get(f, &crc, &h, sizeof h) && memcmp(h.magic, MAGIC, sizeof MAGIC) == 0 &&
              h.version == FORMAT_VERSION;
    if (ok) {
        memset(d->set, 0, (d->mask + 1) * sizeof *d->set);
        d->head = d->n = 0;
        memcpy(d->hkey, h.hkey, sizeof d->hkey);
        ok = read_keys(d, f, crc, h.n);
    }
    fclose(f);
    if (!ok) {
        (void)reset(d);
        return -1;
    }
    return 1;
}
