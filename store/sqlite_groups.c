/*
 * sqlite_groups.c — vehicle groups in the SQLite backend (ota_store.h "vehicle groups"):
 * ota_vehicle_group (name, doc) and ota_vehicle_group_member (name, vin).
 *
 * Group changes are rare operator commands, so the statements are prepared per call
 * rather than kept open, and the tables are created on first use (CREATE TABLE IF NOT
 * EXISTS before each call), which also gives older databases the tables without a
 * schema step in sqlite.c.
 */
#include "sqlite_impl.h"

#include <string.h>

#define GROUP_TABLE "ota_vehicle_group"
#define MEMBER_TABLE "ota_vehicle_group_member"

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS " GROUP_TABLE " (name TEXT PRIMARY KEY, doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS " MEMBER_TABLE " (name TEXT NOT NULL, vin TEXT NOT NULL, "
    "PRIMARY KEY (name, vin)) WITHOUT ROWID;";

static int ensure_schema(sqlite_store *st, char *err, size_t errlen)
{
    if (sqlite3_exec(st->db, SCHEMA, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    ota_store_sq_db_err(st, err, errlen, "creating the group tables");
    return -1;
}

/* Prepares sql, binds name to ?1 (and vin to ?2 when not NULL), runs it to the end. */
static int run(sqlite_store *st, const char *sql, const char *name, const char *text2,
               const char *what, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        ota_store_sq_db_err(st, err, errlen, what);
        return -1;
    }
    int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && text2 != NULL)
        rc = sqlite3_bind_text(stmt, 2, text2, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE)
        ota_store_sq_db_err(st, err, errlen, what);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int put_members(sqlite_store *st, const char *name, const char *const *vins, size_t n,
                       char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO " MEMBER_TABLE " (name, vin) VALUES (?1, ?2) "
                           "ON CONFLICT (name, vin) DO NOTHING",
                           -1, &stmt, NULL) != SQLITE_OK) {
        ota_store_sq_db_err(st, err, errlen, "preparing the group member insert");
        return -1;
    }
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
        rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(stmt, 2, vins[i], -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
    }
    if (rc != SQLITE_DONE)
        ota_store_sq_db_err(st, err, errlen, "inserting group members into " MEMBER_TABLE);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int delete_rows(sqlite_store *st, const char *name, char *err, size_t errlen)
{
    return run(st, "DELETE FROM " MEMBER_TABLE " WHERE name = ?1", name, NULL,
               "deleting group members", err, errlen) ||
                   run(st, "DELETE FROM " GROUP_TABLE " WHERE name = ?1", name, NULL,
                       "deleting the group", err, errlen)
               ? -1
               : 0;
}

/* The change log entry of a group put (json) or deleted (NULL): other brokers follow it. */
static int log_group(sqlite_store *st, const char *name, const char *json, char *err,
                     size_t errlen)
{
    ota_store_change e = {
        .what = OTA_CHANGE_GROUP, .id = name, .json = json, .deleted = json == NULL};
    return ota_store_sq_change_append_one(st, &e, err, errlen);
}

int ota_store_sq_put_group(ota_store *s, const char *name, const char *json,
                           const char *const *vins, size_t n_vins, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (ensure_schema(st, err, errlen) != 0 ||
        ota_store_sq_step(st, st->begin, "BEGIN", err, errlen) != 0)
        return -1;
    int rc = delete_rows(st, name, err, errlen) ||
             run(st, "INSERT INTO " GROUP_TABLE " (name, doc) VALUES (?1, ?2)", name, json,
                 "inserting the group into " GROUP_TABLE, err, errlen) ||
             put_members(st, name, vins, n_vins, err, errlen) ||
             log_group(st, name, json, err, errlen);
    return ota_store_sq_finish(st, rc, err, errlen);
}

int ota_store_sq_delete_group(ota_store *s, const char *name, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (ensure_schema(st, err, errlen) != 0 ||
        ota_store_sq_step(st, st->begin, "BEGIN", err, errlen) != 0)
        return -1;
    int rc = delete_rows(st, name, err, errlen) || log_group(st, name, NULL, err, errlen);
    return ota_store_sq_finish(st, rc, err, errlen);
}

/* Walks the rows of sql, two text columns each, through fn (non-zero stops: -1). */
static int walk(sqlite_store *st, const char *sql,
                int (*fn)(void *ctx, const char *a, const char *b), void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(stmt, 0);
        const char *b = (const char *)sqlite3_column_text(stmt, 1);
        stop = fn(ctx, a ? a : "", b ? b : "");
    }
    sqlite3_finalize(stmt);
    return !stop && rc == SQLITE_DONE ? 0 : -1;
}

int ota_store_sq_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                             void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    if (ensure_schema(st, NULL, 0) != 0)
        return -1;
    if (walk(st, "SELECT name, doc FROM " GROUP_TABLE " ORDER BY name", fn, ctx) != 0)
        return -1;
    return walk(st, "SELECT name, vin FROM " MEMBER_TABLE " ORDER BY name, vin", member, ctx);
}
