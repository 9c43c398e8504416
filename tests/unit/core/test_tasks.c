/*
 * test_tasks.c — cmocka tests of the tasks and the execution state machine
 * (plugin/core/tasks.h), without a broker or a store.
 *
 * The state machine: every (from, to) pair against the table of allowed moves written in
 * tasks.h; a move updates the counts and the change time, drops a finished execution's
 * pending claim, and a refused move changes nothing; what each report event does to an
 * execution (own task's events only move executions in flight); the abort threshold and
 * the end of a task; task windows and timeouts. The tasks: adding, finding executions by
 * VIN, the listing order, the next id, execution codes, and the latest upgrade status
 * per VIN kept from reports (a replayed older event does not bring an old status back).
 */
#include "tasks.h"
#include "waves.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define V1 "LSVTK000000000001"
#define V2 "LSVTK000000000002"
#define V3 "LSVTK000000000003"

/* ---- fixture: a tasks store with one task of n executions in the given states ---- */

static ota_task_exec exec_of(const char *vin, uint8_t state)
{
    ota_task_exec x = {.state = state, .notified_ms = -1};
    memcpy(x.vin, vin, OTA_VIN_LEN);
    return x;
}

static ota_task *add_task(ota_tasks *t, const char *id, const ota_task_exec *execs, size_t n,
                          const ota_task_rec *tmpl)
{
    ota_task_rec rec = tmpl ? *tmpl : (ota_task_rec){.start_ms = -1, .end_ms = -1};
    rec.id = test_strdup(id);
    rec.version = test_strdup("2.0.0");
    ota_task_exec *copy = calloc(n ? n : 1, sizeof(*copy));
    assert_non_null(copy);
    memcpy(copy, execs, n * sizeof(*copy));
    assert_int_equal(ota_tasks_add(t, &rec, OTA_TASK_ACTIVE, 1000, 7, copy, n), 0);
    ota_task *task = ota_tasks_get(t, id);
    assert_non_null(task);
    return task;
}

static int setup(void **state)
{
    *state = ota_tasks_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    ota_tasks_free(*state);
    return 0;
}

/* ---- the table of moves ---- */

static void test_transition_table(void **state)
{
    (void)state;
    /* tasks.h's table, row by row: the states each state may move to */
    static const char *const allowed[OTA_EXEC_STATE_COUNT] = {
        [OTA_EXEC_QUEUED] = "NC",
        [OTA_EXEC_NOTIFIED] = "NDISFCAPX",
        [OTA_EXEC_DOWNLOADING] = "NISFCAPX",
        [OTA_EXEC_INSTALLING] = "NSFC",
        [OTA_EXEC_SUCCEEDED] = "",
        [OTA_EXEC_FAILED] = "",
        [OTA_EXEC_CANCELED] = "",
        [OTA_EXEC_REJECTED] = "",
        [OTA_EXEC_ACCEPTED] = "NDISFCPX",
        [OTA_EXEC_POSTPONED] = "NAPXC",
        [OTA_EXEC_DECLINED] = "",
    };
    /* A accepted, P postponed, X declined */
    static const char letter[OTA_EXEC_STATE_COUNT + 1] = "QNDISFCRAPX";
    for (uint8_t from = 0; from < OTA_EXEC_STATE_COUNT; from++) {
        for (uint8_t to = 0; to < OTA_EXEC_STATE_COUNT; to++) {
            bool want = strchr(allowed[from], letter[to]) != NULL;
            if (ota_exec_transition_valid(from, to) != want) {
                fail_msg("%c -> %c: want %s", letter[from], letter[to], want ? "valid" : "invalid");
            }
        }
    }
    assert_false(ota_exec_transition_valid(OTA_EXEC_STATE_COUNT, OTA_EXEC_QUEUED));
    assert_false(ota_exec_transition_valid(OTA_EXEC_QUEUED, OTA_EXEC_STATE_COUNT));
}

static void test_in_flight(void **state)
{
    (void)state;
    for (uint8_t s = 0; s < OTA_EXEC_STATE_COUNT; s++) {
        bool want = s == OTA_EXEC_NOTIFIED || s == OTA_EXEC_DOWNLOADING ||
                    s == OTA_EXEC_INSTALLING || s == OTA_EXEC_ACCEPTED || s == OTA_EXEC_POSTPONED;
        assert_int_equal(ota_exec_in_flight(s), want);
    }
}

