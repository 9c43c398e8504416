/*
 * control_tasks.c — createTask, getTask, listTaskVehicles, setTaskTypeRules,
 * getTaskTypeRules (SPEC §5-6, docs/operator-api.md).
 *
 * createTask parses the task strictly (ota_cmd_task_request: its VINs, or the VINs its
 * `target` query matches, control_targets.c), runs the task-level rules
 * (one failing fails the command: its text starts with the SPEC code, e.g.
 * "E_NO_PACKAGE: no full package of EX5/S1 version 2.0"), then the per-VIN rules against
 * the catalog, the task type rules and each vehicle's latest upgrade status. It stores,
 * in one change, the task document and one execution per distinct VIN (queued, or
 * rejected with its code); a VIN repeated in the request is answered E_DUPLICATE_VIN but
 * gets no execution of its own (its first place has one). Once stored, the task enters
 * memory and the answer lists the accepted VINs and the rejected ones with their codes,
 * in request order.
 *
 * Task type rules are OTA_DOC_SETTING documents "task_type_rules:<type>"; an empty list
 * accepts any value, as the defaults do for the usages of factory and spot_check tasks.
 */
#include "catalog.h"
#include "control.h"
#include "control_targets.h"
#include "ota_catalog_json.h"
#include "task_events.h"
#include "target.h"
#include "task_rules.h"
#include "tasks.h"
#include "vocab.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- createTask */

typedef struct {
    ota_cmd_op base;
    ota_task_rec rec;
    char id[24];
    uint64_t package;
    int64_t created_ms;
    uint8_t *codes;       /* per VIN of the request: its ota_reject_code */
    ota_task_exec *execs; /* one per distinct VIN (taken by the tasks on apply) */
    size_t n_execs;
    ota_exec_rec *recs; /* the change's executions */
    char *json;
    ota_store_doc doc;
    /* task.target (issue 16): the query, kept as setting "task_target:<id>" */
    ota_target target;
    bool has_target;
    char *target_json;
    char target_key[48];
    ota_store_doc docs[2];
    ota_task_waves *waves; /* task.waves (issue 16), its plan made at create_change */
    const ota_vehicle **vehicles; /* a target's: the vehicle of each rec.vins[i] */
    ota_task_window *mwindow;  /* task.maintenance_window (issue 16) */
    ota_end_action end_action; /* task.end_action */
    ota_task_ramp ramp;        /* task.ramp */
    ota_task_retry retry;      /* task.retry */
    bool continuous;           /* task.continuous: the target stays open (needs a target) */
    uint32_t jitter_ms;        /* task.jitter_ms */
} create_op;

static void create_free(ota_cmd_op *base)
{
    create_op *op = (create_op *)base;
    ota_task_rec_free(&op->rec);
    free(op->codes);
    free(op->execs);
    free(op->recs);
    free(op->json);
    ota_target_free(&op->target);
    free(op->target_json);
    ota_task_waves_free(op->waves);
    free(op->vehicles);
    ota_task_window_free(op->mwindow);
    free(op);
}

static void unordered_strategy(void *ctx, const ota_strategy_rec *s)
{
    const char **name = ctx;
    for (size_t i = 0; i < s->n_ecus && !*name; i++) {
        if (s->ecus[i].order < 0) {
            *name = s->id;
        }
    }
}

/* A task-level error: "E_CODE: what is wrong". */
static void task_error_text(const ota_catalog *cat, const ota_task_rec *t, ota_task_error e,
                            const ota_package_rec *pkg, char *err, size_t errlen)
{
    const char *code = ota_task_error_name(e);
    const char *strategy = NULL;
    switch (e) {
    case OTA_TASK_E_EMPTY_VINS:
        snprintf(err, errlen, "%s: task.vins is empty", code);
        break;
    case OTA_TASK_E_NO_PACKAGE:
        snprintf(err, errlen, "%s: no full package of %s/%s version %s", code, t->model, t->series,
                 t->version);
        break;
    case OTA_TASK_E_PACKAGE_NOT_RELEASED:
        snprintf(err, errlen,
                 "%s: package %" PRIu64 " (%s/%s %s) is %s; a %s task needs it released", code,
                 pkg->id, t->model, t->series, t->version, ota_pkg_status_name(pkg->status),
                 ota_task_type_name(t->type));
        break;
    case OTA_TASK_E_NO_BASELINE:
        snprintf(err, errlen, "%s: package %" PRIu64 " has no baseline description", code, pkg->id);
        break;
    case OTA_TASK_E_NO_DEFAULT_STRATEGY:
        snprintf(err, errlen, "%s: %s/%s has no default strategy (bindStrategy)", code, t->model,
                 t->series);
        break;
    default:
        ota_catalog_strategies_of(cat, t->model, t->series, unordered_strategy, &strategy);
        snprintf(err, errlen, "%s: strategy %s of %s/%s has an ECU without an upgrade order", code,
                 strategy ? strategy : "?", t->model, t->series);
        break;
    }
}

