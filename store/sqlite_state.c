/*
 * sqlite_state.c — what several brokers share, in the SQLite backend (issue 15;
 * ota_store.h "shared state"): the per-VIN state start-up reads, conditional execution
 * transitions, the notice decision as one transaction, and the change log.
 *
 * Design
 * - ota_vehicle_state (vin PRIMARY KEY, epoch, seq, resets, updated_at) WITHOUT ROWID: the
 *   replay guard's row of each VIN (ota_report_seq_rec), written in the batch's
 *   transaction, so start-up reads one row per VIN instead of every event. The batch's
 *   guard rows replace a VIN's row in order (a new epoch or an operator reset may lower
 *   seq); a VIN with inserted events but no guard row in the batch (ota_store_put_events,
 *   a writer batch's earlier chunks) is raised to its highest seq when the row has the
 *   events' epoch and no reset, and made when it has no row.
 * - Older databases, converted in the schema transaction of open: no ota_vehicle_state
 *   (filled from the events: epoch "0", each VIN's highest seq), the first issue 15 layout
 *   (vin, last_seq) (epoch "0"), the replay guard's former ota_vehicle_report_seq (its
 *   rows, then dropped).
 * - A transition is UPDATE ota_task_vin SET ... WHERE task AND vin AND state = from; one
 *   writer at a time (BEGIN IMMEDIATE / the statement's own lock), so of two handles
 *   racing from one state exactly one changes the row. sqlite3_changes() says which.
 * - The notice decision: the transition, the shadow and the notice (ota_store_sq_tasks_write)
 *   in one BEGIN IMMEDIATE transaction.
 * - ota_change_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at, kind, id, op, list, doc):
 *   appended inside ota_store_apply's transaction. Writers are serialised by the database
 *   lock and AUTOINCREMENT never reuses a number, so entries commit in seq order without
 *   gaps (a rolled back change takes its numbers back with it).
 */
#include "sqlite_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a snapshot file reflects (store/snapshot.c): key "change_seq", "saved_at". */
#define SNAPSHOT_TABLE "ota_snapshot"

/* ---- schema ---- */

/* INSERT INTO ota_vehicle_state the highest seq of every VIN over every event table. */
static void sql_state_fill(sqlite3_str *q, int unused)
{
    (void)unused;
    sqlite3_str_appendall(q, "INSERT INTO " OTA_STORE_STATE_TABLE
                             " (vin, epoch, seq, resets, updated_at)"
                             " SELECT vin, '0', MAX(seq), 0, 0 FROM (");
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++)
        sqlite3_str_appendf(q, "%sSELECT vin, MAX(seq) AS seq FROM %s GROUP BY vin",
                            t > 1 ? " UNION ALL " : "", ota_store_ev_kind_get(t)->table);
    sqlite3_str_appendall(q, ") GROUP BY vin");
}

static int exec_sql(sqlite_store *st, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    ota_store_sq_db_err(st, err, errlen, sql);
    return -1;
}

#define OLD_STATE OTA_STORE_STATE_TABLE "_v1"
#define OLD_GUARD "ota_vehicle_report_seq"

/* ota_vehicle_state in its current layout, whatever the database had (see the top). */
static int state_table(sqlite_store *st, char *err, size_t errlen)
{
    int layout = ota_store_sq_table_has(st, OTA_STORE_STATE_TABLE, "epoch");
    int guard = ota_store_sq_table_has(st, OLD_GUARD, "epoch");
    if (layout < 0 || guard < 0) {
        ota_store_sq_db_err(st, err, errlen, "reading " OTA_STORE_STATE_TABLE "'s columns");
        return -1;
    }
    if (layout == 1 &&
        exec_sql(st, "ALTER TABLE " OTA_STORE_STATE_TABLE " RENAME TO " OLD_STATE, err, errlen))
        return -1;
    if (exec_sql(st,
                 "CREATE TABLE IF NOT EXISTS " OTA_STORE_STATE_TABLE
                 " (vin TEXT PRIMARY KEY, epoch TEXT NOT NULL, seq INTEGER NOT NULL,"
                 " resets INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID",
                 err, errlen) != 0 ||
        (layout == 0 && ota_store_sq_build(st, sql_state_fill, 0, NULL, err, errlen) != 0))
        return -1;
    /* sqlite3_exec runs both statements of each text */
    if (layout == 1 && exec_sql(st,
                                "INSERT INTO " OTA_STORE_STATE_TABLE " SELECT vin, '0', last_seq,"
                                " 0, 0 FROM " OLD_STATE "; DROP TABLE " OLD_STATE,
                                err, errlen) != 0)
        return -1;
    if (guard == 2 && exec_sql(st,
                               "INSERT OR REPLACE INTO " OTA_STORE_STATE_TABLE " SELECT vin, epoch,"
                               " seq, resets, updated_at FROM " OLD_GUARD "; DROP TABLE " OLD_GUARD,
                               err, errlen) != 0)
        return -1;
    return 0;
}

