/*
 * otactl_tasks.c — otactl's `task` group: create (createTask), preview (previewTarget),
 * get (getTask), vehicles
 * (listTaskVehicles), cancel (cancelTask), watch (getTask polled) and rules set / get
 * (setTaskTypeRules, getTaskTypeRules).
 *
 * `task watch` polls getTask over one connection every --interval seconds and redraws a
 * progress line on stderr (\r on a terminal, else a line per change) until the task is
 * finished, canceled or aborted; its own --timeout bounds the whole watch, while the
 * global --timeout (given before `task`) still bounds the connect and each answer.
 *
 * `task create` builds the task object from flags (or takes it from --json FILE) and sends
 * it as ONE command, whatever the number of VINs: the task rules judge the VIN list as a
 * whole (duplicates, one task id), so it is not split like the list commands. Only the
 * form is checked here (required flags, numbers, enumerations); the plugin judges the
 * rest and its error is shown as it is.
 */
#include "otactl.h"

#include <math.h> /* isfinite, NAN: macros, no libm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const task_types[] = {"normal",     "forced",     "factory",
                                         "spot_check", "diagnostic", NULL};

static bool one_of(const char *v, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        if (!strcmp(v, names[i])) {
            return true;
        }
    }
    return false;
}

/* ---- task create ---- */

static const char *const create_flags[] = {"name",
                                           "type",
                                           "source",
                                           "model",
                                           "series",
                                           "version",
                                           "vins",
                                           "vins-file",
                                           "start",
                                           "end",
                                           "max-resend",
                                           "rate",
                                           "timeout-min",
                                           "abort-min-executed",
                                           "abort-failure-pct",
                                           "target",
                                           "install-mode",
                                           "install-deadline",
                                           "continuous",
                                           "jitter",
                                           NULL};

/* --json FILE: a task object, or {"task": {...}}. */
static int task_from_file(otactl_ctx *ctx, const otactl_args *a, cJSON **task)
{
    for (int i = 0; create_flags[i]; i++) {
        if (otactl_arg(a, create_flags[i])) {
            return otactl_usage_err(ctx, "--json FILE and --%s cannot be combined",
                                    create_flags[i]);
        }
    }
    cJSON *j = otactl_read_json(ctx, otactl_arg(a, "json"));
    if (!j) {
        return OTACTL_EUSAGE;
    }
    cJSON *inner = cJSON_DetachItemFromObjectCaseSensitive(j, "task");
    if (inner) {
        cJSON_Delete(j);
        j = inner;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return otactl_usage_err(ctx, "%s: expected a task object", otactl_arg(a, "json"));
    }
    *task = j;
    return OTACTL_OK;
}

/* default_name: the name when --name is not given (task preview), or NULL. */
static int add_words(otactl_ctx *ctx, const otactl_args *a, cJSON *t, const char *default_name)
{
    static const char *const required[] = {"name", "type", "model", "series", "version", NULL};
    for (int i = 0; required[i]; i++) {
        const char *v = otactl_arg(a, required[i]);
        v = v || i != 0 ? v : default_name;
        if (!v) {
            return otactl_usage_err(ctx, "--%s is required (or give --json FILE)", required[i]);
        }
        cJSON_AddStringToObject(t, required[i], v);
    }
    if (!one_of(otactl_arg(a, "type"), task_types)) {
        return otactl_usage_err(ctx, "--type: expected normal, forced, factory, spot_check or "
                                     "diagnostic");
    }
    const char *src = otactl_arg(a, "source");
    if (src && strcmp(src, "console") && strcmp(src, "diagnostic_tool")) {
        return otactl_usage_err(ctx, "--source: expected console or diagnostic_tool");
    }
    if (src) {
        cJSON_AddStringToObject(t, "source", src);
    }
    return OTACTL_OK;
}

/* The integer flag --flag as obj[key] when given. */
static int add_number(otactl_ctx *ctx, const otactl_args *a, const char *flag, cJSON *obj,
                      const char *key)
{
    const char *s = otactl_arg(a, flag);
    uint64_t v;
    if (!s) {
        return OTACTL_OK;
    }
    if (otactl_parse_u64(s, &v) != 0 || v > (1ULL << 53)) {
        return otactl_usage_err(ctx, "--%s: expected a non-negative integer, got \"%s\"", flag, s);
    }
    cJSON_AddNumberToObject(obj, key, (double)v);
    return OTACTL_OK;
}

