/*
 * otactl_query.c — otactl's commands for finding things again (issue 18): `task list`,
 * `task export`, `vehicle list`, `vehicle status`, `vehicle history`, `fleet summary`, and
 * fixing packages (`package update`, `package deprecate`, `package delete`).
 *
 * Lists print one page (--limit) and, on stderr, how to ask for the next (--cursor), or
 * every page with --all. Times print as ISO 8601 UTC (otactl_value_text); --json prints
 * the data as the plugin sent it (ms). Times given on the command line may be ms or ISO
 * 8601 text: they go to the plugin as they are, which checks them (docs/operator-api.md).
 */
#include "otactl.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --flag as obj[key]: a number when it is one, else the text (a time: ISO 8601). */
static void add_num_or_text(const otactl_args *a, const char *flag, cJSON *obj, const char *key)
{
    const char *s = otactl_arg(a, flag);
    uint64_t v;
    if (!s) {
        return;
    }
    if (otactl_parse_u64(s, &v) == 0 && v <= (1ULL << 53)) {
        cJSON_AddNumberToObject(obj, key, (double)v);
    } else {
        cJSON_AddStringToObject(obj, key, s);
    }
}

static void add_text(const otactl_args *a, const char *flag, cJSON *obj, const char *key)
{
    const char *s = otactl_arg(a, flag);
    if (s) {
        cJSON_AddStringToObject(obj, key, s);
    }
}

static cJSON *cmd_id(const char *name, const char *id)
{
    cJSON *c = otactl_cmd_new(name);
    cJSON_AddStringToObject(c, "id", id);
    return c;
}

/* Sends cmd (kept: a copy goes each time) and prints each page with printer; with --all
 * follows next_cursor to the end (the rows of every page printed as they come). */
static int run_pages(otactl_ctx *ctx, const otactl_args *a, cJSON *cmd, otactl_printer printer)
{
    bool all = otactl_flag(a, "all");
    int rc = OTACTL_OK;
    for (;;) {
        cJSON *resp = NULL;
        rc = otactl_request_one(ctx, cJSON_Duplicate(cmd, true), &resp);
        if (rc == OTACTL_OK && resp) {
            rc = otactl_check_response(ctx, resp);
        }
        const cJSON *data = resp ? cJSON_GetObjectItemCaseSensitive(resp, "data") : NULL;
        if (rc != OTACTL_OK || !data) {
            cJSON_Delete(resp);
            break;
        }
        if (ctx->json) {
            otactl_print_json(data);
        } else {
            printer(data);
        }
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(data, "next_cursor");
        if (!cJSON_IsString(next)) {
            cJSON_Delete(resp);
            break;
        }
        if (!all) {
            if (!ctx->quiet) {
                fprintf(stderr, "(more: add --cursor %s, or --all)\n", next->valuestring);
            }
            cJSON_Delete(resp);
            break;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(cmd, "cursor");
        cJSON_AddStringToObject(cmd, "cursor", next->valuestring);
        cJSON_Delete(resp);
    }
    cJSON_Delete(cmd);
    return rc;
}

/* ---- task list ---- */

static void print_tasks(const cJSON *data)
{
    static const char *const titles[] = {"ID",     "NAME",      "TYPE",    "STATE",
                                         "MODEL",  "SERIES",    "VERSION", "CREATED",
                                         "QUEUED", "SUCCEEDED", "FAILED"};
    static const char *const paths[] = {
        "id",           "name",    "type",       "state",         "model",
        "series",       "version", "created_at", "counts.queued", "counts.succeeded",
        "counts.failed"};
    otactl_print_table(cJSON_GetObjectItemCaseSensitive(data, "tasks"), titles, paths, 11);
}

int otactl_cmd_task_list(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("listTasks");
    add_text(a, "state", c, "state");
    add_text(a, "model", c, "model");
    add_text(a, "series", c, "series");
    add_text(a, "version", c, "version");
    add_num_or_text(a, "from", c, "created_from");
    add_num_or_text(a, "to", c, "created_to");
    add_num_or_text(a, "limit", c, "limit");
    add_text(a, "cursor", c, "cursor");
    return run_pages(ctx, a, c, print_tasks);
}

const otactl_opt otactl_task_list_opts[] = {
    {"state", "STATE", "active, canceled, aborted or finished"},
    {"model", "MODEL", "of this model"},
    {"series", "SERIES", "of this series"},
    {"version", "VERSION", "installing this version"},
    {"from", "TIME", "created at or after TIME (ms, or ISO 8601 e.g. 2026-12-08T10:00:00Z)"},
    {"to", "TIME", "created before TIME"},
    {"limit", "N", "tasks per page (1..1000, default 100)"},
    {"cursor", "C", "the page after C (printed at the end of a page)"},
    {"all", NULL, "every page"},
    {NULL, NULL, NULL},
};

/* ---- task cancel: a finished task has nothing to cancel ---- */

int otactl_task_check_cancelable(otactl_ctx *ctx, const char *id)
{
    cJSON *resp = NULL;
    int rc = otactl_request_one(ctx, cmd_id("getTask", id), &resp);
    if (rc == OTACTL_OK && resp) {
        rc = otactl_check_response(ctx, resp);
    }
    const cJSON *st = resp ? cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetObjectItemCaseSensitive(resp, "data"), "state")
                           : NULL;
    if (rc == OTACTL_OK && cJSON_IsString(st) && strcmp(st->valuestring, "active") != 0) {
        fprintf(stderr, "Error: %s: task %s is already %s: nothing to cancel\n",
                ctx->cmd_name ? ctx->cmd_name : "task cancel", id, st->valuestring);
        rc = OTACTL_ECMD;
    }
    cJSON_Delete(resp);
    return rc;
}

