/*
 * mongo_changes.c — the change log in the MongoDB backend (issue 15; ota_store.h):
 *   ota_change_log {_id: seq (Int64), at, kind: "<collection changed>", id, op: "put" |
 *                   "delete", list?, doc?: the document / vehicle (native where exact,
 *                   mongo_json.c)}
 *   ota_store_meta {_id: "change_seq", seq}: the last number handed out
 *
 * Design
 * - Numbers come from one counter document: findAndModify $inc {seq: n} upsert, new, then
 *   the n entries are inserted with _id last-n+1..last. Inside ota_store_apply's
 *   transaction on a replica set, the counter's write conflicts serialise concurrent
 *   changes (the second transaction is retried after the first commits), so entries become
 *   visible in seq order and a failed change takes its numbers back.
 * - On a standalone server (and the test peer) the counter and the inserts are separate
 *   writes: a writer can take numbers and insert after a later writer, or fail in between
 *   and leave a gap for good. Readers therefore stop before a gap until the entry after it
 *   is hold_ms old (ota_store_read_changes, store.c); the log is appended after the change
 *   itself, so an entry never announces a change not stored yet.
 * - Why a log and not change streams: change streams need a replica set (and the test peer
 *   has none), report only what the oplog still holds, and would make every broker decode
 *   every write of every collection. The log works on every deployment, is read with a
 *   plain indexed find, and is trimmed by retention (docs/mongodb.md).
 */
#include "mongo_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_ID "change_seq"

/* Takes n numbers; the last of them into *last. 0, or -1 with err set. */
static int take_seqs(mongo_store *st, mongoc_client_session_t *cs, size_t n, int64_t *last,
                     char *err, size_t errlen)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, inc, extra = BSON_INITIALIZER,
           reply;
    BSON_APPEND_UTF8(&query, "_id", SEQ_ID);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
    BSON_APPEND_INT64(&inc, "seq", (int64_t)n);
    bson_append_document_end(&update, &inc);
    if (cs != NULL)
        mongoc_client_session_append(cs, &extra, NULL);
    mongoc_find_and_modify_opts_t *o = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(o, &update);
    mongoc_find_and_modify_opts_set_flags(o, MONGOC_FIND_AND_MODIFY_UPSERT |
                                                 MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    mongoc_find_and_modify_opts_append(o, &extra);
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_META_TABLE);
    bson_error_t error;
    bool ok = mongoc_collection_find_and_modify_with_opts(c, &query, o, &reply, &error);
    bson_iter_t it, v;
    *last = -1;
    if (ok && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &v) && bson_iter_find(&v, "seq") && BSON_ITER_HOLDS_NUMBER(&v))
        *last = bson_iter_as_int64(&v);
    if (*last < (int64_t)n)
        ota_store_mg_err(st, err, errlen, "change log numbers: %s",
                         ok ? "no seq in the answer" : error.message);
    mongoc_collection_destroy(c);
    mongoc_find_and_modify_opts_destroy(o);
    bson_destroy(&query);
    bson_destroy(&update);
    bson_destroy(&extra);
    bson_destroy(&reply);
    return *last < (int64_t)n ? -1 : 0;
}

static void entry_doc(bson_t *doc, const ota_store_change *e, int64_t seq, int64_t at)
{
    BSON_APPEND_INT64(doc, "_id", seq);
    BSON_APPEND_INT64(doc, "at", at);
    BSON_APPEND_UTF8(doc, "kind", ota_store_change_kind(e));
    BSON_APPEND_UTF8(doc, "id", e->id);
    BSON_APPEND_UTF8(doc, "op", e->deleted ? "delete" : "put");
    if (e->what == OTA_CHANGE_LIST)
        BSON_APPEND_UTF8(doc, "list", ota_list_name(e->list));
    if (e->json != NULL)
        ota_store_mg_append_json(doc, "doc", e->json);
}

int ota_store_mg_changes_append(mongo_store *st, const ota_catalog_change *c,
                                mongoc_client_session_t *cs, char *err, size_t errlen)
{
    size_t n = ota_store_change_log_count(c);
    int64_t last;
    if (n == 0)
        return 0;
    if (take_seqs(st, cs, n, &last, err, errlen) != 0)
        return -1;
    int64_t at = ota_store_wall_ms();
    mongoc_collection_t *coll = ota_store_mg_coll(st, OTA_STORE_CHANGE_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, true, cs);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ota_store_change e;
        char *owned;
        rc = ota_store_change_log_entry(c, i, &e, &owned);
        bson_t doc = BSON_INITIALIZER;
        if (rc == 0) {
            entry_doc(&doc, &e, last - (int64_t)n + 1 + (int64_t)i, at);
            mongoc_bulk_operation_insert(bulk, &doc);
        }
        bson_destroy(&doc);
        free(owned);
    }
    ota_store_mg_bulk_result r;
    if (rc != 0) {
        mongoc_bulk_operation_destroy(bulk);
        ota_store_mg_err(st, err, errlen, "change log: out of memory");
    } else {
        rc = ota_store_mg_bulk_run(st, bulk, "change log (" OTA_STORE_CHANGE_TABLE ")", &r, err,
                                   errlen);
        rc = rc == 0 && r.dup_errors + r.other_errors == 0 ? 0 : -1;
    }
    mongoc_collection_destroy(coll);
    return rc;
}

