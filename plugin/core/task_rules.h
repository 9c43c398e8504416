/*
 * task_rules.h — the rules of seed 000 / SPEC §6 that decide whether a task may be
 * created and which of its VINs it may reach.
 *
 * Pure functions over the in-memory catalog, the task type rules and each vehicle's
 * latest upgrade status: no store, no I/O, no Mosquitto, so every rule is tested on its
 * own (pass and fail) and a task of 100,000 VINs validates in well under a second. The
 * rules are data: one table of per-VIN checks, run in the order SPEC §6 lists them; the
 * first that fails gives the VIN's rejection code.
 */
#ifndef OTA_TASK_RULES_H
#define OTA_TASK_RULES_H

#include "catalog.h"
#include "ota_records.h"

#include <stdbool.h>
#include <stddef.h>

/* Task-level errors: the whole createTask fails. */
typedef enum {
    OTA_TASK_OK = 0,
    OTA_TASK_E_EMPTY_VINS,
    OTA_TASK_E_NO_PACKAGE,
    OTA_TASK_E_PACKAGE_NOT_RELEASED,
    OTA_TASK_E_NO_BASELINE,
    OTA_TASK_E_NO_DEFAULT_STRATEGY,
    OTA_TASK_E_STRATEGY_ECU_ORDER,
} ota_task_error;

/* Per-VIN rejection codes, in the order the checks run. */
typedef enum {
    OTA_REJ_NONE = 0,
    OTA_REJ_DUPLICATE_VIN,
    OTA_REJ_UNKNOWN_VEHICLE,
    OTA_REJ_MODEL_MISMATCH,
    OTA_REJ_FACTORY_STATUS,
    OTA_REJ_BLACKLISTED,
    OTA_REJ_USAGE_MISMATCH,
    OTA_REJ_STATUS_MISMATCH,
    OTA_REJ_FIRMWARE_ZERO,
    OTA_REJ_UPGRADE_IN_PROGRESS,
    OTA_REJ_SAME_VERSION,
    OTA_REJ_DOWNGRADE,
    OTA_REJ_CONFIG_WORD_MISSING,
} ota_reject_code;

/* "E_EMPTY_VINS", ...; "E_DUPLICATE_VIN", ... (SPEC §6 spellings). */
const char *ota_task_error_name(ota_task_error e);
const char *ota_reject_name(ota_reject_code r);

/* The latest upgrade status a vehicle reported (from its upgrade_status events). */
typedef struct {
    const char *status;  /* e.g. upgrading, waiting, rolling_back, succeeded, failed */
    const char *trigger; /* the task type that started that upgrade */
    unsigned conditions; /* OTA_PRE_* the vehicle said failed (while waiting); 0: none */
} ota_upgrade_state;

/* Everything the rules read besides the catalog. */
typedef struct {
    /* statuses and usages accepted per task type (index ota_task_type) */
    const ota_task_type_rules *type_rules;
    /* the vehicle's latest upgrade status, or NULL when it never reported one */
    const ota_upgrade_state *(*latest)(void *ctx, const char *vin);
    void *latest_ctx;
} ota_rules_env;

/* The defaults of SPEC §6 (factory: assembly_offline, ok_offline, certificate_printed,
 * any usage; normal and forced: in_stock, sold / retail, fleet, test; spot_check:
 * ok_offline, certificate_printed, in_stock, any usage; diagnostic: any). Fills
 * rules[OTA_TASK_TYPE_COUNT] with static lists (not to be freed). */
void ota_task_default_type_rules(ota_task_type_rules rules[OTA_TASK_TYPE_COUNT]);

/* Task-level checks (VIN list non-empty; package of model/series/version exists, released
 * for formal tasks (normal, forced, factory), with a baseline description; the
 * model/series has a default strategy; every strategy bound to the model/series gives
 * each of its ECUs an upgrade order). *package receives the package the task installs
 * (the full package: spot-check and every notice name the full package; descriptions
 * choose a delta later). */
ota_task_error ota_task_check(const ota_catalog *c, const ota_task_rec *t,
                              const ota_package_rec **package);

/* Per-VIN checks, for VIN number i of the task (duplicates: a VIN that appeared earlier in
 * t->vins is E_DUPLICATE_VIN; pass seen = a set the caller keeps across calls, see
 * ota_vin_set). Returns OTA_REJ_NONE when the VIN is accepted. */
typedef struct ota_vin_set ota_vin_set;
ota_vin_set *ota_vin_set_new(size_t expected);
void ota_vin_set_free(ota_vin_set *s);
ota_reject_code ota_task_check_vin(const ota_catalog *c, const ota_rules_env *env,
                                   const ota_task_rec *t, const char *vin, ota_vin_set *seen);
/* The same for a vehicle the caller holds already (v from the catalog; NULL: unknown),
 * without looking its VIN up again: what a target's scan of the catalog uses (target.c). */
ota_reject_code ota_task_check_vehicle(const ota_catalog *c, const ota_rules_env *env,
                                       const ota_task_rec *t, const char *vin,
                                       const ota_vehicle *v, ota_vin_set *seen);

#endif
