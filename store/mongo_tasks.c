/*
 * mongo_tasks.c — the task engine's records in the MongoDB backend, generated from the
 * descriptors SQLite uses (OTA_STORE_TTABLES, schema.h), and the notice claim.
 *   ota_task_vin                     {task, vin, state, code, resends, msg_id,
 *                                     notified_at, updated_at, wave}, unique {task, vin};
 *                                     counted per state and wave by one aggregate
 *                                     ($match task, $group {state, wave}: issue 15)
 *   ota_vehicle_shadow               {vin, version, reported, desired, updated_at},
 *                                     unique {vin}; reported / desired are sub-documents
 *                                     (mongo_json.c; the JSON text when not exact)
 *   ota_vehicle_download_notice      {task, vin, package, version, msg_id, sent_at},
 *                                     unique {msg_id}, index {task, sent_at}
 *   ota_vehicle_package_description  {vin, counter, task, req, package, files, cose
 *                                     (binary), issued_at, expires_at}, unique {vin, counter}
 *   ota_vehicle_notice_claim         {_id: msg_id, task, vin, owner, claimed_at}
 * Integers are Int64; an absent optional value (NULL text, negative time) is an absent
 * field. Upsert tables (executions, shadows) are written as replacement upserts on their
 * key; insert-only tables (notices, descriptions) as upserts with $setOnInsert, so a key
 * stored already is kept and no error is raised (and a retried change converges).
 *
 * The claim: findAndModify {_id: msg_id} $setOnInsert {owner, ...} upsert, new: the first
 * broker to claim a notice owns it for good; every broker reads back who owns it. Two
 * brokers racing may see a duplicate-key error on the upsert: then the claim exists and is
 * read again. A batch (the engine's claim jobs) is, per 1000 claims, one unordered insert of
 * {_id: msg_id, owner, ...} (an existing claim is a duplicate-key error, which only says
 * someone claimed it first) and one find {_id: {$in: [...]}} of the owners: two round trips
 * instead of one per notice; the _id's uniqueness makes each claim as atomic as the
 * findAndModify.
 */
#include "mongo_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Index names: "<table>_key" for the key, "<table>_by" for the secondary index. */
int ota_store_mg_tasks_indexes(mongo_store *st, char *err, size_t errlen)
{
    for (int t = 0; t < OTA_T_COUNT; t++) {
        const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
        char keys[128] = "";
        for (int i = 0; i < d->n_cols; i++)
            if (d->cols[i].flags & OTA_TC_KEY)
                snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s",
                         keys[0] != '\0' ? ", " : "", d->cols[i].name);
        if (ota_store_mg_index(st, d->table, "key", keys, true, err, errlen) != 0)
            return -1;
        if (d->index != NULL &&
            ota_store_mg_index(st, d->table, "by", d->index, false, err, errlen))
            return -1;
    }
    return 0;
}

/* ---- writing ---- */

/* Appends column c of rec to doc (nothing for an absent value). */
static void append_col(bson_t *doc, const ota_store_tcol *c, const char *rec)
{
    const char *p = rec + c->off;
    switch (c->kind) {
    case OTA_TC_TEXT:
        if (*(const char *const *)p != NULL && (c->flags & OTA_TC_JSON))
            ota_store_mg_append_json(doc, c->name, *(const char *const *)p);
        else if (*(const char *const *)p != NULL)
            BSON_APPEND_UTF8(doc, c->name, *(const char *const *)p);
        break;
    case OTA_TC_STATE:
        BSON_APPEND_UTF8(doc, c->name, ota_exec_state_name(*(const ota_exec_state *)p));
        break;
    case OTA_TC_U32:
        BSON_APPEND_INT64(doc, c->name, *(const uint32_t *)p);
        break;
    case OTA_TC_U64: /* at most INT64_MAX: checked */
        BSON_APPEND_INT64(doc, c->name, (int64_t) * (const uint64_t *)p);
        break;
    case OTA_TC_I64:
        BSON_APPEND_INT64(doc, c->name, *(const int64_t *)p);
        break;
    case OTA_TC_BLOB:
        BSON_APPEND_BINARY(doc, c->name, BSON_SUBTYPE_BINARY, *(const uint8_t *const *)p,
                           (uint32_t) * (const size_t *)(p + sizeof(void *)));
        break;
    default:
        if (*(const int64_t *)p >= 0)
            BSON_APPEND_INT64(doc, c->name, *(const int64_t *)p);
    }
}