int ota_store_sq_state_schema(sqlite_store *st, char *err, size_t errlen)
{
    if (state_table(st, err, errlen) != 0)
        return -1;
    if (exec_sql(st,
                 "CREATE TABLE IF NOT EXISTS " SNAPSHOT_TABLE
                 " (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
                 err, errlen) != 0)
        return -1;
    return exec_sql(st,
                    "CREATE TABLE IF NOT EXISTS " OTA_STORE_CHANGE_TABLE
                    " (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
                    " kind TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL, list TEXT,"
                    " doc TEXT)",
                    err, errlen);
}

#define N_STMTS (sizeof(((sqlite_shared *)0)->q) / sizeof(sqlite3_stmt *))

static sqlite3_stmt **stmts(sqlite_shared *h, size_t *n)
{
    *n = N_STMTS;
    return (sqlite3_stmt **)&h->q;
}

int ota_store_sq_state_prepare(sqlite_store *st, char *err, size_t errlen)
{
    static const char *const SQL[] = {
        /* state_raise */
        "INSERT INTO " OTA_STORE_STATE_TABLE " (vin, epoch, seq, resets, updated_at)"
        " VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (vin) DO UPDATE SET seq = excluded.seq,"
        " updated_at = excluded.updated_at"
        " WHERE epoch = excluded.epoch AND resets = 0 AND seq < excluded.seq",
        /* state_put: never by a row with fewer operator resets (another broker's reset
         * this one had not followed yet) */
        "INSERT INTO " OTA_STORE_STATE_TABLE " (vin, epoch, seq, resets, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (vin) DO UPDATE SET epoch = excluded.epoch,"
        " seq = excluded.seq, resets = excluded.resets, updated_at = excluded.updated_at"
        " WHERE excluded.resets >= resets",
        /* state_load */
        "SELECT vin, epoch, seq, resets, updated_at FROM " OTA_STORE_STATE_TABLE " ORDER BY vin",
        /* exec_transition */
        "UPDATE ota_task_vin SET state = ?3, code = ?4, resends = ?5, msg_id = ?6,"
        " notified_at = ?7, updated_at = ?8, wave = ?10"
        " WHERE task = ?1 AND vin = ?2 AND state = ?9",
        /* exec_get */
        "SELECT state, msg_id FROM ota_task_vin WHERE task = ?1 AND vin = ?2",
        /* change_add */
        "INSERT INTO " OTA_STORE_CHANGE_TABLE " (at, kind, id, op, list, doc)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        /* change_read */
        "SELECT seq, at, kind, id, op, list, doc FROM " OTA_STORE_CHANGE_TABLE
        " WHERE seq > ?1 ORDER BY seq",
        /* change_bounds */
        "SELECT (SELECT MIN(seq) FROM " OTA_STORE_CHANGE_TABLE "),"
        " (SELECT seq FROM sqlite_sequence WHERE name = '" OTA_STORE_CHANGE_TABLE "')",
        /* change_trim */
        "DELETE FROM " OTA_STORE_CHANGE_TABLE " WHERE seq <= ?1",
        /* snap_put */
        "INSERT OR REPLACE INTO " SNAPSHOT_TABLE " (key, value) VALUES (?1, ?2)",
        /* snap_get */
        "SELECT value FROM " SNAPSHOT_TABLE " WHERE key = ?1",
    };
    size_t n;
    sqlite3_stmt **all = stmts(&st->shared, &n);
    _Static_assert(sizeof SQL / sizeof SQL[0] == N_STMTS,
                   "one SQL text per statement of sqlite_shared");
    for (size_t i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(st->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &all[i], NULL) !=
            SQLITE_OK) {
            ota_store_sq_db_err(st, err, errlen, SQL[i]);
            return -1;
        }
    }
    return 0;
}

