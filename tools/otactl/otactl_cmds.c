/*
 * otactl_cmds.c — otactl's command table: every subcommand (`otactl GROUP ACTION ...`),
 * its options and help, and the handlers that turn arguments into one operator API
 * command and print its answer.
 *
 * Layout follows mosquitto_ctrl's dynsec module: a group (vehicle, model, package, file,
 * strategy, list, task) with actions, each action one operator command; `stats` and `raw`
 * are groups without actions. Handlers that need more than one request (import, upload,
 * batched VIN lists) and the `task` group live in their own files.
 */
#include "otactl.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIN_BATCH 10000 /* the operator API takes at most 10000 VINs per command */

typedef otactl_action action;

typedef struct {
    const char *name;
    const char *summary;
    const action *actions;
} group;

/* ---- running one command ---- */

int otactl_check_response(const otactl_ctx *ctx, const cJSON *resp)
{
    (void)ctx;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (!err) {
        return OTACTL_OK;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(resp, "command");
    fprintf(stderr, "Error: %s: %s\n",
            cJSON_IsString(name) && *name->valuestring ? name->valuestring : "request",
            cJSON_IsString(err) ? err->valuestring : "(error without text)");
    return OTACTL_ECMD;
}

int otactl_run(otactl_ctx *ctx, cJSON *cmd, otactl_printer printer)
{
    cJSON *resp = NULL;
    int rc = otactl_request_one(ctx, cmd, &resp);
    if (rc == OTACTL_OK && resp) {
        rc = otactl_check_response(ctx, resp);
    }
    if (rc == OTACTL_OK && resp) {
        cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
        if (!data) {
            data = cJSON_AddObjectToObject(resp, "data");
        }
        if (ctx->json) {
            otactl_print_json(data);
        } else {
            printer(data);
        }
    }
    cJSON_Delete(resp);
    return rc;
}

/* A command with string members given as name/value pairs (NULL-terminated). */
static cJSON *cmd_with(const char *name, ...)
{
    cJSON *c = otactl_cmd_new(name);
    va_list ap;
    va_start(ap, name);
    for (const char *k; (k = va_arg(ap, const char *));) {
        cJSON_AddStringToObject(c, k, va_arg(ap, const char *));
    }
    va_end(ap);
    return c;
}

static int parse_id(otactl_ctx *ctx, const char *s, double *id)
{
    uint64_t v;
    if (otactl_parse_u64(s, &v) != 0 || v == 0 || v > (1ULL << 53)) {
        return otactl_usage_err(ctx, "expected a package id (1, 2, ...), got \"%s\"", s);
    }
    *id = (double)v;
    return OTACTL_OK;
}

static int parse_sha(otactl_ctx *ctx, const char *s, char out[65])
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n && n == 64; i++) {
        if (!isxdigit((unsigned char)s[i])) {
            n = 0;
        }
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    if (n != 64) {
        return otactl_usage_err(ctx, "expected a SHA-256 (64 hex characters), got \"%s\"", s);
    }
    out[64] = '\0';
    return OTACTL_OK;
}

static int parse_batch(otactl_ctx *ctx, const otactl_args *a, size_t dflt, size_t *batch)
{
    const char *s = otactl_arg(a, "batch");
    uint64_t v = dflt;
    if (s && (otactl_parse_u64(s, &v) != 0 || v < 1 || v > VIN_BATCH)) {
        return otactl_usage_err(ctx, "--batch: expected 1..%d, got \"%s\"", VIN_BATCH, s);
    }
    *batch = (size_t)v;
    return OTACTL_OK;
}

/* ---- vehicle ---- */

static int vehicle_upsert(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *v;
    int rc = otactl_build_vehicle(ctx, a, &v);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = otactl_cmd_new("upsertVehicles");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "vehicles"), v);
    return otactl_run(ctx, c, otactl_print_kv);
}

static int vehicle_get(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_with("getVehicle", "vin", a->pos[0], NULL), otactl_print_vehicle);
}

