/*
 * sqlite_impl.h — private to the SQLite backend: the handle and the helpers that
 * sqlite.c (open/close, report events) shares with sqlite_catalog.c (the catalog) and
 * sqlite_tasks.c (the task engine's state). Nothing outside store/sqlite*.c includes this.
 */
#ifndef OTA_STORE_SQLITE_IMPL_H
#define OTA_STORE_SQLITE_IMPL_H

#include "schema.h"
#include "ota_errf.h"
#include "store_impl.h"

#include <sqlite3.h>

/* The catalog's statements, prepared once at open (sqlite_catalog.c). */
typedef struct {
    sqlite3_stmt *vehicle_put, *vehicle_delete, *vehicle_load;
    sqlite3_stmt *doc_put[OTA_DOC_KIND_COUNT + 1]; /* by kind; [0] unused */
    sqlite3_stmt *doc_delete[OTA_DOC_KIND_COUNT + 1];
    sqlite3_stmt *doc_load[OTA_DOC_KIND_COUNT + 1];
    sqlite3_stmt *list_add, *list_remove, *list_load;
} sqlite_catalog;

/* The task engine's statements, prepared once at open (sqlite_tasks.c). */
typedef struct {
    sqlite3_stmt *exec_put, *exec_load;
    sqlite3_stmt *shadow_put, *shadow_load;
    sqlite3_stmt *notice_add, *notice_load_task, *notice_load_all;
    sqlite3_stmt *desc_add, *desc_load_vin, *desc_load_all;
} sqlite_tasks;

/* Shared state for several brokers (issue 15; sqlite_state.c): statements prepared once
 * at open, and whether the handle is filling a snapshot (store/snapshot.c). */
typedef struct {
    struct {
        sqlite3_stmt *state_raise, *state_put, *state_load;
        sqlite3_stmt *exec_transition, *exec_get;
        sqlite3_stmt *change_add, *change_read, *change_bounds, *change_trim;
        sqlite3_stmt *snap_put, *snap_get;
    } q;
    bool bulk; /* in a snapshot's one transaction: apply / put_events neither begin nor
                  commit, and nothing goes to the change log */
} sqlite_shared;

#define OTA_STORE_SQ_CHUNKS 3 /* multi-row INSERTs per type: 32, 8 and 2 rows */

typedef struct {
    ota_store base; /* first: the public handle */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *insert[OTA_EV_TYPE_COUNT + 1];    /* by type; [0] unused */
    sqlite3_stmt *insert_rows[OTA_EV_TYPE_COUNT + 1][OTA_STORE_SQ_CHUNKS]; /* sqlite_rows.c */
    sqlite3_stmt *count_all[OTA_EV_TYPE_COUNT + 1]; /* by type; [0] unused */
    sqlite3_stmt *count_vin[OTA_EV_TYPE_COUNT + 1]; /* by type; [0] unused */
    sqlite3_stmt *history[OTA_EV_TYPE_COUNT + 1];   /* by type; [0] every type */
    sqlite3_stmt *history_before[OTA_EV_TYPE_COUNT + 1]; /* ... older than (?3, ?4) */
    sqlite3_stmt *latest;                           /* newest upgrade_status */
    sqlite3_stmt *latest_all;                       /* ... of every VIN */
    sqlite_catalog cat;
    sqlite_tasks tasks;
    sqlite_shared shared;
    sqlite3_stmt *quarantine_put, *quarantine_list;
} sqlite_store;

/* ---- helpers of sqlite.c ---- */

/* "SQLite PATH: what: SQLite's last error message". */
void ota_store_sq_db_err(const sqlite_store *st, char *err, size_t errlen, const char *what);
/* Whether table has column: 0 no such table, 1 the table without the column, 2 with it,
 * -1 on error (the schema steps of open). */
int ota_store_sq_table_has(sqlite_store *st, const char *table, const char *column);
/* Adds column (decl: its type and constraints) to table when the table exists without it
 * (a store made before the column): ALTER TABLE ADD COLUMN. 0, or -1 with err set. */
int ota_store_sq_add_column(sqlite_store *st, const char *table, const char *column,
                            const char *decl, char *err, size_t errlen);

/* Builds one statement's SQL with build(q, arg), then runs it (out NULL) or prepares it
 * for reuse into *out. 0, or -1 with err set. */
