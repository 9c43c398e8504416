/*
 * catalog_impl.h — the inside of the in-memory catalog (catalog.h), shared by its files:
 *   catalog.c            maps, interning, model/series entries, models, ECUs, files
 *   catalog_vehicles.c   vehicles and lists
 *   catalog_packages.c   packages (by name, and per model/series sorted by version)
 *   catalog_strategies.c strategies and their bindings
 *   catalog_load.c       the start-up load from the store
 *   catalog_groups.c     named vehicle groups (groups.h)
 *
 * Every index is an ota_map (map.h). Strings that vehicles share are interned in
 * c->strings (one copy each, kept until ota_catalog_free) and compared by pointer where
 * both sides are interned. A model/series entry (cat_ms, key "model\x1fseries") gathers
 * what belongs to a model/series: its model record, its packages sorted by version, its
 * default strategy and how many of its vehicles each VIN-bound strategy has.
 */
#ifndef OTA_CATALOG_IMPL_H
#define OTA_CATALOG_IMPL_H

#include "catalog.h"
#include "map.h"

#define OTA_VIN_LEN 17

/* A strategy bound to some of a model/series's vehicles, and how many. */
typedef struct {
    const char *strategy; /* interned id */
    size_t vins;          /* 0: kept as a reservation, not reported */
} cat_bound;

/* Everything of one model/series. */
typedef struct {
    char *key;                  /* "model\x1fseries" */
    const char *model, *series; /* interned */
    bool has_model;
    ota_model_rec model_rec;
    ota_package_rec **pkgs; /* owned by c->packages; sorted by (version, kind, from, id) */
    size_t n_pkgs, cap_pkgs;
    const char *default_strategy; /* interned id, or NULL */
    cat_bound *bound;
    size_t n_bound, cap_bound;
} cat_ms;

typedef struct {
    char *name;
    size_t models; /* how many models declare it */
} cat_ecu;

/* VIN-keyed records: list members and VIN bindings (the VIN first: one key function). */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
} cat_vin;

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    const char *strategy; /* interned id */
} cat_vin_binding;

/* A package's name: "model\x1fseries\x1fversion" (full) or "...\x1fversion\x1ffrom"
 * (delta). p is NULL while no package has that name. */
typedef struct {
    char *key;
    ota_package_rec *p;
} cat_pkg_name;

/* Public keys: 32-byte blocks carved from slabs, freed ones on a free list (malloc would
 * spend 48 bytes on each). */
#define CAT_KEY_SLAB 2047
typedef struct cat_key_slab {
    struct cat_key_slab *next;
    uint8_t keys[CAT_KEY_SLAB][OTA_PUBKEY_LEN];
} cat_key_slab;

typedef struct {
    cat_key_slab *slabs; /* the newest first */
    size_t used;         /* blocks handed out of the newest slab */
    void *free;          /* freed blocks, linked through their first bytes */
} cat_keys;

struct ota_catalog {
    ota_map strings;               /* char *: interned strings */
    ota_map vehicles;              /* ota_vehicle, by vin */
    ota_map ms;                    /* cat_ms, by "model\x1fseries" */
    ota_map ecus;                  /* cat_ecu, by name */
    ota_map files;                 /* ota_file_rec, by sha256 */
    ota_map packages;              /* ota_package_rec, by id (8 bytes) */
    ota_map pkg_names;             /* cat_pkg_name, by name */
    ota_map strategies;            /* ota_strategy_rec, by id */
    ota_map vin_bindings;          /* cat_vin_binding, by vin */
    ota_map lists[OTA_LIST_COUNT]; /* cat_vin, by vin */
    cat_keys keys;                 /* the vehicles' public keys */
    ota_map groups;                /* ota_group, by name (catalog_groups.c) */
    ota_map rxswin;                /* cat_rxswin, by "task/vin" (catalog_rxswin.c) */
    uint64_t next_package_id;
    uint64_t gen; /* ota_catalog_gen: unique in the process, new at every change */
    void (*on_change)(void *ctx, const char *vin); /* ota_catalog_on_change */
    void *on_change_ctx;
};

ota_map_key cat_vin_key(const void *rec);

/* Every function of catalog.h (and groups.h) that may change the catalog calls this first:
 * c gets a new generation (ota_catalog_gen), whether or not the change is then made. */
void cat_touch(ota_catalog *c);

/* Tells the on_change hook that what a target reads of vin (NULL: of many) changed. */
void cat_changed(const ota_catalog *c, const char *vin);

/* The one copy of s (NULL for NULL): 0, or -1 out of memory. */
int cat_intern(ota_catalog *c, const char *s, const char **out);

/* The id of s interned (0 for NULL), for fields a vehicle record keeps in 32 bits: 0, or -1
 * out of memory. cat_id_str gives the interned string back (NULL for 0). */
int cat_intern_id(ota_catalog *c, const char *s, uint32_t *id);
const char *cat_id_str(const ota_catalog *c, uint32_t id);

/* The model/series entry, or NULL; cat_ms_get adds it when missing (NULL: out of memory). */
cat_ms *cat_ms_find(const ota_catalog *c, const char *model, const char *series);
cat_ms *cat_ms_get(ota_catalog *c, const char *model, const char *series);

/* VIN-bound strategy counts of a model/series: reserve makes sure an entry for the
 * (interned) strategy exists (0, or -1 out of memory), so that add never allocates. */
int cat_bound_reserve(cat_ms *ms, const char *strategy);
void cat_bound_add(cat_ms *ms, const char *strategy, long delta);

/* Inserts or replaces a vehicle from a record it only reads. 0, or -1. */
int cat_put_vehicle_copy(ota_catalog *c, const ota_vehicle_rec *r);

/* The groups' map: set up empty, and freed with everything in it (catalog_groups.c). */
void cat_groups_init(ota_catalog *c);
void cat_groups_destroy(ota_catalog *c);

/* RXSWIN changes: the map set up empty, and freed (catalog_rxswin.c). */
void cat_rxswin_init(ota_catalog *c);
void cat_rxswin_destroy(ota_catalog *c);

/* Frees the public keys' slabs. */
void cat_keys_destroy(cat_keys *k);

/* Frees what a record of the map owns (for ota_map_destroy). */
void cat_package_fini(void *rec);
void cat_pkg_name_fini(void *rec);
ota_map_key cat_pkg_name_key(const void *rec);
void cat_strategy_fini(void *rec);

#endif
