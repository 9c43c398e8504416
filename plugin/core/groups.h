/*
 * groups.h — named vehicle groups in the in-memory catalog (issue 16): a static group is a
 * set of VINs (they need not be known vehicles, like lists), a dynamic group a saved
 * target query (ota_target.h) evaluated when it is used, so it always reflects the
 * catalog as it is. Targets name groups ("groups": [...]); a dynamic group's query may
 * name other groups, without cycles (ota_target_compile refuses them).
 *
 * Broker thread only, like the rest of the catalog; loaded at start from the store
 * (ota_store_load_groups, called by ota_catalog_load).
 */
#ifndef OTA_GROUPS_H
#define OTA_GROUPS_H

#include "catalog.h"
#include "ota_target.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ota_group ota_group;

const ota_group *ota_catalog_group(const ota_catalog *c, const char *name);
/* Inserts or replaces the group g->name: a dynamic group takes g->query, a static one
 * copies g->vins. 0, or -1 out of memory (the catalog is unchanged). */
int ota_catalog_put_group(ota_catalog *c, ota_group_rec *g);
/* 1 deleted, 0 not there. */
int ota_catalog_delete_group(ota_catalog *c, const char *name);
size_t ota_catalog_group_count(const ota_catalog *c);
/* Calls fn for each group, in name order. */
void ota_catalog_groups_each(const ota_catalog *c, void (*fn)(void *ctx, const ota_group *g),
                             void *ctx);
/* The name of a dynamic group (other than name itself) whose query names group `name`,
 * or NULL: a group in use is not deleted. */
const char *ota_catalog_group_user(const ota_catalog *c, const char *name);

const char *ota_group_name(const ota_group *g);
/* The saved query of a dynamic group, NULL for a static one. */
const ota_target *ota_group_query(const ota_group *g);
/* Static groups: membership, size, and the VINs in VIN order. */
bool ota_group_has(const ota_group *g, const char *vin);
size_t ota_group_size(const ota_group *g);
void ota_group_vins_each(const ota_group *g, void (*fn)(void *ctx, const char *vin), void *ctx);

/* Start-up: loads the stored groups (ota_store_load_groups). 0, or -1 with err naming the
 * group. */
int ota_catalog_load_groups(ota_catalog *c, ota_store *s, char *err, size_t errlen);
/* One group's change log entry (plugin/follow.c), through the start-up load's functions:
 * json NULL deletes it, else its definition replaces it with the static members vins
 * (read from the store). 1 applied, or -1 with err. */
int ota_catalog_follow_group(ota_catalog *c, const char *name, const char *json,
                             char *const *vins, size_t n_vins, char *err, size_t errlen);

#endif