static void test_set_state_counts_and_time(void **state)
{
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_QUEUED), exec_of(V2, OTA_EXEC_QUEUED),
                          exec_of(V3, OTA_EXEC_REJECTED)};
    ota_task *task = add_task(*state, "T000001", xs, 3, NULL);
    assert_int_equal(task->count[OTA_EXEC_QUEUED], 2);
    assert_int_equal(task->count[OTA_EXEC_REJECTED], 1);
    ota_task_exec *x = ota_task_find_exec(task, V1);
    assert_int_equal(x->changed_ms, 1000); /* the creation time */
    assert_true(ota_task_exec_set_state(task, x, OTA_EXEC_NOTIFIED, 5000));
    assert_int_equal(x->state, OTA_EXEC_NOTIFIED);
    assert_int_equal(x->changed_ms, 5000);
    assert_int_equal(task->count[OTA_EXEC_QUEUED], 1);
    assert_int_equal(task->count[OTA_EXEC_NOTIFIED], 1);
    assert_true(ota_task_exec_set_state(task, x, OTA_EXEC_DOWNLOADING, 6000));
    assert_true(ota_task_exec_set_state(task, x, OTA_EXEC_SUCCEEDED, 7000));
    assert_int_equal(task->count[OTA_EXEC_NOTIFIED], 0);
    assert_int_equal(task->count[OTA_EXEC_SUCCEEDED], 1);
}

static void test_set_state_refuses_invalid(void **state)
{
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_QUEUED), exec_of(V2, OTA_EXEC_SUCCEEDED),
                          exec_of(V3, OTA_EXEC_REJECTED)};
    ota_task *task = add_task(*state, "T000001", xs, 3, NULL);
    ota_task_exec *q = ota_task_find_exec(task, V1), *done = ota_task_find_exec(task, V2);
    ota_task_exec *rej = ota_task_find_exec(task, V3);
    assert_false(ota_task_exec_set_state(task, q, OTA_EXEC_SUCCEEDED, 9000)); /* skips notified */
    assert_false(ota_task_exec_set_state(task, q, OTA_EXEC_DOWNLOADING, 9000));
    assert_false(ota_task_exec_set_state(task, done, OTA_EXEC_NOTIFIED, 9000)); /* final */
    assert_false(ota_task_exec_set_state(task, done, OTA_EXEC_FAILED, 9000));
    assert_false(ota_task_exec_set_state(task, rej, OTA_EXEC_QUEUED, 9000));
    assert_int_equal(q->state, OTA_EXEC_QUEUED);
    assert_int_equal(q->changed_ms, 1000);
    assert_int_equal(done->state, OTA_EXEC_SUCCEEDED);
    assert_int_equal(task->count[OTA_EXEC_QUEUED], 1);
    assert_int_equal(task->count[OTA_EXEC_SUCCEEDED], 1);
    assert_int_equal(task->count[OTA_EXEC_REJECTED], 1);
}

static void test_finish_drops_pending_claim(void **state)
{
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_NOTIFIED), exec_of(V2, OTA_EXEC_QUEUED)};
    ota_task *task = add_task(*state, "T000001", xs, 2, NULL);
    ota_task_exec *a = ota_task_find_exec(task, V1), *b = ota_task_find_exec(task, V2);
    a->flags = b->flags = OTA_EXEC_F_CLAIMING;
    /* a re-send keeps its claim while in flight */
    assert_true(ota_task_exec_set_state(task, a, OTA_EXEC_INSTALLING, 2000));
    assert_int_equal(a->flags, OTA_EXEC_F_CLAIMING);
    assert_true(ota_task_exec_set_state(task, a, OTA_EXEC_FAILED, 3000));
    assert_int_equal(a->flags, 0);
    assert_true(ota_task_exec_set_state(task, b, OTA_EXEC_CANCELED, 3000));
    assert_int_equal(b->flags, 0);
}

/* ---- report events ---- */

static ota_event ev_of(ota_event_type type, const char *status)
{
    return (ota_event){.type = type, .task = "T000001", .status = status, .pct = -1, .bytes = -1};
}

static void test_next_state_progress(void **state)
{
    (void)state;
    ota_event dl = ev_of(OTA_EV_DOWNLOAD_PROGRESS, NULL);
    ota_event up = ev_of(OTA_EV_UPGRADE_PROGRESS, NULL);
    ota_event cmd = ev_of(OTA_EV_COMMAND, NULL);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_NOTIFIED, &dl, false), OTA_EXEC_DOWNLOADING);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_DOWNLOADING, &dl, false), OTA_EXEC_DOWNLOADING);
    /* a late download report does not take an installing execution back */
    assert_int_equal(ota_exec_next_state(OTA_EXEC_INSTALLING, &dl, false), OTA_EXEC_INSTALLING);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_NOTIFIED, &up, false), OTA_EXEC_INSTALLING);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_DOWNLOADING, &up, false), OTA_EXEC_INSTALLING);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_NOTIFIED, &cmd, false), OTA_EXEC_NOTIFIED);
    assert_int_equal(ota_exec_next_state(OTA_EXEC_NOTIFIED, NULL, false), OTA_EXEC_NOTIFIED);
}

