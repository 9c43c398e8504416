/*
 * test_store_contract.c — the store contract: every operation of ota_store.h, run with
 * the same cases on every backend at hand.
 *   SQLite             always (a fresh database file per case);
 *   the test peer      when OTA_TEST_MONGO_PEER_URI is set (ctest -R mongo: the
 *                      mongo_store_contract fixture of tests/mongo_peer starts the MongoDB
 *                      wire-protocol test double and sets it);
 *   a real MongoDB     when OTA_TEST_MONGODB_URI is set (else the skip is printed).
 * On MongoDB every case gets a database of its own (ota_c<pid>_<n>), so cases and runs
 * never see each other's data.
 */
#include "test_fixtures.h"
#include "test_util.h"

#include "ota_store.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <sqlite3.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *backend_base; /* NULL: SQLite; else a mongodb:// URI */
static int case_no;

typedef struct {
    ota_store *s;
    char uri[1024];
} fixture;

/* base ("mongodb://hosts[/db][?options]") with its database replaced by db. */
static void with_database(char *out, size_t len, const char *base, const char *db)
{
    const char *hosts = strstr(base, "://");
    assert_non_null(hosts);
    hosts += 3;
    size_t host_end = strcspn(hosts, "/?"), prefix = (size_t)(hosts - base) + host_end;
    const char *query = strchr(hosts + host_end, '?');
    snprintf(out, len, "%.*s/%s%s", (int)prefix, base, db, query != NULL ? query : "");
}

/* A fresh store of the backend under test. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    case_no++;
    if (backend_base == NULL) {
        char name[64];
        snprintf(name, sizeof name, "contract-%d", case_no);
        const char *dir = test_fresh_dir(name);
        test_mkdir_p(dir);
        snprintf(f->uri, sizeof f->uri, "sqlite:%s/store.db", dir);
    } else {
        char db[64];
        snprintf(db, sizeof db, "ota_c%d_%d", (int)getpid(), case_no);
        with_database(f->uri, sizeof f->uri, backend_base, db);
    }
    f->s = test_store_open(f->uri);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ota_store_close(f->s);
    free(f);
    return 0;
}

/* ---- report events ---- */

static ota_event status_ev(uint32_t index, const char *status)
{
    return (ota_event){.type = OTA_EV_UPGRADE_STATUS,
                       .index = index,
                       .task = "T1",
                       .ts = 1000,
                       .pct = -1,
                       .bytes = -1,
                       .at = -1,
                       .status = status,
                       .fw = "2.0",
                       .trigger = "ota"};
}

static ota_event progress_ev(uint32_t index, int pct)
{
    return (ota_event){.type = OTA_EV_DOWNLOAD_PROGRESS,
                       .index = index,
                       .task = "T1",
                       .ts = 2000,
                       .ecu = "BMS",
                       .pct = pct,
                       .bytes = 4096,
                       .at = -1};
}

static void put(ota_store *s, const ota_store_event *evs, size_t n, size_t want_ins,
                size_t want_dup)
{
    char err[256] = "";
    ota_store_put_result r = {99, 99};
    if (ota_store_put_events(s, evs, n, &r, err, sizeof err) != 0)
        fail_msg("put_events: %s", err);
    assert_int_equal(r.inserted, want_ins);
    assert_int_equal(r.duplicates, want_dup);
}

typedef struct {
    int n;
    char vin[8][32];
    uint64_t seq[8];
    uint32_t idx[8];
    int type[8];
    char text[8][32]; /* status or ecu */
    int pct[8];
} seen;

static void see_event(void *ctx, const ota_store_event *e)
{
    seen *w = ctx;
    if (w->n >= 8)
        return;
    snprintf(w->vin[w->n], sizeof w->vin[0], "%s", e->vin);
    w->seq[w->n] = e->seq;
    w->idx[w->n] = e->ev->index;
    w->type[w->n] = e->ev->type;
    const char *t = e->ev->status != NULL ? e->ev->status : e->ev->ecu;
    snprintf(w->text[w->n], sizeof w->text[0], "%s", t != NULL ? t : "");
    w->pct[w->n] = e->ev->pct;
    w->n++;
}