/* A start more than a minute ago is a mistake (a time in seconds, or a stale script):
 * refused rather than dispatched at once (issue 18). */
#define START_PAST_SLACK_MS 60000

static int check_start(const ota_task_rec *t, int64_t now_ms, char *err, size_t errlen)
{
    if (t->start_ms < 0 || t->start_ms >= now_ms - START_PAST_SLACK_MS) {
        return 0;
    }
    return ota_json_errf(err, errlen, "task", "start", "%lld ms is %lld s in the past",
                         (long long)t->start_ms, (long long)((now_ms - t->start_ms) / 1000));
}

static int parse_create(ota_plugin *p, const cJSON *cmd, create_op *op, char *err, size_t errlen)
{
    static const char *const allowed[] = {"task", NULL};
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0) {
        return -1;
    }
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(cmd, "task");
    if (!task) {
        return ota_json_errf(err, errlen, "", "task", "missing");
    }
    /* the rollout's members (task_waves.h, task_window.h) are the engine's: parsed here,
     * the rest of the task strictly as before */
    static const char *const engine_keys[] = {"waves",      "wave_approval", "maintenance_window",
                                              "end_action", "ramp",          "retry",
                                              "continuous", "jitter_ms",     NULL};
    uint64_t jitter = 0;
    if (ota_task_ramp_parse(task, "task", &op->ramp, err, errlen) != 0 ||
        ota_task_retry_parse(task, "task", &op->retry, err, errlen) != 0 ||
        ota_task_waves_parse(task, "task", &op->waves, err, errlen) != 0 ||
        ota_task_window_parse(task, "task", &op->mwindow, err, errlen) != 0 ||
        ota_task_end_action_parse(task, "task", &op->end_action, err, errlen) != 0 ||
        ota_json_get_bool(task, "task", "continuous", false, false, &op->continuous, err,
                          errlen) != 0 ||
        ota_json_get_uint(task, "task", "jitter_ms", false, 0, OTA_TASK_JITTER_MAX, &jitter, err,
                          errlen) != 0) {
        return -1;
    }
    op->jitter_ms = (uint32_t)jitter;
    cJSON *plain = cJSON_IsObject(task) ? cJSON_Duplicate(task, 1) : NULL;
    for (size_t i = 0; plain && engine_keys[i]; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(plain, engine_keys[i]);
    }
    if (plain) {
        task = plain;
    }
    int rc = ota_cmd_task_request(p, task, p->cfg.max_task_vins, &op->rec, &op->target,
                                  &op->has_target, &op->vehicles, err, errlen);
    cJSON_Delete(plain);
    if (rc != 0 || check_start(&op->rec, op->created_ms, err, errlen) != 0) {
        return -1;
    }
    if (op->continuous && !op->has_target) {
        return ota_json_errf(err, errlen, "task", "continuous", "needs a target (not vins)");
    }
    if (op->rec.n_vins > p->cfg.max_task_vins) { /* plugin_opt_max_task_vins (issue 8) */
        snprintf(err, errlen, "E_TOO_LARGE: task.vins: %zu VINs, at most %zu in one task",
                 op->rec.n_vins, p->cfg.max_task_vins);
        return -1;
    }
    const ota_package_rec *pkg = NULL;
    /* a continuous task may start with nobody: its vehicles may all come later (the only
     * rule reading the VINs is E_EMPTY_VINS, which reads their count) */
    ota_task_rec probe = op->rec;
    probe.n_vins += op->continuous && probe.n_vins == 0;
    ota_task_error e = ota_task_check(p->catalog, &probe, &pkg);
    if (e != OTA_TASK_OK) {
        task_error_text(p->catalog, &op->rec, e, pkg, err, errlen);
        return -1;
    }
    op->package = pkg->id;
    /* install mode: the task's own, else its package's default (issue 17), else forced */
    if (pkg->has_install_mode &&
        !cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(cmd, "task"), "install_mode")) {
        op->rec.install_mode = (ota_install_mode)pkg->install_mode;
    }
    ota_tasks_next_id(p->tasks, op->id, sizeof(op->id));
    op->rec.id = strdup(op->id);
    return op->rec.id ? 0 : ota_json_errf(err, errlen, NULL, NULL, "out of memory");
}

