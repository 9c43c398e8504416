/*
 * control_query.c — finding things again (issue 18, docs/operator-api.md "Finding
 * things"): listTasks, listVehicles, getVehicleStatus, getFleetSummary, exportTask.
 *
 * All are answered at once from memory (catalog, tasks, shadows). The lists page with a
 * limit and an opaque cursor: listTasks newest first (the cursor is the last task id
 * shown; ids grow with creation), listVehicles in VIN order (the cursor is the last VIN
 * shown; a walk of the VIN map keeps only the `limit` smallest VINs after the cursor, so a
 * page costs one pass over the fleet and no sort of it). Filter words of closed lists are
 * checked and a wrong one is answered with the valid words.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"
#include "shadow.h"
#include "target.h"
#include "tasks.h"
#include "vocab.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

/* limit (1..PAGE_MAX, default PAGE_DEFAULT) and cursor (a word, NULL when absent). */
static int get_page(const cJSON *cmd, size_t *limit, const char **cursor, char *err, size_t errlen)
{
    uint64_t l = PAGE_DEFAULT;
    if (ota_json_get_uint(cmd, "", "limit", false, 1, PAGE_MAX, &l, err, errlen) != 0 ||
        ota_json_get_word(cmd, "", "cursor", false, cursor, err, errlen) != 0) {
        return -1;
    }
    *limit = (size_t)l;
    return 0;
}

cJSON *ota_cmd_task_counts(const ota_task *task)
{
    size_t seen[OTA_EXEC_STATE_COUNT];
    ota_task_seen(task, seen);
    cJSON *o = cJSON_CreateObject();
    for (int s = 0; o && s < OTA_EXEC_STATE_COUNT; s++) {
        cJSON_AddNumberToObject(o, ota_exec_state_name((ota_exec_state)s), (double)seen[s]);
    }
    return o;
}

/* TASK_SUMMARY: the task's definition (without VINs), state, created_at, package, counts. */
static cJSON *task_summary(const ota_task *task)
{
    cJSON *doc = ota_task_doc(&task->rec, task->state, task->created_ms, task->package);
    cJSON *o = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "task") : NULL;
    if (!o) {
        cJSON_Delete(doc);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "vins");
    for (cJSON *f = doc->child; f;) { /* state, created_at, package */
        cJSON *next = f->next;
        cJSON_AddItemToObject(o, f->string, cJSON_DetachItemViaPointer(doc, f));
        f = next;
    }
    cJSON_Delete(doc);
    cJSON_AddItemToObject(o, "counts", ota_cmd_task_counts(task));
    return o;
}

/* ---------------------------------------------------------------- listTasks */

typedef struct {
    int state; /* -1: any */
    const char *model, *series, *version;
    int64_t from, to; /* -1: open */
} task_filter;

static int parse_task_filter(const cJSON *cmd, task_filter *f, char *err, size_t errlen)
{
    static const char *const states[] = {"active", "canceled", "aborted", "finished"};
    *f = (task_filter){.state = -1, .from = -1, .to = -1};
    return ota_json_get_enum(cmd, "", "state", false, states, OTA_TASK_STATE_COUNT, &f->state, err,
                             errlen) ||
                   ota_json_get_word(cmd, "", "model", false, &f->model, err, errlen) ||
                   ota_json_get_word(cmd, "", "series", false, &f->series, err, errlen) ||
                   ota_json_get_word(cmd, "", "version", false, &f->version, err, errlen) ||
                   ota_json_get_time(cmd, "", "created_from", false, &f->from, err, errlen) ||
                   ota_json_get_time(cmd, "", "created_to", false, &f->to, err, errlen)
               ? -1
               : 0;
}

static bool word_is(const char *filter, const char *value)
{
    return !filter || (value && strcmp(filter, value) == 0);
}

