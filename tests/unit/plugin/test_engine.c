/*
 * test_engine.c — cmocka tests of the task engine's decisions (plugin/engine*.c) outside
 * the broker: dispatch order (oldest task first, online vehicles only) and rate, one task
 * per vehicle at a time, the rebuild after a restart, report-driven states, timeouts, the
 * end of a task's window, the abort threshold, cancel (queued, in flight, while a claim is
 * out), compensation re-sends, notice claims (won, lost to another broker, failed and
 * retried), the flush of execution changes and notices to the store, and on a shared store
 * a task's end judged on the store's counts and told only by the broker whose write stored it.
 *
 * What the engine calls outside itself is faked here: the shadows (ota_shadow_set_desired
 * records each vehicle's desired state; ota_shadows_on_seen keeps the engine's hook, which
 * the tests call as a vehicle's shadow request would), the side effects
 * (ota_effects_on_status returns whether to re-send), the pre-signing of a notified
 * vehicle's description (ota_pkg_presign records the last vehicle and task), the broker's
 * log, the clock (the
 * engine runs on the test's wall and monotonic time) and the writer: jobs wait in a queue
 * until the test runs them against a real SQLite store (or fails them), on the test's
 * thread, so every claim and flush happens exactly when a test says. The store's notice
 * decision writes are counted through the linker's --wrap (one per claim job), and so are
 * the counts the store makes and the execution rows a count job reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "effects.h"
#include "engine.h"
#include "pkg.h"
#include "ota_plugin.h"
#include "ota_store.h"
#include "shadow.h"
#include "tasks.h"
#include "test_util.h"

#define V1 "LSVTE000000000001"
#define V2 "LSVTE000000000002"
#define V3 "LSVTE000000000003"
#define V4 "LSVTE000000000004"
#define V5 "LSVTE000000000005"
#define OTHER_BROKER "other-broker"

/* ---------------------------------------------------------------- fakes */

static int64_t g_now = 1700000000000; /* wall ms */
static int64_t g_mono = 1000000;      /* monotonic ms */

static int64_t fake_now(void)
{
    return g_now;
}

static int64_t fake_mono(void)
{
    return g_mono;
}

int64_t ota_now_ms(void)
{
    return g_now;
}

/* Task events (task_events.c): "topic event" lines, newest last. */
static char g_task_events[2048];

int mosquitto_property_add_string(mosquitto_property **proplist, int identifier, const char *value)
{
    (void)proplist, (void)identifier, (void)value;
    return 0;
}

/* Task events (task_events.c publishes through effects.c): recorded as "TOPIC EVENT". */
bool ota_effects_publish(const char *kind, const char *key, cJSON *o)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    size_t used = strlen(g_task_events);
    snprintf(g_task_events + used, sizeof(g_task_events) - used, "ota/v1/events/%s/%s %s\n",
             kind, key, cJSON_IsString(ev) ? ev->valuestring : "?");
    cJSON_Delete(o);
    return true;
}

void mosquitto_log_printf(int level, const char *fmt, ...)
{
    (void)level, (void)fmt;
}

/* The shadows: each vehicle's desired state as JSON text ("" for none). */
#define MAX_VEHS 16
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    char *desired;
    int sets;
} desired_rec;
static desired_rec g_desired[MAX_VEHS];
static ota_shadow_seen_fn g_seen_fn;
static void *g_seen_ctx;

static desired_rec *desired_slot(const char *vin)
{
    for (size_t i = 0; i < MAX_VEHS; i++) {
        if (g_desired[i].vin[0] == '\0') {
            snprintf(g_desired[i].vin, sizeof(g_desired[i].vin), "%s", vin);
        }
        if (strcmp(g_desired[i].vin, vin) == 0) {
            return &g_desired[i];
        }
    }
    fail_msg("too many vehicles");
    return NULL;
}

void ota_shadow_set_desired(ota_plugin *p, const char *vin, cJSON *desired)
{
    (void)p;
    desired_rec *d = desired_slot(vin);
    free(d->desired);
    d->desired = desired ? cJSON_PrintUnformatted(desired) : NULL;
    d->sets++;
    cJSON_Delete(desired);
}

/* A stored notice decision's desired tree: recorded as any other. */
void ota_shadow_set_desired_stored(ota_plugin *p, const char *vin, cJSON *desired,
                                   int64_t version)
{
    (void)version;
    ota_shadow_set_desired(p, vin, desired);
}

/* engine_grants.c parks requests only on a shared store (never here): unused fakes. */
mosquitto_property *ota_reply_props_copy(const ota_request *req)
{
    (void)req;
    return NULL;
}

void mosquitto_property_free_all(mosquitto_property **props)
{
    *props = NULL;
}

/* The shadow a notice decision stores: an empty reported state, version 1. */
bool ota_shadow_decision_rec(ota_plugin *p, const char *vin, const cJSON *desired,
                             ota_shadow_rec *rec)
{
    (void)p;
    *rec = (ota_shadow_rec){.vin = strdup(vin),
                            .version = 1,
                            .reported = strdup("{}"),
                            .desired = cJSON_PrintUnformatted(desired),
                            .updated_ms = g_now};
    return rec->vin && rec->reported && rec->desired;
}

static char g_presigned[128]; /* "task:vin" of the last ota_pkg_presign */

void ota_pkg_presign(ota_plugin *p, const char *vin, const char *task)
{
    (void)p;
    snprintf(g_presigned, sizeof g_presigned, "%s:%s", task, vin);
}

static char g_committed[128]; /* "task:vin" of the last ota_rxswin_on_success */

void ota_rxswin_on_success(ota_plugin *p, const ota_task *task, const char *vin)
{
    (void)p;
    snprintf(g_committed, sizeof g_committed, "%s:%s", task->rec.id, vin);
}

void ota_shadows_on_seen(ota_shadows *s, ota_shadow_seen_fn fn, void *ctx)
{
    (void)s;
    g_seen_fn = fn;
    g_seen_ctx = ctx;
}

/* The side effects: counted; the engine re-sends while g_resend. */
static bool g_resend;
static int g_effects;

bool ota_effects_on_status(ota_plugin *p, const ota_effect_ctx *cx)
{
    (void)p, (void)cx;
    g_effects++;
    return g_resend;
}

/* The writer: a queue of jobs the test runs or fails. */
#define MAX_JOBS 64
static ota_writer_job *g_jobs[MAX_JOBS];
static size_t g_n_jobs;
static ota_store *g_store;

int ota_writer_submit(ota_writer *w, ota_writer_job *job)
{
    (void)w;
    assert_true(g_n_jobs < MAX_JOBS);
    g_jobs[g_n_jobs++] = job;
    return 0;
}

/* Empties the queue into jobs; returns how many there were. */
static size_t take_jobs(ota_writer_job *jobs[MAX_JOBS])
{
    size_t n = g_n_jobs;
    memcpy(jobs, g_jobs, n * sizeof(*jobs));
    g_n_jobs = 0;
    return n;
}

/* Runs every queued job against the store, then calls their done(); returns how many. */
static size_t run_jobs(void)
{
    ota_writer_job *jobs[MAX_JOBS];
    size_t n = take_jobs(jobs);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->rc = jobs[i]->run(g_store, jobs[i]->arg, jobs[i]->err, sizeof(jobs[i]->err));
        assert_int_equal(jobs[i]->rc, 0);
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i]->done(jobs[i]->arg, jobs[i]->rc, jobs[i]->err);
    }
    return n;
}

/* Every queued job fails (the store is down). */
static size_t fail_jobs(void)
{
    ota_writer_job *jobs[MAX_JOBS];
    size_t n = take_jobs(jobs);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->done(jobs[i]->arg, -1, "store down");
    }
    return n;
}

size_t ota_writer_poll_done(ota_writer *w)
{
    (void)w;
    return run_jobs();
}

