/*
 * catalog.h — the in-memory catalog: what the broker thread reads on the hot path.
 *
 * Loaded from the store at start (ota_catalog_load) and kept current by the operator
 * commands, which change it only after the store has the change (control_*.c). Every
 * lookup is O(1) (hash maps keyed by VIN, package id, model/series, sha256, strategy id)
 * or O(log n) (a model/series's package versions, kept sorted); nothing here touches the
 * store or the disk after the load. Broker thread only: no locks.
 *
 * Records are the ones of ota_records.h. The catalog owns what it holds: the put_*
 * functions take ownership of the record passed (its fields are moved in and the caller's
 * record is left zeroed), and lookups return pointers valid until the next change of the
 * same entity. Strings that many vehicles share (model, series, platform, status, usage,
 * fw) are interned, so a million vehicles cost well under 128 bytes each.
 */
#ifndef OTA_CATALOG_H
#define OTA_CATALOG_H

#include "ota_records.h"
#include "ota_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ota_catalog ota_catalog;

/* A vehicle as the catalog keeps it (interned strings are shared: never free them).
 * 88 bytes on LP64, a million of them in the catalog: the flags and the RXSWIN list's id
 * fill what would be padding after the VIN (a field added here costs 8 MB per million). */
typedef struct {
    char vin[18];
    bool sold : 1, activated : 1, passenger : 1;
    uint32_t rxswin_id; /* the canonical RXSWIN list (issue 17): ota_catalog_vehicle_rxswin */
    const char *model, *series, *platform, *status, *usage, *fw; /* interned; NULL if absent */
    const char *config_word;                                     /* interned; NULL if absent */
    /* OTA_PUBKEY_LEN bytes (a block of the catalog's key slabs), or NULL */
    const uint8_t *public_key;
} ota_vehicle;

ota_catalog *ota_catalog_new(void);
void ota_catalog_free(ota_catalog *c);

/* Loads everything the store holds into an empty catalog. Documents that no longer parse
 * are an error naming their kind and key. Returns 0, or -1 with err. */
int ota_catalog_load(ota_catalog *c, ota_store *s, char *err, size_t errlen);
/* Applies one change log entry on a running broker (plugin/follow.c) through the load's
 * own functions. 1 applied, 0 not the catalog's (tasks, settings, groups, a deleted
 * document other than a package), -1 with err set. */
int ota_catalog_apply_change(ota_catalog *c, const ota_store_change *ch, char *err, size_t errlen);

/* The catalog's generation: a number no other catalog of the process had, which every
 * change (every function here that takes a non-const catalog) replaces with a new one. Equal
 * generations mean nothing changed in between (pkg.c keeps what it decided from it). */
uint64_t ota_catalog_gen(const ota_catalog *c);

/* ---- vehicles ---- */
const ota_vehicle *ota_catalog_vehicle(const ota_catalog *c, const char *vin);
/* Calls fn after each change of what a target query reads (issue 16's continuous tasks):
 * a vehicle put or deleted, a list member added or removed (vin), a group set or deleted
 * (vin NULL: any vehicle may match differently). One hook; fn NULL removes it. */
void ota_catalog_on_change(ota_catalog *c, void (*fn)(void *ctx, const char *vin), void *ctx);
/* Inserts or replaces; takes the record's contents. 0, or -1 out of memory. */
int ota_catalog_put_vehicle(ota_catalog *c, ota_vehicle_rec *rec);
/* 1 deleted, 0 not there. */
int ota_catalog_delete_vehicle(ota_catalog *c, const char *vin);
size_t ota_catalog_vehicle_count(const ota_catalog *c);
/* Calls fn for every vehicle, in no particular order (listVehicles, getFleetSummary: a
 * walk of the VIN map, ~10 ms per million vehicles). */
void ota_catalog_vehicles_each(const ota_catalog *c, void (*fn)(void *ctx, const ota_vehicle *v),
                               void *ctx);
/* The vehicle's RXSWIN list (canonical, interned), or NULL when it has none. */
const char *ota_catalog_vehicle_rxswin(const ota_catalog *c, const ota_vehicle *v);
/* The vehicle as a record (copies; free with ota_vehicle_rec_free). 0, or -1. */
int ota_catalog_vehicle_rec(const ota_catalog *c, const ota_vehicle *v, ota_vehicle_rec *out);

/* ---- models ---- */
const ota_model_rec *ota_catalog_model(const ota_catalog *c, const char *model, const char *series);
int ota_catalog_put_model(ota_catalog *c, ota_model_rec *rec);
/* True when some model declares this ECU. */
bool ota_catalog_ecu_known(const ota_catalog *c, const char *ecu);

