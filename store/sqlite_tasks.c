/*
 * sqlite_tasks.c — the task engine's state in the SQLite backend: one execution per
 * (task, VIN), one device shadow per VIN, and the notices sent (SPEC §5-6, seed 000).
 *
 * Design
 * - Each of the three tables is described once (OTA_STORE_TTABLES in schema.h, shared with the
 * MongoDB backend: name, columns with their declaration, kind and offset in the record, key,
 * secondary index, what a repeated key does); the CREATE, the write, the SELECTs, the checks of a
 * change, the binder and the reader are all generated from / walk those descriptors. ota_task_vin
 * (task, vin, state, code, resends, msg_id, notified_at, updated_at, wave) PRIMARY KEY (task, vin)
 * WITHOUT ROWID, index (vin, task): a vehicle's executions; upsert by key. The state is kept by
 * name (ota_exec_state_name). A nullable column a table made before it lacks (wave) is added
 * at open. A task's executions are counted by state and wave with GROUP BY over the primary
 * key's range of the task (issue 15; the count job runs only on a store brokers share).
 * ota_vehicle_shadow (vin, version, reported, desired, updated_at) vin PRIMARY KEY WITHOUT ROWID;
 * upsert by key. ota_vehicle_download_notice (task, vin, package, version, msg_id, sent_at) PRIMARY
 * KEY (msg_id) on a rowid table (rows stay in the order they were sent), index (task, sent_at);
 * insert-only: a msg_id stored already is skipped, so a replayed notice is not an error.
 * ota_vehicle_package_description (vin, counter, task, req, package, files, cose, issued_at,
 * expires_at) PRIMARY KEY (vin, counter) WITHOUT ROWID; insert-only like notices. cose is a BLOB
 * (OTA_TC_BLOB: a pointer followed by its size_t length). Absent optional values are NULL; a
 * negative time (-1: not yet) is stored as NULL.
 * - These are parts of ota_store_apply's change (sqlite_catalog.c): checked with the rest
 *   before the transaction starts, written after the catalog parts inside it. Upserts
 *   are written in key order (a sorted copy of the item numbers; the last of a key still
 *   wins), which keeps B-tree writes local: a task of 100,000 VINs stores 2.5x faster.
 * - Loaders walk one prepared SELECT: executions in key order (task, VIN), shadows by VIN,
 *   notices by sent time (ties in the order they were stored), handing out pointers into
 *   SQLite's row buffers (no allocation per row).
 * - Notice claims (ota_vehicle_notice_claim, msg_id PRIMARY KEY): per claim an INSERT ... ON
 *   CONFLICT DO NOTHING and a read of the owner; a batch (the engine's claim job) is one
 *   transaction, so several brokers on one database file see each claim whole.
 */
#include "sqlite_impl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL generated from the descriptors (builders for ota_store_sq_build) ---- */

/* The columns having all of flags (0: every column), comma-separated. */
static void append_cols(sqlite3_str *q, const ota_store_ttable *d, unsigned flags)
{
    for (int i = 0, n = 0; i < d->n_cols; i++)
        if ((d->cols[i].flags & flags) == flags)
            sqlite3_str_appendf(q, "%s\"%w\"", n++ > 0 ? ", " : "", d->cols[i].name);
}

static void sql_create(sqlite3_str *q, int t)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    sqlite3_str_appendf(q, "CREATE TABLE IF NOT EXISTS %s (", d->table);
    for (int i = 0; i < d->n_cols; i++) {
        const ota_store_tcol *c = &d->cols[i];
        bool text = c->kind == OTA_TC_TEXT || c->kind == OTA_TC_STATE;
        const char *type = c->kind == OTA_TC_BLOB ? "BLOB" : text ? "TEXT" : "INTEGER";
        sqlite3_str_appendf(q, "%s\"%w\" %s%s", i > 0 ? ", " : "", c->name, type,
                            c->flags & OTA_TC_REQ ? " NOT NULL" : "");
    }
    sqlite3_str_appendall(q, ", PRIMARY KEY (");
    append_cols(q, d, OTA_TC_KEY);
    sqlite3_str_appendall(q, d->without_rowid ? ")) WITHOUT ROWID" : "))");
}