static bool task_matches(const ota_task *t, const task_filter *f)
{
    return (f->state < 0 || (int)t->state == f->state) && word_is(f->model, t->rec.model) &&
           word_is(f->series, t->rec.series) && word_is(f->version, t->rec.version) &&
           (f->from < 0 || t->created_ms >= f->from) && (f->to < 0 || t->created_ms < f->to);
}

/* Index in all[] below which the next page starts (n for the first page), or -1. */
static long task_page_start(ota_task **all, long n, const char *cursor)
{
    if (!cursor) {
        return n;
    }
    for (long i = 0; i < n; i++) {
        if (strcmp(all[i]->rec.id, cursor) == 0) {
            return i;
        }
    }
    return -1;
}

static void list_tasks_answer(ota_cmd *c, ota_task **all, long n, const task_filter *f, long start,
                              size_t limit)
{
    cJSON *data = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(data, "tasks");
    size_t total = 0, shown = 0;
    const char *last = NULL;
    bool more = false;
    for (long i = n; i-- > 0;) {
        if (!task_matches(all[i], f)) {
            continue;
        }
        total++;
        if (i >= start) {
            continue;
        }
        if (shown == limit) {
            more = true;
            continue;
        }
        cJSON_AddItemToArray(arr, task_summary(all[i]));
        last = all[i]->rec.id;
        shown++;
    }
    cJSON_AddNumberToObject(data, "total", (double)total);
    if (more && last) {
        cJSON_AddStringToObject(data, "next_cursor", last);
    }
    ota_cmd_ok(c, data);
}

void ota_cmd_list_tasks(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"state",   "model",        "series",
                                          "version", "created_from", "created_to",
                                          "limit",   "cursor",       NULL};
    char err[512];
    task_filter f;
    size_t limit;
    const char *cursor = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        parse_task_filter(cmd, &f, err, sizeof(err)) != 0 ||
        get_page(cmd, &limit, &cursor, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_task **all = NULL;
    long n = ota_tasks_list(p->tasks, &all);
    long start = n < 0 ? -1 : task_page_start(all, n, cursor);
    if (n < 0) {
        ota_cmd_fail(c, "out of memory");
    } else if (start < 0) {
        ota_cmd_fail(c, "cursor: unknown task %s", cursor);
    } else {
        list_tasks_answer(c, all, n, &f, start, limit);
    }
    free(all);
}

/* ---------------------------------------------------------------- listVehicles */

typedef struct {
    const char *model, *series, *fw, *status, *usage, *prefix;
    int list;                /* -1: any */
    ota_target_match *group; /* NULL: any; else members of that group (static or dynamic) */
    char *group_name[1];     /* the query it was compiled from: the match points into it */
    ota_target group_q;
    const char *cursor;
    size_t limit;
    /* the page being gathered: the `limit` smallest matching VINs after the cursor */
    const ota_vehicle **page;
    size_t n_page;
    size_t total;
    bool more;
    const ota_catalog *cat;
} vehicle_walk;

/* The group filter: the group compiled like a target naming it, so a dynamic group's
 * query applies as it does for tasks. 0, or -1 with err (unknown group). */
static int compile_group(vehicle_walk *w, const char *group, char *err, size_t errlen)
{
    w->group_name[0] = (char *)group;
    w->group_q = (ota_target){.groups = w->group_name, .n_groups = 1};
    return ota_target_compile(w->cat, &w->group_q, NULL, NULL, "", &w->group, err, errlen);
}