/* ---- files ---- */
const ota_file_rec *ota_catalog_file(const ota_catalog *c, const char *sha256);
int ota_catalog_put_file(ota_catalog *c, const ota_file_rec *rec);

/* ---- packages ---- */
const ota_package_rec *ota_catalog_package(const ota_catalog *c, uint64_t id);
/* The full package of model/series/version, or the delta from `from` to version. */
const ota_package_rec *ota_catalog_package_full(const ota_catalog *c, const char *model,
                                                const char *series, const char *version);
const ota_package_rec *ota_catalog_package_delta(const ota_catalog *c, const char *model,
                                                 const char *series, const char *from,
                                                 const char *version);
/* The full package with the highest version (ota_version_cmp) of a model/series; with
 * released_only, among released packages only. NULL when none. */
const ota_package_rec *ota_catalog_max_version(const ota_catalog *c, const char *model,
                                               const char *series, bool released_only);
/* Calls fn for each package, in (model, series, version) order; model/series NULL = all. */
void ota_catalog_packages_each(const ota_catalog *c, const char *model, const char *series,
                               void (*fn)(void *ctx, const ota_package_rec *p), void *ctx);
/* The id the next added package gets (max loaded id + 1). */
uint64_t ota_catalog_next_package_id(const ota_catalog *c);
/* Inserts or replaces (by id). */
int ota_catalog_put_package(ota_catalog *c, ota_package_rec *rec);
int ota_catalog_set_package_status(ota_catalog *c, uint64_t id, ota_pkg_status st);
/* Removes a package (deletePackage). 1 deleted, 0 not there. Its id is not given again
 * while the plugin runs. */
int ota_catalog_delete_package(ota_catalog *c, uint64_t id);

/* ---- strategies and their bindings ---- */
const ota_strategy_rec *ota_catalog_strategy(const ota_catalog *c, const char *id);
int ota_catalog_put_strategy(ota_catalog *c, ota_strategy_rec *rec);
/* The strategy bound to a VIN, else the default of its model/series (SPEC §6), else NULL. */
const ota_strategy_rec *ota_catalog_strategy_for(const ota_catalog *c, const ota_vehicle *v);
const ota_strategy_rec *ota_catalog_default_strategy(const ota_catalog *c, const char *model,
                                                     const char *series);
int ota_catalog_bind_default(ota_catalog *c, const char *model, const char *series,
                             const char *strategy_id);
int ota_catalog_bind_vin(ota_catalog *c, const char *vin, const char *strategy_id);
/* Strategy ids bound to a model/series (its default and those of its vehicles). */
void ota_catalog_strategies_of(const ota_catalog *c, const char *model, const char *series,
                               void (*fn)(void *ctx, const ota_strategy_rec *s), void *ctx);

/* ---- RXSWIN changes (issue 17, catalog_rxswin.c) ----
 * What each committed success of a package with RXSWINs changed, by task and VIN: loaded
 * from the OTA_DOC_RXSWIN documents, added once such a document is stored. */
typedef struct {
    uint64_t package;
    const char *before, *after; /* interned canonical lists; NULL: none */
    int64_t at_ms;
} ota_rxswin_change;
const ota_rxswin_change *ota_catalog_rxswin_change(const ota_catalog *c, const char *task,
                                                   const char *vin);
/* Inserts or replaces (copies). 0, or -1 out of memory or a bad record. */
int ota_catalog_put_rxswin_change(ota_catalog *c, const ota_rxswin_change_rec *r);
/* The document key of a change: "TASK/VIN" into buf (at least 64 + 1 + 17 + 1 bytes). */
void ota_catalog_rxswin_key(const char *task, const char *vin, char *buf, size_t len);
size_t ota_catalog_rxswin_count(const ota_catalog *c);

/* ---- lists ---- */
bool ota_catalog_listed(const ota_catalog *c, ota_list_kind list, const char *vin);
int ota_catalog_list_add(ota_catalog *c, ota_list_kind list, const char *vin);
int ota_catalog_list_remove(ota_catalog *c, ota_list_kind list, const char *vin);
size_t ota_catalog_list_count(const ota_catalog *c, ota_list_kind list);
/* Calls fn for each VIN of a list, in VIN order. */
void ota_catalog_list_each(const ota_catalog *c, ota_list_kind list,
                           void (*fn)(void *ctx, const char *vin), void *ctx);

#endif