bool ota_writer_jobs_idle(ota_writer *w, unsigned timeout_ms)
{
    (void)w, (void)timeout_ms;
    return true;
}

/* The checkpoint the engine allows once its moves are stored: the last one, recorded. */
static ota_spool_pos g_allowed;
static size_t g_n_allowed;

void ota_writer_allow_checkpoint(ota_writer *w, ota_spool_pos ck)
{
    (void)w;
    g_allowed = ck;
    g_n_allowed++;
}

/* The store's notice decision writes, counted: the test links with -Wl,--wrap for both
 * (tests/unit/CMakeLists.txt). One write per notice was the dispatch regression of
 * docs/benchmarks.md (an fsync each on SQLite); a claim job makes one for all it won. */
static size_t g_decision_writes; /* calls that write decisions */
static size_t g_decisions;       /* decisions in them */

int __real_ota_store_notice_decision(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                     const ota_shadow_rec *shadow, const ota_notice_rec *notice,
                                     char *err, size_t errlen);
int __wrap_ota_store_notice_decision(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                     const ota_shadow_rec *shadow, const ota_notice_rec *notice,
                                     char *err, size_t errlen);
int __real_ota_store_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                      size_t errlen);
int __wrap_ota_store_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                      size_t errlen);

int __wrap_ota_store_notice_decision(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                                     const ota_shadow_rec *shadow, const ota_notice_rec *notice,
                                     char *err, size_t errlen)
{
    g_decision_writes++;
    g_decisions++;
    return __real_ota_store_notice_decision(s, from, to, shadow, notice, err, errlen);
}

int __wrap_ota_store_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                                      size_t errlen)
{
    g_decision_writes += n > 0;
    g_decisions += n;
    return __real_ota_store_notice_decisions(s, d, n, err, errlen);
}

/* A task's counts over every broker: the store counts them (ota_store_count_task_execs);
 * rows are read (ota_store_load_task_execs) only for executions stored without their wave. */
static size_t g_store_counts; /* counts the store made */
static size_t g_rows_read;    /* execution rows handed out by ota_store_load_task_execs */

int __real_ota_store_load_task_execs(ota_store *s, const char *task, unsigned states,
                                     ota_store_exec_fn fn, void *ctx);
int __wrap_ota_store_load_task_execs(ota_store *s, const char *task, unsigned states,
                                     ota_store_exec_fn fn, void *ctx);
int __real_ota_store_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn,
                                      void *ctx, char *err, size_t errlen);
int __wrap_ota_store_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn,
                                      void *ctx, char *err, size_t errlen);

typedef struct {
    ota_store_exec_fn fn;
    void *ctx;
} row_tap;

static int row_read(void *ctx, const ota_exec_rec *e)
{
    row_tap *t = ctx;
    g_rows_read++;
    return t->fn(t->ctx, e);
}

int __wrap_ota_store_load_task_execs(ota_store *s, const char *task, unsigned states,
                                     ota_store_exec_fn fn, void *ctx)
{
    row_tap t = {fn, ctx};
    return __real_ota_store_load_task_execs(s, task, states, row_read, &t);
}

int __wrap_ota_store_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn,
                                      void *ctx, char *err, size_t errlen)
{
    g_store_counts++;
    return __real_ota_store_count_task_execs(s, task, fn, ctx, err, errlen);
}

/* ---------------------------------------------------------------- fixture */

typedef struct {
    test_db db;
    ota_plugin p;
    char writer_token; /* p.writer points here: the fakes never read it */
} fixture;

static fixture *F;

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    assert_non_null(F);
    void *dbs = NULL;
    assert_int_equal(test_db_setup(&dbs), 0);
    F->db = *(test_db *)dbs;
    free(dbs);
    g_store = F->db.s;
    F->p.catalog = ota_catalog_new();
    F->p.tasks = ota_tasks_new();
    F->p.shadows = (ota_shadows *)&F->writer_token;
    F->p.writer = (ota_writer *)&F->writer_token;
    F->p.cfg.broker_id = "test-broker";
    F->p.cfg.task_minute_ms = 100;
    g_resend = false;
    g_effects = 0;
    g_task_events[0] = '\0';
    g_decision_writes = g_decisions = 0;
    *state = F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fail_jobs(); /* jobs still queued free their memory */
    ota_engine_free(F->p.engine);
    assert_null(g_seen_fn); /* the engine took its hook back */
    ota_tasks_free(F->p.tasks);
    ota_catalog_free(F->p.catalog);
    void *dbs = malloc(sizeof(test_db));
    *(test_db *)dbs = F->db;
    test_db_teardown(&dbs);
    for (size_t i = 0; i < MAX_VEHS; i++) {
        free(g_desired[i].desired);
    }
    memset(g_desired, 0, sizeof(g_desired));
    free(F);
    F = NULL;
    return 0;
}

/* A task of these VINs (all queued), created now, with rec's limits. */
/* The executions of a new task, stored queued (what createTask's change holds). */
static void store_queued(const char *id, const char *const *vins, size_t n)
{
    ota_exec_rec *recs = calloc(n, sizeof(*recs));
    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        recs[i] = (ota_exec_rec){.task = id,
                                 .vin = vins[i],
                                 .state = OTA_EXEC_QUEUED,
                                 .notified_ms = -1,
                                 .updated_ms = g_now};
    }
    ota_catalog_change c = {.put_execs = recs, .n_put_execs = n};
    char err[256];
    assert_int_equal(ota_store_apply(g_store, &c, err, sizeof err), 0);
    free(recs);
}

/* The task document as createTask stores it: a wave's promotion is a conditional write
 * over the stored revision (ota_store_put_task_doc_if), so a rollout needs it in the store,
 * and a whole record to write (the name, model and series the test tasks leave out). */
static void store_task_doc(ota_task *t)
{
    t->rec.name = test_strdup("test");
    t->rec.model = test_strdup("L9");
    t->rec.series = test_strdup("2024");
    cJSON *d = ota_task_doc_of(t, t->state);
    char *json = cJSON_PrintUnformatted(d);
    assert_non_null(json);
    ota_store_doc doc = {OTA_DOC_TASK, t->rec.id, json};
    ota_catalog_change c = {.docs = &doc, .n_docs = 1};
    char err[256];
    assert_int_equal(ota_store_apply(g_store, &c, err, sizeof err), 0);
    free(json);
    cJSON_Delete(d);
}

static ota_task *add_task(const char *id, const char *const *vins, size_t n, ota_task_rec rec)
{
    rec.id = test_strdup(id);
    rec.version = test_strdup("2.0.0");
    ota_task_exec *execs = calloc(n, sizeof(*execs));
    assert_non_null(execs);
    for (size_t i = 0; i < n; i++) {
        memcpy(execs[i].vin, vins[i], OTA_VIN_LEN);
        execs[i].notified_ms = -1;
    }
    store_queued(id, vins, n); /* as createTask does: executions are written as transitions */
    assert_int_equal(ota_tasks_add(F->p.tasks, &rec, OTA_TASK_ACTIVE, g_now, 9, execs, n), 0);
    return ota_tasks_get(F->p.tasks, id);
}

#define TASK(...) ((ota_task_rec){.start_ms = -1, .end_ms = -1, __VA_ARGS__})
#define VINS(...) ((const char *const[]){__VA_ARGS__})
#define N_VINS(...) (sizeof(VINS(__VA_ARGS__)) / sizeof(const char *))
#define ADD(id, rec, ...) add_task(id, VINS(__VA_ARGS__), N_VINS(__VA_ARGS__), rec)

static void start_engine(void)
{
    ota_engine_clock clock = {fake_now, fake_mono};
    F->p.engine = ota_engine_new(&F->p, &clock);
    assert_non_null(F->p.engine);
    assert_non_null(g_seen_fn);
}