static void test_next_state_status(void **state)
{
    (void)state;
    struct {
        uint8_t from;
        const char *status;
        bool cancel_pending;
        uint8_t want;
    } cases[] = {
        {OTA_EXEC_NOTIFIED, "succeeded", false, OTA_EXEC_SUCCEEDED},
        {OTA_EXEC_INSTALLING, "succeeded", false, OTA_EXEC_SUCCEEDED},
        {OTA_EXEC_DOWNLOADING, "failed", false, OTA_EXEC_FAILED},
        {OTA_EXEC_INSTALLING, "canceled", false, OTA_EXEC_CANCELED},
        {OTA_EXEC_NOTIFIED, "idle", true, OTA_EXEC_CANCELED},
        {OTA_EXEC_NOTIFIED, "idle", false, OTA_EXEC_NOTIFIED}, /* idle means nothing then */
        {OTA_EXEC_DOWNLOADING, "downloading", false, OTA_EXEC_DOWNLOADING},
        {OTA_EXEC_NOTIFIED, NULL, false, OTA_EXEC_NOTIFIED},
        /* queued and finished executions never move on reports */
        {OTA_EXEC_QUEUED, "succeeded", false, OTA_EXEC_QUEUED},
        {OTA_EXEC_QUEUED, "canceled", true, OTA_EXEC_QUEUED},
        {OTA_EXEC_SUCCEEDED, "failed", false, OTA_EXEC_SUCCEEDED},
        {OTA_EXEC_FAILED, "succeeded", false, OTA_EXEC_FAILED},
        {OTA_EXEC_CANCELED, "succeeded", false, OTA_EXEC_CANCELED},
        {OTA_EXEC_REJECTED, "succeeded", false, OTA_EXEC_REJECTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ota_event ev = ev_of(OTA_EV_UPGRADE_STATUS, cases[i].status);
        uint8_t got = ota_exec_next_state(cases[i].from, &ev, cases[i].cancel_pending);
        if (got != cases[i].want) {
            fail_msg("case %zu: %d + %s -> %d, want %d", i, cases[i].from,
                     cases[i].status ? cases[i].status : "(none)", got, cases[i].want);
        }
    }
}

/* ---- the task's own state ---- */

static ota_task *task_with_counts(ota_tasks *t, size_t ok, size_t bad, size_t open,
                                  uint32_t min_executed, uint32_t pct)
{
    static int n;
    ota_task_exec xs[16];
    size_t k = 0;
    char vin[OTA_VIN_LEN + 1], id[16];
    for (size_t i = 0; i < ok + bad + open; i++, k++) {
        snprintf(vin, sizeof(vin), "LSVTK%012u", (unsigned)i);
        uint8_t s = i < ok ? OTA_EXEC_SUCCEEDED : i < ok + bad ? OTA_EXEC_FAILED : OTA_EXEC_QUEUED;
        xs[k] = exec_of(vin, s);
    }
    snprintf(id, sizeof(id), "T%06d", ++n);
    ota_task_rec r = {
        .start_ms = -1, .end_ms = -1, .abort_min_executed = min_executed, .abort_failure_pct = pct};
    return add_task(t, id, xs, k, &r);
}

static void test_abort_threshold(void **state)
{
    ota_tasks *t = *state;
    /* 2 of 4 finished failed, threshold 50 % after 4: aborted */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 2, 2, 3, 4, 50)), OTA_TASK_ABORTED);
    /* the same share, but only 3 finished of the 4 needed */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 1, 2, 3, 4, 50)), OTA_TASK_ACTIVE);
    /* 4 finished, 1 failed = 25 % < 50 % */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 3, 1, 3, 4, 50)), OTA_TASK_ACTIVE);
    /* failure_pct 0: never aborts */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 0, 5, 1, 1, 0)), OTA_TASK_ACTIVE);
    /* min_executed 0: never aborts */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 0, 5, 1, 0, 10)), OTA_TASK_ACTIVE);
    /* over the threshold with nothing left: aborted wins over finished */
    assert_int_equal(ota_task_next_state(task_with_counts(t, 0, 2, 0, 2, 50)), OTA_TASK_ABORTED);
}

static void test_task_end(void **state)
{
    ota_tasks *t = *state;
    ota_task *done = task_with_counts(t, 3, 1, 0, 0, 0);
    assert_int_equal(ota_task_next_state(done), OTA_TASK_FINISHED);
    ota_task *open = task_with_counts(t, 3, 1, 1, 0, 0);
    assert_int_equal(ota_task_next_state(open), OTA_TASK_ACTIVE);
    /* one in flight keeps the task active */
    assert_true(ota_task_exec_set_state(open, &open->execs[4], OTA_EXEC_NOTIFIED, 2000));
    assert_int_equal(ota_task_next_state(open), OTA_TASK_ACTIVE);
    /* only active tasks move on their own */
    ota_task_set_state(done, OTA_TASK_CANCELED);
    assert_int_equal(ota_task_next_state(done), OTA_TASK_CANCELED);
}

/* Several brokers on one store: the store's counts (every broker's executions) beside this
 * broker's own (its vehicles only; the others' executions look queued here). */
static void stored_counts(ota_task *task, size_t ok, size_t bad, size_t queued, size_t flight)
{
    memset(&task->stored, 0, sizeof task->stored);
    task->stored.count[OTA_EXEC_SUCCEEDED] = ok;
    task->stored.count[OTA_EXEC_FAILED] = bad;
    task->stored.count[OTA_EXEC_QUEUED] = queued;
    task->stored.count[OTA_EXEC_NOTIFIED] = flight;
    task->stored.counted = true;
}

