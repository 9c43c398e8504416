/*
 * group_json.c — the group records of setGroup and their stored definition
 * (ota_target.h): a static group is a set of VINs, a dynamic one a saved target query.
 */
#include "ota_target.h"

#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ota_group_rec_free(ota_group_rec *g)
{
    if (g == NULL)
        return;
    free(g->name);
    ota_target_free(&g->query);
    ota_json_strings_free(g->vins, g->n_vins);
    memset(g, 0, sizeof *g);
}

static int group_name(const cJSON *j, const char *path, ota_group_rec *out, char *err,
                      size_t errlen)
{
    const char *name;
    if (ota_json_get_word(j, path, "name", true, &name, err, errlen) < 0)
        return -1;
    if ((out->name = strdup(name)) == NULL)
        return ota_json_errf(err, errlen, path, "name", "out of memory");
    return 0;
}

/* path + ".query" (or "query" when path is empty) for the target's errors. */
static void query_path(char *buf, size_t size, const char *path)
{
    snprintf(buf, size, "%s%squery", path ? path : "", path && path[0] ? "." : "");
}

static int group_query(const cJSON *j, const char *path, ota_group_rec *out, char *err,
                       size_t errlen)
{
    char sub[256];
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "query");
    query_path(sub, sizeof sub, path);
    out->dynamic = true;
    return ota_json_target(q, sub, &out->query, err, errlen);
}

static int parse_request(const cJSON *j, const char *path, ota_group_rec *out, char *err,
                         size_t errlen)
{
    static const char *const fields[] = {"name", "vins", "query", NULL};
    if (ota_json_check_fields(j, path, fields, err, errlen) < 0 ||
        group_name(j, path, out, err, errlen) < 0)
        return -1;
    bool has_vins = cJSON_GetObjectItemCaseSensitive(j, "vins") != NULL;
    bool has_query = cJSON_GetObjectItemCaseSensitive(j, "query") != NULL;
    if (has_vins == has_query)
        return ota_json_errf(err, errlen, path, "vins",
                             has_vins ? "give either vins (a static group) or query (a "
                                        "dynamic one), not both"
                                      : "missing (or query, for a dynamic group)");
    if (has_query)
        return group_query(j, path, out, err, errlen);
    return ota_json_get_string_array(j, path, "vins", true, 0, OTA_GROUP_VINS_MAX,
                                     OTA_JSON_VINS | OTA_JSON_UNIQUE, &out->vins, &out->n_vins, err,
                                     errlen);
}

static int parse_stored(const cJSON *j, const char *path, ota_group_rec *out, char *err,
                        size_t errlen)
{
    static const char *const fields[] = {"name", "kind", "query", NULL};
    static const char *const kinds[] = {"static", "dynamic"};
    int kind = 0;
    if (ota_json_check_fields(j, path, fields, err, errlen) < 0 ||
        group_name(j, path, out, err, errlen) < 0 ||
        ota_json_get_enum(j, path, "kind", true, kinds, 2, &kind, err, errlen) < 0)
        return -1;
    bool has_query = cJSON_GetObjectItemCaseSensitive(j, "query") != NULL;
    if (has_query != (kind == 1))
        return ota_json_errf(err, errlen, path, "query",
                             kind ? "missing" : "a static group has no query");
    return kind ? group_query(j, path, out, err, errlen) : 0;
}

int ota_json_group(const cJSON *j, const char *path, bool stored, ota_group_rec *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc =
        stored ? parse_stored(j, path, out, err, errlen) : parse_request(j, path, out, err, errlen);
    if (rc != 0)
        ota_group_rec_free(out);
    return rc;
}

cJSON *ota_json_from_group(const ota_group_rec *g)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && cJSON_AddStringToObject(o, "name", g->name) != NULL &&
              cJSON_AddStringToObject(o, "kind", g->dynamic ? "dynamic" : "static") != NULL;
    if (ok && g->dynamic) {
        cJSON *q = ota_json_from_target(&g->query);
        ok = q != NULL && cJSON_AddItemToObject(o, "query", q);
        if (!ok)
            cJSON_Delete(q);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
