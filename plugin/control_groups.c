/*
 * control_groups.c — setGroup, deleteGroup, listGroups, getGroup (issue 16,
 * docs/operator-api.md "Groups and targets").
 *
 * A group is static (a VIN set, up to 100,000 VINs per setGroup, which replaces the whole
 * set) or dynamic (a saved target query, evaluated whenever it is used). setGroup checks
 * a dynamic group's query against the catalog first — its groups must exist and no cycle
 * may pass through the new definition — then stores the definition and members
 * (ota_store_put_group, writer thread) and only then puts the group in the catalog.
 * deleteGroup refuses a group that a dynamic group's query names.
 */
#include "catalog.h"
#include "control_targets.h"
#include "groups.h"
#include "ota_catalog_json.h"
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- setGroup */

typedef struct {
    ota_cmd_op base;
    ota_group_rec rec;
    char *json; /* the stored definition */
} set_op;

static void set_free(ota_cmd_op *base)
{
    set_op *op = (set_op *)base;
    ota_group_rec_free(&op->rec);
    free(op->json);
    free(op);
}

static int set_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    set_op *op = (set_op *)base;
    char serr[400];
    if (ota_store_put_group(store, op->rec.name, op->json, (const char *const *)op->rec.vins,
                            op->rec.n_vins, serr, sizeof serr) == 0)
        return 0;
    snprintf(err, errlen, "not stored: %s", serr);
    return -1;
}

/* How many vehicles a group holds now: its members, or what its query matches. */
static size_t group_size(const ota_catalog *c, const ota_group *g)
{
    const ota_target *q = ota_group_query(g);
    if (q == NULL)
        return ota_group_size(g);
    char err[256];
    ota_target_match *m = NULL;
    if (ota_target_compile(c, q, NULL, NULL, "", &m, err, sizeof err) != 0)
        return 0; /* a group it names is gone: matches nothing */
    size_t n = ota_target_count(c, m);
    ota_target_match_free(m);
    return n;
}

static cJSON *group_summary(const ota_catalog *c, const ota_group *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", ota_group_name(g));
    cJSON_AddStringToObject(o, "kind", ota_group_query(g) ? "dynamic" : "static");
    cJSON_AddNumberToObject(o, "size", (double)group_size(c, g));
    return o;
}

static cJSON *set_apply(ota_plugin *p, ota_cmd_op *base)
{
    set_op *op = (set_op *)base;
    if (ota_catalog_put_group(p->catalog, &op->rec) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: group %s is stored but not in memory (out of memory): it is "
                             "loaded at the next start",
                             op->rec.name);
        return NULL;
    }
    const ota_group *g = ota_catalog_group(p->catalog, op->rec.name);
    return g ? group_summary(p->catalog, g) : NULL;
}

/* A dynamic group's query must compile with the new definition in place: its groups
 * exist, and a cycle through this group (the only kind a change of it can close) is seen
 * when the compilation comes back to it. */
static int check_query(ota_plugin *p, const ota_group_rec *g, char *err, size_t errlen)
{
    ota_target_match *m = NULL;
    if (!g->dynamic)
        return 0;
    if (ota_target_compile(p->catalog, &g->query, g->name, &g->query, "group.query", &m, err,
                           errlen) != 0)
        return -1;
    ota_target_match_free(m);
    return 0;
}

void ota_cmd_set_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"group", NULL};
    char err[512];
    const cJSON *gj = cJSON_GetObjectItemCaseSensitive(cmd, "group");
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (gj == NULL) {
        ota_cmd_fail(c, "group: missing");
        return;
    }
    set_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.run = set_run;
    op->base.apply = set_apply;
    op->base.free_op = set_free;
    if (ota_json_group(gj, "group", false, &op->rec, err, sizeof err) != 0 ||
        check_query(p, &op->rec, err, sizeof err) != 0) {
        set_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *def = ota_json_from_group(&op->rec);
    op->json = def ? cJSON_PrintUnformatted(def) : NULL;
    cJSON_Delete(def);
    if (op->json == NULL) {
        set_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- deleteGroup */

typedef struct {
    ota_cmd_op base;
    char *name;
} delete_op;

static void delete_free(ota_cmd_op *base)
{
    delete_op *op = (delete_op *)base;
    free(op->name);
    free(op);
}

static int delete_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    char serr[400];
    if (ota_store_delete_group(store, ((delete_op *)base)->name, serr, sizeof serr) == 0)
        return 0;
    snprintf(err, errlen, "not stored: %s", serr);
    return -1;
}

static cJSON *delete_apply(ota_plugin *p, ota_cmd_op *base)
{
    cJSON *data = cJSON_CreateObject();
    int n = ota_catalog_delete_group(p->catalog, ((delete_op *)base)->name);
    cJSON_AddNumberToObject(data, "deleted", n);
    return data;
}

/* The name field of a command, naming a known group; answers when it fails. */
static const ota_group *known_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                    const char *const *allowed)
{
    char err[256];
    const char *name = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof err) != 0 ||
        ota_json_get_word(cmd, "", "name", true, &name, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return NULL;
    }
    const ota_group *g = ota_catalog_group(p->catalog, name);
    if (g == NULL)
        ota_cmd_fail(c, "name: unknown group \"%s\"", name);
    return g;
}

