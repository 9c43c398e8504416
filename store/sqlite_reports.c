/*
 * sqlite_reports.c — the refused reports in SQLite (ota_quarantine, keyed by the id the
 * writer derives from the spool position, so a batch replayed after a crash stores each
 * one once), written inside the transaction of the batch's events (sqlite.c). The replay
 * guard's rows are ota_vehicle_state's (sqlite_state.c).
 */
#include "sqlite_impl.h"

#include <limits.h>
#include <string.h>

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS " OTA_STORE_QUARANTINE_TABLE " (id INTEGER PRIMARY KEY, "
    "vin TEXT NOT NULL, received_at INTEGER NOT NULL, code TEXT NOT NULL, "
    "message TEXT NOT NULL, seq INTEGER, epoch TEXT, size INTEGER NOT NULL, "
    "payload BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ota_quarantine_by_vin ON " OTA_STORE_QUARANTINE_TABLE
    " (vin, id)";

int ota_store_sq_reports_schema(sqlite_store *st, char *err, size_t errlen)
{
    if (sqlite3_exec(st->db, SCHEMA, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    ota_store_sq_db_err(st, err, errlen, "creating the quarantine table");
    return -1;
}

static int prepare(sqlite_store *st, const char *sql, sqlite3_stmt **out, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) == SQLITE_OK)
        return 0;
    ota_store_sq_db_err(st, err, errlen, sql);
    return -1;
}

int ota_store_sq_reports_prepare(sqlite_store *st, char *err, size_t errlen)
{
    return prepare(st,
                           "INSERT INTO " OTA_STORE_QUARANTINE_TABLE
                           " (id, vin, received_at, code, message, seq, epoch, size, payload) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                           &st->quarantine_put, err, errlen) != 0 ||
                   prepare(st,
                           "SELECT id, vin, received_at, code, message, seq, epoch, size, "
                           "payload FROM " OTA_STORE_QUARANTINE_TABLE
                           " WHERE (?1 IS NULL OR vin = ?1) AND (?2 IS NULL OR code = ?2) "
                           "AND id < ?3 ORDER BY id DESC LIMIT ?4",
                           &st->quarantine_list, err, errlen) != 0
               ? -1
               : 0;
}

void ota_store_sq_reports_finalize(sqlite_store *st)
{
    sqlite3_finalize(st->quarantine_put);
    sqlite3_finalize(st->quarantine_list);
}

static int put_quarantine(sqlite_store *st, const ota_quarantine_rec *q, size_t i, char *err,
                          size_t errlen)
{
    sqlite3_stmt *stmt = st->quarantine_put;
    int rc = q->vin == NULL || q->code == NULL ? SQLITE_MISUSE
                                               : sqlite3_bind_int64(stmt, 1, q->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 2, q->vin, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 3, q->received_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 4, q->code, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 5, q->msg != NULL ? q->msg : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = q->seq >= 0 ? sqlite3_bind_int64(stmt, 6, q->seq) : sqlite3_bind_null(stmt, 6);
    if (rc == SQLITE_OK)
        rc = ota_store_sq_bind_text_or_null(stmt, 7, q->epoch);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 8, (sqlite3_int64)q->size);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(stmt, 9, q->payload_len ? (const void *)q->payload : "",
                               (int)q->payload_len, SQLITE_STATIC);
    return ota_store_sq_step_write(st, stmt, rc, "refused report", i, OTA_STORE_QUARANTINE_TABLE,
                                   err, errlen);
}

int ota_store_sq_reports_write(sqlite_store *st, const ota_store_batch *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->n_quarantine; i++)
        if (put_quarantine(st, &b->quarantine[i], i, err, errlen) != 0)
            return -1;
    return 0;
}

typedef struct {
    ota_store_quarantine_fn fn;
    void *ctx;
    int n;
} list_ctx;

static int quarantine_row(sqlite3_stmt *stmt, const ota_store_sq_sink *to)
{
    list_ctx *l = to->ctx;
    ota_quarantine_rec q = {
        .id = sqlite3_column_int64(stmt, 0),
        .vin = (const char *)sqlite3_column_text(stmt, 1),
        .received_ms = sqlite3_column_int64(stmt, 2),
        .code = (const char *)sqlite3_column_text(stmt, 3),
        .msg = (const char *)sqlite3_column_text(stmt, 4),
        .seq = sqlite3_column_type(stmt, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(stmt, 5),
        .epoch = (const char *)sqlite3_column_text(stmt, 6),
        .size = (uint64_t)sqlite3_column_int64(stmt, 7),
        .payload = sqlite3_column_blob(stmt, 8),
        .payload_len = (size_t)sqlite3_column_bytes(stmt, 8),
    };
    l->n++;
    return l->fn(l->ctx, &q);
}

int ota_store_sq_list_quarantine(ota_store *s, const char *vin, const char *code,
                                 int64_t before_id, size_t limit, ota_store_quarantine_fn fn,
                                 void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *stmt = st->quarantine_list;
    if (fn == NULL || sqlite3_stmt_busy(stmt))
        return -1;
    list_ctx l = {fn, ctx, 0};
    ota_store_sq_sink to = {.ctx = &l};
    if (ota_store_sq_bind_text_or_null(stmt, 1, vin) != SQLITE_OK ||
        ota_store_sq_bind_text_or_null(stmt, 2, code) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, before_id > 0 ? before_id : INT64_MAX) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, limit > INT_MAX ? INT_MAX : (sqlite3_int64)limit) !=
            SQLITE_OK) {
        sqlite3_clear_bindings(stmt);
        return -1;
    }
    return ota_store_sq_walk(stmt, quarantine_row, &to) == 0 ? l.n : -1;
}
