/*
 * mongo_events.c — report events in the MongoDB backend: one collection per kind (names
 * in ota_store.h), documents {_id: "VIN/EPOCH/SEQ/IDX", vin, epoch, seq, idx, task, ts,
 * received_at, <the kind's fields>} with the fields of OTA_STORE_FIELDS (schema.h; an
 * absent value is an absent field).
 *
 * Design
 * - The event key (vin, epoch, seq, idx) is the _id (a text: VIN and the numbers cannot
 *   hold '/', so it reads back one way), which refuses a repeated event. Indexes:
 *   {vin, seq, idx} on every kind (not unique: a new epoch starts its seqs again; serves
 *   "newest first" of a VIN). Documents of older versions have an ObjectId _id and no
 *   epoch (read as "0"); the older unique index vin_seq_idx is dropped at open. And on
 *   ota_vehicle_upgrade_status also {vin, seq: -1, idx: -1} (latest_by_vin), which the
 *   start-up load of every VIN's latest status walks forwards.
 * - put_events: one unordered insert per kind present in the batch. A duplicate-key
 *   error (11000) is an event stored already and is counted as a duplicate; any other
 *   error fails the batch. MongoDB has no atomic batch without a transaction: the events
 *   inserted before the failure stay, and the writer's retry of the whole batch counts
 *   them as duplicates, so the batch converges to stored-once (docs/mongodb.md).
 * - History over every kind: the newest `limit` of each kind, merged in memory.
 * - No aggregate: the start-up loaders walk an index in order and keep the first (latest
 *   status) or the last (last seq) document of each VIN.
 */
#include "mongo_impl.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *coll_of(int type)
{
    const ota_store_ev_kind *k = ota_store_ev_kind_get(type);
    return k != NULL ? k->table : NULL;
}

/* The unique {vin, seq, idx} of versions before epochs; gone already (or a server that
 * does not know dropIndexes, like the test peer that never had it) is fine. */
static void drop_old_index(mongo_store *st, const char *coll)
{
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&cmd, "dropIndexes", coll);
    BSON_APPEND_UTF8(&cmd, "index", "vin_seq_idx");
    bson_error_t error;
    mongoc_database_write_command_with_opts(st->db, &cmd, NULL, NULL, &error);
    bson_destroy(&cmd);
}

int ota_store_mg_events_indexes(mongo_store *st, char *err, size_t errlen)
{
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++) {
        drop_old_index(st, coll_of(t));
        if (ota_store_mg_index(st, coll_of(t), "by_vin_seq_idx", "vin, seq, idx", false, err,
                               errlen) != 0)
            return -1;
    }
    return ota_store_mg_index(st, coll_of(OTA_EV_UPGRADE_STATUS), "latest_by_vin",
                              "vin, -seq, -idx", false, err, errlen);
}

/* ---- writing ---- */

static void append_field(bson_t *doc, const ota_store_field *f, const ota_event *ev)
{
    const char *p = (const char *)ev + f->off;
    if (f->kind == OTA_SF_TEXT) {
        const char *v = *(const char *const *)p;
        if (v != NULL)
            BSON_APPEND_UTF8(doc, f->name, v);
        return;
    }
    int64_t v = f->kind == OTA_SF_I32 ? *(const int32_t *)p : *(const int64_t *)p;
    if (v >= 0)
        BSON_APPEND_INT64(doc, f->name, v);
}

static void event_doc(bson_t *doc, const ota_store_event *e)
{
    const ota_event *ev = e->ev;
    const char *epoch = e->epoch != NULL ? e->epoch : "0";
    char *id = bson_strdup_printf("%s/%s/%" PRIu64 "/%u", e->vin, epoch, e->seq, ev->index);
    BSON_APPEND_UTF8(doc, "_id", id);
    bson_free(id);
    BSON_APPEND_UTF8(doc, "vin", e->vin);
    BSON_APPEND_UTF8(doc, "epoch", epoch);
    BSON_APPEND_INT64(doc, "seq", (int64_t)e->seq);
    BSON_APPEND_INT64(doc, "idx", ev->index);
    BSON_APPEND_UTF8(doc, "task", ev->task);
    BSON_APPEND_INT64(doc, "ts", ev->ts);
    BSON_APPEND_INT64(doc, "received_at", e->received_ms);
    unsigned fields = ota_store_ev_kind_get(ev->type)->fields;
    for (int f = 0; f < OTA_SF_COUNT; f++)
        if (fields & OTA_SF_BIT(f))
            append_field(doc, &OTA_STORE_FIELDS[f], ev);
}