/* Runs the per-VIN rules: op->codes, and op->execs for the distinct VINs. */
static int check_vins(ota_plugin *p, create_op *op)
{
    size_t n = op->rec.n_vins;
    op->codes = malloc(n);
    op->execs = malloc(n * sizeof(*op->execs));
    /* a target's VINs come from the catalog, each once: no duplicate set (a third of the
     * rules' cost at 1,000,000 VINs, docs/benchmarks.md) */
    ota_vin_set *seen = op->has_target ? NULL : ota_vin_set_new(n);
    if (!op->codes || !op->execs || (!seen && !op->has_target)) {
        ota_vin_set_free(seen);
        return -1;
    }
    ota_rules_env env = ota_tasks_rules_env(p->tasks);
    for (size_t i = 0; i < n; i++) {
        const char *vin = op->rec.vins[i];
        ota_reject_code r =
            op->vehicles
                ? ota_task_check_vehicle(p->catalog, &env, &op->rec, vin, op->vehicles[i], NULL)
                : ota_task_check_vin(p->catalog, &env, &op->rec, vin, seen);
        op->codes[i] = (uint8_t)r;
        if (r == OTA_REJ_DUPLICATE_VIN) {
            continue;
        }
        ota_task_exec *x = &op->execs[op->n_execs++];
        *x = (ota_task_exec){.state = r ? OTA_EXEC_REJECTED : OTA_EXEC_QUEUED,
                             .code = (uint16_t)r,
                             .notified_ms = -1};
        memcpy(x->vin, vin, OTA_VIN_LEN);
    }
    ota_vin_set_free(seen);
    return 0;
}

/* A task created from a target keeps its query beside it, in the same change. */
static int target_doc(create_op *op)
{
    cJSON *j = ota_json_from_target(&op->target);
    op->target_json = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!op->target_json) {
        return -1;
    }
    snprintf(op->target_key, sizeof(op->target_key), OTA_TASK_TARGET_PREFIX "%s", op->id);
    op->docs[0] = op->doc;
    op->docs[1] = (ota_store_doc){OTA_DOC_SETTING, op->target_key, op->target_json};
    op->base.change.docs = op->docs;
    op->base.change.n_docs = 2;
    return 0;
}

static int exec_cmp(const void *a, const void *b)
{
    return memcmp(((const ota_task_exec *)a)->vin, ((const ota_task_exec *)b)->vin, OTA_VIN_LEN);
}

/* The wave of vin in the plan (op->execs sorted by VIN once planned), which its stored
 * execution carries so the store counts per wave (issue 15); -1 without waves or outside. */
static int64_t plan_wave(const create_op *op, const char *vin)
{
    if (!op->waves) {
        return -1;
    }
    ota_task_exec key;
    memset(&key, 0, sizeof key);
    memcpy(key.vin, vin, strnlen(vin, OTA_VIN_LEN));
    const ota_task_exec *x = bsearch(&key, op->execs, op->n_execs, sizeof(key), exec_cmp);
    uint8_t w = x ? ota_task_waves_of(op->waves, (size_t)(x - op->execs)) : OTA_WAVE_NONE;
    return w == OTA_WAVE_NONE ? -1 : w;
}

/* The wave plan over the distinct VINs in the task's (VIN) order. */
static int waves_plan(create_op *op)
{
    size_t n = op->n_execs;
    qsort(op->execs, n, sizeof(*op->execs), exec_cmp); /* the order ota_tasks_add keeps */
    char(*buf)[OTA_VIN_LEN + 1] = malloc((n ? n : 1) * sizeof(*buf));
    const char **vins = malloc((n ? n : 1) * sizeof(*vins));
    bool *acc = malloc(n ? n : 1);
    int rc = buf && vins && acc ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ota_task_exec_vin(&op->execs[i], buf[i]);
        vins[i] = buf[i];
        acc[i] = op->execs[i].state == OTA_EXEC_QUEUED;
    }
    if (rc == 0) {
        rc = ota_task_waves_plan(op->waves, op->id, vins, acc, n);
    }
    free(buf), free(vins), free(acc);
    return rc;
}

