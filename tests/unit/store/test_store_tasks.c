/*
 * test_store_tasks.c — cmocka tests of the task engine's part of the store interface
 * (executions, shadows and notices in ota_store_apply, their loaders, task and setting
 * documents, ota_store_load_latest_statuses) on the SQLite backend, against real
 * database files (test_util.h: one fresh file per test).
 *
 * Covers: the schema (tables, WITHOUT ROWID where wanted, the (vin, task) index used for
 * a vehicle's executions); execution state names; executions read back in every state,
 * absent optionals NULL (notified -1), in (task, VIN) order, and replaced by upsert;
 * shadows with and without desired, replaced by upsert; notices by task and all, by sent
 * time, a repeated msg_id skipped; task and setting documents; atomicity with the
 * catalog parts (an invalid record at the end, and an SQLite failure in the last part,
 * store nothing of the change); latest statuses across VINs, seqs and indexes; loaders
 * stopping, re-entry and bad arguments; a state this build does not know; reopen; and
 * timings (printed, not asserted): 100,000 executions stored and loaded, 100,000 shadows,
 * 100,000 notices, latest statuses over 1,000,000 events of 100,000 VINs.
 */
#include "ota_store.h"
#include "test_fixtures.h"
#include "test_util.h"

#include <sqlite3.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define VIN_A "1HGCM82633A004352"
#define VIN_B "WVWZZZ1JZXW000001"
#define VIN_C "JH4KA7561PC008269"

/* ---- helpers ---- */

static size_t count_execs(ota_store *s)
{
    test_got_execs g;
    test_load_execs_ok(s, &g);
    size_t n = g.n;
    test_got_execs_free(&g);
    return n;
}

static size_t count_shadows(ota_store *s)
{
    test_got_shadows g;
    test_load_shadows_ok(s, &g);
    size_t n = g.n;
    test_got_shadows_free(&g);
    return n;
}

static size_t count_notices(ota_store *s)
{
    test_got_notices g;
    test_load_notices_ok(s, NULL, &g);
    size_t n = g.n;
    test_got_notices_free(&g);
    return n;
}

static int count_doc(void *ctx, const char *key, const char *json)
{
    (void)key, (void)json;
    ++*(size_t *)ctx;
    return 0;
}

static size_t count_docs(ota_store *s, ota_doc_kind kind)
{
    size_t n = 0;
    assert_int_equal(ota_store_load_docs(s, kind, count_doc, &n), 0);
    return n;
}

static int count_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    (void)v;
    ++*(size_t *)ctx;
    return 0;
}

static size_t count_vehicles(ota_store *s)
{
    size_t n = 0;
    assert_int_equal(ota_store_load_vehicles(s, count_vehicle, &n), 0);
    return n;
}

/* ---- records ---- */

static ota_exec_rec full_exec(const char *task, const char *vin, ota_exec_state state)
{
    return (ota_exec_rec){.task = task,
                          .vin = vin,
                          .state = state,
                          .code = "E_SOMETHING",
                          .resends = 3,
                          .msg_id = "t1:" VIN_A ":3",
                          .notified_ms = 1700000000123,
                          .updated_ms = 1700000009999,
                          .wave = 2};
}

static ota_exec_rec queued_exec(const char *task, const char *vin)
{
    return (ota_exec_rec){.task = task,
                          .vin = vin,
                          .state = OTA_EXEC_QUEUED,
                          .notified_ms = -1,
                          .updated_ms = 1700000000000,
                          .wave = -1};
}

static ota_vehicle_rec vehicle(const char *vin)
{
    return (ota_vehicle_rec){.vin = (char *)vin,
                             .model = "M1",
                             .series = "S-2024",
                             .status = "in_stock",
                             .usage = "retail"};
}

/* ---- tests ---- */

static void test_schema(void **state)
{
    test_db *d = *state;
    static const char *const without_rowid[] = {"ota_task", "ota_setting", "ota_task_vin",
                                                "ota_vehicle_shadow"};
    for (size_t i = 0; i < sizeof without_rowid / sizeof without_rowid[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '%s' "
                 "AND sql LIKE '%%WITHOUT ROWID'",
                 without_rowid[i]);
        if (test_sql_int(d->path, sql) != 1)
            fail_msg("table %s missing or not WITHOUT ROWID", without_rowid[i]);
    }
    /* notices: a rowid table, msg_id unique */
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM sqlite_master WHERE name = "
                                           "'ota_vehicle_download_notice' AND sql NOT LIKE "
                                           "'%WITHOUT ROWID'"),
                     1);
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM pragma_index_list("
                                           "'ota_vehicle_download_notice') WHERE \"unique\" = 1"),
                     1);
    /* a vehicle's executions are found through the (vin, task) index */
    char plan[256];
    test_sql_text(d->path, "EXPLAIN QUERY PLAN SELECT state FROM ota_task_vin WHERE vin = 'x'",
                  plan, sizeof plan);
    if (strstr(plan, "USING COVERING INDEX ota_task_vin_by_vin (vin=?)") == NULL &&
        strstr(plan, "USING INDEX ota_task_vin_by_vin (vin=?)") == NULL)
        fail_msg("plan: %s", plan);
    test_sql_text(d->path,
                  "EXPLAIN QUERY PLAN SELECT msg_id FROM ota_vehicle_download_notice WHERE "
                  "task = 'x' ORDER BY sent_at",
                  plan, sizeof plan);
    if (strstr(plan, "ota_vehicle_download_notice_by_task (task=?)") == NULL)
        fail_msg("plan: %s", plan);
    assert_int_equal(count_execs(d->s), 0);
    assert_int_equal(count_shadows(d->s), 0);
    assert_int_equal(count_notices(d->s), 0);
}