/* A time flag as t[key]: ms since the Unix epoch, or ISO 8601 text that goes to the plugin
 * as it is (the plugin checks both: docs/operator-api.md "Times"). */
static int add_time_as(const otactl_args *a, const char *flag, cJSON *t, const char *key)
{
    const char *s = otactl_arg(a, flag);
    uint64_t v;
    if (s && otactl_parse_u64(s, &v) == 0 && v <= (1ULL << 53)) {
        cJSON_AddNumberToObject(t, key, (double)v);
    } else if (s) {
        cJSON_AddStringToObject(t, key, s);
    }
    return OTACTL_OK;
}

static int add_time(const otactl_args *a, const char *flag, cJSON *t)
{
    return add_time_as(a, flag, t, flag);
}

/* --install-mode / --install-deadline (issue 17): the mode is checked here, the deadline's
 * pairing with time_forced by the plugin (docs/operator-api.md "createTask"). */
static int add_install(otactl_ctx *ctx, const otactl_args *a, cJSON *t)
{
    static const char *const modes[] = {"forced", "soft", "download_only", "time_forced",
                                        NULL};
    const char *m = otactl_arg(a, "install-mode");
    if (m && !one_of(m, modes)) {
        return otactl_usage_err(ctx, "--install-mode: expected forced, soft, download_only or "
                                     "time_forced");
    }
    if (m) {
        cJSON_AddStringToObject(t, "install_mode", m);
    }
    return add_time_as(a, "install-deadline", t, "install_deadline");
}

static int add_numbers(otactl_ctx *ctx, const otactl_args *a, cJSON *t)
{
    int rc = add_time(a, "start", t);
    rc = rc ? rc : add_time(a, "end", t);
    rc = rc ? rc : add_number(ctx, a, "max-resend", t, "max_resend");
    rc = rc ? rc : add_number(ctx, a, "rate", t, "rate");
    rc = rc ? rc : add_number(ctx, a, "timeout-min", t, "timeout_min");
    rc = rc ? rc : add_install(ctx, a, t);
    rc = rc ? rc : add_number(ctx, a, "jitter", t, "jitter_ms");
    if (rc == OTACTL_OK && otactl_flag(a, "continuous")) { /* issue 16: needs --target */
        cJSON_AddBoolToObject(t, "continuous", true);
    }
    bool abort_min = otactl_arg(a, "abort-min-executed"),
         abort_pct = otactl_arg(a, "abort-failure-pct");
    if (rc == OTACTL_OK && abort_min != abort_pct) {
        rc = otactl_usage_err(ctx, "--abort-min-executed and --abort-failure-pct go together");
    }
    if (rc == OTACTL_OK && abort_min) {
        cJSON *ab = cJSON_AddObjectToObject(t, "abort");
        rc = add_number(ctx, a, "abort-min-executed", ab, "min_executed");
        rc = rc ? rc : add_number(ctx, a, "abort-failure-pct", ab, "failure_pct");
    }
    return rc;
}

static int add_vins(otactl_ctx *ctx, const otactl_args *a, cJSON *t)
{
    if (otactl_arg(a, "target")) { /* a query instead of VINs (issue 16) */
        if (otactl_arg(a, "vins") || otactl_arg(a, "vins-file")) {
            return otactl_usage_err(ctx, "--target and --vins/--vins-file cannot be combined");
        }
        cJSON *q = otactl_json_value(ctx, "target", otactl_arg(a, "target"));
        return q && cJSON_AddItemToObject(t, "target", q) ? OTACTL_OK : OTACTL_EUSAGE;
    }
    cJSON *vins = cJSON_AddArrayToObject(t, "vins");
    int rc = otactl_vins_from_args(ctx, a, vins);
    if (rc != OTACTL_OK) {
        return rc;
    }
    if (cJSON_GetArraySize(vins) == 0) {
        return otactl_usage_err(ctx, "no VINs given (--vins V,V... and/or --vins-file FILE, or "
                                     "--target QUERY)");
    }
    return OTACTL_OK;
}