static void test_events(void **state)
{
    fixture *f = *state;
    ota_event a = status_ev(0, "downloading"), b = progress_ev(1, 40), c = status_ev(0, "done");
    ota_event d = progress_ev(0, 10);
    ota_store_event evs[] = {
        {"VIN00000000000001", 5, 100, &a, NULL},
        {"VIN00000000000001", 5, 100, &b, NULL},
        {"VIN00000000000001", 7, 200, &c, NULL},
        {"VIN00000000000002", 3, 300, &d, NULL},
    };
    put(f->s, evs, 4, 4, 0);
    put(f->s, evs, 4, 0, 4);     /* all stored already */
    put(f->s, evs + 2, 1, 0, 1); /* one again */
    put(f->s, evs, 0, 0, 0);

    uint64_t n = 0;
    assert_int_equal(ota_store_count_events(f->s, OTA_EV_UPGRADE_STATUS, NULL, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(
        ota_store_count_events(f->s, OTA_EV_DOWNLOAD_PROGRESS, "VIN00000000000002", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ota_store_count_events(f->s, OTA_EV_COMMAND, NULL, &n), 0);
    assert_int_equal(n, 0);

    seen w = {0};
    assert_int_equal(ota_store_latest_status(f->s, "VIN00000000000001", see_event, &w), 1);
    assert_int_equal(w.seq[0], 7);
    assert_string_equal(w.text[0], "done");
    w.n = 0;
    assert_int_equal(ota_store_latest_status(f->s, "VIN00000000000009", see_event, &w), 0);

    /* history of every type, newest first; then limited; then of one type */
    assert_int_equal(ota_store_history(f->s, "VIN00000000000001", 0, 10, see_event, &w), 3);
    assert_int_equal(w.seq[0], 7);
    assert_int_equal(w.seq[1], 5);
    assert_int_equal(w.idx[1], 1);
    assert_int_equal(w.type[1], OTA_EV_DOWNLOAD_PROGRESS);
    assert_int_equal(w.pct[1], 40);
    assert_string_equal(w.text[1], "BMS");
    assert_int_equal(w.idx[2], 0);
    w.n = 0;
    assert_int_equal(ota_store_history(f->s, "VIN00000000000001", 0, 2, see_event, &w), 2);
    w.n = 0;
    assert_int_equal(
        ota_store_history(f->s, "VIN00000000000001", OTA_EV_DOWNLOAD_PROGRESS, 10, see_event, &w),
        1);
    assert_int_equal(ota_store_history(f->s, "VIN00000000000001", 99, 10, see_event, &w), -1);
}

/* getVehicleHistory's paging: pages after a cursor, of every kind and of one, cover the
 * history once, in order, and end empty. */
static void test_history_pages(void **state)
{
    fixture *f = *state;
    const char *vin = "VIN00000000000001";
    ota_event st[3] = {status_ev(0, "downloading"), status_ev(1, "upgrading"),
                       status_ev(0, "succeeded")};
    ota_event pr[2] = {progress_ev(2, 10), progress_ev(1, 20)};
    ota_store_event evs[] = {
        {vin, 4, 100, &st[0], NULL},
        {vin, 4, 100, &st[1], NULL},
        {vin, 4, 100, &pr[0], NULL},
        {vin, 9, 200, &st[2], NULL},
        {vin, 9, 200, &pr[1], NULL},
        {"VIN00000000000002", 3, 50, &pr[0], NULL},
    };
    put(f->s, evs, 6, 6, 0);
    /* every kind, two per page: (9,1) (9,0) | (4,2) (4,1) | (4,0) | - */
    static const uint64_t want_seq[] = {9, 9, 4, 4, 4};
    static const uint32_t want_idx[] = {1, 0, 2, 1, 0};
    ota_store_cursor cur;
    const ota_store_cursor *before = NULL;
    size_t k = 0;
    for (int page = 0; page < 3; page++) {
        seen w = {0};
        int n = ota_store_history_before(f->s, vin, 0, before, 2, see_event, &w);
        assert_int_equal(n, page < 2 ? 2 : 1);
        for (int i = 0; i < n; i++, k++) {
            assert_int_equal(w.seq[i], want_seq[k]);
            assert_int_equal(w.idx[i], want_idx[k]);
            assert_string_equal(w.vin[i], vin);
        }
        cur = (ota_store_cursor){w.seq[n - 1], w.idx[n - 1]};
        before = &cur;
    }
    assert_int_equal(k, 5);
    assert_int_equal(ota_store_history_before(f->s, vin, 0, before, 2, NULL, NULL), 0);
    /* one kind after a cursor that is not of that kind: upgrade_status older than (4, 2) */
    seen w = {0};
    cur = (ota_store_cursor){4, 2};
    assert_int_equal(
        ota_store_history_before(f->s, vin, OTA_EV_UPGRADE_STATUS, &cur, 10, see_event, &w), 2);
    assert_int_equal(w.idx[0], 1);
    assert_int_equal(w.idx[1], 0);
    assert_string_equal(w.text[0], "upgrading");
    /* NULL cursor is the plain history */
    assert_int_equal(ota_store_history_before(f->s, vin, 0, NULL, 10, NULL, NULL), 5);
    /* a cursor at the newest seq of another VIN does not leak across VINs */
    cur = (ota_store_cursor){100, 0};
    assert_int_equal(ota_store_history_before(f->s, "VIN00000000000002", 0, &cur, 10, NULL, NULL),
                     1);
}

static void test_bad_event_refused(void **state)
{
    fixture *f = *state;
    ota_event a = status_ev(0, "done"), bad = status_ev(1, "done");
    bad.task = NULL;
    ota_store_event evs[] = {{"VIN00000000000001", 1, 1, &a, NULL}, {"VIN00000000000001", 1, 1, &bad, NULL}};
    char err[256] = "";
    ota_store_put_result r;
    assert_int_equal(ota_store_put_events(f->s, evs, 2, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "event 1 of the batch (type 3): no task"));
    uint64_t n = 99;
    assert_int_equal(ota_store_count_events(f->s, OTA_EV_UPGRADE_STATUS, NULL, &n), 0);
    assert_int_equal(n, 0);
}

typedef struct {
    int n;
    char vin[8][32];
    char epoch[8][32];
    int64_t seq[8];
    uint32_t resets[8];
} seqs;

static int see_seq(void *ctx, const ota_report_seq_rec *r)
{
    seqs *w = ctx;
    if (w->n < 8) {
        snprintf(w->vin[w->n], sizeof w->vin[0], "%s", r->vin);
        snprintf(w->epoch[w->n], sizeof w->epoch[0], "%s", r->epoch);
        w->resets[w->n] = r->resets;
        w->seq[w->n++] = r->seq;
    }
    return 0;
}

static void test_startup_event_loaders(void **state)
{
    fixture *f = *state;
    ota_event s1 = status_ev(0, "a"), s2 = status_ev(1, "b"), s3 = status_ev(0, "c");
    ota_event p = progress_ev(0, 5);
    ota_store_event evs[] = {
        {"VIN00000000000002", 4, 1, &s1, NULL}, {"VIN00000000000002", 4, 1, &s2, NULL},
        {"VIN00000000000001", 2, 1, &s3, NULL}, {"VIN00000000000001", 9, 1, &p, NULL},
        {"VIN00000000000003", 6, 1, &p, NULL},
    };
    put(f->s, evs, 5, 5, 0);
    seen w = {0};
    assert_int_equal(ota_store_load_latest_statuses(f->s, see_event, &w), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.vin[0], "VIN00000000000001");
    assert_string_equal(w.text[0], "c");
    assert_string_equal(w.vin[1], "VIN00000000000002");
    assert_string_equal(w.text[1], "b");
    assert_int_equal(w.idx[1], 1);

}

/* The replay guard's rows: upserted by VIN in batch order, read back by VIN. */
static void test_guard_rows(void **state)
{
    fixture *f = *state;
    ota_report_seq_rec rows[] = {
        {"VIN00000000000002", "boot-7", 4, 0, 10},
        {"VIN00000000000001", "0", 9, 0, 11},
        {"VIN00000000000002", "boot-8", 1, 0, 12}, /* a new epoch, later in the batch */
        {"VIN00000000000001", "0", -1, 1, 13},     /* an operator reset */
    };
    ota_store_batch b = {.seqs = rows, .n_seqs = 4};
    char err[256] = "";
    ota_store_put_result r;
    assert_int_equal(ota_store_put_batch(f->s, &b, &r, err, sizeof err), 0);
    seqs q = {0};
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(q.vin[0], "VIN00000000000001");
    assert_int_equal(q.seq[0], -1);
    assert_int_equal(q.resets[0], 1);
    assert_string_equal(q.vin[1], "VIN00000000000002");
    assert_string_equal(q.epoch[1], "boot-8");
    assert_int_equal(q.seq[1], 1);
}

typedef struct {
    int n;
    int64_t id[8];
    char code[8][32];
    int64_t seq[8];
    size_t len[8];
} listed;

static int see_quarantined(void *ctx, const ota_quarantine_rec *q)
{
    listed *l = ctx;
    if (l->n < 8) {
        l->id[l->n] = q->id;
        snprintf(l->code[l->n], sizeof l->code[0], "%s", q->code);
        l->seq[l->n] = q->seq;
        l->len[l->n++] = q->payload_len;
    }
    return 0;
}

/* Refused reports: a repeated id is stored once; listed newest first, by VIN, code, page. */
static void test_quarantine(void **state)
{
    fixture *f = *state;
    const uint8_t junk[] = {0xff, 0x00, 0x01};
    ota_quarantine_rec q[] = {
        {1, "VIN00000000000001", 100, "E_BAD_CBOR", "report: bad", -1, NULL, 3, junk, 3},
        {2, "VIN00000000000002", 101, "E_REPLAY", "old", 5, "0", 3, junk, 3},
        {3, "VIN00000000000001", 102, "E_UNKNOWN_VIN", "who", 6, "e", 3, junk, 2},
    };
    ota_store_batch b = {.quarantine = q, .n_quarantine = 3};
    char err[256] = "";
    ota_store_put_result r;
    assert_int_equal(ota_store_put_batch(f->s, &b, &r, err, sizeof err), 0);
    assert_int_equal(ota_store_put_batch(f->s, &b, &r, err, sizeof err), 0); /* replayed */
    listed l = {0};
    assert_int_equal(ota_store_list_quarantine(f->s, NULL, NULL, 0, 10, see_quarantined, &l), 3);
    assert_int_equal(l.id[0], 3);
    assert_int_equal(l.id[2], 1);
    assert_int_equal(l.seq[2], -1);
    assert_int_equal(l.len[0], 2);
    listed v = {0};
    assert_int_equal(
        ota_store_list_quarantine(f->s, "VIN00000000000001", NULL, 3, 10, see_quarantined, &v), 1);
    assert_int_equal(v.id[0], 1);
    listed c = {0};
    assert_int_equal(ota_store_list_quarantine(f->s, NULL, "E_REPLAY", 0, 10, see_quarantined, &c),
                     1);
    assert_string_equal(c.code[0], "E_REPLAY");
}

/* ---- the catalog ---- */

static ota_vehicle_rec vehicle(const char *vin, const char *status)
{
    return (ota_vehicle_rec){.vin = (char *)vin,
                             .model = "M1",
                             .series = "S1",
                             .status = (char *)status,
                             .usage = "retail",
                             .passenger = true};
}

typedef struct {
    int n;
    char key[8][64];
    char val[8][128];
    bool flag[8];
} items;

static void item(items *w, const char *key, const char *val, bool flag)
{
    if (w->n >= 8)
        return;
    snprintf(w->key[w->n], sizeof w->key[0], "%s", key);
    snprintf(w->val[w->n], sizeof w->val[0], "%s", val != NULL ? val : "(null)");
    w->flag[w->n++] = flag;
}

static int see_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    item(ctx, v->vin, v->status, v->has_public_key && v->public_key[31] == 31 && v->passenger);
    return 0;
}

static int see_doc(void *ctx, const char *key, const char *json)
{
    item(ctx, key, json, false);
    return 0;
}

static int see_list(void *ctx, ota_list_kind list, const char *vin)
{
    item(ctx, vin, ota_list_name(list), false);
    return 0;
}

static void test_catalog(void **state)
{
    fixture *f = *state;
    ota_vehicle_rec v[] = {vehicle("VIN00000000000001", "sold"),
                           vehicle("VIN00000000000002", "in_stock"),
                           vehicle("VIN00000000000001", "in_stock")}; /* the last wins */
    v[1].has_public_key = true;
    for (int i = 0; i < OTA_PUBKEY_LEN; i++)
        v[1].public_key[i] = (uint8_t)i;
    ota_store_doc docs[] = {{OTA_DOC_MODEL, "M1/S1", "{\"model\":\"M1\",\"n\":1.50}"},
                            {OTA_DOC_PACKAGE, "1", "{\"id\":1}"},
                            {OTA_DOC_PACKAGE, "2", "{\"id\":2}"}};
    const char *black[] = {"VIN00000000000002", "VIN00000000000003"};
    ota_catalog_change c = {.put_vehicles = v,
                            .n_put_vehicles = 3,
                            .docs = docs,
                            .n_docs = 3,
                            .list = OTA_LIST_BLACKLIST,
                            .list_add = black,
                            .n_list_add = 2};
    test_apply_ok(f->s, &c);
    test_apply_ok(f->s, &c); /* applying it again changes nothing */

    items w = {0};
    assert_int_equal(ota_store_load_vehicles(f->s, see_vehicle, &w), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.val[0], "in_stock");
    assert_false(w.flag[0]);
    assert_true(w.flag[1]);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_MODEL, see_doc, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.val[0], "{\"model\":\"M1\",\"n\":1.50}"); /* byte for byte */

    /* delete a vehicle, a document, a list member */
    const char *gone[] = {"VIN00000000000002"};
    ota_store_doc del[] = {{OTA_DOC_PACKAGE, "1", NULL}};
    const char *unblack[] = {"VIN00000000000003"};
    ota_catalog_change d = {.delete_vehicles = gone,
                            .n_delete_vehicles = 1,
                            .docs = del,
                            .n_docs = 1,
                            .list = OTA_LIST_BLACKLIST,
                            .list_remove = unblack,
                            .n_list_remove = 1};
    test_apply_ok(f->s, &d);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_vehicles(f->s, see_vehicle, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key[0], "VIN00000000000001");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_PACKAGE, see_doc, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key[0], "2");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_lists(f->s, see_list, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key[0], "VIN00000000000002");
    assert_string_equal(w.val[0], "blacklist");
}

static void test_bad_change_refused(void **state)
{
    fixture *f = *state;
    ota_vehicle_rec v[] = {vehicle("VIN00000000000001", "sold"), vehicle(NULL, "sold")};
    ota_catalog_change c = {.put_vehicles = v, .n_put_vehicles = 2};
    char err[256] = "";
    assert_int_equal(ota_store_apply(f->s, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "vehicle 1 of the change: no VIN"));
    items w = {0};
    assert_int_equal(ota_store_load_vehicles(f->s, see_vehicle, &w), 0);
    assert_int_equal(w.n, 0);
}