static void test_state_names(void **state)
{
    (void)state;
    static const char *const want[OTA_EXEC_STATE_COUNT] = {
        "queued",   "notified", "downloading", "installing", "succeeded", "failed",
        "canceled", "rejected", "accepted",    "postponed",  "declined"};
    for (int i = 0; i < OTA_EXEC_STATE_COUNT; i++) {
        assert_string_equal(ota_exec_state_name((ota_exec_state)i), want[i]);
        assert_int_equal(ota_exec_state_from_name(want[i]), i);
    }
    assert_null(ota_exec_state_name((ota_exec_state)OTA_EXEC_STATE_COUNT));
    assert_null(ota_exec_state_name((ota_exec_state)-1));
    assert_int_equal(ota_exec_state_from_name("cancelled"), -1);
    assert_int_equal(ota_exec_state_from_name("Queued"), -1);
    assert_int_equal(ota_exec_state_from_name(""), -1);
    assert_int_equal(ota_exec_state_from_name(NULL), -1);
}

static void test_exec_round_trip(void **state)
{
    test_db *d = *state;
    /* every state, twice (full and sparse), in reverse key order: the loader sorts */
    enum { N = 2 * OTA_EXEC_STATE_COUNT };
    ota_exec_rec es[N];
    char tasks[OTA_EXEC_STATE_COUNT][16];
    for (int i = 0; i < OTA_EXEC_STATE_COUNT; i++) {
        snprintf(tasks[i], sizeof tasks[i], "task-%02d", OTA_EXEC_STATE_COUNT - i);
        es[2 * i] = full_exec(tasks[i], VIN_C, (ota_exec_state)i);
        es[2 * i + 1] = queued_exec(tasks[i], VIN_A);
        es[2 * i + 1].state = (ota_exec_state)i;
        es[2 * i + 1].resends = UINT32_MAX;
    }
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = es, .n_put_execs = N});

    test_got_execs g;
    test_load_execs_ok(d->s, &g);
    assert_int_equal(g.n, N);
    for (int i = 0; i < OTA_EXEC_STATE_COUNT; i++) {
        int j = OTA_EXEC_STATE_COUNT - 1 - i;          /* task-01 first: the last state's task */
        test_assert_exec(&g.e[2 * i], &es[2 * j + 1]); /* VIN_A < VIN_C */
        test_assert_exec(&g.e[2 * i + 1], &es[2 * j]);
    }
    test_got_execs_free(&g);
    /* stored by name; absent optionals NULL */
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM ota_task_vin WHERE state = "
                                           "'downloading'"),
                     2);
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM ota_task_vin WHERE code IS NULL "
                                           "AND msg_id IS NULL AND notified_at IS NULL"),
                     OTA_EXEC_STATE_COUNT);
}

static void test_exec_upsert_replaces(void **state)
{
    test_db *d = *state;
    ota_exec_rec full = full_exec("t1", VIN_A, OTA_EXEC_INSTALLING);
    ota_exec_rec other = queued_exec("t2", VIN_A);
    ota_exec_rec both[] = {full, other};
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = both, .n_put_execs = 2});
    /* every column but the key replaced, optionals removed */
    ota_exec_rec sparse = queued_exec("t1", VIN_A);
    sparse.state = OTA_EXEC_REJECTED;
    sparse.updated_ms = 5;
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = &sparse, .n_put_execs = 1});
    test_got_execs g;
    test_load_execs_ok(d->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_exec(&g.e[0], &sparse);
    test_assert_exec(&g.e[1], &other);
    test_got_execs_free(&g);

    /* and back, twice in one change with another key between (the store writes upserts
     * in key order): the later one wins */
    ota_exec_rec other2 = other;
    other2.state = OTA_EXEC_CANCELED;
    ota_exec_rec twice[] = {sparse, other2, full, sparse, other, full};
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = twice, .n_put_execs = 6});
    test_load_execs_ok(d->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_exec(&g.e[0], &full);
    test_assert_exec(&g.e[1], &other);
    test_got_execs_free(&g);
}

static void test_shadows(void **state)
{
    test_db *d = *state;
    ota_shadow_rec ss[] = {
        {VIN_B, 7, "{\"fw\":\"2.1.0\",\"ecus\":{\"BMS\":\"1.0\"}}",
         "{\"task\":{\"task\":\"t1\",\"msg_id\":\"t1:x:0\"}}", 1700000000001},
        {VIN_A, 1, "{}", NULL, 1700000000002},
    };
    test_apply_ok(d->s, &(ota_catalog_change){.put_shadows = ss, .n_put_shadows = 2});
    test_got_shadows g;
    test_load_shadows_ok(d->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_shadow(&g.s[0], &ss[1]);
    test_assert_shadow(&g.s[1], &ss[0]);
    test_got_shadows_free(&g);
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM ota_vehicle_shadow WHERE desired "
                                           "IS NULL"),
                     1);

    /* upsert: B loses its desired state, A gains one */
    ota_shadow_rec next[] = {{VIN_B, 8, "{\"fw\":\"2.2.0\"}", NULL, 1700000000003},
                             {VIN_A, 2, "{}", "{\"task\":null,\"cancel\":\"t1\"}", 1700000000004}};
    test_apply_ok(d->s, &(ota_catalog_change){.put_shadows = next, .n_put_shadows = 2});
    test_load_shadows_ok(d->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_shadow(&g.s[0], &next[1]);
    test_assert_shadow(&g.s[1], &next[0]);
    test_got_shadows_free(&g);
}