static void seen(const char *vin)
{
    g_seen_fn(g_seen_ctx, vin);
}

/* One TICK, then the writer runs what it got and hands the results back. */
static void tick(void)
{
    ota_engine_tick(&F->p);
    run_jobs();
}

static uint8_t state_of(const char *task, const char *vin)
{
    ota_task_exec *x = ota_task_find_exec(ota_tasks_get(F->p.tasks, task), vin);
    assert_non_null(x);
    return x->state;
}

static const char *code_of(const char *task, const char *vin)
{
    ota_task_exec *x = ota_task_find_exec(ota_tasks_get(F->p.tasks, task), vin);
    return ota_tasks_code_name(F->p.tasks, x->code);
}

/* The msg_id of the notice in the vehicle's desired state, or "" when it has none. */
static const char *notice_id(const char *vin)
{
    static char id[128];
    desired_rec *d = desired_slot(vin);
    cJSON *j = d->desired ? cJSON_Parse(d->desired) : NULL;
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "task"), "msg_id");
    snprintf(id, sizeof(id), "%s", cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(j);
    return id;
}

static void report(const char *vin, const char *task, ota_event_type type, const char *status,
                   const char *error)
{
    ota_event ev = {.type = type,
                    .task = task,
                    .ts = g_now,
                    .pct = 50,
                    .bytes = -1,
                    .status = status,
                    .error = error,
                    .trigger = "normal"};
    ota_engine_on_event(&F->p, vin, &ev);
}

static void status(const char *vin, const char *task, const char *st, const char *error)
{
    report(vin, task, OTA_EV_UPGRADE_STATUS, st, error);
}

/* Advances both clocks. */
static void later(int64_t ms)
{
    g_now += ms;
    g_mono += ms;
}

/* ---------------------------------------------------------------- dispatch */

static void test_oldest_task_first_one_per_vehicle(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1, V2);
    ADD("T000002", TASK(0), V1);
    start_engine();
    seen(V1); /* the claim goes out with the next TICK */
    assert_string_equal(notice_id(V1), "");
    tick();
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    assert_string_equal(g_presigned, "T000001:" V1); /* its description is pre-signed */
    /* busy with T000001: T000002 waits, whatever the ticks */
    for (int i = 0; i < 3; i++) {
        later(100);
        tick();
    }
    assert_int_equal(state_of("T000002", V1), OTA_EXEC_QUEUED);
    /* V2 never sent a shadow request: offline, not dispatched */
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
    /* done with T000001: the next task goes out at once (its claim with the next TICK) */
    status(V1, "T000001", "succeeded", NULL);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_SUCCEEDED);
    assert_string_equal(notice_id(V1), "");
    tick();
    assert_string_equal(notice_id(V1), "T000002:" V1 ":0");
}

static void test_offline_after_disconnect(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    ota_engine_on_disconnect(&F->p, V1);
    tick(); /* the claim was asked while online: the notice goes to its shadow anyway */
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    seen(V2);
    ota_engine_on_disconnect(&F->p, V2);
    ADD("T000002", TASK(0), V2); /* created while V2 is offline */
    tick();
    assert_int_equal(state_of("T000002", V2), OTA_EXEC_QUEUED);
    seen(V2);
    tick();
    assert_int_equal(state_of("T000002", V2), OTA_EXEC_NOTIFIED);
}

static size_t notified(const char *task)
{
    return ota_tasks_get(F->p.tasks, task)->count[OTA_EXEC_NOTIFIED];
}

static void test_rate(void **state)
{
    (void)state;
    ADD("T000001", TASK(.rate = 2), V1, V2, V3, V4, V5);
    start_engine();
    const char *const all[] = {V1, V2, V3, V4, V5};
    for (size_t i = 0; i < 5; i++) {
        seen(all[i]);
    }
    tick();
    assert_int_equal(notified("T000001"), 2); /* a full bucket: rate notices at once */
    tick();
    assert_int_equal(notified("T000001"), 2); /* no time passed: no token */
    later(499);
    tick();
    assert_int_equal(notified("T000001"), 2);
    later(1);
    tick();
    assert_int_equal(notified("T000001"), 3); /* half a second: one token */
    later(60000);
    tick();
    assert_int_equal(notified("T000001"), 5); /* the bucket holds rate tokens at most */
}

static void test_rate_unlimited_and_bucket_cap(void **state)
{
    (void)state;
    ADD("T000001", TASK(.rate = 0), V1, V2, V3);
    ADD("T000002", TASK(.rate = 1), V4, V5);
    start_engine();
    later(3600000); /* an hour idle does not save up more than rate tokens */
    const char *const all[] = {V1, V2, V3, V4, V5};
    for (size_t i = 0; i < 5; i++) {
        seen(all[i]);
    }
    tick();
    assert_int_equal(notified("T000001"), 3);
    assert_int_equal(notified("T000002"), 1);
}

static void test_window_and_expiry(void **state)
{
    (void)state;
    ota_task_rec window = {.start_ms = g_now + 1000, .end_ms = g_now + 5000};
    ADD("T000001", window, V1, V2);
    start_engine();
    seen(V1);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_QUEUED); /* not started yet */
    later(1000);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    later(4000); /* the end: V2 never came, its execution expires */
    tick();
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_CANCELED);
    assert_string_equal(code_of("T000001", V2), "expired");
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED); /* notified ones go on */
    g_committed[0] = '\0';
    status(V1, "T000001", "succeeded", NULL);
    assert_string_equal(g_committed, "T000001:" V1); /* its RXSWIN update is queued */
    tick();
    assert_int_equal(ota_tasks_get(F->p.tasks, "T000001")->state, OTA_TASK_FINISHED);
}

static void test_restart_keeps_vehicles_busy(void **state)
{
    (void)state;
    ota_task *t1 = ADD("T000001", TASK(0), V1);
    ADD("T000002", TASK(0), V1);
    /* as loaded after a restart: T000001 was notified before it */
    assert_true(ota_task_exec_set_state(t1, &t1->execs[0], OTA_EXEC_NOTIFIED, g_now));
    start_engine();
    seen(V1);
    tick();
    assert_int_equal(state_of("T000002", V1), OTA_EXEC_QUEUED);
    assert_int_equal(desired_slot(V1)->sets, 0); /* no second notice */
}

/* Timers are not stored: an execution loaded in flight gets its timeout from its stored
 * change time. */
static void test_restart_recomputes_timeouts(void **state)
{
    (void)state;
    ota_task *t1 = ADD("T000001", TASK(.timeout_min = 2), V1, V2);
    assert_true(ota_task_exec_set_state(t1, &t1->execs[0], OTA_EXEC_NOTIFIED, g_now - 150));
    start_engine();
    later(49);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    later(1);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_FAILED);
    assert_string_equal(code_of("T000001", V1), "timeout");
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
}

/* A retry waiting in its backoff is stored (code retry_backoff, changed_ms = its due
 * time): at start its retry timer is set again at that time (issue 16). */
static void test_restart_recomputes_retry(void **state)
{
    (void)state;
    ota_task *t1 = ADD("T000001", TASK(.timeout_min = 2), V1);
    ota_task_exec *x = &t1->execs[0];
    assert_true(ota_task_exec_set_state(t1, x, OTA_EXEC_NOTIFIED, g_now - 150));
    x->code = ota_tasks_code(F->p.tasks, OTA_ENGINE_RETRY_CODE);
    x->changed_ms = g_now + 100; /* due */
    start_engine();
    seen(V1);
    later(99);
    tick();
    assert_int_equal(x->resends, 0); /* not before its time; no timeout meanwhile */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    later(1);
    tick();
    assert_int_equal(x->resends, 1); /* the retry: attempt 1's notice */
    assert_null(code_of("T000001", V1));
    later(1000);
    tick();
    assert_int_equal(x->resends, 1); /* once */
}

/* ---------------------------------------------------------------- reports */