/* ---- the task engine's records ---- */

static int see_exec(void *ctx, const ota_exec_rec *e)
{
    char val[128];
    int n = snprintf(val, sizeof val, "%s %s %u %s %lld", ota_exec_state_name(e->state),
                     e->code ? e->code : "-", e->resends, e->msg_id ? e->msg_id : "-",
                     (long long)e->notified_ms);
    if (e->wave >= 0) /* the wave, when stored */
        snprintf(val + n, sizeof val - (size_t)n, " w%lld", (long long)e->wave);
    char key[64];
    snprintf(key, sizeof key, "%s/%s", e->task, e->vin);
    item(ctx, key, val, false);
    return 0;
}

static int see_shadow(void *ctx, const ota_shadow_rec *s)
{
    char val[128];
    snprintf(val, sizeof val, "%lld %s %s", (long long)s->version, s->reported,
             s->desired ? s->desired : "-");
    item(ctx, s->vin, val, false);
    return 0;
}

static int see_notice(void *ctx, const ota_notice_rec *n)
{
    char val[128];
    snprintf(val, sizeof val, "%s %s %llu %s %lld", n->task, n->vin, (unsigned long long)n->package,
             n->version, (long long)n->sent_ms);
    item(ctx, n->msg_id, val, false);
    return 0;
}

static int see_description(void *ctx, const ota_description_rec *d)
{
    char val[128];
    snprintf(val, sizeof val, "%llu %s %zu %d", (unsigned long long)d->counter, d->files,
             d->cose_len, d->cose_len > 2 ? d->cose[2] : -1);
    item(ctx, d->vin, val, false);
    return 0;
}

static void test_task_records(void **state)
{
    fixture *f = *state;
    ota_exec_rec x[] = {
        {"T2", "VIN00000000000001", OTA_EXEC_QUEUED, NULL, 0, NULL, -1, 10, 0},
        {"T1", "VIN00000000000002", OTA_EXEC_NOTIFIED, NULL, 1, "T1:V:1", 50, 11, 2},
        {"T2", "VIN00000000000001", OTA_EXEC_FAILED, "timeout", 2, "T2:V:2", 60, 12, -1},
    };
    ota_shadow_rec sh[] = {{"VIN00000000000001", 3, "{\"fw\":\"1\"}", NULL, 5}};
    ota_notice_rec no[] = {{"T1", "VIN00000000000002", 7, "2.0", "T1:V:1", 50},
                           {"T1", "VIN00000000000003", 7, "2.0", "T1:W:0", 40}};
    static const uint8_t cose[] = {0xd2, 0x84, 0x43, 0xa1};
    ota_description_rec de[] = {{"VIN00000000000001", 4, "T1", 9, 7, "aa,bb", cose, 4, 1, 2}};
    ota_catalog_change c = {.put_execs = x,
                            .n_put_execs = 3,
                            .put_shadows = sh,
                            .n_put_shadows = 1,
                            .add_notices = no,
                            .n_add_notices = 2,
                            .add_descriptions = de,
                            .n_add_descriptions = 1};
    test_apply_ok(f->s, &c);
    /* notices and descriptions are insert-only: a stored key keeps its first values */
    no[0].sent_ms = 99;
    de[0].files = "cc";
    sh[0].version = 4;
    sh[0].desired = "{\"fw\":\"2\"}";
    test_apply_ok(f->s, &c);

    items w = {0};
    assert_int_equal(ota_store_load_execs(f->s, see_exec, &w), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.key[0], "T1/VIN00000000000002");
    assert_string_equal(w.val[0], "notified - 1 T1:V:1 50 w2");
    assert_string_equal(w.val[1], "failed timeout 2 T2:V:2 60");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_shadows(f->s, see_shadow, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.val[0], "4 {\"fw\":\"1\"} {\"fw\":\"2\"}");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_notices(f->s, NULL, see_notice, &w), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.key[0], "T1:W:0"); /* by sent time */
    assert_string_equal(w.val[1], "T1 VIN00000000000002 7 2.0 50");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_notices(f->s, "T9", see_notice, &w), 0);
    assert_int_equal(w.n, 0);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_descriptions(f->s, "VIN00000000000001", see_description, &w),
                     0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.val[0], "4 aa,bb 4 67");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_descriptions(f->s, "VIN00000000000002", see_description, &w),
                     0);
    assert_int_equal(w.n, 0);
}

static void test_claim_notice(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "VIN00000000000001", "T1:V:0", "brokerA", 1,
                                            err, sizeof err),
                     1);
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "VIN00000000000001", "T1:V:0", "brokerB", 2,
                                            err, sizeof err),
                     0);
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "VIN00000000000001", "T1:V:0", "brokerA", 3,
                                            err, sizeof err),
                     1);
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "VIN00000000000001", "T1:V:1", "brokerB", 4,
                                            err, sizeof err),
                     1);
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "VIN00000000000001", NULL, "brokerB", 4,
                                            err, sizeof err),
                     -1);
}

/* The batch claim: mixed with single claims, across the MongoDB chunk size (1000), from two
 * handles (two brokers): every msg_id ends with exactly one owner, retries read back 1. */
static void test_claim_notices(void **state)
{
    fixture *f = *state;
    enum { N = 2500 };
    static char ids[N][32];
    static ota_notice_claim a[N], b[N];
    char err[256] = "";
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "T1:VIN%011d:0", i);
        a[i] = (ota_notice_claim){"T1", ids[i] + 3, ids[i], -7};
        b[i] = a[i];
    }
    assert_int_equal(ota_store_claim_notice(f->s, "T1", a[5].vin, ids[5], "B", 1, err, sizeof err),
                     1);
    assert_int_equal(ota_store_claim_notice(f->s, "T1", a[7].vin, ids[7], "A", 1, err, sizeof err),
                     1);
    /* A claims the even ones first */
    static ota_notice_claim even[N / 2];
    for (int i = 0; i < N / 2; i++)
        even[i] = a[2 * i];
    assert_int_equal(ota_store_claim_notices(f->s, even, N / 2, "A", 2, err, sizeof err), 0);
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(even[i].result, 1);
    /* B, on a second handle, claims them all: it gets the odd ones except #7 (A's) */
    ota_store *other = test_store_open(f->uri);
    assert_int_equal(ota_store_claim_notices(other, b, N, "B", 3, err, sizeof err), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(b[i].result, (i % 2 == 1 && i != 7) || i == 5 ? 1 : 0);
    ota_store_close(other);
    /* A again (a retried job): exactly the complement */
    assert_int_equal(ota_store_claim_notices(f->s, a, N, "A", 4, err, sizeof err), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i].result, 1 - b[i].result);
    /* the single claim agrees with the batch */
    assert_int_equal(ota_store_claim_notice(f->s, "T1", a[1].vin, ids[1], "A", 5, err, sizeof err),
                     0);
    assert_int_equal(ota_store_claim_notices(f->s, a, 0, "A", 6, err, sizeof err), 0);
    ota_notice_claim bad = {"T1", "V", NULL, -7};
    assert_int_equal(ota_store_claim_notices(f->s, &bad, 1, "A", 6, err, sizeof err), -1);
    assert_int_equal(ota_store_claim_notices(f->s, a, 1, NULL, 6, err, sizeof err), -1);
}

/* A second handle on the same database sees what the first stored (and claimed). */
static void test_second_handle(void **state)
{
    fixture *f = *state;
    ota_store *other = test_store_open(f->uri);
    char err[256];
    assert_int_equal(ota_store_claim_notice(f->s, "T1", "V", "m1", "A", 1, err, sizeof err), 1);
    assert_int_equal(ota_store_claim_notice(other, "T1", "V", "m1", "B", 1, err, sizeof err), 0);
    ota_event a = status_ev(0, "done");
    ota_store_event e = {"VIN00000000000001", 1, 1, &a, NULL};
    put(f->s, &e, 1, 1, 0);
    put(other, &e, 1, 0, 1);
    ota_store_close(other);
}

/* ---- shared state for several brokers (issue 15) ---- */

/* A direct client on the case's MongoDB database (what an operator's tools see), or NULL
 * on SQLite. */
static mongoc_client_t *direct_client(const fixture *f, mongoc_database_t **db)
{
    if (backend_base == NULL)
        return NULL;
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(f->uri, &error);
    assert_non_null(uri);
    mongoc_client_t *c = mongoc_client_new_from_uri(uri);
    assert_non_null(c);
    *db = mongoc_client_get_database(c, mongoc_uri_get_database(uri));
    mongoc_uri_destroy(uri);
    return c;
}

static void direct_close(mongoc_client_t *c, mongoc_database_t *db)
{
    mongoc_database_destroy(db);
    mongoc_client_destroy(c);
}