static void test_notices(void **state)
{
    test_db *d = *state;
    ota_notice_rec ns[] = {
        {"t2", VIN_A, 12, "3.0.0", "t2:" VIN_A ":0", 300},
        {"t1", VIN_B, 11, "2.0.0", "t1:" VIN_B ":0", 200},
        {"t1", VIN_A, 11, "2.0.0", "t1:" VIN_A ":0", 100},
        {"t1", VIN_A, UINT64_C(1) << 40, "2.0.0", "t1:" VIN_A ":1", 400},
        {"t1", VIN_C, 11, "2.0.0", "t1:" VIN_C ":0", 200}, /* same time: stored order */
        {"t9", VIN_C, 99, "9.9.9", "t1:" VIN_B ":0", 50},  /* msg_id again: skipped */
    };
    test_apply_ok(d->s, &(ota_catalog_change){.add_notices = ns, .n_add_notices = 6});
    /* a replay of what was stored: not an error, nothing changes */
    test_apply_ok(d->s, &(ota_catalog_change){.add_notices = ns, .n_add_notices = 2});

    test_got_notices g;
    test_load_notices_ok(d->s, NULL, &g);
    assert_int_equal(g.n, 5);
    const ota_notice_rec *want[] = {&ns[2], &ns[1], &ns[4], &ns[0], &ns[3]};
    for (size_t i = 0; i < 5; i++)
        test_assert_notice(&g.r[i], want[i]);
    test_got_notices_free(&g);

    test_load_notices_ok(d->s, "t1", &g);
    assert_int_equal(g.n, 4);
    test_assert_notice(&g.r[0], &ns[2]);
    test_assert_notice(&g.r[1], &ns[1]);
    test_assert_notice(&g.r[2], &ns[4]);
    test_assert_notice(&g.r[3], &ns[3]);
    test_got_notices_free(&g);
    test_load_notices_ok(d->s, "t2", &g);
    assert_int_equal(g.n, 1);
    test_assert_notice(&g.r[0], &ns[0]);
    test_got_notices_free(&g);
    test_load_notices_ok(d->s, "t9", &g);
    assert_int_equal(g.n, 0);
}

/* Descriptions: a summary of each one loaded ("vin/counter/task/req/package/files/
 * cose bytes/issued/expires") so that one string comparison checks every field. */
typedef struct {
    char got[8][160];
    size_t n;
} got_descs;

static int collect_desc(void *ctx, const ota_description_rec *d)
{
    got_descs *g = ctx;
    char hex[16] = "";
    for (size_t i = 0; i < d->cose_len && i < 7; i++)
        snprintf(hex + 2 * i, 3, "%02x", d->cose[i]);
    snprintf(g->got[g->n++], sizeof g->got[0], "%s/%llu/%s/%llu/%llu/%s/%s/%lld/%lld", d->vin,
             (unsigned long long)d->counter, d->task, (unsigned long long)d->req,
             (unsigned long long)d->package, d->files, hex, (long long)d->issued_ms,
             (long long)d->expires_ms);
    return 0;
}