static void test_reports_drive_states(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    ADD("T000002", TASK(0), V2);
    start_engine();
    seen(V1);
    tick();
    report(V1, "T000002", OTA_EV_DOWNLOAD_PROGRESS, NULL, NULL); /* another task's: ignored */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    report(V1, "T000001", OTA_EV_DOWNLOAD_PROGRESS, NULL, NULL);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_DOWNLOADING);
    report(V1, "T000001", OTA_EV_UPGRADE_PROGRESS, NULL, NULL);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_INSTALLING);
    report(V1, "T000001", OTA_EV_DOWNLOAD_PROGRESS, NULL, NULL); /* late: no step back */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_INSTALLING);
    status(V1, "T000001", "failed", "upgrade_failed");
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_FAILED);
    assert_string_equal(code_of("T000001", V1), "upgrade_failed");
    assert_null(desired_slot(V1)->desired); /* cleared: no dead notice re-delivered */
    assert_int_equal(g_effects, 1);
    g_committed[0] = '\0';
    status(V1, "T000001", "succeeded", NULL); /* finished: never changes again */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_FAILED);
    assert_string_equal(g_committed, ""); /* no RXSWIN update for a failed execution */
    assert_int_equal(g_effects, 1); /* a replayed report publishes no second alert */
    assert_int_equal(ota_tasks_get(F->p.tasks, "T000001")->state, OTA_TASK_FINISHED);
}

static void test_vehicle_cancel(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    tick();
    status(V1, "T000001", "idle", NULL); /* idle without a cancel pending: nothing */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    status(V1, "T000001", "canceled", NULL);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_CANCELED);
    assert_string_equal(code_of("T000001", V1), "vehicle");
}

/* ---------------------------------------------------------------- timeouts, abort */

static void test_timeout(void **state)
{
    (void)state;
    ADD("T000001", TASK(.timeout_min = 2), V1, V2);
    start_engine();
    seen(V1);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    later(150); /* 2 minutes of 100 ms each: not yet */
    report(V1, "T000001", OTA_EV_DOWNLOAD_PROGRESS, NULL, NULL); /* a change restarts it */
    later(199);
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_DOWNLOADING);
    later(1); /* exactly 2 minutes after the progress: the timer is due */
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_FAILED);
    assert_string_equal(code_of("T000001", V1), "timeout");
    assert_null(desired_slot(V1)->desired);
    /* queued executions never time out */
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
}

/* A rollout of two waves: the first wave's error threshold aborts the task, the second
 * wave is never notified; the events tell the abort. */
/* T000001 over V1-V4 in two waves (2 vehicles, then the rest), success threshold 100%, error
 * threshold error_pct, waves 0..approved-1 approved; first and second: each wave's VINs. */
static ota_task *two_wave_task(uint8_t error_pct, uint8_t approved, const char *first[2],
                               const char *second[2])
{
    ota_task *t = ADD("T000001", TASK(0), V1, V2, V3, V4);
    ota_task_waves *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->n_specs = 1;
    w->specs[0] = (ota_wave_spec){false, 2};
    w->success_pct[0] = w->success_pct[1] = 100;
    w->error_pct[0] = w->error_pct[1] = error_pct;
    w->approved = approved;
    const char *vins[] = {V1, V2, V3, V4};
    assert_int_equal(ota_task_waves_plan(w, "T000001", vins, (bool[]){1, 1, 1, 1}, 4), 0);
    t->waves = w;
    ota_task_recount(t);
    size_t nf = 0, ns = 0;
    for (size_t i = 0; i < 4; i++) {
        if (ota_task_waves_of(w, i) == 0) {
            assert_true(nf < 2);
            first[nf++] = vins[i];
        } else {
            assert_true(ns < 2);
            second[ns++] = vins[i];
        }
    }
    return t;
}

static void test_wave_abort(void **state)
{
    (void)state;
    const char *first[2], *second[2];
    ota_task *t = two_wave_task(50, OTA_WAVES_MAX + 1, first, second);
    start_engine();
    for (size_t i = 0; i < 2; i++) {
        seen(first[i]);
        seen(second[i]);
    }
    tick();
    assert_int_equal(state_of("T000001", first[0]), OTA_EXEC_NOTIFIED);
    assert_int_equal(state_of("T000001", first[1]), OTA_EXEC_NOTIFIED);
    assert_int_equal(state_of("T000001", second[0]), OTA_EXEC_QUEUED);
    status(first[0], "T000001", "failed", "flash_failed");
    tick();
    assert_int_equal(t->state, OTA_TASK_ABORTED);
    assert_non_null(strstr(t->reason, "wave 0 reached its error threshold: 1 of 1 failed"));
    assert_non_null(strstr(g_task_events, "ota/v1/events/task/T000001 aborted"));
    for (size_t i = 0; i < 2; i++) {
        seen(second[i]);
    }
    tick();
    assert_int_equal(state_of("T000001", second[0]), OTA_EXEC_QUEUED);
    assert_int_equal(state_of("T000001", second[1]), OTA_EXEC_QUEUED);
}

static void test_abort_threshold(void **state)
{
    (void)state;
    ADD("T000001", TASK(.abort_min_executed = 2, .abort_failure_pct = 50), V1, V2, V3, V4);
    start_engine();
    seen(V1);
    seen(V2);
    tick();
    status(V1, "T000001", "failed", "upgrade_failed");
    assert_int_equal(ota_tasks_get(F->p.tasks, "T000001")->state, OTA_TASK_ACTIVE); /* 1 < 2 */
    status(V2, "T000001", "failed", "upgrade_failed");
    assert_int_equal(ota_tasks_get(F->p.tasks, "T000001")->state, OTA_TASK_ABORTED);
    /* no more dispatch */
    seen(V3);
    seen(V4);
    later(1000);
    tick();
    assert_int_equal(state_of("T000001", V3), OTA_EXEC_QUEUED);
    assert_int_equal(state_of("T000001", V4), OTA_EXEC_QUEUED);
    assert_string_equal(notice_id(V3), "");
}

/* ---------------------------------------------------------------- cancel */

static void test_cancel_whole_task(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(0), V1, V2, V3);
    start_engine();
    seen(V1);
    tick();
    size_t canceled, pending;
    ota_engine_cancel(&F->p, t, NULL, 0, &canceled, &pending);
    assert_int_equal(canceled, 2);
    assert_int_equal(pending, 1);
    assert_int_equal(t->state, OTA_TASK_CANCELED);
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_CANCELED);
    assert_null(code_of("T000001", V2));
    /* in flight: the cancel is desired, the execution waits for the vehicle */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    assert_string_equal(desired_slot(V1)->desired, "{\"task\":null,\"cancel\":\"T000001\"}");
    assert_string_equal(code_of("T000001", V1), OTA_ENGINE_CANCEL_CODE);
    status(V1, "T000001", "idle", NULL); /* idle now confirms the cancel */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_CANCELED);
    assert_null(code_of("T000001", V1));
    assert_null(desired_slot(V1)->desired);
}

static void test_cancel_some_vins(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(0), V1, V2, V3);
    start_engine();
    char *vins[] = {V2};
    size_t canceled, pending;
    ota_engine_cancel(&F->p, t, vins, 1, &canceled, &pending);
    assert_int_equal(canceled, 1);
    assert_int_equal(pending, 0);
    assert_int_equal(t->state, OTA_TASK_ACTIVE);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_QUEUED);
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_CANCELED);
}

static void test_cancel_while_claim_out(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(0), V1);
    ADD("T000002", TASK(0), V1);
    start_engine();
    seen(V1);
    ota_engine_tick(&F->p); /* the claim job is with the writer */
    assert_int_equal(g_n_jobs, 1);
    size_t canceled, pending;
    ota_engine_cancel(&F->p, t, NULL, 0, &canceled, &pending);
    assert_int_equal(canceled, 1);
    run_jobs(); /* the claim comes back won, but the execution moved on: nothing sent */
    assert_string_equal(notice_id(V1), "");
    tick(); /* the vehicle was freed for its next task */
    assert_string_equal(notice_id(V1), "T000002:" V1 ":0");
}