static void sql_index(sqlite3_str *q, int t)
{
    sqlite3_str_appendf(q, "CREATE INDEX IF NOT EXISTS %s_by_%.*s ON %s (%s)",
                        OTA_STORE_TTABLES[t].table, (int)strcspn(OTA_STORE_TTABLES[t].index, ","),
                        OTA_STORE_TTABLES[t].index, OTA_STORE_TTABLES[t].table,
                        OTA_STORE_TTABLES[t].index);
}

static void sql_put(sqlite3_str *q, int t)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    sqlite3_str_appendf(q, "INSERT INTO %s (", d->table);
    append_cols(q, d, 0);
    sqlite3_str_appendall(q, ") VALUES (");
    for (int i = 0; i < d->n_cols; i++)
        sqlite3_str_appendall(q, i > 0 ? ", ?" : "?");
    sqlite3_str_appendall(q, ") ON CONFLICT (");
    append_cols(q, d, OTA_TC_KEY);
    sqlite3_str_appendall(q, d->upsert ? ") DO UPDATE SET " : ") DO NOTHING");
    for (int i = 0, n = 0; d->upsert && i < d->n_cols; i++)
        if (!(d->cols[i].flags & OTA_TC_KEY))
            sqlite3_str_appendf(q, "%s\"%w\" = excluded.\"%w\"", n++ > 0 ? ", " : "",
                                d->cols[i].name, d->cols[i].name);
}

static void sql_load(sqlite3_str *q, int t)
{
    sqlite3_str_appendall(q, "SELECT ");
    append_cols(q, &OTA_STORE_TTABLES[t], 0);
    sqlite3_str_appendf(q, " FROM %s ORDER BY %s", OTA_STORE_TTABLES[t].table,
                        OTA_STORE_TTABLES[t].order);
}

/* The loader of the rows whose first column (notices: task; descriptions: vin) is ?1. */
static void sql_load_first(sqlite3_str *q, int t)
{
    sqlite3_str_appendall(q, "SELECT ");
    append_cols(q, &OTA_STORE_TTABLES[t], 0);
    sqlite3_str_appendf(q, " FROM %s WHERE \"%w\" = ?1 ORDER BY %s", OTA_STORE_TTABLES[t].table,
                        OTA_STORE_TTABLES[t].cols[0].name, OTA_STORE_TTABLES[t].order);
}

/* Adds the nullable columns of table t a store made before them lacks (executions' wave). */
static int add_columns(sqlite_store *st, int t, char *err, size_t errlen)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    for (int i = 0; i < d->n_cols; i++) {
        if (!(d->cols[i].flags & OTA_TC_REQ) && d->cols[i].kind != OTA_TC_BLOB &&
            ota_store_sq_add_column(st, d->table, d->cols[i].name,
                                    d->cols[i].kind == OTA_TC_TEXT ? "TEXT" : "INTEGER", err,
                                    errlen) != 0)
            return -1;
    }
    return 0;
}

static void sql_claim_create(sqlite3_str *q, int unused)
{
    (void)unused;
    sqlite3_str_appendall(q, "CREATE TABLE IF NOT EXISTS " OTA_STORE_CLAIM_TABLE
                             " (msg_id TEXT PRIMARY KEY, task TEXT NOT NULL, vin TEXT NOT NULL, "
                             "owner TEXT NOT NULL, claimed_at INTEGER NOT NULL) WITHOUT ROWID");
}

/* ---- schema and statements ---- */

int ota_store_sq_tasks_schema(sqlite_store *st, char *err, size_t errlen)
{
    for (int t = 0; t < OTA_T_COUNT; t++) {
        if (ota_store_sq_build(st, sql_create, t, NULL, err, errlen) != 0 ||
            add_columns(st, t, err, errlen) != 0)
            return -1;
        if (OTA_STORE_TTABLES[t].index != NULL &&
            ota_store_sq_build(st, sql_index, t, NULL, err, errlen) != 0)
            return -1;
    }
    return ota_store_sq_build(st, sql_claim_create, 0, NULL, err, errlen);
}