/* The id of an active continuous task whose target names group (its members still join
 * it: issue 16), or NULL. */
static const char *continuous_user(ota_plugin *p, const char *group)
{
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    const char *id = NULL;
    for (long i = 0; i < n && !id; i++) {
        const ota_target *q = tasks[i]->continuous && tasks[i]->state == OTA_TASK_ACTIVE
                                  ? tasks[i]->target
                                  : NULL;
        for (size_t k = 0; q && k < q->n_groups && !id; k++) {
            id = strcmp(q->groups[k], group) == 0 ? tasks[i]->rec.id : NULL;
        }
    }
    free(tasks);
    return id;
}

void ota_cmd_delete_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"name", NULL};
    const ota_group *g = known_group(p, c, cmd, allowed);
    if (g == NULL)
        return;
    const char *user = ota_catalog_group_user(p->catalog, ota_group_name(g));
    if (user != NULL) {
        ota_cmd_fail(c, "name: group \"%s\" is named by dynamic group \"%s\"", ota_group_name(g),
                     user);
        return;
    }
    const char *task = continuous_user(p, ota_group_name(g));
    if (task != NULL) {
        ota_cmd_fail(c, "name: group \"%s\" is named by the target of continuous task %s",
                     ota_group_name(g), task);
        return;
    }
    delete_op *op = calloc(1, sizeof *op);
    if (op == NULL || (op->name = strdup(ota_group_name(g))) == NULL) {
        free(op);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.run = delete_run;
    op->base.apply = delete_apply;
    op->base.free_op = delete_free;
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- listGroups, getGroup */

typedef struct {
    const ota_catalog *c;
    cJSON *arr;
} list_ctx;

static void list_one(void *ctx, const ota_group *g)
{
    list_ctx *x = ctx;
    cJSON_AddItemToArray(x->arr, group_summary(x->c, g));
}

void ota_cmd_list_groups(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    list_ctx x = {p->catalog, cJSON_AddArrayToObject(data, "groups")};
    if (x.arr == NULL) {
        cJSON_Delete(data);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_catalog_groups_each(p->catalog, list_one, &x);
    ota_cmd_ok(c, data);
}

static void add_vin(void *ctx, const char *vin)
{
    cJSON_AddItemToArray(ctx, cJSON_CreateString(vin));
}

/* The VINs of the group: its members, or what its query matches now (sorted). */
static int group_vins(const ota_catalog *c, const ota_group *g, cJSON *arr)
{
    const ota_target *q = ota_group_query(g);
    if (q == NULL) {
        ota_group_vins_each(g, add_vin, arr);
        return 0;
    }
    char err[256], **vins = NULL;
    size_t n = 0;
    ota_target_match *m = NULL;
    if (ota_target_compile(c, q, NULL, NULL, "", &m, err, sizeof err) != 0)
        return 0;
    int rc = ota_target_vins(c, m, OTA_GROUP_VINS_MAX, &vins, &n);
    ota_target_match_free(m);
    for (size_t i = 0; rc == 0 && i < n; i++)
        add_vin(arr, vins[i]);
    ota_json_strings_free(vins, rc == 0 ? n : 0);
    return rc;
}

void ota_cmd_get_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"name", "members", NULL};
    char err[256];
    bool members = false;
    const ota_group *g = known_group(p, c, cmd, allowed);
    if (g == NULL)
        return;
    if (ota_json_get_bool(cmd, "", "members", false, false, &members, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = group_summary(p->catalog, g);
    const ota_target *q = ota_group_query(g);
    if (q != NULL)
        cJSON_AddItemToObject(data, "query", ota_json_from_target(q));
    if (members) {
        cJSON *arr = cJSON_AddArrayToObject(data, "vins");
        if (arr == NULL || group_vins(p->catalog, g, arr) != 0) {
            cJSON_Delete(data);
            ota_cmd_fail(c, "members: more than %d vehicles match (or out of memory)",
                         OTA_GROUP_VINS_MAX);
            return;
        }
    }
    ota_cmd_ok(c, data);
}
