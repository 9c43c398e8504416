/*
 * mongo_state.c — what several brokers share, in the MongoDB backend (issue 15;
 * ota_store.h "shared state"): the per-VIN state start-up reads, conditional execution
 * transitions, the notice decision, the indexes operators' queries use, and the one-time
 * migrations of open.
 *
 * Design
 * - ota_vehicle_state {_id: VIN, epoch, seq, resets, updated_at}: the replay guard's row of
 *   each VIN (ota_report_seq_rec). After a batch's events are inserted: one unordered bulk
 *   raising the VINs of its events that have no guard row in the batch ({_id, epoch,
 *   resets: 0} $max {seq} upserts; a VIN whose document has another epoch or a reset is
 *   left alone: the upsert's duplicate _id is ignored), then one ordered bulk replacing the
 *   guard rows in batch order (a new epoch or a reset may lower seq). Not in the events'
 *   transaction (there is none): when it fails the batch fails and the writer retries it
 *   whole; the events are then duplicates, $max and the replacements are idempotent.
 * - A transition is a replacement of ota_task_vin with filter {task, vin, state: from}: the
 *   server applies it only while the state is `from`, atomically per document, so of two
 *   brokers racing from one state exactly one matches (matchedCount 1).
 * - The notice decision is the transition, the shadow (replacement upsert) and the notice
 *   ($setOnInsert upsert): in one transaction on a replica set; on a standalone server in
 *   that order, the transition deciding. A retry finds the execution in the target state
 *   with the notice's msg_id (a notice id has one owner: the claim) and writes the rest.
 * - Indexes for the operators' and the engine's queries: ota_task {state},
 *   ota_task_vin {task, state, wave} (by_state_wave: a task's executions by state, and the
 *   count per state and wave; databases made before keep their by_state {task, state}, a
 *   prefix of it), ota_vehicle_shadow {reported.fw}.
 * - Migrations at open, each recorded in ota_store_meta {_id: name, at} so it runs once per
 *   database: "vehicle_state" fills ota_vehicle_state from the events (the old start-up
 *   scan), "vehicle_state_epoch" gives the {_id, last_seq} documents of the first issue 15
 *   version epoch "0" (filter: the old document), "native_documents" rewrites catalog documents
 * {_id, json: "<text>"} and shadows with text states as native documents where exact
 * (mongo_json.c), each with a filter on the old value so a concurrent write is never overwritten.
 * Readers read both forms.
 */
#include "mongo_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ota_store_meta: one-time steps ---- */

/* 1 when coll holds a document matching filter (read in session cs, or none), 0 when
 * not, -1 on error (err set). A find with limit 1: count would need aggregate. */
static int exists(mongo_store *st, const char *coll, const bson_t *filter,
                  mongoc_client_session_t *cs, char *err, size_t errlen)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (cs != NULL)
        mongoc_client_session_append(cs, &opts, NULL);
    mongoc_collection_t *c = ota_store_mg_coll(st, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, &opts, NULL);
    const bson_t *doc;
    int found = mongoc_cursor_next(cur, &doc) ? 1 : 0;
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error)) {
        ota_store_mg_err(st, err, errlen, "find in %s: %s", coll, error.message);
        found = -1;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&opts);
    return found;
}

