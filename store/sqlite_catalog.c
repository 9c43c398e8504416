/*
 * sqlite_catalog.c — the catalog (SPEC §5) in the SQLite backend: vehicles as rows,
 * models, packages, strategies, strategy bindings, files, tasks and settings as JSON
 * documents under a key, and list memberships as (list, vin) rows. ota_store_apply lives
 * here; the task engine's parts of a change (executions, shadows, notices) are checked
 * and written by sqlite_tasks.c, inside the same transaction.
 *
 * Design
 * - Vehicle columns come from one descriptor table (OTA_STORE_VCOLS: column, declaration, kind,
 *   offset in ota_vehicle_rec); the CREATE, the upsert and the SELECT are generated from
 *   it, and one binder and one reader walk it. Every document kind has a table of the same
 *   (key, doc) shape (DOC_TABLES, by ota_doc_kind), so each of its statements comes from
 *   one builder. Lists are kept by their wire name (ota_list_name).
 * - All statements are prepared once at open. ota_store_apply checks the change first
 *   (nothing is started when it is malformed), then runs one BEGIN IMMEDIATE ... COMMIT:
 *   vehicles upserted, vehicles deleted, documents upserted or deleted, list members
 *   added, list members removed, then executions upserted, shadows upserted and notices
 *   added (sqlite_tasks.c), in that order. Any failure rolls all of it back.
 * - Loaders step one prepared SELECT in primary-key order (every table is WITHOUT ROWID,
 *   so that is the table's own order) and hand out pointers into SQLite's row buffers:
 *   no allocation per row, which keeps a start-up load of a million vehicles short.
 */
#include "sqlite_impl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- SQL generated from the descriptors (builders for ota_store_sq_build) ---- */

static void append_vcols(sqlite3_str *q)
{
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++)
        sqlite3_str_appendf(q, "%s\"%w\"", i > 0 ? ", " : "", OTA_STORE_VCOLS[i].name);
}

static void sql_vehicle_create(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "CREATE TABLE IF NOT EXISTS " OTA_STORE_VEHICLE_TABLE " (");
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++)
        sqlite3_str_appendf(q, "%s\"%w\" %s", i > 0 ? ", " : "", OTA_STORE_VCOLS[i].name,
                            OTA_STORE_VCOLS[i].decl);
    sqlite3_str_appendall(q, ") WITHOUT ROWID");
}

static void sql_vehicle_put(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "INSERT INTO " OTA_STORE_VEHICLE_TABLE " (");
    append_vcols(q);
    sqlite3_str_appendall(q, ") VALUES (");
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++)
        sqlite3_str_appendall(q, i > 0 ? ", ?" : "?");
    sqlite3_str_appendf(q, ") ON CONFLICT (\"%w\") DO UPDATE SET ", OTA_STORE_VCOLS[0].name);
    for (int i = 1; i < OTA_STORE_N_VCOLS; i++)
        sqlite3_str_appendf(q, "%s\"%w\" = excluded.\"%w\"", i > 1 ? ", " : "",
                            OTA_STORE_VCOLS[i].name, OTA_STORE_VCOLS[i].name);
}

static void sql_vehicle_delete(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "DELETE FROM " OTA_STORE_VEHICLE_TABLE " WHERE vin = ?1");
}

static void sql_vehicle_load(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "SELECT ");
    append_vcols(q);
    sqlite3_str_appendall(q, " FROM " OTA_STORE_VEHICLE_TABLE " ORDER BY vin");
}

static void sql_doc_create(sqlite3_str *q, int kind)
{
    sqlite3_str_appendf(q,
                        "CREATE TABLE IF NOT EXISTS %s (\"key\" TEXT PRIMARY KEY, doc TEXT NOT "
                        "NULL) WITHOUT ROWID",
                        ota_store_doc_table(kind));
}

static void sql_doc_put(sqlite3_str *q, int kind)
{
    sqlite3_str_appendf(q,
                        "INSERT INTO %s (\"key\", doc) VALUES (?1, ?2) ON CONFLICT (\"key\") DO "
                        "UPDATE SET doc = excluded.doc",
                        ota_store_doc_table(kind));
}

