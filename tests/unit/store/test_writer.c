/*
 * test_writer.c — unit tests of the writer thread (store/writer.c) with a real spool on
 * disk, real CBOR reports built with libcbor, and the real SQLite store: draining, restart
 * without re-storing, crash replay, undecodable records, a store outage (through a fake
 * store that fails before forwarding to SQLite), and the batch size.
 */
#include "ota_writer.h"
#include "store_impl.h"
#include "test_util.h"

#include <cbor.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define VIN1 "LSVAU2180N2183294"
#define VIN2 "WVWZZZ1JZ3W386752"

static char g_spool[1100];
static char g_db[1100];

/* A fresh directory for one test, holding the spool dir and the database. */
static void fresh_dir(const char *name)
{
    const char *dir = test_fresh_dir(name);
    test_mkdir_p(dir);
    snprintf(g_spool, sizeof g_spool, "%s/spool", dir);
    snprintf(g_db, sizeof g_db, "sqlite:%s/ota.db", dir);
}

/* ---------------------------------------------------------------- reports */

static void map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    bool ok =
        cbor_map_add(map, (struct cbor_pair){cbor_move(cbor_build_string(key)), cbor_move(value)});
    assert_true(ok);
}

/* Event i of a report: the type cycles download_progress, upgrade_status, eeprom_clear. */
static cbor_item_t *make_event(uint64_t i)
{
    cbor_item_t *ev = cbor_new_definite_map(5);
    static const char *types[] = {"download_progress", "upgrade_status", "eeprom_clear"};
    map_put(ev, "type", cbor_build_string(types[i % 3]));
    map_put(ev, "task", cbor_build_string("T-2024-0001"));
    map_put(ev, "ts", cbor_build_uint64(1700000000000u + i));
    switch (i % 3) {
    case 0:
        map_put(ev, "pct", cbor_build_uint8((uint8_t)(i % 101)));
        break;
    case 1:
        map_put(ev, "status", cbor_build_string("upgrading"));
        map_put(ev, "trigger", cbor_build_string("normal"));
        break;
    default:
        map_put(ev, "ecu", cbor_build_string("BMS"));
        map_put(ev, "result", cbor_build_string("ok"));
        break;
    }
    return ev;
}

/* {seq, events:[n events]}; malloc'd, *len set. */
static uint8_t *make_report(uint64_t seq, size_t n, size_t *len)
{
    cbor_item_t *root = cbor_new_definite_map(2);
    cbor_item_t *events = cbor_new_definite_array(n);
    for (size_t i = 0; i < n; i++)
        assert_true(cbor_array_push(events, cbor_move(make_event(i))));
    map_put(root, "seq", cbor_build_uint64(seq));
    map_put(root, "events", events);
    unsigned char *buf = NULL;
    size_t size = 0;
    *len = cbor_serialize_alloc(root, &buf, &size);
    cbor_decref(&root);
    assert_true(*len > 0);
    return buf;
}

/* Appends reports seq first..first+count-1 of vin, n events each. */
static void append_reports(ota_spool *s, const char *vin, uint64_t first, uint64_t count, size_t n)
{
    for (uint64_t seq = first; seq < first + count; seq++) {
        size_t len;
        uint8_t *p = make_report(seq, n, &len);
        assert_int_equal(ota_spool_append_report(s, vin, seq, 1700000001000 + (int64_t)seq, p, len),
                         0);
        free(p);
    }
}

/* Events stored per type (download, status, eeprom) when reports have n events each. */
static void expect_counts(uint64_t reports, size_t n, uint64_t want[3])
{
    for (int t = 0; t < 3; t++)
        want[t] = 0;
    for (size_t i = 0; i < n; i++)
        want[i % 3] += reports;
}

static void check_store_counts(uint64_t download, uint64_t status, uint64_t eeprom)
{
    char err[256] = "";
    ota_store *st = ota_store_open(g_db, err, sizeof err);
    if (!st)
        fail_msg("ota_store_open: %s", err);
    uint64_t c = 0;
    assert_int_equal(ota_store_count_events(st, OTA_EV_DOWNLOAD_PROGRESS, NULL, &c), 0);
    assert_int_equal(c, download);
    assert_int_equal(ota_store_count_events(st, OTA_EV_UPGRADE_STATUS, NULL, &c), 0);
    assert_int_equal(c, status);
    assert_int_equal(ota_store_count_events(st, OTA_EV_EEPROM_CLEAR, NULL, &c), 0);
    assert_int_equal(c, eeprom);
    ota_store_close(st);
}