/* Inserts the events of one kind of the batch, unordered. */
static int put_kind(mongo_store *st, int type, const ota_store_event *evs, size_t n,
                    ota_store_put_result *r, char *err, size_t errlen)
{
    mongoc_collection_t *coll = ota_store_mg_coll(st, coll_of(type));
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, false, NULL);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)evs[i].ev->type != type)
            continue;
        bson_t doc = BSON_INITIALIZER;
        event_doc(&doc, &evs[i]);
        mongoc_bulk_operation_insert(bulk, &doc);
        bson_destroy(&doc);
        count++;
    }
    int rc = 0;
    if (count == 0) {
        mongoc_bulk_operation_destroy(bulk);
    } else {
        ota_store_mg_bulk_result b;
        char what[96];
        snprintf(what, sizeof what, "insert into %s", coll_of(type));
        rc = ota_store_mg_bulk_run(st, bulk, what, &b, err, errlen);
        if (rc == 0 && b.other_errors > 0)
            rc = -1;
        if (rc == 0) {
            r->inserted += (size_t)b.inserted;
            r->duplicates += b.dup_errors;
        }
    }
    mongoc_collection_destroy(coll);
    return rc;
}

int ota_store_mg_insert_events(mongo_store *st, const ota_store_event *evs, size_t n,
                               ota_store_put_result *r, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *problem = ota_store_event_problem(&evs[i]);
        if (problem != NULL) {
            ota_store_mg_err(st, err, errlen, "event %zu of the batch (type %d): %s", i,
                             evs[i].ev != NULL ? (int)evs[i].ev->type : -1, problem);
            return -1;
        }
    }
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++)
        if (put_kind(st, t, evs, n, r, err, errlen) != 0)
            return -1;
    return 0;
}

/* ---- reading ---- */

/* Fills ev and se from a stored document of kind type; texts point into doc. */
static void read_event(const bson_t *doc, int type, ota_event *ev, ota_store_event *se)
{
    memset(ev, 0, sizeof *ev);
    ev->type = (ota_event_type)type;
    se->vin = ota_store_mg_text(doc, "vin");
    se->seq = (uint64_t)ota_store_mg_int(doc, "seq", 0);
    ev->index = (uint32_t)ota_store_mg_int(doc, "idx", 0);
    ev->task = ota_store_mg_text(doc, "task");
    ev->ts = ota_store_mg_int(doc, "ts", 0);
    se->received_ms = ota_store_mg_int(doc, "received_at", 0);
    se->epoch = ota_store_mg_text(doc, "epoch");
    if (se->epoch == NULL)
        se->epoch = "0";
    for (int f = 0; f < OTA_SF_COUNT; f++) {
        const ota_store_field *d = &OTA_STORE_FIELDS[f];
        char *p = (char *)ev + d->off;
        if (d->kind == OTA_SF_TEXT)
            *(const char **)p = ota_store_mg_text(doc, d->name);
        else if (d->kind == OTA_SF_I32)
            *(int32_t *)p = (int32_t)ota_store_mg_int(doc, d->name, -1);
        else
            *(int64_t *)p = ota_store_mg_int(doc, d->name, -1);
    }
    se->ev = ev;
}

/* find options: sort by fields, at most limit documents (0: all). */
static void find_opts(bson_t *opts, const char *sort, size_t limit)
{
    bson_init(opts);
    ota_store_mg_append_fields(opts, "sort", sort);
    if (limit > 0)
        BSON_APPEND_INT64(opts, "limit", limit > INT_MAX ? INT_MAX : (int64_t)limit);
}

typedef struct {
    int type;
    ota_store_event_fn fn;
    void *ctx;
    int n;
} events_walk;

static int event_to_fn(const bson_t *doc, void *arg)
{
    events_walk *w = arg;
    ota_event ev;
    ota_store_event se;
    read_event(doc, w->type, &ev, &se);
    if (w->fn != NULL)
        w->fn(w->ctx, &se);
    w->n++;
    return 0;
}

/* Only events older than before: {$or: [{seq: {$lt: S}}, {seq: S, idx: {$lt: I}}]}. */
static void append_before(bson_t *filter, const ota_store_cursor *before)
{
    bson_t alts, arm, cmp;
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", &alts);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "0", &arm);
    BSON_APPEND_DOCUMENT_BEGIN(&arm, "seq", &cmp);
    BSON_APPEND_INT64(&cmp, "$lt", (int64_t)before->seq);
    bson_append_document_end(&arm, &cmp);
    bson_append_document_end(&alts, &arm);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "1", &arm);
    BSON_APPEND_INT64(&arm, "seq", (int64_t)before->seq);
    BSON_APPEND_DOCUMENT_BEGIN(&arm, "idx", &cmp);
    BSON_APPEND_INT64(&cmp, "$lt", (int64_t)before->index);
    bson_append_document_end(&arm, &cmp);
    bson_append_document_end(&alts, &arm);
    bson_append_array_end(filter, &alts);
}