/* The write statement of each table, in the handle. */
static sqlite3_stmt **put_stmt(sqlite_store *st, int t)
{
    sqlite_tasks *k = &st->tasks;
    sqlite3_stmt **put[OTA_T_COUNT] = {&k->exec_put, &k->shadow_put, &k->notice_add, &k->desc_add};
    return put[t];
}

int ota_store_sq_tasks_prepare(sqlite_store *st, char *err, size_t errlen)
{
    sqlite_tasks *k = &st->tasks;
    for (int t = 0; t < OTA_T_COUNT; t++)
        if (ota_store_sq_build(st, sql_put, t, put_stmt(st, t), err, errlen) != 0)
            return -1;
    if (ota_store_sq_build(st, sql_load, OTA_T_EXEC, &k->exec_load, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_load, OTA_T_SHADOW, &k->shadow_load, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_load, OTA_T_NOTICE, &k->notice_load_all, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_load, OTA_T_DESC, &k->desc_load_all, err, errlen) != 0 ||
        ota_store_sq_build(st, sql_load_first, OTA_T_DESC, &k->desc_load_vin, err, errlen) != 0)
        return -1;
    return ota_store_sq_build(st, sql_load_first, OTA_T_NOTICE, &k->notice_load_task, err, errlen);
}

void ota_store_sq_tasks_finalize(sqlite_store *st)
{
    sqlite_tasks *k = &st->tasks;
    sqlite3_stmt *all[] = {
        k->exec_put,         k->exec_load,       k->shadow_put, k->shadow_load,   k->notice_add,
        k->notice_load_task, k->notice_load_all, k->desc_add,   k->desc_load_vin, k->desc_load_all};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
}

/* ---- apply: writing ---- */

static int bind_col(sqlite3_stmt *stmt, int col, const ota_store_tcol *c, const char *rec)
{
    const char *p = rec + c->off;
    switch (c->kind) {
    case OTA_TC_TEXT:
        return ota_store_sq_bind_text_or_null(stmt, col, *(const char *const *)p);
    case OTA_TC_STATE:
        return sqlite3_bind_text(stmt, col, ota_exec_state_name(*(const ota_exec_state *)p), -1,
                                 SQLITE_STATIC);
    case OTA_TC_U32:
        return sqlite3_bind_int64(stmt, col, *(const uint32_t *)p);
    case OTA_TC_U64: {
        uint64_t v = *(const uint64_t *)p; /* at most INT64_MAX: checked */
        return sqlite3_bind_int64(stmt, col, (sqlite3_int64)v);
    }
    case OTA_TC_I64:
        return sqlite3_bind_int64(stmt, col, *(const int64_t *)p);
    case OTA_TC_BLOB:
        return sqlite3_bind_blob64(stmt, col, *(const void *const *)p,
                                   *(const size_t *)(p + sizeof(void *)), SQLITE_STATIC);
    default:
        return *(const int64_t *)p >= 0 ? sqlite3_bind_int64(stmt, col, *(const int64_t *)p)
                                        : sqlite3_bind_null(stmt, col);
    }
}

/* Orders item numbers of a part by the records' key (texts), then by number. */
typedef struct {
    const ota_store_ttable *d;
    ota_store_part p;
} key_order;

static int cmp_key(const void *a, const void *b, void *arg)
{
    const key_order *o = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const char *ri = (const char *)o->p.recs + i * o->p.size;
    const char *rj = (const char *)o->p.recs + j * o->p.size;
    for (int c = 0; c < o->d->n_cols; c++) {
        size_t off = o->d->cols[c].off;
        int r = o->d->cols[c].flags & OTA_TC_KEY
                    ? strcmp(*(const char *const *)(ri + off), *(const char *const *)(rj + off))
                    : 0;
        if (r != 0)
            return r;
    }
    return (i > j) - (i < j);
}

/* The order to write an upsert part in: by key, so that the B-trees are written in
 * order (100,000 shuffled executions: 0.25 s instead of 0.6 s); items of one key keep
 * their order, so the last still wins. NULL (and *oom set) when out of memory. */