/* ---------------------------------------------------------------- log capture */

typedef struct {
    pthread_mutex_t mu;
    int lines;
    int skipped;   /* "skipping" lines */
    int down;      /* "store unavailable" lines */
    int recovered; /* "store recovered" lines */
} log_capture;

static log_capture g_log = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture_log(void *ctx, int level, const char *msg)
{
    log_capture *c = ctx;
    (void)level;
    pthread_mutex_lock(&c->mu);
    c->lines++;
    c->skipped += strstr(msg, "skipping") != NULL;
    c->down += strstr(msg, "store unavailable") != NULL;
    c->recovered += strstr(msg, "store recovered") != NULL;
    pthread_mutex_unlock(&c->mu);
}

static log_capture log_get(void)
{
    pthread_mutex_lock(&g_log.mu);
    log_capture c = g_log;
    pthread_mutex_unlock(&g_log.mu);
    return c;
}

static void log_reset(void)
{
    pthread_mutex_lock(&g_log.mu);
    g_log.lines = g_log.skipped = g_log.down = g_log.recovered = 0;
    pthread_mutex_unlock(&g_log.mu);
}

/* ---------------------------------------------------------------- a fake store */

/* Fails the first `fail_first` put_events calls (or every call while `failing`), then
 * forwards to a real SQLite store; records the calls. */
typedef struct {
    struct ota_store base;
    ota_store *real;
    pthread_mutex_t mu;
    int fail_first;
    bool failing;
    int calls;
    size_t max_batch;
    size_t seq_rows; /* guard rows received */
    uint64_t call_ms[64];
} fake_store;

static int fake_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                          char *err, size_t errlen)
{
    fake_store *f = (fake_store *)s;
    size_t n = b->n_events;
    pthread_mutex_lock(&f->mu);
    if (f->calls < 64)
        f->call_ms[f->calls] = test_now_ms();
    f->calls++;
    if (n > f->max_batch)
        f->max_batch = n;
    f->seq_rows += b->n_seqs;
    bool fail = f->failing || f->fail_first > 0;
    if (f->fail_first > 0)
        f->fail_first--;
    pthread_mutex_unlock(&f->mu);
    if (fail) {
        snprintf(err, errlen, "fake store: database is down");
        return -1;
    }
    return ota_store_put_batch(f->real, b, res, err, errlen);
}

static int fake_put(ota_store *s, const ota_store_event *evs, size_t n, ota_store_put_result *res,
                    char *err, size_t errlen)
{
    ota_store_batch b = {.events = evs, .n_events = n};
    return fake_put_batch(s, &b, res, err, errlen);
}

static void fake_close(ota_store *s)
{
    fake_store *f = (fake_store *)s;
    ota_store_close(f->real);
    /* the test still reads the counters: freed by fake_free() */
}

static int fake_latest(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx)
{
    return ota_store_latest_status(((fake_store *)s)->real, vin, fn, ctx);
}

static int fake_count(ota_store *s, ota_event_type type, const char *vin, uint64_t *count)
{
    return ota_store_count_events(((fake_store *)s)->real, type, vin, count);
}

static int fake_history(ota_store *s, const char *vin, ota_event_type type,
                        const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                        void *ctx)
{
    return ota_store_history_before(((fake_store *)s)->real, vin, type, before, limit, fn, ctx);
}

static const ota_store_ops fake_ops = {
    .name = "fake",
    .close = fake_close,
    .put_events = fake_put,
    .put_batch = fake_put_batch,
    .latest_status = fake_latest,
    .count_events = fake_count,
    .history = fake_history,
};

static fake_store *fake_open(int fail_first, bool failing)
{
    fake_store *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char err[256] = "";
    f->real = ota_store_open(g_db, err, sizeof err);
    if (!f->real)
        fail_msg("ota_store_open: %s", err);
    f->base.ops = &fake_ops;
    pthread_mutex_init(&f->mu, NULL);
    f->fail_first = fail_first;
    f->failing = failing;
    return f;
}

static void fake_set_failing(fake_store *f, bool failing)
{
    pthread_mutex_lock(&f->mu);
    f->failing = failing;
    pthread_mutex_unlock(&f->mu);
}