static void test_abort_on_every_brokers_counts(void **state)
{
    ota_tasks *t = *state;
    /* here 1 of 1 failed (below min_executed 3); the store: 3 of 3 failed over 3 brokers */
    ota_task *task = task_with_counts(t, 0, 1, 5, 3, 50);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE);
    stored_counts(task, 0, 3, 0, 3);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ABORTED);
    size_t seen[OTA_EXEC_STATE_COUNT];
    ota_task_seen(task, seen);
    assert_int_equal(seen[OTA_EXEC_FAILED], 3);
    /* the larger of the two, not their sum: this broker's failure is in the store too */
    stored_counts(task, 0, 1, 2, 3);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE);
    /* a count not come back yet: memory alone */
    stored_counts(task, 0, 3, 0, 3);
    task->stored.counted = false;
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE);
}

static void test_end_on_every_brokers_counts(void **state)
{
    ota_tasks *t = *state;
    /* 2 succeeded here, 4 queued here that other brokers' vehicles finished */
    ota_task *task = task_with_counts(t, 2, 0, 4, 0, 0);
    stored_counts(task, 5, 0, 0, 1);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE); /* one still in flight */
    stored_counts(task, 6, 0, 0, 0);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_FINISHED);
    size_t seen[OTA_EXEC_STATE_COUNT];
    ota_task_seen(task, seen); /* what the finished event says */
    assert_int_equal(seen[OTA_EXEC_SUCCEEDED], 6);
    assert_int_equal(seen[OTA_EXEC_QUEUED], 0);
    /* this broker saw every end itself, the store lags its flush: finished as well */
    ota_task *mine = task_with_counts(t, 3, 0, 0, 0, 0);
    stored_counts(mine, 1, 0, 0, 2);
    assert_int_equal(ota_task_next_state(mine), OTA_TASK_FINISHED);
    ota_task_seen(mine, seen);
    assert_int_equal(seen[OTA_EXEC_SUCCEEDED], 3);
    assert_int_equal(seen[OTA_EXEC_NOTIFIED], 0);
}

static void test_set_task_state_marks_doc(void **state)
{
    ota_task *task = task_with_counts(*state, 0, 0, 1, 0, 0);
    assert_false(task->doc_dirty);
    ota_task_set_state(task, OTA_TASK_ACTIVE); /* no change */
    assert_false(task->doc_dirty);
    ota_task_set_state(task, OTA_TASK_ABORTED);
    assert_true(task->doc_dirty);
    assert_int_equal(task->state, OTA_TASK_ABORTED);
}

static void test_window(void **state)
{
    ota_task_exec x = exec_of(V1, OTA_EXEC_QUEUED);
    ota_task_rec r = {.start_ms = 1000, .end_ms = 2000};
    ota_task *task = add_task(*state, "T000001", &x, 1, &r);
    assert_false(ota_task_window_open(task, 999));
    assert_true(ota_task_window_open(task, 1000));
    assert_true(ota_task_window_open(task, 1999));
    assert_false(ota_task_window_open(task, 2000));
    task->rec.start_ms = -1;
    assert_true(ota_task_window_open(task, 0));
    task->rec.end_ms = -1;
    assert_true(ota_task_window_open(task, INT64_MAX));
}

static void test_timeout(void **state)
{
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_NOTIFIED), exec_of(V2, OTA_EXEC_QUEUED),
                          exec_of(V3, OTA_EXEC_INSTALLING)};
    ota_task_rec r = {.start_ms = -1, .end_ms = -1, .timeout_min = 2};
    ota_task *task = add_task(*state, "T000001", xs, 3, &r);
    ota_task_exec *a = ota_task_find_exec(task, V1), *q = ota_task_find_exec(task, V2);
    ota_task_exec *c = ota_task_find_exec(task, V3);
    /* changed at 1000; 2 minutes of 100 ms */
    assert_false(ota_task_exec_timed_out(task, a, 1199, 100));
    assert_true(ota_task_exec_timed_out(task, a, 1200, 100));
    assert_false(ota_task_exec_timed_out(task, a, 1000 + 119999, 60000));
    assert_true(ota_task_exec_timed_out(task, a, 1000 + 120000, 60000));
    assert_false(ota_task_exec_timed_out(task, q, 1000000, 100)); /* queued: no timeout */
    c->flags = OTA_EXEC_F_ELSEWHERE;                              /* another broker drives it */
    assert_false(ota_task_exec_timed_out(task, c, 1000000, 100));
    task->rec.timeout_min = 0;
    assert_false(ota_task_exec_timed_out(task, a, 1000000, 100));
}

