/*
 * test_store.c — cmocka tests of the store interface on its SQLite backend, against
 * real database files under $OTA_TEST_TMP (one fresh file per test, /tmp if unset).
 *
 * Covers: every event type read back field by field (absent optionals as -1/NULL),
 * duplicates and mixed batches, latest status, counts, history order/limit/filter,
 * close + reopen, bad URIs, batch atomicity (an unknown type and an SQLite error in
 * the middle of a batch store nothing), and a throughput print (not an assertion).
 */
#include "ota_store.h"
#include "test_util.h"

#include <sqlite3.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define VIN_A "1HGCM82633A004352"
#define VIN_B "WVWZZZ1JZXW000001"
#define VIN_NONE "JH4KA7561PC008269"
#define T0 1700000000000LL

/* ---- building events ---- */

static ota_event ev_base(ota_event_type type, uint32_t index, const char *task, int64_t ts)
{
    ota_event e = {.type = type,
                   .index = index,
                   .task = task,
                   .ts = ts,
                   .pct = -1,
                   .bytes = -1,
                   .at = -1,
                   .until = -1};
    return e;
}

static ota_event ev_download(uint32_t index, const char *ecu, int32_t pct, int64_t bytes)
{
    ota_event e = ev_base(OTA_EV_DOWNLOAD_PROGRESS, index, "task-dl", T0 + index);
    e.ecu = ecu, e.pct = pct, e.bytes = bytes;
    return e;
}

static ota_event ev_progress(uint32_t index, const char *ecu, int32_t pct, const char *step)
{
    ota_event e = ev_base(OTA_EV_UPGRADE_PROGRESS, index, "task-up", T0 + index);
    e.ecu = ecu, e.pct = pct, e.step = step;
    return e;
}

static ota_event ev_status(uint32_t index, const char *status, const char *error,
                           const char *trigger, const char *fw)
{
    ota_event e = ev_base(OTA_EV_UPGRADE_STATUS, index, "task-st", T0 + index);
    e.status = status, e.error = error, e.trigger = trigger, e.fw = fw;
    return e;
}

static ota_event ev_command(uint32_t index, const char *cmd, int64_t at)
{
    ota_event e = ev_base(OTA_EV_COMMAND, index, "task-cmd", T0 + index);
    e.cmd = cmd, e.at = at;
    return e;
}

static ota_event ev_eeprom(uint32_t index, const char *ecu, const char *result)
{
    ota_event e = ev_base(OTA_EV_EEPROM_CLEAR, index, "task-ee", T0 + index);
    e.ecu = ecu, e.result = result;
    return e;
}

/* One of each type with every optional field present (indexes 0..4). */
static void full_events(ota_event out[5])
{
    out[0] = ev_download(0, "BMS", 42, 123456789012LL);
    out[1] = ev_progress(1, "VCU", 80, "flashing");
    out[2] = ev_status(2, "failed", "download_failed", "forced", "1.2.3");
    out[3] = ev_command(3, "schedule", T0 + 3600000);
    out[4] = ev_eeprom(4, "BCM", "ok");
}

/* One of each type with every optional field absent (indexes 0..4). */
static void sparse_events(ota_event out[5])
{
    out[0] = ev_download(0, NULL, 0, -1);
    out[1] = ev_progress(1, "VCU", 100, NULL);
    out[2] = ev_status(2, "succeeded", NULL, "normal", NULL);
    out[3] = ev_command(3, "now", -1);
    out[4] = ev_eeprom(4, "BCM", "failed");
}

static void wrap(ota_store_event *out, const char *vin, uint64_t seq, int64_t received,
                 const ota_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (ota_store_event){.vin = vin, .seq = seq, .received_ms = received, .ev = &evs[i]};
}

static ota_store_put_result put_ok(ota_store *s, const ota_store_event *evs, size_t n)
{
    char err[512] = "";
    ota_store_put_result r = {99, 99};
    if (ota_store_put_events(s, evs, n, &r, err, sizeof err) != 0)
        fail_msg("put_events: %s", err);
    assert_int_equal(r.inserted + r.duplicates, n);
    return r;
}