/* The first document of coll matching the JSON filter (a copy), or NULL. */
static bson_t *direct_find_one(mongoc_database_t *db, const char *coll, const char *filter_json)
{
    bson_error_t error;
    bson_t *filter = bson_new_from_json((const uint8_t *)filter_json, -1, &error);
    assert_non_null(filter);
    mongoc_collection_t *c = mongoc_database_get_collection(db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    bson_t *found = mongoc_cursor_next(cur, &doc) ? bson_copy(doc) : NULL;
    assert_false(mongoc_cursor_error(cur, &error));
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(filter);
    return found;
}

static void direct_exec(mongoc_database_t *db, const char *cmd_json)
{
    bson_error_t error;
    bson_t *cmd = bson_new_from_json((const uint8_t *)cmd_json, -1, &error);
    assert_non_null(cmd);
    if (!mongoc_database_command_simple(db, cmd, NULL, NULL, &error))
        fail_msg("%s: %s", cmd_json, error.message);
    bson_destroy(cmd);
}

static bson_type_t field_type(const bson_t *doc, const char *dotted)
{
    bson_iter_t it, f;
    assert_true(bson_iter_init(&it, doc));
    return bson_iter_find_descendant(&it, dotted, &f) ? bson_iter_type(&f) : BSON_TYPE_EOD;
}

#define TASK_JSON                                                                                  \
    "{\"state\":\"running\",\"package\":7,\"version\":\"2.0.9\",\"big\":9007199254740993,"         \
    "\"rate\":0.25,\"vins\":[\"A\"],\"w\":{\"ok\":true,\"x\":null}}"

/* Catalog documents and shadow states are native documents an operator can query, with
 * their types; they read back byte for byte; a document that would not is kept as text. */
static void test_native_documents(void **state)
{
    fixture *f = *state;
    ota_store_doc docs[] = {{OTA_DOC_TASK, "T1", TASK_JSON},
                            {OTA_DOC_MODEL, "M1/S1", "{\"model\":\"M1\",\"n\":1.50}"},
                            {OTA_DOC_SETTING, "s", "{\"json\":\"x\"}"},
                            {OTA_DOC_SETTING, "t", "{\"a.b\":1,\"$c\":2}"}};
    ota_shadow_rec sh[] = {{"VIN00000000000001", 3, "{\"fw\":\"2.0.9\",\"ecus\":{\"BMS\":\"1\"}}",
                            "{\"task\":\"T1\",\"msg_id\":\"T1:V:0\"}", 5}};
    ota_catalog_change c = {.docs = docs, .n_docs = 4, .put_shadows = sh, .n_put_shadows = 1};
    test_apply_ok(f->s, &c);
    items w = {0};
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_TASK, see_doc, &w), 0);
    assert_string_equal(w.val[0], TASK_JSON);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_SETTING, see_doc, &w), 0);
    assert_string_equal(w.val[0], "{\"json\":\"x\"}");
    assert_string_equal(w.val[1], "{\"a.b\":1,\"$c\":2}");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_shadows(f->s, see_shadow, &w), 0);
    assert_string_equal(w.val[0], "3 {\"fw\":\"2.0.9\",\"ecus\":{\"BMS\":\"1\"}} "
                                  "{\"task\":\"T1\",\"msg_id\":\"T1:V:0\"}");

    mongoc_database_t *db;
    mongoc_client_t *cl = direct_client(f, &db);
    if (cl == NULL)
        return; /* SQLite keeps the text: nothing more to see */
    bson_t *task = direct_find_one(db, "ota_task", "{\"state\": \"running\"}");
    assert_non_null(task);
    assert_int_equal(field_type(task, "package"), BSON_TYPE_INT32);
    assert_int_equal(field_type(task, "big"), BSON_TYPE_INT64);
    assert_int_equal(field_type(task, "rate"), BSON_TYPE_DOUBLE);
    assert_int_equal(field_type(task, "version"), BSON_TYPE_UTF8);
    assert_int_equal(field_type(task, "vins"), BSON_TYPE_ARRAY);
    assert_int_equal(field_type(task, "w.ok"), BSON_TYPE_BOOL);
    assert_int_equal(field_type(task, "json"), BSON_TYPE_EOD);
    bson_destroy(task);
    bson_t *shadow = direct_find_one(db, "ota_vehicle_shadow", "{\"reported.fw\": \"2.0.9\"}");
    assert_non_null(shadow);
    assert_int_equal(field_type(shadow, "desired.msg_id"), BSON_TYPE_UTF8);
    bson_destroy(shadow);
    bson_t *model = direct_find_one(db, "ota_vehicle_model", "{}"); /* 1.50: kept as text */
    assert_int_equal(field_type(model, "json"), BSON_TYPE_UTF8);
    bson_destroy(model);
    direct_close(cl, db);
}

/* A database written before this change ({json: text} documents, text shadow states,
 * events without ota_vehicle_state, or its {_id, last_seq} documents of the first issue 15
 * version) is read as before and rewritten at open. */
static void test_mongo_migration(void **state)
{
    fixture *f = *state;
    mongoc_database_t *db;
    mongoc_client_t *cl = direct_client(f, &db);
    if (cl == NULL)
        return;
    char uri[1100], name[80];
    snprintf(name, sizeof name, "ota_c%d_%d_old", (int)getpid(), case_no);
    with_database(uri, sizeof uri, backend_base, name);
    mongoc_database_t *old = mongoc_client_get_database(cl, name);
    direct_exec(old, "{\"insert\": \"ota_task\", \"documents\": [{\"_id\": \"T1\", \"json\": "
                     "\"{\\\"state\\\":\\\"running\\\",\\\"n\\\":3}\"}]}");
    direct_exec(old, "{\"insert\": \"ota_vehicle_shadow\", \"documents\": [{\"vin\": \"V1\", "
                     "\"version\": 1, \"reported\": \"{\\\"fw\\\":\\\"1.0\\\"}\", "
                     "\"updated_at\": 2}]}");
    direct_exec(old, "{\"insert\": \"ota_vehicle_upgrade_status\", \"documents\": [{\"vin\": "
                     "\"V1\", \"seq\": 4, \"idx\": 0, \"task\": \"T1\", \"ts\": 1, "
                     "\"received_at\": 1, \"status\": \"done\"}]}");
    /* the first issue 15 layout of ota_vehicle_state: {_id, last_seq} */
    direct_exec(old, "{\"insert\": \"ota_vehicle_state\", \"documents\": [{\"_id\": \"V2\", "
                     "\"last_seq\": 6}]}");
    ota_store *s = test_store_open(uri);
    items w = {0};
    assert_int_equal(ota_store_load_docs(s, OTA_DOC_TASK, see_doc, &w), 0);
    assert_string_equal(w.val[0], "{\"state\":\"running\",\"n\":3}");
    seqs q = {0};
    assert_int_equal(ota_store_load_last_seqs(s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_int_equal(q.seq[0], 4); /* filled from the events */
    assert_int_equal(q.seq[1], 6); /* given epoch "0" */
    assert_string_equal(q.epoch[1], "0");
    ota_store_close(s);
    bson_t *v2 = direct_find_one(old, "ota_vehicle_state", "{\"_id\": \"V2\", \"epoch\": \"0\"}");
    assert_non_null(v2);
    bson_destroy(v2);
    bson_t *task = direct_find_one(old, "ota_task", "{\"state\": \"running\"}");
    assert_non_null(task);
    bson_destroy(task);
    bson_t *shadow = direct_find_one(old, "ota_vehicle_shadow", "{\"reported.fw\": \"1.0\"}");
    assert_non_null(shadow);
    bson_destroy(shadow);
    mongoc_database_destroy(old);
    direct_close(cl, db);
}

/* Start-up reads ota_vehicle_state (the replay guard's rows), kept by every batch: guard
 * rows replace, events without one raise their VIN in its epoch. SQLite converts the
 * files made before it (MongoDB: test_mongo_migration). */
static void test_vehicle_state(void **state)
{
    fixture *f = *state;
    ota_event a = status_ev(0, "a"), p = progress_ev(0, 5);
    ota_store_event evs[] = {{"VIN00000000000002", 4, 1, &a, NULL},
                             {"VIN00000000000001", 9, 1, &p, NULL},
                             {"VIN00000000000001", 2, 1, &a, NULL}};
    put(f->s, evs, 3, 3, 0);
    ota_store_event older = {"VIN00000000000001", 3, 1, &p, NULL};
    put(f->s, &older, 1, 1, 0); /* a lower seq later does not lower the state */
    seqs q = {0};
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_int_equal(q.seq[0], 9);
    assert_int_equal(q.seq[1], 4);
    assert_string_equal(q.epoch[0], "0");

    /* the guard's rows replace; events without one raise their VIN in its epoch only */
    ota_report_seq_rec row = {"VIN00000000000001", "boot-2", 3, 0, 20};
    ota_store_batch b = {.seqs = &row, .n_seqs = 1};
    char err[256] = "";
    assert_int_equal(ota_store_put_batch(f->s, &b, NULL, err, sizeof err), 0);
    ota_store_event other = {"VIN00000000000001", 20, 1, &p, NULL}; /* epoch "0" */
    put(f->s, &other, 1, 1, 0);
    ota_store_event same = {"VIN00000000000001", 5, 1, &p, "boot-2"};
    put(f->s, &same, 1, 1, 0);
    ota_store_event with_row = {"VIN00000000000002", 30, 1, &p, "boot-2"};
    ota_report_seq_rec reset = {"VIN00000000000002", "0", -1, 1, 21};
    b = (ota_store_batch){.events = &with_row, .n_events = 1, .seqs = &reset, .n_seqs = 1};
    assert_int_equal(ota_store_put_batch(f->s, &b, NULL, err, sizeof err), 0);
    memset(&q, 0, sizeof q);
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(q.epoch[0], "boot-2");
    assert_int_equal(q.seq[0], 5);
    assert_int_equal(q.seq[1], -1); /* the batch's guard row, not its event */
    assert_int_equal(q.resets[1], 1);
    if (backend_base != NULL)
        return;

    /* SQLite files of earlier versions: no table (filled from the events), and the
     * first issue 15 layout (vin, last_seq) */
    ota_store_close(f->s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(strchr(f->uri, ':') + 1, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE ota_vehicle_state", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->s = test_store_open(f->uri);
    memset(&q, 0, sizeof q);
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_int_equal(q.seq[0], 20);
    assert_int_equal(q.seq[1], 30);
    ota_store_close(f->s);
    assert_int_equal(sqlite3_open(strchr(f->uri, ':') + 1, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE ota_vehicle_state; CREATE TABLE ota_vehicle_state"
                                  " (vin TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
                                  " INSERT INTO ota_vehicle_state VALUES ('VIN00000000000003', 12)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->s = test_store_open(f->uri);
    memset(&q, 0, sizeof q);
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 1);
    assert_string_equal(q.vin[0], "VIN00000000000003");
    assert_string_equal(q.epoch[0], "0");
    assert_int_equal(q.seq[0], 12);
    assert_int_equal(q.resets[0], 0);

    /* the replay guard's table of branch secrep before the merge: its rows taken over */
    ota_store_close(f->s);
    assert_int_equal(sqlite3_open(strchr(f->uri, ':') + 1, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE ota_vehicle_report_seq (vin TEXT PRIMARY KEY,"
                                  " epoch TEXT NOT NULL, seq INTEGER NOT NULL, resets INTEGER"
                                  " NOT NULL, updated_at INTEGER NOT NULL); INSERT INTO"
                                  " ota_vehicle_report_seq VALUES ('VIN00000000000003', 'e', 2,"
                                  " 1, 5)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->s = test_store_open(f->uri);
    memset(&q, 0, sizeof q);
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 1);
    assert_string_equal(q.epoch[0], "e");
    assert_int_equal(q.seq[0], 2);
    assert_int_equal(q.resets[0], 1);
}

static ota_exec_rec exec_rec(const char *vin, ota_exec_state state, const char *msg_id)
{
    return (ota_exec_rec){"T1", vin, state, NULL, 0, msg_id, msg_id != NULL ? 50 : -1, 10, -1};
}

static void test_transition(void **state)
{
    fixture *f = *state;
    ota_exec_rec x[] = {exec_rec("VIN00000000000001", OTA_EXEC_QUEUED, NULL)};
    ota_catalog_change c = {.put_execs = x, .n_put_execs = 1};
    test_apply_ok(f->s, &c);
    char err[256] = "";
    ota_exec_rec to = exec_rec("VIN00000000000001", OTA_EXEC_DOWNLOADING, "T1:V:0");
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_NOTIFIED, &to, err, sizeof err), 0);
    to.state = OTA_EXEC_NOTIFIED;
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_QUEUED, &to, err, sizeof err), 1);
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_QUEUED, &to, err, sizeof err), 0);
    ota_exec_rec nobody = exec_rec("VIN00000000000009", OTA_EXEC_NOTIFIED, "m");
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_QUEUED, &nobody, err, sizeof err), 0);
    to.state = OTA_EXEC_FAILED;
    to.code = "timeout";
    to.resends = 2;
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_NOTIFIED, &to, err, sizeof err), 1);
    items w = {0};
    assert_int_equal(ota_store_load_execs(f->s, see_exec, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.val[0], "failed timeout 2 T1:V:0 50");
    to.task = NULL;
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_NOTIFIED, &to, err, sizeof err), -1);
}