static void test_descriptions(void **state)
{
    test_db *d = *state;
    static const uint8_t c1[] = {0xd2, 0x84, 0x00}, c2[] = {0xd2, 0x84, 0x01, 0xff};
    ota_description_rec ds[] = {
        {VIN_B, 1, "t1", 7, 11, "aa,bb", c1, sizeof c1, 100, 200},
        {VIN_A, 2, "t1", 9, 11, "aa", c2, sizeof c2, 300, 400},
        {VIN_A, 1, "t1", 8, 11, "cc", c1, sizeof c1, 150, 250},
        {VIN_A, 2, "t9", 1, 12, "dd", c1, sizeof c1, 500, 600}, /* key again: skipped */
    };
    test_apply_ok(d->s, &(ota_catalog_change){.add_descriptions = ds, .n_add_descriptions = 4});
    got_descs g = {0};
    assert_int_equal(ota_store_load_descriptions(d->s, NULL, collect_desc, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.got[0], VIN_A "/1/t1/8/11/cc/d28400/150/250");
    assert_string_equal(g.got[1], VIN_A "/2/t1/9/11/aa/d28401ff/300/400");
    assert_string_equal(g.got[2], VIN_B "/1/t1/7/11/aa,bb/d28400/100/200");
    g.n = 0;
    assert_int_equal(ota_store_load_descriptions(d->s, VIN_B, collect_desc, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.got[0], VIN_B "/1/t1/7/11/aa,bb/d28400/100/200");
    /* a description without its signed bytes is refused, and nothing of the change stored */
    ota_description_rec bad[] = {{VIN_C, 1, "t1", 1, 11, "aa", c1, sizeof c1, 1, 2},
                                 {VIN_C, 2, "t1", 1, 11, "aa", NULL, 0, 1, 2}};
    test_apply_fails(d, &(ota_catalog_change){.add_descriptions = bad, .n_add_descriptions = 2},
                     "description 1 of the change: no cose");
    g.n = 0;
    assert_int_equal(ota_store_load_descriptions(d->s, VIN_C, collect_desc, &g), 0);
    assert_int_equal(g.n, 0);
}

static void test_task_and_setting_docs(void **state)
{
    test_db *d = *state;
    ota_store_doc docs[] = {
        {OTA_DOC_TASK, "t2", "{\"id\":\"t2\",\"state\":\"active\"}"},
        {OTA_DOC_TASK, "t1", "{\"id\":\"t1\",\"state\":\"active\"}"},
        {OTA_DOC_SETTING, "task_type_rules:normal", "{\"statuses\":[\"in_stock\"]}"},
        {OTA_DOC_SETTING, "t1", "{\"not\":\"a task\"}"}, /* same key, other kind */
    };
    test_apply_ok(d->s, &(ota_catalog_change){.docs = docs, .n_docs = 4});
    ota_store_doc change[] = {{OTA_DOC_TASK, "t1", "{\"id\":\"t1\",\"state\":\"canceled\"}"},
                              {OTA_DOC_TASK, "t2", NULL}};
    test_apply_ok(d->s, &(ota_catalog_change){.docs = change, .n_docs = 2});

    char json[128];
    test_sql_text(d->path, "SELECT doc FROM ota_task WHERE key = 't1'", json, sizeof json);
    assert_string_equal(json, change[0].json);
    assert_int_equal(test_sql_int(d->path, "SELECT COUNT(*) FROM ota_task"), 1);
    test_sql_text(d->path, "SELECT doc FROM ota_setting WHERE key = 't1'", json, sizeof json);
    assert_string_equal(json, docs[3].json);
    assert_int_equal(count_docs(d->s, OTA_DOC_TASK), 1);
    assert_int_equal(count_docs(d->s, OTA_DOC_SETTING), 2);
    assert_int_equal(count_docs(d->s, OTA_DOC_PACKAGE), 0);
}

/* A change touching every part, catalog and task engine, for the atomicity tests. */
typedef struct {
    ota_vehicle_rec vs[2];
    ota_store_doc docs[2];
    const char *add[1];
    ota_exec_rec es[3];
    ota_shadow_rec ss[2];
    ota_notice_rec ns[2];
    ota_catalog_change c;
} big_change;

static void big_change_init(big_change *b)
{
    memset(b, 0, sizeof *b);
    b->vs[0] = vehicle(VIN_A);
    b->vs[1] = vehicle(VIN_B);
    b->docs[0] = (ota_store_doc){OTA_DOC_TASK, "t1", "{\"id\":\"t1\"}"};
    b->docs[1] = (ota_store_doc){OTA_DOC_SETTING, "task_type_rules:forced", "{}"};
    b->add[0] = VIN_B;
    b->es[0] = queued_exec("t1", VIN_A);
    b->es[1] = queued_exec("t1", VIN_B);
    b->es[2] = full_exec("t1", VIN_C, OTA_EXEC_REJECTED);
    b->ss[0] = (ota_shadow_rec){VIN_A, 1, "{}", "{\"task\":{}}", 10};
    b->ss[1] = (ota_shadow_rec){VIN_B, 1, "{}", NULL, 10};
    b->ns[0] = (ota_notice_rec){"t1", VIN_A, 1, "2.0.0", "t1:" VIN_A ":0", 10};
    b->ns[1] = (ota_notice_rec){"t1", VIN_B, 1, "2.0.0", "t1:" VIN_B ":0", 11};
    b->c = (ota_catalog_change){.put_vehicles = b->vs,
                                .n_put_vehicles = 2,
                                .docs = b->docs,
                                .n_docs = 2,
                                .list = OTA_LIST_BLACKLIST,
                                .list_add = b->add,
                                .n_list_add = 1,
                                .put_execs = b->es,
                                .n_put_execs = 3,
                                .put_shadows = b->ss,
                                .n_put_shadows = 2,
                                .add_notices = b->ns,
                                .n_add_notices = 2};
}

static int count_list(void *ctx, ota_list_kind list, const char *vin)
{
    (void)list, (void)vin;
    ++*(size_t *)ctx;
    return 0;
}

/* Nothing of big_change is stored (the vehicle and execution of before_vin aside). */
static void assert_nothing_stored(ota_store *s, size_t vehicles, size_t execs)
{
    assert_int_equal(count_vehicles(s), vehicles);
    assert_int_equal(count_docs(s, OTA_DOC_TASK), 0);
    assert_int_equal(count_docs(s, OTA_DOC_SETTING), 0);
    size_t lists = 0;
    assert_int_equal(ota_store_load_lists(s, count_list, &lists), 0);
    assert_int_equal(lists, 0);
    assert_int_equal(count_execs(s), execs);
    assert_int_equal(count_shadows(s), 0);
    assert_int_equal(count_notices(s), 0);
}

static void test_atomic_invalid_part(void **state)
{
    test_db *d = *state;
    big_change b;
    big_change_init(&b);

    b.es[2].vin = NULL; /* the last execution */
    test_apply_fails(d, &b.c, "execution 2 of the change: no vin");
    b.es[2].vin = VIN_C;
    b.es[1].task = NULL;
    test_apply_fails(d, &b.c, "execution 1 of the change: no task");
    b.es[1].task = "t1";
    b.es[2].state = (ota_exec_state)OTA_EXEC_STATE_COUNT;
    test_apply_fails(d, &b.c, "execution 2 of the change: unknown state 11");
    b.es[2].state = OTA_EXEC_FAILED;
    b.ss[1].reported = NULL;
    test_apply_fails(d, &b.c, "shadow 1 of the change: no reported");
    b.ss[1].reported = "{}";
    b.ss[0].vin = NULL;
    test_apply_fails(d, &b.c, "shadow 0 of the change: no vin");
    b.ss[0].vin = VIN_A;
    b.ns[1].msg_id = NULL;
    test_apply_fails(d, &b.c, "notice 1 of the change: no msg_id");
    b.ns[1].msg_id = "m";
    b.ns[1].version = NULL;
    test_apply_fails(d, &b.c, "notice 1 of the change: no version");
    b.ns[1].version = "2.0.0";
    b.ns[1].package = (uint64_t)INT64_MAX + 1;
    test_apply_fails(d, &b.c, "notice 1 of the change: package above 2^63-1");
    b.ns[1].package = 1;
    b.c.put_execs = NULL; /* a count without an array */
    test_apply_fails(d, &b.c, "execution 0 of the change: missing");
    b.c.put_execs = b.es;
    b.c.add_notices = NULL;
    test_apply_fails(d, &b.c, "notice 0 of the change: missing");
    assert_nothing_stored(d->s, 0, 0);

    /* fixed, the same change goes in whole */
    b.c.add_notices = b.ns;
    test_apply_ok(d->s, &b.c);
    assert_int_equal(count_vehicles(d->s), 2);
    assert_int_equal(count_docs(d->s, OTA_DOC_TASK), 1);
    assert_int_equal(count_docs(d->s, OTA_DOC_SETTING), 1);
    assert_int_equal(count_execs(d->s), 3);
    assert_int_equal(count_shadows(d->s), 2);
    assert_int_equal(count_notices(d->s), 2);
}

/* SQLite itself refuses the last notice (a trigger planted behind the store's back):
 * everything the change wrote before it, catalog parts included, is rolled back and
 * what was stored before is as it was. */
static void test_atomic_sqlite_error(void **state)
{
    test_db *d = *state;
    ota_vehicle_rec old_v = vehicle(VIN_C);
    ota_exec_rec old_e = queued_exec("t1", VIN_A);
    test_apply_ok(d->s, &(ota_catalog_change){.put_vehicles = &old_v,
                                              .n_put_vehicles = 1,
                                              .put_execs = &old_e,
                                              .n_put_execs = 1});
    test_sql_exec(d->path, "CREATE TRIGGER no_b BEFORE INSERT ON ota_vehicle_download_notice "
                           "WHEN NEW.vin = '" VIN_B "' BEGIN SELECT RAISE(ABORT, 'no B'); END");
    /* the handle prepared its statements before the trigger existed: SQLite re-prepares */
    big_change b;
    big_change_init(&b);
    test_apply_fails(d, &b.c, "notice 1 of the change (ota_vehicle_download_notice)");
    test_apply_fails(d, &b.c, "no B");
    assert_nothing_stored(d->s, 1, 1);
    test_got_execs g;
    test_load_execs_ok(d->s, &g);
    test_assert_exec(&g.e[0], &old_e);
    test_got_execs_free(&g);

    /* the handle stays usable */
    test_sql_exec(d->path, "DROP TRIGGER no_b");
    test_apply_ok(d->s, &b.c);
    assert_int_equal(count_vehicles(d->s), 3);
    assert_int_equal(count_execs(d->s), 3);
    assert_int_equal(count_notices(d->s), 2);
}

/* ---- latest statuses ---- */

typedef struct {
    size_t n;
    char vin[TEST_GOT_MAX][OTA_VIN_LEN + 1];
    uint64_t seq[TEST_GOT_MAX];
    uint32_t index[TEST_GOT_MAX];
    char status[TEST_GOT_MAX][32];
    char trigger[TEST_GOT_MAX][32];
    int has_error[TEST_GOT_MAX];
    int64_t received_ms[TEST_GOT_MAX];
} got_latest;

static void collect_latest(void *ctx, const ota_store_event *e)
{
    got_latest *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    assert_int_equal(e->ev->type, OTA_EV_UPGRADE_STATUS);
    snprintf(g->vin[g->n], sizeof g->vin[0], "%s", e->vin);
    g->seq[g->n] = e->seq;
    g->index[g->n] = e->ev->index;
    snprintf(g->status[g->n], sizeof g->status[0], "%s", e->ev->status);
    snprintf(g->trigger[g->n], sizeof g->trigger[0], "%s", e->ev->trigger);
    g->has_error[g->n] = e->ev->error != NULL;
    g->received_ms[g->n] = e->received_ms;
    g->n++;
}

static ota_event status_event(uint32_t index, const char *status)
{
    return (ota_event){.type = OTA_EV_UPGRADE_STATUS,
                       .index = index,
                       .task = "t1",
                       .ts = 1000,
                       .pct = -1,
                       .bytes = -1,
                       .at = -1,
                       .status = status,
                       .trigger = "normal"};
}

static void test_latest_statuses(void **state)
{
    test_db *d = *state;
    got_latest g = {0};
    assert_int_equal(ota_store_load_latest_statuses(d->s, collect_latest, &g), 0);
    assert_int_equal(g.n, 0);

    ota_event ev[] = {status_event(0, "waiting"), status_event(1, "upgrading"),
                      status_event(0, "succeeded"), status_event(2, "failed"),
                      status_event(0, "rolling_back")};
    ev[3].error = "E42";
    ota_event progress = {.type = OTA_EV_DOWNLOAD_PROGRESS,
                          .index = 0,
                          .task = "t1",
                          .ts = 1,
                          .pct = 50,
                          .bytes = -1,
                          .at = -1};
    ota_store_event se[] = {
        /* VIN_A: received together, seq 9 idx 1 beats seq 9 idx 0 and seq 3 */
        {VIN_A, 9, 2, &ev[0], NULL},
        {VIN_A, 9, 2, &ev[1], NULL},
        {VIN_A, 3, 2, &ev[2], NULL},
        /* VIN_B: seq 20 idx 2 beats seq 20 idx 0; seq 10 is older (received before); a
         * newer progress event of another type does not count */
        {VIN_B, 10, 4, &ev[4], NULL},
        {VIN_B, 20, 5, &ev[3], NULL},
        {VIN_B, 20, 5, &ev[0], NULL},
        {VIN_B, 99, 7, &progress, NULL},
        /* VIN_C: one event, seq above 2^32 */
        {VIN_C, UINT64_C(1) << 40, 8, &ev[2], NULL},
    };
    ota_store_put_result r;
    char err[256];
    assert_int_equal(ota_store_put_events(d->s, se, sizeof se / sizeof se[0], &r, err, sizeof err),
                     0);
    assert_int_equal(r.inserted, 8);
    /* a VIN with only other events has no latest status */
    ota_store_event only_progress = {"ZZZZZZZZZZZZZZZZZ", 1, 9, &progress, NULL};
    assert_int_equal(ota_store_put_events(d->s, &only_progress, 1, &r, err, sizeof err), 0);

    assert_int_equal(ota_store_load_latest_statuses(d->s, collect_latest, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.vin[0], VIN_A); /* by VIN */
    assert_int_equal(g.seq[0], 9);
    assert_int_equal(g.index[0], 1);
    assert_string_equal(g.status[0], "upgrading");
    assert_int_equal(g.received_ms[0], 2);
    assert_string_equal(g.vin[1], VIN_C);
    assert_int_equal(g.seq[1], UINT64_C(1) << 40);
    assert_string_equal(g.status[1], "succeeded");
    assert_string_equal(g.vin[2], VIN_B);
    assert_int_equal(g.seq[2], 20);
    assert_int_equal(g.index[2], 2);
    assert_string_equal(g.status[2], "failed");
    assert_string_equal(g.trigger[2], "normal");
    assert_true(g.has_error[2]);
    assert_false(g.has_error[0]);

    /* the same answer as ota_store_latest_status, VIN by VIN */
    for (size_t i = 0; i < g.n; i++) {
        got_latest one = {0};
        assert_int_equal(ota_store_latest_status(d->s, g.vin[i], collect_latest, &one), 1);
        assert_int_equal(one.seq[0], g.seq[i]);
        assert_int_equal(one.index[0], g.index[i]);
    }
    assert_int_equal(ota_store_load_latest_statuses(d->s, NULL, NULL), -1);
}

/* ---- loaders: stopping, re-entry, bad arguments, unknown stored values ---- */

static void test_loader_stop(void **state)
{
    test_db *d = *state;
    big_change b;
    big_change_init(&b);
    test_apply_ok(d->s, &b.c);

    test_got_execs ge = {.stop_after = 1};
    assert_int_equal(ota_store_load_execs(d->s, test_collect_exec, &ge), -1);
    assert_int_equal(ge.n, 1);
    test_got_execs_free(&ge);
    test_got_shadows gs = {.stop_after = 1};
    assert_int_equal(ota_store_load_shadows(d->s, test_collect_shadow, &gs), -1);
    assert_int_equal(gs.n, 1);
    test_got_shadows_free(&gs);
    test_got_notices gn = {.stop_after = 1};
    assert_int_equal(ota_store_load_notices(d->s, "t1", test_collect_notice, &gn), -1);
    assert_int_equal(gn.n, 1);
    test_got_notices_free(&gn);
    gn = (test_got_notices){.stop_after = 1};
    assert_int_equal(ota_store_load_notices(d->s, NULL, test_collect_notice, &gn), -1);
    test_got_notices_free(&gn);

    /* a stopped walk leaves nothing behind */
    assert_int_equal(count_execs(d->s), 3);
    assert_int_equal(count_shadows(d->s), 2);
    assert_int_equal(count_notices(d->s), 2);
}

/* An execution callback that tries to load again from inside the walk. */
static int nested_exec(void *ctx, const ota_exec_rec *e)
{
    (void)e;
    ota_store *s = ctx;
    return ota_store_load_execs(s, nested_exec, s) == -1 ? 0 : 1;
}

/* A notice callback loading the same task's notices again from inside the walk. */
static int nested_notice(void *ctx, const ota_notice_rec *n)
{
    ota_store *s = ctx;
    return ota_store_load_notices(s, n->task, nested_notice, s) == -1 ? 0 : 1;
}

static void test_bad_arguments(void **state)
{
    test_db *d = *state;
    assert_int_equal(ota_store_load_execs(d->s, NULL, NULL), -1);
    assert_int_equal(ota_store_load_shadows(d->s, NULL, NULL), -1);
    assert_int_equal(ota_store_load_notices(d->s, NULL, NULL, NULL), -1);
    assert_int_equal(ota_store_load_notices(d->s, "t1", NULL, NULL), -1);
    /* an empty change with arrays but no counts stores nothing */
    big_change b;
    big_change_init(&b);
    test_apply_ok(
        d->s, &(ota_catalog_change){.put_execs = b.es, .put_shadows = b.ss, .add_notices = b.ns});
    assert_int_equal(count_execs(d->s), 0);
    test_apply_ok(d->s, &b.c);
    assert_int_equal(ota_store_load_execs(d->s, nested_exec, d->s), 0);
    assert_int_equal(ota_store_load_notices(d->s, "t1", nested_notice, d->s), 0);
}

/* A state name this build does not know, written behind the store's back, is refused
 * rather than silently dropped or mapped. */
static void test_unknown_stored_state(void **state)
{
    test_db *d = *state;
    ota_exec_rec e = queued_exec("t1", VIN_A);
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = &e, .n_put_execs = 1});
    test_sql_exec(d->path, "UPDATE ota_task_vin SET state = 'paused'");
    test_got_execs g = {0};
    assert_int_equal(ota_store_load_execs(d->s, test_collect_exec, &g), -1);
    assert_int_equal(g.n, 0);
}

static void test_reopen(void **state)
{
    test_db *d = *state;
    big_change b;
    big_change_init(&b);
    test_apply_ok(d->s, &b.c);
    ota_store_close(d->s);
    d->s = test_store_open(d->uri);

    test_got_execs ge;
    test_load_execs_ok(d->s, &ge);
    assert_int_equal(ge.n, 3);
    test_assert_exec(&ge.e[0], &b.es[0]);
    test_assert_exec(&ge.e[2], &b.es[1]); /* (t1, VIN_A) < (t1, VIN_C) < (t1, VIN_B) */
    test_assert_exec(&ge.e[1], &b.es[2]);
    test_got_execs_free(&ge);
    test_got_shadows gs;
    test_load_shadows_ok(d->s, &gs);
    assert_int_equal(gs.n, 2);
    test_assert_shadow(&gs.s[0], &b.ss[0]);
    test_got_shadows_free(&gs);
    test_got_notices gn;
    test_load_notices_ok(d->s, "t1", &gn);
    assert_int_equal(gn.n, 2);
    test_assert_notice(&gn.r[1], &b.ns[1]);
    test_got_notices_free(&gn);
}

/* ---- timings ---- */

enum { SPEED_N = 100000, STATUS_VINS = 100000, STATUS_PER_VIN = 10 };

typedef struct {
    size_t n;
    size_t notified;
    int ordered;
    char prev[OTA_VIN_LEN + 1];
} speed_count;

static int count_exec(void *ctx, const ota_exec_rec *e)
{
    speed_count *c = ctx;
    if (c->n > 0 && strcmp(c->prev, e->vin) >= 0)
        c->ordered = 0;
    memcpy(c->prev, e->vin, OTA_VIN_LEN + 1);
    c->notified += e->state == OTA_EXEC_NOTIFIED;
    c->n++;
    return 0;
}

static int count_shadow(void *ctx, const ota_shadow_rec *s)
{
    speed_count *c = ctx;
    c->notified += s->desired != NULL;
    c->n++;
    return 0;
}

static int count_notice(void *ctx, const ota_notice_rec *n)
{
    speed_count *c = ctx;
    c->notified += n->package == 7;
    c->n++;
    return 0;
}

static void count_latest(void *ctx, const ota_store_event *e)
{
    speed_count *c = ctx;
    c->notified += e->seq == 1000 + (STATUS_PER_VIN - 1) / 2 && e->ev->index == 1;
    c->n++;
}

/* 100,000 executions of one task (a task being queued), shadows and notices. */
static void speed_apply(test_db *d, char (*vins)[OTA_VIN_LEN + 1], char (*msg)[40])
{
    ota_exec_rec *es = calloc(SPEED_N, sizeof *es);
    ota_shadow_rec *ss = calloc(SPEED_N, sizeof *ss);
    ota_notice_rec *ns = calloc(SPEED_N, sizeof *ns);
    assert_true(es != NULL && ss != NULL && ns != NULL);
    for (int i = 0; i < SPEED_N; i++) {
        /* VINs in a shuffled order, as an operator's list comes */
        snprintf(vins[i], OTA_VIN_LEN + 1, "LSVAB4180M2%06d", (int)((i * 7919LL) % SPEED_N));
        snprintf(msg[i], 40, "task-0001:%.17s:0", vins[i]);
        es[i] = i % 4 ? queued_exec("task-0001", vins[i])
                      : full_exec("task-0001", vins[i], OTA_EXEC_REJECTED);
        ss[i] = (ota_shadow_rec){vins[i], i, "{\"fw\":\"2.1.0\",\"state\":\"idle\"}",
                                 i % 2 ? NULL : "{\"task\":{\"task\":\"task-0001\"}}", i};
        ns[i] = (ota_notice_rec){"task-0001", vins[i], 7, "2.2.0", msg[i], 1700000000000 + i};
    }
    double t0 = test_now_s();
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = es, .n_put_execs = SPEED_N});
    double t1 = test_now_s();
    test_apply_ok(d->s, &(ota_catalog_change){.put_shadows = ss, .n_put_shadows = SPEED_N});
    double t2 = test_now_s();
    test_apply_ok(d->s, &(ota_catalog_change){.add_notices = ns, .n_add_notices = SPEED_N});
    double t3 = test_now_s();
    for (int i = 0; i < SPEED_N; i++)
        es[i].state = OTA_EXEC_NOTIFIED;
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = es, .n_put_execs = SPEED_N});
    double t4 = test_now_s();
    printf("tasks: apply of %d executions (insert) in %.3f s, again (update) in %.3f s; "
           "%d shadows in %.3f s; %d notices in %.3f s\n",
           SPEED_N, t1 - t0, t4 - t3, SPEED_N, t2 - t1, SPEED_N, t3 - t2);
    free(es);
    free(ss);
    free(ns);
}