static void fake_free(fake_store *f)
{
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---------------------------------------------------------------- fixtures */

static ota_spool *open_spool(void)
{
    char err[256] = "";
    ota_spool_config cfg = {.dir = g_spool, .sync_ms = 5};
    ota_spool *s = ota_spool_open(&cfg, err, sizeof err);
    if (!s)
        fail_msg("ota_spool_open: %s", err);
    return s;
}

static ota_writer *start_writer_on(ota_spool *sp, ota_store *st, size_t batch, unsigned retry_min,
                                   unsigned retry_max)
{
    char err[256] = "";
    ota_writer_config cfg = {.batch_events = batch,
                             .retry_min_ms = retry_min,
                             .retry_max_ms = retry_max,
                             .log = capture_log,
                             .log_ctx = &g_log};
    ota_writer *w = ota_writer_start(sp, st, &cfg, err, sizeof err);
    if (!w)
        fail_msg("ota_writer_start: %s", err);
    return w;
}

static ota_writer *start_writer(ota_spool *sp)
{
    char err[256] = "";
    ota_store *st = ota_store_open(g_db, err, sizeof err);
    if (!st)
        fail_msg("ota_store_open: %s", err);
    return start_writer_on(sp, st, 0, 0, 0);
}

/* A writer handing back report results (report_results: the plugin's configuration). */
static ota_writer *start_results_writer(ota_spool *sp)
{
    char err[256] = "";
    ota_store *st = ota_store_open(g_db, err, sizeof err);
    if (!st)
        fail_msg("ota_store_open: %s", err);
    ota_writer_config cfg = {.log = capture_log, .log_ctx = &g_log, .report_results = true};
    ota_writer *w = ota_writer_start(sp, st, &cfg, err, sizeof err);
    if (!w)
        fail_msg("ota_writer_start: %s", err);
    return w;
}

static ota_writer_stats writer_stats(ota_writer *w)
{
    ota_writer_stats st;
    ota_writer_stats_get(w, &st);
    return st;
}

/* ---------------------------------------------------------------- tests */

typedef struct {
    int stored, refused;
    uint64_t last_seq;
    size_t events;
    char refused_msg[OTA_ERRMSG_MAX];
} results_seen;

static void see_result(void *ctx, const ota_report_result *r)
{
    results_seen *s = ctx;
    if (r->refused) {
        s->refused++;
        snprintf(s->refused_msg, sizeof s->refused_msg, "%s", r->err.msg);
        return;
    }
    s->stored++;
    s->last_seq = r->seq;
    s->events += r->rep.n_events;
}

/* Polls results until want of them came (or 10 s). */
static void poll_results(ota_writer *w, results_seen *s, int want)
{
    for (int i = 0; i < 1000 && s->stored + s->refused < want; i++) {
        ota_writer_poll_reports(w, see_result, s);
        usleep(10000);
    }
}

/* report_results: one result per report record, in spool order, after the store has it,
 * the decoder's refusals with their reason; the checkpoint moves past a batch only once
 * its results were polled. */
static void test_report_results_and_checkpoint(void **state)
{
    (void)state;
    fresh_dir("results");
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 3, 2);
    size_t len;
    uint8_t *no_events = make_report(4, 0, &len);
    assert_int_equal(ota_spool_append_report(sp, VIN1, 4, 1, no_events, len), 0);
    free(no_events);
    ota_writer *w = start_results_writer(sp);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_spool_pos ck;
    assert_int_equal(ota_spool_checkpoint_load(sp, &ck), 0);
    assert_int_equal(ck.offset, 0); /* stored, but nothing polled yet */
    results_seen seen = {0};
    poll_results(w, &seen, 4);
    assert_int_equal(seen.stored, 3);
    assert_int_equal(seen.last_seq, 3);
    assert_int_equal(seen.events, 6);
    assert_int_equal(seen.refused, 1);
    assert_non_null(strstr(seen.refused_msg, "events"));
    ota_spool_stats sst;
    ota_spool_stats_get(sp, &sst);
    for (int i = 0; i < 1000; i++) { /* the writer stores the polled checkpoint */
        assert_int_equal(ota_spool_checkpoint_load(sp, &ck), 0);
        if (ck.segment == sst.end.segment && ck.offset == sst.end.offset)
            break;
        usleep(10000);
    }
    assert_int_equal(ck.segment, sst.end.segment);
    assert_int_equal(ck.offset, sst.end.offset);
    assert_int_equal(writer_stats(w).quarantined, 1);
    ota_writer_stop(w);
    ota_spool_close(sp);
}

