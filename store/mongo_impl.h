/*
 * mongo_impl.h — private to the MongoDB backend (store/mongo*.c): the handle and the
 * helpers that mongo.c (connection, indexes, helpers), mongo_events.c (report events),
 * mongo_catalog.c (the catalog and ota_store_apply) and mongo_tasks.c (the task engine's
 * records, the notice claim) share. Nothing outside store/mongo*.c includes this.
 */
#ifndef OTA_STORE_MONGO_IMPL_H
#define OTA_STORE_MONGO_IMPL_H

#include "schema.h"
#include "store_impl.h"

#include <mongoc/mongoc.h>

#include <stdbool.h>

typedef struct {
    ota_store base; /* first: the public handle */
    mongoc_client_t *client;
    mongoc_database_t *db;
    char *dbname;
    bool replset; /* the server is a replica set member: apply runs in a transaction */
} mongo_store;

/* ---- helpers (mongo.c) ---- */

/* "MongoDB DB: " + the formatted text into err (nothing when err is NULL). */
void ota_store_mg_err(const mongo_store *st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A collection handle (free with mongoc_collection_destroy). */
mongoc_collection_t *ota_store_mg_coll(mongo_store *st, const char *name);

/* Handles one document of a find; non-zero stops the walk. */
typedef int (*ota_store_mg_doc_fn)(const bson_t *doc, void *arg);
/* find on coll with filter (NULL: every document) and opts (sort, limit, projection;
 * may be NULL); calls fn for each document. 0, or -1 on an error or when fn stopped. */
int ota_store_mg_find(mongo_store *st, const char *coll, const bson_t *filter, const bson_t *opts,
                      ota_store_mg_doc_fn fn, void *arg);

/* Field readers: a text (NULL when absent or not a string), an integer (int32, int64 or
 * double; dflt when absent or null), a bool, binary data (NULL and *len 0 when absent or
 * not binary; points into doc). */
const char *ota_store_mg_text(const bson_t *doc, const char *field);
int64_t ota_store_mg_int(const bson_t *doc, const char *field, int64_t dflt);
bool ota_store_mg_bool(const bson_t *doc, const char *field);
const uint8_t *ota_store_mg_binary(const bson_t *doc, const char *field, uint32_t *len);

/* One step of writes in session cs (NULL: no transaction). Returns 1 when it wrote (commit),
 * 0 when there was nothing to write, -1 on an error (err set). */
typedef int (*ota_store_mg_step_fn)(mongo_store *st, mongoc_client_session_t *cs, void *arg,
                                    char *err, size_t errlen);
/* Runs step once: on a replica set inside a transaction (mongoc's with_transaction, which
 * commits when step returns 1 and ends it without a commit otherwise), alone elsewhere.
 * Returns step's result; -1 also when the session or the commit failed (what names the
 * write in err). */
int ota_store_mg_in_transaction(mongo_store *st, const char *what, ota_store_mg_step_fn step,
                                void *arg, char *err, size_t errlen);

/* Outcome of a bulk write: what the reply says. */
typedef struct {
    int64_t inserted, upserted, matched;
    size_t dup_errors;   /* write errors with code 11000 */
    size_t other_errors; /* any other write error, or a write concern error */
} ota_store_mg_bulk_result;

/* Executes bulk (then destroys it). Returns 0 when the server answered (res filled; check
 * its error counts), -1 when nothing came back (err set: the network, the server
 * selection, a command error). what names the write in err. */
int ota_store_mg_bulk_run(mongo_store *st, mongoc_bulk_operation_t *bulk, const char *what,
                          ota_store_mg_bulk_result *res, char *err, size_t errlen);
/* Runs bulk of coll (n operations; none: only destroyed), then destroys coll too. 0, or -1
 * with err set on any write error (duplicate keys are fine when dups_ok). */
int ota_store_mg_bulk_finish(mongo_store *st, mongoc_collection_t *coll,
                             mongoc_bulk_operation_t *bulk, size_t n, const char *what,
                             bool dups_ok, char *err, size_t errlen);
/* A bulk on coll, ordered or not, in session cs (NULL: none). */
mongoc_bulk_operation_t *ota_store_mg_bulk(mongo_store *st, mongoc_collection_t *coll, bool ordered,
                                           mongoc_client_session_t *cs);

/* ---- JSON documents as native BSON (mongo_json.c) ---- */

/* Appends the JSON object text json under key: as a sub-document when that prints back to
 * the same text, else as the string. True when native. */
bool ota_store_mg_append_json(bson_t *parent, const char *key, const char *json);
/* Appends the members of the JSON object json to doc (which holds _id) when that prints
 * back to the same text, else json: "<the text>". True when native. */
bool ota_store_mg_append_doc_fields(bson_t *doc, const char *json);
/* The JSON text (malloc; NULL when it has none) of a field: a string as it is, a document
 * or array printed as the codec prints JSON. */
char *ota_store_mg_json_of(const bson_iter_t *field);
/* The JSON text (malloc) of a stored top-level document: its json string in the text form,
 * else its fields but _id. NULL when a field has no JSON form. */
char *ota_store_mg_doc_json(const bson_t *doc);

/* ---- report events (mongo_events.c) ---- */

int ota_store_mg_events_indexes(mongo_store *st, char *err, size_t errlen);
/* Inserts the events (checked first), counting each into r as inserted or duplicate; the
 * VINs' state is the caller's (ota_store_mg_put_batch). 0, or -1 with err set. */
int ota_store_mg_insert_events(mongo_store *st, const ota_store_event *evs, size_t n,
                               ota_store_put_result *r, char *err, size_t errlen);
int ota_store_mg_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx);
int ota_store_mg_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count);
int ota_store_mg_history(ota_store *s, const char *vin, ota_event_type type,
                         const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                         void *ctx);
