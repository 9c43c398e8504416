/*
 * test_store_catalog.c — cmocka tests of the catalog part of the store interface
 * (ota_store_apply and the loaders) on the SQLite backend, against real database files
 * under $OTA_TEST_TMP (one fresh file per test, /tmp if unset).
 *
 * Covers: the schema's tables; vehicles read back field by field (absent optionals NULL,
 * public key present or not) in VIN order; upsert replacing a vehicle; deleting vehicles;
 * documents of every kind (upsert, replace, delete, key order, kinds kept apart); lists
 * (adding twice counts once, removal, (list, vin) order, stored by name); atomicity (an
 * invalid last part and an SQLite failure in the middle store nothing, and leave the
 * handle usable); loaders stopping when the callback says so; bad arguments; odd rows
 * written behind the store's back (an unknown list, a key not 32 bytes long); data
 * surviving close + reopen; and a timed load of 100,000 vehicles (printed, not asserted).
 */
#include "ota_store.h"
#include "test_fixtures.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define VIN_A "1HGCM82633A004352"
#define VIN_B "WVWZZZ1JZXW000001"
#define VIN_C "JH4KA7561PC008269"

/* ---- building changes ---- */

/* A vehicle with every field set; key_seed != 0 gives it a public key. */
static ota_vehicle_rec full_vehicle(const char *vin, uint8_t key_seed)
{
    ota_vehicle_rec v = {.vin = (char *)vin,
                         .model = "M1",
                         .series = "S-2024",
                         .platform = "P7",
                         .status = "in_stock",
                         .usage = "fleet",
                         .sold = true,
                         .activated = true,
                         .passenger = false,
                         .config_word = "0011AAFF",
                         .fw = "2.10.1",
                         .has_public_key = key_seed != 0};
    for (int i = 0; i < OTA_PUBKEY_LEN && key_seed != 0; i++)
        v.public_key[i] = (uint8_t)(key_seed + i * 7);
    return v;
}

/* A vehicle with every optional field absent and the defaults. */
static ota_vehicle_rec sparse_vehicle(const char *vin)
{
    ota_vehicle_rec v = {.vin = (char *)vin,
                         .model = "M2",
                         .series = "S-2025",
                         .status = "assembly_offline",
                         .usage = "retail",
                         .passenger = true};
    return v;
}

static size_t count_vehicles(ota_store *s)
{
    test_got_vehicles g;
    test_load_vehicles_ok(s, &g);
    size_t n = g.n;
    test_got_vehicles_free(&g);
    return n;
}

static size_t count_docs(ota_store *s, ota_doc_kind kind)
{
    test_got_docs g;
    test_load_docs_ok(s, kind, &g);
    size_t n = g.n;
    test_got_docs_free(&g);
    return n;
}

static size_t count_lists(ota_store *s)
{
    test_got_lists g;
    test_load_lists_ok(s, &g);
    return g.n;
}

/* Vehicles, documents of every kind and list members: all zero. */
static void assert_catalog_empty(ota_store *s)
{
    assert_int_equal(count_vehicles(s), 0);
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++)
        assert_int_equal(count_docs(s, (ota_doc_kind)k), 0);
    assert_int_equal(count_lists(s), 0);
}

/* ---- tests ---- */

static void test_schema(void **state)
{
    test_db *f = *state;
    static const char *const tables[] = {"ota_vehicle",
                                         "ota_vehicle_model",
                                         "ota_package",
                                         "ota_upgrade_strategy",
                                         "ota_upgrade_strategy_relation",
                                         "ota_file",
                                         "ota_vehicle_list"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '%s' "
                 "AND sql LIKE '%%WITHOUT ROWID'",
                 tables[i]);
        if (test_sql_int(f->path, sql) != 1)
            fail_msg("table %s missing or not WITHOUT ROWID", tables[i]);
    }
    assert_catalog_empty(f->s);
}

static void test_vehicle_round_trip(void **state)
{
    test_db *f = *state;
    /* out of VIN order on purpose: the loader returns VIN order */
    ota_vehicle_rec vs[3] = {full_vehicle(VIN_B, 0x11), sparse_vehicle(VIN_A),
                             full_vehicle(VIN_C, 0)};
    ota_catalog_change c = {.put_vehicles = vs, .n_put_vehicles = 3};
    test_apply_ok(f->s, &c);

    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 3);
    test_assert_vehicle(&g.v[0], &vs[1]); /* VIN_A < VIN_C < VIN_B */
    test_assert_vehicle(&g.v[1], &vs[2]);
    test_assert_vehicle(&g.v[2], &vs[0]);
    assert_false(g.v[1].has_public_key);
    test_got_vehicles_free(&g);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle WHERE public_key IS "
                                           "NULL AND platform IS NULL"),
                     1);
}