/* Puts events evs[0..n) of one report. */
static ota_store_put_result put_report(ota_store *s, const char *vin, uint64_t seq,
                                       const ota_event *evs, size_t n)
{
    ota_store_event se[16];
    assert_true(n <= 16);
    wrap(se, vin, seq, T0 + 1000 * (int64_t)seq, evs, n);
    return put_ok(s, se, n);
}

/* ---- collecting what the store calls back with (deep copies) ---- */

#define MAX_GOT 128

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    uint64_t seq;
    int64_t received_ms;
    ota_event ev;
} got_event;

typedef struct {
    size_t n;
    got_event e[MAX_GOT];
} collector;

static void collect(void *ctx, const ota_store_event *se)
{
    collector *c = ctx;
    assert_true(c->n < MAX_GOT);
    got_event *g = &c->e[c->n++];
    snprintf(g->vin, sizeof g->vin, "%s", se->vin);
    g->seq = se->seq;
    g->received_ms = se->received_ms;
    g->ev = *se->ev;
    const char **strs[] = {&g->ev.task,    &g->ev.ecu, &g->ev.step, &g->ev.status, &g->ev.error,
                           &g->ev.trigger, &g->ev.fw,  &g->ev.cmd,  &g->ev.result, &g->ev.answer};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        *strs[i] = test_strdup(*strs[i]);
}

static void collector_free(collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        ota_event *e = &c->e[i].ev;
        const char *strs[] = {e->task,    e->ecu, e->step, e->status, e->error,
                              e->trigger, e->fw,  e->cmd,  e->result, e->answer};
        for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
            free((char *)strs[k]);
    }
    c->n = 0;
}

static void assert_event(const ota_event *want, const ota_event *got)
{
    assert_int_equal(want->type, got->type);
    assert_int_equal(want->index, got->index);
    assert_string_equal(want->task, got->task);
    assert_int_equal(want->ts, got->ts);
    test_assert_text(got->ecu, want->ecu);
    assert_int_equal(want->pct, got->pct);
    assert_int_equal(want->bytes, got->bytes);
    test_assert_text(got->step, want->step);
    test_assert_text(got->status, want->status);
    test_assert_text(got->error, want->error);
    test_assert_text(got->trigger, want->trigger);
    test_assert_text(got->fw, want->fw);
    test_assert_text(got->cmd, want->cmd);
    assert_int_equal(want->at, got->at);
    test_assert_text(got->result, want->result);
    test_assert_text(got->answer, want->answer);
    assert_int_equal(want->until, got->until);
}

static uint64_t count(ota_store *s, ota_event_type type, const char *vin)
{
    uint64_t n = 12345;
    assert_int_equal(ota_store_count_events(s, type, vin, &n), 0);
    return n;
}

static uint64_t count_all_types(ota_store *s)
{
    uint64_t total = 0;
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++)
        total += count(s, (ota_event_type)t, NULL);
    return total;
}

/* ---- tests ---- */