static void test_drain_stores_everything(void **state)
{
    (void)state;
    fresh_dir("drain");
    log_reset();
    ota_spool *sp = open_spool();
    ota_writer *w = start_writer(sp);
    append_reports(sp, VIN1, 1, 150, 4);
    append_reports(sp, VIN2, 1, 50, 4);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.events_stored, 800);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.records_skipped, 0);
    assert_int_equal(st.store_errors, 0);
    assert_true(st.batches >= 1);
    assert_true(st.store_ok);
    assert_int_equal(st.backlog_bytes, 0);
    uint64_t want[3];
    expect_counts(200, 4, want);
    check_store_counts(want[0], want[1], want[2]);

    /* More while running, then nothing: drained again at once. */
    append_reports(sp, VIN1, 151, 10, 4);
    assert_true(ota_writer_wait_drained(w, 10000));
    assert_int_equal(writer_stats(w).events_stored, 840);
    assert_true(ota_writer_wait_drained(w, 1000));
    ota_writer_stop(w);
    ota_spool_close(sp);
    assert_int_equal(log_get().lines, 0);
    test_remove_dir();
}

/* ---- restarts: what a new writer finds in the spool and the store ---- */

typedef struct {
    const char *dir;
    uint64_t reports;      /* stored (3 events each) before the restart */
    bool lose_checkpoint;  /* as if the process died after the store commit but before the
                            * checkpoint */
    uint64_t replayed_dup; /* duplicates the new writer counts */
} restart_case;

static const restart_case restart_cases[] = {
    {"restart", 100, false, 0}, /* the checkpoint: nothing is stored twice */
    {"replay", 120, true, 360}, /* no checkpoint: everything again, all duplicates */
};

static void test_restart(void **state)
{
    const restart_case *c = *state;
    fresh_dir(c->dir);
    ota_spool *sp = open_spool();
    ota_writer *w = start_writer(sp);
    append_reports(sp, VIN1, 1, c->reports, 3);
    assert_true(ota_writer_wait_drained(w, 10000));
    assert_int_equal(writer_stats(w).events_stored, 3 * c->reports);
    ota_writer_stop(w);
    ota_spool_close(sp);
    if (c->lose_checkpoint) {
        char path[1200];
        snprintf(path, sizeof path, "%s/checkpoint", g_spool);
        assert_int_equal(unlink(path), 0);
    }

    sp = open_spool();
    w = start_writer(sp);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.events_stored, 0);
    assert_int_equal(st.duplicates, c->replayed_dup);
    /* New reports after the restart are stored once. */
    append_reports(sp, VIN1, c->reports + 1, 10, 3);
    assert_true(ota_writer_wait_drained(w, 10000));
    st = writer_stats(w);
    assert_int_equal(st.events_stored, 30);
    assert_int_equal(st.duplicates, c->replayed_dup);
    ota_writer_stop(w);
    ota_spool_close(sp);
    check_store_counts(c->reports + 10, c->reports + 10, c->reports + 10);
    test_remove_dir();
}

