/*
 * catalog.c — the in-memory catalog (catalog.h): its maps, string interning, the
 * model/series entries, models with the ECUs they declare, and files.
 * Vehicles, lists, packages, strategies and the load are in catalog_*.c (catalog_impl.h
 * has the layout); every change gives the catalog a new generation (cat_touch).
 */
#include "catalog_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- key functions ---- */

static ota_map_key string_key(const void *rec)
{
    return ota_map_key_str(*(char *const *)rec);
}

void ota_catalog_on_change(ota_catalog *c, void (*fn)(void *ctx, const char *vin), void *ctx)
{
    c->on_change = fn;
    c->on_change_ctx = ctx;
}

void cat_changed(const ota_catalog *c, const char *vin)
{
    if (c->on_change)
        c->on_change(c->on_change_ctx, vin);
}

/* Generations are unique across catalogs: follow.c replaces a whole catalog with one it
 * loaded (on another thread), which must not look unchanged to a holder of the old one. */
static _Atomic uint64_t last_gen;

void cat_touch(ota_catalog *c)
{
    c->gen = atomic_fetch_add_explicit(&last_gen, 1, memory_order_relaxed) + 1;
}

uint64_t ota_catalog_gen(const ota_catalog *c)
{
    return c->gen;
}

ota_map_key cat_vin_key(const void *rec)
{
    return ota_map_key_str((const char *)rec);
}

static ota_map_key ms_key(const void *rec)
{
    return ota_map_key_str(((const cat_ms *)rec)->key);
}

static ota_map_key ecu_key(const void *rec)
{
    return ota_map_key_str(((const cat_ecu *)rec)->name);
}

static ota_map_key file_key(const void *rec)
{
    return ota_map_key_str(((const ota_file_rec *)rec)->sha256);
}

static ota_map_key package_key(const void *rec)
{
    return (ota_map_key){&((const ota_package_rec *)rec)->id, sizeof(uint64_t)};
}

static ota_map_key strategy_key(const void *rec)
{
    return ota_map_key_str(((const ota_strategy_rec *)rec)->id);
}

/* ---- record finalisers ---- */

static void string_fini(void *rec)
{
    free(*(char **)rec);
}

static void ms_fini(void *rec)
{
    cat_ms *ms = rec;
    free(ms->key);
    if (ms->has_model)
        ota_model_rec_free(&ms->model_rec);
    free(ms->pkgs);
    free(ms->bound);
}

static void ecu_fini(void *rec)
{
    free(((cat_ecu *)rec)->name);
}

/* ---- life ---- */

ota_catalog *ota_catalog_new(void)
{
    ota_catalog *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    ota_map_init(&c->strings, sizeof(char *), string_key);
    ota_map_init(&c->vehicles, sizeof(ota_vehicle), cat_vin_key);
    ota_map_init(&c->ms, sizeof(cat_ms), ms_key);
    ota_map_init(&c->ecus, sizeof(cat_ecu), ecu_key);
    ota_map_init(&c->files, sizeof(ota_file_rec), file_key);
    ota_map_init(&c->packages, sizeof(ota_package_rec), package_key);
    ota_map_init(&c->pkg_names, sizeof(cat_pkg_name), cat_pkg_name_key);
    ota_map_init(&c->strategies, sizeof(ota_strategy_rec), strategy_key);
    ota_map_init(&c->vin_bindings, sizeof(cat_vin_binding), cat_vin_key);
    for (int l = 0; l < OTA_LIST_COUNT; l++)
        ota_map_init(&c->lists[l], sizeof(cat_vin), cat_vin_key);
    cat_groups_init(c);
    cat_rxswin_init(c);
    c->next_package_id = 1;
    cat_touch(c);
    return c;
}

void ota_catalog_free(ota_catalog *c)
{
    if (c == NULL)
        return;
    ota_map_destroy(&c->vehicles, NULL);
    cat_keys_destroy(&c->keys);
    ota_map_destroy(&c->ms, ms_fini);
    ota_map_destroy(&c->ecus, ecu_fini);
    ota_map_destroy(&c->files, NULL);
    ota_map_destroy(&c->packages, cat_package_fini);
    ota_map_destroy(&c->pkg_names, cat_pkg_name_fini);
    ota_map_destroy(&c->strategies, cat_strategy_fini);
    ota_map_destroy(&c->vin_bindings, NULL);
    for (int l = 0; l < OTA_LIST_COUNT; l++)
        ota_map_destroy(&c->lists[l], NULL);
    cat_groups_destroy(c);
    cat_rxswin_destroy(c);
    ota_map_destroy(&c->strings, string_fini);
    free(c);
}

/* ---- interning ---- */

int cat_intern(ota_catalog *c, const char *s, const char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    char *const *found = ota_map_get_str(&c->strings, s);
    if (found != NULL) {
        *out = *found;
        return 0;
    }
    char *copy = strdup(s);
    if (copy == NULL || ota_map_put(&c->strings, &copy) == NULL) {
        free(copy);
        return -1;
    }
    *out = copy;
    return 0;
}

/* An interned string's id is its reference in c->strings (map.h): interned strings are
 * never removed, so the id stays valid, and 4 bytes stand where a pointer took 8. */
int cat_intern_id(ota_catalog *c, const char *s, uint32_t *id)
{
    const char *in;
    *id = 0;
    if (s == NULL)
        return 0;
    size_t n = strlen(s);
    *id = ota_map_ref(&c->strings, s, n); /* one lookup when already interned (the load) */
    if (*id != 0)
        return 0;
    if (cat_intern(c, s, &in) != 0)
        return -1;
    *id = ota_map_ref(&c->strings, in, n);
    return 0;
}