static int parse_vehicle_filter(const cJSON *cmd, vehicle_walk *w, char *err, size_t errlen)
{
    const char *list = NULL, *group = NULL;
    w->list = -1;
    if (ota_json_get_word(cmd, "", "model", false, &w->model, err, errlen) ||
        ota_json_get_word(cmd, "", "series", false, &w->series, err, errlen) ||
        ota_json_get_word(cmd, "", "fw", false, &w->fw, err, errlen) ||
        ota_json_get_word(cmd, "", "status", false, &w->status, err, errlen) ||
        ota_json_get_word(cmd, "", "usage", false, &w->usage, err, errlen) ||
        ota_json_get_word(cmd, "", "list", false, &list, err, errlen) ||
        ota_json_get_word(cmd, "", "vin_prefix", false, &w->prefix, err, errlen) ||
        ota_json_get_word(cmd, "", "group", false, &group, err, errlen) ||
        get_page(cmd, &w->limit, &w->cursor, err, errlen)) {
        return -1;
    }
    if ((w->status &&
         ota_vocab_check(&OTA_VOCAB_VEHICLE_STATUS, w->status, "", "status", err, errlen)) ||
        (w->usage &&
         ota_vocab_check(&OTA_VOCAB_VEHICLE_USAGE, w->usage, "", "usage", err, errlen))) {
        return -1;
    }
    if (w->prefix && strlen(w->prefix) > OTA_VIN_LEN) {
        return ota_json_errf(err, errlen, "", "vin_prefix", "longer than a VIN");
    }
    if (list && (w->list = ota_list_from_name(list)) < 0) {
        return ota_json_errf(err, errlen, "", "list",
                             "\"%s\" is not a list (blacklist, forced_whitelist, "
                             "same_version_whitelist, downgrade_whitelist)",
                             list);
    }
    return group ? compile_group(w, group, err, errlen) : 0;
}

static bool vehicle_matches(const vehicle_walk *w, const ota_vehicle *v)
{
    return word_is(w->model, v->model) && word_is(w->series, v->series) && word_is(w->fw, v->fw) &&
           word_is(w->status, v->status) && word_is(w->usage, v->usage) &&
           (!w->prefix || strncmp(v->vin, w->prefix, strlen(w->prefix)) == 0) &&
           (w->list < 0 || ota_catalog_listed(w->cat, (ota_list_kind)w->list, v->vin)) &&
           (!w->group || ota_target_matches(w->group, v));
}

/* Keeps v among the page's `limit` smallest VINs (sorted insertion). */
static void page_offer(vehicle_walk *w, const ota_vehicle *v)
{
    if (w->n_page == w->limit && strcmp(v->vin, w->page[w->n_page - 1]->vin) > 0) {
        w->more = true;
        return;
    }
    size_t lo = 0, hi = w->n_page;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(w->page[mid]->vin, v->vin) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (w->n_page == w->limit) {
        w->more = true; /* the largest falls off */
        w->n_page--;
    }
    memmove(w->page + lo + 1, w->page + lo, (w->n_page - lo) * sizeof(*w->page));
    w->page[lo] = v;
    w->n_page++;
}

static void vehicle_visit(void *ctx, const ota_vehicle *v)
{
    vehicle_walk *w = ctx;
    if (!vehicle_matches(w, v)) {
        return;
    }
    w->total++;
    if (!w->cursor || strcmp(v->vin, w->cursor) > 0) {
        page_offer(w, v);
    }
}

static cJSON *vehicle_json(const ota_catalog *cat, const ota_vehicle *v)
{
    ota_vehicle_rec rec;
    if (ota_catalog_vehicle_rec(cat, v, &rec) != 0) {
        return NULL;
    }
    cJSON *j = ota_json_from_vehicle(&rec);
    ota_vehicle_rec_free(&rec);
    return j;
}

