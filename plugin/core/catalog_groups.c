/*
 * catalog_groups.c — named vehicle groups of the in-memory catalog (groups.h).
 *
 * A group is an ota_group record in c->groups, keyed by its name: a static group holds
 * its VINs in a map of its own (cat_vin records, as the lists do), a dynamic group its
 * saved query. Replacing a group rewrites its record in place once the new one is fully
 * built, so a failure leaves the old group as it was. Groups are few (an operator names
 * each one): listing sorts them by name on the way out.
 */
#include "catalog_impl.h"
#include "groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ota_group {
    char *name;
    bool dynamic;
    ota_target query; /* dynamic */
    ota_map members;  /* static: cat_vin, by vin */
};

static ota_map_key group_key(const void *rec)
{
    return ota_map_key_str(((const ota_group *)rec)->name);
}

static void group_fini(void *rec)
{
    ota_group *g = rec;
    free(g->name);
    ota_target_free(&g->query);
    ota_map_destroy(&g->members, NULL);
}

void cat_groups_init(ota_catalog *c)
{
    ota_map_init(&c->groups, sizeof(ota_group), group_key);
}

void cat_groups_destroy(ota_catalog *c)
{
    ota_map_destroy(&c->groups, group_fini);
}

const ota_group *ota_catalog_group(const ota_catalog *c, const char *name)
{
    return name ? ota_map_get_str(&c->groups, name) : NULL;
}

size_t ota_catalog_group_count(const ota_catalog *c)
{
    return ota_map_count(&c->groups);
}

/* 1 added, 0 already a member, -1 out of memory or not a VIN-sized text. */
static int member_add(ota_map *m, const char *vin)
{
    size_t n = strlen(vin);
    if (n == 0 || n > OTA_VIN_LEN)
        return -1;
    if (ota_map_get_str(m, vin) != NULL)
        return 0;
    cat_vin r;
    memset(&r, 0, sizeof r);
    memcpy(r.vin, vin, n);
    return ota_map_put(m, &r) ? 1 : -1;
}

int ota_catalog_put_group(ota_catalog *c, ota_group_rec *g)
{
    cat_touch(c);
    ota_group n = {0};
    ota_map_init(&n.members, sizeof(cat_vin), cat_vin_key);
    n.dynamic = g->dynamic;
    if ((n.name = strdup(g->name)) == NULL)
        goto fail;
    for (size_t i = 0; !g->dynamic && i < g->n_vins; i++) {
        if (member_add(&n.members, g->vins[i]) < 0)
            goto fail;
    }
    ota_group *old = ota_map_get_str(&c->groups, g->name);
    if (old == NULL && ota_map_put(&c->groups, &n) == NULL)
        goto fail;
    if (old != NULL) {
        group_fini(old);
        *old = n; /* the key (name) is the same text */
    }
    if (g->dynamic) { /* taken: nothing can fail from here */
        ota_group *stored = ota_map_get_str(&c->groups, g->name);
        stored->query = g->query;
        memset(&g->query, 0, sizeof g->query);
    }
    cat_changed(c, NULL); /* its members, and the members of groups naming it */
    return 0;
fail:
    free(n.name);
    ota_map_destroy(&n.members, NULL);
    return -1;
}

int ota_catalog_delete_group(ota_catalog *c, const char *name)
{
    cat_touch(c);
    ota_group *g = name ? ota_map_get_str(&c->groups, name) : NULL;
    if (g == NULL)
        return 0;
    ota_map_remove(&c->groups, g, group_fini);
    cat_changed(c, NULL);
    return 1;
}

static int group_ptr_cmp(const void *a, const void *b)
{
    return strcmp((*(const ota_group *const *)a)->name, (*(const ota_group *const *)b)->name);
}

void ota_catalog_groups_each(const ota_catalog *c, void (*fn)(void *ctx, const ota_group *g),
                             void *ctx)
{
    size_t n = ota_map_count(&c->groups), k = 0, pos = 0;
    if (n == 0)
        return;
    const ota_group **v = malloc(n * sizeof *v);
    if (v == NULL) { /* out of memory: unsorted rather than nothing */
        for (const ota_group *g; (g = ota_map_next(&c->groups, &pos)) != NULL;)
            fn(ctx, g);
        return;
    }
    for (const ota_group *g; (g = ota_map_next(&c->groups, &pos)) != NULL;)
        v[k++] = g;
    qsort(v, n, sizeof *v, group_ptr_cmp);
    for (size_t i = 0; i < n; i++)
        fn(ctx, v[i]);
    free(v);
}