/* The newest `limit` events of a VIN of one kind (older than before, when not NULL),
 * newest first; the count, or -1. */
static int newest_of_kind_before(mongo_store *st, int type, const char *vin,
                                 const ota_store_cursor *before, size_t limit,
                                 ota_store_mg_doc_fn fn, void *arg)
{
    bson_t filter = BSON_INITIALIZER, opts;
    BSON_APPEND_UTF8(&filter, "vin", vin);
    if (before != NULL)
        append_before(&filter, before);
    find_opts(&opts, "-seq, -idx", limit);
    int rc = ota_store_mg_find(st, coll_of(type), &filter, &opts, fn, arg);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

static int newest_of_kind(mongo_store *st, int type, const char *vin, size_t limit,
                          ota_store_mg_doc_fn fn, void *arg)
{
    return newest_of_kind_before(st, type, vin, NULL, limit, fn, arg);
}

int ota_store_mg_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx)
{
    if (vin == NULL)
        return -1;
    events_walk w = {OTA_EV_UPGRADE_STATUS, fn, ctx, 0};
    if (newest_of_kind((mongo_store *)s, OTA_EV_UPGRADE_STATUS, vin, 1, event_to_fn, &w) != 0)
        return -1;
    return w.n;
}

/* ---- history over every kind: gather the newest of each, merge ---- */

typedef struct {
    int type;
    uint64_t seq;
    uint32_t idx;
    bson_t *doc;
} held_event;

typedef struct {
    held_event *v;
    size_t n, cap;
    int type;
    bool oom;
} held_events;

static int hold_event(const bson_t *doc, void *arg)
{
    held_events *h = arg;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        held_event *v = realloc(h->v, cap * sizeof *v);
        if (v == NULL) {
            h->oom = true;
            return 1;
        }
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = (held_event){h->type, (uint64_t)ota_store_mg_int(doc, "seq", 0),
                                (uint32_t)ota_store_mg_int(doc, "idx", 0), bson_copy(doc)};
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const held_event *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? 1 : -1;
    return (x->idx < y->idx) - (x->idx > y->idx);
}

static int history_all(mongo_store *st, const char *vin, const ota_store_cursor *before,
                       size_t limit, ota_store_event_fn fn, void *ctx)
{
    held_events h = {0};
    int rc = 0;
    for (int t = 1; t <= OTA_EV_TYPE_COUNT && rc == 0; t++) {
        h.type = t;
        rc = newest_of_kind_before(st, t, vin, before, limit, hold_event, &h);
    }
    if (rc == 0 && h.n > 0) /* qsort(NULL, 0): an empty page (after the last cursor) */
        qsort(h.v, h.n, sizeof *h.v, newest_first);
    int n = 0;
    for (size_t i = 0; i < h.n; i++) {
        if (rc == 0 && (size_t)n < limit) {
            ota_event ev;
            ota_store_event se;
            read_event(h.v[i].doc, h.v[i].type, &ev, &se);
            if (fn != NULL)
                fn(ctx, &se);
            n++;
        }
        bson_destroy(h.v[i].doc);
    }
    free(h.v);
    return rc == 0 ? n : -1;
}

int ota_store_mg_history(ota_store *s, const char *vin, ota_event_type type,
                         const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                         void *ctx)
{
    mongo_store *st = (mongo_store *)s;
    if (vin == NULL || (type != 0 && coll_of(type) == NULL))
        return -1;
    if (limit == 0)
        return 0;
    if (type == 0)
        return history_all(st, vin, before, limit, fn, ctx);
    events_walk w = {type, fn, ctx, 0};
    return newest_of_kind_before(st, type, vin, before, limit, event_to_fn, &w) == 0 ? w.n : -1;
}

int ota_store_mg_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count)
{
    mongo_store *st = (mongo_store *)s;
    if (coll_of(type) == NULL)
        return -1;
    bson_t cmd = BSON_INITIALIZER, query, reply;
    BSON_APPEND_UTF8(&cmd, "count", coll_of(type));
    BSON_APPEND_DOCUMENT_BEGIN(&cmd, "query", &query);
    if (vin != NULL)
        BSON_APPEND_UTF8(&query, "vin", vin);
    bson_append_document_end(&cmd, &query);
    bson_error_t error;
    bool ok = mongoc_database_command_simple(st->db, &cmd, NULL, &reply, &error);
    int64_t n = ok ? ota_store_mg_int(&reply, "n", -1) : -1;
    bson_destroy(&cmd);
    bson_destroy(&reply);
    if (n < 0)
        return -1;
    *count = (uint64_t)n;
    return 0;
}