void ota_cmd_list_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"model",      "series", "fw",    "status",
                                          "usage",      "list",   "group", "vin_prefix",
                                          "limit",      "cursor", NULL};
    char err[512];
    vehicle_walk w = {.cat = p->catalog};
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        parse_vehicle_filter(cmd, &w, err, sizeof(err)) != 0) {
        ota_target_match_free(w.group);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    w.page = malloc(w.limit * sizeof(*w.page));
    if (!w.page) {
        ota_target_match_free(w.group);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_catalog_vehicles_each(p->catalog, vehicle_visit, &w);
    cJSON *data = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(data, "vehicles");
    for (size_t i = 0; i < w.n_page; i++) {
        cJSON_AddItemToArray(arr, vehicle_json(p->catalog, w.page[i]));
    }
    cJSON_AddNumberToObject(data, "total", (double)w.total);
    if (w.more && w.n_page > 0) {
        cJSON_AddStringToObject(data, "next_cursor", w.page[w.n_page - 1]->vin);
    }
    free(w.page);
    ota_target_match_free(w.group);
    ota_cmd_ok(c, data);
}

/* ---------------------------------------------------------------- getVehicleStatus */

static bool exec_is_current(const ota_task *t, const ota_task_exec *x)
{
    return t->state == OTA_TASK_ACTIVE && x->state <= OTA_EXEC_INSTALLING;
}

/* state, code?, then the attempt fields: resends (status) or attempts (export),
 * notified_at?, updated_at. */
static void add_exec_fields(cJSON *o, const ota_tasks *tasks, const ota_task_exec *x, bool attempts)
{
    cJSON_AddStringToObject(o, "state", ota_exec_state_name((ota_exec_state)x->state));
    const char *code = ota_tasks_code_name(tasks, x->code);
    if (code) {
        cJSON_AddStringToObject(o, "code", code);
    }
    if (attempts) {
        cJSON_AddNumberToObject(o, "attempts", x->notified_ms >= 0 ? 1.0 + x->resends : 0.0);
    } else {
        cJSON_AddNumberToObject(o, "resends", x->resends);
    }
    if (x->notified_ms >= 0) {
        cJSON_AddNumberToObject(o, "notified_at", (double)x->notified_ms);
    }
    cJSON_AddNumberToObject(o, "updated_at", (double)x->changed_ms);
}

static cJSON *execution_json(const ota_tasks *tasks, const ota_task *t, const ota_task_exec *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", t->rec.id);
    cJSON_AddStringToObject(o, "task_state", ota_task_state_name(t->state));
    cJSON_AddStringToObject(o, "version", t->rec.version);
    add_exec_fields(o, tasks, x, false);
    return o;
}

static cJSON *last_error_json(const ota_tasks *tasks, const ota_task *t, const ota_task_exec *x)
{
    if (!t) {
        return cJSON_CreateNull();
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", t->rec.id);
    const char *code = ota_tasks_code_name(tasks, x->code);
    if (code) {
        cJSON_AddStringToObject(o, "code", code);
    } else {
        cJSON_AddNullToObject(o, "code");
    }
    cJSON_AddNumberToObject(o, "at", (double)x->changed_ms);
    return o;
}

/* current, past (newest task first) and last_error of vin, into data. */
static void add_executions(ota_plugin *p, const char *vin, cJSON *data)
{
    cJSON *cur = cJSON_AddArrayToObject(data, "current");
    cJSON *past = cJSON_AddArrayToObject(data, "past");
    const ota_task *err_task = NULL;
    const ota_task_exec *err_exec = NULL;
    ota_task **all = NULL;
    long n = ota_tasks_list(p->tasks, &all);
    for (long i = n; i-- > 0;) {
        const ota_task_exec *x = ota_task_find_exec(all[i], vin);
        if (!x) {
            continue;
        }
        cJSON_AddItemToArray(exec_is_current(all[i], x) ? cur : past,
                             execution_json(p->tasks, all[i], x));
        if (x->state == OTA_EXEC_FAILED && (!err_exec || x->changed_ms > err_exec->changed_ms)) {
            err_task = all[i];
            err_exec = x;
        }
    }
    free(all);
    cJSON_AddItemToObject(data, "last_error", last_error_json(p->tasks, err_task, err_exec));
}

static cJSON *latest_status_json(ota_plugin *p, const char *vin)
{
    ota_rules_env env = ota_tasks_rules_env(p->tasks);
    const ota_upgrade_state *st = env.latest ? env.latest(env.latest_ctx, vin) : NULL;
    if (!st) {
        return cJSON_CreateNull();
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", st->status ? st->status : "");
    if (st->trigger) {
        cJSON_AddStringToObject(o, "trigger", st->trigger);
    }
    if (st->conditions) { /* the pre-conditions it waits for (issue 17) */
        cJSON *a = cJSON_AddArrayToObject(o, "failed_conditions");
        for (unsigned b = 0; a && b < OTA_PRE_COUNT; b++) {
            if (st->conditions >> b & 1) {
                cJSON_AddItemToArray(a, cJSON_CreateString(ota_precondition_name(b)));
            }
        }
    }
    return o;
}

void ota_cmd_get_vehicle_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"vin", NULL};
    char err[256];
    const char *vin = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_vin(cmd, "", "vin", true, &vin, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_vehicle *v = ota_catalog_vehicle(p->catalog, vin);
    if (!v) {
        ota_cmd_fail(c, "vin: unknown vehicle %s", vin);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "vehicle", vehicle_json(p->catalog, v));
    cJSON *shadow = ota_shadow_json(p, vin);
    cJSON_AddItemToObject(data, "shadow", shadow ? shadow : cJSON_CreateNull());
    cJSON_AddItemToObject(data, "latest_status", latest_status_json(p, vin));
    add_executions(p, vin, data);
    ota_cmd_ok(c, data);
}

/* ---------------------------------------------------------------- getFleetSummary */

/* Counts by key; kept in a small array (a fleet has few models, firmwares, statuses). */
typedef struct {
    const char *a, *b, *c; /* interned: compared by pointer */
    size_t n;
} tally_row;

typedef struct {
    tally_row *rows;
    size_t n, cap;
    bool oom;
} tally;

static void tally_add(tally *t, const char *a, const char *b, const char *c)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->rows[i].a == a && t->rows[i].b == b && t->rows[i].c == c) {
            t->rows[i].n++;
            return;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tally_row *r = realloc(t->rows, cap * sizeof(*r));
        if (!r) {
            t->oom = true;
            return;
        }
        t->rows = r;
        t->cap = cap;
    }
    t->rows[t->n++] = (tally_row){a, b, c, 1};
}

