/*
 * mongo_groups.c — vehicle groups in the MongoDB backend (ota_store.h "vehicle groups"):
 *   ota_vehicle_group         {_id: name, json}
 *   ota_vehicle_group_member  {_id: "NAME/VIN", name, vin}
 *
 * put: delete the group's members, insert the new ones (unordered bulk of upserts, so a
 * retry after a partial failure converges), then upsert the definition; delete: members,
 * then the definition. Without a replica set these steps are not one transaction: a
 * failure in between leaves the group's old definition with some of the new members,
 * and putting the group again repairs it (the operator's command failed and says so).
 */
#include "mongo_impl.h"

#include <stdio.h>

#define GROUP_COLL "ota_vehicle_group"
#define MEMBER_COLL "ota_vehicle_group_member"

/* Deletes every document of coll whose `field` is name. */
static int delete_where(mongo_store *st, const char *coll_name, const char *field, const char *name,
                        char *err, size_t errlen)
{
    mongoc_collection_t *coll = ota_store_mg_coll(st, coll_name);
    bson_t sel = BSON_INITIALIZER;
    bson_error_t e;
    BSON_APPEND_UTF8(&sel, field, name);
    bool ok = mongoc_collection_delete_many(coll, &sel, NULL, NULL, &e);
    if (!ok)
        ota_store_mg_err(st, err, errlen, "deleting group %s from %s: %s", name, coll_name,
                         e.message);
    bson_destroy(&sel);
    mongoc_collection_destroy(coll);
    return ok ? 0 : -1;
}

static void upsert_by_id(mongoc_bulk_operation_t *bulk, const char *id, const bson_t *doc)
{
    bson_t sel = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", id);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, doc, &opts, NULL);
    bson_destroy(&sel);
    bson_destroy(&opts);
}

/* Runs a filled bulk on coll; 0, or -1 with err. */
static int run_bulk(mongo_store *st, mongoc_bulk_operation_t *bulk, const char *what, char *err,
                    size_t errlen)
{
    ota_store_mg_bulk_result r;
    if (ota_store_mg_bulk_run(st, bulk, what, &r, err, errlen) != 0)
        return -1;
    if (r.dup_errors + r.other_errors > 0) {
        ota_store_mg_err(st, err, errlen, "%s: %zu write errors", what,
                         r.dup_errors + r.other_errors);
        return -1;
    }
    return 0;
}

static int put_members(mongo_store *st, const char *name, const char *const *vins, size_t n,
                       char *err, size_t errlen)
{
    const size_t batch = 10000;
    mongoc_collection_t *coll = ota_store_mg_coll(st, MEMBER_COLL);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += batch) {
        mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, false, NULL);
        for (size_t k = i; k < n && k < i + batch; k++) {
            char id[256];
            snprintf(id, sizeof id, "%s/%s", name, vins[k]);
            bson_t doc = BSON_INITIALIZER;
            BSON_APPEND_UTF8(&doc, "_id", id);
            BSON_APPEND_UTF8(&doc, "name", name);
            BSON_APPEND_UTF8(&doc, "vin", vins[k]);
            upsert_by_id(bulk, id, &doc);
            bson_destroy(&doc);
        }
        rc = run_bulk(st, bulk, "group members (" MEMBER_COLL ")", err, errlen);
    }
    mongoc_collection_destroy(coll);
    return rc;
}

static int put_definition(mongo_store *st, const char *name, const char *json, char *err,
                          size_t errlen)
{
    mongoc_collection_t *coll = ota_store_mg_coll(st, GROUP_COLL);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, true, NULL);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", name);
    BSON_APPEND_UTF8(&doc, "json", json);
    upsert_by_id(bulk, name, &doc);
    bson_destroy(&doc);
    int rc = run_bulk(st, bulk, "group (" GROUP_COLL ")", err, errlen);
    mongoc_collection_destroy(coll);
    return rc;
}

/* The change log entry of a group put (json) or deleted (NULL): other brokers follow it. */
static int log_group(mongo_store *st, const char *name, const char *json, char *err,
                     size_t errlen)
{
    ota_store_change e = {
        .what = OTA_CHANGE_GROUP, .id = name, .json = json, .deleted = json == NULL};
    return ota_store_mg_change_append_one(st, &e, err, errlen);
}

int ota_store_mg_put_group(ota_store *s, const char *name, const char *json,
                           const char *const *vins, size_t n_vins, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    return delete_where(st, MEMBER_COLL, "name", name, err, errlen) ||
                   put_members(st, name, vins, n_vins, err, errlen) ||
                   put_definition(st, name, json, err, errlen) ||
                   log_group(st, name, json, err, errlen)
               ? -1
               : 0;
}

int ota_store_mg_delete_group(ota_store *s, const char *name, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    return delete_where(st, MEMBER_COLL, "name", name, err, errlen) ||
                   delete_where(st, GROUP_COLL, "_id", name, err, errlen) ||
                   log_group(st, name, NULL, err, errlen)
               ? -1
               : 0;
}

typedef struct {
    ota_store_group_fn fn;
    ota_store_group_member_fn member;
    void *ctx;
} load_ctx;

static int group_doc(const bson_t *doc, void *arg)
{
    load_ctx *lc = arg;
    const char *name = ota_store_mg_text(doc, "_id"), *json = ota_store_mg_text(doc, "json");
    return name != NULL && json != NULL ? lc->fn(lc->ctx, name, json) : -1;
}

static int member_doc(const bson_t *doc, void *arg)
{
    load_ctx *lc = arg;
    const char *name = ota_store_mg_text(doc, "name"), *vin = ota_store_mg_text(doc, "vin");
    return name != NULL && vin != NULL ? lc->member(lc->ctx, name, vin) : -1;
}

static int walk(mongo_store *st, const char *coll, const char *sort, ota_store_mg_doc_fn fn,
                load_ctx *lc)
{
    bson_t opts = BSON_INITIALIZER;
    ota_store_mg_append_fields(&opts, "sort", sort);
    int rc = ota_store_mg_find(st, coll, NULL, &opts, fn, lc);
    bson_destroy(&opts);
    return rc;
}

int ota_store_mg_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                             void *ctx)
{
    mongo_store *st = (mongo_store *)s;
    load_ctx lc = {fn, member, ctx};
    if (walk(st, GROUP_COLL, "rowid", group_doc, &lc) != 0)
        return -1;
    return walk(st, MEMBER_COLL, "name, vin", member_doc, &lc);
}
