/*
 * sqlite_impl.h — private to the SQLite backend: the handle and the helpers that
 * sqlite.c (open/close, report events) shares with sqlite_catalog.c (the catalog).
 * Nothing outside store/sqlite*.c includes this.
 */
#ifndef OTA_STORE_SQLITE_IMPL_H
#define OTA_STORE_SQLITE_IMPL_H

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

typedef struct {
    ota_store base; /* first: the public handle */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *insert[OTA_EV_TYPE_COUNT + 1];    /* by type; [0] unused */
    sqlite3_stmt *count_all[OTA_EV_TYPE_COUNT + 1]; /* by type; [0] unused */
    sqlite3_stmt *count_vin[OTA_EV_TYPE_COUNT + 1]; /* by type; [0] unused */
    sqlite3_stmt *history[OTA_EV_TYPE_COUNT + 1];   /* by type; [0] every type */
    sqlite3_stmt *latest;                           /* newest upgrade_status */
    sqlite_catalog cat;
} sqlite_store;

/* ---- helpers of sqlite.c ---- */

/* Formats an error into err (nothing when err is NULL). */
void ota_store_sq_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "SQLite PATH: what: SQLite's last error message". */
void ota_store_sq_db_err(const sqlite_store *st, char *err, size_t errlen, const char *what);

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

/* ---- the catalog (sqlite_catalog.c) ---- */

/* Creates the catalog tables (inside the schema transaction of open). */
int ota_store_sq_catalog_schema(sqlite_store *st, char *err, size_t errlen);
int ota_store_sq_catalog_prepare(sqlite_store *st, char *err, size_t errlen);
void ota_store_sq_catalog_finalize(sqlite_store *st);

int ota_store_sq_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen);
int ota_store_sq_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx);
int ota_store_sq_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx);
int ota_store_sq_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx);

#endif