/* Two handles (two brokers) racing on the same executions from two threads: each execution
 * is moved by exactly one of them. */
enum { RACE_N = 40 };
static char race_vins[RACE_N][24];

typedef struct {
    ota_store *s;
    int won;
    int errors;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char err[256];
    for (int i = 0; i < RACE_N; i++) {
        ota_exec_rec to = exec_rec(race_vins[i], OTA_EXEC_NOTIFIED, "m");
        int rc = ota_store_transition_exec(r->s, OTA_EXEC_QUEUED, &to, err, sizeof err);
        r->won += rc == 1;
        r->errors += rc < 0;
    }
    return NULL;
}

static void test_transition_race(void **state)
{
    fixture *f = *state;
    static ota_exec_rec x[RACE_N];
    for (int i = 0; i < RACE_N; i++) {
        snprintf(race_vins[i], sizeof race_vins[i], "VIN%014d", i);
        x[i] = exec_rec(race_vins[i], OTA_EXEC_QUEUED, NULL);
    }
    ota_catalog_change c = {.put_execs = x, .n_put_execs = RACE_N};
    test_apply_ok(f->s, &c);
    racer a = {f->s, 0, 0}, b = {test_store_open(f->uri), 0, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ota_store_close(b.s);
    assert_int_equal(a.errors + b.errors, 0);
    assert_int_equal(a.won + b.won, RACE_N);
}

static void test_notice_decision(void **state)
{
    fixture *f = *state;
    ota_exec_rec x[] = {exec_rec("VIN00000000000001", OTA_EXEC_QUEUED, NULL)};
    ota_catalog_change c = {.put_execs = x, .n_put_execs = 1};
    test_apply_ok(f->s, &c);
    char err[256] = "";
    ota_exec_rec to = exec_rec("VIN00000000000001", OTA_EXEC_NOTIFIED, "T1:V:0");
    ota_shadow_rec sh = {"VIN00000000000001", 2, "{\"fw\":\"1\"}", "{\"msg_id\":\"T1:V:0\"}", 50};
    ota_notice_rec no = {"T1", "VIN00000000000001", 7, "2.0", "T1:V:0", 50};
    /* from the wrong state: nothing of it is stored */
    assert_int_equal(
        ota_store_notice_decision(f->s, OTA_EXEC_DOWNLOADING, &to, &sh, &no, err, sizeof err), 0);
    items w = {0};
    assert_int_equal(ota_store_load_shadows(f->s, see_shadow, &w), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(ota_store_load_notices(f->s, NULL, see_notice, &w), 0);
    assert_int_equal(w.n, 0);
    /* another broker's decision (another msg_id) loses once this one is stored */
    assert_int_equal(
        ota_store_notice_decision(f->s, OTA_EXEC_QUEUED, &to, &sh, &no, err, sizeof err), 1);
    ota_store *other = test_store_open(f->uri);
    ota_exec_rec to2 = to;
    to2.msg_id = "T1:V:0b";
    ota_notice_rec no2 = no;
    no2.msg_id = "T1:V:0b";
    assert_int_equal(
        ota_store_notice_decision(other, OTA_EXEC_QUEUED, &to2, &sh, &no2, err, sizeof err), 0);
    ota_store_close(other);
    /* a retry of the stored one is harmless and says so */
    assert_int_equal(
        ota_store_notice_decision(f->s, OTA_EXEC_QUEUED, &to, &sh, &no, err, sizeof err), 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_execs(f->s, see_exec, &w), 0);
    assert_string_equal(w.val[0], "notified - 0 T1:V:0 50");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_shadows(f->s, see_shadow, &w), 0);
    assert_string_equal(w.val[0], "2 {\"fw\":\"1\"} {\"msg_id\":\"T1:V:0\"}");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_notices(f->s, NULL, see_notice, &w), 0);
    assert_int_equal(w.n, 1);
    /* refused before anything is sent */
    no.msg_id = "other";
    assert_int_equal(
        ota_store_notice_decision(f->s, OTA_EXEC_QUEUED, &to, &sh, &no, err, sizeof err), -1);
    assert_non_null(strstr(err, "msg_id"));
}

/* Several decisions in one call (a claim job's): each keeps its own outcome, a retry of the
 * whole batch reads the stored ones back as 1, and a batch with a bad decision stores
 * nothing. */
static void test_notice_decisions(void **state)
{
    fixture *f = *state;
    const char *vins[3] = {"VIN00000000000001", "VIN00000000000002", "VIN00000000000003"};
    const char *ids[3] = {"T1:1:0", "T1:2:0", "T1:3:0"};
    ota_exec_rec x[3], to[3];
    ota_shadow_rec sh[3];
    ota_notice_rec no[3];
    ota_notice_decision d[3];
    for (int i = 0; i < 3; i++) {
        x[i] = exec_rec(vins[i], OTA_EXEC_QUEUED, NULL);
        to[i] = exec_rec(vins[i], OTA_EXEC_NOTIFIED, ids[i]);
        sh[i] = (ota_shadow_rec){vins[i], 2, "{}", "{\"n\":1}", 50};
        no[i] = (ota_notice_rec){"T1", vins[i], 7, "2.0", ids[i], 50};
        /* the second is decided from a state its execution is not in */
        d[i] = (ota_notice_decision){i == 1 ? OTA_EXEC_DOWNLOADING : OTA_EXEC_QUEUED, &to[i],
                                     &sh[i], &no[i], -1};
    }
    ota_catalog_change c = {.put_execs = x, .n_put_execs = 3};
    test_apply_ok(f->s, &c);
    char err[256] = "";
    assert_int_equal(ota_store_notice_decisions(f->s, d, 0, err, sizeof err), 0);
    for (int round = 0; round < 2; round++) { /* the second round is a retry */
        assert_int_equal(ota_store_notice_decisions(f->s, d, 3, err, sizeof err), 0);
        assert_int_equal(d[0].result, 1);
        assert_int_equal(d[1].result, 0);
        assert_int_equal(d[2].result, 1);
    }
    items w = {0};
    assert_int_equal(ota_store_load_execs(f->s, see_exec, &w), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.val[0], "notified - 0 T1:1:0 50");
    assert_string_equal(w.val[1], "queued - 0 - -1");
    assert_string_equal(w.val[2], "notified - 0 T1:3:0 50");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_notices(f->s, NULL, see_notice, &w), 0);
    assert_int_equal(w.n, 2);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_shadows(f->s, see_shadow, &w), 0);
    assert_int_equal(w.n, 2);
    /* a decision the store would refuse fails the batch before anything is written */
    d[1].from = OTA_EXEC_QUEUED;
    no[2].msg_id = "other";
    assert_int_equal(ota_store_notice_decisions(f->s, d, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "msg_id"));
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_execs(f->s, see_exec, &w), 0);
    assert_string_equal(w.val[1], "queued - 0 - -1");
}