static void test_schema(void **state)
{
    test_db *f = *state;
    assert_string_equal(ota_store_backend(f->s), "sqlite");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    static const char *const tables[] = {
        "ota_vehicle_download_progress", "ota_vehicle_upgrade_progress",
        "ota_vehicle_upgrade_status", "ota_vehicle_upgrade_command", "ota_vehicle_eeprom_clear"};
    for (size_t i = 0; i < 5; i++) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT sql FROM sqlite_master WHERE type='table' "
                                            "AND name=?",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        const char *sql = (const char *)sqlite3_column_text(st, 0);
        assert_non_null(strstr(sql, "PRIMARY KEY (vin, epoch, seq, idx)"));
        assert_non_null(strstr(sql, "WITHOUT ROWID"));
        sqlite3_finalize(st);
    }
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_each_type_round_trip(void **state)
{
    test_db *f = *state;
    ota_event full[5], sparse[5];
    full_events(full);
    sparse_events(sparse);
    ota_store_put_result r = put_report(f->s, VIN_A, 7, full, 5);
    assert_int_equal(r.inserted, 5);
    assert_int_equal(r.duplicates, 0);
    put_report(f->s, VIN_A, 8, sparse, 5);

    collector c = {0};
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 100, collect, &c), 10);
    assert_int_equal(c.n, 10);
    for (size_t i = 0; i < 10; i++) {
        const got_event *g = &c.e[i];
        uint64_t seq = i < 5 ? 8 : 7;
        assert_string_equal(g->vin, VIN_A);
        assert_int_equal(g->seq, seq);
        assert_int_equal(g->received_ms, T0 + 1000 * (int64_t)seq);
        /* newest first: seq 8 index 4..0, then seq 7 index 4..0 */
        assert_event(i < 5 ? &sparse[4 - i] : &full[9 - i], &g->ev);
    }
    collector_free(&c);
    /* absent optionals are SQL NULL in the tables, not -1 */
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_download_progress "
                                           "WHERE seq = 8 AND ecu IS NULL AND bytes IS NULL "
                                           "AND pct = 0"),
                     1);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_upgrade_progress "
                                           "WHERE seq = 8 AND step IS NULL"),
                     1);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_upgrade_status "
                                           "WHERE seq = 8 AND error IS NULL AND fw IS NULL"),
                     1);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_upgrade_command "
                                           "WHERE seq = 8 AND at IS NULL"),
                     1);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_upgrade_command "
                                           "WHERE seq = 7 AND at IS NOT NULL"),
                     1);
}

/* A consent event (issue 17) keeps its answer, until and reason. */
static void test_consent_round_trip(void **state)
{
    test_db *f = *state;
    ota_event evs[2] = {ev_base(OTA_EV_CONSENT, 0, "task-c", T0),
                        ev_base(OTA_EV_CONSENT, 1, "task-c", T0 + 1)};
    evs[0].answer = "postponed", evs[0].until = T0 + 3600000, evs[0].error = "driving";
    evs[1].answer = "declined";
    assert_int_equal(put_report(f->s, VIN_A, 3, evs, 2).inserted, 2);
    assert_int_equal(count(f->s, OTA_EV_CONSENT, VIN_A), 2);
    collector c = {0};
    assert_int_equal(ota_store_history(f->s, VIN_A, OTA_EV_CONSENT, 10, collect, &c), 2);
    assert_event(&evs[1], &c.e[0].ev); /* newest first */
    assert_event(&evs[0], &c.e[1].ev);
    collector_free(&c);
}

static void test_duplicate_batch(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    ota_store_put_result r = put_report(f->s, VIN_A, 1, evs, 5);
    assert_int_equal(r.inserted, 5);
    r = put_report(f->s, VIN_A, 1, evs, 5);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.duplicates, 5);
    for (int t = 1; t <= OTA_EV_EEPROM_CLEAR; t++)
        assert_int_equal(count(f->s, (ota_event_type)t, NULL), 1);
}

static void test_mixed_batch(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    put_report(f->s, VIN_A, 3, evs, 2); /* indexes 0, 1 */
    /* 0 and 1 again, 2..4 new, and index 4 twice in the same batch */
    ota_store_event se[6];
    wrap(se, VIN_A, 3, T0, evs, 5);
    se[5] = se[4];
    ota_store_put_result r = put_ok(f->s, se, 6);
    assert_int_equal(r.inserted, 3);
    assert_int_equal(r.duplicates, 3);
    /* the same (seq, index) of another VIN, or another seq, is a new event */
    r = put_report(f->s, VIN_B, 3, evs, 1);
    assert_int_equal(r.inserted, 1);
    r = put_report(f->s, VIN_A, 4, evs, 1);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(count_all_types(f->s), 7);
}

/* Event i of a batch that mixes every type and optional fields present and absent. */
static ota_event ev_mixed(uint32_t i)
{
    if (i < 43) /* 43 download_progress: chunks of 32, 8 and 2 rows and one single row */
        return ev_download(i, i % 2 ? "BMS" : NULL, (int32_t)(i % 101), i % 3 ? i * 1000LL : -1);
    switch (i % 4) {
    case 0:
        return ev_progress(i, "VCU", (int32_t)(i % 101), i % 3 ? "flashing" : NULL);
    case 1:
        return ev_status(i, "failed", i % 3 ? "download_failed" : NULL, "forced", "1.2.3");
    case 2:
        return ev_command(i, "schedule", T0 + i);
    default:
        return ev_eeprom(i, "BCM", i % 3 ? "ok" : "failed");
    }
}

