/*
 * control_lists.c — addToList, removeFromList, getList (docs/operator-api.md).
 *
 * The four lists of seed 000 (blacklist, forced, same-version and downgrade whitelists)
 * hold VINs, known vehicles or not: a list may be prepared before the fleet is imported.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_CHANGE_MAX 10000

typedef struct {
    ota_cmd_op base;
    ota_list_kind list;
    bool add;
    size_t n;
    char **vins;
} list_op;

static void list_free(ota_cmd_op *base)
{
    list_op *op = (list_op *)base;
    ota_json_strings_free(op->vins, op->n);
    free(op);
}

static cJSON *list_apply(ota_plugin *p, ota_cmd_op *base)
{
    list_op *op = (list_op *)base;
    size_t changed = 0;
    for (size_t i = 0; i < op->n; i++) {
        int rc = op->add ? ota_catalog_list_add(p->catalog, op->list, op->vins[i])
                         : ota_catalog_list_remove(p->catalog, op->list, op->vins[i]);
        changed += rc > 0;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, op->add ? "added" : "removed", (double)changed);
    return data;
}

/* The list field of a command. 0, or -1 with err. */
static int get_list(const cJSON *cmd, ota_list_kind *list, char *err, size_t errlen)
{
    static const char *const names[OTA_LIST_COUNT] = {
        "blacklist", "forced_whitelist", "same_version_whitelist", "downgrade_whitelist"};
    int k = 0;
    if (ota_json_get_enum(cmd, "", "list", true, names, OTA_LIST_COUNT, &k, err, errlen) != 0) {
        return -1;
    }
    *list = (ota_list_kind)k;
    return 0;
}

static int parse_vins(const cJSON *cmd, list_op *op, char *err, size_t errlen)
{
    return ota_json_get_string_array(cmd, "", "vins", true, 1, LIST_CHANGE_MAX, OTA_JSON_VINS,
                                     &op->vins, &op->n, err, errlen);
}

static void change_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd, bool add)
{
    static const char *const allowed[] = {"list", "vins", NULL};
    char err[512];
    list_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base = (ota_cmd_op){.apply = list_apply, .free_op = list_free};
    op->add = add;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        get_list(cmd, &op->list, err, sizeof(err)) != 0 ||
        parse_vins(cmd, op, err, sizeof(err)) != 0) {
        list_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    op->base.change.list = op->list;
    if (add) {
        op->base.change.list_add = (const char *const *)op->vins;
        op->base.change.n_list_add = op->n;
    } else {
        op->base.change.list_remove = (const char *const *)op->vins;
        op->base.change.n_list_remove = op->n;
    }
    ota_cmd_store(p, c, &op->base);
}

void ota_cmd_add_to_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    change_list(p, c, cmd, true);
}

void ota_cmd_remove_from_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    change_list(p, c, cmd, false);
}

static void add_vin(void *ctx, const char *vin)
{
    cJSON_AddItemToArray(ctx, cJSON_CreateString(vin));
}

void ota_cmd_get_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"list", NULL};
    char err[256];
    ota_list_kind list;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        get_list(cmd, &list, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *vins = cJSON_AddArrayToObject(data, "vins");
    ota_catalog_list_each(p->catalog, list, add_vin, vins);
    ota_cmd_ok(c, data);
}
