/*
 * map.c — the catalog's hash map (map.h): a record pool plus an open-addressing index.
 *
 * Why hand-written: the catalog's largest index holds a million vehicles and must cost
 * only a few bytes per entry. uthash puts a 56-byte UT_hash_handle in every entry (more
 * than half of the vehicle itself), and GLib's GHashTable would bring in a heavy
 * dependency for one structure (and keeps a hash, a key and a value pointer per slot).
 * Here an index slot is a 32-bit record number: at most 4 bytes / 0.375 = 10.7 bytes per
 * entry at the lowest load, and the records themselves sit back to back in the pool.
 *
 * Design
 * - Pool: records of one size in chunks of 16, 16, 32, 64, ... records (chunk c holds
 *   16 << c), so a record number maps to its chunk with one count-leading-zeros and
 *   records never move. A chunk is malloc()ed untouched and each record zeroed when
 *   handed out, so a chunk's unused tail costs address space, not resident memory. Freed
 *   records form a free list threaded through their first 4 bytes; a bitmap of live
 *   records drives iteration and rehashing in memory order.
 * - Index: linear probing over a power-of-two table of record numbers + 1 (0 = empty),
 *   at most 3/4 full; it doubles by rehashing the live records. Deletion shifts the
 *   following entries of the cluster back (no tombstones), so lookups never slow down
 *   with churn. A probe compares the key read from the record through the key function.
 * - Hash: a 64-bit multiply-rotate over 8-byte words with a murmur3 finaliser.
 */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#define POOL_FIRST_SHIFT 4 /* chunk 0 holds 16 records */
#define MAP_MIN_SLOTS 16

/* ---- hash ---- */

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t ota_map_hash(const void *p, size_t n)
{
    const uint64_t k1 = 0x87c37b91114253d5ULL, k2 = 0x4cf5ad432745937fULL;
    const uint8_t *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * k2);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = rotl64(h ^ (w * k1), 31) * k2 + 0x52dce729;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = rotl64(h ^ (w * k1), 31) * k2;
    }
    return fmix64(h);
}

/* ---- pool ---- */

static unsigned chunk_of(uint32_t i, uint32_t *off)
{
    uint32_t q = (i >> POOL_FIRST_SHIFT) + 1;
    unsigned c = 31u - (unsigned)__builtin_clz(q);
    *off = i - (((1u << c) - 1u) << POOL_FIRST_SHIFT);
    return c;
}

static void *pool_at(const ota_pool *p, uint32_t i)
{
    uint32_t off;
    unsigned c = chunk_of(i, &off);
    return p->chunks[c] + (size_t)off * p->size;
}

/* Makes room for record number p->used (a new chunk, a longer bitmap). 0, or -1. */
static int pool_extend(ota_pool *p)
{
    uint32_t i = p->used, off;
    if (i == UINT32_MAX - 1)
        return -1;
    unsigned c = chunk_of(i, &off);
    if (p->chunks[c] == NULL) {
        p->chunks[c] = malloc(p->size << (POOL_FIRST_SHIFT + c));
        if (p->chunks[c] == NULL)
            return -1;
    }
    if ((i >> 6) >= p->live_words) {
        size_t words = p->live_words ? p->live_words * 2 : 1;
        uint64_t *live = realloc(p->live, words * sizeof *live);
        if (live == NULL)
            return -1;
        memset(live + p->live_words, 0, (words - p->live_words) * sizeof *live);
        p->live = live;
        p->live_words = words;
    }
    return 0;
}

/* A zeroed record: 0 and its number in *out, or -1 (nothing changed). */
static int pool_alloc(ota_pool *p, uint32_t *out)
{
    uint32_t i;
    if (p->free_head != 0) {
        i = p->free_head - 1;
        memcpy(&p->free_head, pool_at(p, i), sizeof p->free_head);
    } else {
        if (pool_extend(p) != 0)
            return -1;
        i = p->used++;
    }
    memset(pool_at(p, i), 0, p->size);
    p->live[i >> 6] |= 1ull << (i & 63);
    p->count++;
    *out = i;
    return 0;
}

static void pool_free(ota_pool *p, uint32_t i)
{
    p->live[i >> 6] &= ~(1ull << (i & 63));
    memcpy(pool_at(p, i), &p->free_head, sizeof p->free_head);
    p->free_head = i + 1;
    p->count--;
}

/* The next live record number at or after i, or p->used. */
static uint32_t pool_next_live(const ota_pool *p, uint32_t i)
{
    while (i < p->used) {
        uint64_t word = p->live[i >> 6] >> (i & 63);
        if (word != 0)
            return i + (uint32_t)__builtin_ctzll(word);
        i = (i | 63) + 1;
    }
    return p->used;
}

/* ---- index ---- */

static size_t home_slot(const ota_map *m, const void *rec)
{
    ota_map_key k = m->key(rec);
    return (size_t)ota_map_hash(k.p, k.n) & m->mask;
}

static void place(uint32_t *slots, size_t mask, size_t s, uint32_t ref)
{
    while (slots[s] != 0)
        s = (s + 1) & mask;
    slots[s] = ref;
}