typedef void (*ota_store_sq_builder)(sqlite3_str *q, int arg);
int ota_store_sq_build(sqlite_store *st, ota_store_sq_builder build, int arg, sqlite3_stmt **out,
                       char *err, size_t errlen);

/* Steps a statement without rows (BEGIN, COMMIT, DELETE ...) and resets it; 0, or -1
 * with err set (what names the statement). */
int ota_store_sq_step(sqlite_store *st, sqlite3_stmt *stmt, const char *what, char *err,
                      size_t errlen);
/* Rolls the open transaction back, if SQLite has not already done so. */
void ota_store_sq_rollback(sqlite_store *st);
/* Ends the open transaction: committed when the body went well (body_rc 0), else rolled
 * back; 0, or -1 (err set when the commit failed). */
int ota_store_sq_finish(sqlite_store *st, int body_rc, char *err, size_t errlen);

/* The INSERT of rows events of one type, arg = OTA_STORE_SQ_INSERT_ARG(type, rows) (a
 * builder for ota_store_sq_build). */
#define OTA_STORE_SQ_INSERT_ARG(type, rows) ((type) | (rows) << 8)
void ota_store_sq_insert_sql(sqlite3_str *q, int arg);
/* Binds event e to the parameters after *col of an INSERT of its type; *col moves past
 * them. An SQLite result code. */
int ota_store_sq_bind_event(sqlite3_stmt *stmt, int *col, const ota_store_event *e);

/* ---- a batch's events by multi-row INSERTs (sqlite_rows.c) ---- */

int ota_store_sq_rows_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_rows_finalize(sqlite_store *st);
/* Inserts every event of b inside the open transaction and lists them in raised (room for
 * b->n_events); r->inserted = their number. 0, or 1 when an event was a duplicate or
 * anything failed: the transaction must then be rolled back (see the file). */
int ota_store_sq_rows_put(sqlite_store *st, const ota_store_batch *b, ota_store_put_result *r,
                          ota_store_vin_seq *raised);

/* ---- the catalog (sqlite_catalog.c) ---- */

/* Creates the catalog tables, the task engine's included (inside the schema transaction
 * of open); prepares and finalizes their statements. */
int ota_store_sq_catalog_schema(sqlite_store *st, char *err, size_t errlen);
int ota_store_sq_catalog_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_catalog_finalize(sqlite_store *st);

/* Binds v to column col, or NULL when v is NULL. */
int ota_store_sq_bind_text_or_null(sqlite3_stmt *stmt, int col, const char *v);
/* Steps a bound write (rc: how binding went) for item i of a part of the change and
 * resets it; 0, or -1 with err naming the part, the item and the table. */
int ota_store_sq_step_write(sqlite_store *st, sqlite3_stmt *stmt, int rc, const char *part,
                            size_t i, const char *table, char *err, size_t errlen);

/* Where a loader sends its rows (schema.h). */
typedef ota_store_sink ota_store_sq_sink;

/* Handles one row; non-zero stops the walk. */
typedef int (*ota_store_sq_row_fn)(sqlite3_stmt *stmt, const ota_store_sq_sink *to);
/* Steps stmt (bound already) to its end, handing each row to row; resets it and clears
 * its bindings. 0, or -1 on an SQLite error, when row stopped the walk, or when stmt is
 * already being walked (a callback loading again through the same statement). */
int ota_store_sq_walk(sqlite3_stmt *stmt, ota_store_sq_row_fn row, const ota_store_sq_sink *to);

int ota_store_sq_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen);
int ota_store_sq_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx);
int ota_store_sq_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx);
int ota_store_sq_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx);

/* ---- the task engine's state (sqlite_tasks.c) ---- */

int ota_store_sq_tasks_schema(sqlite_store *st, char *err, size_t errlen);
int ota_store_sq_tasks_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_tasks_finalize(sqlite_store *st);
/* The executions, shadows, notices and descriptions of a checked change, written inside
 * the open transaction: 0, or -1 with err set. */
int ota_store_sq_tasks_write(sqlite_store *st, const ota_catalog_change *c, char *err,
                             size_t errlen);

int ota_store_sq_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx);
/* issue 16 (ota_store.h "a task's rollout across brokers"): sqlite_task_docs.c,
 * sqlite_tasks.c */
