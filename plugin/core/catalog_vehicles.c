/*
 * catalog_vehicles.c — vehicles and lists of the in-memory catalog (catalog.h).
 *
 * A vehicle is an ota_vehicle record in c->vehicles (88 bytes on LP64): its VIN inline,
 * its texts interned (the RXSWIN list by a 32-bit id, in the VIN's padding), its public
 * key (when it has one) a separate 32-byte block of
 * c->keys (slabs of 2047 blocks with a free list: no malloc header per key).
 * Replacing a vehicle rewrites its record in place. A VIN bound to a strategy keeps the
 * per-model/series strategy counts (cat_bound) current when its model/series changes or
 * it is deleted. Lists are sets of VINs, sorted only when listed.
 */
#include "catalog_impl.h"

#include <stdlib.h>
#include <string.h>

/* The memory target (< 128 B per vehicle at a million, docs/benchmarks.md) has room for
 * this record and little more: growing it should be a decision, not an accident. */
_Static_assert(sizeof(void *) != 8 || sizeof(ota_vehicle) == 88,
               "ota_vehicle grew: see docs/benchmarks.md, catalog memory");

/* ---- public keys ---- */

static uint8_t *key_alloc(cat_keys *k)
{
    void *p = k->free;
    if (p != NULL) {
        memcpy(&k->free, p, sizeof k->free);
        return p;
    }
    if (k->slabs == NULL || k->used == CAT_KEY_SLAB) {
        cat_key_slab *s = malloc(sizeof *s);
        if (s == NULL)
            return NULL;
        s->next = k->slabs;
        k->slabs = s;
        k->used = 0;
    }
    return k->slabs->keys[k->used++];
}

static void key_free(cat_keys *k, const uint8_t *key)
{
    if (key == NULL)
        return;
    memcpy((void *)key, &k->free, sizeof k->free);
    k->free = (void *)key;
}

void cat_keys_destroy(cat_keys *k)
{
    while (k->slabs != NULL) {
        cat_key_slab *next = k->slabs->next;
        free(k->slabs);
        k->slabs = next;
    }
    memset(k, 0, sizeof *k);
}

/* ---- vehicles ---- */

static bool vin_fits(const char *vin)
{
    return vin != NULL && vin[0] != '\0' && strlen(vin) <= OTA_VIN_LEN;
}

const ota_vehicle *ota_catalog_vehicle(const ota_catalog *c, const char *vin)
{
    return vin ? ota_map_get_str(&c->vehicles, vin) : NULL;
}

size_t ota_catalog_vehicle_count(const ota_catalog *c)
{
    return ota_map_count(&c->vehicles);
}

void ota_catalog_vehicles_each(const ota_catalog *c, void (*fn)(void *ctx, const ota_vehicle *v),
                               void *ctx)
{
    size_t pos = 0;
    for (const ota_vehicle *v; (v = ota_map_next(&c->vehicles, &pos)) != NULL;)
        fn(ctx, v);
}

/* The new contents of a vehicle, its texts interned (the key not yet). 0, or -1. */
static int vehicle_build(ota_catalog *c, const ota_vehicle_rec *r, ota_vehicle *v)
{
    memset(v, 0, sizeof *v);
    memcpy(v->vin, r->vin, strlen(r->vin));
    v->sold = r->sold;
    v->activated = r->activated;
    v->passenger = r->passenger;
    if (cat_intern(c, r->model, &v->model) != 0 || cat_intern(c, r->series, &v->series) != 0 ||
        cat_intern(c, r->platform, &v->platform) != 0 ||
        cat_intern(c, r->status, &v->status) != 0 || cat_intern(c, r->usage, &v->usage) != 0 ||
        cat_intern(c, r->fw, &v->fw) != 0 || cat_intern(c, r->config_word, &v->config_word) != 0 ||
        cat_intern_id(c, r->rxswin, &v->rxswin_id) != 0)
        return -1;
    return 0;
}

/* The key storage of the new contents: the old one reused, a new one, or none. 0, or -1. */
static int vehicle_key(ota_catalog *c, const ota_vehicle_rec *r, const ota_vehicle *old,
                       ota_vehicle *v)
{
    if (!r->has_public_key)
        return 0;
    uint8_t *key = old && old->public_key ? (uint8_t *)old->public_key : key_alloc(&c->keys);
    if (key == NULL)
        return -1;
    memcpy(key, r->public_key, OTA_PUBKEY_LEN);
    v->public_key = key;
    return 0;
}

int cat_put_vehicle_copy(ota_catalog *c, const ota_vehicle_rec *r)
{
    cat_touch(c);
    ota_vehicle nv;
    if (!vin_fits(r->vin) || vehicle_build(c, r, &nv) != 0)
        return -1;
    ota_vehicle *old = ota_map_get_str(&c->vehicles, nv.vin);
    const cat_vin_binding *b = ota_map_get_str(&c->vin_bindings, nv.vin);
    cat_ms *ms = NULL;
    if (b != NULL) { /* counts of the new model/series must not need memory later */
        ms = cat_ms_get(c, nv.model, nv.series);
        if (ms == NULL || cat_bound_reserve(ms, b->strategy) != 0)
            return -1;
    }
    if (vehicle_key(c, r, old, &nv) != 0)
        return -1;
    if (old == NULL && ota_map_put(&c->vehicles, &nv) == NULL) {
        key_free(&c->keys, nv.public_key);
        return -1;
    }
    if (old != NULL) {
        if (b != NULL)
            cat_bound_add(cat_ms_find(c, old->model, old->series), b->strategy, -1);
        if (nv.public_key == NULL)
            key_free(&c->keys, old->public_key);
        *old = nv;
    }
    if (b != NULL)
        cat_bound_add(ms, b->strategy, 1);
    cat_changed(c, r->vin);
    return 0;
}