/* A batch large enough for the multi-row INSERTs (sqlite_rows.c) stores each event as
 * given; a batch repeating most of them is counted event by event (the row path). */
static void test_many_rows_batch(void **state)
{
    test_db *f = *state;
    enum { N = 91, NEW = 10 };
    ota_event evs[N + NEW];
    for (uint32_t i = 0; i < N + NEW; i++)
        evs[i] = ev_mixed(i);
    ota_store_event se[N + NEW];
    wrap(se, VIN_A, 5, T0, evs, N + NEW);
    ota_store_put_result r = put_ok(f->s, se, N);
    assert_int_equal(r.inserted, N);
    collector c = {0};
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 200, collect, &c), N);
    for (size_t i = 0; i < N; i++) { /* newest first: index N-1 .. 0 */
        assert_string_equal(c.e[i].vin, VIN_A);
        assert_int_equal(c.e[i].seq, 5);
        assert_event(&evs[N - 1 - i], &c.e[i].ev);
    }
    collector_free(&c);
    r = put_ok(f->s, se + NEW, N);
    assert_int_equal(r.inserted, NEW);
    assert_int_equal(r.duplicates, N - NEW);
    assert_int_equal(count_all_types(f->s), N + NEW);
}

static void test_empty_batch(void **state)
{
    test_db *f = *state;
    char err[256] = "";
    ota_store_put_result r = {9, 9};
    assert_int_equal(ota_store_put_events(f->s, NULL, 0, &r, err, sizeof err), 0);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.duplicates, 0);
}

static void test_latest_status(void **state)
{
    test_db *f = *state;
    ota_event s3[10];
    for (uint32_t i = 0; i < 10; i++)
        s3[i] = ev_status(i, "downloading", NULL, "normal", NULL);
    put_report(f->s, VIN_A, 3, s3, 10); /* (3, 9) is the highest index of seq 3 */
    ota_event s5[3] = {ev_status(0, "upgrading", NULL, "normal", NULL),
                       ev_download(1, "BMS", 50, -1),
                       ev_status(2, "succeeded", NULL, "forced", "2.0.0")};
    put_report(f->s, VIN_A, 5, s5, 3);
    ota_event s4[1] = {ev_status(7, "waiting", NULL, "normal", NULL)};
    put_report(f->s, VIN_A, 4, s4, 1);
    ota_event later[2] = {ev_download(0, "BMS", 60, -1), ev_eeprom(5, "BCM", "ok")};
    put_report(f->s, VIN_A, 10, later, 2); /* newer, but no status */
    ota_event other[1] = {ev_status(0, "failed", "x", "normal", NULL)};
    put_report(f->s, VIN_B, 99, other, 1);

    collector c = {0};
    assert_int_equal(ota_store_latest_status(f->s, VIN_A, collect, &c), 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.e[0].vin, VIN_A);
    assert_int_equal(c.e[0].seq, 5);
    assert_event(&s5[2], &c.e[0].ev);
    collector_free(&c);

    assert_int_equal(ota_store_latest_status(f->s, VIN_NONE, collect, &c), 0);
    assert_int_equal(c.n, 0);
}