void ota_store_sq_state_finalize(sqlite_store *st)
{
    size_t n;
    sqlite3_stmt **all = stmts(&st->shared, &n);
    for (size_t i = 0; i < n; i++) {
        sqlite3_finalize(all[i]);
        all[i] = NULL;
    }
}

/* ---- per-VIN state ---- */

static int state_raise(sqlite_store *st, const ota_store_vin_seq *v, int64_t now, char *err,
                       size_t errlen)
{
    sqlite3_stmt *q = st->shared.q.state_raise;
    sqlite3_bind_text(q, 1, v->vin, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, v->epoch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)v->seq);
    sqlite3_bind_int64(q, 4, now);
    return ota_store_sq_step(st, q, OTA_STORE_STATE_TABLE, err, errlen);
}

static int state_put(sqlite_store *st, const ota_report_seq_rec *r, size_t i, char *err,
                     size_t errlen)
{
    sqlite3_stmt *q = st->shared.q.state_put;
    int rc = r->vin == NULL ? SQLITE_MISUSE : sqlite3_bind_text(q, 1, r->vin, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(q, 2, r->epoch != NULL ? r->epoch : "0", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 3, r->seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 4, r->resets);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 5, r->updated_ms);
    return ota_store_sq_step_write(st, q, rc, "guard row", i, OTA_STORE_STATE_TABLE, err, errlen);
}

int ota_store_sq_state_write(sqlite_store *st, const ota_store_batch *b, ota_store_vin_seq *v,
                             size_t n, char *err, size_t errlen)
{
    n = ota_store_state_raises(b, v, n);
    int64_t now = n > 0 ? ota_store_wall_ms() : 0;
    for (size_t i = 0; i < n; i++)
        if (state_raise(st, &v[i], now, err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < b->n_seqs; i++)
        if (state_put(st, &b->seqs[i], i, err, errlen) != 0)
            return -1;
    return 0;
}

static int state_row(sqlite3_stmt *q, const ota_store_sq_sink *to)
{
    ota_report_seq_rec r = {
        .vin = (const char *)sqlite3_column_text(q, 0),
        .epoch = (const char *)sqlite3_column_text(q, 1),
        .seq = sqlite3_column_int64(q, 2),
        .resets = (uint32_t)sqlite3_column_int64(q, 3),
        .updated_ms = sqlite3_column_int64(q, 4),
    };
    return to->fn.seq(to->ctx, &r);
}

int ota_store_sq_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx)
{
    if (fn == NULL)
        return -1;
    ota_store_sq_sink to = {.fn.seq = fn, .ctx = ctx};
    return ota_store_sq_walk(((sqlite_store *)s)->shared.q.state_load, state_row, &to);
}

/* ---- conditional transitions ---- */

/* The transition, inside or outside a transaction: 1 applied, 0 not, -1 error. */
static int transition(sqlite_store *st, ota_exec_state from, const ota_exec_rec *to, char *err,
                      size_t errlen)
{
    sqlite3_stmt *q = st->shared.q.exec_transition;
    sqlite3_bind_text(q, 1, to->task, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, to->vin, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, ota_exec_state_name(to->state), -1, SQLITE_STATIC);
    ota_store_sq_bind_text_or_null(q, 4, to->code);
    sqlite3_bind_int64(q, 5, to->resends);
    ota_store_sq_bind_text_or_null(q, 6, to->msg_id);
    if (to->notified_ms >= 0)
        sqlite3_bind_int64(q, 7, to->notified_ms);
    else
        sqlite3_bind_null(q, 7);
    sqlite3_bind_int64(q, 8, to->updated_ms);
    sqlite3_bind_text(q, 9, ota_exec_state_name(from), -1, SQLITE_STATIC);
    if (to->wave >= 0)
        sqlite3_bind_int64(q, 10, to->wave);
    else
        sqlite3_bind_null(q, 10);
    int rc = ota_store_sq_step(st, q, "execution transition", err, errlen);
    sqlite3_clear_bindings(q);
    return rc != 0 ? -1 : sqlite3_changes(st->db) > 0 ? 1 : 0;
}