static void test_vehicle_upsert_replaces(void **state)
{
    test_db *f = *state;
    ota_vehicle_rec v = full_vehicle(VIN_A, 0x42);
    ota_catalog_change c = {.put_vehicles = &v, .n_put_vehicles = 1};
    test_apply_ok(f->s, &c);
    /* every column replaced, optional ones (and the key) removed */
    ota_vehicle_rec w = sparse_vehicle(VIN_A);
    w.sold = true;
    c.put_vehicles = &w;
    test_apply_ok(f->s, &c);

    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 1);
    test_assert_vehicle(&g.v[0], &w);
    test_got_vehicles_free(&g);

    /* and back: the key and optionals return */
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = &v, .n_put_vehicles = 1});
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 1);
    test_assert_vehicle(&g.v[0], &v);
    test_got_vehicles_free(&g);
}

static void test_vehicle_delete(void **state)
{
    test_db *f = *state;
    ota_vehicle_rec vs[3] = {full_vehicle(VIN_A, 1), full_vehicle(VIN_B, 2), sparse_vehicle(VIN_C)};
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = vs, .n_put_vehicles = 3});
    /* deleting an unknown VIN is not an error */
    const char *del[] = {VIN_B, "ZZZZZZZZZZZZZZZZZ"};
    test_apply_ok(f->s, &(ota_catalog_change){.delete_vehicles = del, .n_delete_vehicles = 2});

    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_vehicle(&g.v[0], &vs[0]);
    test_assert_vehicle(&g.v[1], &vs[2]);
    test_got_vehicles_free(&g);

    /* put and delete of the same VIN in one change: deletes come after puts */
    ota_vehicle_rec b = sparse_vehicle(VIN_B);
    const char *del_b[] = {VIN_B};
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = &b,
                                              .n_put_vehicles = 1,
                                              .delete_vehicles = del_b,
                                              .n_delete_vehicles = 1});
    assert_int_equal(count_vehicles(f->s), 2);
}

static const char *const DOC_KEYS[OTA_DOC_KIND_COUNT + 1][2] = {
    [OTA_DOC_MODEL] = {"M1/S-2024", "M2/S-2025"},
    [OTA_DOC_PACKAGE] = {"1", "2"},
    [OTA_DOC_STRATEGY] = {"fast", "slow"},
    [OTA_DOC_BINDING] = {"default:M1/S-2024", "vin:" VIN_A},
    [OTA_DOC_FILE] = {"0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                      "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"},
    [OTA_DOC_TASK] = {"task-1", "task-2"},
    [OTA_DOC_SETTING] = {"task_type_rules:forced", "task_type_rules:normal"},
    [OTA_DOC_RXSWIN] = {"task-1/" VIN_A, "task-2/" VIN_A},
};

static void doc_json(char *buf, size_t len, int kind, int i)
{
    snprintf(buf, len, "{\"kind\":%d,\"n\":%d,\"text\":\"é ünïcode \\\"quoted\\\"\"}", kind, i);
}

static void test_docs_every_kind(void **state)
{
    test_db *f = *state;
    ota_store_doc docs[2 * OTA_DOC_KIND_COUNT];
    char json[2 * OTA_DOC_KIND_COUNT][128];
    size_t n = 0;
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++) {
        for (int i = 1; i >= 0; i--) { /* second key first: the loader sorts */
            doc_json(json[n], sizeof json[n], k, i);
            docs[n] = (ota_store_doc){(ota_doc_kind)k, DOC_KEYS[k][i], json[n]};
            n++;
        }
    }
    test_apply_ok(f->s, &(ota_catalog_change){.docs = docs, .n_docs = n});

    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++) {
        test_got_docs g;
        test_load_docs_ok(f->s, (ota_doc_kind)k, &g);
        assert_int_equal(g.n, 2);
        for (int i = 0; i < 2; i++) {
            char want[128];
            doc_json(want, sizeof want, k, i);
            assert_string_equal(g.key[i], DOC_KEYS[k][i]);
            assert_string_equal(g.json[i], want);
        }
        test_got_docs_free(&g);
    }
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_package"), 2);
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_upgrade_strategy_relation"),
                     2);
    assert_int_equal(count_vehicles(f->s), 0);
}