/* ---------------------------------------------------------------- compensation */

static void test_compensation_resend(void **state)
{
    (void)state;
    ADD("T000001", TASK(.max_resend = 1), V1);
    start_engine();
    seen(V1);
    tick();
    report(V1, "T000001", OTA_EV_DOWNLOAD_PROGRESS, NULL, NULL);
    g_resend = true;
    status(V1, "T000001", "failed", "download_failed");
    ota_task_exec *x = ota_task_find_exec(ota_tasks_get(F->p.tasks, "T000001"), V1);
    assert_int_equal(x->resends, 1);
    assert_int_equal(x->state, OTA_EXEC_DOWNLOADING); /* the re-send waits for its claim */
    tick();
    assert_string_equal(notice_id(V1), "T000001:" V1 ":1"); /* a new msg_id */
    assert_int_equal(x->state, OTA_EXEC_NOTIFIED);
    g_resend = false; /* max_resend reached */
    status(V1, "T000001", "failed", "download_failed");
    assert_int_equal(x->state, OTA_EXEC_FAILED);
    assert_string_equal(code_of("T000001", V1), "download_failed");
}

static void test_no_resend_while_cancel_pending(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(.max_resend = 3), V1);
    start_engine();
    seen(V1);
    tick();
    size_t canceled, pending;
    ota_engine_cancel(&F->p, t, NULL, 0, &canceled, &pending);
    g_resend = true;
    status(V1, "T000001", "failed", "download_failed");
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_FAILED);
    assert_int_equal(ota_task_find_exec(t, V1)->resends, 0);
}

/* ---------------------------------------------------------------- claims */

static double stat_of(const char *name)
{
    cJSON *data = cJSON_CreateObject();
    ota_engine_stats_json(&F->p, data);
    double v = cJSON_GetObjectItem(cJSON_GetObjectItem(data, "claims"), name)->valuedouble;
    cJSON_Delete(data);
    return v;
}

/* Another broker sharing the store claimed the first notice of task to vin. */
static void claimed_elsewhere(const char *task, const char *vin)
{
    char err[256], msg_id[128];
    snprintf(msg_id, sizeof(msg_id), "%s:%s:0", task, vin);
    assert_int_equal(
        ota_store_claim_notice(g_store, task, vin, msg_id, OTHER_BROKER, g_now, err, sizeof(err)),
        1);
}

static void test_claim_lost_to_another_broker(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(.rate = 1, .timeout_min = 1), V1, V2);
    ADD("T000002", TASK(0), V1);
    start_engine();
    claimed_elsewhere("T000001", V1);
    seen(V1);
    tick();
    assert_string_equal(notice_id(V1), ""); /* the other broker sends it */
    ota_task_exec *x = ota_task_find_exec(t, V1);
    assert_int_equal(x->state, OTA_EXEC_NOTIFIED); /* in memory: the vehicle stays busy */
    assert_true(x->flags & OTA_EXEC_F_ELSEWHERE);
    assert_int_equal(stat_of("lost"), 1);
    assert_int_equal(stat_of("won"), 0);
    /* the rate token came back: V2 goes out without waiting a second */
    seen(V2);
    tick();
    assert_string_equal(notice_id(V2), "T000001:" V2 ":0");
    assert_int_equal(state_of("T000002", V1), OTA_EXEC_QUEUED); /* one task at a time */
    /* the other broker times it out, not this one */
    later(3600000);
    tick();
    assert_int_equal(x->state, OTA_EXEC_NOTIFIED);
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_FAILED); /* ours did */
}

/* Every notice a TICK dispatches is claimed and decided in one writer job, and the job's
 * decisions are ONE store write (one SQLite commit), not one per notice. */
static void test_claims_decided_in_one_write(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1, V2, V3, V4, V5);
    start_engine();
    const char *vins[] = {V1, V2, V3, V4, V5};
    for (size_t i = 0; i < 5; i++) {
        seen(vins[i]);
    }
    ota_engine_tick(&F->p);
    assert_int_equal(run_jobs(), 1); /* one claim job for the five */
    assert_int_equal(g_decisions, 5);
    assert_int_equal(g_decision_writes, 1);
    assert_int_equal(stat_of("won"), 5);
    for (size_t i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "T000001:%s:0", vins[i]);
        assert_string_equal(notice_id(vins[i]), want); /* all sent with that job's result */
        assert_int_equal(state_of("T000001", vins[i]), OTA_EXEC_NOTIFIED);
    }
}

static void test_claim_failure_retried(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    ota_engine_tick(&F->p);
    assert_int_equal(fail_jobs(), 1); /* the store is down */
    assert_int_equal(stat_of("errors"), 1);
    assert_int_equal(stat_of("waiting"), 1);
    later(999);
    ota_engine_tick(&F->p);
    assert_int_equal(g_n_jobs, 0); /* backoff: 1 s */
    later(1);
    tick();
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    assert_int_equal(stat_of("won"), 1);
    assert_int_equal(stat_of("waiting"), 0);
}

/* ---------------------------------------------------------------- flush */

typedef struct {
    size_t n;  /* executions the engine moved */
    int state; /* of V1's execution in T000001 */
    char code[32];
    int64_t resends;
} stored;

static int load_exec(void *ctx, const ota_exec_rec *e)
{
    stored *s = ctx;
    s->n += e->state != OTA_EXEC_QUEUED; /* written by the engine (created queued) */
    if (strcmp(e->task, "T000001") == 0 && strcmp(e->vin, V1) == 0) {
        s->state = (int)e->state;
        snprintf(s->code, sizeof(s->code), "%s", e->code ? e->code : "");
        s->resends = e->resends;
    }
    return 0;
}

static stored load_stored(void)
{
    stored s = {.state = -1};
    assert_int_equal(ota_store_load_execs(g_store, load_exec, &s), 0);
    return s;
}

static int count_notice(void *ctx, const ota_notice_rec *n)
{
    (void)n;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t stored_notices(void)
{
    size_t n = 0;
    assert_int_equal(ota_store_load_notices(g_store, "T000001", count_notice, &n), 0);
    return n;
}

static void test_flush_and_retry(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    ota_engine_tick(&F->p); /* the claim */
    run_jobs();             /* won: the decision stored in the same job, the notice is set */
    stored s = load_stored();
    assert_int_equal(s.n, 1);
    assert_int_equal(s.state, OTA_EXEC_NOTIFIED);
    assert_int_equal(stored_notices(), 1);
    later(50);
    ota_engine_tick(&F->p);
    assert_int_equal(g_n_jobs, 0); /* nothing else to store */
    status(V1, "T000001", "failed", "upgrade_failed");
    later(50);
    ota_engine_tick(&F->p); /* the flush of the failure */
    assert_int_equal(g_n_jobs, 1);
    assert_int_equal(fail_jobs(), 1); /* the store is down: it waits */
    assert_int_equal(load_stored().state, OTA_EXEC_NOTIFIED);
    later(999);
    tick();
    assert_int_equal(load_stored().state, OTA_EXEC_NOTIFIED); /* retried after a second */
    later(1);
    tick();
    s = load_stored();
    assert_int_equal(s.state, OTA_EXEC_FAILED);
    assert_string_equal(s.code, "upgrade_failed");
}

/* The reports polled up to a spool position drove a move: the checkpoint may pass them
 * only once that move is stored, so a broker killed before replays them (issue 15). */
static void test_checkpoint_waits_for_the_moves(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    tick(); /* the claim and the notice, stored */
    g_n_allowed = 0;
    status(V1, "T000001", "failed", "upgrade_failed");
    ota_engine_hold_checkpoint(&F->p, (ota_spool_pos){1, 100});
    later(50);
    ota_engine_tick(&F->p); /* the flush of the failure, with the checkpoint */
    assert_int_equal(g_n_jobs, 1);
    assert_int_equal(g_n_allowed, 0); /* not before the move is stored */
    assert_int_equal(fail_jobs(), 1); /* the store is down: both wait */
    assert_int_equal(g_n_allowed, 0);
    later(1000);
    tick();
    assert_int_equal(load_stored().state, OTA_EXEC_FAILED);
    assert_int_equal(g_n_allowed, 1);
    assert_int_equal(g_allowed.segment, 1);
    assert_int_equal(g_allowed.offset, 100);
    /* the next one rides on the next flush (or is allowed at once with nothing to store) */
    ota_engine_hold_checkpoint(&F->p, (ota_spool_pos){1, 200});
    later(50);
    tick();
    assert_int_equal(g_n_allowed, 2);
    assert_int_equal(g_allowed.offset, 200);
}

static void test_lost_claim_not_stored(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1);
    start_engine();
    claimed_elsewhere("T000001", V1);
    seen(V1);
    tick();
    later(50);
    tick();
    assert_int_equal(load_stored().n, 0); /* the other broker stores that execution */
    assert_int_equal(stored_notices(), 0);
}