/* The record's columns having all of flags (0: every column). */
static void append_cols(bson_t *doc, const ota_store_ttable *d, const char *rec, unsigned flags)
{
    for (int i = 0; i < d->n_cols; i++)
        if ((d->cols[i].flags & flags) == flags)
            append_col(doc, &d->cols[i], rec);
}

void ota_store_mg_rec_doc(bson_t *doc, int t, const void *rec)
{
    append_cols(doc, &OTA_STORE_TTABLES[t], rec, 0);
}

/* One record into bulk: a replacement upsert, or an insert-if-absent. */
static void write_rec(mongoc_bulk_operation_t *bulk, const ota_store_ttable *d, const char *rec)
{
    bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    append_cols(&sel, d, rec, OTA_TC_KEY);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    if (d->upsert) {
        append_cols(&doc, d, rec, 0);
        mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, &doc, &opts, NULL);
    } else {
        bson_t set;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "$setOnInsert", &set);
        append_cols(&set, d, rec, 0);
        bson_append_document_end(&doc, &set);
        mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &doc, &opts, NULL);
    }
    bson_destroy(&sel);
    bson_destroy(&doc);
    bson_destroy(&opts);
}

static int write_part(mongo_store *st, int t, ota_store_part p, mongoc_client_session_t *cs,
                      char *err, size_t errlen)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    if (p.n == 0)
        return 0;
    mongoc_collection_t *coll = ota_store_mg_coll(st, d->table);
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, true, cs);
    for (size_t i = 0; i < p.n; i++)
        write_rec(bulk, d, (const char *)p.recs + i * p.size);
    ota_store_mg_bulk_result r;
    char what[128];
    snprintf(what, sizeof what, "%ss of the change (%s)", d->part, d->table);
    int rc = ota_store_mg_bulk_run(st, bulk, what, &r, err, errlen);
    mongoc_collection_destroy(coll);
    return rc == 0 && r.dup_errors + r.other_errors == 0 ? 0 : -1;
}

int ota_store_mg_tasks_write(mongo_store *st, const ota_catalog_change *c,
                             mongoc_client_session_t *cs, char *err, size_t errlen)
{
    for (int t = 0; t < OTA_T_COUNT; t++)
        if (write_part(st, t, ota_store_change_part(c, t), cs, err, errlen) != 0)
            return -1;
    return 0;
}

/* ---- loaders ---- */

/* A stored document being read, and the JSON texts printed from its sub-documents
 * (freed once the record was handed on). */
#define MAX_PRINTED 4
typedef struct {
    const bson_t *doc;
    char *printed[MAX_PRINTED];
    int n_printed;
} doc_src;

static void doc_src_free(doc_src *d)
{
    for (int i = 0; i < d->n_printed; i++)
        free(d->printed[i]);
    d->n_printed = 0;
}

/* Fields of a stored document (ota_store_read_rec). */
static bool doc_absent(void *src, int i, const char *name)
{
    (void)i;
    bson_iter_t it;
    return !bson_iter_init_find(&it, ((doc_src *)src)->doc, name) || BSON_ITER_HOLDS_NULL(&it);
}

