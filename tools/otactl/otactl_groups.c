/*
 * otactl_groups.c — otactl's `group` group: set (setGroup), get (getGroup), list
 * (listGroups), delete (deleteGroup); and the JSON option values (--query, --target)
 * that it shares with `task create` / `task preview`.
 *
 * A static group is given as VINs (--vins, --vins-file, as for the lists), a dynamic one
 * as a target query (--query '{"status":["sold"]}' or --query @FILE). setGroup replaces
 * the whole group in one command (up to 100,000 VINs), so it is not split in batches.
 */
#include "otactl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *otactl_json_value(const otactl_ctx *ctx, const char *flag, const char *value)
{
    char *text = NULL;
    const char *src = value;
    if (value[0] == '@') {
        text = otactl_read_file(value + 1, NULL);
        if (!text) {
            otactl_usage_err(ctx, "--%s: cannot read %s", flag, value + 1);
            return NULL;
        }
        src = text;
    }
    cJSON *j = cJSON_Parse(src);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        otactl_usage_err(ctx, "--%s: expected a JSON object", flag);
        return NULL;
    }
    return j;
}

/* ---- group set ---- */

static void print_summary(const cJSON *data)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(data, "name");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(data, "kind");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(data, "size");
    printf("%s  %s  %.0f\n", cJSON_IsString(name) ? name->valuestring : "?",
           cJSON_IsString(kind) ? kind->valuestring : "?",
           cJSON_IsNumber(size) ? size->valuedouble : 0);
}

static int group_set(otactl_ctx *ctx, otactl_args *a)
{
    bool query = otactl_arg(a, "query") != NULL;
    bool vins = otactl_arg(a, "vins") || otactl_arg(a, "vins-file");
    if (query == vins) {
        return otactl_usage_err(ctx,
                                "give --query (a dynamic group) or --vins/--vins-file (a "
                                "static one)%s",
                                query ? ", not both" : "");
    }
    cJSON *g = cJSON_CreateObject();
    cJSON_AddStringToObject(g, "name", a->pos[0]);
    int rc = OTACTL_OK;
    if (query) {
        cJSON *q = otactl_json_value(ctx, "query", otactl_arg(a, "query"));
        rc = q ? OTACTL_OK : OTACTL_EUSAGE;
        if (q) {
            cJSON_AddItemToObject(g, "query", q);
        }
    } else {
        rc = otactl_vins_from_args(ctx, a, cJSON_AddArrayToObject(g, "vins"));
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(g);
        return rc;
    }
    cJSON *c = otactl_cmd_new("setGroup");
    cJSON_AddItemToObject(c, "group", g);
    return otactl_run(ctx, c, print_summary);
}

/* ---- group get, list, delete ---- */

static void print_group(const cJSON *data)
{
    print_summary(data);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(data, "query"), *v;
    if (q) {
        char *text = cJSON_PrintUnformatted(q);
        printf("query: %s\n", text ? text : "?");
        free(text);
    }
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(data, "vins"))
    {
        if (cJSON_IsString(v)) {
            printf("%s\n", v->valuestring);
        }
    }
}

static int group_get(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("getGroup");
    cJSON_AddStringToObject(c, "name", a->pos[0]);
    if (otactl_flag(a, "members")) {
        cJSON_AddBoolToObject(c, "members", true);
    }
    return otactl_run(ctx, c, print_group);
}

static void print_groups(const cJSON *data)
{
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(data, "groups"))
    {
        print_summary(g);
    }
}

static int group_list(otactl_ctx *ctx, otactl_args *a)
{
    (void)a;
    return otactl_run(ctx, otactl_cmd_new("listGroups"), print_groups);
}

static int group_delete(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("deleteGroup");
    cJSON_AddStringToObject(c, "name", a->pos[0]);
    return otactl_run(ctx, c, otactl_print_nothing);
}

static const otactl_opt set_opts[] = {
    {"vins", "VIN,VIN...", "members of a static group (repeatable)"},
    {"vins-file", "FILE", "members from FILE (white space / comma separated; - = stdin)"},
    {"query", "JSON|@FILE", "the target query of a dynamic group (docs/otactl.md)"},
    {NULL, NULL, NULL},
};

static const otactl_opt get_opts[] = {
    {"members", NULL, "also list the VINs (a dynamic group: those it matches now)"},
    {NULL, NULL, NULL},
};

const otactl_action otactl_group_actions[] = {
    {"set", "NAME (--vins V,V... | --vins-file FILE | --query JSON|@FILE)",
     "create or replace a group: prints name, kind, size", set_opts, 1, 1, group_set},
    {"get", "NAME [--members]", "show a group: name, kind, size, query; --members: its VINs",
     get_opts, 1, 1, group_get},
    {"list", "", "every group: name, kind, size", NULL, 0, 0, group_list},
    {"delete", "NAME", "delete a group (not one a dynamic group names)", NULL, 1, 1, group_delete},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};