static int task_from_flags(otactl_ctx *ctx, const otactl_args *a, cJSON **task,
                           const char *default_name)
{
    cJSON *t = cJSON_CreateObject();
    int rc = add_words(ctx, a, t, default_name);
    rc = rc ? rc : add_numbers(ctx, a, t);
    rc = rc ? rc : add_vins(ctx, a, t);
    if (rc != OTACTL_OK) {
        cJSON_Delete(t);
        return rc;
    }
    *task = t;
    return OTACTL_OK;
}

/* id, accepted / rejected counts, then one "VIN  CODE" line per rejected VIN. */
static void print_created(const cJSON *data)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "id");
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(data, "rejected"), *r;
    printf("id: %s\naccepted: %d\nrejected: %d\n", cJSON_IsString(id) ? id->valuestring : "?",
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(data, "accepted")),
           cJSON_GetArraySize(rej));
    cJSON_ArrayForEach(r, rej)
    {
        const cJSON *vin = cJSON_GetObjectItemCaseSensitive(r, "vin");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(r, "code");
        if (cJSON_IsString(vin) && cJSON_IsString(code)) {
            printf("  %s  %s\n", vin->valuestring, code->valuestring);
        }
    }
}

static int task_create(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *t = NULL;
    int rc = otactl_arg(a, "json") ? task_from_file(ctx, a, &t) : task_from_flags(ctx, a, &t, NULL);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = otactl_cmd_new("createTask");
    cJSON_AddItemToObject(c, "task", t);
    return otactl_run(ctx, c, print_created);
}

/* ---- task preview (previewTarget) ---- */

/* matched / accepted, then one "CODE  N" line per rule that rejects some. */
static void print_preview(const cJSON *data)
{
    static const char *const keys[] = {"matched", "accepted", "task_error", "too_large", NULL};
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, keys[i]);
        if (cJSON_IsNumber(v)) {
            printf("%s: %.0f\n", keys[i], v->valuedouble);
        } else if (cJSON_IsString(v)) {
            printf("%s: %s\n", keys[i], v->valuestring);
        } else if (cJSON_IsTrue(v)) {
            printf("%s: true\n", keys[i]);
        }
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(data, "rejected"))
    {
        printf("  %s  %.0f\n", r->string, r->valuedouble);
    }
}

/* Only --target (no task flags): how many vehicles match; else the task as createTask
 * would take it (--name may be left out), with what each rule would reject. */
static int task_preview(otactl_ctx *ctx, otactl_args *a)
{
    static const char *const task_words[] = {"name", "type", "model", "series", "version", NULL};
    bool bare = otactl_arg(a, "target") && !otactl_arg(a, "json");
    for (int i = 0; bare && task_words[i]; i++) {
        bare = !otactl_arg(a, task_words[i]);
    }
    cJSON *c = otactl_cmd_new("previewTarget");
    if (bare) {
        cJSON *q = otactl_json_value(ctx, "target", otactl_arg(a, "target"));
        if (!q) {
            cJSON_Delete(c);
            return OTACTL_EUSAGE;
        }
        cJSON_AddItemToObject(c, "target", q);
        return otactl_run(ctx, c, print_preview);
    }
    cJSON *t = NULL;
    int rc =
        otactl_arg(a, "json") ? task_from_file(ctx, a, &t) : task_from_flags(ctx, a, &t, "preview");
    if (rc != OTACTL_OK) {
        cJSON_Delete(c);
        return rc;
    }
    cJSON_AddItemToObject(c, "task", t);
    return otactl_run(ctx, c, print_preview);
}

/* ---- task get, task vehicles ---- */

static cJSON *cmd_id(const char *name, const char *id)
{
    cJSON *c = otactl_cmd_new(name);
    cJSON_AddStringToObject(c, "id", id);
    return c;
}

static int task_get(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_id("getTask", a->pos[0]), otactl_print_kv);
}

/* "VIN  STATE  [CODE]" per vehicle. */
static void print_vehicles(const cJSON *data)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(data, "vehicles"))
    {
        const cJSON *vin = cJSON_GetObjectItemCaseSensitive(v, "vin");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(v, "state");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(v, "code");
        if (cJSON_IsString(vin) && cJSON_IsString(st)) {
            printf("%s  %s%s%s\n", vin->valuestring, st->valuestring,
                   cJSON_IsString(code) ? "  " : "", cJSON_IsString(code) ? code->valuestring : "");
        }
    }
}