/* A text; a sub-document (a shadow's reported / desired state) as its JSON text. */
static const char *doc_text(void *src, int i, const char *name)
{
    (void)i;
    doc_src *d = src;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d->doc, name))
        return NULL;
    if (BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    if (d->n_printed == MAX_PRINTED)
        return NULL;
    char *json = ota_store_mg_json_of(&it);
    if (json != NULL)
        d->printed[d->n_printed++] = json;
    return json;
}

static int64_t doc_i64(void *src, int i, const char *name)
{
    (void)i;
    return ota_store_mg_int(((doc_src *)src)->doc, name, 0);
}

static const void *doc_blob(void *src, int i, const char *name, size_t *len)
{
    (void)i;
    uint32_t n;
    const uint8_t *data = ota_store_mg_binary(((doc_src *)src)->doc, name, &n);
    *len = n;
    return data;
}

static const ota_store_col_reader DOC = {doc_absent, doc_text, doc_i64, doc_blob};

/* Fills rec from src; texts and blobs point into its document or its printed texts. A
 * required text that came back NULL (a sub-document with no JSON form) is refused. */
static int read_rec(doc_src *src, const ota_store_ttable *d, char *rec)
{
    if (ota_store_read_rec(d, rec, &DOC, src) != 0)
        return -1;
    for (int i = 0; i < d->n_cols; i++)
        if (d->cols[i].kind == OTA_TC_TEXT && (d->cols[i].flags & OTA_TC_REQ) &&
            *(const char **)(rec + d->cols[i].off) == NULL)
            return -1;
    return 0;
}

typedef ota_store_sink sink;

static int rec_to_fn(const bson_t *doc, void *arg)
{
    sink *to = arg;
    union {
        ota_exec_rec exec;
        ota_shadow_rec shadow;
        ota_notice_rec notice;
        ota_description_rec description;
    } r;
    doc_src src = {.doc = doc};
    int rc = read_rec(&src, &OTA_STORE_TTABLES[to->t], (char *)&r);
    if (rc == 0 && to->t == OTA_T_EXEC)
        rc = to->fn.exec(to->ctx, &r.exec);
    else if (rc == 0 && to->t == OTA_T_SHADOW)
        rc = to->fn.shadow(to->ctx, &r.shadow);
    else if (rc == 0 && to->t == OTA_T_NOTICE)
        rc = to->fn.notice(to->ctx, &r.notice);
    else if (rc == 0)
        rc = to->fn.description(to->ctx, &r.description);
    doc_src_free(&src);
    return rc;
}

/* Walks table to->t in its loaders' order, every document or those whose first column
 * is first (not NULL). */
static int load(mongo_store *st, const sink *to, const char *first)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[to->t];
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    if (first != NULL)
        BSON_APPEND_UTF8(&filter, d->cols[0].name, first);
    ota_store_mg_append_fields(&opts, "sort", d->order);
    int rc = ota_store_mg_find(st, d->table, &filter, &opts, rec_to_fn, (void *)to);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

int ota_store_mg_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx)
{
    sink to = {.t = OTA_T_EXEC, .fn.exec = fn, .ctx = ctx};
    return fn != NULL ? load((mongo_store *)s, &to, NULL) : -1;
}

int ota_store_mg_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx)
{
    sink to = {.t = OTA_T_SHADOW, .fn.shadow = fn, .ctx = ctx};
    return fn != NULL ? load((mongo_store *)s, &to, NULL) : -1;
}

int ota_store_mg_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx)
{
    sink to = {.t = OTA_T_NOTICE, .fn.notice = fn, .ctx = ctx};
    return fn != NULL ? load((mongo_store *)s, &to, task) : -1;
}

int ota_store_mg_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                   void *ctx)
{
    sink to = {.t = OTA_T_DESC, .fn.description = fn, .ctx = ctx};
    return fn != NULL ? load((mongo_store *)s, &to, vin) : -1;
}

/* ---- the notice claim ---- */