int ota_store_sq_put_task_doc_if(ota_store *s, const char *id, const char *json,
                                 uint64_t expect_rev, char *err, size_t errlen);
int ota_store_sq_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                                  char *err, size_t errlen);
int ota_store_sq_load_task_execs(ota_store *s, const char *task, unsigned states,
                                 ota_store_exec_fn fn, void *ctx);
int ota_store_sq_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                           void *ctx);
int ota_store_sq_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx);
int ota_store_sq_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx);
int ota_store_sq_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                              const char *owner, int64_t now_ms, char *err, size_t errlen);
int ota_store_sq_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                               int64_t now_ms, char *err, size_t errlen);
int ota_store_sq_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                   void *ctx);

/* ---- the refused reports (sqlite_reports.c) ---- */

/* Creates ota_quarantine (inside the schema transaction of open). */
int ota_store_sq_reports_schema(sqlite_store *st, char *err, size_t errlen);
int ota_store_sq_reports_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_reports_finalize(sqlite_store *st);
/* The refused reports of a batch, inside the open transaction. */
int ota_store_sq_reports_write(sqlite_store *st, const ota_store_batch *b, char *err,
                               size_t errlen);
int ota_store_sq_list_quarantine(ota_store *s, const char *vin, const char *code,
                                 int64_t before_id, size_t limit, ota_store_quarantine_fn fn,
                                 void *ctx);

/* ---- shared state for several brokers (sqlite_state.c) ---- */

/* Creates ota_vehicle_state and ota_change_log, inside the schema transaction of open
 * (after the event tables); prepares / finalizes. ota_vehicle_state of an older database:
 * none (filled from the events: epoch "0", each VIN's highest seq), (vin, last_seq) of
 * the first issue 15 version (epoch "0"), or beside ota_vehicle_report_seq (its rows). */
int ota_store_sq_state_schema(sqlite_store *st, char *err, size_t errlen);
int ota_store_sq_state_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_state_finalize(sqlite_store *st);
/* ota_vehicle_state for batch b inside its transaction: each VIN of v (b's inserted events;
 * reordered) without a guard row in b raised in its epoch, then b's guard rows in order.
 * 0, or -1 with err set. */
int ota_store_sq_state_write(sqlite_store *st, const ota_store_batch *b, ota_store_vin_seq *v,
                             size_t n, char *err, size_t errlen);
/* Appends the change log entries of a checked change, inside the open transaction. */
/* One entry (a group's change) in the caller's transaction. */
int ota_store_sq_change_append_one(sqlite_store *st, const ota_store_change *e, char *err,
                                   size_t errlen);
int ota_store_sq_changes_append(sqlite_store *st, const ota_catalog_change *c, char *err,
                                size_t errlen);

/* Every VIN's row of ota_vehicle_state, by VIN. */
int ota_store_sq_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx);
int ota_store_sq_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                 char *err, size_t errlen);
int ota_store_sq_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                  size_t errlen);
int ota_store_sq_read_changes(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx);
int ota_store_sq_change_bounds(ota_store *s, uint64_t *first, uint64_t *last);
int ota_store_sq_trim_changes(ota_store *s, uint64_t upto);

/* ---- local snapshots (store/snapshot.c on a SQLite handle; sqlite_state.c) ---- */

/* Starts filling s (a SQLite handle) as a snapshot: one transaction, no fsync until the
 * commit, no change log. 0 or -1 (err set). */
int ota_store_sq_snapshot_begin(ota_store *s, char *err, size_t errlen);
/* Records the change log position the snapshot reflects and commits it durably (the file
 * left in rollback-journal mode, with no -wal beside it). 0 or -1; abort rolls back. */
int ota_store_sq_snapshot_commit(ota_store *s, uint64_t change_seq, char *err, size_t errlen);
void ota_store_sq_snapshot_abort(ota_store *s);
/* The position of a snapshot: 1 and *seq, 0 when s holds none (not a snapshot), -1. */
int ota_store_sq_snapshot_position(ota_store *s, uint64_t *seq);
/* Sets a VIN's row of ota_vehicle_state in a snapshot being filled. 0 or -1. */
int ota_store_sq_snapshot_seq(ota_store *s, const ota_report_seq_rec *r);

#endif