static void test_doc_replace_and_delete(void **state)
{
    test_db *f = *state;
    ota_store_doc put[] = {{OTA_DOC_PACKAGE, "1", "{\"v\":1}"},
                           {OTA_DOC_PACKAGE, "2", "{\"v\":2}"},
                           {OTA_DOC_STRATEGY, "1", "{\"s\":1}"}};
    test_apply_ok(f->s, &(ota_catalog_change){.docs = put, .n_docs = 3});
    /* replace package 1, delete package 2, delete an absent key (not an error); the
     * strategy with the same key is another kind and stays */
    ota_store_doc change[] = {{OTA_DOC_PACKAGE, "1", "{\"v\":10}"},
                              {OTA_DOC_PACKAGE, "2", NULL},
                              {OTA_DOC_FILE, "nope", NULL}};
    test_apply_ok(f->s, &(ota_catalog_change){.docs = change, .n_docs = 3});

    test_got_docs g;
    test_load_docs_ok(f->s, OTA_DOC_PACKAGE, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.key[0], "1");
    assert_string_equal(g.json[0], "{\"v\":10}");
    test_got_docs_free(&g);
    test_load_docs_ok(f->s, OTA_DOC_STRATEGY, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.json[0], "{\"s\":1}");
    test_got_docs_free(&g);

    /* a put then a delete of one key in one change: in order, so it ends deleted */
    ota_store_doc both[] = {{OTA_DOC_MODEL, "M/S", "{}"}, {OTA_DOC_MODEL, "M/S", NULL}};
    test_apply_ok(f->s, &(ota_catalog_change){.docs = both, .n_docs = 2});
    assert_int_equal(count_docs(f->s, OTA_DOC_MODEL), 0);
}

static void test_lists(void **state)
{
    test_db *f = *state;
    const char *black[] = {VIN_C, VIN_A, VIN_A}; /* a duplicate in one change */
    test_apply_ok(f->s, &(ota_catalog_change){
                            .list = OTA_LIST_BLACKLIST, .list_add = black, .n_list_add = 3});
    test_apply_ok(f->s, &(ota_catalog_change){
                            .list = OTA_LIST_BLACKLIST, .list_add = black, .n_list_add = 2});
    const char *down[] = {VIN_B, VIN_A};
    test_apply_ok(f->s, &(ota_catalog_change){.list = OTA_LIST_DOWNGRADE_WHITELIST,
                                              .list_add = down,
                                              .n_list_add = 2});
    const char *forced[] = {VIN_B};
    test_apply_ok(f->s, &(ota_catalog_change){.list = OTA_LIST_FORCED_WHITELIST,
                                              .list_add = forced,
                                              .n_list_add = 1});

    /* ordered by list name, then VIN */
    test_got_lists g;
    test_load_lists_ok(f->s, &g);
    assert_int_equal(g.n, 5);
    ota_list_kind want_list[] = {OTA_LIST_BLACKLIST, OTA_LIST_BLACKLIST,
                                 OTA_LIST_DOWNGRADE_WHITELIST, OTA_LIST_DOWNGRADE_WHITELIST,
                                 OTA_LIST_FORCED_WHITELIST};
    const char *want_vin[] = {VIN_A, VIN_C, VIN_A, VIN_B, VIN_B};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(g.list[i], want_list[i]);
        assert_string_equal(g.vin[i], want_vin[i]);
    }
    assert_int_equal(test_sql_int(f->path, "SELECT COUNT(*) FROM ota_vehicle_list WHERE list = "
                                           "'downgrade_whitelist'"),
                     2);

    /* removal touches only the named list; removing a non-member is not an error */
    const char *rm[] = {VIN_A, VIN_B};
    test_apply_ok(f->s, &(ota_catalog_change){
                            .list = OTA_LIST_BLACKLIST, .list_remove = rm, .n_list_remove = 2});
    test_load_lists_ok(f->s, &g);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.list[0], OTA_LIST_BLACKLIST);
    assert_string_equal(g.vin[0], VIN_C);
    assert_int_equal(g.list[1], OTA_LIST_DOWNGRADE_WHITELIST);
    assert_string_equal(g.vin[1], VIN_A);

    /* add and remove of one VIN in one change: removals come after additions */
    const char *same[] = {VIN_B};
    test_apply_ok(f->s, &(ota_catalog_change){.list = OTA_LIST_SAME_VERSION_WHITELIST,
                                              .list_add = same,
                                              .n_list_add = 1,
                                              .list_remove = same,
                                              .n_list_remove = 1});
    assert_int_equal(count_lists(f->s), 4);
}