static void sql_doc_delete(sqlite3_str *q, int kind)
{
    sqlite3_str_appendf(q, "DELETE FROM %s WHERE \"key\" = ?1", ota_store_doc_table(kind));
}

static void sql_doc_load(sqlite3_str *q, int kind)
{
    sqlite3_str_appendf(q, "SELECT \"key\", doc FROM %s ORDER BY \"key\"",
                        ota_store_doc_table(kind));
}

static void sql_list_create(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "CREATE TABLE IF NOT EXISTS " OTA_STORE_LIST_TABLE
                             " (list TEXT NOT NULL, "
                             "vin TEXT NOT NULL, PRIMARY KEY (list, vin)) WITHOUT ROWID");
}

static void sql_list_add(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "INSERT INTO " OTA_STORE_LIST_TABLE " (list, vin) VALUES (?1, ?2) "
                             "ON CONFLICT (list, vin) DO NOTHING");
}

static void sql_list_remove(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "DELETE FROM " OTA_STORE_LIST_TABLE " WHERE list = ?1 AND vin = ?2");
}

static void sql_list_load(sqlite3_str *q, int arg)
{
    (void)arg;
    sqlite3_str_appendall(q, "SELECT list, vin FROM " OTA_STORE_LIST_TABLE " ORDER BY list, vin");
}

/* ---- schema and statements ---- */