static void test_count_events(void **state)
{
    test_db *f = *state;
    ota_event a[5] = {ev_download(0, "BMS", 1, -1), ev_download(1, "BMS", 2, -1),
                      ev_download(2, "BMS", 3, -1), ev_status(3, "idle", NULL, "normal", NULL),
                      ev_status(4, "waiting", NULL, "normal", NULL)};
    put_report(f->s, VIN_A, 1, a, 5);
    put_report(f->s, VIN_B, 1, a, 1);
    assert_int_equal(count(f->s, OTA_EV_DOWNLOAD_PROGRESS, NULL), 4);
    assert_int_equal(count(f->s, OTA_EV_DOWNLOAD_PROGRESS, VIN_A), 3);
    assert_int_equal(count(f->s, OTA_EV_DOWNLOAD_PROGRESS, VIN_B), 1);
    assert_int_equal(count(f->s, OTA_EV_UPGRADE_STATUS, VIN_A), 2);
    assert_int_equal(count(f->s, OTA_EV_UPGRADE_STATUS, VIN_B), 0);
    assert_int_equal(count(f->s, OTA_EV_COMMAND, NULL), 0);
    assert_int_equal(count(f->s, OTA_EV_DOWNLOAD_PROGRESS, VIN_NONE), 0);
    uint64_t n;
    assert_int_equal(ota_store_count_events(f->s, (ota_event_type)0, NULL, &n), -1);
    assert_int_equal(
        ota_store_count_events(f->s, (ota_event_type)(OTA_EV_TYPE_COUNT + 1), VIN_A, &n), -1);
}

static void test_history_order_limit_filter(void **state)
{
    test_db *f = *state;
    ota_event r1[3] = {ev_download(0, "BMS", 10, -1),
                       ev_status(1, "downloading", NULL, "normal", NULL), ev_command(2, "now", -1)};
    ota_event r2[2] = {ev_status(0, "upgrading", NULL, "normal", NULL),
                       ev_progress(1, "VCU", 5, NULL)};
    ota_event r12[2] = {ev_eeprom(0, "BCM", "ok"), ev_status(1, "succeeded", NULL, "normal", NULL)};
    /* put out of order: seq 12, 1, 2 */
    put_report(f->s, VIN_A, 12, r12, 2);
    put_report(f->s, VIN_A, 1, r1, 3);
    put_report(f->s, VIN_A, 2, r2, 2);
    put_report(f->s, VIN_B, 50, r1, 3);

    static const struct {
        uint64_t seq;
        uint32_t index;
        ota_event_type type;
    } want[] = {{12, 1, OTA_EV_UPGRADE_STATUS},  {12, 0, OTA_EV_EEPROM_CLEAR},
                {2, 1, OTA_EV_UPGRADE_PROGRESS}, {2, 0, OTA_EV_UPGRADE_STATUS},
                {1, 2, OTA_EV_COMMAND},          {1, 1, OTA_EV_UPGRADE_STATUS},
                {1, 0, OTA_EV_DOWNLOAD_PROGRESS}};
    collector c = {0};
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 1000, collect, &c), 7);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(c.e[i].seq, want[i].seq);
        assert_int_equal(c.e[i].ev.index, want[i].index);
        assert_int_equal(c.e[i].ev.type, want[i].type);
        assert_string_equal(c.e[i].vin, VIN_A);
    }
    collector_free(&c);

    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 3, collect, &c), 3);
    assert_int_equal(c.e[2].seq, 2);
    assert_int_equal(c.e[2].ev.index, 1);
    collector_free(&c);

    assert_int_equal(ota_store_history(f->s, VIN_A, OTA_EV_UPGRADE_STATUS, 1000, collect, &c), 3);
    assert_int_equal(c.e[0].seq, 12);
    assert_int_equal(c.e[1].seq, 2);
    assert_int_equal(c.e[2].seq, 1);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(c.e[i].ev.type, OTA_EV_UPGRADE_STATUS);
    collector_free(&c);

    assert_int_equal(ota_store_history(f->s, VIN_A, OTA_EV_UPGRADE_STATUS, 2, collect, &c), 2);
    collector_free(&c);
    assert_int_equal(ota_store_history(f->s, VIN_A, OTA_EV_COMMAND, 1000, NULL, NULL), 1);
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 0, collect, &c), 0);
    assert_int_equal(ota_store_history(f->s, VIN_B, 0, 1000, NULL, NULL), 3);
    assert_int_equal(ota_store_history(f->s, VIN_NONE, 0, 1000, collect, &c), 0);
    assert_int_equal(
        ota_store_history(f->s, VIN_A, (ota_event_type)(OTA_EV_TYPE_COUNT + 1), 10, collect, &c),
        -1);
    assert_int_equal(c.n, 0);
}