/* A change touching every part, for the atomicity tests. */
typedef struct {
    ota_vehicle_rec vs[3];
    const char *del[1];
    ota_store_doc docs[3];
    const char *add[2];
    ota_catalog_change c;
} big_change;

static void big_change_init(big_change *b)
{
    memset(b, 0, sizeof *b);
    b->vs[0] = full_vehicle(VIN_A, 9);
    b->vs[1] = sparse_vehicle(VIN_B);
    b->vs[2] = full_vehicle(VIN_C, 0);
    b->del[0] = VIN_C;
    b->docs[0] = (ota_store_doc){OTA_DOC_MODEL, "M1/S-2024", "{}"};
    b->docs[1] = (ota_store_doc){OTA_DOC_PACKAGE, "1", "{\"id\":1}"};
    b->docs[2] = (ota_store_doc){OTA_DOC_FILE, "abc", "{\"size\":3}"};
    b->add[0] = VIN_A;
    b->add[1] = VIN_B;
    b->c = (ota_catalog_change){.put_vehicles = b->vs,
                                .n_put_vehicles = 3,
                                .delete_vehicles = b->del,
                                .n_delete_vehicles = 1,
                                .docs = b->docs,
                                .n_docs = 3,
                                .list = OTA_LIST_FORCED_WHITELIST,
                                .list_add = b->add,
                                .n_list_add = 2};
}

static void test_atomic_invalid_part(void **state)
{
    test_db *f = *state;
    big_change b;
    big_change_init(&b);

    b.docs[2].kind = (ota_doc_kind)99; /* the very last document */
    test_apply_fails(f, &b.c, "document 2 of the change (kind 99): unknown document kind");
    b.docs[2].kind = 0;
    test_apply_fails(f, &b.c, "unknown document kind");
    b.docs[2].kind = OTA_DOC_FILE;
    b.docs[1].key = NULL;
    test_apply_fails(f, &b.c, "document 1 of the change (kind 2): no key");
    b.docs[1].key = "1";
    b.vs[2].vin = NULL;
    test_apply_fails(f, &b.c, "vehicle 2 of the change: no VIN");
    b.vs[2].vin = VIN_C;
    b.del[0] = NULL;
    test_apply_fails(f, &b.c, "deleted vehicle 0 of the change: no VIN");
    b.del[0] = VIN_C;
    b.add[1] = NULL;
    test_apply_fails(f, &b.c, "list addition 1 of the change: no VIN");
    b.add[1] = VIN_B;
    b.c.list = (ota_list_kind)7;
    test_apply_fails(f, &b.c, "unknown list 7");
    b.c.list = OTA_LIST_FORCED_WHITELIST;
    const char *rm[] = {VIN_A, NULL};
    b.c.list_remove = rm;
    b.c.n_list_remove = 2;
    test_apply_fails(f, &b.c, "list removal 1 of the change: no VIN");
    b.c.n_list_remove = 0;
    b.c.docs = NULL; /* a count without an array */
    test_apply_fails(f, &b.c, "document 0 of the change");
    assert_catalog_empty(f->s);

    /* fixed, the same change goes in whole */
    b.c.docs = b.docs;
    test_apply_ok(f->s, &b.c);
    assert_int_equal(count_vehicles(f->s), 2); /* VIN_C put, then deleted */
    assert_int_equal(count_docs(f->s, OTA_DOC_MODEL), 1);
    assert_int_equal(count_docs(f->s, OTA_DOC_PACKAGE), 1);
    assert_int_equal(count_docs(f->s, OTA_DOC_FILE), 1);
    assert_int_equal(count_lists(f->s), 2);
}

/* SQLite itself refuses a vehicle in the middle of the change (model NULL violates NOT
 * NULL): what the change did before it, and what was stored before, must be as it was. */