typedef struct {
    int n;
    uint64_t seq[16];
    char line[16][320];
} changes;

static int see_change(void *ctx, const ota_store_change *c)
{
    changes *w = ctx;
    if (w->n < 16) {
        const char *what = c->what == OTA_CHANGE_VEHICLE         ? "vehicle"
                           : c->what == OTA_CHANGE_LIST          ? ota_list_name(c->list)
                           : c->what == OTA_CHANGE_GROUP         ? "group"
                           : c->what == OTA_CHANGE_VEHICLE_STATE ? "state"
                                                                 : "doc";
        snprintf(w->line[w->n], sizeof w->line[0], "%s %d %s %s %s", what,
                 c->what == OTA_CHANGE_DOC ? (int)c->doc_kind : 0, c->id,
                 c->deleted ? "delete" : "put", c->json != NULL ? c->json : "-");
        w->seq[w->n++] = c->seq;
    }
    return 0;
}

/* Removes change log entry seq behind the store's back (a writer that took a number and
 * never wrote it, as on a standalone MongoDB). */
static void drop_change(const fixture *f, uint64_t seq)
{
    mongoc_database_t *db;
    mongoc_client_t *cl = direct_client(f, &db);
    char q[160];
    if (cl != NULL) {
        snprintf(q, sizeof q,
                 "{\"delete\": \"ota_change_log\", \"deletes\": [{\"q\": {\"_id\": %llu}, "
                 "\"limit\": 1}]}",
                 (unsigned long long)seq);
        direct_exec(db, q);
        direct_close(cl, db);
        return;
    }
    sqlite3 *sq;
    assert_int_equal(sqlite3_open(strchr(f->uri, ':') + 1, &sq), SQLITE_OK);
    snprintf(q, sizeof q, "DELETE FROM ota_change_log WHERE seq = %llu", (unsigned long long)seq);
    assert_int_equal(sqlite3_exec(sq, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(sq);
}

static void test_change_log(void **state)
{
    fixture *f = *state;
    uint64_t first = 9, last = 9;
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);
    assert_int_equal(last, 0);
    assert_int_equal(first, 1);
    ota_vehicle_rec v[] = {vehicle("VIN00000000000001", "sold")};
    ota_store_doc docs[] = {{OTA_DOC_PACKAGE, "7", "{\"id\":7,\"version\":\"2.0.9\"}"}};
    const char *black[] = {"VIN00000000000002"};
    ota_exec_rec x[] = {exec_rec("VIN00000000000001", OTA_EXEC_QUEUED, NULL)};
    ota_catalog_change c = {.put_vehicles = v,
                            .n_put_vehicles = 1,
                            .docs = docs,
                            .n_docs = 1,
                            .list = OTA_LIST_BLACKLIST,
                            .list_add = black,
                            .n_list_add = 1,
                            .put_execs = x,
                            .n_put_execs = 1};
    test_apply_ok(f->s, &c);
    ota_store *other = test_store_open(f->uri); /* a second broker's writer */
    ota_store_doc del[] = {{OTA_DOC_PACKAGE, "7", NULL}};
    ota_catalog_change d = {.docs = del,
                            .n_docs = 1,
                            .list = OTA_LIST_BLACKLIST,
                            .list_remove = black,
                            .n_list_remove = 1};
    char err[256] = "";
    if (ota_store_apply(other, &d, err, sizeof err) != 0)
        fail_msg("apply: %s", err);
    ota_catalog_change execs_only = {.put_execs = x, .n_put_execs = 1}; /* not logged */
    test_apply_ok(f->s, &execs_only);

    changes w = {0};
    assert_int_equal(ota_store_read_changes(other, 0, 0, 0, 0, see_change, &w), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w.seq[i], i + 1);
    assert_non_null(strstr(w.line[0], "vehicle 0 VIN00000000000001 put {"));
    assert_non_null(strstr(w.line[0], "\"status\":\"sold\""));
    assert_string_equal(w.line[1], "doc 2 7 put {\"id\":7,\"version\":\"2.0.9\"}");
    assert_string_equal(w.line[2], "blacklist 0 VIN00000000000002 put -");
    assert_string_equal(w.line[3], "doc 2 7 delete -");
    assert_string_equal(w.line[4], "blacklist 0 VIN00000000000002 delete -");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_read_changes(f->s, 2, 2, 0, 0, see_change, &w), 2);
    assert_int_equal(w.seq[0], 3);
    assert_int_equal(w.seq[1], 4);
    ota_store_close(other);

    /* a gap stops the reader until the entry after it is hold_ms old */
    drop_change(f, 4);
    memset(&w, 0, sizeof w);
    int64_t now = (int64_t)time(NULL) * 1000;
    assert_int_equal(ota_store_read_changes(f->s, 2, 0, now, 3600000, see_change, &w), 1);
    assert_int_equal(w.seq[0], 3);
    memset(&w, 0, sizeof w); /* ten seconds later, holding gaps for one */
    assert_int_equal(ota_store_read_changes(f->s, 2, 0, now + 10000, 1000, see_change, &w), 2);
    assert_int_equal(w.seq[1], 5);

    assert_int_equal(ota_store_trim_changes(f->s, 3), 0);
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);
    assert_int_equal(first, 5);
    assert_int_equal(last, 5);
    assert_int_equal(ota_store_trim_changes(f->s, 5), 0);
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);
    assert_int_equal(first, 6);
    assert_int_equal(last, 5);
}

/* A group put or deleted is one change log entry (its definition; members stay in the
 * store): how the other brokers follow groups (plugin/follow.c). */
static void test_change_log_groups(void **state)
{
    fixture *f = *state;
    const char *vins[] = {"VIN00000000000001", "VIN00000000000002"};
    char err[256] = "";
    const char *def = "{\"name\":\"pilot\",\"kind\":\"static\"}";
    if (ota_store_put_group(f->s, "pilot", def, vins, 2, err, sizeof err) != 0 ||
        ota_store_delete_group(f->s, "pilot", err, sizeof err) != 0)
        fail_msg("group: %s", err);
    changes w = {0};
    assert_int_equal(ota_store_read_changes(f->s, 0, 0, 0, 0, see_change, &w), 2);
    assert_non_null(strstr(w.line[0], "group 0 pilot put {"));
    assert_non_null(strstr(w.line[0], "\"kind\":\"static\""));
    assert_string_equal(w.line[1], "group 0 pilot delete -");
}

/* An operator's reset in a report batch appends one ota_vehicle_state entry per reset, even
 * when a later guard row of the VIN stands in for it in the batch: how the other brokers'
 * replay guards follow resetVehicleSeq (plugin/follow.c). A report's row appends none, and
 * one with fewer resets than the stored row does not replace it. */
static void test_change_log_resets(void **state)
{
    fixture *f = *state;
    const char *vin = "VIN00000000000001";
    ota_report_seq_rec reset = {vin, "unit-2", -1, 3, 1000};
    ota_report_seq_rec rows[] = {{vin, "unit-2", 4, 3, 1001}};
    ota_store_batch b = {.seqs = rows, .n_seqs = 1, .resets = &reset, .n_resets = 1};
    char err[256] = "";
    if (ota_store_put_batch(f->s, &b, NULL, err, sizeof err) != 0)
        fail_msg("put_batch: %s", err);
    ota_store_batch report_only = {.seqs = rows, .n_seqs = 1};
    if (ota_store_put_batch(f->s, &report_only, NULL, err, sizeof err) != 0)
        fail_msg("put_batch: %s", err);
    changes w = {0};
    assert_int_equal(ota_store_read_changes(f->s, 0, 0, 0, 0, see_change, &w), 1);
    assert_non_null(strstr(w.line[0], "state 0 VIN00000000000001 put {"));
    ota_store_change c = {.what = OTA_CHANGE_VEHICLE_STATE, .id = vin, .json = strchr(w.line[0],
                                                                                      '{')};
    char epoch[OTA_STORE_EPOCH_KEY_MAX];
    ota_report_seq_rec got;
    assert_int_equal(ota_store_change_vehicle_state(&c, &got, epoch, sizeof epoch), 0);
    assert_string_equal(got.vin, vin);
    assert_string_equal(got.epoch, "unit-2");
    assert_int_equal(got.seq, -1);
    assert_int_equal(got.resets, 3);
    c.what = OTA_CHANGE_VEHICLE;
    assert_int_equal(ota_store_change_vehicle_state(&c, &got, epoch, sizeof epoch), -1);

    /* a row with fewer resets (a broker that had not followed the reset yet) replaces
     * nothing; several rows of one VIN: the last counts */
    ota_report_seq_rec stale = {vin, "0", 9, 2, 1002};
    ota_store_batch late = {.seqs = &stale, .n_seqs = 1};
    if (ota_store_put_batch(f->s, &late, NULL, err, sizeof err) != 0)
        fail_msg("put_batch: %s", err);
    ota_report_seq_rec two[] = {{"VIN00000000000002", "0", 7, 0, 1}, {"VIN00000000000002", "0", 3,
                                                                      1, 2}};
    ota_store_batch both = {.seqs = two, .n_seqs = 2};
    if (ota_store_put_batch(f->s, &both, NULL, err, sizeof err) != 0)
        fail_msg("put_batch: %s", err);
    seqs q = {0};
    assert_int_equal(ota_store_load_last_seqs(f->s, see_seq, &q), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(q.epoch[0], "unit-2");
    assert_int_equal(q.seq[0], 4);
    assert_int_equal(q.resets[0], 3);
    assert_int_equal(q.seq[1], 3);
    assert_int_equal(q.resets[1], 1);
}

/* ---- a local snapshot: start without the database ---- */

#define UNREACHABLE "mongodb://127.0.0.1:1/ota?serverSelectionTimeoutMS=300&connectTimeoutMS=300"

static void count_loaded(ota_store *s, int want_vehicles, int want_docs, int want_list)
{
    items w = {0};
    assert_int_equal(ota_store_load_vehicles(s, see_vehicle, &w), 0);
    assert_int_equal(w.n, want_vehicles);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_docs(s, OTA_DOC_PACKAGE, see_doc, &w), 0);
    assert_int_equal(w.n, want_docs);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_lists(s, see_list, &w), 0);
    assert_int_equal(w.n, want_list);
}