/* Doubles the table when one more record would make it more than 3/4 full. 0, or -1. */
static int grow_if_needed(ota_map *m)
{
    size_t cap = m->slots ? m->mask + 1 : 0;
    if ((m->pool.count + 1) * 4 <= cap * 3)
        return 0;
    size_t ncap = cap ? cap * 2 : MAP_MIN_SLOTS;
    uint32_t *slots = calloc(ncap, sizeof *slots);
    if (slots == NULL)
        return -1;
    free(m->slots);
    m->slots = slots;
    m->mask = ncap - 1;
    for (uint32_t i = pool_next_live(&m->pool, 0); i < m->pool.used;
         i = pool_next_live(&m->pool, i + 1))
        place(slots, m->mask, home_slot(m, pool_at(&m->pool, i)), i + 1);
    return 0;
}

void ota_map_init(ota_map *m, size_t rec_size, ota_map_key_fn key)
{
    memset(m, 0, sizeof *m);
    m->pool.size = rec_size < sizeof(uint32_t) ? sizeof(uint32_t) : rec_size;
    m->key = key;
}

void ota_map_destroy(ota_map *m, void (*fini)(void *rec))
{
    ota_pool *p = &m->pool;
    for (uint32_t i = pool_next_live(p, 0); fini && i < p->used; i = pool_next_live(p, i + 1))
        fini(pool_at(p, i));
    for (unsigned c = 0; c < OTA_POOL_CHUNKS; c++)
        free(p->chunks[c]);
    free(p->live);
    free(m->slots);
    ota_map_init(m, p->size, m->key);
}

size_t ota_map_count(const ota_map *m)
{
    return m->pool.count;
}

/* The slot's reference (record number + 1) of the record with this key, 0 if none; the
 * record itself in *rec. Inlined: ota_map_get is the catalog's hot path (a VIN lookup per
 * message), and a call with an out-parameter through the stack costs it measurably. */
static inline __attribute__((always_inline)) uint32_t find(const ota_map *m, const void *key,
                                                           size_t len, void **rec)
{
    *rec = NULL;
    if (m->slots == NULL)
        return 0;
    for (size_t s = (size_t)ota_map_hash(key, len) & m->mask;; s = (s + 1) & m->mask) {
        uint32_t ref = m->slots[s];
        if (ref == 0)
            return 0;
        void *r = pool_at(&m->pool, ref - 1);
        ota_map_key k = m->key(r);
        if (k.n == len && memcmp(k.p, key, len) == 0) {
            *rec = r;
            return ref;
        }
    }
}

void *ota_map_get(const ota_map *m, const void *key, size_t len)
{
    void *rec;
    find(m, key, len, &rec);
    return rec;
}

uint32_t ota_map_ref(const ota_map *m, const void *key, size_t len)
{
    void *rec;
    return find(m, key, len, &rec);
}

void *ota_map_at(const ota_map *m, uint32_t ref)
{
    return pool_at(&m->pool, ref - 1);
}

void *ota_map_get_str(const ota_map *m, const char *key)
{
    return ota_map_get(m, key, strlen(key));
}

void *ota_map_put(ota_map *m, const void *rec)
{
    uint32_t i;
    if (grow_if_needed(m) != 0 || pool_alloc(&m->pool, &i) != 0)
        return NULL;
    void *r = pool_at(&m->pool, i);
    memcpy(r, rec, m->pool.size);
    place(m->slots, m->mask, home_slot(m, r), i + 1);
    return r;
}

/* Empties slot s and shifts back the entries after it that may move (their home slot is
 * not cyclically within (s, j]). */
static void unslot(ota_map *m, size_t s)
{
    for (size_t j = (s + 1) & m->mask; m->slots[j] != 0; j = (j + 1) & m->mask) {
        size_t h = home_slot(m, pool_at(&m->pool, m->slots[j] - 1));
        bool stays = s <= j ? (s < h && h <= j) : (s < h || h <= j);
        if (!stays) {
            m->slots[s] = m->slots[j];
            s = j;
        }
    }
    m->slots[s] = 0;
}

void ota_map_remove(ota_map *m, void *rec, void (*fini)(void *rec))
{
    size_t s = home_slot(m, rec);
    while (pool_at(&m->pool, m->slots[s] - 1) != rec)
        s = (s + 1) & m->mask;
    uint32_t i = m->slots[s] - 1;
    unslot(m, s);
    if (fini != NULL)
        fini(rec);
    pool_free(&m->pool, i);
}

void *ota_map_next(const ota_map *m, size_t *pos)
{
    if (*pos >= m->pool.used)
        return NULL;
    uint32_t i = pool_next_live(&m->pool, (uint32_t)*pos);
    if (i >= m->pool.used) {
        *pos = m->pool.used;
        return NULL;
    }
    *pos = (size_t)i + 1;
    return pool_at(&m->pool, i);
}

size_t ota_map_bytes(const ota_map *m)
{
    size_t n = m->pool.live_words * sizeof(uint64_t);
    n += m->slots ? (m->mask + 1) * sizeof(uint32_t) : 0;
    return n + (size_t)m->pool.used * m->pool.size;
}