/* Consent events, pair by pair: (from, answer) -> to. */
static void test_next_state_consent(void **state)
{
    (void)state;
    static const struct {
        uint8_t from;
        const char *answer;
        uint8_t to;
    } cases[] = {
        {OTA_EXEC_NOTIFIED, "accepted", OTA_EXEC_ACCEPTED},
        {OTA_EXEC_NOTIFIED, "declined", OTA_EXEC_DECLINED},
        {OTA_EXEC_NOTIFIED, "postponed", OTA_EXEC_POSTPONED},
        {OTA_EXEC_DOWNLOADING, "accepted", OTA_EXEC_ACCEPTED},
        {OTA_EXEC_DOWNLOADING, "declined", OTA_EXEC_DECLINED},
        {OTA_EXEC_DOWNLOADING, "postponed", OTA_EXEC_POSTPONED},
        {OTA_EXEC_INSTALLING, "declined", OTA_EXEC_INSTALLING}, /* too late to ask */
        {OTA_EXEC_INSTALLING, "postponed", OTA_EXEC_INSTALLING},
        {OTA_EXEC_ACCEPTED, "declined", OTA_EXEC_DECLINED},
        {OTA_EXEC_ACCEPTED, "postponed", OTA_EXEC_POSTPONED},
        {OTA_EXEC_POSTPONED, "accepted", OTA_EXEC_ACCEPTED},
        {OTA_EXEC_POSTPONED, "declined", OTA_EXEC_DECLINED},
        {OTA_EXEC_POSTPONED, "postponed", OTA_EXEC_POSTPONED},
        {OTA_EXEC_QUEUED, "accepted", OTA_EXEC_QUEUED}, /* not in flight: no move */
        {OTA_EXEC_DECLINED, "accepted", OTA_EXEC_DECLINED},
        {OTA_EXEC_SUCCEEDED, "declined", OTA_EXEC_SUCCEEDED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ota_event ev = {.type = OTA_EV_CONSENT, .answer = cases[i].answer, .until = 5};
        uint8_t got = ota_exec_next_state(cases[i].from, &ev, false);
        if (got != cases[i].to) {
            fail_msg("case %zu: %s from %s: got %s", i, cases[i].answer,
                     ota_exec_state_name(cases[i].from), ota_exec_state_name(got));
        }
        /* every move the events make is one the table allows */
        assert_true(got == cases[i].from || ota_exec_transition_valid(cases[i].from, got));
    }
    ota_event dl = {.type = OTA_EV_DOWNLOAD_PROGRESS, .pct = 1};
    assert_int_equal(ota_exec_next_state(OTA_EXEC_ACCEPTED, &dl, false), OTA_EXEC_DOWNLOADING);
    ota_event up = {.type = OTA_EV_UPGRADE_PROGRESS, .pct = 1};
    assert_int_equal(ota_exec_next_state(OTA_EXEC_ACCEPTED, &up, false), OTA_EXEC_INSTALLING);
}

/* A postponed execution wakes at its time (changed_ms), once, on this broker only. */
static void test_postponed_wakes(void **state)
{
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_POSTPONED), exec_of(V2, OTA_EXEC_NOTIFIED)};
    ota_task_rec r = {.start_ms = -1, .end_ms = -1, .timeout_min = 2};
    ota_task *task = add_task(*state, "T000001", xs, 2, &r);
    ota_task_exec *p = ota_task_find_exec(task, V1), *n = ota_task_find_exec(task, V2);
    p->changed_ms = 50000; /* postponed until */
    assert_false(ota_task_exec_wakes(p, 49999));
    assert_true(ota_task_exec_wakes(p, 50000));
    assert_false(ota_task_exec_wakes(n, 50000));                      /* not postponed */
    assert_false(ota_task_exec_timed_out(task, p, 50000 + 199, 100)); /* times out from then */
    assert_true(ota_task_exec_timed_out(task, p, 50000 + 200, 100));
    p->flags = OTA_EXEC_F_CLAIMING; /* its notice is on the way */
    assert_false(ota_task_exec_wakes(p, 60000));
    p->flags = OTA_EXEC_F_ELSEWHERE;
    assert_false(ota_task_exec_wakes(p, 60000));
    /* a postponed execution keeps its task open */
    assert_int_equal(task->count[OTA_EXEC_POSTPONED], 1);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE);
}

/* ---- the tasks ---- */

static void test_add_find_list(void **state)
{
    ota_tasks *t = *state;
    char id[16];
    ota_tasks_next_id(t, id, sizeof(id));
    assert_string_equal(id, "T000001");
    /* executions come in any order and are kept sorted by VIN */
    ota_task_exec xs[] = {exec_of(V3, OTA_EXEC_QUEUED), exec_of(V1, OTA_EXEC_QUEUED),
                          exec_of(V2, OTA_EXEC_REJECTED)};
    add_task(t, "T000010", xs, 3, NULL);
    add_task(t, "T000002", xs, 1, NULL);
    ota_task *task = ota_tasks_get(t, "T000010");
    assert_memory_equal(task->execs[0].vin, V1, OTA_VIN_LEN);
    assert_memory_equal(task->execs[2].vin, V3, OTA_VIN_LEN);
    assert_ptr_equal(ota_task_find_exec(task, V2), &task->execs[1]);
    assert_null(ota_task_find_exec(task, "LSVTK000000000009"));
    assert_null(ota_task_find_exec(task, "SHORT"));
    assert_null(ota_tasks_get(t, "T000003"));
    ota_tasks_next_id(t, id, sizeof(id));
    assert_string_equal(id, "T000011");
    ota_task **list = NULL;
    assert_int_equal(ota_tasks_list(t, &list), 2);
    assert_string_equal(list[0]->rec.id, "T000002"); /* creation order: ids ascending */
    assert_string_equal(list[1]->rec.id, "T000010");
    free(list);
    /* an id taken twice is refused, and the record stays the caller's */
    ota_task_rec again = {.id = test_strdup("T000002"), .start_ms = -1, .end_ms = -1};
    ota_task_exec *one = calloc(1, sizeof(*one));
    assert_int_equal(ota_tasks_add(t, &again, OTA_TASK_ACTIVE, 0, 0, one, 0), -1);
    assert_non_null(again.id);
    ota_task_rec_free(&again);
    free(one);
}