/* A callback that asks the store again while a history walk is running. */
typedef struct {
    ota_store *s;
    int nested_same, nested_latest;
} nest_ctx;

static void nested_query(void *ctx, const ota_store_event *se)
{
    nest_ctx *n = ctx;
    (void)se;
    n->nested_same = ota_store_history(n->s, VIN_A, 0, 10, NULL, NULL);
    n->nested_latest = ota_store_latest_status(n->s, VIN_A, NULL, NULL);
}

static void test_history_reentrant_callback(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    put_report(f->s, VIN_A, 1, evs, 5);
    nest_ctx n = {f->s, 0, 0};
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 1, nested_query, &n), 1);
    assert_int_equal(n.nested_same, -1); /* the same statement is busy: refused */
    assert_int_equal(n.nested_latest, 1);
    /* and the walk still works afterwards */
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 10, NULL, NULL), 5);
}

static void test_survives_reopen(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    put_report(f->s, VIN_A, 42, evs, 5);
    ota_store_close(f->s);
    f->s = test_store_open(f->path); /* a bare path this time */
    assert_string_equal(ota_store_backend(f->s), "sqlite");
    assert_int_equal(count_all_types(f->s), 5);
    collector c = {0};
    assert_int_equal(ota_store_latest_status(f->s, VIN_A, collect, &c), 1);
    assert_int_equal(c.e[0].seq, 42);
    assert_event(&evs[2], &c.e[0].ev);
    collector_free(&c);
    ota_store_put_result r = put_report(f->s, VIN_A, 42, evs, 5);
    assert_int_equal(r.duplicates, 5);
}

/* The guard rows of a database migrated from the layout before epochs. */
typedef struct {
    char got[4][64];
    size_t n;
} seqs_got;

static int collect_seq(void *ctx, const ota_report_seq_rec *r)
{
    seqs_got *g = ctx;
    snprintf(g->got[g->n++], sizeof g->got[0], "%s=%s/%lld/%u", r->vin, r->epoch,
             (long long)r->seq, r->resets);
    return 0;
}

static void count_one(void *ctx, const ota_store_event *e)
{
    (void)e;
    ++*(int *)ctx;
}

/* An older version's file: events keyed by (vin, seq, idx) without epoch. Opening it
 * migrates the tables (rows kept, epoch "0"), makes the guard rows (highest seq of each
 * VIN), and a new epoch may then use the same seq. */
static void test_migration_from_v1(void **state)
{
    test_db *f = *state;
    ota_store_close(f->s);
    f->s = NULL;
    unlink(f->path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE ota_vehicle_upgrade_status (vin TEXT NOT NULL, "
                                  "seq INTEGER NOT NULL, idx INTEGER NOT NULL, task TEXT NOT NULL, "
                                  "ts INTEGER NOT NULL, received_at INTEGER NOT NULL, status TEXT, "
                                  "error TEXT, \"trigger\" TEXT, fw TEXT, PRIMARY KEY (vin, seq, "
                                  "idx)) WITHOUT ROWID;"
                                  "INSERT INTO ota_vehicle_upgrade_status VALUES ('" VIN_A
                                  "', 7, 0, 't', 1, 2, 'failed', NULL, 'normal', NULL), ('" VIN_A
                                  "', 9, 0, 't', 1, 3, 'succeeded', NULL, 'normal', NULL);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    f->s = ota_store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    seqs_got g = {0};
    assert_int_equal(ota_store_load_last_seqs(f->s, collect_seq, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.got[0], VIN_A "=0/9/0");
    int n = 0;
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 10, count_one, &n), 2);
    ota_event ev = ev_status(0, "succeeded", NULL, "normal", NULL);
    ota_store_event se = {.vin = VIN_A, .seq = 9, .received_ms = 4, .ev = &ev, .epoch = "1"};
    ota_store_put_result r;
    assert_int_equal(ota_store_put_events(f->s, &se, 1, &r, err, sizeof err), 0);
    assert_int_equal(r.inserted, 1); /* another epoch: not the stored (vin, 0, 9, 0) */
    se.epoch = NULL;
    assert_int_equal(ota_store_put_events(f->s, &se, 1, &r, err, sizeof err), 0);
    assert_int_equal(r.duplicates, 1);
}

static void expect_open_error(const char *uri, const char *needle)
{
    char err[512] = "";
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (s != NULL) {
        ota_store_close(s);
        fail_msg("ota_store_open(%s) should fail", uri ? uri : "NULL");
    }
    if (strstr(err, needle) == NULL)
        fail_msg("error for %s is \"%s\", expected it to contain \"%s\"", uri ? uri : "NULL", err,
                 needle);
}

static void test_open_errors(void **state)
{
    (void)state;
    /* nothing listens on port 1: refused at once (the MongoDB contract tests are in
     * test_store_contract.c) */
    expect_open_error("mongodb://127.0.0.1:1/ota", "MongoDB ota: cannot reach the server");
    expect_open_error("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=nope&w=x",
                      "MongoDB store: bad URI");
    expect_open_error("mongodb://", "MongoDB store: bad URI");
    expect_open_error("foo://x", "foo://x");
    expect_open_error("foo://x", "scheme");
    expect_open_error("/nonexistent-ota-dir/sub/ota.db", "/nonexistent-ota-dir/sub/ota.db");
    expect_open_error("sqlite:/nonexistent-ota-dir/x.db", "/nonexistent-ota-dir/x.db");
    expect_open_error("sqlite:", "empty");
    expect_open_error("", "empty");
    expect_open_error(NULL, "empty");
}

static void test_not_a_database(void **state)
{
    test_db *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s.garbage", f->path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database file\n", fp);
    fclose(fp);
    expect_open_error(path, path);
    test_remove_db(path);
}