/* Issue 17: a vehicle's RXSWIN list is a column (SQLite) / field (MongoDB) of its own,
 * replaced with the vehicle and absent when NULL; what a committed success changed is an
 * OTA_DOC_RXSWIN document, both in the change log with the vehicle's new list. */
static void test_vehicle_rxswin(void **state)
{
    fixture *f = *state;
    ota_vehicle_rec v[] = {vehicle("VIN00000000000001", "sold"),
                           vehicle("VIN00000000000002", "sold")};
    v[0].rxswin = "R10-EMC.1,R79-STEER.2";
    ota_store_doc docs[] = {{OTA_DOC_RXSWIN, "T000001/VIN00000000000001",
                             "{\"task\":\"T000001\",\"vin\":\"VIN00000000000001\","
                             "\"package\":3,\"before\":[\"R79-STEER.1\"],"
                             "\"after\":[\"R10-EMC.1\",\"R79-STEER.2\"],\"at\":5}"}};
    test_apply_ok(f->s, &(ota_catalog_change){
                            .put_vehicles = v, .n_put_vehicles = 2, .docs = docs, .n_docs = 1});
    test_got_vehicles g;
    test_load_vehicles_ok(f->s, &g);
    assert_int_equal(g.n, 2);
    test_assert_vehicle(&g.v[0], &v[0]);
    test_assert_vehicle(&g.v[1], &v[1]); /* no list: NULL, not "" */
    test_got_vehicles_free(&g);
    v[0].rxswin = NULL; /* a put replaces the whole vehicle */
    test_apply_ok(f->s, &(ota_catalog_change){.put_vehicles = v, .n_put_vehicles = 1});
    test_load_vehicles_ok(f->s, &g);
    assert_null(g.v[0].rxswin);
    test_got_vehicles_free(&g);
    test_got_docs d;
    test_load_docs_ok(f->s, OTA_DOC_RXSWIN, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.key[0], "T000001/VIN00000000000001");
    assert_string_equal(d.json[0], docs[0].json);
    test_got_docs_free(&d);
    changes w = {0};
    assert_int_equal(ota_store_read_changes(f->s, 0, 0, 0, 0, see_change, &w), 4);
    assert_non_null(strstr(w.line[0], "\"rxswin\":[\"R10-EMC.1\",\"R79-STEER.2\"]"));
    assert_null(strstr(w.line[1], "rxswin"));
    assert_non_null(strstr(w.line[2], "doc 8 T000001/VIN00000000000001 put {"));
}

static void test_snapshot(void **state)
{
    fixture *f = *state;
    ota_vehicle_rec v[] = {vehicle("VIN00000000000001", "sold"),
                           vehicle("VIN00000000000002", "sold")};
    v[0].has_public_key = true;
    for (int i = 0; i < OTA_PUBKEY_LEN; i++)
        v[0].public_key[i] = (uint8_t)i;
    ota_store_doc docs[] = {{OTA_DOC_PACKAGE, "7", "{\"id\":7,\"version\":\"2.0.9\"}"},
                            {OTA_DOC_TASK, "T1", TASK_JSON}};
    const char *black[] = {"VIN00000000000002"};
    ota_exec_rec x[] = {exec_rec("VIN00000000000001", OTA_EXEC_NOTIFIED, "T1:V:0")};
    ota_shadow_rec sh[] = {{"VIN00000000000001", 3, "{\"fw\":\"1\"}", "{\"m\":1}", 5}};
    ota_notice_rec no[] = {{"T1", "VIN00000000000001", 7, "2.0", "T1:V:0", 50}};
    static const uint8_t cose[] = {0xd2, 0x84, 0x43, 0xa1};
    ota_description_rec de[] = {{"VIN00000000000001", 4, "T1", 9, 7, "aa", cose, 4, 1, 2}};
    ota_catalog_change c = {.put_vehicles = v,
                            .n_put_vehicles = 2,
                            .docs = docs,
                            .n_docs = 2,
                            .list = OTA_LIST_BLACKLIST,
                            .list_add = black,
                            .n_list_add = 1,
                            .put_execs = x,
                            .n_put_execs = 1,
                            .put_shadows = sh,
                            .n_put_shadows = 1,
                            .add_notices = no,
                            .n_add_notices = 1,
                            .add_descriptions = de,
                            .n_add_descriptions = 1};
    test_apply_ok(f->s, &c);
    ota_event st = status_ev(0, "installing"), p = progress_ev(0, 5);
    ota_store_event evs[] = {{"VIN00000000000001", 4, 1, &st, NULL}, {"VIN00000000000001", 9, 1, &p, NULL}};
    put(f->s, evs, 2, 2, 0);

    char dir[512], path[600], err[256] = "";
    snprintf(dir, sizeof dir, "%s", test_fresh_dir("snapshot"));
    test_mkdir_p(dir);
    snprintf(path, sizeof path, "%s/snapshot.db", dir);
    bool from_snapshot = true;
    assert_null(ota_store_open_or_snapshot(UNREACHABLE, path, &from_snapshot, err, sizeof err));
    assert_false(from_snapshot); /* no snapshot yet: nothing to start from */
    if (ota_store_snapshot_save(f->s, path, err, sizeof err) != 0)
        fail_msg("save: %s", err);

    ota_store *s = ota_store_open_or_snapshot(UNREACHABLE, path, &from_snapshot, err, sizeof err);
    assert_non_null(s);
    assert_true(from_snapshot);
    assert_non_null(strstr(err, "MongoDB")); /* why the store did not open */
    count_loaded(s, 2, 1, 1);
    items w = {0};
    assert_int_equal(ota_store_load_vehicles(s, see_vehicle, &w), 0);
    assert_true(w.flag[0]); /* the public key came along */
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_docs(s, OTA_DOC_TASK, see_doc, &w), 0);
    assert_string_equal(w.val[0], TASK_JSON);
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_execs(s, see_exec, &w), 0);
    assert_string_equal(w.val[0], "notified - 0 T1:V:0 50");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_shadows(s, see_shadow, &w), 0);
    assert_string_equal(w.val[0], "3 {\"fw\":\"1\"} {\"m\":1}");
    memset(&w, 0, sizeof w);
    assert_int_equal(ota_store_load_notices(s, NULL, see_notice, &w), 0);
    assert_int_equal(ota_store_load_descriptions(s, NULL, see_description, &w), 0);
    assert_int_equal(w.n, 2);
    seen e = {0};
    assert_int_equal(ota_store_load_latest_statuses(s, see_event, &e), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.text[0], "installing");
    seqs q = {0};
    assert_int_equal(ota_store_load_last_seqs(s, see_seq, &q), 0);
    assert_int_equal(q.n, 1);
    assert_int_equal(q.seq[0], 9);
    ota_store_close(s);

    /* refreshed from the change log: a package, a vehicle deleted, a list member removed,
     * a vehicle added */
    ota_store_doc more[] = {{OTA_DOC_PACKAGE, "8", "{\"id\":8}"}};
    const char *gone[] = {"VIN00000000000002"};
    ota_vehicle_rec v3[] = {vehicle("WDB12345678901234", "in_stock")}; /* the codec checks VINs */
    ota_catalog_change d = {.docs = more,
                            .n_docs = 1,
                            .delete_vehicles = gone,
                            .n_delete_vehicles = 1,
                            .list = OTA_LIST_BLACKLIST,
                            .list_remove = black,
                            .n_list_remove = 1,
                            .put_vehicles = v3,
                            .n_put_vehicles = 1};
    test_apply_ok(f->s, &d);
    int applied = ota_store_snapshot_refresh(f->s, path, false, err, sizeof err);
    if (applied != 4)
        fail_msg("refresh: %d %s", applied, err);
    uint64_t pos = 0, first, last;
    assert_int_equal(ota_store_snapshot_position(path, &pos), 0);
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);
    assert_int_equal(pos, last);
    assert_int_equal(ota_store_snapshot_refresh(f->s, path, false, err, sizeof err), 0);
    char uri[700];
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    s = test_store_open(uri);
    count_loaded(s, 2, 2, 0);
    ota_store_close(s);

    /* an entry the snapshot cannot apply (the codec refuses this VIN): saved anew */
    ota_vehicle_rec odd[] = {vehicle("VIN00000000000004", "sold")};
    ota_catalog_change o = {.put_vehicles = odd, .n_put_vehicles = 1};
    test_apply_ok(f->s, &o);
    assert_int_equal(ota_store_snapshot_refresh(f->s, path, false, err, sizeof err), 0);
    s = test_store_open(uri);
    count_loaded(s, 3, 2, 0);
    ota_store_close(s);
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);

    /* entries after its position trimmed: saved anew */
    ota_store_doc again[] = {{OTA_DOC_PACKAGE, "9", "{\"id\":9}"}};
    ota_catalog_change g = {.docs = again, .n_docs = 1};
    test_apply_ok(f->s, &g);
    assert_int_equal(ota_store_trim_changes(f->s, last + 1), 0);
    assert_int_equal(ota_store_snapshot_refresh(f->s, path, false, err, sizeof err), 0);
    assert_int_equal(ota_store_snapshot_position(path, &pos), 0);
    assert_int_equal(pos, last + 1);
    s = test_store_open(uri);
    count_loaded(s, 3, 3, 0);
    ota_store_close(s);
    assert_int_equal(ota_store_snapshot_position("/nonexistent/snapshot.db", &pos), -1);
}