const char *ota_catalog_group_user(const ota_catalog *c, const char *name)
{
    size_t pos = 0;
    for (const ota_group *g; (g = ota_map_next(&c->groups, &pos)) != NULL;) {
        if (!g->dynamic || strcmp(g->name, name) == 0)
            continue;
        for (size_t i = 0; i < g->query.n_groups; i++) {
            if (strcmp(g->query.groups[i], name) == 0)
                return g->name;
        }
    }
    return NULL;
}

const char *ota_group_name(const ota_group *g)
{
    return g->name;
}

const ota_target *ota_group_query(const ota_group *g)
{
    return g->dynamic ? &g->query : NULL;
}

bool ota_group_has(const ota_group *g, const char *vin)
{
    return !g->dynamic && vin != NULL && ota_map_get_str(&g->members, vin) != NULL;
}

size_t ota_group_size(const ota_group *g)
{
    return ota_map_count(&g->members);
}

static int vin_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ota_group_vins_each(const ota_group *g, void (*fn)(void *ctx, const char *vin), void *ctx)
{
    size_t n = ota_map_count(&g->members), k = 0, pos = 0;
    if (n == 0)
        return;
    const char **v = malloc(n * sizeof *v);
    if (v == NULL) {
        for (const cat_vin *r; (r = ota_map_next(&g->members, &pos)) != NULL;)
            fn(ctx, r->vin);
        return;
    }
    for (const cat_vin *r; (r = ota_map_next(&g->members, &pos)) != NULL;)
        v[k++] = r->vin;
    qsort(v, n, sizeof *v, vin_cmp);
    for (size_t i = 0; i < n; i++)
        fn(ctx, v[i]);
    free(v);
}

/* ---- the start-up load ---- */

typedef struct {
    ota_catalog *c;
    char *err;
    size_t errlen;
    bool failed;
} load_ctx;

static int load_fail(load_ctx *lc, const char *name, const char *what)
{
    snprintf(lc->err, lc->errlen, "group %s: %s", name, what);
    lc->failed = true;
    return 1;
}

static int on_group(void *ctx, const char *name, const char *json)
{
    load_ctx *lc = ctx;
    char perr[384];
    ota_group_rec g;
    cJSON *j = cJSON_Parse(json);
    if (j == NULL)
        return load_fail(lc, name, "not JSON");
    int rc = ota_json_group(j, NULL, true, &g, perr, sizeof perr);
    cJSON_Delete(j);
    if (rc != 0)
        return load_fail(lc, name, perr);
    if (strcmp(g.name, name) != 0) {
        ota_group_rec_free(&g);
        return load_fail(lc, name, "the name does not match the key");
    }
    rc = ota_catalog_put_group(lc->c, &g);
    ota_group_rec_free(&g);
    return rc ? load_fail(lc, name, "out of memory") : 0;
}

static int on_member(void *ctx, const char *name, const char *vin)
{
    load_ctx *lc = ctx;
    ota_group *g = ota_map_get_str(&lc->c->groups, name);
    if (g == NULL || g->dynamic)
        return load_fail(lc, name, "a member row of no static group");
    return member_add(&g->members, vin) < 0 ? load_fail(lc, name, "bad member VIN or out of memory")
                                            : 0;
}

int ota_catalog_follow_group(ota_catalog *c, const char *name, const char *json,
                             char *const *vins, size_t n_vins, char *err, size_t errlen)
{
    cat_touch(c);
    if (json == NULL)
        return ota_catalog_delete_group(c, name) < 0 ? -1 : 1;
    load_ctx lc = {c, err, errlen, false};
    if (on_group(&lc, name, json) != 0)
        return -1;
    for (size_t i = 0; i < n_vins; i++) {
        if (on_member(&lc, name, vins[i]) != 0)
            return -1;
    }
    return 1;
}

int ota_catalog_load_groups(ota_catalog *c, ota_store *s, char *err, size_t errlen)
{
    cat_touch(c);
    load_ctx lc = {c, err, errlen, false};
    if (ota_store_load_groups(s, on_group, on_member, &lc) == 0)
        return 0;
    if (!lc.failed)
        snprintf(err, errlen, "loading the groups failed");
    return -1;
}