static void test_atomic_unknown_type(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    evs[2].type = (ota_event_type)99;
    ota_store_event se[5];
    wrap(se, VIN_A, 1, T0, evs, 5);
    char err[512] = "";
    ota_store_put_result r = {7, 7};
    assert_int_equal(ota_store_put_events(f->s, se, 5, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown event type"));
    assert_non_null(strstr(err, "event 2"));
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.duplicates, 0);
    assert_int_equal(count_all_types(f->s), 0);
    /* fixed, the same batch goes in whole */
    evs[2].type = OTA_EV_UPGRADE_STATUS;
    r = put_ok(f->s, se, 5);
    assert_int_equal(r.inserted, 5);
}

static void test_atomic_missing_fields(void **state)
{
    test_db *f = *state;
    ota_event evs[5];
    full_events(evs);
    evs[4].task = NULL;
    ota_store_event se[5];
    wrap(se, VIN_A, 1, T0, evs, 5);
    char err[512] = "";
    ota_store_put_result r;
    assert_int_equal(ota_store_put_events(f->s, se, 5, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "no task"));
    evs[4].task = "t";
    se[3].vin = NULL;
    assert_int_equal(ota_store_put_events(f->s, se, 5, &r, err, sizeof err), -1);
    se[3].vin = VIN_A;
    se[1].seq = (uint64_t)INT64_MAX + 1;
    assert_int_equal(ota_store_put_events(f->s, se, 5, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "seq"));
    assert_int_equal(count_all_types(f->s), 0);
}

/* SQLite itself fails on the 4th event (a trigger raises an error): the three rows
 * already inserted in the transaction must be rolled back. */
static void test_atomic_sqlite_error(void **state)
{
    test_db *f = *state;
    test_sql_exec(f->path, "CREATE TRIGGER boom BEFORE INSERT ON ota_vehicle_upgrade_command "
                           "WHEN NEW.task = 'boom' BEGIN SELECT RAISE(ABORT, 'boom trigger'); END");
    ota_event evs[5];
    full_events(evs);
    evs[3].task = "boom";
    ota_store_event se[5];
    wrap(se, VIN_A, 1, T0, evs, 5);
    char err[512] = "";
    ota_store_put_result r;
    assert_int_equal(ota_store_put_events(f->s, se, 5, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "boom trigger"));
    assert_non_null(strstr(err, "ota_vehicle_upgrade_command"));
    assert_non_null(strstr(err, f->path));
    assert_int_equal(count_all_types(f->s), 0);
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 100, NULL, NULL), 0);
    /* the handle stays usable: a good batch afterwards is stored */
    evs[3].task = "fine";
    r = put_ok(f->s, se, 5);
    assert_int_equal(r.inserted, 5);
}