/* One findAndModify; 1/0 as ota_store_claim_notice, -1 with *dup set on 11000. */
static int claim_once(mongo_store *st, mongoc_collection_t *coll, const char *task, const char *vin,
                      const char *msg_id, const char *owner, int64_t now_ms, bool *dup, char *err,
                      size_t errlen)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
    BSON_APPEND_UTF8(&query, "_id", msg_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &set);
    BSON_APPEND_UTF8(&set, "task", task);
    BSON_APPEND_UTF8(&set, "vin", vin);
    BSON_APPEND_UTF8(&set, "owner", owner);
    BSON_APPEND_INT64(&set, "claimed_at", now_ms);
    bson_append_document_end(&update, &set);
    bson_error_t error;
    bool ok = mongoc_collection_find_and_modify(coll, &query, NULL, &update, NULL, false, true,
                                                true, &reply, &error);
    int rc = -1;
    bson_iter_t it, v;
    if (ok && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &v) && bson_iter_find(&v, "owner") && BSON_ITER_HOLDS_UTF8(&v))
        rc = strcmp(bson_iter_utf8(&v, NULL), owner) == 0 ? 1 : 0;
    *dup = !ok && error.code == 11000;
    if (rc < 0 && !*dup)
        ota_store_mg_err(st, err, errlen, "claim of notice %s: %s", msg_id,
                         ok ? "no owner in the answer" : error.message);
    bson_destroy(&query);
    bson_destroy(&update);
    bson_destroy(&reply);
    return rc;
}

int ota_store_mg_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                              const char *owner, int64_t now_ms, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    mongoc_collection_t *coll = ota_store_mg_coll(st, OTA_STORE_CLAIM_TABLE);
    bool dup = false;
    int rc = claim_once(st, coll, task, vin, msg_id, owner, now_ms, &dup, err, errlen);
    if (rc < 0 && dup) /* another broker inserted it between our find and our insert */
        rc = claim_once(st, coll, task, vin, msg_id, owner, now_ms, &dup, err, errlen);
    mongoc_collection_destroy(coll);
    return rc;
}

/* ---- the batch claim: per chunk, an unordered insert of the claims (a claim that exists
 * already is a duplicate-key error, not a failure), then a find of their owners ---- */

#define CLAIM_CHUNK 1000

typedef struct {
    ota_notice_claim **by_id; /* the chunk's claims sorted by msg_id */
    size_t n;
    const char *owner;
} claim_chunk;

static int claim_cmp(const void *a, const void *b)
{
    return strcmp((*(ota_notice_claim *const *)a)->msg_id, (*(ota_notice_claim *const *)b)->msg_id);
}

/* One owner document of the find: sets the result of its claim. */
static int claim_owner(const bson_t *doc, void *arg)
{
    claim_chunk *ch = arg;
    const char *id = ota_store_mg_text(doc, "_id"), *owner = ota_store_mg_text(doc, "owner");
    if (id == NULL || owner == NULL)
        return -1;
    ota_notice_claim key = {.msg_id = id}, *kp = &key;
    ota_notice_claim **c = bsearch(&kp, ch->by_id, ch->n, sizeof *ch->by_id, claim_cmp);
    if (c != NULL)
        (*c)->result = strcmp(owner, ch->owner) == 0 ? 1 : 0;
    return 0;
}

static int claim_insert(mongo_store *st, mongoc_collection_t *coll, const claim_chunk *ch,
                        int64_t now_ms, char *err, size_t errlen)
{
    mongoc_bulk_operation_t *bulk = ota_store_mg_bulk(st, coll, false, NULL);
    for (size_t i = 0; i < ch->n; i++) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", ch->by_id[i]->msg_id);
        BSON_APPEND_UTF8(&doc, "task", ch->by_id[i]->task);
        BSON_APPEND_UTF8(&doc, "vin", ch->by_id[i]->vin);
        BSON_APPEND_UTF8(&doc, "owner", ch->owner);
        BSON_APPEND_INT64(&doc, "claimed_at", now_ms);
        mongoc_bulk_operation_insert(bulk, &doc);
        bson_destroy(&doc);
    }
    ota_store_mg_bulk_result res;
    char why[200] = "";
    if (ota_store_mg_bulk_run(st, bulk, "notice claims", &res, err, errlen) != 0)
        return -1;
    if (res.other_errors > 0) {
        snprintf(why, sizeof why, "%s", err != NULL ? err : "");
        ota_store_mg_err(st, err, errlen, "notice claims: %zu write errors (%s)", res.other_errors,
                         why);
        return -1;
    }
    return 0;
}