static void speed_load(test_db *d)
{
    /* as at start-up: a fresh handle with a cold SQLite page cache */
    ota_store_close(d->s);
    d->s = test_store_open(d->uri);
    speed_count e = {.ordered = 1}, s = {0}, n = {0};
    double t0 = test_now_s();
    assert_int_equal(ota_store_load_execs(d->s, count_exec, &e), 0);
    double t1 = test_now_s();
    assert_int_equal(ota_store_load_shadows(d->s, count_shadow, &s), 0);
    double t2 = test_now_s();
    assert_int_equal(ota_store_load_notices(d->s, NULL, count_notice, &n), 0);
    double t3 = test_now_s();
    assert_int_equal(e.n, SPEED_N);
    assert_int_equal(e.notified, SPEED_N);
    assert_true(e.ordered);
    assert_int_equal(s.n, SPEED_N);
    assert_int_equal(s.notified, SPEED_N / 2);
    assert_int_equal(n.n, SPEED_N);
    assert_int_equal(n.notified, SPEED_N);
    printf("tasks: load of %d executions in %.3f s, %d shadows in %.3f s, %d notices in "
           "%.3f s\n",
           SPEED_N, t1 - t0, SPEED_N, t2 - t1, SPEED_N, t3 - t2);
}

static void test_speed(void **state)
{
    test_db *d = *state;
    static char vins[SPEED_N][OTA_VIN_LEN + 1];
    static char msg[SPEED_N][40];
    speed_apply(d, vins, msg);
    speed_load(d);
}

