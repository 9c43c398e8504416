/*
 * ota_target.h — a target query over the vehicle catalog (issue 16) and its JSON codec.
 *
 * A target names vehicles by what the catalog knows of them instead of by VIN: every
 * condition given must hold (AND); a condition left out does not filter. Arrays of values
 * for one field (status, usage) match any of their values; arrays of sets (lists, groups)
 * and of config word bits must hold for every item. JSON (createTask's task.target,
 * previewTarget, setGroup's dynamic group):
 *
 *   {"model": W, "series": W,              the vehicle's model / series
 *    "fw": W, "fw_below": W,               firmware equal to W / known and below W
 *                                          (ota_version_cmp: "2.10" > "2.9")
 *    "status": [W...], "usage": [W...],    1..64 words each, any of them
 *    "config_bits_set": [N...],            config word bits (0..255) all set ...
 *    "config_bits_clear": [N...],          ... all clear (a vehicle without a word has none)
 *    "lists": [L...], "not_lists": [L...], on every list L / on none (blacklist, ...)
 *    "groups": [W...],                     a member of every group named (1..16)
 *    "vin_prefix": P}                      the VIN starts with P (1..17 VIN characters)
 *
 * {} matches every vehicle. Errors name the field: "task.target.status[2]: ...".
 */
#ifndef OTA_TARGET_H
#define OTA_TARGET_H

#include "ota_records.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_TARGET_VALUES_MAX 64 /* status, usage, config bits */
#define OTA_TARGET_GROUPS_MAX 16
#define OTA_TARGET_BIT_MAX 255 /* a config word is a word: 64 hex digits */

typedef struct {
    char *model, *series; /* NULL: any */
    char *fw, *fw_below;  /* NULL: any */
    char *vin_prefix;     /* NULL: any */
    char **statuses;      /* any of; NULL: any */
    size_t n_statuses;
    char **usages;
    size_t n_usages;
    uint32_t *bits_set; /* every one set */
    size_t n_bits_set;
    uint32_t *bits_clear; /* every one clear */
    size_t n_bits_clear;
    ota_list_kind *lists; /* on every one */
    size_t n_lists;
    ota_list_kind *not_lists; /* on none */
    size_t n_not_lists;
    char **groups; /* a member of every one */
    size_t n_groups;
} ota_target;

void ota_target_free(ota_target *t);
/* A deep copy; 0, or -1 out of memory (out zeroed). */
int ota_target_copy(const ota_target *t, ota_target *out);

/* Parses a target object (path names it in errors, e.g. "task.target"). Unknown fields,
 * repeated values and values of the wrong type or range are errors. 0, or -1 with err. */
int ota_json_target(const cJSON *j, const char *path, ota_target *out, char *err, size_t errlen);
/* The target as JSON (fields given only); NULL out of memory. */
cJSON *ota_json_from_target(const ota_target *t);

/* ---- groups (setGroup): a named static set of VINs or a dynamic saved target ----
 * Request: {"name": W, "vins": [VIN...]} (0..100,000 distinct VINs; they need not be known
 * vehicles) or {"name": W, "query": TARGET}. Stored definition (the members of a static
 * group are rows of their own, not part of the document): {"name", "kind": "static"} or
 * {"name", "kind": "dynamic", "query"}. */
#define OTA_GROUP_VINS_MAX 100000

typedef struct {
    char *name;
    bool dynamic;
    ota_target query; /* dynamic only */
    char **vins;      /* static, request only */
    size_t n_vins;
} ota_group_rec;

void ota_group_rec_free(ota_group_rec *g);
/* The request form (stored false; "command" and "correlationData" are not allowed: pass
 * the group object) or the stored definition (stored true). 0, or -1 with err. */
int ota_json_group(const cJSON *j, const char *path, bool stored, ota_group_rec *out, char *err,
                   size_t errlen);
/* The stored definition {"name", "kind", "query"?}; NULL out of memory. */
cJSON *ota_json_from_group(const ota_group_rec *g);

#endif