/* 1 when step name was done, 0 when not, -1 on error. */
static int meta_done(mongo_store *st, const char *name, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", name);
    int rc = exists(st, OTA_STORE_META_TABLE, &filter, NULL, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* Adds to bulk the upsert replacing the document of _id id by doc. */
static void replace_by_id(mongoc_bulk_operation_t *bulk, const char *id, const bson_t *doc)
{
    bson_t sel = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", id);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, doc, &opts, NULL);
    bson_destroy(&sel);
    bson_destroy(&opts);
}

static int meta_mark(mongo_store *st, const char *name, char *err, size_t errlen)
{
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_META_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, c, true, NULL);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", name);
    BSON_APPEND_INT64(&doc, "at", ota_store_wall_ms());
    replace_by_id(bulk, name, &doc);
    bson_destroy(&doc);
    return ota_store_mg_bulk_finish(st, c, bulk, 1, OTA_STORE_META_TABLE, false, err, errlen);
}

/* ---- ota_vehicle_state ---- */

typedef ota_store_vin_seq vin_seq;

/* Raises each VIN of v in its epoch ({_id, epoch, resets: 0} $max {seq} upserts). */
static int state_raise(mongo_store *st, const vin_seq *v, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    int64_t now = ota_store_wall_ms();
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_STATE_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, c, false, NULL);
    for (size_t i = 0; i < n; i++) {
        bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, m, opts = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&sel, "_id", v[i].vin);
        BSON_APPEND_UTF8(&sel, "epoch", v[i].epoch);
        BSON_APPEND_INT64(&sel, "resets", 0);
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$max", &m);
        BSON_APPEND_INT64(&m, "seq", (int64_t)v[i].seq);
        BSON_APPEND_INT64(&m, "updated_at", now);
        bson_append_document_end(&upd, &m);
        BSON_APPEND_BOOL(&opts, "upsert", true);
        mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &upd, &opts, NULL);
        bson_destroy(&sel);
        bson_destroy(&upd);
        bson_destroy(&opts);
    }
    /* a duplicate _id: the VIN is in another epoch or was reset */
    return ota_store_mg_bulk_finish(st, c, bulk, n, "raising " OTA_STORE_STATE_TABLE, true, err,
                                    errlen);
}

static void state_doc(bson_t *doc, const ota_report_seq_rec *r)
{
    BSON_APPEND_UTF8(doc, "_id", r->vin);
    BSON_APPEND_UTF8(doc, "epoch", r->epoch != NULL ? r->epoch : "0");
    BSON_APPEND_INT64(doc, "seq", r->seq);
    BSON_APPEND_INT64(doc, "resets", r->resets);
    BSON_APPEND_INT64(doc, "updated_at", r->updated_ms);
}

/* Replaces the documents of the guard rows (one per VIN: ota_store_put_batch), never by one
 * with fewer operator resets: a broker that had not yet followed another's reset (its entry
 * is on the way) does not undo it. Filter {_id, resets <= the row's, or none (the first layout)},
 * upsert: a stored document with more resets makes the upsert a duplicate _id, skipped. */
static int state_put(mongo_store *st, const ota_report_seq_rec *rows, size_t n, char *err,
                     size_t errlen)
{
    if (n == 0)
        return 0;
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_STATE_TABLE);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, c, false, NULL);
    for (size_t j = 0; j < n; j++) {
        const ota_report_seq_rec *r = &rows[j];
        bson_t doc = BSON_INITIALIZER, sel = BSON_INITIALIZER, opts = BSON_INITIALIZER, or, a, b,
               lte, ex;
        state_doc(&doc, r);
        BSON_APPEND_UTF8(&sel, "_id", r->vin);
        BSON_APPEND_ARRAY_BEGIN(&sel, "$or", &or);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &a);
        BSON_APPEND_DOCUMENT_BEGIN(&a, "resets", &lte);
        BSON_APPEND_INT64(&lte, "$lte", r->resets);
        bson_append_document_end(&a, &lte);
        bson_append_document_end(&or, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &b);
        BSON_APPEND_DOCUMENT_BEGIN(&b, "resets", &ex);
        BSON_APPEND_BOOL(&ex, "$exists", false);
        bson_append_document_end(&b, &ex);
        bson_append_document_end(&or, &b);
        bson_append_array_end(&sel, &or);
        BSON_APPEND_BOOL(&opts, "upsert", true);
        mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, &doc, &opts, NULL);
        bson_destroy(&doc);
        bson_destroy(&sel);
        bson_destroy(&opts);
    }
    return ota_store_mg_bulk_finish(st, c, bulk, n, "guard rows (" OTA_STORE_STATE_TABLE ")", true,
                                    err, errlen);
}

int ota_store_mg_state_write(mongo_store *st, const ota_store_batch *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->n_seqs; i++) {
        if (b->seqs[i].vin == NULL) {
            ota_store_mg_err(st, err, errlen, "guard row %zu of the batch: no VIN", i);
            return -1;
        }
    }
    size_t n = b->n_events;
    vin_seq *v = n > 0 ? malloc(n * sizeof *v) : NULL;
    if (n > 0 && v == NULL) {
        ota_store_mg_err(st, err, errlen, "per-VIN state: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const ota_store_event *e = &b->events[i];
        v[i] = (vin_seq){e->vin, e->seq, e->epoch != NULL ? e->epoch : "0"};
    }
    n = ota_store_state_raises(b, v, n);
    int rc = state_raise(st, v, n, err, errlen);
    free(v);
    return rc == 0 ? state_put(st, b->seqs, b->n_seqs, err, errlen) : -1;
}