static void test_atomic_sqlite_error(void **state)
{
    test_db *f = *state;
    ota_vehicle_rec old = full_vehicle(VIN_C, 3);
    ota_store_doc old_doc = {OTA_DOC_STRATEGY, "s1", "{\"old\":true}"};
    test_apply_ok(f->s,
                  &(ota_catalog_change){
                      .put_vehicles = &old, .n_put_vehicles = 1, .docs = &old_doc, .n_docs = 1});

    big_change b;
    big_change_init(&b);
    b.vs[0] = full_vehicle(VIN_C, 4); /* would replace the stored one */
    b.vs[1].model = NULL;
    b.del[0] = VIN_C;
    b.docs[0] = (ota_store_doc){OTA_DOC_STRATEGY, "s1", NULL};
    test_apply_fails(f, &b.c, "vehicle 1 of the change (ota_vehicle)");
    test_apply_fails(f, &b.c, "NOT NULL constraint failed: ota_vehicle.model");

    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 1);
    test_assert_vehicle(&g.v[0], &old);
    test_got_vehicles_free(&g);
    test_got_docs d;
    test_load_docs_ok(f->s, OTA_DOC_STRATEGY, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.json[0], "{\"old\":true}");
    test_got_docs_free(&d);
    assert_int_equal(count_docs(f->s, OTA_DOC_MODEL), 0);
    assert_int_equal(count_lists(f->s), 0);

    /* the handle stays usable: the fixed change is stored (VIN_C put twice, then
     * deleted: only VIN_B is left) */
    b.vs[1].model = "M2";
    test_apply_ok(f->s, &b.c);
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 1);
    test_assert_vehicle(&g.v[0], &b.vs[1]);
    test_got_vehicles_free(&g);
    assert_int_equal(count_docs(f->s, OTA_DOC_STRATEGY), 0);
}

static void test_loader_stop(void **state)
{
    test_db *f = *state;
    big_change b;
    big_change_init(&b);
    test_apply_ok(f->s, &b.c);
    ota_store_doc more = {OTA_DOC_FILE, "def", "{}"};
    test_apply_ok(f->s, &(ota_catalog_change){.docs = &more, .n_docs = 1});

    test_got_vehicles gv = {.stop_after = 1};
    assert_int_equal(ota_store_load_vehicles(f->s, test_collect_vehicle, &gv), -1);
    assert_int_equal(gv.n, 1);
    test_got_vehicles_free(&gv);
    test_got_docs gd = {.stop_after = 1};
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_FILE, test_collect_doc, &gd), -1);
    assert_int_equal(gd.n, 1);
    test_got_docs_free(&gd);
    test_got_lists gl = {.stop_after = 1};
    assert_int_equal(ota_store_load_lists(f->s, test_collect_list, &gl), -1);
    assert_int_equal(gl.n, 1);

    /* a stopped walk leaves nothing behind: the next full load sees everything */
    assert_int_equal(count_vehicles(f->s), 2);
    assert_int_equal(count_docs(f->s, OTA_DOC_FILE), 2);
    assert_int_equal(count_lists(f->s), 2);
}

/* A vehicle callback that tries to load again from inside the walk. */
static int nested_load(void *ctx, const ota_vehicle_rec *v)
{
    (void)v;
    ota_store *s = ctx;
    return ota_store_load_vehicles(s, nested_load, s) == -1 ? 0 : 1;
}

static int never_called_doc(void *ctx, const char *key, const char *json)
{
    (void)ctx, (void)key, (void)json;
    fail_msg("called");
    return 1;
}

static void test_bad_arguments(void **state)
{
    test_db *f = *state;
    char err[256];
    assert_int_equal(ota_store_apply(f->s, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no change"));
    /* an empty change is fine, also with an unknown list that nothing uses */
    test_apply_ok(f->s, &(ota_catalog_change){.list = (ota_list_kind)42});
    assert_int_equal(ota_store_load_docs(f->s, (ota_doc_kind)0, never_called_doc, NULL), -1);
    assert_int_equal(
        ota_store_load_docs(f->s, (ota_doc_kind)(OTA_DOC_KIND_COUNT + 1), never_called_doc, NULL),
        -1);
    assert_int_equal(ota_store_load_vehicles(f->s, NULL, NULL), -1);
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_MODEL, NULL, NULL), -1);
    assert_int_equal(ota_store_load_lists(f->s, NULL, NULL), -1);
    /* a callback re-entering the same loader is refused, the outer walk goes on */
    ota_vehicle_rec vs[2] = {sparse_vehicle(VIN_A), sparse_vehicle(VIN_B)};
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = vs, .n_put_vehicles = 2});
    assert_int_equal(ota_store_load_vehicles(f->s, nested_load, f->s), 0);
}

/* A list name this build does not know, written behind the store's back, is refused
 * rather than silently dropped. */