static void test_undecodable_record_is_skipped(void **state)
{
    (void)state;
    fresh_dir("undecodable");
    log_reset();
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 5, 3);
    static const uint8_t junk[] = {0xff, 0x00, 'n', 'o', 't', ' ', 'c', 'b', 'o', 'r'};
    assert_int_equal(ota_spool_append_report(sp, VIN1, 6, 1, junk, sizeof junk), 0);
    size_t len;
    uint8_t *no_events = make_report(7, 0, &len); /* events must not be empty */
    assert_int_equal(ota_spool_append_report(sp, VIN1, 7, 1, no_events, len), 0);
    free(no_events);
    append_reports(sp, VIN1, 8, 5, 3);
    uint8_t *huge_seq = make_report(UINT64_MAX, 3, &len); /* decodes; no store can key it */
    assert_int_equal(ota_spool_append_report(sp, VIN1, UINT64_MAX, 1, huge_seq, len), 0);
    free(huge_seq);

    ota_writer *w = start_writer(sp);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.records_skipped, 0);
    assert_int_equal(st.quarantined, 3); /* the three that no longer decode: kept */
    assert_int_equal(st.events_stored, 30);
    assert_int_equal(log_get().skipped, 0);

    /* Only junk at the end: quarantined, and the checkpoint moves past it. */
    assert_int_equal(ota_spool_append_report(sp, VIN1, 13, 1, junk, sizeof junk), 0);
    assert_true(ota_writer_wait_drained(w, 10000));
    assert_int_equal(writer_stats(w).quarantined, 4);
    ota_spool_stats sst;
    ota_spool_stats_get(sp, &sst);
    ota_spool_pos cp;
    assert_int_equal(ota_spool_checkpoint_load(sp, &cp), 0);
    assert_int_equal(cp.segment, sst.end.segment);
    assert_int_equal(cp.offset, sst.end.offset);
    ota_writer_stop(w);
    ota_spool_close(sp);
    check_store_counts(10, 10, 10);
    test_remove_dir();
}

static void test_store_outage_retries_without_loss(void **state)
{
    (void)state;
    fresh_dir("outage");
    log_reset();
    ota_spool *sp = open_spool();
    fake_store *f = fake_open(0, true);
    ota_writer *w = start_writer_on(sp, &f->base, 0, 10, 80);
    append_reports(sp, VIN1, 1, 40, 3);

    uint64_t t0 = test_now_ms();
    while (writer_stats(w).store_errors < 5 && test_now_ms() - t0 < 5000)
        usleep(2000);
    ota_writer_stats st = writer_stats(w);
    assert_true(st.store_errors >= 5);
    assert_false(st.store_ok);
    assert_int_equal(st.events_stored, 0);
    assert_true(st.backlog_bytes > 0);
    assert_false(ota_writer_wait_drained(w, 50));

    fake_set_failing(f, false);
    assert_true(ota_writer_wait_drained(w, 10000));
    st = writer_stats(w);
    assert_true(st.store_ok);
    assert_int_equal(st.events_stored, 120);
    assert_int_equal(st.backlog_bytes, 0);
    log_capture lc = log_get();
    assert_int_equal(lc.down, 1);
    assert_int_equal(lc.recovered, 1);

    /* Backoff: the gaps between failed attempts double from 10 ms and stop at 80 ms. */
    pthread_mutex_lock(&f->mu);
    int fails = (int)st.store_errors < 64 ? (int)st.store_errors : 64;
    for (int i = 1; i < fails && i < 64; i++) {
        uint64_t gap = f->call_ms[i] - f->call_ms[i - 1];
        unsigned want = 10u << (i - 1 < 3 ? i - 1 : 3);
        if (want > 80)
            want = 80;
        assert_true(gap + 2 >= want);
        assert_true(gap <= want + 200);
    }
    pthread_mutex_unlock(&f->mu);

    ota_writer_stop(w);
    fake_free(f);
    ota_spool_close(sp);
    check_store_counts(40, 40, 40);
    test_remove_dir();
}

static void test_first_calls_fail_then_recover(void **state)
{
    (void)state;
    fresh_dir("fail-first");
    log_reset();
    ota_spool *sp = open_spool();
    append_reports(sp, VIN2, 1, 30, 2);
    fake_store *f = fake_open(3, false);
    ota_writer *w = start_writer_on(sp, &f->base, 0, 5, 20);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.store_errors, 3);
    assert_true(st.store_ok);
    assert_int_equal(st.events_stored, 60);
    assert_int_equal(log_get().down, 1);
    assert_int_equal(log_get().recovered, 1);
    ota_writer_stop(w);
    assert_int_equal(f->calls, 4); /* one batch: three failures, one success */
    fake_free(f);
    ota_spool_close(sp);
    check_store_counts(30, 30, 0);
    test_remove_dir();
}

