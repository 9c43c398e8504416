/*
 * sqlite_rows.c — a batch's events stored by multi-row INSERTs (the writer's fast path).
 *
 * One INSERT statement per event cost SQLite ~2,000 instructions per event beyond the
 * B-tree work (statement start and halt, cursor open and close, reset); one statement of
 * 32 rows pays that once (measured: 12.7k -> 10.5k instructions per event). The events of
 * a batch are grouped by type and inserted in chunks of 32, 8 and 2 rows, the rest one by
 * one, with the statements prepared at open (sqlite.c builds their SQL and binds events).
 *
 * A multi-row INSERT OR IGNORE tells only how many of its rows it stored, not which, so
 * the fast path is all or nothing: it succeeds when every row of every chunk is stored.
 * Otherwise (a duplicate, as after a replay, a row failing another constraint, or any
 * error) the caller rolls the transaction back and stores the batch one event per
 * statement (sqlite.c: ON CONFLICT of the key only), which counts duplicates, raises the
 * VINs of the events it stored and names a failing event.
 */
#include "sqlite_impl.h"

#include <stdlib.h>

static const int CHUNK_ROWS[OTA_STORE_SQ_CHUNKS] = {32, 8, 2};

int ota_store_sq_rows_prepare(sqlite_store *st, char *err, size_t errlen)
{
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++)
        for (int c = 0; c < OTA_STORE_SQ_CHUNKS; c++)
            if (ota_store_sq_build(st, ota_store_sq_insert_sql,
                                   OTA_STORE_SQ_INSERT_ARG(t, CHUNK_ROWS[c]),
                                   &st->insert_rows[t][c], err, errlen) != 0)
                return -1;
    return 0;
}

void ota_store_sq_rows_finalize(sqlite_store *st)
{
    for (int t = 0; t <= OTA_EV_TYPE_COUNT; t++)
        for (int c = 0; c < OTA_STORE_SQ_CHUNKS; c++)
            sqlite3_finalize(st->insert_rows[t][c]);
}

/* Inserts the n events of b at idx[0..n) (one type) with stmt, n rows per statement: 0 when
 * each was stored, 1 otherwise. */
static int insert_chunk(sqlite_store *st, sqlite3_stmt *stmt, const ota_store_batch *b,
                        const size_t *idx, int n)
{
    int rc = SQLITE_OK;
    for (int i = 0, col = 0; i < n && rc == SQLITE_OK; i++)
        rc = ota_store_sq_bind_event(stmt, &col, &b->events[idx[i]]);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE && sqlite3_changes(st->db) == n ? 0 : 1;
}

/* The n events of one type at idx[0..n), in the largest chunks first. */
static int insert_type(sqlite_store *st, int type, const ota_store_batch *b, const size_t *idx,
                       size_t n)
{
    size_t done = 0;
    for (int c = 0; c < OTA_STORE_SQ_CHUNKS; c++)
        for (; n - done >= (size_t)CHUNK_ROWS[c]; done += (size_t)CHUNK_ROWS[c])
            if (insert_chunk(st, st->insert_rows[type][c], b, idx + done, CHUNK_ROWS[c]) != 0)
                return 1;
    for (; done < n; done++)
        if (insert_chunk(st, st->insert[type], b, idx + done, 1) != 0)
            return 1;
    return 0;
}

/* Orders the positions of b's events by type (stable) into idx; count[t] per type. */
static void group_by_type(const ota_store_batch *b, size_t *idx,
                          size_t count[OTA_EV_TYPE_COUNT + 1])
{
    size_t start[OTA_EV_TYPE_COUNT + 2] = {0};
    for (size_t i = 0; i < b->n_events; i++)
        count[b->events[i].ev->type]++;
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++)
        start[t + 1] = start[t] + count[t];
    for (size_t i = 0; i < b->n_events; i++)
        idx[start[b->events[i].ev->type]++] = i;
}

int ota_store_sq_rows_put(sqlite_store *st, const ota_store_batch *b, ota_store_put_result *r,
                          ota_store_vin_seq *raised)
{
    for (size_t i = 0; i < b->n_events; i++)
        if (ota_store_event_problem(&b->events[i]) != NULL)
            return 1; /* the row path names it */
    size_t *idx = malloc(b->n_events * sizeof *idx);
    if (idx == NULL)
        return 1;
    size_t count[OTA_EV_TYPE_COUNT + 1] = {0};
    group_by_type(b, idx, count);
    int rc = 0;
    size_t at = 0;
    for (int t = 1; t <= OTA_EV_TYPE_COUNT && rc == 0; at += count[t], t++)
        rc = insert_type(st, t, b, idx + at, count[t]);
    free(idx);
    if (rc != 0)
        return 1;
    for (size_t i = 0; i < b->n_events; i++) {
        const ota_store_event *e = &b->events[i];
        raised[i] = (ota_store_vin_seq){e->vin, e->seq, e->epoch != NULL ? e->epoch : "0"};
    }
    r->inserted = b->n_events;
    return 0;
}