int ota_catalog_put_vehicle(ota_catalog *c, ota_vehicle_rec *rec)
{
    cat_touch(c);
    int rc = cat_put_vehicle_copy(c, rec);
    ota_vehicle_rec_free(rec); /* taken either way: the caller's record is left zeroed */
    return rc;
}

int ota_catalog_delete_vehicle(ota_catalog *c, const char *vin)
{
    cat_touch(c);
    ota_vehicle *v = vin ? ota_map_get_str(&c->vehicles, vin) : NULL;
    if (v == NULL)
        return 0;
    const cat_vin_binding *b = ota_map_get_str(&c->vin_bindings, vin);
    if (b != NULL)
        cat_bound_add(cat_ms_find(c, v->model, v->series), b->strategy, -1);
    key_free(&c->keys, v->public_key);
    ota_map_remove(&c->vehicles, v, NULL);
    cat_changed(c, vin);
    return 1;
}

static int dup_opt(const char *s, char **out)
{
    *out = s ? strdup(s) : NULL;
    return s && *out == NULL ? -1 : 0;
}

const char *ota_catalog_vehicle_rxswin(const ota_catalog *c, const ota_vehicle *v)
{
    return cat_id_str(c, v->rxswin_id);
}

int ota_catalog_vehicle_rec(const ota_catalog *c, const ota_vehicle *v, ota_vehicle_rec *out)
{
    memset(out, 0, sizeof *out);
    if (dup_opt(v->vin, &out->vin) != 0 || dup_opt(v->model, &out->model) != 0 ||
        dup_opt(v->series, &out->series) != 0 || dup_opt(v->platform, &out->platform) != 0 ||
        dup_opt(v->status, &out->status) != 0 || dup_opt(v->usage, &out->usage) != 0 ||
        dup_opt(v->config_word, &out->config_word) != 0 || dup_opt(v->fw, &out->fw) != 0 ||
        dup_opt(ota_catalog_vehicle_rxswin(c, v), &out->rxswin) != 0) {
        ota_vehicle_rec_free(out);
        return -1;
    }
    out->sold = v->sold;
    out->activated = v->activated;
    out->passenger = v->passenger;
    out->has_public_key = v->public_key != NULL;
    if (v->public_key != NULL)
        memcpy(out->public_key, v->public_key, OTA_PUBKEY_LEN);
    return 0;
}

/* ---- lists ---- */

static ota_map *list_map(const ota_catalog *c, ota_list_kind list)
{
    return (unsigned)list < OTA_LIST_COUNT ? (ota_map *)&c->lists[list] : NULL;
}

bool ota_catalog_listed(const ota_catalog *c, ota_list_kind list, const char *vin)
{
    const ota_map *m = list_map(c, list);
    return m != NULL && vin != NULL && ota_map_get_str(m, vin) != NULL;
}

/* 1 added, 0 already listed, -1 bad list or VIN, or out of memory. */
int ota_catalog_list_add(ota_catalog *c, ota_list_kind list, const char *vin)
{
    cat_touch(c);
    ota_map *m = list_map(c, list);
    if (m == NULL || !vin_fits(vin))
        return -1;
    if (ota_map_get_str(m, vin) != NULL)
        return 0;
    cat_vin r = {{0}};
    memcpy(r.vin, vin, strlen(vin));
    if (!ota_map_put(m, &r))
        return -1;
    cat_changed(c, vin);
    return 1;
}

/* 1 removed, 0 not listed. */
int ota_catalog_list_remove(ota_catalog *c, ota_list_kind list, const char *vin)
{
    cat_touch(c);
    ota_map *m = list_map(c, list);
    cat_vin *r = m && vin ? ota_map_get_str(m, vin) : NULL;
    if (r == NULL)
        return 0;
    ota_map_remove(m, r, NULL);
    cat_changed(c, vin);
    return 1;
}

size_t ota_catalog_list_count(const ota_catalog *c, ota_list_kind list)
{
    const ota_map *m = list_map(c, list);
    return m ? ota_map_count(m) : 0;
}

static int vin_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ota_catalog_list_each(const ota_catalog *c, ota_list_kind list,
                           void (*fn)(void *ctx, const char *vin), void *ctx)
{
    const ota_map *m = list_map(c, list);
    size_t n = m ? ota_map_count(m) : 0, k = 0, pos = 0;
    if (n == 0)
        return;
    const char **vins = malloc(n * sizeof *vins);
    if (vins == NULL) { /* out of memory: unsorted rather than nothing */
        for (const cat_vin *r; (r = ota_map_next(m, &pos)) != NULL;)
            fn(ctx, r->vin);
        return;
    }
    for (const cat_vin *r; (r = ota_map_next(m, &pos)) != NULL;)
        vins[k++] = r->vin;
    qsort(vins, n, sizeof *vins, vin_ptr_cmp);
    for (size_t i = 0; i < n; i++)
        fn(ctx, vins[i]);
    free(vins);
}