static void test_stop_with_failing_store_gives_up(void **state)
{
    (void)state;
    fresh_dir("stop-failing");
    log_reset();
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 20, 3);
    fake_store *f = fake_open(0, true);
    ota_writer *w = start_writer_on(sp, &f->base, 0, 5000, 5000);
    uint64_t t0 = test_now_ms();
    while (writer_stats(w).store_errors < 1 && test_now_ms() - t0 < 5000)
        usleep(1000);
    assert_int_equal(writer_stats(w).store_errors, 1);
    t0 = test_now_ms();
    ota_writer_stop(w); /* in the middle of a 5 s backoff */
    assert_true(test_now_ms() - t0 < 1000);
    assert_int_equal(f->calls, 1);
    fake_free(f);

    /* Nothing was lost: a new writer with a working store stores everything. */
    w = start_writer(sp);
    assert_true(ota_writer_wait_drained(w, 10000));
    assert_int_equal(writer_stats(w).events_stored, 60);
    ota_writer_stop(w);
    ota_spool_close(sp);
    check_store_counts(20, 20, 20);
    test_remove_dir();
}

/* A restarted writer shows the replay backlog from its first moment, not only after its
 * first batch: "backlog 0" must mean everything is in the store. */
static void test_backlog_known_before_first_batch(void **state)
{
    (void)state;
    fresh_dir("backlog-start");
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 20, 3);
    fake_store *f = fake_open(0, true); /* never stores: the backlog cannot shrink */
    ota_writer *w = start_writer_on(sp, &f->base, 0, 5000, 5000);
    ota_writer_stats st = writer_stats(w);
    assert_true(st.backlog_bytes > 0);
    assert_int_equal(st.backlog_bytes, ota_spool_bytes_after(sp, (ota_spool_pos){0, 0}));
    ota_writer_stop(w);
    fake_free(f);
    ota_spool_close(sp);
    test_remove_dir();
}

/* ---- jobs ---- */

typedef struct {
    ota_writer_job job;
    int order; /* position of submission */
    bool fail; /* run fails */
    int *ran;  /* order in which jobs ran (writer thread) */
    size_t *n_ran;
    int done_rc; /* what done() saw */
    char done_err[64];
    bool done_called;
} test_job;

static int test_job_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    test_job *t = arg;
    assert_non_null(store);
    t->ran[(*t->n_ran)++] = t->order;
    if (t->fail) {
        snprintf(err, errlen, "job %d failed", t->order);
        return -1;
    }
    return 0;
}

static void test_job_done(void *arg, int rc, const char *err)
{
    test_job *t = arg;
    t->done_called = true;
    t->done_rc = rc;
    snprintf(t->done_err, sizeof t->done_err, "%s", err);
}

static void job_init(test_job *t, int order, bool fail, int *ran, size_t *n_ran)
{
    memset(t, 0, sizeof *t);
    t->job.run = test_job_run;
    t->job.done = test_job_done;
    t->job.arg = t;
    t->order = order;
    t->fail = fail;
    t->ran = ran;
    t->n_ran = n_ran;
}

/* Jobs run in order on the writer thread, also while reports flow; done() is called
 * only by poll_done (the broker thread), with the run's result. */
static void test_jobs_run_in_order_and_report_back(void **state)
{
    (void)state;
    fresh_dir("jobs");
    ota_spool *sp = open_spool();
    ota_writer *w = start_writer(sp);
    int ran[8];
    size_t n_ran = 0;
    test_job jobs[3];
    for (int i = 0; i < 3; i++) {
        job_init(&jobs[i], i, i == 1, ran, &n_ran);
        append_reports(sp, VIN1, 100 + (uint64_t)i * 10, 10, 2);
        assert_int_equal(ota_writer_submit(w, &jobs[i].job), 0);
    }
    assert_true(ota_writer_jobs_idle(w, 10000));
    assert_false(jobs[0].done_called); /* not before poll_done */
    assert_int_equal(ota_writer_poll_done(w), 3);
    assert_int_equal(n_ran, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ran[i], i);
        assert_true(jobs[i].done_called);
    }
    assert_int_equal(jobs[0].done_rc, 0);
    assert_int_equal(jobs[1].done_rc, -1);
    assert_string_equal(jobs[1].done_err, "job 1 failed");
    assert_int_equal(jobs[2].done_rc, 0);
    assert_int_equal(ota_writer_poll_done(w), 0);
    assert_true(ota_writer_wait_drained(w, 10000));
    assert_int_equal(writer_stats(w).events_stored, 60);
    ota_writer_stop(w);
    ota_spool_close(sp);
    test_remove_dir();
}