int ota_store_sq_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                 char *err, size_t errlen)
{
    return transition((sqlite_store *)s, from, to, err, errlen);
}

/* Whether the execution is already in to's state with to's msg_id (a retried decision). */
static bool already_decided(sqlite_store *st, const ota_exec_rec *to)
{
    sqlite3_stmt *q = st->shared.q.exec_get;
    sqlite3_bind_text(q, 1, to->task, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, to->vin, -1, SQLITE_STATIC);
    bool same = false;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(q, 0);
        const char *msg_id = (const char *)sqlite3_column_text(q, 1);
        same = state != NULL && msg_id != NULL &&
               strcmp(state, ota_exec_state_name(to->state)) == 0 &&
               strcmp(msg_id, to->msg_id) == 0;
    }
    sqlite3_reset(q);
    return same;
}

/* One decision inside the caller's transaction: 1 stored, 0 not in state from (nothing
 * written), -1 error. */
static int decide(sqlite_store *st, ota_exec_state from, const ota_exec_rec *to,
                  const ota_shadow_rec *shadow, const ota_notice_rec *notice, char *err,
                  size_t errlen)
{
    ota_catalog_change c = {
        .put_shadows = shadow, .n_put_shadows = 1, .add_notices = notice, .n_add_notices = 1};
    int rc = transition(st, from, to, err, errlen);
    if (rc == 0 && already_decided(st, to))
        rc = 1;
    if (rc == 1 && ota_store_sq_tasks_write(st, &c, err, errlen) != 0)
        rc = -1;
    return rc;
}

/* Every decision in one transaction: one commit (one fsync) for a whole claim job. The
 * shadows and notices were checked by store.c. */
int ota_store_sq_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                  size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (ota_store_sq_step(st, st->begin, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        d[i].result = decide(st, d[i].from, d[i].to, d[i].shadow, d[i].notice, err, errlen);
        rc = d[i].result < 0 ? -1 : 0;
    }
    return ota_store_sq_finish(st, rc, err, errlen);
}

/* ---- the change log ---- */

static int append_entry(sqlite_store *st, const ota_store_change *e, int64_t at, char *err,
                        size_t errlen)
{
    sqlite3_stmt *q = st->shared.q.change_add;
    sqlite3_bind_int64(q, 1, at);
    sqlite3_bind_text(q, 2, ota_store_change_kind(e), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, e->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, e->deleted ? "delete" : "put", -1, SQLITE_STATIC);
    ota_store_sq_bind_text_or_null(q, 5,
                                   e->what == OTA_CHANGE_LIST ? ota_list_name(e->list) : NULL);
    ota_store_sq_bind_text_or_null(q, 6, e->json);
    int rc = ota_store_sq_step(st, q, OTA_STORE_CHANGE_TABLE, err, errlen);
    sqlite3_clear_bindings(q);
    return rc;
}

int ota_store_sq_change_append_one(sqlite_store *st, const ota_store_change *e, char *err,
                                   size_t errlen)
{
    if (st->shared.bulk)
        return 0; /* a snapshot being filled keeps no log */
    return append_entry(st, e, ota_store_wall_ms(), err, errlen);
}