static int task_vehicles(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = cmd_id("listTaskVehicles", a->pos[0]);
    if (otactl_arg(a, "state")) {
        cJSON_AddStringToObject(c, "state", otactl_arg(a, "state"));
    }
    return otactl_run(ctx, c, print_vehicles);
}

/* ---- task cancel ---- */

static void print_cancel(const cJSON *data)
{
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(data, "canceled");
    const cJSON *pending = cJSON_GetObjectItemCaseSensitive(data, "pending");
    printf("canceled %d, pending %d (canceled when the vehicles confirm)\n",
           cJSON_IsNumber(now) ? now->valueint : 0,
           cJSON_IsNumber(pending) ? pending->valueint : 0);
}

/* cancelTask {id, vins?}: the whole task, or only the VINs given. */
static int task_cancel(otactl_ctx *ctx, otactl_args *a)
{
    int rc0 = ctx->dry_run ? OTACTL_OK : otactl_task_check_cancelable(ctx, a->pos[0]);
    if (rc0 != OTACTL_OK) {
        return rc0;
    }
    cJSON *c = cmd_id("cancelTask", a->pos[0]);
    if (otactl_arg_count(a, "vins") > 0 || otactl_arg_count(a, "vins-file") > 0) {
        int rc = add_vins(ctx, a, c);
        if (rc != OTACTL_OK) {
            cJSON_Delete(c);
            return rc;
        }
    }
    return otactl_run(ctx, c, print_cancel);
}

static void print_install_now(const cJSON *data)
{
    const cJSON *sent = cJSON_GetObjectItemCaseSensitive(data, "sent");
    printf("install command sent to %d vehicles\n", cJSON_IsNumber(sent) ? sent->valueint : 0);
}

/* installNow {id, vins?}: a download_only task's second command (issue 17). */
static int task_install_now(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = cmd_id("installNow", a->pos[0]);
    if (otactl_arg_count(a, "vins") > 0 || otactl_arg_count(a, "vins-file") > 0) {
        int rc = add_vins(ctx, a, c);
        if (rc != OTACTL_OK) {
            cJSON_Delete(c);
            return rc;
        }
    }
    return otactl_run(ctx, c, print_install_now);
}

/* ---- task watch ---- */

#define WATCH_BAR 20
#define WATCH_MAX_INTERVAL 60.0 /* below the connection's keep-alive (60 s, 1.5x grace) */

static const char *const count_states[] = {"queued",    "notified",  "downloading", "installing",
                                           "succeeded", "failed",    "canceled",    "rejected",
                                           "accepted",  "postponed", "declined",    NULL};

typedef struct {
    double interval; /* seconds between getTask */
    double deadline; /* monotonic seconds; 0: none */
    bool tty;        /* stderr is a terminal: redraw with \r */
    char last[512];  /* the progress line last drawn */
} watch_state;

static void sleep_s(double s)
{
    if (s <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A decimal number of seconds in lo..hi (fractions allowed); 0 on success. */
static int parse_seconds(otactl_ctx *ctx, const char *flag, const char *s, double lo, double hi,
                         double *out)
{
    char *end = NULL;
    double v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        return otactl_usage_err(ctx, "--%s: expected seconds %g..%g, got \"%s\"", flag, lo, hi,
                                s ? s : "");
    }
    *out = v;
    return OTACTL_OK;
}

static int count_of(const cJSON *counts, const char *state)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, state);
    return cJSON_IsNumber(n) ? n->valueint : 0;
}

static const char *task_state(const cJSON *data)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(data, "state");
    return cJSON_IsString(st) ? st->valuestring : "?";
}

static bool task_done(const cJSON *data)
{
    const char *st = task_state(data);
    return !strcmp(st, "finished") || !strcmp(st, "canceled") || !strcmp(st, "aborted");
}

