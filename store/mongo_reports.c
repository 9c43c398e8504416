/*
 * mongo_reports.c — the writer's batches in MongoDB and the refused reports
 * (ota_quarantine {_id: "<id>", qid: id, vin, received_at, code, message, seq?, epoch?,
 * size, payload}; a repeated _id is a report stored already, index {vin, -qid} for
 * listing). A batch writes its events, then ota_vehicle_state (the replay guard's rows,
 * mongo_state.c), then the quarantine: without a transaction a failed batch is retried
 * whole and converges, as the events do (mongo_events.c).
 */
#include "mongo_impl.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int ota_store_mg_reports_indexes(mongo_store *st, char *err, size_t errlen)
{
    return ota_store_mg_index(st, OTA_STORE_QUARANTINE_TABLE, "by_vin_qid", "vin, -qid", false,
                              err, errlen);
}

static void quarantine_doc(bson_t *doc, const ota_quarantine_rec *q)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, q->id);
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_INT64(doc, "qid", q->id);
    BSON_APPEND_UTF8(doc, "vin", q->vin);
    BSON_APPEND_INT64(doc, "received_at", q->received_ms);
    BSON_APPEND_UTF8(doc, "code", q->code);
    BSON_APPEND_UTF8(doc, "message", q->msg != NULL ? q->msg : "");
    if (q->seq >= 0)
        BSON_APPEND_INT64(doc, "seq", q->seq);
    if (q->epoch != NULL)
        BSON_APPEND_UTF8(doc, "epoch", q->epoch);
    BSON_APPEND_INT64(doc, "size", (int64_t)q->size);
    BSON_APPEND_BINARY(doc, "payload", BSON_SUBTYPE_BINARY, q->payload, (uint32_t)q->payload_len);
}

static int put_quarantine(mongo_store *st, const ota_store_batch *b, char *err, size_t errlen)
{
    mongoc_collection_t *coll = ota_store_mg_coll(st, OTA_STORE_QUARANTINE_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, false, NULL);
    for (size_t i = 0; i < b->n_quarantine; i++) {
        bson_t doc = BSON_INITIALIZER;
        quarantine_doc(&doc, &b->quarantine[i]);
        mongoc_bulk_operation_insert(bulk, &doc);
        bson_destroy(&doc);
    }
    return ota_store_mg_bulk_finish(st, coll, bulk, b->n_quarantine,
                                    "insert into " OTA_STORE_QUARANTINE_TABLE, true, err, errlen);
}

static int append_one(void *st, const ota_store_change *e, char *err, size_t errlen)
{
    return ota_store_mg_change_append_one(st, e, err, errlen);
}

/* Descriptions served: inserts-if-absent, as ota_store_apply's. */
static int put_descriptions(mongo_store *st, const ota_store_batch *b, char *err, size_t errlen)
{
    ota_catalog_change c = {.add_descriptions = b->descriptions,
                            .n_add_descriptions = b->n_descriptions};
    return b->n_descriptions > 0 ? ota_store_mg_tasks_write(st, &c, NULL, err, errlen) : 0;
}

/* Events, guard rows, refused reports, descriptions, then the change log entries of the
 * operator resets (a retried batch appends them again: applying one twice is a no-op). */
int ota_store_mg_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                           char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    for (size_t i = 0; i < b->n_quarantine; i++) {
        if (b->quarantine[i].vin == NULL || b->quarantine[i].code == NULL) {
            ota_store_mg_err(st, err, errlen, "refused report %zu of the batch: no VIN or code",
                             i);
            return -1;
        }
    }
    ota_store_put_result r = {0, 0};
    if (res != NULL)
        *res = r;
    if (ota_store_mg_insert_events(st, b->events, b->n_events, &r, err, errlen) != 0 ||
        ota_store_mg_state_write(st, b, err, errlen) != 0 ||
        put_quarantine(st, b, err, errlen) != 0 || put_descriptions(st, b, err, errlen) != 0 ||
        ota_store_log_resets(b, append_one, st, err, errlen) != 0)
        return -1;
    if (res != NULL)
        *res = r;
    return 0;
}

int ota_store_mg_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                            ota_store_put_result *res, char *err, size_t errlen)
{
    ota_store_batch b = {.events = evs, .n_events = n};
    return ota_store_mg_put_batch(s, &b, res, err, errlen);
}

/* ---- listing the quarantine ---- */

typedef struct {
    ota_store_quarantine_fn fn;
    void *ctx;
    int n;
} list_walk;

static int quarantine_row(const bson_t *doc, void *arg)
{
    list_walk *w = arg;
    const uint8_t *payload = NULL;
    uint32_t len = 0;
    bson_iter_t it;
    bson_subtype_t sub;
    if (bson_iter_init_find(&it, doc, "payload") && BSON_ITER_HOLDS_BINARY(&it))
        bson_iter_binary(&it, &sub, &len, &payload);
    ota_quarantine_rec q = {
        .id = ota_store_mg_int(doc, "qid", 0),
        .vin = ota_store_mg_text(doc, "vin"),
        .received_ms = ota_store_mg_int(doc, "received_at", 0),
        .code = ota_store_mg_text(doc, "code"),
        .msg = ota_store_mg_text(doc, "message"),
        .seq = ota_store_mg_int(doc, "seq", -1),
        .epoch = ota_store_mg_text(doc, "epoch"),
        .size = (uint64_t)ota_store_mg_int(doc, "size", 0),
        .payload = payload,
        .payload_len = len,
    };
    w->n++;
    return w->fn(w->ctx, &q);
}

int ota_store_mg_list_quarantine(ota_store *s, const char *vin, const char *code,
                                 int64_t before_id, size_t limit, ota_store_quarantine_fn fn,
                                 void *ctx)
{
    mongo_store *st = (mongo_store *)s;
    if (fn == NULL)
        return -1;
    bson_t filter = BSON_INITIALIZER, lt, opts = BSON_INITIALIZER;
    if (vin != NULL)
        BSON_APPEND_UTF8(&filter, "vin", vin);
    if (code != NULL)
        BSON_APPEND_UTF8(&filter, "code", code);
    if (before_id > 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "qid", &lt);
        BSON_APPEND_INT64(&lt, "$lt", before_id);
        bson_append_document_end(&filter, &lt);
    }
    ota_store_mg_append_fields(&opts, "sort", "-qid");
    if (limit > 0)
        BSON_APPEND_INT64(&opts, "limit", limit > INT_MAX ? INT_MAX : (int64_t)limit);
    list_walk w = {fn, ctx, 0};
    int rc = ota_store_mg_find(st, OTA_STORE_QUARANTINE_TABLE, &filter, &opts, quarantine_row, &w);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc == 0 ? w.n : -1;
}