static int claim_find(mongo_store *st, claim_chunk *ch, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, id, in, opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
    BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
    for (size_t i = 0; i < ch->n; i++) {
        char key[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
        BSON_APPEND_UTF8(&in, k, ch->by_id[i]->msg_id);
    }
    bson_append_array_end(&id, &in);
    bson_append_document_end(&filter, &id);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "owner", 1);
    bson_append_document_end(&opts, &proj);
    int rc = ota_store_mg_find(st, OTA_STORE_CLAIM_TABLE, &filter, &opts, claim_owner, ch);
    bson_destroy(&filter);
    bson_destroy(&opts);
    for (size_t i = 0; rc == 0 && i < ch->n; i++)
        if (ch->by_id[i]->result < 0) {
            ota_store_mg_err(st, err, errlen, "notice claim %s: not found after its insert",
                             ch->by_id[i]->msg_id);
            return -1;
        }
    if (rc != 0)
        ota_store_mg_err(st, err, errlen, "notice claims: reading the owners failed");
    return rc;
}

int ota_store_mg_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                               int64_t now_ms, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    size_t cap = n < CLAIM_CHUNK ? n : CLAIM_CHUNK;
    claim_chunk ch = {.by_id = malloc(cap * sizeof *ch.by_id), .owner = owner};
    mongoc_collection_t *coll = ota_store_mg_coll(st, OTA_STORE_CLAIM_TABLE);
    int rc = ch.by_id != NULL ? 0 : -1;
    if (rc != 0)
        ota_store_mg_err(st, err, errlen, "notice claims: out of memory");
    for (size_t at = 0; rc == 0 && at < n; at += ch.n) {
        ch.n = n - at < CLAIM_CHUNK ? n - at : CLAIM_CHUNK;
        for (size_t i = 0; i < ch.n; i++) {
            ch.by_id[i] = &claims[at + i];
            ch.by_id[i]->result = -1;
        }
        qsort(ch.by_id, ch.n, sizeof *ch.by_id, claim_cmp);
        rc = claim_insert(st, coll, &ch, now_ms, err, errlen);
        rc = rc == 0 ? claim_find(st, &ch, err, errlen) : rc;
    }
    mongoc_collection_destroy(coll);
    free(ch.by_id);
    return rc;
}

/* ---- one execution on demand (a broker taking over a vehicle another one notified) ---- */

int ota_store_mg_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                           void *ctx)
{
    sink to = {.t = OTA_T_EXEC, .fn.exec = fn, .ctx = ctx};
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "task", task);
    BSON_APPEND_UTF8(&filter, "vin", vin);
    int rc = ota_store_mg_find((mongo_store *)s, OTA_STORE_TTABLES[OTA_T_EXEC].table, &filter,
                               &opts, rec_to_fn, &to);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* ---- one task's executions in some states (issue 16: a wave's counts over every broker) ---- */