typedef struct {
    ota_store_seq_fn fn;
    void *ctx;
} seq_sink;

/* A document of either layout: {_id, epoch, seq, resets, updated_at}, or {_id, last_seq}
 * of the first issue 15 version (epoch "0"; converted at open, written by an older broker
 * still running). */
static int state_to_fn(const bson_t *doc, void *arg)
{
    seq_sink *to = arg;
    const char *vin = ota_store_mg_text(doc, "_id");
    const char *epoch = ota_store_mg_text(doc, "epoch");
    bson_iter_t it;
    bool has_seq = bson_iter_init_find(&it, doc, "seq");
    ota_report_seq_rec r = {
        .vin = vin,
        .epoch = epoch != NULL ? epoch : "0",
        .seq = has_seq ? ota_store_mg_int(doc, "seq", -1) : ota_store_mg_int(doc, "last_seq", -1),
        .resets = (uint32_t)ota_store_mg_int(doc, "resets", 0),
        .updated_ms = ota_store_mg_int(doc, "updated_at", 0),
    };
    return vin != NULL ? to->fn(to->ctx, &r) : -1;
}

int ota_store_mg_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx)
{
    if (fn == NULL)
        return -1;
    seq_sink to = {fn, ctx};
    bson_t opts = BSON_INITIALIZER;
    ota_store_mg_append_fields(&opts, "sort", "_id");
    int rc =
        ota_store_mg_find((mongo_store *)s, OTA_STORE_STATE_TABLE, NULL, &opts, state_to_fn, &to);
    bson_destroy(&opts);
    return rc;
}

/* The scan's pairs, gathered to be written in chunks. */
typedef struct {
    mongo_store *st;
    vin_seq v[1000];
    char *vins[1000];
    size_t n;
    char *err;
    size_t errlen;
    bool failed;
} state_fill;

static int fill_flush(state_fill *f)
{
    int rc = state_raise(f->st, f->v, f->n, f->err, f->errlen);
    for (size_t i = 0; i < f->n; i++)
        free(f->vins[i]);
    f->n = 0;
    f->failed |= rc != 0;
    return rc;
}

static int fill_one(void *arg, const ota_report_seq_rec *r)
{
    state_fill *f = arg;
    if ((f->vins[f->n] = strdup(r->vin)) == NULL)
        return -1;
    f->v[f->n] = (vin_seq){f->vins[f->n], (uint64_t)r->seq, "0"};
    if (++f->n == sizeof f->v / sizeof f->v[0])
        return fill_flush(f);
    return 0;
}

static int fill_state(mongo_store *st, char *err, size_t errlen)
{
    state_fill *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    *f = (state_fill){.st = st, .err = err, .errlen = errlen};
    int rc = ota_store_mg_scan_last_seqs(st, fill_one, f);
    if (fill_flush(f) != 0 || f->failed)
        rc = -1;
    else if (rc != 0)
        ota_store_mg_err(st, err, errlen, "filling %s from the events failed",
                         OTA_STORE_STATE_TABLE);
    free(f);
    return rc;
}

/* ---- rewriting JSON text as native documents ---- */

/* A document's new form: true and out filled, or false (left as it is). */
typedef bool (*convert_fn)(const bson_t *doc, bson_t *out);

typedef struct {
    convert_fn convert;
    mongoc_bulk_operation_t *bulk;
    size_t n;
} rewrite;

/* A catalog document {_id, json}: its native form, when exact. */
static bool native_doc(const bson_t *doc, bson_t *out)
{
    const char *json = ota_store_mg_text(doc, "json");
    bson_iter_t id;
    if (json == NULL || bson_count_keys(doc) != 2 || !bson_iter_init_find(&id, doc, "_id"))
        return false;
    bson_append_iter(out, "_id", 3, &id);
    return ota_store_mg_append_doc_fields(out, json);
}

