/*
 * mongo_catalog.c — the catalog (SPEC §5) in the MongoDB backend and ota_store_apply.
 *   ota_vehicle        {_id: VIN, model, series, ...}: the fields of OTA_STORE_VCOLS
 *                      (public_key binary; absent optional values are absent fields)
 *   document kinds     {_id: key, <the JSON object's members as BSON fields>} in the
 *                      collections of ota_store_doc_table, or {_id: key, json: "<text>"}
 *                      when the BSON would not print back to the same text (mongo_json.c):
 *                      the operator API shows what it stored, byte for byte
 *   ota_vehicle_list   {_id: "LIST/VIN", list, vin}
 *
 * Design: atomicity. A change is checked first (schema.c), so nothing is sent for a
 * malformed one. Then every part is written in the order SQLite writes it, as ordered
 * bulk writes of idempotent operations: replacement upserts by key, deletes by key,
 * inserts-if-absent ($setOnInsert upserts) for notices and descriptions. Against a
 * replica set the whole change runs in one transaction (mongoc's with_transaction, which
 * retries transient errors): all or nothing. Against a standalone server (or the test
 * peer) there is no multi-document atomicity: a change that fails half-way leaves its
 * first parts stored, ota_store_apply returns -1, and re-applying the same change (the
 * writer's job retry, or the operator's) converges to exactly the change, because every
 * operation is idempotent. docs/mongodb.md says so.
 */
#include "mongo_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vehicles ---- */

static void vehicle_doc(bson_t *doc, const ota_vehicle_rec *v)
{
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++) {
        const ota_store_vcol *c = &OTA_STORE_VCOLS[i];
        const char *p = (const char *)v + c->off;
        const char *name = i == 0 ? "_id" : c->name;
        if (c->kind == OTA_VC_TEXT && *(char *const *)p != NULL)
            BSON_APPEND_UTF8(doc, name, *(char *const *)p);
        else if (c->kind == OTA_VC_BOOL)
            BSON_APPEND_BOOL(doc, name, *(const bool *)p);
        else if (c->kind == OTA_VC_PUBKEY && v->has_public_key)
            BSON_APPEND_BINARY(doc, name, BSON_SUBTYPE_BINARY, (const uint8_t *)p, OTA_PUBKEY_LEN);
    }
}

static void read_vehicle(const bson_t *doc, ota_vehicle_rec *v)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++) {
        const ota_store_vcol *c = &OTA_STORE_VCOLS[i];
        char *p = (char *)v + c->off;
        const char *name = i == 0 ? "_id" : c->name;
        if (c->kind == OTA_VC_TEXT) {
            *(const char **)p = ota_store_mg_text(doc, name);
        } else if (c->kind == OTA_VC_BOOL) {
            *(bool *)p = ota_store_mg_bool(doc, name);
        } else {
            uint32_t len;
            const uint8_t *data = ota_store_mg_binary(doc, name, &len);
            v->has_public_key = data != NULL && len == OTA_PUBKEY_LEN;
            if (v->has_public_key)
                memcpy(p, data, OTA_PUBKEY_LEN);
        }
    }
}

/* ---- writing a change ---- */

/* Upserts doc (which holds _id = key) by key into bulk. */
static void replace_by_id(mongoc_bulk_operation_t *bulk, const char *key, const bson_t *doc)
{
    bson_t sel = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", key);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, doc, &opts, NULL);
    bson_destroy(&sel);
    bson_destroy(&opts);
}

static void delete_by_id(mongoc_bulk_operation_t *bulk, const char *key)
{
    bson_t sel = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", key);
    mongoc_bulk_operation_remove_one_with_opts(bulk, &sel, NULL, NULL);
    bson_destroy(&sel);
}

/* A bulk being filled for one collection, run when done. */
typedef struct {
    mongo_store *st;
    mongoc_client_session_t *cs;
    const char *coll_name;
    mongoc_collection_t *coll;
    mongoc_bulk_operation_t *bulk;
    size_t n;
} writes;

static void writes_begin(writes *w, mongo_store *st, mongoc_client_session_t *cs, const char *coll)
{
    *w = (writes){st, cs, coll, ota_store_mg_coll(st, coll), NULL, 0};
    w->bulk = ota_store_mg_bulk(st, w->coll, true, cs);
}

/* Runs the bulk (if anything was added); 0, or -1 with err naming the part. */
static int writes_end(writes *w, const char *part, char *err, size_t errlen)
{
    int rc = 0;
    if (w->n == 0) {
        mongoc_bulk_operation_destroy(w->bulk);
    } else {
        ota_store_mg_bulk_result r;
        char what[128];
        snprintf(what, sizeof what, "%s (%s)", part, w->coll_name);
        rc = ota_store_mg_bulk_run(w->st, w->bulk, what, &r, err, errlen);
        if (rc == 0 && r.dup_errors + r.other_errors > 0)
            rc = -1;
    }
    mongoc_collection_destroy(w->coll);
    return rc;
}

static int write_vehicles(mongo_store *st, const ota_catalog_change *c, mongoc_client_session_t *cs,
                          char *err, size_t errlen)
{
    writes w;
    writes_begin(&w, st, cs, OTA_STORE_VEHICLE_TABLE);
    for (size_t i = 0; i < c->n_put_vehicles; i++, w.n++) {
        bson_t doc = BSON_INITIALIZER;
        vehicle_doc(&doc, &c->put_vehicles[i]);
        replace_by_id(w.bulk, c->put_vehicles[i].vin, &doc);
        bson_destroy(&doc);
    }
    for (size_t i = 0; i < c->n_delete_vehicles; i++, w.n++)
        delete_by_id(w.bulk, c->delete_vehicles[i]);
    return writes_end(&w, "vehicles", err, errlen);
}

