/*
 * grants.c — per vehicle: the files its descriptions named, and its description counter
 * (see grants.h).
 *
 * Design: one map record per VIN that was ever issued a description, holding the counter
 * and a small array of raw SHA-256 digests (a vehicle gets a handful of descriptions, each
 * naming a few files: a linear scan of 32-byte digests beats any index at that size).
 * Files are kept as raw digests (32 bytes, not 65 of hex).
 */
#include "grants.h"

#include "map.h"
#include "ota_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t digest[32];

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    uint64_t counter;
    uint32_t n_files, cap_files;
    digest *files;
} vin_grants;

struct ota_grants {
    ota_map by_vin;
};

static ota_map_key vin_key(const void *rec)
{
    return ota_map_key_str(((const vin_grants *)rec)->vin);
}

static void vin_fini(void *rec)
{
    free(((vin_grants *)rec)->files);
}

ota_grants *ota_grants_new(void)
{
    ota_grants *g = calloc(1, sizeof *g);
    if (g != NULL)
        ota_map_init(&g->by_vin, sizeof(vin_grants), vin_key);
    return g;
}

void ota_grants_free(ota_grants *g)
{
    if (g == NULL)
        return;
    ota_map_destroy(&g->by_vin, vin_fini);
    free(g);
}

/* 64 lowercase hex characters -> 32 bytes; -1 when s does not start with such a digest. */
static int parse_digest(const char *s, digest out)
{
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v << 4 | (unsigned)d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static bool has_file(const vin_grants *v, const digest d)
{
    for (uint32_t i = 0; i < v->n_files; i++)
        if (memcmp(v->files[i], d, sizeof(digest)) == 0)
            return true;
    return false;
}

static int add_file(vin_grants *v, const digest d)
{
    if (has_file(v, d))
        return 0;
    if (v->n_files == v->cap_files) {
        uint32_t cap = v->cap_files ? v->cap_files * 2 : 4;
        digest *files = realloc(v->files, cap * sizeof *files);
        if (files == NULL)
            return -1;
        v->files = files, v->cap_files = cap;
    }
    memcpy(v->files[v->n_files++], d, sizeof(digest));
    return 0;
}

/* The VIN's record, created empty when it has none; NULL when out of memory. */
static vin_grants *vin_record(ota_grants *g, const char *vin)
{
    vin_grants *v = ota_map_get_str(&g->by_vin, vin);
    if (v != NULL)
        return v;
    vin_grants rec = {0};
    snprintf(rec.vin, sizeof rec.vin, "%s", vin);
    return ota_map_put(&g->by_vin, &rec);
}

/* Checks "hex,hex,...": every item a digest, at least one. */
static bool files_well_formed(const char *files)
{
    digest d;
    for (const char *s = files;; s += 65) {
        if (parse_digest(s, d) != 0)
            return false;
        if (s[64] == '\0')
            return true;
        if (s[64] != ',')
            return false;
    }
}

int ota_grants_add(ota_grants *g, const char *vin, uint64_t counter, const char *files)
{
    if (strlen(vin) != OTA_VIN_LEN || !files_well_formed(files))
        return -1;
    vin_grants *v = vin_record(g, vin);
    if (v == NULL)
        return -1;
    v->counter = counter > v->counter ? counter : v->counter;
    digest d;
    for (const char *s = files; parse_digest(s, d) == 0; s += 65) {
        if (add_file(v, d) != 0)
            return -1;
        if (s[64] == '\0')
            break;
    }
    return 0;
}

bool ota_grants_allows(const ota_grants *g, const char *vin, const char *sha256_hex)
{
    digest d;
    if (strlen(sha256_hex) != 64 || parse_digest(sha256_hex, d) != 0)
        return false;
    const vin_grants *v = ota_map_get_str(&g->by_vin, vin);
    return v != NULL && has_file(v, d);
}

uint64_t ota_grants_counter(const ota_grants *g, const char *vin)
{
    const vin_grants *v = ota_map_get_str(&g->by_vin, vin);
    return v != NULL ? v->counter : 0;
}

typedef struct {
    ota_grants *g;
    char *err;
    size_t errlen;
} load_ctx;

static int load_one(void *ctx, const ota_description_rec *d)
{
    load_ctx *l = ctx;
    if (ota_grants_add(l->g, d->vin, d->counter, d->files) == 0)
        return 0;
    snprintf(l->err, l->errlen, "stored description %llu of %s: bad file list or out of memory",
             (unsigned long long)d->counter, d->vin);
    return -1;
}

int ota_grants_load(ota_grants *g, ota_store *s, char *err, size_t errlen)
{
    load_ctx l = {g, err, errlen};
    snprintf(err, errlen, "loading the descriptions issued failed");
    return ota_store_load_descriptions(s, NULL, load_one, &l);
}