static size_t *sorted_items(const ota_store_ttable *d, ota_store_part p, bool *oom)
{
    size_t *order = malloc(p.n * sizeof *order);
    *oom = order == NULL;
    if (order == NULL)
        return NULL;
    for (size_t i = 0; i < p.n; i++)
        order[i] = i;
    key_order o = {d, p};
    qsort_r(order, p.n, sizeof *order, cmp_key, &o);
    return order;
}

static int write_item(sqlite_store *st, int t, ota_store_part p, size_t i, char *err, size_t errlen)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    sqlite3_stmt *stmt = *put_stmt(st, t);
    const char *rec = (const char *)p.recs + i * p.size;
    int rc = SQLITE_OK;
    for (int j = 0; j < d->n_cols && rc == SQLITE_OK; j++)
        rc = bind_col(stmt, j + 1, &d->cols[j], rec);
    return ota_store_sq_step_write(st, stmt, rc, d->part, i, d->table, err, errlen);
}

/* Upserts go in key order; notices and descriptions in the change's order. */
static int write_part(sqlite_store *st, int t, ota_store_part p, char *err, size_t errlen)
{
    bool oom = false;
    size_t *order = OTA_STORE_TTABLES[t].upsert && p.n > 1
                        ? sorted_items(&OTA_STORE_TTABLES[t], p, &oom)
                        : NULL;
    if (oom) {
        ota_errf(err, errlen, "SQLite %s: %s: out of memory", st->path, OTA_STORE_TTABLES[t].table);
        return -1;
    }
    int rc = 0;
    for (size_t k = 0; k < p.n && rc == 0; k++)
        rc = write_item(st, t, p, order != NULL ? order[k] : k, err, errlen);
    free(order);
    return rc;
}

int ota_store_sq_tasks_write(sqlite_store *st, const ota_catalog_change *c, char *err,
                             size_t errlen)
{
    for (int t = 0; t < OTA_T_COUNT; t++)
        if (write_part(st, t, ota_store_change_part(c, t), err, errlen) != 0)
            return -1;
    return 0;
}

/* ---- loaders ---- */

/* Columns of the current row of a statement (ota_store_read_rec). */
static bool row_absent(void *stmt, int i, const char *name)
{
    (void)name;
    return sqlite3_column_type(stmt, i) == SQLITE_NULL;
}

static const char *row_text(void *stmt, int i, const char *name)
{
    (void)name;
    return (const char *)sqlite3_column_text(stmt, i);
}

static int64_t row_i64(void *stmt, int i, const char *name)
{
    (void)name;
    return sqlite3_column_int64(stmt, i);
}

static const void *row_blob(void *stmt, int i, const char *name, size_t *len)
{
    (void)name;
    const void *data = sqlite3_column_blob(stmt, i);
    *len = (size_t)sqlite3_column_bytes(stmt, i);
    return data;
}

static const ota_store_col_reader ROW = {row_absent, row_text, row_i64, row_blob};

/* Fills rec from the current row; its texts point into the row. */
static int read_rec(sqlite3_stmt *stmt, const ota_store_ttable *d, char *rec)
{
    return ota_store_read_rec(d, rec, &ROW, stmt);
}

static int exec_row(sqlite3_stmt *stmt, const ota_store_sq_sink *to)
{
    ota_exec_rec e;
    return read_rec(stmt, &OTA_STORE_TTABLES[OTA_T_EXEC], (char *)&e) != 0
               ? -1
               : to->fn.exec(to->ctx, &e);
}

static int shadow_row(sqlite3_stmt *stmt, const ota_store_sq_sink *to)
{
    ota_shadow_rec s;
    read_rec(stmt, &OTA_STORE_TTABLES[OTA_T_SHADOW], (char *)&s);
    return to->fn.shadow(to->ctx, &s);
}

static int notice_row(sqlite3_stmt *stmt, const ota_store_sq_sink *to)
{
    ota_notice_rec n;
    read_rec(stmt, &OTA_STORE_TTABLES[OTA_T_NOTICE], (char *)&n);
    return to->fn.notice(to->ctx, &n);
}