static int write_docs(mongo_store *st, const ota_catalog_change *c, mongoc_client_session_t *cs,
                      char *err, size_t errlen)
{
    for (int kind = 1; kind <= OTA_DOC_KIND_COUNT; kind++) {
        writes w;
        writes_begin(&w, st, cs, ota_store_doc_table(kind));
        for (size_t i = 0; i < c->n_docs; i++) {
            const ota_store_doc *d = &c->docs[i];
            if ((int)d->kind != kind)
                continue;
            w.n++;
            if (d->json == NULL) {
                delete_by_id(w.bulk, d->key);
                continue;
            }
            bson_t doc = BSON_INITIALIZER;
            BSON_APPEND_UTF8(&doc, "_id", d->key);
            ota_store_mg_append_doc_fields(&doc, d->json);
            replace_by_id(w.bulk, d->key, &doc);
            bson_destroy(&doc);
        }
        if (writes_end(&w, "documents", err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* "LIST/VIN": a membership's _id. */
static void list_id(char *buf, size_t len, const char *list, const char *vin)
{
    snprintf(buf, len, "%s/%s", list, vin);
}

static int write_lists(mongo_store *st, const ota_catalog_change *c, mongoc_client_session_t *cs,
                       char *err, size_t errlen)
{
    const char *list = ota_list_name(c->list);
    writes w;
    writes_begin(&w, st, cs, OTA_STORE_LIST_TABLE);
    char id[256];
    for (size_t i = 0; i < c->n_list_add; i++, w.n++) {
        list_id(id, sizeof id, list, c->list_add[i]);
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "list", list);
        BSON_APPEND_UTF8(&doc, "vin", c->list_add[i]);
        replace_by_id(w.bulk, id, &doc);
        bson_destroy(&doc);
    }
    for (size_t i = 0; i < c->n_list_remove; i++, w.n++) {
        list_id(id, sizeof id, list, c->list_remove[i]);
        delete_by_id(w.bulk, id);
    }
    return writes_end(&w, "list changes", err, errlen);
}

/* Every part of a checked change, in SQLite's order, in session cs (or none). */
static int write_change(mongo_store *st, const ota_catalog_change *c, mongoc_client_session_t *cs,
                        char *err, size_t errlen)
{
    if (write_vehicles(st, c, cs, err, errlen) != 0 || write_docs(st, c, cs, err, errlen) != 0 ||
        write_lists(st, c, cs, err, errlen) != 0 ||
        ota_store_mg_changes_append(st, c, cs, err, errlen) != 0)
        return -1;
    return ota_store_mg_tasks_write(st, c, cs, err, errlen);
}

/* The change as one step (ota_store_mg_in_transaction): 1 written, -1. */
static int change_step(mongo_store *st, mongoc_client_session_t *cs, void *arg, char *err,
                       size_t errlen)
{
    return write_change(st, arg, cs, err, errlen) == 0 ? 1 : -1;
}

int ota_store_mg_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    char problem[192];
    if (ota_store_check_change(c, problem, sizeof problem) != 0) {
        ota_store_mg_err(st, err, errlen, "%s", problem);
        return -1;
    }
    if (ota_store_change_empty(c))
        return 0;
    /* the step only reads c */
    return ota_store_mg_in_transaction(st, "change", change_step, (void *)c, err, errlen) == 1 ? 0
                                                                                               : -1;
}

/* ---- loaders ---- */

/* Walks coll sorted by _id, handing each document to fn. */
static int walk_by_id(mongo_store *st, const char *coll, ota_store_mg_doc_fn fn, void *arg)
{
    bson_t opts = BSON_INITIALIZER;
    ota_store_mg_append_fields(&opts, "sort", "_id");
    int rc = ota_store_mg_find(st, coll, NULL, &opts, fn, arg);
    bson_destroy(&opts);
    return rc;
}

typedef ota_store_sink sink;

static int vehicle_doc_to_fn(const bson_t *doc, void *arg)
{
    sink *to = arg;
    ota_vehicle_rec v;
    read_vehicle(doc, &v);
    return to->fn.vehicle(to->ctx, &v);
}

int ota_store_mg_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx)
{
    sink to = {.fn.vehicle = fn, .ctx = ctx};
    return fn != NULL
               ? walk_by_id((mongo_store *)s, OTA_STORE_VEHICLE_TABLE, vehicle_doc_to_fn, &to)
               : -1;
}

static int doc_to_fn(const bson_t *doc, void *arg)
{
    sink *to = arg;
    const char *key = ota_store_mg_text(doc, "_id");
    char *json = ota_store_mg_doc_json(doc);
    int rc = key != NULL && json != NULL ? to->fn.doc(to->ctx, key, json) : -1;
    free(json);
    return rc;
}

int ota_store_mg_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx)
{
    sink to = {.fn.doc = fn, .ctx = ctx};
    if (fn == NULL || ota_store_doc_table(kind) == NULL)
        return -1;
    return walk_by_id((mongo_store *)s, ota_store_doc_table(kind), doc_to_fn, &to);
}

static int list_to_fn(const bson_t *doc, void *arg)
{
    sink *to = arg;
    int list = ota_list_from_name(ota_store_mg_text(doc, "list"));
    const char *vin = ota_store_mg_text(doc, "vin");
    return list >= 0 && vin != NULL ? to->fn.list(to->ctx, (ota_list_kind)list, vin) : -1;
}

int ota_store_mg_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx)
{
    sink to = {.fn.list = fn, .ctx = ctx};
    return fn != NULL ? walk_by_id((mongo_store *)s, OTA_STORE_LIST_TABLE, list_to_fn, &to) : -1;
}