/* Issue 16: a task document's conditional write over its revision ("rev"), its change
 * log entry, a document kept as text on MongoDB, and one task's executions by state. */
static void test_task_doc_if(void **state)
{
    fixture *f = *state;
    ota_store_doc docs[] = {{OTA_DOC_TASK, "T1", "{\"state\":\"active\"}"},
                            {OTA_DOC_TASK, "T2", "{\"a.b\":1,\"rev\":4}"}}; /* text on MongoDB */
    ota_catalog_change c = {.docs = docs, .n_docs = 2};
    test_apply_ok(f->s, &c);
    uint64_t first, last;
    assert_int_equal(ota_store_change_bounds(f->s, &first, &last), 0);
    char err[256] = "";
    const char *r1 = "{\"state\":\"active\",\"rev\":1}", *r2 = "{\"state\":\"aborted\",\"rev\":2}";
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T1", r1, 1, err, sizeof err), 0);
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T1", r1, 0, err, sizeof err), 1);
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T1", r1, 0, err, sizeof err), 0);
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T1", r2, 1, err, sizeof err), 1);
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T9", r1, 0, err, sizeof err), 0);
    const char *t5 = "{\"a.b\":2,\"rev\":5}";
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T2", t5, 3, err, sizeof err), 0);
    assert_int_equal(ota_store_put_task_doc_if(f->s, "T2", t5, 4, err, sizeof err), 1);
    items w = {0};
    assert_int_equal(ota_store_load_docs(f->s, OTA_DOC_TASK, see_doc, &w), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.val[0], r2);
    assert_string_equal(w.val[1], t5);
    changes ch = {0};
    assert_int_equal(ota_store_read_changes(f->s, last, 0, 0, 0, see_change, &ch), 3);
    assert_string_equal(ch.line[1], "doc 6 T1 put {\"state\":\"aborted\",\"rev\":2}");
    assert_string_equal(ch.line[2], "doc 6 T2 put {\"a.b\":2,\"rev\":5}");

    ota_exec_rec x[] = {exec_rec("VIN00000000000001", OTA_EXEC_SUCCEEDED, "m1"),
                        exec_rec("VIN00000000000002", OTA_EXEC_FAILED, "m2"),
                        exec_rec("VIN00000000000003", OTA_EXEC_NOTIFIED, "m3")};
    ota_catalog_change e = {.put_execs = x, .n_put_execs = 3};
    test_apply_ok(f->s, &e);
    items got = {0};
    unsigned finals = (1u << OTA_EXEC_SUCCEEDED) | (1u << OTA_EXEC_FAILED);
    assert_int_equal(ota_store_load_task_execs(f->s, "T1", finals, see_exec, &got), 0);
    assert_int_equal(got.n, 2);
    memset(&got, 0, sizeof got);
    assert_int_equal(ota_store_load_task_execs(f->s, "T2", finals, see_exec, &got), 0);
    assert_int_equal(got.n, 0);
}

/* ota_store_count_task_execs: counts by (state, wave), one line per pair, in order. */
typedef struct {
    char line[16][48];
    size_t n, stop_after;
} counted;

static int see_count(void *ctx, ota_exec_state state, int64_t wave, uint64_t n)
{
    counted *c = ctx;
    assert_true(c->n < 16);
    snprintf(c->line[c->n++], sizeof c->line[0], "%s w%lld %llu", ota_exec_state_name(state),
             (long long)wave, (unsigned long long)n);
    return c->stop_after != 0 && c->n >= c->stop_after;
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void count_ok(ota_store *s, const char *task, counted *c)
{
    char err[256] = "";
    memset(c, 0, sizeof *c);
    assert_int_equal(ota_store_count_task_execs(s, task, see_count, c, err, sizeof err), 0);
    qsort(c->line, c->n, sizeof c->line[0], line_cmp);
}

/* A task's executions counted by the store per state and wave (issue 15: no rows read), the
 * wave kept through a transition, other tasks apart, executions without a wave under -1. */
static void test_count_task_execs(void **state)
{
    fixture *f = *state;
    ota_exec_rec x[9];
    const char *vin[9] = {"VIN00000000000001", "VIN00000000000002", "VIN00000000000003",
                          "VIN00000000000004", "VIN00000000000005", "VIN00000000000006",
                          "VIN00000000000007", "VIN00000000000008", "VIN00000000000009"};
    ota_exec_state st[9] = {OTA_EXEC_SUCCEEDED, OTA_EXEC_SUCCEEDED, OTA_EXEC_FAILED,
                            OTA_EXEC_QUEUED,    OTA_EXEC_SUCCEEDED, OTA_EXEC_NOTIFIED,
                            OTA_EXEC_REJECTED,  OTA_EXEC_QUEUED,    OTA_EXEC_FAILED};
    int64_t wave[9] = {0, 0, 0, 1, 1, 1, -1, 1, 0};
    for (int i = 0; i < 9; i++) {
        x[i] = exec_rec(vin[i], st[i], NULL);
        x[i].wave = wave[i];
        x[i].task = i < 8 ? "T1" : "T2";
    }
    ota_catalog_change c = {.put_execs = x, .n_put_execs = 9};
    test_apply_ok(f->s, &c);
    ota_exec_rec to = x[5]; /* notified -> succeeded in wave 1 */
    to.state = OTA_EXEC_SUCCEEDED;
    char err[256] = "";
    assert_int_equal(ota_store_transition_exec(f->s, OTA_EXEC_NOTIFIED, &to, err, sizeof err), 1);
    counted got;
    count_ok(f->s, "T1", &got);
    assert_int_equal(got.n, 5);
    assert_string_equal(got.line[0], "failed w0 1");
    assert_string_equal(got.line[1], "queued w1 2");
    assert_string_equal(got.line[2], "rejected w-1 1");
    assert_string_equal(got.line[3], "succeeded w0 2");
    assert_string_equal(got.line[4], "succeeded w1 2");
    count_ok(f->s, "T2", &got);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.line[0], "failed w0 1");
    count_ok(f->s, "T9", &got);
    assert_int_equal(got.n, 0);
    memset(&got, 0, sizeof got);
    got.stop_after = 1; /* fn stops: an error, said */
    assert_int_equal(ota_store_count_task_execs(f->s, "T1", see_count, &got, err, sizeof err), -1);
    assert_true(err[0] != '\0');
}

/* Two handles (two brokers) promoting the same task from each revision in turn: each
 * revision is raised by exactly one of them. */
enum { DOC_RACE_N = 30 };

static void *doc_race(void *arg)
{
    racer *r = arg;
    char err[256], json[64];
    for (int i = 0; i < DOC_RACE_N; i++) {
        snprintf(json, sizeof json, "{\"state\":\"active\",\"rev\":%d}", i + 1);
        int rc = ota_store_put_task_doc_if(r->s, "T1", json, (uint64_t)i, err, sizeof err);
        r->won += rc == 1;
        r->errors += rc < 0;
    }
    return NULL;
}

static void test_task_doc_race(void **state)
{
    fixture *f = *state;
    ota_store_doc docs[] = {{OTA_DOC_TASK, "T1", "{\"state\":\"active\"}"}};
    ota_catalog_change c = {.docs = docs, .n_docs = 1};
    test_apply_ok(f->s, &c);
    racer a = {f->s, 0, 0}, b = {test_store_open(f->uri), 0, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, doc_race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, doc_race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ota_store_close(b.s);
    assert_int_equal(a.errors + b.errors, 0);
    assert_int_equal(a.won + b.won, DOC_RACE_N);
}

static int run_backend(const char *name, const char *base)
{
    backend_base = base;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_event_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_event_loaders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vehicle_rxswin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_change_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_notices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_native_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mongo_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vehicle_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transition_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notice_decision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notice_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_log_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_log_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_doc_if, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_doc_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_task_execs, setup, teardown),
    };
    return _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}

int main(void)
{
    const char *peer = getenv("OTA_TEST_MONGO_PEER_URI");
    const char *real = getenv("OTA_TEST_MONGODB_URI");
    int failed = run_backend("store contract: sqlite", NULL);
    if (peer != NULL && peer[0] != '\0')
        failed += run_backend("store contract: mongo (wire-protocol test peer)", peer);
    else
        printf("store contract: the MongoDB test peer is skipped (OTA_TEST_MONGO_PEER_URI unset; "
               "ctest -R mongo_store_contract sets it)\n");
    if (real != NULL && real[0] != '\0')
        failed += run_backend("store contract: mongo (real MongoDB server)", real);
    else
        printf("store contract: a real MongoDB server is skipped (OTA_TEST_MONGODB_URI unset)\n");
    test_remove_dirs(NULL);
    return failed != 0;
}
