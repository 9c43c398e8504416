/*
 * catalog_packages.c — packages of the in-memory catalog (catalog.h).
 *
 * Packages live in c->packages (by id). c->pkg_names finds a full or delta package by its
 * name (model, series, version and, for a delta, from: one hash lookup). Each model/series
 * entry (cat_ms) keeps an array of pointers to its packages sorted by (version by
 * ota_version_cmp then bytewise, full before delta, from likewise, id): the highest version
 * is found by walking back from the end past deltas (and, with released_only, unreleased
 * ones), and listing is a walk in order. The exact version text is part of a name: "1.02"
 * and "1.2" sort together but are different packages.
 *
 * A name entry is made before anything changes (so that a put either fails untouched or
 * succeeds); when its package goes, it points to another package of that name if there is
 * one (the control layer refuses duplicates, a store might still hold them), else NULL.
 */
#include "catalog_impl.h"

#include <stdlib.h>
#include <string.h>

void cat_package_fini(void *rec)
{
    ota_package_rec_free(rec);
}

void cat_pkg_name_fini(void *rec)
{
    free(((cat_pkg_name *)rec)->key);
}

ota_map_key cat_pkg_name_key(const void *rec)
{
    return ota_map_key_str(((const cat_pkg_name *)rec)->key);
}

/* ---- names ---- */

#define NAME_BUF 320

/* The name of model/series/version(/from) in buf when it fits, else malloc()ed (NULL: out
 * of memory or a missing part). */
static char *name_compose(char buf[NAME_BUF], const char *model, const char *series,
                          const char *version, const char *from, size_t *len)
{
    const char *parts[4] = {model, series, version, from};
    size_t n[4] = {0}, total = 0, k = from ? 4 : 3;
    for (size_t i = 0; i < k; i++) {
        if (parts[i] == NULL)
            return NULL;
        total += (n[i] = strlen(parts[i])) + (i > 0);
    }
    char *out = buf && total < NAME_BUF ? buf : malloc(total + 1), *w = out;
    for (size_t i = 0; out && i < k; i++) {
        if (i > 0)
            *w++ = '\x1f';
        memcpy(w, parts[i], n[i]);
        w += n[i];
    }
    if (out)
        *w = '\0';
    *len = total;
    return out;
}

static cat_pkg_name *name_find(const ota_catalog *c, const char *model, const char *series,
                               const char *version, const char *from)
{
    char buf[NAME_BUF];
    size_t len;
    char *k = name_compose(buf, model, series, version, from, &len);
    cat_pkg_name *n = k ? ota_map_get(&c->pkg_names, k, len) : NULL;
    if (k != buf)
        free(k);
    return n;
}

/* The name entry of p's name, made (pointing nowhere) when missing; NULL out of memory. */
static cat_pkg_name *name_reserve(ota_catalog *c, const ota_package_rec *p)
{
    const char *from = p->delta ? (p->from ? p->from : "") : NULL;
    cat_pkg_name *n = name_find(c, p->model, p->series, p->version, from);
    if (n != NULL)
        return n;
    size_t len;
    cat_pkg_name init = {name_compose(NULL, p->model, p->series, p->version, from, &len), NULL};
    if (init.key == NULL || (n = ota_map_put(&c->pkg_names, &init)) == NULL)
        free(init.key);
    return n;
}

/* ---- order ---- */

typedef struct {
    const char *version;
    bool delta;
    const char *from;
    uint64_t id;
} pkg_key;

static int version_order(const char *a, const char *b)
{
    a = a ? a : "";
    b = b ? b : "";
    int d = ota_version_cmp(a, b);
    return d ? d : strcmp(a, b);
}

static int key_cmp(const pkg_key *k, const ota_package_rec *p, bool with_id)
{
    int d = version_order(k->version, p->version);
    if (d == 0)
        d = (int)k->delta - (int)p->delta;
    if (d == 0 && k->delta)
        d = version_order(k->from, p->from);
    if (d == 0 && with_id)
        d = k->id < p->id ? -1 : k->id > p->id;
    return d;
}

static pkg_key key_of(const ota_package_rec *p)
{
    return (pkg_key){p->version, p->delta, p->from, p->id};
}