/* ---- task export ---- */

static const char *const export_cols[] = {
    "vin", "state",  "code",          "attempts",     "notified_at", "updated_at",
    "fw",  "target", "rxswin_before", "rxswin_after", "rxswin"}; /* RXSWIN lists: items joined
                                                                    (issue 17) */
#define N_EXPORT_COLS 11

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') {
            fputc('"', out);
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

static void write_csv(FILE *out, const cJSON *data)
{
    for (int i = 0; i < N_EXPORT_COLS; i++) {
        fprintf(out, "%s%s", i ? "," : "", export_cols[i]);
    }
    fputc('\n', out);
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(data, "vehicles"))
    {
        for (int i = 0; i < N_EXPORT_COLS; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, export_cols[i]);
            char *t = v ? otactl_value_text(export_cols[i], v) : strdup("");
            if (i) {
                fputc(',', out);
            }
            csv_field(out, t ? t : "");
            free(t);
        }
        fputc('\n', out);
    }
}

static int write_export(otactl_ctx *ctx, const otactl_args *a, const cJSON *data, bool csv)
{
    const char *path = otactl_arg(a, "output");
    FILE *out = path && strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!out) {
        return otactl_usage_err(ctx, "cannot write %s", path);
    }
    if (csv) {
        write_csv(out, data);
    } else {
        char *text = cJSON_Print(data);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
    }
    int bad = ferror(out);
    if (out != stdout) {
        bad |= fclose(out);
    }
    if (bad) {
        fprintf(stderr, "Error: %s: writing %s failed\n", ctx->cmd_name, path ? path : "stdout");
        return OTACTL_ECMD;
    }
    return OTACTL_OK;
}

int otactl_cmd_task_export(otactl_ctx *ctx, otactl_args *a)
{
    const char *fmt = otactl_arg(a, "format") ? otactl_arg(a, "format") : "csv";
    if (strcmp(fmt, "csv") && strcmp(fmt, "json")) {
        return otactl_usage_err(ctx, "--format: expected csv or json, got \"%s\"", fmt);
    }
    cJSON *resp = NULL;
    int rc = otactl_request_one(ctx, cmd_id("exportTask", a->pos[0]), &resp);
    if (rc == OTACTL_OK && resp) {
        rc = otactl_check_response(ctx, resp);
    }
    const cJSON *data = resp ? cJSON_GetObjectItemCaseSensitive(resp, "data") : NULL;
    if (rc == OTACTL_OK && data) {
        rc = write_export(ctx, a, data, !strcmp(fmt, "csv"));
    }
    cJSON_Delete(resp);
    return rc;
}