/* "[#####---------------]  3/12  queued 0 notified 4 ...  active" into buf. */
static void progress_line(const cJSON *data, char *buf, size_t cap)
{
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(data, "counts");
    int total = 0;
    for (int i = 0; count_states[i]; i++) {
        total += count_of(counts, count_states[i]);
    }
    int done = count_of(counts, "succeeded") + count_of(counts, "failed") +
               count_of(counts, "canceled") + count_of(counts, "rejected");
    int fill = total > 0 ? (int)((long long)done * WATCH_BAR / total) : 0;
    size_t n = (size_t)snprintf(buf, cap, "[%.*s%.*s] %d/%d ", fill, "####################",
                                WATCH_BAR - fill, "--------------------", done, total);
    for (int i = 0; count_states[i] && n < cap; i++) {
        n += (size_t)snprintf(buf + n, cap - n, " %s %d", count_states[i],
                              count_of(counts, count_states[i]));
    }
    if (n < cap) {
        snprintf(buf + n, cap - n, "  %s", task_state(data));
    }
}

static void draw(otactl_ctx *ctx, watch_state *w, const cJSON *data)
{
    char line[sizeof(w->last)];
    progress_line(data, line, sizeof(line));
    if (ctx->quiet || !strcmp(line, w->last)) {
        return;
    }
    if (w->tty) {
        fprintf(stderr, "\r%s\033[K", line);
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
    snprintf(w->last, sizeof(w->last), "%s", line);
}

/* The final getTask data: JSON, or the state and counts as "key: value" lines. */
static void print_final(const otactl_ctx *ctx, const cJSON *data)
{
    if (ctx->json) {
        otactl_print_json(data);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", task_state(data));
    cJSON_AddItemReferenceToObject(o, "counts", cJSON_GetObjectItemCaseSensitive(data, "counts"));
    otactl_print_kv(o);
    cJSON_Delete(o);
}

/* One getTask; *resp is its checked response (NULL with --dry-run). The wait for the
 * answer is the global --timeout, cut to what is left of the watch. */
static int watch_poll(otactl_ctx *ctx, const watch_state *w, const char *id, cJSON **resp)
{
    int saved = ctx->timeout_s;
    if (w->deadline > 0) {
        double left = w->deadline - otactl_now_s() + 1; /* whole seconds, rounded up */
        ctx->timeout_s = left < 1 ? 1 : left < saved ? (int)left : saved;
    }
    int rc = otactl_request_one(ctx, cmd_id("getTask", id), resp);
    ctx->timeout_s = saved;
    if (rc == OTACTL_OK && *resp) {
        rc = otactl_check_response(ctx, *resp);
    }
    return rc;
}

static int watch_loop(otactl_ctx *ctx, watch_state *w, const char *id)
{
    for (;;) {
        cJSON *resp = NULL;
        int rc = watch_poll(ctx, w, id, &resp);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
        if (rc == OTACTL_OK && resp) {
            draw(ctx, w, data);
        }
        bool done = rc != OTACTL_OK || !resp || task_done(data);
        if (done && rc == OTACTL_OK && resp) {
            if (w->tty && !ctx->quiet) {
                fputc('\n', stderr);
            }
            print_final(ctx, data);
        }
        cJSON_Delete(resp);
        if (done) {
            return rc;
        }
        double now = otactl_now_s();
        if (w->deadline > 0 && now >= w->deadline) {
            if (w->tty && !ctx->quiet) {
                fputc('\n', stderr);
            }
            fprintf(stderr, "Error: %s: task %s still running at the end of --timeout\n",
                    ctx->cmd_name ? ctx->cmd_name : "task watch", id);
            return OTACTL_ECONN;
        }
        sleep_s(w->deadline > 0 && now + w->interval > w->deadline ? w->deadline - now
                                                                   : w->interval);
    }
}

static int task_watch(otactl_ctx *ctx, otactl_args *a)
{
    watch_state w = {.interval = 1, .tty = isatty(STDERR_FILENO) == 1};
    double limit = 0;
    int rc = OTACTL_OK;
    if (otactl_arg(a, "interval")) {
        rc = parse_seconds(ctx, "interval", otactl_arg(a, "interval"), 0.01, WATCH_MAX_INTERVAL,
                           &w.interval);
    }
    if (rc == OTACTL_OK && otactl_arg(a, "timeout")) {
        rc = parse_seconds(ctx, "timeout", otactl_arg(a, "timeout"), 0, 86400 * 365.0, &limit);
    }
    if (rc != OTACTL_OK) {
        return rc;
    }
    w.deadline = limit > 0 ? otactl_now_s() + limit : 0;
    return watch_loop(ctx, &w, a->pos[0]);
}

/* ---- task rules ---- */

/* "a,b,c" as a JSON array of words (empty text: []). */
static cJSON *word_list(const char *text)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = strdup(text ? text : "");
    char *save = NULL;
    for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(w));
    }
    free(copy);
    return arr;
}