static int vehicle_delete(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_with("deleteVehicle", "vin", a->pos[0], NULL), otactl_print_nothing);
}

static int vehicle_reset_seq(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_with("resetVehicleSeq", "vin", a->pos[0], NULL), otactl_print_kv);
}

static const otactl_opt vehicle_upsert_opts[] = {
    {"vin", "VIN", "the vehicle's VIN (17 characters, ISO 3779)"},
    {"model", "MODEL", "model (declared with `model set`)"},
    {"series", "SERIES", "series"},
    {"status", "STATUS", "assembly_offline, ok_offline, certificate_printed, in_stock, sold, ..."},
    {"usage", "USAGE", "retail, fleet, test, ..."},
    {"platform", "PLATFORM", "platform (optional)"},
    {"sold", NULL, "the vehicle is sold"},
    {"activated", NULL, "the vehicle is activated"},
    {"no-passenger", NULL, "not a passenger car"},
    {"config-word", "WORD", "configuration word"},
    {"fw", "VERSION", "current firmware version"},
    {"public-key", "HEX", "X25519 public key, 64 hex characters"},
    {"rxswin", "R79-X,R10-Y", "its current RXSWINs (\"\" clears; absent: kept as stored)"},
    {NULL, NULL, NULL},
};

static const otactl_opt vehicle_import_opts[] = {
    {"batch", "N", "vehicles per upsertVehicles command (1..10000, default 5000)"},
    {NULL, NULL, NULL},
};

static const action vehicle_actions[] = {
    {"upsert", "--vin VIN --model M --series S --status ST --usage U [options]",
     "create or replace a vehicle", vehicle_upsert_opts, 0, 0, vehicle_upsert},
    {"import", "FILE.csv|FILE.json [--batch N]",
     "bulk upsert: CSV with a header row of vehicle fields, or a JSON array of vehicles",
     vehicle_import_opts, 1, 1, otactl_cmd_vehicle_import},
    {"get", "VIN", "show a vehicle", NULL, 1, 1, vehicle_get},
    {"delete", "VIN", "delete a vehicle", NULL, 1, 1, vehicle_delete},
    {"list", "[--model M] [--status ST] [--vin-prefix P] ... [--limit N] [--cursor C | --all]",
     "find vehicles by model, series, firmware, status, usage, list, VIN prefix (VIN order)",
     otactl_vehicle_list_opts, 0, 0, otactl_cmd_vehicle_list},
    {"status", "VIN", "a vehicle's shadow, current and past executions, latest status, last error",
     NULL, 1, 1, otactl_cmd_vehicle_status},
    {"history", "VIN [--kind K] [--limit N] [--cursor C | --all]",
     "the vehicle's stored report events, newest first", otactl_vehicle_history_opts, 1, 1,
     otactl_cmd_vehicle_history},
    {"reset-seq", "VIN",
     "a replaced telematics unit starts its report seq again: take its next report whatever "
     "its seq",
     NULL, 1, 1, vehicle_reset_seq},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- model ---- */

static int model_set(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c;
    int rc = otactl_build_model(ctx, a, &c);
    return rc == OTACTL_OK ? otactl_run(ctx, c, otactl_print_nothing) : rc;
}

static int model_get(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_with("getModel", "model", a->pos[0], "series", a->pos[1], NULL),
                      otactl_print_model);
}

static const otactl_opt model_set_opts[] = {
    {"model", "MODEL", "model"},
    {"series", "SERIES", "series"},
    {"config-word", NULL, "the model supports configuration words"},
    {"ecu", "ECU[,ECU...]", "an ECU of the model (repeatable)"},
    {"ignore", "BIT:ECU[,ECU...]", "ECUs skipped when config-word bit BIT is set (repeatable)"},
    {NULL, NULL, NULL},
};