/* The change: the task document (and its target) and one execution per distinct VIN. */
static int create_change(create_op *op)
{
    if (op->waves && waves_plan(op) != 0) {
        return -1;
    }
    /* the document of the task as it will be in memory (ota_task_doc_of writes them all);
     * without its VINs, as loaded (the executions hold them; a target's may be 1,000,000,
     * more than a stored document's task member may list) */
    ota_task t = {.rec = op->rec,
                  .created_ms = op->created_ms,
                  .package = op->package,
                  .waves = op->waves,
                  .mwindow = op->mwindow,
                  .end_action = op->end_action,
                  .ramp = op->ramp,
                  .retry = op->retry,
                  .continuous = op->continuous,
                  .jitter_ms = op->jitter_ms};
    t.rec.vins = NULL;
    t.rec.n_vins = 0;
    cJSON *doc = ota_task_doc_of(&t, OTA_TASK_ACTIVE);
    op->json = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    op->recs = calloc(op->n_execs ? op->n_execs : 1, sizeof(*op->recs));
    if (!op->json || !op->recs) {
        return -1;
    }
    for (size_t i = 0, k = 0; i < op->rec.n_vins; i++) {
        ota_reject_code r = (ota_reject_code)op->codes[i];
        if (r == OTA_REJ_DUPLICATE_VIN) {
            continue;
        }
        op->recs[k++] = (ota_exec_rec){.task = op->id,
                                       .vin = op->rec.vins[i],
                                       .state = r ? OTA_EXEC_REJECTED : OTA_EXEC_QUEUED,
                                       .code = r ? ota_reject_name(r) : NULL,
                                       .notified_ms = -1,
                                       .updated_ms = op->created_ms,
                                       .wave = plan_wave(op, op->rec.vins[i])};
    }
    op->doc = (ota_store_doc){OTA_DOC_TASK, op->id, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
    if (op->has_target && target_doc(op) != 0) {
        return -1;
    }
    op->base.change.put_execs = op->recs;
    op->base.change.n_put_execs = op->n_execs;
    return 0;
}

/* Over the 100,000 VINs a request may list (a target only): counts, not lists. */
static cJSON *create_counts(const create_op *op, size_t n)
{
    size_t by[OTA_REJ_SLOTS] = {0};
    for (size_t i = 0; i < n; i++) {
        by[op->codes[i] < OTA_REJ_SLOTS ? op->codes[i] : 0]++;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *rej = cJSON_AddObjectToObject(data, "rejected_counts");
    if (!cJSON_AddStringToObject(data, "id", op->id) || !rej) {
        cJSON_Delete(data);
        return NULL;
    }
    cJSON_AddNumberToObject(data, "accepted_count", (double)by[OTA_REJ_NONE]);
    for (int r = 1; r < OTA_REJ_SLOTS; r++) {
        if (by[r] > 0) {
            cJSON_AddNumberToObject(rej, ota_reject_name((ota_reject_code)r), (double)by[r]);
        }
    }
    return data;
}

/* {id, accepted:[vin...], rejected:[{vin, code}...]} in request order. */
static cJSON *create_answer(const create_op *op, char **vins, size_t n)
{
    if (n > OTA_JSON_TASK_VINS_MAX) {
        return create_counts(op, n);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *acc = cJSON_AddArrayToObject(data, "accepted");
    cJSON *rej = cJSON_AddArrayToObject(data, "rejected");
    if (!cJSON_AddStringToObject(data, "id", op->id) || !acc || !rej) {
        cJSON_Delete(data);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (op->codes[i] == OTA_REJ_NONE) {
            cJSON_AddItemToArray(acc, cJSON_CreateString(vins[i]));
            continue;
        }
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "vin", vins[i]);
        cJSON_AddStringToObject(r, "code", ota_reject_name((ota_reject_code)op->codes[i]));
        cJSON_AddItemToArray(rej, r);
    }
    return data;
}

/* A continuous task keeps its query in memory: the engine matches vehicles that change
 * against it (engine_cont.c). */
static void keep_target(ota_task *task, create_op *op)
{
    if (!task->continuous || !(task->target = malloc(sizeof(*task->target)))) {
        return;
    }
    *task->target = op->target;
    memset(&op->target, 0, sizeof(op->target));
}

static cJSON *create_apply(ota_plugin *p, ota_cmd_op *base)
{
    create_op *op = (create_op *)base;
    char **vins = op->rec.vins; /* the task keeps its definition without them */
    size_t n = op->rec.n_vins;
    op->rec.vins = NULL;
    op->rec.n_vins = 0;
    if (ota_tasks_add(p->tasks, &op->rec, OTA_TASK_ACTIVE, op->created_ms, op->package, op->execs,
                      op->n_execs) == 0) {
        op->execs = NULL; /* taken */
        ota_task *task = ota_tasks_get(p->tasks, op->id);
        if (task && op->waves) {
            task->waves = op->waves;
            op->waves = NULL;
            ota_task_recount(task);
        }
        if (task) {
            task->mwindow = op->mwindow;
            op->mwindow = NULL;
            task->end_action = op->end_action;
            task->ramp = op->ramp;
            task->retry = op->retry;
            task->continuous = op->continuous;
            task->jitter_ms = op->jitter_ms;
            keep_target(task, op);
            ota_task_event(task, "created", task->waves ? 0 : -1, NULL, op->created_ms);
        }
    } else {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: task %s is stored but not in memory "
                             "(out of memory): it is loaded at the next start",
                             op->id);
    }
    cJSON *data = create_answer(op, vins, n);
    ota_json_strings_free(vins, n);
    return data;
}

/* Writer thread: the executions first, in batches of CREATE_BATCH (one transaction each,
 * so neither store holds one huge transaction), then the task document (and its target)
 * with its change log entry: a follower that reads the entry finds every execution stored
 * (MongoDB without a replica set writes a change's log entry before its executions, so
 * one change would not do). A failure in between leaves executions without a task
 * document, which the start-up skips; nothing is applied and the command fails. */
#define CREATE_BATCH 50000

static int create_batches(ota_store *store, ota_catalog_change c, char *err, size_t errlen)
{
    for (size_t k = 0; k < c.n_put_execs; k += CREATE_BATCH) {
        size_t m = c.n_put_execs - k < CREATE_BATCH ? c.n_put_execs - k : CREATE_BATCH;
        ota_catalog_change part = {.put_execs = c.put_execs + k, .n_put_execs = m};
        if (ota_store_apply(store, &part, err, errlen) != 0) {
            return -1;
        }
    }
    c.put_execs = NULL;
    c.n_put_execs = 0;
    return ota_store_apply(store, &c, err, errlen);
}

static int create_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    char why[256] = "";
    if (create_batches(store, base->change, why, sizeof why) != 0) {
        snprintf(err, errlen, "not stored: %s", why);
        return -1;
    }
    return 0;
}