static int str_cmp0(const char *x, const char *y)
{
    return strcmp(x ? x : "", y ? y : "");
}

static int row_cmp(const void *x, const void *y)
{
    const tally_row *r = x, *s = y;
    int d = str_cmp0(r->a, s->a);
    d = d ? d : str_cmp0(r->b, s->b);
    return d ? d : str_cmp0(r->c, s->c);
}

typedef struct {
    tally models, firmwares, statuses, usages;
} fleet_tally;

static void fleet_visit(void *ctx, const ota_vehicle *v)
{
    fleet_tally *f = ctx;
    tally_add(&f->models, v->model, v->series, NULL);
    tally_add(&f->firmwares, v->model, v->series, v->fw);
    tally_add(&f->statuses, v->status, NULL, NULL);
    tally_add(&f->usages, v->usage, NULL, NULL);
}

/* [{model, series, (fw,) vehicles}] sorted. */
static cJSON *model_rows(tally *t, bool with_fw)
{
    if (t->n > 0) /* qsort(NULL, 0) is undefined (UBSan) */
        qsort(t->rows, t->n, sizeof(*t->rows), row_cmp);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < t->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", t->rows[i].a ? t->rows[i].a : "");
        cJSON_AddStringToObject(o, "series", t->rows[i].b ? t->rows[i].b : "");
        if (with_fw) {
            cJSON_AddStringToObject(o, "fw", t->rows[i].c ? t->rows[i].c : "");
        }
        cJSON_AddNumberToObject(o, "vehicles", (double)t->rows[i].n);
        cJSON_AddItemToArray(arr, o);
    }
    free(t->rows);
    return arr;
}

static cJSON *word_counts(tally *t)
{
    if (t->n > 0) /* qsort(NULL, 0) is undefined (UBSan) */
        qsort(t->rows, t->n, sizeof(*t->rows), row_cmp);
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < t->n; i++) {
        cJSON_AddNumberToObject(o, t->rows[i].a ? t->rows[i].a : "", (double)t->rows[i].n);
    }
    free(t->rows);
    return o;
}