static const action model_actions[] = {
    {"set", "--model M --series S [--config-word] [--ecu E]... [--ignore BIT:ECU,ECU]...",
     "declare a model/series and its ECUs", model_set_opts, 0, 0, model_set},
    {"get", "MODEL SERIES", "show a model/series", NULL, 2, 2, model_get},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- package ---- */

static int package_add(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *p;
    int rc = otactl_build_package(ctx, a, &p);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = otactl_cmd_new("addPackage");
    cJSON_AddItemToObject(c, "package", p);
    return otactl_run(ctx, c, otactl_print_kv);
}

static int package_status(otactl_ctx *ctx, otactl_args *a)
{
    double id = 0;
    const char *st = a->pos[1];
    int rc = parse_id(ctx, a->pos[0], &id);
    if (rc == OTACTL_OK && strcmp(st, "draft") && strcmp(st, "verified") &&
        strcmp(st, "released")) {
        rc = otactl_usage_err(ctx, "status must be draft, verified or released, got \"%s\"", st);
    }
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = cmd_with("setPackageStatus", "status", st, NULL);
    cJSON_AddNumberToObject(c, "id", id);
    return otactl_run(ctx, c, otactl_print_nothing);
}

static int package_get(otactl_ctx *ctx, otactl_args *a)
{
    double id = 0;
    int rc = parse_id(ctx, a->pos[0], &id);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = otactl_cmd_new("getPackage");
    cJSON_AddNumberToObject(c, "id", id);
    return otactl_run(ctx, c, otactl_print_package);
}

static int package_list(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("listPackages");
    if (otactl_arg(a, "model")) {
        cJSON_AddStringToObject(c, "model", otactl_arg(a, "model"));
    }
    if (otactl_arg(a, "series")) {
        cJSON_AddStringToObject(c, "series", otactl_arg(a, "series"));
    }
    return otactl_run(ctx, c, otactl_print_packages);
}

static int package_max(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = cmd_with("maxVersion", "model", a->pos[0], "series", a->pos[1], NULL);
    if (otactl_flag(a, "released")) {
        cJSON_AddTrueToObject(c, "released");
    }
    return otactl_run(ctx, c, otactl_print_kv);
}

static int package_version(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(
        ctx,
        cmd_with("getVersion", "model", a->pos[0], "series", a->pos[1], "version", a->pos[2], NULL),
        otactl_print_package);
}

static const otactl_opt package_add_opts[] = {
    {"json", "FILE", "the package object as JSON (instead of the flags below; - = stdin)"},
    {"model", "MODEL", "model"},
    {"series", "SERIES", "series"},
    {"version", "VERSION", "the version the package installs"},
    {"kind", "full|delta", "full (default) or delta"},
    {"from", "VERSION", "delta: the version it upgrades from"},
    {"baseline", "TEXT", "baseline description"},
    {"prompt", "TEXT", "prompt shown to the user"},
    {"result-info", "TEXT", "result information"},
    {"language", "TAG", "the default language of per-language texts (e.g. en)"},
    {"prompt-lang", "TAG=TEXT", "the prompt in one language (repeatable; issue 17)"},
    {"result-info-lang", "TAG=TEXT", "the result information in one language (repeatable)"},
    {"rxswin", "R79-X,R10-Y", "the RXSWINs the package sets (comma-separated; \"\" clears)"},
    {"install-mode", "MODE", "default install mode of its tasks: forced, soft, download_only"},
    {"encrypted", NULL, "the package's files are encrypted (needs --content-key)"},
    {"content-key", "HEX",
     "the content key of an encrypted package (64 hex, from file upload --encrypt)"},
    {"ecu", "ECU:TYPE:VERSION:SHA256:NAME",
     "an ECU's file (TYPE ecu or component; the file must be uploaded; repeatable)"},
    {NULL, NULL, NULL},
};

static const otactl_opt package_list_opts[] = {
    {"model", "MODEL", "only this model"},
    {"series", "SERIES", "only this series"},
    {NULL, NULL, NULL},
};

static const otactl_opt package_max_opts[] = {
    {"released", NULL, "only released packages"},
    {NULL, NULL, NULL},
};

static const action package_actions[] = {
    {"add",
     "--json FILE | --model M --series S --version V [--kind full|delta --from V] "
     "--ecu ECU:TYPE:VERSION:SHA256:NAME... [options]",
     "add a package (as draft); prints its id", package_add_opts, 0, 0, package_add},
    {"status", "ID draft|verified|released|deprecated", "move a package forward", NULL, 2, 2,
     package_status},
    {"get", "ID", "show a package", NULL, 1, 1, package_get},
    {"list", "[--model M] [--series S]", "list packages", package_list_opts, 0, 0, package_list},
    {"max", "MODEL SERIES [--released]", "the highest version of a model/series", package_max_opts,
     2, 2, package_max},
    {"version", "MODEL SERIES VERSION", "show the full package of a version", NULL, 3, 3,
     package_version},
    {"update", "ID [--baseline TEXT] [--prompt TEXT] [--result-info TEXT] [R156 options]",
     "set a package's texts (e.g. the baseline description it was added without), RXSWINs, "
     "default install mode",
     otactl_package_update_opts, 1, 1, otactl_cmd_package_update},
    {"deprecate", "ID", "no new task may use the package (refused while an active task does)", NULL,
     1, 1, otactl_cmd_package_deprecate},
    {"delete", "ID", "delete a package no task uses", NULL, 1, 1, otactl_cmd_package_delete},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- file ---- */

static int file_query(otactl_ctx *ctx, otactl_args *a, const char *command)
{
    char sha[65];
    int rc = parse_sha(ctx, a->pos[0], sha);
    return rc == OTACTL_OK
               ? otactl_run(ctx, cmd_with(command, "sha256", sha, NULL), otactl_print_kv)
               : rc;
}

static int file_get(otactl_ctx *ctx, otactl_args *a)
{
    return file_query(ctx, a, "getFile");
}

static int file_status(otactl_ctx *ctx, otactl_args *a)
{
    return file_query(ctx, a, "uploadStatus");
}

static const otactl_opt file_upload_opts[] = {
    {"chunk", "BYTES", "chunk size, 1..1048576 (default 262144)"},
    {"window", "N", "chunks sent before waiting for their answers, 1..16 (default 4)"},
    {"encrypt", NULL, "encrypt the file (AES-256-GCM) before uploading; prints the content key"},
    {"key", "HEX", "--encrypt: the package's content key (64 hex; default: a new random one)"},
    {"out", "PATH", "--encrypt: where the encrypted file goes (default PATH.enc)"},
    {NULL, NULL, NULL},
};

static const action file_actions[] = {
    {"upload", "PATH [--chunk BYTES] [--window N] [--encrypt [--key HEX] [--out PATH]]",
     "upload a file to the repository (resumes an interrupted upload); prints its SHA-256",
     file_upload_opts, 1, 1, otactl_cmd_file_upload},
    {"get", "SHA256", "show a file of the repository", NULL, 1, 1, file_get},
    {"status", "SHA256", "how much of an upload the plugin has", NULL, 1, 1, file_status},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- strategy ---- */

static int strategy_set(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *s;
    int rc = otactl_build_strategy(ctx, a, &s);
    if (rc != OTACTL_OK) {
        return rc;
    }
    cJSON *c = otactl_cmd_new("setStrategy");
    cJSON_AddItemToObject(c, "strategy", s);
    return otactl_run(ctx, c, otactl_print_nothing);
}

static int bind_targets(otactl_ctx *ctx, otactl_args *a, cJSON *extra, cJSON *vins)
{
    const char *model = otactl_arg(a, "model"), *series = otactl_arg(a, "series");
    if (!model != !series) {
        return otactl_usage_err(ctx, "--model and --series go together");
    }
    if (model) {
        cJSON_AddStringToObject(extra, "model", model);
        cJSON_AddStringToObject(extra, "series", series);
    }
    int rc = otactl_vins_from_args(ctx, a, vins);
    if (rc == OTACTL_OK && !model && cJSON_GetArraySize(vins) == 0) {
        rc = otactl_usage_err(ctx, "give --model M --series S and/or --vins / --vins-file");
    }
    return rc;
}

static int strategy_bind(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *extra = cJSON_CreateObject(), *vins = cJSON_CreateArray();
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "id", a->pos[0]);
    size_t batch = VIN_BATCH;
    int rc = parse_batch(ctx, a, VIN_BATCH, &batch);
    rc = rc ? rc : bind_targets(ctx, a, extra, vins);
    if (rc == OTACTL_OK && cJSON_GetArraySize(vins) == 0) {
        /* model/series only: no vins member at all */
        cJSON *c = cmd_with("bindStrategy", "id", a->pos[0], NULL);
        const cJSON *m;
        cJSON_ArrayForEach(m, extra)
        {
            cJSON_AddItemToObject(c, m->string, cJSON_Duplicate(m, true));
        }
        rc = otactl_run(ctx, c, otactl_print_kv);
    } else if (rc == OTACTL_OK) {
        rc = otactl_run_batched(ctx, "bindStrategy", fields, vins, extra, batch, "bound");
    }
    cJSON_Delete(extra);
    cJSON_Delete(vins);
    cJSON_Delete(fields);
    return rc;
}

static int strategy_get(otactl_ctx *ctx, otactl_args *a)
{
    return otactl_run(ctx, cmd_with("getStrategy", "id", a->pos[0], NULL), otactl_print_strategy);
}

static const otactl_opt strategy_set_opts[] = {
    {"json", "FILE", "the strategy object as JSON (instead of the flags below; - = stdin)"},
    {"id", "ID", "strategy id"},
    {"package-kind", "full|delta|auto", "which package to use (default auto)"},
    {"compare-version", "always|never|auto", "version comparison (default auto)"},
    {"ecu", "ECU[:ORDER][:noupgrade]",
     "an ECU, its upgrade order (0, 1, ...), noupgrade to skip it (repeatable)"},
    {NULL, NULL, NULL},
};

static const otactl_opt strategy_bind_opts[] = {
    {"model", "MODEL", "make it the default of this model/series"},
    {"series", "SERIES", "(with --model)"},
    {"vins", "VIN,VIN...", "bind to these vehicles (repeatable)"},
    {"vins-file", "FILE", "bind to the VINs of FILE (white space / comma separated)"},
    {"batch", "N", "VINs per bindStrategy command (1..10000, default 10000)"},
    {NULL, NULL, NULL},
};

static const action strategy_actions[] = {
    {"set",
     "--json FILE | --id ID [--package-kind K] [--compare-version C] "
     "[--ecu ECU[:ORDER][:noupgrade]]...",
     "create or replace a strategy", strategy_set_opts, 0, 0, strategy_set},
    {"bind", "ID (--model M --series S | --vins V,V,... | --vins-file FILE)",
     "make a strategy a model/series default and/or a set of vehicles' own", strategy_bind_opts, 1,
     1, strategy_bind},
    {"get", "ID", "show a strategy and where it is bound", NULL, 1, 1, strategy_get},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- list ---- */

static int check_list(otactl_ctx *ctx, const char *name)
{
    static const char *const lists[] = {"blacklist", "forced_whitelist", "same_version_whitelist",
                                        "downgrade_whitelist", NULL};
    for (int i = 0; lists[i]; i++) {
        if (!strcmp(lists[i], name)) {
            return OTACTL_OK;
        }
    }
    return otactl_usage_err(ctx,
                            "unknown list \"%s\" (blacklist, forced_whitelist, "
                            "same_version_whitelist, downgrade_whitelist)",
                            name);
}

static int list_change(otactl_ctx *ctx, otactl_args *a, const char *command, const char *field)
{
    int rc = check_list(ctx, a->pos[0]);
    size_t batch = VIN_BATCH;
    rc = rc ? rc : parse_batch(ctx, a, VIN_BATCH, &batch);
    cJSON *vins = cJSON_CreateArray();
    for (int i = 1; i < a->npos && rc == OTACTL_OK; i++) {
        otactl_vins_from_text(a->pos[i], vins);
    }
    for (int i = 0; i < otactl_arg_count(a, "file") && rc == OTACTL_OK; i++) {
        rc = otactl_vins_from_file(ctx, otactl_arg_nth(a, "file", i), vins);
    }
    if (rc == OTACTL_OK && cJSON_GetArraySize(vins) == 0) {
        rc = otactl_usage_err(ctx, "no VINs given (VIN... or --file FILE)");
    }
    if (rc == OTACTL_OK) {
        cJSON *fields = cJSON_CreateObject();
        cJSON_AddStringToObject(fields, "list", a->pos[0]);
        rc = otactl_run_batched(ctx, command, fields, vins, NULL, batch, field);
        cJSON_Delete(fields);
    }
    cJSON_Delete(vins);
    return rc;
}

static int list_add(otactl_ctx *ctx, otactl_args *a)
{
    return list_change(ctx, a, "addToList", "added");
}

static int list_remove(otactl_ctx *ctx, otactl_args *a)
{
    return list_change(ctx, a, "removeFromList", "removed");
}

static int list_get(otactl_ctx *ctx, otactl_args *a)
{
    int rc = check_list(ctx, a->pos[0]);
    return rc ? rc
              : otactl_run(ctx, cmd_with("getList", "list", a->pos[0], NULL), otactl_print_vins);
}

static const otactl_opt list_change_opts[] = {
    {"file", "FILE", "VINs from FILE (white space / comma separated; - = stdin)"},
    {"batch", "N", "VINs per command (1..10000, default 10000)"},
    {NULL, NULL, NULL},
};

static const action list_actions[] = {
    {"add", "LIST VIN... | LIST --file FILE", "add VINs to a list; prints how many were new",
     list_change_opts, 1, -1, list_add},
    {"remove", "LIST VIN... | LIST --file FILE", "remove VINs from a list", list_change_opts, 1, -1,
     list_remove},
    {"get", "LIST", "the VINs of a list, one per line", NULL, 1, 1, list_get},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- quarantine ---- */

/* --name N into the command as a number, when given. */
static int add_number(otactl_ctx *ctx, otactl_args *a, cJSON *c, const char *name,
                      const char *key)
{
    const char *v = otactl_arg(a, name);
    uint64_t n;
    if (!v) {
        return OTACTL_OK;
    }
    if (otactl_parse_u64(v, &n) != 0) {
        return otactl_usage_err(ctx, "--%s: expected an unsigned integer, got \"%s\"", name, v);
    }
    cJSON_AddRawToObject(c, key, v);
    return OTACTL_OK;
}

static int quarantine_list(otactl_ctx *ctx, otactl_args *a)
{
    cJSON *c = otactl_cmd_new("listQuarantine");
    if (otactl_arg(a, "vin")) {
        cJSON_AddStringToObject(c, "vin", otactl_arg(a, "vin"));
    }
    if (otactl_arg(a, "code")) {
        cJSON_AddStringToObject(c, "code", otactl_arg(a, "code"));
    }
    int rc = add_number(ctx, a, c, "limit", "limit");
    if (rc == OTACTL_OK) {
        rc = add_number(ctx, a, c, "before", "before");
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(c);
        return rc;
    }
    return otactl_run(ctx, c, otactl_print_quarantine);
}

static const otactl_opt quarantine_list_opts[] = {
    {"vin", "VIN", "only this vehicle's"},
    {"code", "CODE", "only this refusal (E_BAD_REQUEST, E_REPLAY, E_UNKNOWN_VIN, ...)"},
    {"limit", "N", "at most N (1..100, default 20), newest first"},
    {"before", "ID", "the page after the one that printed `next: ID`"},
    {NULL, NULL, NULL},
};

static const action quarantine_actions[] = {
    {"list", "[--vin VIN] [--code CODE] [--limit N] [--before ID]",
     "reports the broker took but refused, with their reason", quarantine_list_opts, 0, 0,
     quarantine_list},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- stats, raw ---- */

static int stats(otactl_ctx *ctx, otactl_args *a)
{
    (void)a;
    return otactl_run(ctx, otactl_cmd_new("getStats"), otactl_print_kv);
}

static const action stats_actions[] = {
    {NULL, "", "the plugin's counters (getStats)", NULL, 0, 0, stats},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* The request of `raw`: {"commands":[...]} as is, a command object or an array of them. */
static char *raw_request(otactl_ctx *ctx, const char *arg)
{
    char *in = strcmp(arg, "-") ? strdup(arg) : otactl_read_file("-", NULL);
    cJSON *j = in ? cJSON_Parse(in) : NULL;
    free(in);
    cJSON *req = j;
    if (cJSON_IsArray(j) || (cJSON_IsObject(j) && cJSON_GetObjectItem(j, "command"))) {
        req = cJSON_CreateObject();
        if (cJSON_IsObject(j)) {
            cJSON *arr = cJSON_AddArrayToObject(req, "commands");
            cJSON_AddItemToArray(arr, j);
        } else {
            cJSON_AddItemToObject(req, "commands", j);
        }
    }
    char *text = cJSON_IsObject(req) ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!text) {
        otactl_usage_err(ctx, "expected a JSON request, command object or array of commands");
    }
    return text;
}

static int raw_errors(const otactl_ctx *ctx, const char *text)
{
    cJSON *j = cJSON_Parse(text);
    int rc = OTACTL_OK;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "responses"))
    {
        if (otactl_check_response(ctx, r) != OTACTL_OK) {
            rc = OTACTL_ECMD;
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int raw(otactl_ctx *ctx, otactl_args *a)
{
    char *req = raw_request(ctx, a->pos[0]);
    if (!req) {
        return OTACTL_EUSAGE;
    }
    char *resp = NULL;
    int rc = otactl_request_raw(ctx, req, &resp);
    if (rc == OTACTL_OK && resp) {
        puts(resp);
        rc = raw_errors(ctx, resp);
    }
    free(req);
    free(resp);
    return rc;
}

static const action raw_actions[] = {
    {NULL, "JSON|-",
     "send a request as it is ({\"commands\":[...]}, one command object or an array of "
     "them; - reads stdin) and print the raw response",
     NULL, 1, 1, raw},
    {NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- the table ---- */

static const group groups[] = {
    {"vehicle", "vehicles: upsert, import, get, delete, list, status, history, reset-seq",
     vehicle_actions},
    {"quarantine", "refused reports: list", quarantine_actions},
    {"model", "models: set, get", model_actions},
    {"package", "packages: add, status, get, list, max, version, update, deprecate, delete",
     package_actions},
    {"file", "package files: upload, get, status", file_actions},
    {"strategy", "strategies: set, bind, get", strategy_actions},
    {"list", "black/white lists: add, remove, get", list_actions},
    {"task", "upgrade tasks: create, preview, get, list, vehicles, cancel, watch, export, rules",
     otactl_task_actions},
    {"fleet", "the fleet at a glance: summary", otactl_fleet_actions},
    {"group", "vehicle groups: set, get, list, delete", otactl_group_actions},
    {"stats", "the plugin's counters", stats_actions},
    {"raw", "send a raw JSON request", raw_actions},
    {NULL, NULL, NULL},
};

void otactl_commands_help(void)
{
    printf("Commands:\n");
    for (const group *g = groups; g->name; g++) {
        printf("  %-10s %s\n", g->name, g->summary);
    }
}

static void group_help(const group *g)
{
    if (!g->actions[0].name) {
        printf("usage: otactl %s %s\n%s\n", g->name, g->actions[0].synopsis, g->actions[0].summary);
    } else {
        printf("usage: otactl %s ACTION [options]\n\nActions:\n", g->name);
        for (const action *a = g->actions; a->name; a++) {
            printf("  %s %s %s\n      %s\n", g->name, a->name, a->synopsis, a->summary);
        }
        printf("\n'otactl %s ACTION --help' describes an action's options.\n", g->name);
    }
    printf("Global options: see 'otactl --help'.\n");
}

static void action_help(const group *g, const action *a)
{
    printf("usage: otactl %s%s%s %s\n%s\n", g->name, a->name ? " " : "", a->name ? a->name : "",
           a->synopsis, a->summary);
    if (a->opts) {
        printf("\nOptions:\n");
        for (const otactl_opt *o = a->opts; o->name; o++) {
            char head[64];
            snprintf(head, sizeof(head), "--%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
            printf("  %-28s %s\n", head, o->help);
        }
    }
    printf("\nGlobal options: see 'otactl --help'.\n");
}

static int run_action(otactl_ctx *ctx, const group *g, const action *act, int argc, char **argv)
{
    otactl_args a;
    int rc = otactl_args_parse(ctx, argc, argv, act->opts, &a);
    if (rc == OTACTL_HELP) {
        action_help(g, act);
    } else if (rc == OTACTL_OK &&
               (a.npos < act->min_pos || (act->max_pos >= 0 && a.npos > act->max_pos))) {
        rc = otactl_usage_err(ctx,
                              a.npos < act->min_pos ? "missing arguments; usage: %s"
                                                    : "too many arguments; usage: %s",
                              act->synopsis);
    } else if (rc == OTACTL_OK) {
        rc = act->fn(ctx, &a);
    }
    otactl_args_free(&a);
    return rc;
}

/* Skips global options after the group name; returns the index of the action word. */
static int find_action_word(otactl_ctx *ctx, int argc, char **argv, int *rc)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        int g = otactl_global_opt(ctx, argc, argv, &i);
        if (g == OTACTL_HELP || g == OTACTL_EUSAGE) {
            *rc = g;
            return -1;
        }
        if (g == 0) {
            *rc = otactl_usage_err(ctx, "unknown option %s (see --help)", argv[i]);
            return -1;
        }
    }
    *rc = OTACTL_OK;
    return i;
}

static int dispatch_group(otactl_ctx *ctx, const group *g, int argc, char **argv)
{
    static char name[64];
    if (!g->actions[0].name) {
        ctx->cmd_name = g->name;
        return run_action(ctx, g, &g->actions[0], argc - 1, argv + 1);
    }
    ctx->cmd_name = g->name;
    int rc;
    int i = find_action_word(ctx, argc, argv, &rc);
    if (rc == OTACTL_HELP) {
        group_help(g);
    }
    if (rc != OTACTL_OK) {
        return rc;
    }
    if (i >= argc) {
        return otactl_usage_err(ctx, "missing action (%s; see --help)", g->summary);
    }
    for (const action *a = g->actions; a->name; a++) {
        if (!strcmp(a->name, argv[i])) {
            snprintf(name, sizeof(name), "%s %s", g->name, a->name);
            ctx->cmd_name = name;
            return run_action(ctx, g, a, argc - i - 1, argv + i + 1);
        }
    }
    return otactl_usage_err(ctx, "unknown action \"%s\" (see --help)", argv[i]);
}

int otactl_dispatch(otactl_ctx *ctx, int argc, char **argv)
{
    for (const group *g = groups; g->name; g++) {
        if (!strcmp(g->name, argv[0])) {
            return dispatch_group(ctx, g, argc, argv);
        }
    }
    return otactl_usage_err(ctx, "unknown command \"%s\" (see otactl --help)", argv[0]);
}