/* An idle writer (waiting on the spool) runs a job without waiting for a report. */
static void test_idle_writer_runs_job_promptly(void **state)
{
    (void)state;
    fresh_dir("jobs-idle");
    ota_spool *sp = open_spool();
    ota_writer *w = start_writer(sp);
    usleep(150 * 1000); /* let it reach its idle wait */
    int ran[2];
    size_t n_ran = 0;
    test_job job;
    job_init(&job, 0, false, ran, &n_ran);
    uint64_t t0 = test_now_ms();
    assert_int_equal(ota_writer_submit(w, &job.job), 0);
    assert_true(ota_writer_jobs_idle(w, 10000));
    print_message("idle writer ran a job after %llu ms\n",
                  (unsigned long long)(test_now_ms() - t0));
    assert_int_equal(ota_writer_poll_done(w), 1);
    assert_true(job.done_called);
    ota_writer_stop(w);
    ota_spool_close(sp);
    test_remove_dir();
}

/* Stopping runs the jobs still queued and calls their done() on the stopping thread;
 * after that, submitting is refused. */
static void test_stop_finishes_queued_jobs(void **state)
{
    (void)state;
    fresh_dir("jobs-stop");
    ota_spool *sp = open_spool();
    fake_store *f = fake_open(0, true); /* reports keep failing: the writer is busy */
    append_reports(sp, VIN1, 1, 5, 2);
    ota_writer *w = start_writer_on(sp, &f->base, 0, 5000, 5000);
    int ran[4];
    size_t n_ran = 0;
    test_job jobs[2];
    for (int i = 0; i < 2; i++) {
        job_init(&jobs[i], i, false, ran, &n_ran);
        assert_int_equal(ota_writer_submit(w, &jobs[i].job), 0);
    }
    ota_writer_stop(w);
    assert_int_equal(n_ran, 2);
    assert_true(jobs[0].done_called && jobs[1].done_called);
    fake_free(f);
    ota_spool_close(sp);
    test_remove_dir();
}

static void test_batch_size_respected(void **state)
{
    (void)state;
    fresh_dir("batch");
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 100, 3);
    fake_store *f = fake_open(0, false);
    ota_writer *w = start_writer_on(sp, &f->base, 10, 0, 0);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.events_stored, 300);
    assert_int_equal(f->max_batch, 9); /* whole reports of 3 while they fit in 10 */
    assert_int_equal(st.batches, 34);  /* 33 batches of 3 reports, then 1 */

    /* A report larger than a batch is stored in chunks of at most batch_events. */
    append_reports(sp, VIN2, 1, 1, 25);
    assert_true(ota_writer_wait_drained(w, 10000));
    st = writer_stats(w);
    assert_int_equal(st.events_stored, 325);
    assert_int_equal(f->max_batch, 10);
    assert_int_equal(st.batches, 37);
    ota_writer_stop(w);
    fake_free(f);
    ota_spool_close(sp);
    check_store_counts(109, 108, 108);
    test_remove_dir();
}

static int see_seq(void *ctx, const ota_report_seq_rec *r)
{
    int64_t *last = ctx;
    last[strcmp(r->vin, VIN1) == 0 ? 0 : 1] = r->seq;
    return 0;
}

/* A batch gives the store one guard row per VIN, the last: the store replaces the row
 * with each, so the others would be work for nothing; the guard ends where it should. */
static void test_one_guard_row_per_vin(void **state)
{
    (void)state;
    fresh_dir("guard");
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 150, 2);
    append_reports(sp, VIN2, 1, 50, 2);
    append_reports(sp, VIN1, 151, 10, 2);
    fake_store *f = fake_open(0, false);
    ota_writer *w = start_writer_on(sp, &f->base, 0, 0, 0);
    assert_true(ota_writer_wait_drained(w, 10000));
    ota_writer_stats st = writer_stats(w);
    assert_int_equal(st.events_stored, 420);
    assert_true(f->seq_rows <= 2 * st.batches);
    int64_t last[2] = {-1, -1};
    assert_int_equal(ota_store_load_last_seqs(f->real, see_seq, last), 0);
    assert_int_equal(last[0], 160);
    assert_int_equal(last[1], 50);
    ota_writer_stop(w);
    fake_free(f);
    ota_spool_close(sp);
    test_remove_dir();
}

static void test_start_rejects_missing_args(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(ota_writer_start(NULL, NULL, NULL, err, sizeof err));
    assert_true(err[0] != '\0');
}