static void add_task_counts(ota_plugin *p, cJSON *data)
{
    size_t by_state[OTA_TASK_STATE_COUNT] = {0}, execs[OTA_EXEC_STATE_COUNT] = {0};
    ota_task **all = NULL;
    long n = ota_tasks_list(p->tasks, &all);
    for (long i = 0; i < n; i++) {
        if ((unsigned)all[i]->state < OTA_TASK_STATE_COUNT) {
            by_state[all[i]->state]++;
        }
        for (int s = 0; s < OTA_EXEC_STATE_COUNT; s++) {
            execs[s] += all[i]->count[s];
        }
    }
    free(all);
    cJSON *t = cJSON_AddObjectToObject(data, "tasks");
    for (int s = 0; t && s < OTA_TASK_STATE_COUNT; s++) {
        cJSON_AddNumberToObject(t, ota_task_state_name((ota_task_state)s), (double)by_state[s]);
    }
    cJSON *e = cJSON_AddObjectToObject(data, "executions");
    for (int s = 0; e && s < OTA_EXEC_STATE_COUNT; s++) {
        cJSON_AddNumberToObject(e, ota_exec_state_name((ota_exec_state)s), (double)execs[s]);
    }
}

void ota_cmd_get_fleet_summary(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    fleet_tally f = {0};
    ota_catalog_vehicles_each(p->catalog, fleet_visit, &f);
    bool oom = f.models.oom || f.firmwares.oom || f.statuses.oom || f.usages.oom;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "vehicles", (double)ota_catalog_vehicle_count(p->catalog));
    cJSON_AddItemToObject(data, "by_model", model_rows(&f.models, false));
    cJSON_AddItemToObject(data, "by_firmware", model_rows(&f.firmwares, true));
    cJSON_AddItemToObject(data, "by_status", word_counts(&f.statuses));
    cJSON_AddItemToObject(data, "by_usage", word_counts(&f.usages));
    add_task_counts(p, data);
    if (oom) {
        cJSON_Delete(data);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_ok(c, data);
}

/* ---------------------------------------------------------------- exportTask */

static cJSON *result_json(ota_plugin *p, const ota_task *t, const ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    memcpy(vin, x->vin, OTA_VIN_LEN);
    vin[OTA_VIN_LEN] = '\0';
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "vin", vin);
    add_exec_fields(o, p->tasks, x, true);
    const ota_vehicle *v = ota_catalog_vehicle(p->catalog, vin);
    if (v && v->fw) {
        cJSON_AddStringToObject(o, "fw", v->fw);
    }
    cJSON_AddStringToObject(o, "target", t->rec.version);
    /* R156 (issue 17): the vehicle's RXSWINs now, and what this task's commit changed */
    ota_json_add_rxswin(o, "rxswin", v ? ota_catalog_vehicle_rxswin(p->catalog, v) : NULL);
    const ota_rxswin_change *ch = ota_catalog_rxswin_change(p->catalog, t->rec.id, vin);
    if (ch) {
        ota_json_add_rxswin(o, "rxswin_before", ch->before ? ch->before : "");
        ota_json_add_rxswin(o, "rxswin_after", ch->after ? ch->after : "");
    }
    return o;
}

void ota_cmd_export_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", NULL};
    const ota_task *t = ota_cmd_known_task(p, c, cmd, allowed);
    if (!t) {
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "task", task_summary(t));
    cJSON *arr = cJSON_AddArrayToObject(data, "vehicles");
    ota_task_walk_pos pos = {0}; /* VIN order, a continuous task's joiners sorted in */
    for (const ota_task_exec *x; arr && (x = ota_task_walk(t, &pos)) != NULL;) {
        cJSON_AddItemToArray(arr, result_json(p, t, x));
    }
    ota_cmd_ok(c, data);
}