int ota_store_mg_load_task_execs(ota_store *s, const char *task, unsigned states,
                                 ota_store_exec_fn fn, void *ctx)
{
    sink to = {.t = OTA_T_EXEC, .fn.exec = fn, .ctx = ctx};
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, in, names;
    BSON_APPEND_UTF8(&filter, "task", task);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "state", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &names);
    for (int i = 0, k = 0; i < OTA_EXEC_STATE_COUNT; i++) {
        if (states & (1u << i)) {
            char key[16];
            snprintf(key, sizeof key, "%d", k++);
            BSON_APPEND_UTF8(&names, key, ota_exec_state_name((ota_exec_state)i));
        }
    }
    bson_append_array_end(&in, &names);
    bson_append_document_end(&filter, &in);
    int rc = ota_store_mg_find((mongo_store *)s, OTA_STORE_TTABLES[OTA_T_EXEC].table, &filter,
                               &opts, rec_to_fn, &to);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* ---- one task's executions counted in the server (issue 15: no rows leave it) ---- */

/* [{$match: {task}}, {$group: {_id: {state: "$state", wave: "$wave"}, n: {$sum: 1}}}] */
static void count_pipeline(bson_t *pipe, const char *task)
{
    bson_t stages, match, m, group, g, id, n;
    BSON_APPEND_ARRAY_BEGIN(pipe, "pipeline", &stages);
    BSON_APPEND_DOCUMENT_BEGIN(&stages, "0", &match);
    BSON_APPEND_DOCUMENT_BEGIN(&match, "$match", &m);
    BSON_APPEND_UTF8(&m, "task", task);
    bson_append_document_end(&match, &m);
    bson_append_document_end(&stages, &match);
    BSON_APPEND_DOCUMENT_BEGIN(&stages, "1", &group);
    BSON_APPEND_DOCUMENT_BEGIN(&group, "$group", &g);
    BSON_APPEND_DOCUMENT_BEGIN(&g, "_id", &id);
    BSON_APPEND_UTF8(&id, "state", "$state");
    BSON_APPEND_UTF8(&id, "wave", "$wave");
    bson_append_document_end(&g, &id);
    BSON_APPEND_DOCUMENT_BEGIN(&g, "n", &n);
    BSON_APPEND_INT32(&n, "$sum", 1);
    bson_append_document_end(&g, &n);
    bson_append_document_end(&group, &g);
    bson_append_document_end(&stages, &group);
    bson_append_array_end(pipe, &stages);
}

/* One group of the reply to fn: 0 go on, 1 fn stopped. A group of an unknown state is skipped. */
static int count_group(const bson_t *doc, ota_store_count_fn fn, void *ctx)
{
    bson_iter_t it, state, wave;
    int s = -1;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "_id.state", &state) &&
        BSON_ITER_HOLDS_UTF8(&state))
        s = ota_exec_state_from_name(bson_iter_utf8(&state, NULL));
    int64_t w = bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "_id.wave", &wave) &&
                        BSON_ITER_HOLDS_NUMBER(&wave)
                    ? bson_iter_as_int64(&wave)
                    : -1;
    int64_t n = ota_store_mg_int(doc, "n", 0);
    return s >= 0 && n > 0 && fn(ctx, (ota_exec_state)s, w, (uint64_t)n) != 0;
}

int ota_store_mg_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                                  char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    bson_t pipe = BSON_INITIALIZER;
    count_pipeline(&pipe, task);
    mongoc_collection_t *c = ota_store_mg_coll(st, OTA_STORE_TTABLES[OTA_T_EXEC].table);
    mongoc_cursor_t *cur = mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, &pipe, NULL, NULL);
    const bson_t *doc;
    int stop = 0;
    while (stop == 0 && mongoc_cursor_next(cur, &doc))
        stop = count_group(doc, fn, ctx);
    bson_error_t error;
    bool failed = mongoc_cursor_error(cur, &error);
    if (failed)
        ota_store_mg_err(st, err, errlen, "counting the executions of %s: %s", task, error.message);
    else if (stop != 0)
        ota_store_mg_err(st, err, errlen, "counting the executions of %s: stopped", task);
    int rc = stop == 0 && !failed ? 0 : -1;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&pipe);
    return rc;
}