static void test_latest_statuses_speed(void **state)
{
    test_db *d = *state;
    /* 1,000,000 events of 100,000 VINs, written behind the store's back (fast) */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE v(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM v WHERE n < %d), "
             "s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k < %d) "
             "INSERT INTO ota_vehicle_upgrade_status (vin, seq, idx, task, ts, received_at, "
             "status, trigger) SELECT printf('LSVAB4180M2%%06d', n), 1000 + k / 2, k %% 2, "
             "'t1', k, k, 'upgrading', 'normal' FROM v, s",
             STATUS_VINS - 1, STATUS_PER_VIN - 1);
    test_sql_exec(d->path, sql);
    ota_store_close(d->s);
    d->s = test_store_open(d->uri);
    speed_count c = {0};
    double t0 = test_now_s();
    assert_int_equal(ota_store_load_latest_statuses(d->s, count_latest, &c), 0);
    double t1 = test_now_s();
    assert_int_equal(c.n, STATUS_VINS);
    assert_int_equal(c.notified, STATUS_VINS);
    printf("tasks: latest statuses of %d VINs among %d events in %.3f s\n", STATUS_VINS,
           STATUS_VINS * STATUS_PER_VIN, t1 - t0);
}

/* ---- the executions' wave column (issue 15: counts by wave in the store) ---- */