int ota_store_sq_changes_append(sqlite_store *st, const ota_catalog_change *c, char *err,
                                size_t errlen)
{
    if (st->shared.bulk)
        return 0; /* a snapshot being filled keeps no log */
    int64_t at = ota_store_wall_ms();
    size_t n = ota_store_change_log_count(c);
    for (size_t i = 0; i < n; i++) {
        ota_store_change e;
        char *owned;
        int rc = ota_store_change_log_entry(c, i, &e, &owned);
        if (rc != 0)
            ota_errf(err, errlen, "SQLite %s: change log: out of memory", st->path);
        else
            rc = append_entry(st, &e, at, err, errlen);
        free(owned);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int ota_store_sq_read_changes(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *q = st->shared.q.change_read;
    if (sqlite3_stmt_busy(q) || after > INT64_MAX)
        return -1;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    int rc, stop = 0, bad = 0;
    while (stop == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        ota_store_change e = {.seq = (uint64_t)sqlite3_column_int64(q, 0),
                              .at_ms = sqlite3_column_int64(q, 1),
                              .id = (const char *)sqlite3_column_text(q, 3),
                              .json = (const char *)sqlite3_column_text(q, 6)};
        const char *op = (const char *)sqlite3_column_text(q, 4);
        e.deleted = op != NULL && strcmp(op, "delete") == 0;
        bad = ota_store_change_kind_parse(&e, (const char *)sqlite3_column_text(q, 2),
                                          (const char *)sqlite3_column_text(q, 5)) != 0;
        stop = bad || fn(ctx, &e) != 0;
    }
    sqlite3_reset(q);
    return !bad && (stop || rc == SQLITE_DONE) ? 0 : -1;
}

int ota_store_sq_change_bounds(ota_store *s, uint64_t *first, uint64_t *last)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *q = st->shared.q.change_bounds;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *last = (uint64_t)sqlite3_column_int64(q, 1); /* NULL (never used) reads as 0 */
        bool empty = sqlite3_column_type(q, 0) == SQLITE_NULL;
        *first = empty ? *last + 1 : (uint64_t)sqlite3_column_int64(q, 0);
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : -1;
}

int ota_store_sq_trim_changes(ota_store *s, uint64_t upto)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *q = st->shared.q.change_trim;
    sqlite3_bind_int64(q, 1, upto > INT64_MAX ? INT64_MAX : (sqlite3_int64)upto);
    return ota_store_sq_step(st, q, "change log trim", NULL, 0);
}

/* ---- local snapshots ---- */

int ota_store_sq_snapshot_begin(ota_store *s, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (exec_sql(st, "PRAGMA synchronous=OFF", err, errlen) != 0 ||
        ota_store_sq_step(st, st->begin, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    st->shared.bulk = true;
    return 0;
}

static int snap_put(sqlite_store *st, const char *key, int64_t value, char *err, size_t errlen)
{
    sqlite3_stmt *q = st->shared.q.snap_put;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, value);
    return ota_store_sq_step(st, q, SNAPSHOT_TABLE, err, errlen);
}

int ota_store_sq_snapshot_commit(ota_store *s, uint64_t change_seq, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    if (snap_put(st, "change_seq", (int64_t)change_seq, err, errlen) != 0 ||
        snap_put(st, "saved_at", ota_store_wall_ms(), err, errlen) != 0 ||
        ota_store_sq_step(st, st->commit, "COMMIT", err, errlen) != 0) {
        ota_store_sq_snapshot_abort(s);
        return -1;
    }
    st->shared.bulk = false;
    /* durable now: fsync through a full checkpoint, then no WAL file beside the snapshot */
    return exec_sql(st, "PRAGMA synchronous=FULL", err, errlen) != 0 ||
                   exec_sql(st, "PRAGMA wal_checkpoint(TRUNCATE)", err, errlen) != 0 ||
                   exec_sql(st, "PRAGMA journal_mode=DELETE", err, errlen) != 0
               ? -1
               : 0;
}

void ota_store_sq_snapshot_abort(ota_store *s)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_sq_rollback(st);
    st->shared.bulk = false;
    sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
}

int ota_store_sq_snapshot_position(ota_store *s, uint64_t *seq)
{
    sqlite_store *st = (sqlite_store *)s;
    sqlite3_stmt *q = st->shared.q.snap_get;
    sqlite3_bind_text(q, 1, "change_seq", -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *seq = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int ota_store_sq_snapshot_seq(ota_store *s, const ota_report_seq_rec *r)
{
    return state_put((sqlite_store *)s, r, 0, NULL, 0);
}