static void test_unknown_stored_list(void **state)
{
    test_db *f = *state;
    test_sql_exec(f->path, "INSERT INTO ota_vehicle_list VALUES ('greylist', '" VIN_A "')");
    test_got_lists g = {0};
    assert_int_equal(ota_store_load_lists(f->s, test_collect_list, &g), -1);
    assert_int_equal(g.n, 0);
}

/* A public key is only a key when it has 32 bytes; anything else written behind the
 * store's back reads as no key. */
static void test_stored_key_not_32_bytes(void **state)
{
    test_db *f = *state;
    ota_vehicle_rec vs[2] = {full_vehicle(VIN_A, 5), full_vehicle(VIN_B, 6)};
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = vs, .n_put_vehicles = 2});
    test_sql_exec(f->path,
                  "UPDATE ota_vehicle SET public_key = zeroblob(16) WHERE vin = '" VIN_A "'");
    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 2);
    assert_false(g.v[0].has_public_key);
    assert_true(g.v[1].has_public_key);
    assert_memory_equal(g.v[1].public_key, vs[1].public_key, OTA_PUBKEY_LEN);
    test_got_vehicles_free(&g);
}

static void test_reopen(void **state)
{
    test_db *f = *state;
    big_change b;
    big_change_init(&b);
    test_apply_ok(f->s, &b.c);
    ota_store_close(f->s);
    f->s = test_store_open(f->uri);

    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_vehicle(&g.v[0], &b.vs[0]);
    test_assert_vehicle(&g.v[1], &b.vs[1]);
    test_got_vehicles_free(&g);
    test_got_docs d;
    test_load_docs_ok(f->s, OTA_DOC_PACKAGE, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.key[0], "1");
    assert_string_equal(d.json[0], "{\"id\":1}");
    test_got_docs_free(&d);
    test_got_lists l;
    test_load_lists_ok(f->s, &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.list[0], OTA_LIST_FORCED_WHITELIST);
    assert_string_equal(l.vin[1], VIN_B);
}

/* ---- a timed load ---- */

enum { SPEED_N = 100000 };

typedef struct {
    size_t n;
    size_t with_key;
    char prev[OTA_VIN_LEN + 1];
    int ordered;
} speed_count;

static int count_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    speed_count *c = ctx;
    if (c->n > 0 && strcmp(c->prev, v->vin) >= 0)
        c->ordered = 0;
    memcpy(c->prev, v->vin, OTA_VIN_LEN + 1);
    c->with_key += v->has_public_key;
    c->n++;
    return 0;
}

static void test_load_speed(void **state)
{
    test_db *f = *state;
    static char vins[SPEED_N][OTA_VIN_LEN + 1];
    ota_vehicle_rec *vs = calloc(SPEED_N, sizeof *vs);
    assert_non_null(vs);
    for (int i = 0; i < SPEED_N; i++) {
        snprintf(vins[i], sizeof vins[i], "LSVAB4180M2%06d", (int)((i * 7919LL) % SPEED_N));
        vs[i] = i % 2 ? full_vehicle(vins[i], (uint8_t)(i | 1)) : sparse_vehicle(vins[i]);
    }
    double t0 = test_now_s();
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = vs, .n_put_vehicles = SPEED_N});
    double t1 = test_now_s();
    /* as at start-up: a fresh handle with a cold SQLite page cache */
    ota_store_close(f->s);
    f->s = test_store_open(f->uri);
    double t2 = test_now_s();
    speed_count c = {.ordered = 1};
    assert_int_equal(ota_store_load_vehicles(f->s, count_vehicle, &c), 0);
    double t3 = test_now_s();
    assert_int_equal(c.n, SPEED_N);
    assert_int_equal(c.with_key, SPEED_N / 2);
    assert_true(c.ordered);
    printf("catalog: apply of %d vehicles in %.3f s (%.0f vehicles/s); load in %.3f s "
           "(%.0f vehicles/s)\n",
           SPEED_N, t1 - t0, SPEED_N / (t1 - t0), t3 - t2, SPEED_N / (t3 - t2));
    free(vs);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_db_setup, test_db_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_schema),
        T(test_vehicle_round_trip),
        T(test_vehicle_upsert_replaces),
        T(test_vehicle_delete),
        T(test_docs_every_kind),
        T(test_doc_replace_and_delete),
        T(test_lists),
        T(test_atomic_invalid_part),
        T(test_atomic_sqlite_error),
        T(test_loader_stop),
        T(test_bad_arguments),
        T(test_unknown_stored_list),
        T(test_stored_key_not_32_bytes),
        T(test_reopen),
        T(test_load_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