/* Adds the nullable vehicle columns a store made before them lacks (rxswin, issue 17). */
static int add_vehicle_columns(sqlite_store *st, char *err, size_t errlen)
{
    for (int i = 1; i < OTA_STORE_N_VCOLS; i++) {
        if (strstr(OTA_STORE_VCOLS[i].decl, "NOT NULL") == NULL &&
            ota_store_sq_add_column(st, OTA_STORE_VEHICLE_TABLE, OTA_STORE_VCOLS[i].name,
                                    OTA_STORE_VCOLS[i].decl, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int ota_store_sq_catalog_schema(sqlite_store *st, char *err, size_t errlen)
{
    if (ota_store_sq_build(st, sql_vehicle_create, 0, NULL, err, errlen) != 0 ||
        add_vehicle_columns(st, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_list_create, 0, NULL, err, errlen) != 0)
        return -1;
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++)
        if (ota_store_sq_build(st, sql_doc_create, k, NULL, err, errlen) != 0)
            return -1;
    return ota_store_sq_tasks_schema(st, err, errlen);
}

int ota_store_sq_catalog_prepare(sqlite_store *st, char *err, size_t errlen)
{
    sqlite_catalog *c = &st->cat;
    if (ota_store_sq_build(st, sql_vehicle_put, 0, &c->vehicle_put, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_vehicle_delete, 0, &c->vehicle_delete, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_vehicle_load, 0, &c->vehicle_load, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_list_add, 0, &c->list_add, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_list_remove, 0, &c->list_remove, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_list_load, 0, &c->list_load, err, errlen) != 0)
        return -1;
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++) {
        if (ota_store_sq_build(st, sql_doc_put, k, &c->doc_put[k], err, errlen) != 0 ||
            ota_store_sq_build(st, sql_doc_delete, k, &c->doc_delete[k], err, errlen) != 0 ||
            ota_store_sq_build(st, sql_doc_load, k, &c->doc_load[k], err, errlen) != 0)
            return -1;
    }
    return ota_store_sq_tasks_prepare(st, err, errlen);
}

void ota_store_sq_catalog_finalize(sqlite_store *st)
{
    sqlite_catalog *c = &st->cat;
    sqlite3_stmt *single[] = {c->vehicle_put, c->vehicle_delete, c->vehicle_load,
                              c->list_add,    c->list_remove,    c->list_load};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        sqlite3_finalize(single[i]);
    for (int k = 0; k <= OTA_DOC_KIND_COUNT; k++) {
        sqlite3_finalize(c->doc_put[k]);
        sqlite3_finalize(c->doc_delete[k]);
        sqlite3_finalize(c->doc_load[k]);
    }
    ota_store_sq_tasks_finalize(st);
}

/* ---- apply: checking the change ---- */

/* What the store refuses before SQLite sees it: 0, or -1 with err set. */
static int check_change(const sqlite_store *st, const ota_catalog_change *c, char *err,
                        size_t errlen)
{
    char problem[192];
    if (ota_store_check_change(c, problem, sizeof problem) == 0)
        return 0;
    ota_errf(err, errlen, "SQLite %s: %s", st->path, problem);
    return -1;
}

/* ---- apply: writing ---- */

int ota_store_sq_bind_text_or_null(sqlite3_stmt *stmt, int col, const char *v)
{
    return v != NULL ? sqlite3_bind_text(stmt, col, v, -1, SQLITE_STATIC)
                     : sqlite3_bind_null(stmt, col);
}

static int bind_vehicle(sqlite3_stmt *stmt, const ota_vehicle_rec *v)
{
    int rc = SQLITE_OK;
    for (int i = 0; i < OTA_STORE_N_VCOLS && rc == SQLITE_OK; i++) {
        const char *p = (const char *)v + OTA_STORE_VCOLS[i].off;
        if (OTA_STORE_VCOLS[i].kind == OTA_VC_TEXT)
            rc = ota_store_sq_bind_text_or_null(stmt, i + 1, *(char *const *)p);
        else if (OTA_STORE_VCOLS[i].kind == OTA_VC_BOOL)
            rc = sqlite3_bind_int(stmt, i + 1, *(const bool *)p ? 1 : 0);
        else if (v->has_public_key)
            rc = sqlite3_bind_blob(stmt, i + 1, p, OTA_PUBKEY_LEN, SQLITE_STATIC);
        else
            rc = sqlite3_bind_null(stmt, i + 1);
    }
    return rc;
}

int ota_store_sq_step_write(sqlite_store *st, sqlite3_stmt *stmt, int rc, const char *part,
                            size_t i, const char *table, char *err, size_t errlen)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        char what[128];
        snprintf(what, sizeof what, "%s %zu of the change (%s)", part, i, table);
        ota_store_sq_db_err(st, err, errlen, what);
    }
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int put_vehicles(sqlite_store *st, const ota_catalog_change *c, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = st->cat.vehicle_put;
    for (size_t i = 0; i < c->n_put_vehicles; i++) {
        int rc = bind_vehicle(stmt, &c->put_vehicles[i]);
        if (ota_store_sq_step_write(st, stmt, rc, "vehicle", i, OTA_STORE_VEHICLE_TABLE, err,
                                    errlen) != 0)
            return -1;
    }
    return 0;
}

/* Runs stmt for each VIN: bound to ?1, or with a list (not NULL) to ?1 list, ?2 vin. */
static int write_vins(sqlite_store *st, sqlite3_stmt *stmt, const char *list,
                      const char *const *vins, size_t n, const char *part, const char *table,
                      char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int rc = list != NULL ? sqlite3_bind_text(stmt, 1, list, -1, SQLITE_STATIC) : SQLITE_OK;
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(stmt, list != NULL ? 2 : 1, vins[i], -1, SQLITE_STATIC);
        if (ota_store_sq_step_write(st, stmt, rc, part, i, table, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int write_docs(sqlite_store *st, const ota_catalog_change *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_docs; i++) {
        const ota_store_doc *d = &c->docs[i];
        sqlite3_stmt *stmt =
            d->json != NULL ? st->cat.doc_put[d->kind] : st->cat.doc_delete[d->kind];
        int rc = sqlite3_bind_text(stmt, 1, d->key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK && d->json != NULL)
            rc = sqlite3_bind_text(stmt, 2, d->json, -1, SQLITE_STATIC);
        if (ota_store_sq_step_write(st, stmt, rc, "document", i, ota_store_doc_table(d->kind), err,
                                    errlen) != 0)
            return -1;
    }
    return 0;
}

/* Every part of a checked change, inside the open transaction. */
static int write_change(sqlite_store *st, const ota_catalog_change *c, char *err, size_t errlen)
{
    const char *list = ota_list_name(c->list);
    if (put_vehicles(st, c, err, errlen) != 0 ||
        write_vins(st, st->cat.vehicle_delete, NULL, c->delete_vehicles, c->n_delete_vehicles,
                   "deleted vehicle", OTA_STORE_VEHICLE_TABLE, err, errlen) != 0 ||
        write_docs(st, c, err, errlen) != 0)
        return -1;
    if (write_vins(st, st->cat.list_add, list, c->list_add, c->n_list_add, "list addition",
                   OTA_STORE_LIST_TABLE, err, errlen) != 0 ||
        write_vins(st, st->cat.list_remove, list, c->list_remove, c->n_list_remove, "list removal",
                   OTA_STORE_LIST_TABLE, err, errlen) != 0)
        return -1;
    if (ota_store_sq_changes_append(st, c, err, errlen) != 0)
        return -1;
    return ota_store_sq_tasks_write(st, c, err, errlen);
}

int ota_store_sq_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (check_change(st, c, err, errlen) != 0)
        return -1;
    if (ota_store_change_empty(c))
        return 0;
    if (st->shared.bulk) /* inside a snapshot's transaction (sqlite_state.c) */
        return write_change(st, c, err, errlen);
    if (ota_store_sq_step(st, st->begin, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    if (write_change(st, c, err, errlen) != 0 ||
        ota_store_sq_step(st, st->commit, "COMMIT", err, errlen) != 0) {
        ota_store_sq_rollback(st);
        return -1;
    }
    return 0;
}

/* ---- loaders ---- */

typedef ota_store_sq_sink sink;

int ota_store_sq_walk(sqlite3_stmt *stmt, ota_store_sq_row_fn row, const ota_store_sq_sink *to)
{
    /* A callback that loads again through the same statement would clobber this walk. */
    if (sqlite3_stmt_busy(stmt))
        return -1;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && row(stmt, to) == 0)
        ;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Fills v from the current row of vehicle_load; its texts point into the row. */
static void read_vehicle(sqlite3_stmt *stmt, ota_vehicle_rec *v)
{
    for (int i = 0; i < OTA_STORE_N_VCOLS; i++) {
        char *p = (char *)v + OTA_STORE_VCOLS[i].off;
        if (OTA_STORE_VCOLS[i].kind == OTA_VC_TEXT) {
            *(char **)p = (char *)sqlite3_column_text(stmt, i);
        } else if (OTA_STORE_VCOLS[i].kind == OTA_VC_BOOL) {
            *(bool *)p = sqlite3_column_int(stmt, i) != 0;
        } else {
            const void *blob = sqlite3_column_blob(stmt, i);
            v->has_public_key = blob != NULL && sqlite3_column_bytes(stmt, i) == OTA_PUBKEY_LEN;
            if (v->has_public_key)
                memcpy(p, blob, OTA_PUBKEY_LEN);
            else
                memset(p, 0, OTA_PUBKEY_LEN);
        }
    }
}

static int vehicle_row(sqlite3_stmt *stmt, const sink *to)
{
    ota_vehicle_rec v;
    read_vehicle(stmt, &v);
    return to->fn.vehicle(to->ctx, &v);
}

static int doc_row(sqlite3_stmt *stmt, const sink *to)
{
    return to->fn.doc(to->ctx, (const char *)sqlite3_column_text(stmt, 0),
                      (const char *)sqlite3_column_text(stmt, 1));
}

static int list_row(sqlite3_stmt *stmt, const sink *to)
{
    int list = ota_list_from_name((const char *)sqlite3_column_text(stmt, 0));
    if (list < 0)
        return -1; /* a list this build does not know: refuse rather than drop it */
    return to->fn.list(to->ctx, (ota_list_kind)list, (const char *)sqlite3_column_text(stmt, 1));
}

int ota_store_sq_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sink to = {.fn.vehicle = fn, .ctx = ctx};
    return fn != NULL ? ota_store_sq_walk(st->cat.vehicle_load, vehicle_row, &to) : -1;
}

int ota_store_sq_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sink to = {.fn.doc = fn, .ctx = ctx};
    if (fn == NULL || ota_store_doc_table(kind) == NULL)
        return -1;
    return ota_store_sq_walk(st->cat.doc_load[kind], doc_row, &to);
}

int ota_store_sq_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sink to = {.fn.list = fn, .ctx = ctx};
    return fn != NULL ? ota_store_sq_walk(st->cat.list_load, list_row, &to) : -1;
}
