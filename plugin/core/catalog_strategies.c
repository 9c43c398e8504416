/*
 * catalog_strategies.c — strategies and their bindings in the in-memory catalog.
 *
 * Strategies live in c->strategies (by id) and are replaced in place. A binding names a
 * strategy by its interned id, so a binding may be made before its strategy exists and
 * follows a replaced strategy: the default of a model/series sits in its cat_ms, a VIN's
 * binding in c->vin_bindings (the VIN need not be a known vehicle). For
 * ota_catalog_strategies_of, each cat_ms counts the known vehicles of that model/series
 * per VIN-bound strategy; bindings, vehicle upserts and deletes keep the counts.
 */
#include "catalog_impl.h"

#include <stdlib.h>
#include <string.h>

void cat_strategy_fini(void *rec)
{
    ota_strategy_rec_free(rec);
}

const ota_strategy_rec *ota_catalog_strategy(const ota_catalog *c, const char *id)
{
    return id ? ota_map_get_str(&c->strategies, id) : NULL;
}

/* Takes rec (left zeroed) even on failure. */
int ota_catalog_put_strategy(ota_catalog *c, ota_strategy_rec *rec)
{
    cat_touch(c);
    ota_strategy_rec *s = rec->id ? ota_map_get_str(&c->strategies, rec->id) : NULL;
    if (s != NULL) {
        ota_strategy_rec_free(s);
        *s = *rec;
    } else if (rec->id == NULL || ota_map_put(&c->strategies, rec) == NULL) {
        ota_strategy_rec_free(rec);
        return -1;
    }
    memset(rec, 0, sizeof *rec);
    return 0;
}

const ota_strategy_rec *ota_catalog_default_strategy(const ota_catalog *c, const char *model,
                                                     const char *series)
{
    const cat_ms *ms = cat_ms_find(c, model, series);
    return ms ? ota_catalog_strategy(c, ms->default_strategy) : NULL;
}

const ota_strategy_rec *ota_catalog_strategy_for(const ota_catalog *c, const ota_vehicle *v)
{
    const cat_vin_binding *b = ota_map_get_str(&c->vin_bindings, v->vin);
    const ota_strategy_rec *s = b ? ota_catalog_strategy(c, b->strategy) : NULL;
    return s ? s : ota_catalog_default_strategy(c, v->model, v->series);
}

/* strategy_id NULL removes the default. */
int ota_catalog_bind_default(ota_catalog *c, const char *model, const char *series,
                             const char *strategy_id)
{
    cat_touch(c);
    const char *id;
    cat_ms *ms = cat_ms_get(c, model, series);
    if (ms == NULL || cat_intern(c, strategy_id, &id) != 0)
        return -1;
    ms->default_strategy = id;
    return 0;
}

/* strategy_id NULL removes the VIN's binding. */
int ota_catalog_bind_vin(ota_catalog *c, const char *vin, const char *strategy_id)
{
    cat_touch(c);
    const char *id;
    if (vin == NULL || vin[0] == '\0' || strlen(vin) > OTA_VIN_LEN ||
        cat_intern(c, strategy_id, &id) != 0)
        return -1;
    const ota_vehicle *v = ota_map_get_str(&c->vehicles, vin);
    cat_ms *ms = v ? cat_ms_get(c, v->model, v->series) : NULL;
    if (v != NULL && (ms == NULL || (id && cat_bound_reserve(ms, id) != 0)))
        return -1;
    cat_vin_binding *b = ota_map_get_str(&c->vin_bindings, vin);
    if (b == NULL && id != NULL) {
        cat_vin_binding init = {{0}, NULL};
        memcpy(init.vin, vin, strlen(vin));
        if ((b = ota_map_put(&c->vin_bindings, &init)) == NULL)
            return -1;
    }
    if (b == NULL)
        return 0;
    if (b->strategy != NULL)
        cat_bound_add(ms, b->strategy, -1);
    if (id == NULL) {
        ota_map_remove(&c->vin_bindings, b, NULL);
        return 0;
    }
    b->strategy = id;
    cat_bound_add(ms, id, 1);
    return 0;
}

void ota_catalog_strategies_of(const ota_catalog *c, const char *model, const char *series,
                               void (*fn)(void *ctx, const ota_strategy_rec *s), void *ctx)
{
    const cat_ms *ms = cat_ms_find(c, model, series);
    if (ms == NULL)
        return;
    const ota_strategy_rec *s = ota_catalog_strategy(c, ms->default_strategy);
    if (s != NULL)
        fn(ctx, s);
    for (size_t i = 0; i < ms->n_bound; i++) {
        const cat_bound *b = &ms->bound[i];
        if (b->vins == 0 || b->strategy == ms->default_strategy)
            continue;
        if ((s = ota_catalog_strategy(c, b->strategy)) != NULL)
            fn(ctx, s);
    }
}
