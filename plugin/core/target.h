/*
 * target.h — evaluating a target query (ota_target.h) over the in-memory catalog, and the
 * preview of what the task rules (task_rules.h) would make of its vehicles (issue 16).
 *
 * A query is compiled once against the catalog (ota_target_compile): its texts become the
 * catalog's interned pointers (a text no vehicle has matches nothing, without a string
 * compare per vehicle), its groups are looked up (a dynamic group's query compiled in
 * turn: unknown groups and cycles are errors naming the group). Matching one vehicle is
 * then a few pointer compares and, for lists, groups and firmware "below", one hash
 * lookup or one version compare each: a scan of 1,000,000 vehicles takes tens of
 * milliseconds (bench/ota-target-bench). A compiled query is valid until the catalog
 * changes (broker thread: compile, use and free it within one command).
 */
#ifndef OTA_TARGET_MATCH_H
#define OTA_TARGET_MATCH_H

#include "catalog.h"
#include "ota_target.h"
#include "task_rules.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ota_target_match ota_target_match;

/* Compiles q. self / self_query: a group being defined (setGroup), whose name in q's
 * groups (or in those it reaches) means self_query instead of the stored group — so a
 * cycle through the new definition is seen before it is stored. NULL when not defining.
 * Returns 0 with *out, or -1 with err ("groups[1]: unknown group \"g7\"", "group a:
 * groups nest more than 8 deep (a cycle?)"; path prefixes the field names). */
int ota_target_compile(const ota_catalog *c, const ota_target *q, const char *self,
                       const ota_target *self_query, const char *path, ota_target_match **out,
                       char *err, size_t errlen);
void ota_target_match_free(ota_target_match *m);

bool ota_target_matches(const ota_target_match *m, const ota_vehicle *v);

/* Calls fn for every matching vehicle (catalog order: not sorted); returns how many. */
size_t ota_target_each(const ota_catalog *c, const ota_target_match *m,
                       void (*fn)(void *ctx, const ota_vehicle *v), void *ctx);
size_t ota_target_count(const ota_catalog *c, const ota_target_match *m);

/* The matching VINs, sorted: *vins is a malloc()ed array of *n malloc()ed strings (free
 * with ota_json_strings_free), at most max of them (more: returns 1 with *n the full
 * count and *vins NULL). 0, 1, or -1 out of memory. */
int ota_target_vins(const ota_catalog *c, const ota_target_match *m, size_t max, char ***vins,
                    size_t *n);

/* The matching vehicles sorted by VIN, no copies (createTask over up to 1,000,000, issue
 * 16): *out a malloc()ed array of *n catalog vehicles (valid until the catalog changes),
 * at most max of them (more: returns 1 with *n the count and *out NULL). One pass over the
 * catalog when a list of the catalog's size is at most 4 x max, else a count first.
 * 0, 1, or -1 out of memory. */
int ota_target_vehicles(const ota_catalog *c, const ota_target_match *m, size_t max,
                        const ota_vehicle ***out, size_t *n);

/* What createTask would make of a target: vehicles matched, and of those how many each
 * per-VIN rule rejects (by ota_reject_code; [OTA_REJ_NONE] = accepted). */
#define OTA_REJ_SLOTS (OTA_REJ_CONFIG_WORD_MISSING + 1)
typedef struct {
    size_t matched;
    size_t by_code[OTA_REJ_SLOTS];
} ota_target_preview;

void ota_target_preview_run(const ota_catalog *c, const ota_target_match *m,
                            const ota_rules_env *env, const ota_task_rec *t,
                            ota_target_preview *out);

#endif