static void test_flush_final(void **state)
{
    (void)state;
    ADD("T000001", TASK(0), V1, V2);
    start_engine();
    seen(V1);
    seen(V2);
    /* shutdown with both claims waiting: they are settled, sent and stored */
    ota_engine_flush_final(&F->p);
    run_jobs();
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    assert_string_equal(notice_id(V2), "T000001:" V2 ":0");
    assert_int_equal(load_stored().n, 2);
    assert_int_equal(stored_notices(), 2);
}

/* ---------------------------------------------------------------- several brokers */

/* Another broker's move of vin in the store, its execution carrying wave (-1: none, or
 * stored as before executions carried their wave). */
static void moved_in_wave(const char *vin, ota_exec_state from, ota_exec_state state, int64_t wave)
{
    ota_exec_rec r = {.task = "T000001",
                      .vin = vin,
                      .state = state,
                      .msg_id = "T000001:" V1 ":0",
                      .notified_ms = g_now,
                      .updated_ms = g_now,
                      .wave = wave};
    char err[256];
    assert_int_equal(ota_store_transition_exec(g_store, from, &r, err, sizeof err), 1);
}

/* Another broker's write: (T000001, vin) moved from `from` to state in the store. */
static void moved_elsewhere(const char *vin, ota_exec_state from, ota_exec_state state)
{
    moved_in_wave(vin, from, state, -1);
}

static void test_adopt_from_store(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(0), V1);
    start_engine();
    moved_elsewhere(V1, OTA_EXEC_QUEUED, OTA_EXEC_DOWNLOADING); /* notified by another broker */
    report(V1, "T000001", OTA_EV_UPGRADE_PROGRESS, NULL, NULL);
    status(V1, "T000001", "succeeded", NULL);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_QUEUED); /* the events wait */
    tick(); /* read from the store, then driven by both events */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_SUCCEEDED);
    assert_int_equal(t->count[OTA_EXEC_SUCCEEDED], 1);
    assert_int_equal(t->count[OTA_EXEC_QUEUED], 0);
    later(50);
    tick();
    assert_int_equal(load_stored().state, OTA_EXEC_SUCCEEDED);
}

static void test_conflict_reads_again(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(.timeout_min = 1), V1);
    start_engine();
    seen(V1);
    tick(); /* claimed and notified here */
    assert_int_equal(load_stored().state, OTA_EXEC_NOTIFIED);
    moved_elsewhere(V1, OTA_EXEC_NOTIFIED, OTA_EXEC_SUCCEEDED); /* it finished elsewhere */
    later(60000);
    tick(); /* timed out here: the write from notified does not apply */
    later(50);
    tick(); /* the flush finds succeeded; the execution is read again: as far, it wins */
    tick();
    assert_int_equal(load_stored().state, OTA_EXEC_SUCCEEDED);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_SUCCEEDED);
    assert_int_equal(t->count[OTA_EXEC_FAILED], 0);
    assert_int_equal(t->count[OTA_EXEC_SUCCEEDED], 1);
}

/* Reports raced over two brokers: V1 notified here and installing in memory (not stored
 * yet) while another broker stored it downloading. */
static void install_races_a_download(void)
{
    ADD("T000001", TASK(0), V1);
    start_engine();
    seen(V1);
    tick();                                                     /* notified here */
    report(V1, "T000001", OTA_EV_UPGRADE_PROGRESS, NULL, NULL); /* installing, not stored */
    moved_elsewhere(V1, OTA_EXEC_NOTIFIED, OTA_EXEC_DOWNLOADING);
}

/* This broker's move (installing) lost to an older one (downloading) written meanwhile:
 * the further state is written again. */
static void test_conflict_further_wins(void **state)
{
    (void)state;
    install_races_a_download();
    later(50);
    tick(); /* the write from notified does not apply; read again */
    later(50);
    tick(); /* installing is further: written from downloading */
    later(50);
    tick();
    assert_int_equal(load_stored().state, OTA_EXEC_INSTALLING);
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_INSTALLING);
}

/* A move whose write found another state is read again and may be written again (the
 * further one wins): the checkpoint of the reports that made it waits for that write, so a
 * broker killed in between replays them (issue 15). */
static void test_checkpoint_waits_for_a_conflicts_write(void **state)
{
    (void)state;
    install_races_a_download();
    ota_engine_hold_checkpoint(&F->p, (ota_spool_pos){1, 100}); /* the report's */
    g_n_allowed = 0;
    later(50);
    tick(); /* the write from notified does not apply; read again */
    assert_int_equal(g_n_allowed, 0);
    for (int i = 0; i < 3 && g_n_allowed == 0; i++) {
        later(50);
        tick(); /* installing is further: written from downloading */
    }
    assert_int_equal(g_n_allowed, 1);
    assert_int_equal(g_allowed.offset, 100);
    assert_int_equal(load_stored().state, OTA_EXEC_INSTALLING);
}

/* ---------------------------------------------------------------- continuous, jitter */

/* A catalog vehicle of EX5/S1 with fw 1.0 and this usage (test_strdup'd; the catalog takes
 * the record's contents). */
static void put_vehicle(const char *vin, const char *usage)
{
    ota_vehicle_rec r = {.vin = test_strdup(vin),
                         .model = test_strdup("EX5"),
                         .series = test_strdup("S1"),
                         .status = test_strdup("in_stock"),
                         .usage = test_strdup(usage),
                         .fw = test_strdup("1.0"),
                         .passenger = true};
    assert_int_equal(ota_catalog_put_vehicle(F->p.catalog, &r), 0);
}

/* T000001 of V1, continuous, its target the usage "fleet". */
static ota_task *add_continuous(void)
{
    ota_task *task = ADD("T000001", TASK(.model = test_strdup("EX5"), .series = test_strdup("S1"),
                                         .name = test_strdup("c")),
                         V1);
    char err[256];
    cJSON *q = cJSON_Parse("{\"usage\":[\"fleet\"]}");
    task->target = calloc(1, sizeof(*task->target));
    assert_non_null(task->target);
    assert_int_equal(ota_json_target(q, "target", task->target, err, sizeof err), 0);
    cJSON_Delete(q);
    task->continuous = true;
    return task;
}

typedef struct {
    char state[8][OTA_VIN_LEN + 1 + 16]; /* "VIN state code" per stored row */
    size_t n;
} rows_of;