const otactl_opt otactl_task_export_opts[] = {
    {"format", "csv|json",
     "csv (default: a header row, times as ISO 8601) or json (exportTask's data, ms)"},
    {"output", "FILE", "write to FILE (default: stdout)"},
    {NULL, NULL, NULL},
};

/* ---- vehicle list / status / history ---- */

static bool vins_only;

static void print_vehicle_rows(const cJSON *data)
{
    static const char *const titles[] = {"VIN", "MODEL", "SERIES", "STATUS", "USAGE", "FW"};
    static const char *const paths[] = {"vin", "model", "series", "status", "usage", "fw"};
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(data, "vehicles"), *v;
    if (!vins_only) {
        otactl_print_table(rows, titles, paths, 6);
        return;
    }
    cJSON_ArrayForEach(v, rows)
    {
        const cJSON *vin = cJSON_GetObjectItemCaseSensitive(v, "vin");
        if (cJSON_IsString(vin)) {
            printf("%s\n", vin->valuestring);
        }
    }
}

int otactl_cmd_vehicle_list(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("listVehicles");
    static const char *const words[][2] = {
        {"model", "model"},           {"series", "series"}, {"fw", "fw"},
        {"status", "status"},         {"usage", "usage"},   {"list", "list"},
        {"vin-prefix", "vin_prefix"}, {"cursor", "cursor"},   {"group", "group"}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        add_text(a, words[i][0], c, words[i][1]);
    }
    add_num_or_text(a, "limit", c, "limit");
    vins_only = otactl_flag(a, "vins-only");
    return run_pages(ctx, a, c, print_vehicle_rows);
}

const otactl_opt otactl_vehicle_list_opts[] = {
    {"model", "MODEL", "of this model"},
    {"series", "SERIES", "of this series"},
    {"fw", "VERSION", "with this firmware version"},
    {"status", "STATUS",
     "assembly_offline, ok_offline, certificate_printed, in_stock, sold, "
     "scrapped"},
    {"usage", "USAGE", "retail, fleet, test, rental"},
    {"list", "LIST", "members of a list (blacklist, forced_whitelist, ...)"},
    {"vin-prefix", "PREFIX", "VINs starting with PREFIX"},
    {"group", "GROUP", "members of a group (static or dynamic)"},
    {"limit", "N", "vehicles per page (1..1000, default 100)"},
    {"cursor", "C", "the page after C"},
    {"all", NULL, "every page"},
    {"vins-only", NULL, "one VIN per line (for --vins-file -)"},
    {NULL, NULL, NULL},
};

int otactl_cmd_vehicle_status(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("getVehicleStatus");
    cJSON_AddStringToObject(c, "vin", a->pos[0]);
    return otactl_run(ctx, c, otactl_print_kv);
}

static void print_history(const cJSON *data)
{
    static const char *const titles[] = {"SEQ", "IDX", "KIND",   "TASK",  "TS",
                                         "ECU", "PCT", "STATUS", "ERROR", "FW"};
    static const char *const paths[] = {"seq", "index", "kind",   "task",  "ts",
                                        "ecu", "pct",   "status", "error", "fw"};
    otactl_print_table(cJSON_GetObjectItemCaseSensitive(data, "events"), titles, paths, 10);
}

int otactl_cmd_vehicle_history(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("getVehicleHistory");
    cJSON_AddStringToObject(c, "vin", a->pos[0]);
    add_text(a, "kind", c, "kind");
    add_num_or_text(a, "limit", c, "limit");
    add_text(a, "cursor", c, "cursor");
    return run_pages(ctx, a, c, print_history);
}

const otactl_opt otactl_vehicle_history_opts[] = {
    {"kind", "KIND",
     "only download_progress, upgrade_progress, upgrade_status, command or eeprom_clear"},
    {"limit", "N", "events per page (1..1000, default 100)"},
    {"cursor", "C", "the page after C"},
    {"all", NULL, "every page"},
    {NULL, NULL, NULL},
};