static int description_row(sqlite3_stmt *stmt, const ota_store_sq_sink *to)
{
    ota_description_rec d;
    read_rec(stmt, &OTA_STORE_TTABLES[OTA_T_DESC], (char *)&d);
    return to->fn.description(to->ctx, &d);
}

/* Walks stmt_all, or stmt_one with ?1 bound to first when first is set. */
static int load_by_first(sqlite3_stmt *stmt_one, sqlite3_stmt *stmt_all, const char *first,
                         ota_store_sq_row_fn row, const ota_store_sq_sink *to)
{
    sqlite3_stmt *stmt = first != NULL ? stmt_one : stmt_all;
    if (sqlite3_stmt_busy(stmt))
        return -1;
    if (first != NULL && sqlite3_bind_text(stmt, 1, first, -1, SQLITE_STATIC) != SQLITE_OK)
        return -1;
    return ota_store_sq_walk(stmt, row, to);
}

int ota_store_sq_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_sq_sink to = {.fn.exec = fn, .ctx = ctx};
    return fn != NULL ? ota_store_sq_walk(st->tasks.exec_load, exec_row, &to) : -1;
}

int ota_store_sq_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_sq_sink to = {.fn.shadow = fn, .ctx = ctx};
    return fn != NULL ? ota_store_sq_walk(st->tasks.shadow_load, shadow_row, &to) : -1;
}

int ota_store_sq_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_sq_sink to = {.fn.notice = fn, .ctx = ctx};
    return fn != NULL ? load_by_first(st->tasks.notice_load_task, st->tasks.notice_load_all, task,
                                      notice_row, &to)
                      : -1;
}

int ota_store_sq_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                   void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_sq_sink to = {.fn.description = fn, .ctx = ctx};
    return fn != NULL ? load_by_first(st->tasks.desc_load_vin, st->tasks.desc_load_all, vin,
                                      description_row, &to)
                      : -1;
}

/* ---- the notice claims: per claim a conditional insert, then who owns it; a batch is one
 * transaction (statements prepared per call: one call per engine claim job) */

static int claim_one(sqlite3_stmt *ins, sqlite3_stmt *sel, ota_notice_claim *c, const char *owner,
                     int64_t now_ms)
{
    sqlite3_bind_text(ins, 1, c->msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, c->task, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, c->vin, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 5, now_ms);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE)
        return -1;
    sqlite3_bind_text(sel, 1, c->msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(sel, 2, owner, -1, SQLITE_STATIC);
    rc = sqlite3_step(sel);
    if (rc == SQLITE_ROW)
        c->result = sqlite3_column_int(sel, 0) ? 1 : 0;
    sqlite3_reset(sel);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Runs the claims inside one transaction; 0, or -1 with err set. */
static int claim_all(sqlite_store *st, sqlite3_stmt *ins, sqlite3_stmt *sel,
                     ota_notice_claim *claims, size_t n, const char *owner, int64_t now_ms,
                     char *err, size_t errlen)
{
    if (ota_store_sq_step(st, st->begin, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (claim_one(ins, sel, &claims[i], owner, now_ms) != 0) {
            ota_store_sq_db_err(st, err, errlen, "notice claim");
            rc = -1;
        }
    }
    return ota_store_sq_finish(st, rc, err, errlen);
}

int ota_store_sq_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                               int64_t now_ms, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *ins = NULL, *sel = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO " OTA_STORE_CLAIM_TABLE
                           " (msg_id, task, vin, owner, claimed_at) VALUES (?1, ?2, ?3, ?4, ?5)"
                           " ON CONFLICT (msg_id) DO NOTHING",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db,
                           "SELECT owner = ?2 FROM " OTA_STORE_CLAIM_TABLE " WHERE msg_id = ?1", -1,
                           &sel, NULL) != SQLITE_OK)
        ota_store_sq_db_err(st, err, errlen, "notice claim");
    else
        rc = claim_all(st, ins, sel, claims, n, owner, now_ms, err, errlen);
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    return rc;
}

int ota_store_sq_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                              const char *owner, int64_t now_ms, char *err, size_t errlen)
{
    ota_notice_claim c = {task, vin, msg_id, -1};
    int rc = ota_store_sq_claim_notices(s, &c, 1, owner, now_ms, err, errlen);
    return rc == 0 ? c.result : -1;
}