/* ---- the checkpoint held for what the results caused (issue 15) ---- */

/* Two jobs one after the other: the writer's loop goes round once between them (its
 * reading and checkpoint step runs before each round's jobs), with nothing new to read. */
static void idle_round(ota_writer *w)
{
    int ran[2];
    size_t n_ran = 0;
    test_job jobs[2];
    for (int i = 0; i < 2; i++) {
        job_init(&jobs[i], i, false, ran, &n_ran);
        assert_int_equal(ota_writer_submit(w, &jobs[i].job), 0);
        assert_true(ota_writer_jobs_idle(w, 10000));
        assert_int_equal(ota_writer_poll_done(w), 1);
    }
}

static ota_spool_pos checkpoint_of(ota_spool *sp)
{
    ota_spool_pos ck;
    assert_int_equal(ota_spool_checkpoint_load(sp, &ck), 0);
    return ck;
}

static bool pos_eq(ota_spool_pos a, ota_spool_pos b)
{
    return a.segment == b.segment && a.offset == b.offset;
}

/* Polls results as the plugin does (held) until a batch ended; its checkpoint. */
static ota_spool_pos poll_held(ota_writer *w, results_seen *seen)
{
    ota_spool_pos ck = {0, 0};
    bool has_ck = false;
    for (int i = 0; i < 1000 && !has_ck; i++) {
        ota_writer_poll_reports_held(w, see_result, seen, &ck, &has_ck);
        usleep(10000);
    }
    assert_true(has_ck);
    return ck;
}

/* Polled with poll_reports_held, the results' checkpoint waits for allow_checkpoint (the
 * plugin: until the execution moves those reports made are stored), also through the
 * writer's idle rounds and a stop. Before, an idle round stored the checkpoint past every
 * record read once no result was waiting to be polled: a broker killed then did not
 * replay reports whose moves were not stored (test_ha's executions stuck in installing). */
static void test_held_checkpoint_waits_for_allow(void **state)
{
    (void)state;
    fresh_dir("held");
    ota_spool *sp = open_spool();
    append_reports(sp, VIN1, 1, 3, 2);
    ota_spool_pos start = checkpoint_of(sp);
    ota_writer *w = start_results_writer(sp);
    results_seen seen = {0};
    ota_spool_pos ck = poll_held(w, &seen); /* the batch's results, held */
    assert_int_equal(seen.stored, 3);
    idle_round(w);
    assert_true(pos_eq(checkpoint_of(sp), start));

    ota_writer_allow_checkpoint(w, ck); /* the moves are stored */
    ota_spool_stats sst;
    ota_spool_stats_get(sp, &sst);
    for (int i = 0; i < 1000 && !pos_eq(checkpoint_of(sp), sst.end); i++)
        usleep(10000);
    assert_true(pos_eq(checkpoint_of(sp), sst.end));

    /* A stop with results held: the checkpoint stays before them (the next start replays). */
    append_reports(sp, VIN1, 4, 2, 2);
    poll_held(w, &seen);
    ota_writer_stop(w);
    assert_true(pos_eq(checkpoint_of(sp), sst.end));
    ota_spool_close(sp);
    test_remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_stores_everything),
        cmocka_unit_test(test_report_results_and_checkpoint),
        cmocka_unit_test(test_jobs_run_in_order_and_report_back),
        cmocka_unit_test(test_idle_writer_runs_job_promptly),
        cmocka_unit_test(test_stop_finishes_queued_jobs),
        cmocka_unit_test(test_backlog_known_before_first_batch),
        {"test_restart_stores_nothing_twice", test_restart, NULL, NULL, (void *)&restart_cases[0]},
        {"test_crash_replay_counts_duplicates", test_restart, NULL, NULL,
         (void *)&restart_cases[1]},
        cmocka_unit_test(test_undecodable_record_is_skipped),
        cmocka_unit_test(test_store_outage_retries_without_loss),
        cmocka_unit_test(test_first_calls_fail_then_recover),
        cmocka_unit_test(test_stop_with_failing_store_gives_up),
        cmocka_unit_test(test_batch_size_respected),
        cmocka_unit_test(test_one_guard_row_per_vin),
        cmocka_unit_test(test_start_rejects_missing_args),
        cmocka_unit_test(test_held_checkpoint_waits_for_allow),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
