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
 * double; dflt when absent or null), a bool. */
const char *ota_store_mg_text(const bson_t *doc, const char *field);
int64_t ota_store_mg_int(const bson_t *doc, const char *field, int64_t dflt);
bool ota_store_mg_bool(const bson_t *doc, const char *field);

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
/* A bulk on coll, ordered or not, in session cs (NULL: none). */
mongoc_bulk_operation_t *ota_store_mg_bulk(mongo_store *st, mongoc_collection_t *coll, bool ordered,
                                           mongoc_client_session_t *cs);

/* ---- report events (mongo_events.c) ---- */

int ota_store_mg_events_indexes(mongo_store *st, char *err, size_t errlen);
int ota_store_mg_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                            ota_store_put_result *res, char *err, size_t errlen);
int ota_store_mg_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx);
int ota_store_mg_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count);
int ota_store_mg_history(ota_store *s, const char *vin, ota_event_type type, size_t limit,
                         ota_store_event_fn fn, void *ctx);
int ota_store_mg_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx);
/* The highest seq stored of every VIN, as guard rows of epoch "0", by VIN. */
int ota_store_mg_load_event_seqs(mongo_store *st, ota_store_seq_fn fn, void *ctx);

/* ---- the replay guard's rows and the quarantine (mongo_reports.c) ---- */

int ota_store_mg_reports_indexes(mongo_store *st, char *err, size_t errlen);
int ota_store_mg_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                           char *err, size_t errlen);
int ota_store_mg_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx);
int ota_store_mg_list_quarantine(ota_store *s, const char *vin, const char *code,
                                 int64_t before_id, size_t limit, ota_store_quarantine_fn fn,
                                 void *ctx);

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
int ota_store_mg_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx);
int ota_store_mg_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx);
int ota_store_mg_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                   void *ctx);
int ota_store_mg_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                              const char *owner, int64_t now_ms, char *err, size_t errlen);
int ota_store_mg_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                               int64_t now_ms, char *err, size_t errlen);

/* Creates an index named name on coll with the comma-separated fields ("vin, seq"; a
 * field with a leading '-' descends), unique or not. 0, or -1 with err set. */
int ota_store_mg_index(mongo_store *st, const char *coll, const char *name, const char *fields,
                       bool unique, char *err, size_t errlen);
/* Appends a sort / key document for the comma-separated fields (as above; "rowid" is
 * _id) to parent under key. */
void ota_store_mg_append_fields(bson_t *parent, const char *key, const char *fields);

#endif