void ota_cmd_create_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    create_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = create_free;
    op->base.apply = create_apply;
    op->base.run = create_run;
    op->created_ms = ota_now_ms();
    if (parse_create(p, cmd, op, err, sizeof(err)) != 0) {
        create_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (check_vins(p, op) != 0 || create_change(op) != 0) {
        create_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- getTask */

/* The id field of a command, which must name a known task; answers when it fails. */
static const ota_task *known_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                  const char *const *allowed)
{
    char err[256];
    const char *id = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return NULL;
    }
    const ota_task *task = ota_tasks_get(p->tasks, id);
    if (!task) {
        ota_cmd_fail(c, "id: unknown task %s", id);
    }
    return task;
}

void ota_cmd_get_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", NULL};
    const ota_task *task = known_task(p, c, cmd, allowed);
    if (!task) {
        return;
    }
    cJSON *data = ota_task_doc(&task->rec, task->state, task->created_ms, task->package);
    if (!data || !cJSON_AddItemToObject(data, "counts", ota_cmd_task_counts(task)) ||
        ota_cmd_rollout_describe(task, data) != 0) {
        cJSON_Delete(data);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    if (task->continuous) {
        cJSON_AddBoolToObject(data, "continuous", true);
    }
    if (task->jitter_ms) {
        cJSON_AddNumberToObject(data, "jitter_ms", (double)task->jitter_ms);
    }
    ota_cmd_ok(c, data);
}

/* ---------------------------------------------------------------- listTaskVehicles */

static cJSON *exec_json(const ota_tasks *t, const ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    ota_task_exec_vin(x, vin);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "vin", vin);
    cJSON_AddStringToObject(o, "state", ota_exec_state_name((ota_exec_state)x->state));
    const char *code = ota_tasks_code_name(t, x->code);
    if (code) {
        cJSON_AddStringToObject(o, "code", code);
    }
    if (x->notified_ms >= 0) {
        cJSON_AddNumberToObject(o, "notified_at", (double)x->notified_ms);
    }
    return o;
}