static void print_list(const char *what, const cJSON *arr)
{
    const cJSON *w;
    printf("  %s:", what);
    if (cJSON_GetArraySize(arr) == 0) {
        printf(" (any)");
    }
    cJSON_ArrayForEach(w, arr)
    {
        printf(" %s", cJSON_IsString(w) ? w->valuestring : "?");
    }
    printf("\n");
}

static void print_rules(const cJSON *data)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(data, "rules"))
    {
        printf("%s\n", r->string);
        print_list("statuses", cJSON_GetObjectItemCaseSensitive(r, "statuses"));
        print_list("usages", cJSON_GetObjectItemCaseSensitive(r, "usages"));
    }
}

static int task_rules(otactl_ctx *ctx, otactl_args *a)
{
    const char *verb = a->pos[0];
    if (!strcmp(verb, "get") && a->npos == 1) {
        return otactl_run(ctx, otactl_cmd_new("getTaskTypeRules"), print_rules);
    }
    if (strcmp(verb, "set") || a->npos != 2) {
        return otactl_usage_err(ctx, "usage: task rules set TYPE [--statuses a,b] [--usages c,d]"
                                     " | task rules get");
    }
    if (!one_of(a->pos[1], task_types)) {
        return otactl_usage_err(ctx,
                                "unknown task type \"%s\" (normal, forced, factory, "
                                "spot_check, diagnostic)",
                                a->pos[1]);
    }
    cJSON *c = otactl_cmd_new("setTaskTypeRules");
    cJSON_AddStringToObject(c, "type", a->pos[1]);
    cJSON_AddItemToObject(c, "statuses", word_list(otactl_arg(a, "statuses")));
    cJSON_AddItemToObject(c, "usages", word_list(otactl_arg(a, "usages")));
    return otactl_run(ctx, c, otactl_print_nothing);
}

/* ---- the table ---- */

static const otactl_opt create_opts[] = {
    {"json", "FILE",
     "the task object as JSON, or {\"task\": {...}} (instead of the flags; - = stdin)"},
    {"name", "NAME", "the task's name"},
    {"type", "TYPE", "normal, forced, factory, spot_check or diagnostic"},
    {"source", "SOURCE", "console (default) or diagnostic_tool"},
    {"model", "MODEL", "model"},
    {"series", "SERIES", "series"},
    {"version", "VERSION", "the target version (its full package must exist)"},
    {"vins", "VIN,VIN...", "vehicles of the task (repeatable)"},
    {"vins-file", "FILE", "vehicles from FILE (white space / comma separated; - = stdin)"},
    {"target", "JSON|@FILE",
     "instead of VINs: a target query, e.g. '{\"fw_below\":\"2.0\"}' (docs/otactl.md)"},
    {"start", "TIME",
     "not before this time: ISO 8601 (2026-12-08T10:00:00Z, 2026-12-08T18:00:00+08:00) or ms "
     "since the Unix epoch; not in the past"},
    {"end", "TIME", "not after this time (as --start)"},
    {"max-resend", "N", "notices re-sent at most (compensation; default 0)"},
    {"rate", "N", "notices per second (default 0: unlimited)"},
    {"timeout-min", "N", "minutes an upgrade may take before it fails (default 0: none)"},
    {"abort-min-executed", "N", "abort after N finished executions..."},
    {"abort-failure-pct", "P", "...when P% of them failed (1..100)"},
    {"install-mode", "MODE",
     "forced (default), soft (the driver may postpone or decline), download_only (installs "
     "on task install-now) or time_forced (soft until --install-deadline)"},
    {"install-deadline", "TIME", "when a time_forced task becomes forced (as --start)"},
    {"continuous", NULL,
     "with --target: vehicles that match later join, queued ones that stop matching leave"},
    {"jitter", "MS", "spread the notices: each waits 0..MS ms, by VIN (default 0)"},
    {NULL, NULL, NULL},
};