static int waves_counted(void *ctx, ota_exec_state state, int64_t wave, uint64_t n)
{
    int64_t *by_wave = ctx; /* succeeded per wave + 1 (0: none) */
    if (state == OTA_EXEC_SUCCEEDED && wave < 3)
        by_wave[wave + 1] += (int64_t)n;
    return 0;
}

/* A database made before executions carried their wave gets the column at open: its rows
 * read and count as in no wave, new rows count in theirs. */
static void test_wave_column_added(void **state)
{
    test_db *d = *state;
    ota_exec_rec old_e = full_exec("t1", VIN_A, OTA_EXEC_SUCCEEDED);
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = &old_e, .n_put_execs = 1});
    ota_store_close(d->s);
    test_sql_exec(d->path, "ALTER TABLE ota_task_vin DROP COLUMN wave");
    d->s = test_store_open(d->uri);
    test_got_execs g;
    test_load_execs_ok(d->s, &g);
    assert_int_equal(g.n, 1);
    assert_true(g.e[0].wave < 0);
    test_got_execs_free(&g);
    ota_exec_rec new_e = full_exec("t1", VIN_B, OTA_EXEC_SUCCEEDED);
    new_e.wave = 1;
    test_apply_ok(d->s, &(ota_catalog_change){.put_execs = &new_e, .n_put_execs = 1});
    int64_t by_wave[4] = {0};
    char err[256] = "";
    assert_int_equal(
        ota_store_count_task_execs(d->s, "t1", waves_counted, by_wave, err, sizeof err), 0);
    assert_int_equal(by_wave[0], 1); /* the old row: no wave */
    assert_int_equal(by_wave[2], 1); /* wave 1 */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_db_setup, test_db_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_schema),
        T(test_state_names),
        T(test_exec_round_trip),
        T(test_exec_upsert_replaces),
        T(test_shadows),
        T(test_notices),
        T(test_descriptions),
        T(test_task_and_setting_docs),
        T(test_atomic_invalid_part),
        T(test_atomic_sqlite_error),
        T(test_latest_statuses),
        T(test_loader_stop),
        T(test_bad_arguments),
        T(test_unknown_stored_state),
        T(test_reopen),
        T(test_wave_column_added),
        T(test_speed),
        T(test_latest_statuses_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