static int row_of(void *ctx, const ota_exec_rec *e)
{
    rows_of *r = ctx;
    if (r->n < 8) {
        snprintf(r->state[r->n++], sizeof(r->state[0]), "%s %d %s", e->vin, (int)e->state,
                 e->code ? e->code : "-");
    }
    return 0;
}

static rows_of stored_rows(void)
{
    rows_of r = {.n = 0};
    assert_int_equal(ota_store_load_execs(g_store, row_of, &r), 0);
    return r;
}

static void test_continuous_join_leave_stored(void **state)
{
    (void)state;
    put_vehicle(V1, "retail");
    put_vehicle(V2, "fleet"); /* before the start: the first TICK matches everything */
    ota_task *task = add_continuous();
    start_engine();
    tick();
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
    assert_int_equal(task->n_execs, 2);
    /* V1 was in the task from its creation and does not match: it leaves */
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_CANCELED);
    assert_string_equal(code_of("T000001", V1), "left_target");
    later(50);
    tick(); /* the flush: V2's row inserted, V1's moved */
    rows_of r = stored_rows();
    assert_int_equal(r.n, 2);
    assert_string_equal(r.state[0], V1 " 6 left_target");
    assert_string_equal(r.state[1], V2 " 0 -");
    /* a vehicle upserted while running joins at the next TICK; one that stops matching
     * before its notice leaves; one notified stays */
    put_vehicle(V3, "fleet");
    seen(V2);
    tick();
    assert_int_equal(state_of("T000001", V3), OTA_EXEC_QUEUED);
    assert_string_equal(notice_id(V2), "T000001:" V2 ":0");
    put_vehicle(V2, "retail");
    put_vehicle(V3, "retail");
    later(50);
    tick();
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_NOTIFIED);
    assert_int_equal(state_of("T000001", V3), OTA_EXEC_CANCELED);
    seen(V3);
    tick();
    assert_string_equal(notice_id(V3), ""); /* never notified */
    later(50);
    tick();
    r = stored_rows();
    assert_int_equal(r.n, 3);
    assert_string_equal(r.state[1], V2 " 1 -");
    assert_string_equal(r.state[2], V3 " 6 left_target");
    /* back in the target: it starts again, and is notified */
    put_vehicle(V3, "fleet");
    tick();
    tick();
    assert_int_equal(state_of("T000001", V3), OTA_EXEC_NOTIFIED);
    assert_int_equal(task->state, OTA_TASK_ACTIVE);
}

static void test_continuous_closes_at_its_end(void **state)
{
    (void)state;
    put_vehicle(V1, "fleet");
    ota_task *task = add_continuous();
    task->rec.end_ms = g_now + 1000;
    start_engine();
    seen(V1);
    tick();
    tick();
    status(V1, "T000001", "succeeded", NULL);
    tick();
    assert_int_equal(task->state, OTA_TASK_ACTIVE); /* nothing open, but open to joiners */
    later(1000);
    tick();
    put_vehicle(V2, "fleet");
    tick();
    assert_int_equal(task->state, OTA_TASK_FINISHED);
    assert_null(ota_task_find_exec(task, V2)); /* past its end nobody joins */
}

/* An online vehicle that joins is claimed only once its row is stored (the claim job runs
 * before the flush job in the writer's queue: claimed at once, it would find no row). */
static void test_joiner_claimed_after_its_row(void **state)
{
    (void)state;
    put_vehicle(V1, "fleet");
    add_continuous();
    start_engine();
    seen(V1);
    tick();
    tick();
    assert_string_equal(notice_id(V1), "T000001:" V1 ":0");
    seen(V2);
    put_vehicle(V2, "fleet");
    later(50);
    tick(); /* joins: not claimed yet; the flush inserts its row */
    assert_string_equal(notice_id(V2), "");
    assert_int_equal(stored_rows().n, 2);
    later(50);
    tick(); /* claimed */
    tick();
    assert_string_equal(notice_id(V2), "T000001:" V2 ":0");
    assert_true(stat_of("conflicts") == 0); /* no claim found its row missing */
    assert_true(stat_of("adopted") == 0);
}

/* A joiner that stops matching before its row is stored leaves once it is. */
static void test_joiner_leaves_after_its_row(void **state)
{
    (void)state;
    put_vehicle(V1, "fleet");
    add_continuous();
    start_engine();
    tick();
    put_vehicle(V2, "fleet");
    later(50);
    ota_engine_tick(&F->p); /* joins; the flush job waits in the writer's queue */
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
    put_vehicle(V2, "retail");
    later(50);
    ota_engine_tick(&F->p); /* not decided while its row is not stored */
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_QUEUED);
    run_jobs(); /* stored */
    tick();
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_CANCELED);
    assert_string_equal(code_of("T000001", V2), "left_target");
}

/* Another broker on the same database took the joiner first and notified it: this broker's
 * insert does not overwrite that row, it reads it again. */
static void test_joiner_stored_by_another_broker(void **state)
{
    (void)state;
    put_vehicle(V1, "fleet");
    put_vehicle(V2, "fleet");
    add_continuous();
    ota_exec_rec theirs = {.task = "T000001",
                           .vin = V2,
                           .state = OTA_EXEC_NOTIFIED,
                           .msg_id = "T000001:" V2 ":0",
                           .notified_ms = g_now,
                           .updated_ms = g_now};
    ota_catalog_change c = {.put_execs = &theirs, .n_put_execs = 1};
    char err[256];
    assert_int_equal(ota_store_apply(g_store, &c, err, sizeof err), 0);
    start_engine();
    tick(); /* V2 joins, queued in memory */
    later(50);
    tick(); /* the flush finds the row: read again */
    tick(); /* the read's result */
    rows_of r = stored_rows();
    assert_int_equal(r.n, 2);
    assert_string_equal(r.state[1], V2 " 1 -"); /* still theirs */
    assert_int_equal(state_of("T000001", V2), OTA_EXEC_NOTIFIED);
    seen(V2);
    tick();
    assert_string_equal(notice_id(V2), ""); /* not notified a second time from here */
}

static void test_jitter_spreads_notices(void **state)
{
    (void)state;
    ota_task *task = ADD("T000001", TASK(0), V1, V2, V3, V4, V5);
    task->jitter_ms = 1000;
    start_engine();
    const char *vins[] = {V1, V2, V3, V4, V5};
    for (int i = 0; i < 5; i++) {
        seen(vins[i]);
    }
    int64_t t0 = g_now, at[5];
    for (int i = 0; i < 5; i++) {
        at[i] = -1;
    }
    for (int step = 0; step <= 11; step++) { /* a TICK every 100 ms for 1.1 s */
        tick();
        for (int i = 0; i < 5; i++) {
            if (at[i] < 0 && notice_id(vins[i])[0]) {
                at[i] = g_now;
            }
        }
        later(100);
    }
    for (int i = 0; i < 5; i++) {
        int64_t d = ota_task_jitter(task, vins[i]);
        assert_true(at[i] >= 0);
        assert_true(at[i] >= t0 + d);       /* not before its delay */
        assert_true(at[i] < t0 + d + 200); /* and within two TICKs of it */
    }
}