static void test_codes(void **state)
{
    ota_tasks *t = *state;
    assert_int_equal(ota_tasks_code(t, NULL), 0);
    assert_null(ota_tasks_code_name(t, 0));
    uint16_t timeout = ota_tasks_code(t, "timeout");
    assert_true(timeout > 0);
    assert_int_equal(ota_tasks_code(t, "timeout"), timeout); /* the same text, the same number */
    assert_string_equal(ota_tasks_code_name(t, timeout), "timeout");
    assert_true(ota_tasks_code(t, "expired") != timeout);
    assert_null(ota_tasks_code_name(t, 60000));
}

static const char *latest_status(ota_tasks *t, const char *vin)
{
    ota_rules_env env = ota_tasks_rules_env(t);
    const ota_upgrade_state *s = env.latest(env.latest_ctx, vin);
    return s ? s->status : NULL;
}

static void test_latest_status(void **state)
{
    ota_tasks *t = *state;
    ota_event ev = ev_of(OTA_EV_UPGRADE_STATUS, "downloading");
    ev.trigger = "normal";
    ev.ts = 2000;
    assert_null(latest_status(t, V1));
    ota_tasks_on_status(t, V1, &ev);
    assert_string_equal(latest_status(t, V1), "downloading");
    ota_event older = ev;
    older.status = "idle";
    older.ts = 1000; /* a replayed report: an old status does not come back */
    ota_tasks_on_status(t, V1, &older);
    assert_string_equal(latest_status(t, V1), "downloading");
    ota_event newer = ev;
    newer.status = "succeeded";
    newer.ts = 3000;
    ota_tasks_on_status(t, V1, &newer);
    assert_string_equal(latest_status(t, V1), "succeeded");
    /* other events, bad VINs and no tasks are ignored */
    ota_event progress = ev_of(OTA_EV_DOWNLOAD_PROGRESS, "failed");
    progress.ts = 4000;
    ota_tasks_on_status(t, V1, &progress);
    assert_string_equal(latest_status(t, V1), "succeeded");
    ota_tasks_on_status(t, "SHORT", &newer);
    assert_null(latest_status(t, "SHORT"));
    ota_tasks_on_status(NULL, V2, &newer);
    assert_null(latest_status(t, V2));
}

/* ---- continuous tasks (issue 16): late joiners, rejoining, jitter ---- */

#define V0 "LSVTK000000000000"
#define V4 "LSVTK000000000004"

static size_t idx_of(const ota_task *task, const char *vin)
{
    ota_task_exec *x = ota_task_find_exec(task, vin);
    assert_non_null(x);
    return (size_t)(x - task->execs);
}

static void test_join_find_walk(void **state)
{
    ota_tasks *t = *state;
    ota_task_exec xs[] = {exec_of(V3, OTA_EXEC_QUEUED), exec_of(V1, OTA_EXEC_NOTIFIED)};
    ota_task *task = add_task(t, "T000001", xs, 2, NULL);
    task->continuous = true;
    assert_non_null(ota_task_join(task, V2, OTA_EXEC_QUEUED, 0, 5000));
    assert_non_null(ota_task_join(task, V4, OTA_EXEC_REJECTED, OTA_REJ_BLACKLISTED, 5000));
    assert_non_null(ota_task_join(task, V0, OTA_EXEC_QUEUED, 0, 6000));
    assert_null(ota_task_find_exec(task, V0)); /* not sorted in yet */
    ota_task_joins_done(task);
    assert_null(ota_task_join(task, V3, OTA_EXEC_QUEUED, 0, 6000)); /* has one */
    assert_null(ota_task_join(task, V2, OTA_EXEC_QUEUED, 0, 6000));
    assert_null(ota_task_join(task, V3 "9", OTA_EXEC_QUEUED, 0, 6000));
    /* appended: the executions of the creation keep their index */
    assert_int_equal(task->n_execs, 5);
    assert_int_equal(idx_of(task, V1), 0);
    assert_int_equal(idx_of(task, V3), 1);
    assert_int_equal(idx_of(task, V2), 2);
    assert_int_equal(idx_of(task, V4), 3);
    assert_int_equal(idx_of(task, V0), 4);
    assert_null(ota_task_find_exec(task, "LSVTK000000000005"));
    assert_int_equal(task->execs[4].changed_ms, 6000);
    assert_int_equal(task->execs[4].notified_ms, -1);
    assert_int_equal(task->count[OTA_EXEC_QUEUED], 3);
    assert_int_equal(task->count[OTA_EXEC_REJECTED], 1);
    /* the walk is in VIN order */
    const char *want[] = {V0, V1, V2, V3, V4};
    ota_task_walk_pos pos = {0};
    size_t k = 0;
    for (ota_task_exec *x; (x = ota_task_walk(task, &pos)) != NULL; k++) {
        assert_true(k < 5);
        assert_memory_equal(x->vin, want[k], OTA_VIN_LEN);
    }
    assert_int_equal(k, 5);
}