static const otactl_opt vehicles_opts[] = {
    {"state", "STATE",
     "only executions in this state (queued, notified, downloading, "
     "installing, succeeded, failed, canceled, rejected)"},
    {NULL, NULL, NULL},
};

static const otactl_opt cancel_opts[] = {
    {"vins", "VIN,VIN...", "only these vehicles (repeatable; default: the whole task)"},
    {"vins-file", "FILE", "vehicles from FILE (white space / comma separated; - = stdin)"},
    {NULL, NULL, NULL},
};

static const otactl_opt watch_opts[] = {
    {"interval", "SEC", "seconds between two getTask (default 1; fractions allowed; at most 60)"},
    {"timeout", "SEC",
     "give up (exit 3) when the task is not done after SEC seconds (default 0: no limit); "
     "the global --timeout before `task` bounds the connect and each answer (default 10)"},
    {NULL, NULL, NULL},
};

static const otactl_opt rules_opts[] = {
    {"statuses", "a,b...", "vehicle statuses the type accepts (none given: any)"},
    {"usages", "a,b...", "vehicle usages the type accepts (none given: any)"},
    {NULL, NULL, NULL},
};

const otactl_action otactl_task_actions[] = {
    {"create",
     "--json FILE | --name N --type T --model M --series S --version V "
     "(--vins V,V... | --vins-file FILE | --target QUERY) [options]",
     "create a task; prints its id, and the VINs rejected with their codes", create_opts, 0, 0,
     task_create},
    {"preview", "--target QUERY | (same as create; --name optional)",
     "how many vehicles a target matches, and how many each task rule would reject (nothing "
     "is created)",
     create_opts, 0, 0, task_preview},
    {"get", "ID", "show a task, its state and its executions counted per state", NULL, 1, 1,
     task_get},
    {"list",
     "[--state S] [--model M] [--version V] [--from TIME] [--to TIME] [--limit N] "
     "[--cursor C | --all]",
     "tasks, newest first, with their state and counts", otactl_task_list_opts, 0, 0,
     otactl_cmd_task_list},
    {"export", "ID [--format csv|json] [--output FILE]",
     "every vehicle's result: state, attempts, times, error word, versions",
     otactl_task_export_opts, 1, 1, otactl_cmd_task_export},
    {"vehicles", "ID [--state STATE]", "the task's vehicles in VIN order: VIN, state, code",
     vehicles_opts, 1, 1, task_vehicles},
    {"cancel", "ID [--vins V,V... | --vins-file FILE]",
     "cancel a task (or some of its vehicles): queued ones at once, notified ones when the "
     "vehicle confirms",
     cancel_opts, 1, 1, task_cancel},
    {"pause", "ID", "stop notifying a task's vehicles (those notified go on)", NULL, 1, 1,
     otactl_cmd_task_pause},
    {"resume", "ID", "notify a paused task's vehicles again", NULL, 1, 1,
     otactl_cmd_task_resume},
    {"promote", "ID", "start a rollout's next wave now, without waiting for its success "
     "threshold", NULL, 1, 1, otactl_cmd_task_promote},
    {"approve", "ID", "approve a rollout's current wave (wave_approval first or each)", NULL, 1,
     1, otactl_cmd_task_approve},
    {"install-now", "ID [--vins V,V... | --vins-file FILE]",
     "a download_only task: its vehicles (or those given) install what they downloaded",
     cancel_opts, 1, 1, task_install_now},
    {"watch", "ID [--interval SEC] [--timeout SEC]",
     "follow a task until it is finished, canceled or aborted: a progress line on stderr, "
     "the final counts on stdout (--json: the final getTask data); exit 0 when done, 1 "
     "for an unknown task, 3 on connection loss or timeout",
     watch_opts, 1, 1, task_watch},
    {"rules", "set TYPE [--statuses a,b] [--usages c,d] | get",
     "set or show the statuses and usages each task type accepts", rules_opts, 1, 2, task_rules},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};