int ota_store_mg_change_append_one(mongo_store *st, const ota_store_change *e, char *err,
                                   size_t errlen)
{
    int64_t seq;
    if (take_seqs(st, NULL, 1, &seq, err, errlen) != 0)
        return -1;
    bson_t doc = BSON_INITIALIZER;
    entry_doc(&doc, e, seq, ota_store_wall_ms());
    mongoc_collection_t *coll = ota_store_mg_coll(st, OTA_STORE_CHANGE_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, true, NULL);
    mongoc_bulk_operation_insert(bulk, &doc); /* the same insert as ota_store_apply's */
    bson_destroy(&doc);
    ota_store_mg_bulk_result r;
    int rc = ota_store_mg_bulk_run(st, bulk, "change log (" OTA_STORE_CHANGE_TABLE ")", &r, err,
                                   errlen);
    mongoc_collection_destroy(coll);
    return rc == 0 && r.dup_errors + r.other_errors == 0 ? 0 : -1;
}

/* ---- reading ---- */

typedef struct {
    ota_store_change_fn fn;
    void *ctx;
    bool bad;
} change_sink;

static int entry_to_fn(const bson_t *doc, void *arg)
{
    change_sink *to = arg;
    ota_store_change e = {.seq = (uint64_t)ota_store_mg_int(doc, "_id", 0),
                          .at_ms = ota_store_mg_int(doc, "at", 0),
                          .id = ota_store_mg_text(doc, "id")};
    const char *op = ota_store_mg_text(doc, "op");
    e.deleted = op != NULL && strcmp(op, "delete") == 0;
    bson_iter_t it;
    char *json = bson_iter_init_find(&it, doc, "doc") ? ota_store_mg_json_of(&it) : NULL;
    e.json = json;
    if (e.id == NULL || ota_store_change_kind_parse(&e, ota_store_mg_text(doc, "kind"),
                                                    ota_store_mg_text(doc, "list")) != 0) {
        to->bad = true;
        free(json);
        return 1;
    }
    int rc = to->fn(to->ctx, &e);
    free(json);
    return rc;
}

int ota_store_mg_read_changes(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx)
{
    if (after > INT64_MAX)
        return -1;
    change_sink to = {fn, ctx, false};
    bson_t filter = BSON_INITIALIZER, gt, opts = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &gt);
    BSON_APPEND_INT64(&gt, "$gt", (int64_t)after);
    bson_append_document_end(&filter, &gt);
    ota_store_mg_append_fields(&opts, "sort", "_id");
    /* a walk of its own: fn stopping it is no error here (ota_store_mg_find says -1) */
    mongoc_collection_t *c = ota_store_mg_coll((mongo_store *)s, OTA_STORE_CHANGE_TABLE);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc) && entry_to_fn(doc, &to) == 0)
        ;
    bson_error_t error;
    bool failed = mongoc_cursor_error(cur, &error) || to.bad;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return failed ? -1 : 0;
}

static int keep_seq(const bson_t *doc, void *arg)
{
    *(int64_t *)arg = ota_store_mg_int(doc, "_id", 0);
    return 0;
}

static int keep_counter(const bson_t *doc, void *arg)
{
    *(int64_t *)arg = ota_store_mg_int(doc, "seq", 0);
    return 0;
}

int ota_store_mg_change_bounds(ota_store *s, uint64_t *first, uint64_t *last)
{
    mongo_store *st = (mongo_store *)s;
    int64_t lo = -1, hi = 0;
    bson_t opts = BSON_INITIALIZER, id = BSON_INITIALIZER;
    ota_store_mg_append_fields(&opts, "sort", "_id");
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_UTF8(&id, "_id", SEQ_ID);
    int rc = ota_store_mg_find(st, OTA_STORE_CHANGE_TABLE, NULL, &opts, keep_seq, &lo);
    if (rc == 0)
        rc = ota_store_mg_find(st, OTA_STORE_META_TABLE, &id, NULL, keep_counter, &hi);
    bson_destroy(&opts);
    bson_destroy(&id);
    if (rc != 0)
        return -1;
    *last = (uint64_t)hi;
    *first = lo >= 0 ? (uint64_t)lo : *last + 1;
    return 0;
}

int ota_store_mg_trim_changes(ota_store *s, uint64_t upto)
{
    mongo_store *st = (mongo_store *)s;
    bson_t filter = BSON_INITIALIZER, lte;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &lte);
    BSON_APPEND_INT64(&lte, "$lte", upto > INT64_MAX ? INT64_MAX : (int64_t)upto);
    bson_append_document_end(&filter, &lte);
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_CHANGE_TABLE);
    bson_error_t error;
    bool ok = mongoc_collection_delete_many(c, &filter, NULL, NULL, &error);
    mongoc_collection_destroy(c);
    bson_destroy(&filter);
    return ok ? 0 : -1;
}
