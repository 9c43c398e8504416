/*
 * state.c — ota-agent's state file, <state_dir>/agent.db (SQLite, WAL, synchronous FULL:
 * a committed change survives a power cut): counters (next report seq, next pkg/get req,
 * last accepted description ctr, the firmware version), the job in hand with its step and
 * accepted description, each file's bitmap of durable blocks, each ECU's install state
 * and resume blob, the report queue, and the tasks already done. Schema in
 * docs/ota-agent.md.
 */
#include "agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v);"
    "CREATE TABLE IF NOT EXISTS job(id INTEGER PRIMARY KEY CHECK (id = 1), task TEXT, "
    " version TEXT, trigger TEXT, step TEXT, req INTEGER, description BLOB, content_key BLOB,"
    " status TEXT, error TEXT);"
    "CREATE TABLE IF NOT EXISTS file(sha256 TEXT PRIMARY KEY, bitmap BLOB, complete INTEGER);"
    "CREATE TABLE IF NOT EXISTS ecu(idx INTEGER PRIMARY KEY, state TEXT, from_version TEXT,"
    " resume BLOB);"
    "CREATE TABLE IF NOT EXISTS report(seq INTEGER PRIMARY KEY, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS done(task TEXT PRIMARY KEY, at INTEGER);";

static int exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

    if (rc != SQLITE_OK) {
        agent_log("state: %s: %s", sql, err ? err : "?");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

int st_open(sqlite3 **db, const char *dir)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/agent.db", dir);
    if (sqlite3_open(path, db) != SQLITE_OK) {
        agent_log("state: cannot open %s", path);
        return -1;
    }
    sqlite3_busy_timeout(*db, 5000);
    return exec_sql(*db, schema);
}

int st_begin(sqlite3 *db)
{
    return exec_sql(db, "BEGIN IMMEDIATE");
}

int st_commit(sqlite3 *db)
{
    return exec_sql(db, "COMMIT");
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        agent_log("state: %s: %s", sql, sqlite3_errmsg(db));
    return st;
}