/* A wave started late spreads its own notices from its start, not from the task's. */
static void test_jitter_from_the_wave_start(void **state)
{
    (void)state;
    ota_task *t = ADD("T000001", TASK(0), V1, V2, V3, V4);
    char err[256];
    cJSON *req = cJSON_Parse("{\"waves\":[{\"count\":2}]}"); /* two, then the rest */
    ota_task_waves *w = NULL;
    assert_int_equal(ota_task_waves_parse(req, "task", &w, err, sizeof err), 0);
    cJSON_Delete(req);
    const char *vins[] = {V1, V2, V3, V4};
    assert_int_equal(ota_task_waves_plan(w, "T000001", vins, (bool[]){1, 1, 1, 1}, 4), 0);
    t->waves = w;
    t->jitter_ms = 1000;
    ota_task_recount(t);
    store_task_doc(t);
    start_engine();
    for (size_t i = 0; i < 4; i++) {
        seen(vins[i]);
    }
    for (int step = 0; step < 12; step++) { /* wave 0 goes out within its jitter */
        tick();
        later(100);
    }
    later(60000); /* a minute later, wave 0 succeeds: wave 1 starts now */
    for (size_t i = 0; i < 4; i++) {
        if (ota_task_waves_of(w, i) == 0) {
            assert_int_equal(state_of("T000001", vins[i]), OTA_EXEC_NOTIFIED);
            status(vins[i], "T000001", "succeeded", NULL);
        }
    }
    tick(); /* the promotion */
    int64_t start = g_now;
    for (int step = 0; step < 12; step++) {
        tick();
        for (size_t i = 0; i < 4; i++) {
            if (ota_task_waves_of(w, i) == 1 && notice_id(vins[i])[0]) {
                assert_true(g_now >= start + ota_task_jitter(t, vins[i]));
            }
        }
        later(100);
    }
    assert_int_equal(t->count[OTA_EXEC_NOTIFIED], 2);
}

/* ---------------------------------------------------------------- a shared store's end */

/* How many times the task event "T000001 <event>" was published. */
static size_t told(const char *event)
{
    char what[64];
    snprintf(what, sizeof what, "ota/v1/events/task/T000001 %s\n", event);
    size_t n = 0;
    for (const char *s = g_task_events; (s = strstr(s, what)) != NULL; s += strlen(what)) {
        n++;
    }
    return n;
}

/* Another broker's write of the task's document in state s over the stored revision. */
static void ended_elsewhere(const ota_task *t, ota_task_state s)
{
    ota_task next = *t;
    next.rev = t->rev + 1;
    cJSON *d = ota_task_doc_of(&next, s);
    char *json = cJSON_PrintUnformatted(d), err[256];
    assert_int_equal(ota_store_put_task_doc_if(g_store, t->rec.id, json, t->rev, err, sizeof err),
                     1);
    free(json);
    cJSON_Delete(d);
}

/* V1 on this broker succeeds, V2 on another broker (in the store only): the task ends only on
 * the store's counts, read by the count job every 500 ms. */
static ota_task *shared_task_both_done(void)
{
    ota_task *t = ADD("T000001", TASK(0), V1, V2);
    store_task_doc(t);
    F->p.follow = (ota_follow *)&F->writer_token; /* a shared store: only its presence counts */
    start_engine();
    seen(V1);
    tick();
    tick();
    assert_int_equal(state_of("T000001", V1), OTA_EXEC_NOTIFIED);
    status(V1, "T000001", "succeeded", NULL);
    moved_elsewhere(V2, OTA_EXEC_QUEUED, OTA_EXEC_SUCCEEDED);
    later(100);
    tick();
    assert_int_equal(t->state, OTA_TASK_ACTIVE); /* here V2 is queued: memory alone is open */
    return t;
}

static void test_shared_end_told_by_its_write(void **state)
{
    (void)state;
    ota_task *t = shared_task_both_done();
    for (int i = 0; i < 4 && t->announced == OTA_TASK_ACTIVE; i++) {
        later(600); /* the next count */
        tick();
    }
    assert_int_equal(t->state, OTA_TASK_FINISHED);
    assert_int_equal(t->stored.count[OTA_EXEC_SUCCEEDED], 2);
    assert_int_equal(told("finished"), 1); /* its write stored it */
    assert_int_equal(t->rev, 1);
    later(600);
    tick();
    assert_int_equal(told("finished"), 1);
}

static void test_shared_end_lost_write_not_told(void **state)
{
    (void)state;
    ota_task *t = shared_task_both_done();
    ended_elsewhere(t, OTA_TASK_FINISHED); /* another broker's end came first */
    for (int i = 0; i < 4 && t->state == OTA_TASK_ACTIVE; i++) {
        later(600);
        tick();
    }
    assert_int_equal(t->state, OTA_TASK_FINISHED); /* in memory: no more dispatch */
    later(100);
    tick(); /* the write, again from revision 0: lost again */
    assert_int_equal(told("finished"), 0);
    ota_engine_task_followed(&F->p, t, OTA_TASK_FINISHED); /* the change log brings it */
    t->rev = 1;
    assert_false(t->doc_dirty);
    later(600);
    tick();
    assert_int_equal(told("finished"), 0); /* that broker told it */
    assert_false(t->doc_dirty);             /* and this broker's end is not written again */
}

/* On a shared store the waves' counts over every broker come from the store's counts per
 * wave: no execution row is read (issue 15); only executions stored without their wave (a
 * database from before) are read, by VIN. */
static void test_shared_wave_counts_by_the_store(void **state)
{
    (void)state;
    const char *first[2], *second[2];
    ota_task *t = two_wave_task(0, 0, first, second);
    ota_task_waves *w = t->waves;
    F->p.follow = (ota_follow *)&F->writer_token; /* a shared store */
    start_engine();
    g_store_counts = g_rows_read = 0;
    moved_in_wave(first[0], OTA_EXEC_QUEUED, OTA_EXEC_SUCCEEDED, 0); /* on other brokers */
    moved_in_wave(first[1], OTA_EXEC_QUEUED, OTA_EXEC_FAILED, 0);
    moved_in_wave(second[0], OTA_EXEC_QUEUED, OTA_EXEC_SUCCEEDED, 1);
    tick();
    assert_int_equal(g_store_counts, 1);
    assert_int_equal(w->all_ok[0], 1);
    assert_int_equal(w->all_bad[0], 1);
    assert_int_equal(w->all_ok[1], 1);
    assert_int_equal(t->stored.count[OTA_EXEC_QUEUED], 1);
    assert_int_equal(g_rows_read, 0);                               /* counted, not read */
    moved_in_wave(second[1], OTA_EXEC_QUEUED, OTA_EXEC_FAILED, -1); /* stored without its wave */
    later(2000);
    tick();
    assert_int_equal(g_store_counts, 2);
    assert_int_equal(w->all_bad[1], 1); /* its wave from the plan, by VIN */
    assert_int_equal(w->all_ok[1], 1);
    assert_int_equal(g_rows_read, 4); /* then the task's done rows are read */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_oldest_task_first_one_per_vehicle),
        T(test_offline_after_disconnect),
        T(test_rate),
        T(test_rate_unlimited_and_bucket_cap),
        T(test_window_and_expiry),
        T(test_restart_keeps_vehicles_busy),
        T(test_restart_recomputes_timeouts),
        T(test_restart_recomputes_retry),
        T(test_wave_abort),
        T(test_reports_drive_states),
        T(test_vehicle_cancel),
        T(test_timeout),
        T(test_abort_threshold),
        T(test_cancel_whole_task),
        T(test_cancel_some_vins),
        T(test_cancel_while_claim_out),
        T(test_compensation_resend),
        T(test_no_resend_while_cancel_pending),
        T(test_claim_lost_to_another_broker),
        T(test_claim_failure_retried),
        T(test_claims_decided_in_one_write),
        T(test_flush_and_retry),
        T(test_checkpoint_waits_for_the_moves),
        T(test_lost_claim_not_stored),
        T(test_flush_final),
        T(test_adopt_from_store),
        T(test_conflict_reads_again),
        T(test_conflict_further_wins),
        T(test_checkpoint_waits_for_a_conflicts_write),
        T(test_continuous_join_leave_stored),
        T(test_continuous_closes_at_its_end),
        T(test_joiner_stored_by_another_broker),
        T(test_joiner_claimed_after_its_row),
        T(test_joiner_leaves_after_its_row),
        T(test_jitter_spreads_notices),
        T(test_jitter_from_the_wave_start),
        T(test_shared_end_told_by_its_write),
        T(test_shared_end_lost_write_not_told),
        T(test_shared_wave_counts_by_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