const char *cat_id_str(const ota_catalog *c, uint32_t id)
{
    return id ? *(char *const *)ota_map_at(&c->strings, id) : NULL;
}

/* ---- model/series entries ---- */

/* "model\x1fseries" in buf when it fits, else malloc()ed; NULL out of memory. */
static char *ms_compose(char *buf, size_t size, const char *model, const char *series, size_t *len)
{
    size_t nm = strlen(model), ns = strlen(series);
    *len = nm + 1 + ns;
    char *k = *len < size ? buf : malloc(*len + 1);
    if (k == NULL)
        return NULL;
    memcpy(k, model, nm);
    k[nm] = '\x1f';
    memcpy(k + nm + 1, series, ns + 1);
    return k;
}

cat_ms *cat_ms_find(const ota_catalog *c, const char *model, const char *series)
{
    char buf[160];
    size_t len;
    if (model == NULL || series == NULL)
        return NULL;
    char *k = ms_compose(buf, sizeof buf, model, series, &len);
    cat_ms *ms = k ? ota_map_get(&c->ms, k, len) : NULL;
    if (k != buf)
        free(k);
    return ms;
}

cat_ms *cat_ms_get(ota_catalog *c, const char *model, const char *series)
{
    cat_ms *ms = cat_ms_find(c, model, series);
    if (ms != NULL || model == NULL || series == NULL)
        return ms;
    cat_ms init = {0};
    size_t len;
    if (cat_intern(c, model, &init.model) != 0 || cat_intern(c, series, &init.series) != 0)
        return NULL;
    init.key = ms_compose(NULL, 0, model, series, &len);
    if (init.key == NULL)
        return NULL;
    ms = ota_map_put(&c->ms, &init);
    if (ms == NULL)
        free(init.key);
    return ms;
}

int cat_bound_reserve(cat_ms *ms, const char *strategy)
{
    for (size_t i = 0; i < ms->n_bound; i++) {
        if (ms->bound[i].strategy == strategy)
            return 0;
    }
    if (ms->n_bound == ms->cap_bound) {
        size_t cap = ms->cap_bound ? ms->cap_bound * 2 : 4;
        cat_bound *b = realloc(ms->bound, cap * sizeof *b);
        if (b == NULL)
            return -1;
        ms->bound = b;
        ms->cap_bound = cap;
    }
    ms->bound[ms->n_bound++] = (cat_bound){strategy, 0};
    return 0;
}

void cat_bound_add(cat_ms *ms, const char *strategy, long delta)
{
    for (size_t i = 0; ms != NULL && i < ms->n_bound; i++) {
        if (ms->bound[i].strategy == strategy) {
            ms->bound[i].vins += (size_t)delta;
            return;
        }
    }
}

/* ---- models ---- */

const ota_model_rec *ota_catalog_model(const ota_catalog *c, const char *model, const char *series)
{
    const cat_ms *ms = cat_ms_find(c, model, series);
    return ms && ms->has_model ? &ms->model_rec : NULL;
}

bool ota_catalog_ecu_known(const ota_catalog *c, const char *ecu)
{
    return ecu != NULL && ota_map_get_str(&c->ecus, ecu) != NULL;
}

/* Makes sure every ECU of r has an entry (count 0 when new). 0, or -1. */
static int ecus_reserve(ota_catalog *c, const ota_model_rec *r)
{
    for (size_t i = 0; i < r->n_ecus; i++) {
        if (ota_map_get_str(&c->ecus, r->ecus[i]) != NULL)
            continue;
        cat_ecu e = {strdup(r->ecus[i]), 0};
        if (e.name == NULL || ota_map_put(&c->ecus, &e) == NULL) {
            free(e.name);
            return -1;
        }
    }
    return 0;
}

/* Counts r's ECUs once more (delta 1) or once less (-1), dropping those no model names. */
static void ecus_count(ota_catalog *c, const ota_model_rec *r, long delta)
{
    for (size_t i = 0; i < r->n_ecus; i++) {
        cat_ecu *e = ota_map_get_str(&c->ecus, r->ecus[i]);
        if (e == NULL)
            continue;
        e->models += (size_t)delta;
        if (e->models == 0)
            ota_map_remove(&c->ecus, e, ecu_fini);
    }
}

int ota_catalog_put_model(ota_catalog *c, ota_model_rec *rec)
{
    cat_touch(c);
    cat_ms *ms = rec->model && rec->series ? cat_ms_get(c, rec->model, rec->series) : NULL;
    if (ms == NULL || ecus_reserve(c, rec) != 0) {
        ota_model_rec_free(rec); /* taken either way */
        return -1;
    }
    ecus_count(c, rec, 1);
    if (ms->has_model) {
        ecus_count(c, &ms->model_rec, -1);
        ota_model_rec_free(&ms->model_rec);
    }
    ms->model_rec = *rec;
    ms->has_model = true;
    memset(rec, 0, sizeof *rec);
    return 0;
}

/* ---- files ---- */

const ota_file_rec *ota_catalog_file(const ota_catalog *c, const char *sha256)
{
    return sha256 ? ota_map_get_str(&c->files, sha256) : NULL;
}

int ota_catalog_put_file(ota_catalog *c, const ota_file_rec *rec)
{
    cat_touch(c);
    if (memchr(rec->sha256, '\0', sizeof rec->sha256) == NULL || rec->sha256[0] == '\0')
        return -1;
    ota_file_rec *f = ota_map_get_str(&c->files, rec->sha256);
    if (f != NULL) {
        f->size = rec->size;
        return 0;
    }
    return ota_map_put(&c->files, rec) ? 0 : -1;
}