/* ---- fleet summary ---- */

static void print_counts(const char *title, const cJSON *obj)
{
    printf("%s:", title);
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        printf(" %s %d", *m->string ? m->string : "(none)", m->valueint);
    }
    printf("\n");
}

static void print_summary(const cJSON *data)
{
    static const char *const mt[] = {"MODEL", "SERIES", "VEHICLES"};
    static const char *const mp[] = {"model", "series", "vehicles"};
    static const char *const ft[] = {"MODEL", "SERIES", "FW", "VEHICLES"};
    static const char *const fp[] = {"model", "series", "fw", "vehicles"};
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(data, "vehicles");
    printf("vehicles: %d\n\n", cJSON_IsNumber(n) ? n->valueint : 0);
    otactl_print_table(cJSON_GetObjectItemCaseSensitive(data, "by_model"), mt, mp, 3);
    printf("\n");
    otactl_print_table(cJSON_GetObjectItemCaseSensitive(data, "by_firmware"), ft, fp, 4);
    printf("\n");
    print_counts("by status", cJSON_GetObjectItemCaseSensitive(data, "by_status"));
    print_counts("by usage", cJSON_GetObjectItemCaseSensitive(data, "by_usage"));
    print_counts("tasks", cJSON_GetObjectItemCaseSensitive(data, "tasks"));
    print_counts("executions", cJSON_GetObjectItemCaseSensitive(data, "executions"));
}

static int fleet_summary(otactl_ctx *ctx, otactl_args *a)
{
    (void)a;
    return otactl_run(ctx, otactl_cmd_new("getFleetSummary"), print_summary);
}

const otactl_action otactl_fleet_actions[] = {
    {"summary", "", "vehicles by model, firmware, status and usage; tasks and executions by state",
     NULL, 0, 0, fleet_summary},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- package update / deprecate / delete ---- */

static int package_id(otactl_ctx *ctx, const char *s, cJSON *c)
{
    uint64_t id;
    if (otactl_parse_u64(s, &id) != 0 || id == 0) {
        cJSON_Delete(c);
        return otactl_usage_err(ctx, "ID: expected a package id (a positive integer), got \"%s\"",
                                s);
    }
    cJSON_AddNumberToObject(c, "id", (double)id);
    return OTACTL_OK;
}

int otactl_cmd_package_update(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("updatePackage");
    int rc = package_id(ctx, a->pos[0], c);
    if (rc != OTACTL_OK) {
        return rc;
    }
    add_text(a, "baseline", c, "baseline_description");
    rc = otactl_add_pkg_r156(ctx, a, c); /* texts per language, RXSWINs, install mode */
    if (rc != OTACTL_OK) {
        cJSON_Delete(c);
        return rc;
    }
    return otactl_run(ctx, c, otactl_print_package);
}

const otactl_opt otactl_package_update_opts[] = {
    {"baseline", "TEXT", "the baseline description (createTask needs one)"},
    {"prompt", "TEXT", "the prompt shown to the driver"},
    {"result-info", "TEXT", "the result information"},
    {"language", "TAG", "the default language of per-language texts (e.g. en)"},
    {"prompt-lang", "TAG=TEXT", "the prompt in one language (repeatable; issue 17)"},
    {"result-info-lang", "TAG=TEXT", "the result information in one language (repeatable)"},
    {"rxswin", "R79-X,R10-Y", "the RXSWINs the package sets (comma-separated; \"\" clears)"},
    {"install-mode", "MODE",
     "default install mode of its tasks: forced, soft, download_only (none: no default)"},
    {NULL, NULL, NULL},
};

int otactl_cmd_package_deprecate(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("setPackageStatus");
    int rc = package_id(ctx, a->pos[0], c);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON_AddStringToObject(c, "status", "deprecated");
    return otactl_run(ctx, c, otactl_print_nothing);
}

int otactl_cmd_package_delete(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("deletePackage");
    int rc = package_id(ctx, a->pos[0], c);
    return rc == OTACTL_OK ? otactl_run(ctx, c, otactl_print_nothing) : rc;
}