/* The first position whose package is not before k. */
static size_t lower_bound(const cat_ms *ms, const pkg_key *k, bool with_id)
{
    size_t lo = 0, hi = ms->n_pkgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(k, ms->pkgs[mid], with_id) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Another package of ms with p's name, or NULL. */
static ota_package_rec *namesake(const cat_ms *ms, const ota_package_rec *p)
{
    pkg_key k = key_of(p);
    for (size_t i = ms ? lower_bound(ms, &k, false) : 0;
         ms && i < ms->n_pkgs && key_cmp(&k, ms->pkgs[i], false) == 0; i++) {
        if (ms->pkgs[i] != p)
            return ms->pkgs[i];
    }
    return NULL;
}

/* ---- the sorted arrays ---- */

static int pkgs_reserve(cat_ms *ms)
{
    if (ms->n_pkgs < ms->cap_pkgs)
        return 0;
    size_t cap = ms->cap_pkgs ? ms->cap_pkgs * 2 : 8;
    ota_package_rec **v = realloc(ms->pkgs, cap * sizeof *v);
    if (v == NULL)
        return -1;
    ms->pkgs = v;
    ms->cap_pkgs = cap;
    return 0;
}

static void pkgs_insert(cat_ms *ms, ota_package_rec *p)
{
    pkg_key k = key_of(p);
    size_t i = lower_bound(ms, &k, true);
    memmove(ms->pkgs + i + 1, ms->pkgs + i, (ms->n_pkgs - i) * sizeof *ms->pkgs);
    ms->pkgs[i] = p;
    ms->n_pkgs++;
}

static void pkgs_remove(cat_ms *ms, const ota_package_rec *p)
{
    pkg_key k = key_of(p);
    size_t i = ms ? lower_bound(ms, &k, true) : 0;
    if (ms == NULL || i >= ms->n_pkgs || ms->pkgs[i] != p)
        return;
    memmove(ms->pkgs + i, ms->pkgs + i + 1, (ms->n_pkgs - i - 1) * sizeof *ms->pkgs);
    ms->n_pkgs--;
}

/* ---- lookups ---- */

const ota_package_rec *ota_catalog_package(const ota_catalog *c, uint64_t id)
{
    return ota_map_get(&c->packages, &id, sizeof id);
}

const ota_package_rec *ota_catalog_package_full(const ota_catalog *c, const char *model,
                                                const char *series, const char *version)
{
    const cat_pkg_name *n = name_find(c, model, series, version, NULL);
    return n ? n->p : NULL;
}

const ota_package_rec *ota_catalog_package_delta(const ota_catalog *c, const char *model,
                                                 const char *series, const char *from,
                                                 const char *version)
{
    const cat_pkg_name *n = from ? name_find(c, model, series, version, from) : NULL;
    return n ? n->p : NULL;
}

const ota_package_rec *ota_catalog_max_version(const ota_catalog *c, const char *model,
                                               const char *series, bool released_only)
{
    const cat_ms *ms = cat_ms_find(c, model, series);
    for (size_t i = ms ? ms->n_pkgs : 0; i-- > 0;) {
        const ota_package_rec *p = ms->pkgs[i];
        if (!p->delta && p->status != OTA_PKG_DEPRECATED &&
            (!released_only || p->status == OTA_PKG_RELEASED))
            return p;
    }
    return NULL;
}

/* ---- iteration ---- */

static int ms_ptr_cmp(const void *a, const void *b)
{
    const cat_ms *x = *(const cat_ms *const *)a, *y = *(const cat_ms *const *)b;
    int d = strcmp(x->model, y->model);
    return d ? d : strcmp(x->series, y->series);
}

static void each_of(const cat_ms *ms, void (*fn)(void *ctx, const ota_package_rec *p), void *ctx)
{
    for (size_t i = 0; i < ms->n_pkgs; i++)
        fn(ctx, ms->pkgs[i]);
}

static bool ms_matches(const cat_ms *ms, const char *model, const char *series)
{
    return ms->n_pkgs > 0 && (model == NULL || strcmp(ms->model, model) == 0) &&
           (series == NULL || strcmp(ms->series, series) == 0);
}

void ota_catalog_packages_each(const ota_catalog *c, const char *model, const char *series,
                               void (*fn)(void *ctx, const ota_package_rec *p), void *ctx)
{
    if (model != NULL && series != NULL) {
        const cat_ms *ms = cat_ms_find(c, model, series);
        if (ms != NULL)
            each_of(ms, fn, ctx);
        return;
    }
    size_t n = 0, pos = 0;
    const cat_ms **v = malloc((ota_map_count(&c->ms) + 1) * sizeof *v);
    for (const cat_ms *ms; (ms = ota_map_next(&c->ms, &pos)) != NULL;) {
        if (!ms_matches(ms, model, series))
            continue;
        if (v != NULL)
            v[n++] = ms;
        else
            each_of(ms, fn, ctx); /* out of memory: unsorted rather than nothing */
    }
    if (v == NULL)
        return;
    qsort(v, n, sizeof *v, ms_ptr_cmp);
    for (size_t i = 0; i < n; i++)
        each_of(v[i], fn, ctx);
    free(v);
}

/* ---- changes ---- */

uint64_t ota_catalog_next_package_id(const ota_catalog *c)
{
    return c->next_package_id;
}

/* Files' sizes from the repository where the package does not have them yet. */
static void resolve_sizes(const ota_catalog *c, ota_package_rec *p)
{
    for (size_t i = 0; i < p->n_ecus; i++) {
        const ota_file_rec *f = p->ecus[i].size ? NULL : ota_catalog_file(c, p->ecus[i].sha256);
        if (f != NULL)
            p->ecus[i].size = f->size;
    }
}

/* p's name entry points to another package of that name, or nowhere. */
static void name_unlink(ota_catalog *c, const cat_ms *ms, const ota_package_rec *p)
{
    const char *from = p->delta ? (p->from ? p->from : "") : NULL;
    cat_pkg_name *n = name_find(c, p->model, p->series, p->version, from);
    if (n != NULL && n->p == p)
        n->p = namesake(ms, p);
}

/* A package with id 0 gets the next id. Takes rec (left zeroed) even on failure. */
int ota_catalog_put_package(ota_catalog *c, ota_package_rec *rec)
{
    cat_touch(c);
    if (rec->id == 0)
        rec->id = c->next_package_id;
    cat_ms *ms =
        rec->model && rec->series && rec->version ? cat_ms_get(c, rec->model, rec->series) : NULL;
    cat_pkg_name *name = ms && pkgs_reserve(ms) == 0 ? name_reserve(c, rec) : NULL;
    if (name == NULL) {
        ota_package_rec_free(rec);
        return -1;
    }
    ota_package_rec *p = ota_map_get(&c->packages, &rec->id, sizeof rec->id);
    if (p != NULL) {
        cat_ms *old = cat_ms_find(c, p->model, p->series);
        pkgs_remove(old, p);
        name_unlink(c, old, p);
        ota_package_rec_free(p);
        *p = *rec;
    } else if ((p = ota_map_put(&c->packages, rec)) == NULL) {
        ota_package_rec_free(rec);
        return -1;
    }
    memset(rec, 0, sizeof *rec);
    resolve_sizes(c, p);
    pkgs_insert(ms, p);
    name->p = p;
    if (p->id >= c->next_package_id)
        c->next_package_id = p->id + 1;
    return 0;
}

int ota_catalog_delete_package(ota_catalog *c, uint64_t id)
{
    cat_touch(c);
    ota_package_rec *p = ota_map_get(&c->packages, &id, sizeof id);
    if (p == NULL)
        return 0;
    cat_ms *ms = cat_ms_find(c, p->model, p->series);
    pkgs_remove(ms, p);
    name_unlink(c, ms, p);
    ota_map_remove(&c->packages, p, cat_package_fini);
    return 1;
}

int ota_catalog_set_package_status(ota_catalog *c, uint64_t id, ota_pkg_status st)
{
    cat_touch(c);
    ota_package_rec *p = ota_map_get(&c->packages, &id, sizeof id);
    if (p == NULL || (unsigned)st > OTA_PKG_DEPRECATED)
        return -1;
    p->status = st;
    return 0;
}