/* A shadow: the same fields, its text states as sub-documents where exact. */
static bool native_shadow(const bson_t *doc, bson_t *out)
{
    bson_iter_t it;
    bool changed = false;
    if (!bson_iter_init(&it, doc))
        return false;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        bool state = strcmp(k, "reported") == 0 || strcmp(k, "desired") == 0;
        if (state && BSON_ITER_HOLDS_UTF8(&it))
            changed |= ota_store_mg_append_json(out, k, bson_iter_utf8(&it, NULL));
        else
            bson_append_iter(out, k, -1, &it);
    }
    return changed;
}

/* Replaces doc by its new form, only while it is unchanged (the whole old document is
 * the filter). */
static int rewrite_one(const bson_t *doc, void *arg)
{
    rewrite *w = arg;
    bson_t out = BSON_INITIALIZER;
    if (w->convert(doc, &out)) {
        mongoc_bulk_operation_replace_one_with_opts(w->bulk, doc, &out, NULL, NULL);
        w->n++;
    }
    bson_destroy(&out);
    return 0;
}

/* Rewrites the documents of coll having field (or, field NULL, all) with convert. */
static int rewrite_coll(mongo_store *st, const char *coll, const char *field, convert_fn convert,
                        char *err, size_t errlen)
{
    mongoc_collection_t *c = ota_store_mg_coll(st, coll);
    rewrite w = {convert, ota_store_mg_bulk(st, c, false, NULL), 0};
    bson_t filter = BSON_INITIALIZER, exists;
    if (field != NULL) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, field, &exists);
        BSON_APPEND_BOOL(&exists, "$exists", true);
        bson_append_document_end(&filter, &exists);
    }
    int rc = ota_store_mg_find(st, coll, &filter, NULL, rewrite_one, &w);
    bson_destroy(&filter);
    if (rc != 0) {
        ota_store_mg_err(st, err, errlen, "reading %s to rewrite it failed", coll);
        w.n = 0; /* nothing sent */
    }
    int sent =
        ota_store_mg_bulk_finish(st, c, w.bulk, w.n, "rewriting documents", false, err, errlen);
    return rc != 0 ? -1 : sent;
}

static int native_documents(mongo_store *st, char *err, size_t errlen)
{
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++)
        if (rewrite_coll(st, ota_store_doc_table(k), "json", native_doc, err, errlen) != 0)
            return -1;
    return rewrite_coll(st, OTA_STORE_TTABLES[OTA_T_SHADOW].table, NULL, native_shadow, err,
                        errlen);
}

/* A document {_id, last_seq} of the first issue 15 version in the current layout. */
static bool epoch_doc(const bson_t *doc, bson_t *out)
{
    const char *vin = ota_store_mg_text(doc, "_id");
    if (vin == NULL || ota_store_mg_text(doc, "epoch") != NULL)
        return false;
    state_doc(out, &(ota_report_seq_rec){vin, "0", ota_store_mg_int(doc, "last_seq", -1), 0, 0});
    return true;
}

static int state_epochs(mongo_store *st, char *err, size_t errlen)
{
    return rewrite_coll(st, OTA_STORE_STATE_TABLE, "last_seq", epoch_doc, err, errlen);
}

/* ---- open ---- */

static int once(mongo_store *st, const char *name, int (*step)(mongo_store *, char *, size_t),
                char *err, size_t errlen)
{
    int done = meta_done(st, name, err, errlen);
    if (done != 0)
        return done < 0 ? -1 : 0;
    if (step(st, err, errlen) != 0)
        return -1;
    return meta_mark(st, name, err, errlen);
}

int ota_store_mg_state_open(mongo_store *st, char *err, size_t errlen)
{
    if (ota_store_mg_index(st, "ota_task", "state", "state", false, err, errlen) != 0 ||
        ota_store_mg_index(st, "ota_task_vin", "by_state_wave", "task, state, wave", false, err,
                           errlen) != 0 ||
        ota_store_mg_index(st, "ota_vehicle_shadow", "reported_fw", "reported.fw", false, err,
                           errlen) != 0 ||
        ota_store_mg_index(st, OTA_STORE_CHANGE_TABLE, "at", "at", false, err, errlen) != 0)
        return -1;
    if (once(st, "vehicle_state", fill_state, err, errlen) != 0 ||
        once(st, "vehicle_state_epoch", state_epochs, err, errlen) != 0)
        return -1;
    return once(st, "native_documents", native_documents, err, errlen);
}

/* ---- conditional transitions ---- */