/* ---- start-up loaders ---- */

typedef struct {
    ota_store_event_fn fn;
    void *ctx;
    char last_vin[OTA_VIN_LEN + 16];
} latest_walk;

static int first_of_vin(const bson_t *doc, void *arg)
{
    latest_walk *w = arg;
    const char *vin = ota_store_mg_text(doc, "vin");
    if (vin == NULL || strcmp(vin, w->last_vin) == 0)
        return 0;
    snprintf(w->last_vin, sizeof w->last_vin, "%s", vin);
    ota_event ev;
    ota_store_event se;
    read_event(doc, OTA_EV_UPGRADE_STATUS, &ev, &se);
    w->fn(w->ctx, &se);
    return 0;
}

int ota_store_mg_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx)
{
    if (fn == NULL)
        return -1;
    latest_walk w = {fn, ctx, ""};
    bson_t opts;
    find_opts(&opts, "vin, -seq, -idx", 0);
    int rc = ota_store_mg_find((mongo_store *)s, coll_of(OTA_EV_UPGRADE_STATUS), NULL, &opts,
                               first_of_vin, &w);
    bson_destroy(&opts);
    return rc;
}

/* ---- the highest seq of every VIN: the last of each VIN in (vin, seq) order, over every
 * kind, then the highest per VIN of those, as guard rows of epoch "0". Start-up reads
 * ota_vehicle_state instead (mongo_state.c); this scan fills it once for a database made
 * before it existed ---- */

typedef struct {
    char *vin;
    uint64_t seq;
} vin_seq;

typedef struct {
    vin_seq *v;
    size_t n, cap;
    size_t from; /* where the kind being walked started */
    bool oom;
} vin_seqs;

static int keep_last_of_vin(const bson_t *doc, void *arg)
{
    vin_seqs *h = arg;
    const char *vin = ota_store_mg_text(doc, "vin");
    uint64_t seq = (uint64_t)ota_store_mg_int(doc, "seq", 0);
    if (vin == NULL)
        return 0;
    if (h->n > h->from && strcmp(h->v[h->n - 1].vin, vin) == 0) {
        h->v[h->n - 1].seq = seq; /* ascending: the last one is the highest */
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        vin_seq *v = realloc(h->v, cap * sizeof *v);
        if (v == NULL) {
            h->oom = true;
            return 1;
        }
        h->v = v;
        h->cap = cap;
    }
    if ((h->v[h->n].vin = strdup(vin)) == NULL) {
        h->oom = true;
        return 1;
    }
    h->v[h->n++].seq = seq;
    return 0;
}

static int by_vin_then_seq_desc(const void *a, const void *b)
{
    const vin_seq *x = a, *y = b;
    int c = strcmp(x->vin, y->vin);
    if (c != 0)
        return c;
    return (x->seq < y->seq) - (x->seq > y->seq);
}

int ota_store_mg_scan_last_seqs(mongo_store *st, ota_store_seq_fn fn, void *ctx)
{
    if (fn == NULL)
        return -1;
    vin_seqs h = {0};
    bson_t opts, proj;
    find_opts(&opts, "vin, seq", 0);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "vin", 1);
    BSON_APPEND_INT32(&proj, "seq", 1);
    BSON_APPEND_INT32(&proj, "_id", 0);
    bson_append_document_end(&opts, &proj);
    int rc = 0;
    for (int t = 1; t <= OTA_EV_TYPE_COUNT && rc == 0; t++) {
        h.from = h.n;
        rc = ota_store_mg_find(st, coll_of(t), NULL, &opts, keep_last_of_vin, &h);
    }
    bson_destroy(&opts);
    if (h.oom)
        rc = -1;
    if (rc == 0 && h.n > 0) /* qsort(NULL, 0, ...) is undefined */
        qsort(h.v, h.n, sizeof *h.v, by_vin_then_seq_desc);
    for (size_t i = 0; i < h.n && rc == 0; i++)
        if (i == 0 || strcmp(h.v[i - 1].vin, h.v[i].vin) != 0)
            rc = fn(ctx, &(ota_report_seq_rec){.vin = h.v[i].vin,
                                               .epoch = "0",
                                               .seq = (int64_t)h.v[i].seq}) != 0
                     ? -1
                     : 0;
    for (size_t i = 0; i < h.n; i++)
        free(h.v[i].vin);
    free(h.v);
    return rc;
}