/* ---- executions on demand (a statement per call: rare) ---- */

/* "SELECT <columns> FROM ota_task_vin WHERE " begun in a new string. */
static sqlite3_str *exec_select(sqlite_store *st)
{
    sqlite3_str *q = sqlite3_str_new(st->db);
    sqlite3_str_appendall(q, "SELECT ");
    append_cols(q, &OTA_STORE_TTABLES[OTA_T_EXEC], 0);
    sqlite3_str_appendf(q, " FROM %s WHERE ", OTA_STORE_TTABLES[OTA_T_EXEC].table);
    return q;
}

/* Runs q (finished here) with ?1 task and ?2 vin (when not NULL), each row to fn. */
static int exec_walk(sqlite_store *st, sqlite3_str *q, const char *task, const char *vin,
                     ota_store_exec_fn fn, void *ctx)
{
    char *sql = sqlite3_str_finish(q);
    sqlite3_stmt *stmt = NULL;
    int rc = sql != NULL && sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) == SQLITE_OK ? 0 : -1;
    sqlite3_free(sql);
    if (rc == 0 &&
        (sqlite3_bind_text(stmt, 1, task, -1, SQLITE_STATIC) != SQLITE_OK ||
         (vin != NULL && sqlite3_bind_text(stmt, 2, vin, -1, SQLITE_STATIC) != SQLITE_OK)))
        rc = -1;
    ota_store_sq_sink to = {.fn.exec = fn, .ctx = ctx};
    if (rc == 0)
        rc = ota_store_sq_walk(stmt, exec_row, &to);
    sqlite3_finalize(stmt);
    return rc;
}

/* One execution (a broker taking over a vehicle another one notified). */
int ota_store_sq_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                           void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_str *q = exec_select(st);
    sqlite3_str_appendall(q, "task = ?1 AND vin = ?2");
    return exec_walk(st, q, task, vin, fn, ctx);
}

/* One task's executions in some states (issue 16: a wave's counts over every broker). */
int ota_store_sq_load_task_execs(ota_store *s, const char *task, unsigned states,
                                 ota_store_exec_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_str *q = exec_select(st);
    sqlite3_str_appendall(q, "task = ?1 AND state IN ('-'");
    for (int i = 0; i < OTA_EXEC_STATE_COUNT; i++)
        if (states & (1u << i))
            sqlite3_str_appendf(q, ", '%s'", ota_exec_state_name((ota_exec_state)i));
    sqlite3_str_appendall(q, ")");
    return exec_walk(st, q, task, NULL, fn, ctx);
}

/* ---- one task's executions counted (issue 15: counts over every broker, no rows read) ---- */

static int count_rows(sqlite_store *st, sqlite3_stmt *stmt, ota_store_count_fn fn, void *ctx,
                      char *err, size_t errlen)
{
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int state = ota_exec_state_from_name((const char *)sqlite3_column_text(stmt, 0));
        int64_t wave =
            sqlite3_column_type(stmt, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(stmt, 1);
        if (state >= 0 &&
            fn(ctx, (ota_exec_state)state, wave, (uint64_t)sqlite3_column_int64(stmt, 2)) != 0) {
            snprintf(err, errlen, "counting executions: stopped");
            return -1;
        }
    }
    if (rc != SQLITE_DONE)
        ota_store_sq_db_err(st, err, errlen, "counting executions");
    return rc == SQLITE_DONE ? 0 : -1;
}

int ota_store_sq_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                                  char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    static const char SQL[] = "SELECT state, wave, count(*) FROM ota_task_vin WHERE task = ?1"
                              " GROUP BY state, wave";
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db, SQL, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 1, task, -1, SQLITE_STATIC) != SQLITE_OK) {
        ota_store_sq_db_err(st, err, errlen, SQL);
        sqlite3_finalize(stmt);
        return -1;
    }
    int rc = count_rows(st, stmt, fn, ctx, err, errlen);
    sqlite3_finalize(stmt);
    return rc;
}