/* The transition (in session cs, or none): 1 applied, 0 not, -1 error. */
static int transition(mongo_store *st, mongoc_client_session_t *cs, ota_exec_state from,
                      const ota_exec_rec *to, char *err, size_t errlen)
{
    bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
    BSON_APPEND_UTF8(&sel, "task", to->task);
    BSON_APPEND_UTF8(&sel, "vin", to->vin);
    BSON_APPEND_UTF8(&sel, "state", ota_exec_state_name(from));
    ota_store_mg_rec_doc(&doc, OTA_T_EXEC, to);
    if (cs != NULL)
        mongoc_client_session_append(cs, &opts, NULL);
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_TTABLES[OTA_T_EXEC].table);
    bson_error_t error;
    bool ok = mongoc_collection_replace_one(c, &sel, &doc, &opts, &reply, &error);
    int rc = ok ? ota_store_mg_int(&reply, "matchedCount", 0) > 0 : -1;
    if (!ok)
        ota_store_mg_err(st, err, errlen, "transition of %s/%s: %s", to->task, to->vin,
                         error.message);
    mongoc_collection_destroy(c);
    bson_destroy(&sel);
    bson_destroy(&doc);
    bson_destroy(&opts);
    bson_destroy(&reply);
    return rc;
}

int ota_store_mg_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                 char *err, size_t errlen)
{
    return transition((mongo_store *)s, NULL, from, to, err, errlen);
}

/* 1 when the execution is in to's state with to's msg_id (a retried decision), 0, -1. */
static int already_decided(mongo_store *st, mongoc_client_session_t *cs, const ota_exec_rec *to,
                           char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "task", to->task);
    BSON_APPEND_UTF8(&filter, "vin", to->vin);
    BSON_APPEND_UTF8(&filter, "state", ota_exec_state_name(to->state));
    BSON_APPEND_UTF8(&filter, "msg_id", to->msg_id);
    int rc = exists(st, OTA_STORE_TTABLES[OTA_T_EXEC].table, &filter, cs, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* ---- a claim job's decisions (ota_store_notice_decisions) ---- */

#define DECISIONS_PER_WRITE 1000 /* decisions per transaction (replica set) */

typedef struct {
    ota_notice_decision *d;
    size_t n;
    ota_shadow_rec *shadows; /* of the decisions stored, n slots */
    ota_notice_rec *notices;
} decisions;

/* A chunk as one step (ota_store_mg_in_transaction): the transitions one by one (each
 * conditional), then the shadows and notices of those that applied in one bulk write per
 * collection. 1 when any applied, 0 when none did, -1. Without a replica set a retry
 * completes the rest (as for one decision). */
static int decide_all(mongo_store *st, mongoc_client_session_t *cs, void *arg, char *err,
                      size_t errlen)
{
    decisions *b = arg;
    size_t won = 0;
    for (size_t i = 0; i < b->n; i++) {
        ota_notice_decision *d = &b->d[i];
        d->result = transition(st, cs, d->from, d->to, err, errlen);
        if (d->result == 0)
            d->result = already_decided(st, cs, d->to, err, errlen);
        if (d->result < 0)
            return -1;
        if (d->result == 1) {
            b->shadows[won] = *d->shadow;
            b->notices[won++] = *d->notice;
        }
    }
    ota_catalog_change rest = {.put_shadows = b->shadows,
                               .n_put_shadows = won,
                               .add_notices = b->notices,
                               .n_add_notices = won};
    if (won > 0 && ota_store_mg_tasks_write(st, &rest, cs, err, errlen) != 0)
        return -1;
    return won > 0;
}

int ota_store_mg_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                  size_t errlen)
{
    size_t cap = n < DECISIONS_PER_WRITE ? n : DECISIONS_PER_WRITE;
    decisions b = {.shadows = malloc((cap ? cap : 1) * sizeof(ota_shadow_rec)),
                   .notices = malloc((cap ? cap : 1) * sizeof(ota_notice_rec))};
    int rc = b.shadows && b.notices ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "notice decisions: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i += DECISIONS_PER_WRITE) {
        b.d = d + i;
        b.n = n - i < DECISIONS_PER_WRITE ? n - i : DECISIONS_PER_WRITE;
        if (ota_store_mg_in_transaction((mongo_store *)s, "notice decisions", decide_all, &b, err,
                                        errlen) < 0)
            rc = -1;
    }
    free(b.shadows);
    free(b.notices);
    return rc;
}