int ota_store_mg_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx);
/* Every VIN's highest seq from the events themselves (reads every event), as guard rows
 * of epoch "0", by VIN: the one-time fill of ota_vehicle_state (mongo_state.c). */
int ota_store_mg_scan_last_seqs(mongo_store *st, ota_store_seq_fn fn, void *ctx);

/* ---- the quarantine and the writer's batches (mongo_reports.c) ---- */

int ota_store_mg_reports_indexes(mongo_store *st, char *err, size_t errlen);
int ota_store_mg_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                           char *err, size_t errlen);
int ota_store_mg_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                            ota_store_put_result *res, char *err, size_t errlen);
int ota_store_mg_list_quarantine(ota_store *s, const char *vin, const char *code, int64_t before_id,
                                 size_t limit, ota_store_quarantine_fn fn, void *ctx);

/* ---- the catalog (mongo_catalog.c) ---- */

int ota_store_mg_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen);
int ota_store_mg_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx);
int ota_store_mg_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx);
int ota_store_mg_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx);

/* ---- the task engine's records (mongo_tasks.c) ---- */

int ota_store_mg_tasks_indexes(mongo_store *st, char *err, size_t errlen);
/* Writes the executions, shadows, notices and descriptions of a checked change (in
 * session cs, or NULL). 0, or -1 with err set. */
int ota_store_mg_tasks_write(mongo_store *st, const ota_catalog_change *c,
                             mongoc_client_session_t *cs, char *err, size_t errlen);
int ota_store_mg_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx);
/* issue 16 (ota_store.h "a task's rollout across brokers"): mongo_task_docs.c,
 * mongo_tasks.c */
int ota_store_mg_put_task_doc_if(ota_store *s, const char *id, const char *json,
                                 uint64_t expect_rev, char *err, size_t errlen);
int ota_store_mg_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                                  char *err, size_t errlen);
int ota_store_mg_load_task_execs(ota_store *s, const char *task, unsigned states,
                                 ota_store_exec_fn fn, void *ctx);
int ota_store_mg_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                           void *ctx);
int ota_store_mg_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx);
int ota_store_mg_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx);
int ota_store_mg_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                   void *ctx);
int ota_store_mg_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                              const char *owner, int64_t now_ms, char *err, size_t errlen);
int ota_store_mg_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                               int64_t now_ms, char *err, size_t errlen);

/* The document of record rec of task engine table t (OTA_T_*), every column. */
void ota_store_mg_rec_doc(bson_t *doc, int t, const void *rec);

/* ---- shared state for several brokers (mongo_state.c, mongo_changes.c) ---- */

/* At open: the indexes of ota_vehicle_state and ota_change_log, and the one-time
 * migrations (ota_vehicle_state filled from the events, or its {_id, last_seq} documents
 * of the first issue 15 version given epoch "0"; documents and shadows stored as JSON
 * text rewritten as native documents), each marked done in ota_store_meta. */
int ota_store_mg_state_open(mongo_store *st, char *err, size_t errlen);
/* ota_vehicle_state for batch b (after its events are stored): each VIN of its events
 * without a guard row in b raised in its epoch, then b's guard rows replaced in order. */
int ota_store_mg_state_write(mongo_store *st, const ota_store_batch *b, char *err, size_t errlen);
/* Every VIN's document of ota_vehicle_state, by VIN. */
int ota_store_mg_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx);
int ota_store_mg_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                 char *err, size_t errlen);
int ota_store_mg_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                  size_t errlen);
/* Appends the change log entries of a checked change (in session cs, or NULL). */
/* One entry (a group's change), right after the change itself. */
int ota_store_mg_change_append_one(mongo_store *st, const ota_store_change *e, char *err,
                                   size_t errlen);
int ota_store_mg_changes_append(mongo_store *st, const ota_catalog_change *c,
                                mongoc_client_session_t *cs, char *err, size_t errlen);
int ota_store_mg_read_changes(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx);
int ota_store_mg_change_bounds(ota_store *s, uint64_t *first, uint64_t *last);
int ota_store_mg_trim_changes(ota_store *s, uint64_t upto);

#define OTA_STORE_META_TABLE "ota_store_meta"

/* Creates an index named name on coll with the comma-separated fields ("vin, seq"; a
 * field with a leading '-' descends), unique or not. 0, or -1 with err set. */
int ota_store_mg_index(mongo_store *st, const char *coll, const char *name, const char *fields,
                       bool unique, char *err, size_t errlen);
/* Appends a sort / key document for the comma-separated fields (as above; "rowid" is
 * _id) to parent under key. */
void ota_store_mg_append_fields(bson_t *parent, const char *key, const char *fields);

#endif