static void test_join_many(void **state)
{
    ota_tasks *t = *state;
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_QUEUED)};
    ota_task *task = add_task(t, "T000001", xs, 1, NULL);
    char vin[OTA_VIN_LEN + 1];
    for (unsigned i = 0; i < 3000; i++) { /* in no order: a stride through 0..2999 */
        snprintf(vin, sizeof(vin), "LSVTM%012u", (i * 7919u) % 3000u);
        assert_non_null(ota_task_join(task, vin, OTA_EXEC_QUEUED, 0, 1));
        if (i % 1000 == 999 || i == 1500 || i == 1501) {
            ota_task_joins_done(task); /* batches of 1000, 501, one, 498 ... */
        }
    }
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(vin, sizeof(vin), "LSVTM%012u", i);
        ota_task_exec *x = ota_task_find_exec(task, vin);
        assert_non_null(x);
        assert_memory_equal(x->vin, vin, OTA_VIN_LEN);
    }
    ota_task_walk_pos pos = {0};
    ota_task_exec *prev = ota_task_walk(task, &pos), *x;
    size_t n = 1;
    while ((x = ota_task_walk(task, &pos)) != NULL) {
        assert_true(memcmp(prev->vin, x->vin, OTA_VIN_LEN) < 0);
        prev = x;
        n++;
    }
    assert_int_equal(n, 3001);
}

static void test_rejoin(void **state)
{
    ota_tasks *t = *state;
    uint16_t left = ota_tasks_code(t, "left_target"), other = ota_tasks_code(t, "expired");
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_REJECTED), exec_of(V2, OTA_EXEC_CANCELED),
                          exec_of(V3, OTA_EXEC_CANCELED), exec_of(V4, OTA_EXEC_REJECTED)};
    xs[1].code = left;
    xs[2].code = other;
    xs[3].notified_ms = 10; /* notified once: never starts again */
    ota_task *task = add_task(t, "T000001", xs, 4, NULL);
    ota_task_exec *a = ota_task_find_exec(task, V1), *b = ota_task_find_exec(task, V2);
    assert_true(ota_task_exec_rejoin(task, a, OTA_EXEC_QUEUED, 0, left, 7000));
    assert_int_equal(a->state, OTA_EXEC_QUEUED);
    assert_int_equal(a->changed_ms, 7000);
    assert_true(
        ota_task_exec_rejoin(task, b, OTA_EXEC_REJECTED, OTA_REJ_USAGE_MISMATCH, left, 7000));
    assert_int_equal(b->code, OTA_REJ_USAGE_MISMATCH);
    assert_false(
        ota_task_exec_rejoin(task, ota_task_find_exec(task, V3), OTA_EXEC_QUEUED, 0, left, 7000));
    assert_false(
        ota_task_exec_rejoin(task, ota_task_find_exec(task, V4), OTA_EXEC_QUEUED, 0, left, 7000));
    assert_true(ota_task_exec_rejoin(task, a, OTA_EXEC_REJECTED, OTA_REJ_BLACKLISTED, left, 7000));
    assert_true(ota_task_exec_rejoin(task, a, OTA_EXEC_QUEUED, 0, left, 7000));
    a->flags = OTA_EXEC_F_CLAIMING; /* its notice is being claimed: too late */
    assert_false(ota_task_exec_rejoin(task, a, OTA_EXEC_REJECTED, OTA_REJ_BLACKLISTED, left, 1));
    a->flags = 0;
    assert_false(ota_task_exec_rejoin(task, b, OTA_EXEC_NOTIFIED, 0, left, 7000));
    assert_int_equal(task->count[OTA_EXEC_QUEUED], 1);
    assert_int_equal(task->count[OTA_EXEC_REJECTED], 2);
    assert_int_equal(task->count[OTA_EXEC_CANCELED], 1);
}

static void test_continuous_stays_active(void **state)
{
    ota_tasks *t = *state;
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_SUCCEEDED)};
    ota_task *task = add_task(t, "T000001", xs, 1, NULL);
    assert_int_equal(ota_task_next_state(task), OTA_TASK_FINISHED);
    task->continuous = true;
    assert_int_equal(ota_task_next_state(task), OTA_TASK_ACTIVE); /* vehicles may join */
    task->closed = true;
    assert_int_equal(ota_task_next_state(task), OTA_TASK_FINISHED);
}