void ota_cmd_list_task_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", "state", NULL};
    static const char *const states[] = {"queued",    "notified",  "downloading", "installing",
                                         "succeeded", "failed",    "canceled",    "rejected",
                                         "accepted",  "postponed", "declined"};
    char err[256];
    int state = -1;
    const ota_task *task = known_task(p, c, cmd, allowed);
    if (!task) {
        return;
    }
    if (ota_json_get_enum(cmd, "", "state", false, states, OTA_EXEC_STATE_COUNT, &state, err,
                          sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(data, "vehicles");
    ota_task_walk_pos pos = {0}; /* VIN order, late joiners of a continuous task sorted in */
    for (ota_task_exec *x; arr && (x = ota_task_walk(task, &pos)) != NULL;) {
        if (state < 0 || x->state == state) {
            cJSON_AddItemToArray(arr, exec_json(p->tasks, x));
        }
    }
    ota_cmd_ok(c, data);
}

/* ---------------------------------------------------------------- type rules */

typedef struct {
    ota_cmd_op base;
    ota_task_type_rules rules;
    char key[64];
    char *json;
    ota_store_doc doc;
} rules_op;

static void rules_free(ota_cmd_op *base)
{
    rules_op *op = (rules_op *)base;
    ota_task_type_rules_free(&op->rules);
    free(op->json);
    free(op);
}

static cJSON *rules_apply(ota_plugin *p, ota_cmd_op *base)
{
    ota_tasks_set_type_rules(p->tasks, &((rules_op *)base)->rules);
    return NULL;
}

/* The statuses and usages must be words of the closed lists (vocab.h). */
static int check_rule_words(const ota_task_type_rules *r, char *err, size_t errlen)
{
    char key[32];
    for (size_t i = 0; i < r->n_statuses; i++) {
        snprintf(key, sizeof(key), "statuses[%zu]", i);
        if (ota_vocab_check(&OTA_VOCAB_VEHICLE_STATUS, r->statuses[i], "", key, err, errlen)) {
            return -1;
        }
    }
    for (size_t i = 0; i < r->n_usages; i++) {
        snprintf(key, sizeof(key), "usages[%zu]", i);
        if (ota_vocab_check(&OTA_VOCAB_VEHICLE_USAGE, r->usages[i], "", key, err, errlen)) {
            return -1;
        }
    }
    return 0;
}

void ota_cmd_set_task_type_rules(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256];
    rules_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = rules_free;
    op->base.apply = rules_apply;
    if (ota_json_task_type_rules(cmd, "", &op->rules, err, sizeof(err)) != 0 ||
        check_rule_words(&op->rules, err, sizeof(err)) != 0) {
        rules_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *j = ota_json_from_task_type_rules(&op->rules);
    op->json = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!op->json) {
        rules_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    snprintf(op->key, sizeof(op->key), "task_type_rules:%s", ota_task_type_name(op->rules.type));
    op->doc = (ota_store_doc){OTA_DOC_SETTING, op->key, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
    ota_cmd_store(p, c, &op->base);
}

void ota_cmd_get_task_type_rules(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_task_type_rules *rules = ota_tasks_type_rules(p->tasks);
    cJSON *data = cJSON_CreateObject();
    cJSON *all = cJSON_AddObjectToObject(data, "rules");
    for (int i = 0; all && i < OTA_TASK_TYPE_COUNT; i++) {
        ota_task_type_rules r = rules[i];
        r.type = (ota_task_type)i;
        cJSON *o = ota_json_from_task_type_rules(&r);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "type");
        cJSON_AddItemToObject(all, ota_task_type_name((ota_task_type)i), o);
    }
    ota_cmd_ok(c, data);
}

/* The task named by the command's id field (control_query.c), or NULL when it failed
 * (answered). */
const ota_task *ota_cmd_known_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                   const char *const *allowed)
{
    return known_task(p, c, cmd, allowed);
}

int ota_cmd_task_doc_change(ota_cmd_op *base, const char *id, cJSON *d, char **json,
                            ota_store_doc *doc)
{
    *json = d ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    if (!*json) {
        return -1;
    }
    *doc = (ota_store_doc){OTA_DOC_TASK, id, *json};
    base->change.docs = doc;
    base->change.n_docs = 1;
    return 0;
}