/* Steps a write statement and finalizes it. */
static int done(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = st && sqlite3_step(st) == SQLITE_DONE ? 0 : -1;

    if (st && rc != 0)
        agent_log("state: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

uint64_t st_kv_u64(sqlite3 *db, const char *k, uint64_t dflt)
{
    sqlite3_stmt *st = prep(db, "SELECT v FROM kv WHERE k = ?");
    uint64_t v = dflt;

    if (st && sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int st_kv_set_u64(sqlite3 *db, const char *k, uint64_t v)
{
    sqlite3_stmt *st = prep(db, "INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)");

    if (st) {
        sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
    }
    return done(db, st);
}

void st_kv_text(sqlite3 *db, const char *k, char *out, size_t cap, const char *dflt)
{
    sqlite3_stmt *st = prep(db, "SELECT v FROM kv WHERE k = ?");

    snprintf(out, cap, "%s", dflt ? dflt : "");
    if (st && sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

int st_kv_set_text(sqlite3 *db, const char *k, const char *v)
{
    sqlite3_stmt *st = prep(db, "INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)");

    if (st) {
        sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
    }
    return done(db, st);
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);

    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

int st_job_load(sqlite3 *db, agent_job *j)
{
    sqlite3_stmt *st = prep(db, "SELECT task, version, trigger, step, req, description, "
                                "content_key, status, error FROM job WHERE id = 1");
    int rc = st ? 0 : -1;

    free(j->cose);
    memset(j, 0, sizeof *j);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        j->active = true;
        col_text(st, 0, j->task, sizeof j->task);
        col_text(st, 1, j->version, sizeof j->version);
        col_text(st, 2, j->trigger, sizeof j->trigger);
        col_text(st, 3, j->step, sizeof j->step);
        j->req = (uint64_t)sqlite3_column_int64(st, 4);
        j->cose_len = (size_t)sqlite3_column_bytes(st, 5);
        if (j->cose_len && (j->cose = malloc(j->cose_len)) != NULL)
            memcpy(j->cose, sqlite3_column_blob(st, 5), j->cose_len);
        if (sqlite3_column_bytes(st, 6) == VC_KEY_LEN) {
            memcpy(j->ckey, sqlite3_column_blob(st, 6), VC_KEY_LEN);
            j->has_ckey = true;
        }
        col_text(st, 7, j->status, sizeof j->status);
        col_text(st, 8, j->error, sizeof j->error);
    }
    sqlite3_finalize(st);
    return rc;
}

int st_job_save(sqlite3 *db, const agent_job *j)
{
    sqlite3_stmt *st = prep(db, "INSERT OR REPLACE INTO job(id, task, version, trigger, step, "
                                "req, description, content_key, status, error) "
                                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)");

    if (st) {
        sqlite3_bind_text(st, 1, j->task, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->trigger, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, j->step, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)j->req);
        if (j->cose_len)
            sqlite3_bind_blob(st, 6, j->cose, (int)j->cose_len, SQLITE_STATIC);
        if (j->has_ckey)
            sqlite3_bind_blob(st, 7, j->ckey, VC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, j->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, j->error, -1, SQLITE_STATIC);
    }
    return done(db, st);
}

int st_job_end(sqlite3 *db, const char *task)
{
    sqlite3_stmt *st = prep(db, "INSERT OR REPLACE INTO done(task, at) VALUES (?, ?)");

    if (st) {
        sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, agent_now_ms());
    }
    return done(db, st) || exec_sql(db, "DELETE FROM job; DELETE FROM file; DELETE FROM ecu") ? -1
                                                                                              : 0;
}

bool st_task_done(sqlite3 *db, const char *task)
{
    sqlite3_stmt *st = prep(db, "SELECT 1 FROM done WHERE task = ?");
    bool found = false;

    if (st && sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC) == SQLITE_OK)
        found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

int st_file_load(sqlite3 *db, const char *sha, uint8_t *bitmap, size_t n, bool *complete)
{
    sqlite3_stmt *st = prep(db, "SELECT bitmap, complete FROM file WHERE sha256 = ?");

    memset(bitmap, 0, n);
    *complete = false;
    if (st && sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == n) {
        memcpy(bitmap, sqlite3_column_blob(st, 0), n);
        *complete = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_finalize(st);
    return 0;
}

bool st_file_complete(sqlite3 *db, const char *sha)
{
    sqlite3_stmt *st = prep(db, "SELECT complete FROM file WHERE sha256 = ?");
    bool complete = false;

    if (st && sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        complete = sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return complete;
}

int st_file_save(sqlite3 *db, const char *sha, const uint8_t *bitmap, size_t n, bool complete)
{
    sqlite3_stmt *st =
        prep(db, "INSERT OR REPLACE INTO file(sha256, bitmap, complete) VALUES (?, ?, ?)");

    if (st) {
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, bitmap, (int)n, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, complete);
    }
    return done(db, st);
}

int st_ecu_load(sqlite3 *db, uint32_t idx, agent_ecu_row *r)
{
    sqlite3_stmt *st = prep(db, "SELECT state, from_version, resume FROM ecu WHERE idx = ?");

    memset(r, 0, sizeof *r);
    snprintf(r->state, sizeof r->state, "pending");
    if (st && sqlite3_bind_int(st, 1, (int)idx) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        col_text(st, 0, r->state, sizeof r->state);
        col_text(st, 1, r->from_version, sizeof r->from_version);
        r->blob_len = (size_t)sqlite3_column_bytes(st, 2);
        if (r->blob_len > sizeof r->blob)
            r->blob_len = 0;
        if (r->blob_len)
            memcpy(r->blob, sqlite3_column_blob(st, 2), r->blob_len);
    }
    sqlite3_finalize(st);
    return 0;
}

int st_ecu_save(sqlite3 *db, uint32_t idx, const agent_ecu_row *r)
{
    sqlite3_stmt *st = prep(
        db, "INSERT OR REPLACE INTO ecu(idx, state, from_version, resume) VALUES (?, ?, ?, ?)");

    if (st) {
        sqlite3_bind_int(st, 1, (int)idx);
        sqlite3_bind_text(st, 2, r->state, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->from_version, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, r->blob, (int)r->blob_len, SQLITE_STATIC);
    }
    return done(db, st);
}

int st_ecus_clear(sqlite3 *db)
{
    return exec_sql(db, "DELETE FROM ecu");
}

int st_report_add(sqlite3 *db, const uint8_t *payload, size_t n, uint64_t *seq)
{
    sqlite3_stmt *st;

    if (st_begin(db) != 0)
        return -1;
    *seq = st_kv_u64(db, "next_seq", 1);
    st = prep(db, "INSERT INTO report(seq, payload) VALUES (?, ?)");
    if (st) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)*seq);
        sqlite3_bind_blob(st, 2, payload, (int)n, SQLITE_STATIC);
    }
    if (done(db, st) != 0 || st_kv_set_u64(db, "next_seq", *seq + 1) != 0) {
        exec_sql(db, "ROLLBACK");
        return -1;
    }
    return st_commit(db);
}

int st_report_next(sqlite3 *db, uint64_t after, uint64_t *seq, uint8_t **payload, size_t *n)
{
    sqlite3_stmt *st =
        prep(db, "SELECT seq, payload FROM report WHERE seq > ? ORDER BY seq LIMIT 1");
    int rc = st ? 0 : -1;

    if (st && sqlite3_bind_int64(st, 1, (sqlite3_int64)after) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
        *n = (size_t)sqlite3_column_bytes(st, 1);
        *payload = malloc(*n ? *n : 1);
        rc = *payload ? 1 : -1;
        if (*payload)
            memcpy(*payload, sqlite3_column_blob(st, 1), *n);
    }
    sqlite3_finalize(st);
    return rc;
}

int st_report_del(sqlite3 *db, uint64_t seq)
{
    sqlite3_stmt *st = prep(db, "DELETE FROM report WHERE seq = ?");

    if (st)
        sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    return done(db, st);
}

int st_report_count(sqlite3 *db)
{
    sqlite3_stmt *st = prep(db, "SELECT count(*) FROM report");
    int n = 0;

    if (st && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}