static void test_jitter(void **state)
{
    ota_tasks *t = *state;
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_QUEUED)};
    ota_task *task = add_task(t, "T000001", xs, 1, NULL);
    assert_int_equal(ota_task_jitter(task, V1), 0);
    task->jitter_ms = 1000;
    int64_t min = 1000, max = 0;
    char vin[OTA_VIN_LEN + 1];
    for (unsigned i = 0; i < 200; i++) {
        snprintf(vin, sizeof(vin), "LSVTM%012u", i);
        int64_t j = ota_task_jitter(task, vin);
        assert_int_equal(j, (int64_t)(ota_waves_key("T000001", vin) % 1001));
        min = j < min ? j : min;
        max = j > max ? j : max;
    }
    assert_true(min < 100 && max > 900); /* spread over the window */
}

/* A task in waves with a joiner: the stored plan is in VIN order, so a load (which sorts
 * the joiner in) finds every vehicle in its wave. */
static void test_doc_plan_after_join(void **state)
{
    ota_tasks *t = *state;
    char err[256];
    cJSON *req = cJSON_Parse("{\"waves\":[{\"count\":1}]}");
    ota_task_waves *w = NULL;
    assert_int_equal(ota_task_waves_parse(req, "task", &w, err, sizeof(err)), 0);
    cJSON_Delete(req);
    const char *vins[] = {V1, V3};
    const bool acc[] = {true, true};
    assert_int_equal(ota_task_waves_plan(w, "T000001", vins, acc, 2), 0);
    ota_task_exec xs[] = {exec_of(V1, OTA_EXEC_QUEUED), exec_of(V3, OTA_EXEC_QUEUED)};
    ota_task_rec tmpl = {.start_ms = -1, .end_ms = -1};
    ota_task *task = add_task(t, "T000001", xs, 2, &tmpl);
    task->rec.name = test_strdup("c");
    task->rec.model = test_strdup("EX5");
    task->rec.series = test_strdup("S1");
    task->waves = w;
    task->continuous = true;
    task->jitter_ms = 9;
    ota_task_recount(task);
    uint8_t w1 = ota_task_waves_of(w, 0), w3 = ota_task_waves_of(w, 1);
    task->doc_dirty = false;
    assert_non_null(ota_task_join(task, V2, OTA_EXEC_QUEUED, 0, 1));
    assert_non_null(ota_task_join(task, V0, OTA_EXEC_REJECTED, OTA_REJ_BLACKLISTED, 1));
    ota_task_joins_done(task);
    assert_true(task->doc_dirty);
    assert_int_equal(ota_task_waves_of(w, 2), 1); /* the rest */
    assert_int_equal(ota_task_waves_of(w, 3), OTA_WAVE_NONE);
    assert_int_equal(w->size[1], 2);
    cJSON *doc = ota_task_doc_of(task, OTA_TASK_ACTIVE);
    assert_non_null(doc);
    char plan[5] = {'-', (char)('0' + w1), '1', (char)('0' + w3), 0}; /* V0 V1 V2 V3 */
    cJSON *wj = cJSON_GetObjectItemCaseSensitive(doc, "waves");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(wj, "plan")), plan);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "continuous")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(doc, "jitter_ms")->valueint, 9);
    /* loaded again (as another broker follows it): the same waves by VIN */
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "task"), "id",
                                           cJSON_CreateString("T000002"));
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    ota_exec_rec recs[4];
    const char *order[] = {V3, V0, V2, V1}; /* in any order */
    const ota_exec_state st[] = {OTA_EXEC_QUEUED, OTA_EXEC_REJECTED, OTA_EXEC_QUEUED,
                                 OTA_EXEC_QUEUED};
    for (int i = 0; i < 4; i++) {
        recs[i] =
            (ota_exec_rec){.task = "T000002", .vin = order[i], .state = st[i], .notified_ms = -1};
    }
    ota_task_state s;
    assert_int_equal(ota_tasks_follow_doc(t, "T000002", json, recs, 4, &s, err, sizeof(err)), 1);
    free(json);
    ota_task *back = ota_tasks_get(t, "T000002");
    assert_true(back->continuous);
    assert_int_equal(back->jitter_ms, 9);
    assert_int_equal(back->n_sorted, 4);
    assert_int_equal(ota_task_waves_of(back->waves, idx_of(back, V1)), w1);
    assert_int_equal(ota_task_waves_of(back->waves, idx_of(back, V2)), 1);
    assert_int_equal(ota_task_waves_of(back->waves, idx_of(back, V3)), w3);
    assert_int_equal(ota_task_waves_of(back->waves, idx_of(back, V0)), OTA_WAVE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test_setup_teardown(test_set_state_counts_and_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_state_refuses_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_drops_pending_claim, setup, teardown),
        cmocka_unit_test(test_next_state_progress),
        cmocka_unit_test(test_next_state_status),
        cmocka_unit_test_setup_teardown(test_abort_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_on_every_brokers_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_on_every_brokers_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_task_state_marks_doc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test(test_next_state_consent),
        cmocka_unit_test_setup_teardown(test_postponed_wakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_find_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_find_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuous_stays_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jitter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doc_plan_after_join, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