/* Another connection holds the write lock for 300 ms: reads go on meanwhile (WAL), and
 * put_events waits for the lock (busy timeout) instead of failing with SQLITE_BUSY. */
typedef struct {
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int locked;
} locker;

static void *hold_write_lock(void *arg)
{
    locker *l = arg;
    sqlite3 *db;
    int ok = sqlite3_open(l->path, &db) == SQLITE_OK &&
             sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    pthread_mutex_lock(&l->mu);
    l->locked = ok ? 1 : -1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    usleep(300 * 1000);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static void test_waits_for_other_writer(void **state)
{
    test_db *f = *state;
    locker l = {.path = f->path, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hold_write_lock, &l), 0);
    pthread_mutex_lock(&l.mu);
    while (l.locked == 0)
        pthread_cond_wait(&l.cv, &l.mu);
    pthread_mutex_unlock(&l.mu);
    assert_int_equal(l.locked, 1);

    double t0 = test_now_s();
    assert_int_equal(ota_store_history(f->s, VIN_A, 0, 10, NULL, NULL), 0);
    ota_event evs[5];
    full_events(evs);
    assert_int_equal(put_report(f->s, VIN_A, 1, evs, 5).inserted, 5);
    double waited = test_now_s() - t0;
    pthread_join(th, NULL);
    assert_true(waited > 0.15);
    assert_true(waited < 4.0);
    assert_int_equal(count_all_types(f->s), 5);
}

static void test_throughput(void **state)
{
    test_db *f = *state;
    enum { TOTAL = 100000, BATCH = 4096, VINS = 1000 };
    static char vins[VINS][OTA_VIN_LEN + 1];
    for (int v = 0; v < VINS; v++)
        snprintf(vins[v], sizeof vins[v], "1HGCM82633A%06d", v);
    ota_event proto[5];
    full_events(proto);
    ota_event *evs = calloc(BATCH, sizeof *evs);
    ota_store_event *se = calloc(BATCH, sizeof *se);
    assert_non_null(evs);
    assert_non_null(se);
    double t0 = test_now_s();
    size_t done = 0, inserted = 0;
    while (done < TOTAL) {
        size_t n = TOTAL - done < BATCH ? TOTAL - done : BATCH;
        for (size_t i = 0; i < n; i++) {
            size_t k = done + i; /* report k/8 of VIN (k/8)%VINS, event k%8 */
            evs[i] = proto[k % 5];
            evs[i].index = (uint32_t)(k % 8);
            se[i] = (ota_store_event){.vin = vins[(k / 8) % VINS],
                                      .seq = k / 8,
                                      .received_ms = T0 + (int64_t)k,
                                      .ev = &evs[i]};
        }
        inserted += put_ok(f->s, se, n).inserted;
        done += n;
    }
    double dt = test_now_s() - t0;
    assert_int_equal(inserted, TOTAL);
    assert_int_equal(count_all_types(f->s), TOTAL);
    print_message("put throughput: %d events in batches of %d in %.3f s = %.0f events/s\n", TOTAL,
                  BATCH, dt, TOTAL / dt);
    free(evs);
    free(se);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_db_setup, test_db_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_schema),
        T(test_each_type_round_trip),
        T(test_consent_round_trip),
        T(test_duplicate_batch),
        T(test_mixed_batch),
        T(test_many_rows_batch),
        T(test_empty_batch),
        T(test_latest_status),
        T(test_count_events),
        T(test_history_order_limit_filter),
        T(test_history_reentrant_callback),
        T(test_survives_reopen),
        T(test_migration_from_v1),
        cmocka_unit_test(test_open_errors),
        T(test_not_a_database),
        T(test_atomic_unknown_type),
        T(test_atomic_missing_fields),
        T(test_atomic_sqlite_error),
        T(test_waits_for_other_writer),
        T(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
