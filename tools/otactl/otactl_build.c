/*
 * otactl_build.c — otactl's command-line flags turned into operator API objects
 * (docs/operator-api.md): a vehicle, a model, a package, a strategy, and VIN lists sent
 * in batches.
 *
 * Only the form is checked here (required flags, enumerations, numbers, hex); what the
 * values mean (a known model, a valid VIN, a file in the repository) is the plugin's to
 * judge, and its error is shown as it is.
 */
#include "otactl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *otactl_cmd_new(const char *name)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "command", name);
    return c;
}

static void add_opt_str(cJSON *obj, const char *key, const char *val)
{
    if (val) {
        cJSON_AddStringToObject(obj, key, val);
    }
}

/* Adds the flag's value as obj[key]; a missing required flag is a usage error. */
static int add_req(const otactl_ctx *ctx, const otactl_args *a, cJSON *obj, const char *flag,
                   const char *key)
{
    const char *v = otactl_arg(a, flag);
    if (!v) {
        return otactl_usage_err(ctx, "--%s is required", flag);
    }
    cJSON_AddStringToObject(obj, key, v);
    return OTACTL_OK;
}

static bool is_hex(const char *s, size_t len)
{
    if (strlen(s) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; p && *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return d;
}

/* Checks that v (when given) is one of the words of choices ("a|b|c"). */
static int check_choice(const otactl_ctx *ctx, const char *flag, const char *v, const char *choices)
{
    if (!v) {
        return OTACTL_OK;
    }
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, v, n)) {
            return OTACTL_OK;
        }
        p += n + (p[n] == '|');
    }
    return otactl_usage_err(ctx, "--%s: expected %s, got \"%s\"", flag, choices, v);
}

/* ---- vehicles ---- */

int otactl_build_vehicle(otactl_ctx *ctx, const otactl_args *a, cJSON **vehicle)
{
    static const char *const req[] = {"vin", "model", "series", "status", "usage", NULL};
    cJSON *v = cJSON_CreateObject();
    int rc = OTACTL_OK;
    for (int i = 0; req[i] && rc == OTACTL_OK; i++) {
        rc = add_req(ctx, a, v, req[i], req[i]);
    }
    const char *key = otactl_arg(a, "public-key");
    if (rc == OTACTL_OK && key && !is_hex(key, 64)) {
        rc = otactl_usage_err(ctx, "--public-key: expected 64 hex characters (X25519)");
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(v);
        return rc;
    }
    add_opt_str(v, "platform", otactl_arg(a, "platform"));
    if (otactl_flag(a, "sold")) {
        cJSON_AddTrueToObject(v, "sold");
    }
    if (otactl_flag(a, "activated")) {
        cJSON_AddTrueToObject(v, "activated");
    }
    if (otactl_flag(a, "no-passenger")) {
        cJSON_AddFalseToObject(v, "passenger");
    }
    add_opt_str(v, "config_word", otactl_arg(a, "config-word"));
    add_opt_str(v, "fw", otactl_arg(a, "fw"));
    otactl_add_rxswin(a, v);
    if (key) {
        char *k = lower_dup(key);
        cJSON_AddStringToObject(v, "public_key", k);
        free(k);
    }
    *vehicle = v;
    return OTACTL_OK;
}

/* ---- models ---- */

/* Adds the comma-separated words of text to arr; an empty word is an error. */
static int add_words(const otactl_ctx *ctx, const char *what, const char *text, cJSON *arr)
{
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            return otactl_usage_err(ctx, "%s: empty name in \"%s\"", what, text);
        }
        char *w = strndup(p, n);
        cJSON_AddItemToArray(arr, cJSON_CreateString(w));
        free(w);
        if (!p[n]) {
            return OTACTL_OK;
        }
        p += n + 1;
    }
}

/* --ignore BIT:ECU,ECU -> {"bit": BIT, "ecus": [...]} */
static int add_ignore(const otactl_ctx *ctx, const char *spec, cJSON *arr)
{
    const char *colon = strchr(spec, ':');
    char bitbuf[24];
    uint64_t bit;
    if (!colon || (size_t)(colon - spec) >= sizeof(bitbuf)) {
        return otactl_usage_err(ctx, "--ignore: expected BIT:ECU[,ECU...], got \"%s\"", spec);
    }
    snprintf(bitbuf, sizeof(bitbuf), "%.*s", (int)(colon - spec), spec);
    if (otactl_parse_u64(bitbuf, &bit) != 0 || bit > 63) {
        return otactl_usage_err(ctx, "--ignore: bit must be 0..63, got \"%s\"", bitbuf);
    }
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, rule);
    cJSON_AddNumberToObject(rule, "bit", (double)bit);
    return add_words(ctx, "--ignore", colon + 1, cJSON_AddArrayToObject(rule, "ecus"));
}

static int model_lists(otactl_ctx *ctx, const otactl_args *a, cJSON *c)
{
    int rc = OTACTL_OK;
    int n = otactl_arg_count(a, "ecu");
    cJSON *ecus = n ? cJSON_AddArrayToObject(c, "ecus") : NULL;
    for (int i = 0; i < n && rc == OTACTL_OK; i++) {
        rc = add_words(ctx, "--ecu", otactl_arg_nth(a, "ecu", i), ecus);
    }
    n = otactl_arg_count(a, "ignore");
    cJSON *ignore = n ? cJSON_AddArrayToObject(c, "ignore") : NULL;
    for (int i = 0; i < n && rc == OTACTL_OK; i++) {
        rc = add_ignore(ctx, otactl_arg_nth(a, "ignore", i), ignore);
    }
    return rc;
}

int otactl_build_model(otactl_ctx *ctx, const otactl_args *a, cJSON **cmd)
{
    cJSON *c = otactl_cmd_new("setModel");
    int rc = add_req(ctx, a, c, "model", "model");
    if (rc == OTACTL_OK) {
        rc = add_req(ctx, a, c, "series", "series");
    }
    if (rc == OTACTL_OK) {
        cJSON_AddBoolToObject(c, "supports_config_word", otactl_flag(a, "config-word"));
        rc = model_lists(ctx, a, c);
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(c);
        return rc;
    }
    *cmd = c;
    return OTACTL_OK;
}

/* ---- packages ---- */

/* --ecu ECU:TYPE:VERSION:SHA256:NAME (NAME may contain ':'). */
static int add_pkg_ecu(const otactl_ctx *ctx, const char *spec, cJSON *arr)
{
    const char *part[5];
    size_t len[5];
    const char *p = spec;
    for (int i = 0; i < 4; i++) {
        const char *colon = strchr(p, ':');
        if (!colon) {
            return otactl_usage_err(ctx, "--ecu: expected ECU:TYPE:VERSION:SHA256:NAME, got \"%s\"",
                                    spec);
        }
        part[i] = p, len[i] = (size_t)(colon - p), p = colon + 1;
    }
    part[4] = p, len[4] = strlen(p);
    char *f[5];
    for (int i = 0; i < 5; i++) {
        f[i] = strndup(part[i], len[i]);
    }
    int rc = OTACTL_OK;
    if (strcmp(f[1], "ecu") && strcmp(f[1], "component")) {
        rc = otactl_usage_err(ctx, "--ecu: TYPE must be ecu or component, got \"%s\"", f[1]);
    } else if (!is_hex(f[3], 64)) {
        rc = otactl_usage_err(ctx, "--ecu: SHA256 must be 64 hex characters, got \"%s\"", f[3]);
    } else if (!*f[0] || !*f[2] || !*f[4]) {
        rc =
            otactl_usage_err(ctx, "--ecu: ECU, VERSION and NAME must not be empty in \"%s\"", spec);
    } else {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddStringToObject(e, "ecu", f[0]);
        cJSON_AddStringToObject(e, "type", f[1]);
        cJSON_AddStringToObject(e, "version", f[2]);
        cJSON *file = cJSON_AddObjectToObject(e, "file");
        char *sha = lower_dup(f[3]);
        cJSON_AddStringToObject(file, "sha256", sha);
        cJSON_AddStringToObject(file, "name", f[4]);
        free(sha);
    }
    for (int i = 0; i < 5; i++) {
        free(f[i]);
    }
    return rc;
}

static const char *const pkg_flags[] = {
    "model",       "series",           "version",   "kind",         "from",        "baseline",
    "prompt",      "result-info",      "encrypted", "ecu",          "content-key", "language",
    "prompt-lang", "result-info-lang", "rxswin",    "install-mode", NULL};

/* --json FILE: a package object, or {"package": {...}}. */
static int package_from_file(otactl_ctx *ctx, const otactl_args *a, cJSON **pkg)
{
    for (int i = 0; pkg_flags[i]; i++) {
        if (otactl_flag(a, pkg_flags[i])) {
            return otactl_usage_err(ctx, "--json FILE and --%s cannot be combined", pkg_flags[i]);
        }
    }
    cJSON *j = otactl_read_json(ctx, otactl_arg(a, "json"));
    if (!j) {
        return OTACTL_EUSAGE;
    }
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "package"))) {
        cJSON *inner = cJSON_DetachItemFromObjectCaseSensitive(j, "package");
        cJSON_Delete(j);
        j = inner;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return otactl_usage_err(ctx, "%s: expected a package object", otactl_arg(a, "json"));
    }
    *pkg = j;
    return OTACTL_OK;
}

static int package_kind(otactl_ctx *ctx, const otactl_args *a, cJSON *p)
{
    const char *kind = otactl_arg(a, "kind") ? otactl_arg(a, "kind") : "full";
    int rc = check_choice(ctx, "kind", kind, "full|delta");
    if (rc != OTACTL_OK) {
        return rc;
    }
    bool delta = !strcmp(kind, "delta");
    if (delta != (otactl_arg(a, "from") != NULL)) {
        return otactl_usage_err(ctx, delta ? "--kind delta needs --from VERSION"
                                           : "--from is only for --kind delta");
    }
    cJSON_AddStringToObject(p, "kind", kind);
    add_opt_str(p, "from", otactl_arg(a, "from"));
    return OTACTL_OK;
}

static int package_from_flags(otactl_ctx *ctx, const otactl_args *a, cJSON **pkg)
{
    cJSON *p = cJSON_CreateObject();
    int rc = add_req(ctx, a, p, "model", "model");
    rc = rc ? rc : add_req(ctx, a, p, "series", "series");
    rc = rc ? rc : add_req(ctx, a, p, "version", "version");
    rc = rc ? rc : package_kind(ctx, a, p);
    int n = otactl_arg_count(a, "ecu");
    if (rc == OTACTL_OK && n == 0) {
        rc = otactl_usage_err(ctx, "at least one --ecu ECU:TYPE:VERSION:SHA256:NAME is required");
    }
    if (rc == OTACTL_OK) {
        add_opt_str(p, "baseline_description", otactl_arg(a, "baseline"));
        rc = otactl_add_pkg_r156(ctx, a, p); /* texts per language, RXSWINs, install mode */
        if (otactl_flag(a, "encrypted")) {
            cJSON_AddTrueToObject(p, "encrypted");
        }
        add_opt_str(p, "content_key", otactl_arg(a, "content-key"));
        cJSON *ecus = cJSON_AddArrayToObject(p, "ecus");
        for (int i = 0; i < n && rc == OTACTL_OK; i++) {
            rc = add_pkg_ecu(ctx, otactl_arg_nth(a, "ecu", i), ecus);
        }
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(p);
        return rc;
    }
    *pkg = p;
    return OTACTL_OK;
}

int otactl_build_package(otactl_ctx *ctx, const otactl_args *a, cJSON **pkg)
{
    return otactl_arg(a, "json") ? package_from_file(ctx, a, pkg) : package_from_flags(ctx, a, pkg);
}

/* ---- strategies ---- */

/* --ecu ECU[:ORDER][:noupgrade] -> {ecu, order?, upgrade?} */
static int add_strategy_ecu(const otactl_ctx *ctx, const char *spec, cJSON *arr)
{
    char *copy = strdup(spec), *save = NULL;
    char *name = strtok_r(copy, ":", &save);
    int rc = OTACTL_OK;
    if (!name || spec[0] == ':') {
        rc = otactl_usage_err(ctx, "--ecu: expected ECU[:ORDER][:noupgrade], got \"%s\"", spec);
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "ecu", name ? name : "");
    for (char *t; rc == OTACTL_OK && (t = strtok_r(NULL, ":", &save));) {
        uint64_t order;
        if (!strcmp(t, "noupgrade") || !strcmp(t, "upgrade")) {
            cJSON_DeleteItemFromObject(e, "upgrade");
            cJSON_AddBoolToObject(e, "upgrade", t[0] == 'u');
        } else if (otactl_parse_u64(t, &order) == 0 && order <= INT32_MAX) {
            cJSON_DeleteItemFromObject(e, "order");
            cJSON_AddNumberToObject(e, "order", (double)order);
        } else {
            rc = otactl_usage_err(ctx,
                                  "--ecu: \"%s\" in \"%s\" is neither an order (0, 1, ...) "
                                  "nor noupgrade",
                                  t, spec);
        }
    }
    free(copy);
    if (rc != OTACTL_OK) {
        cJSON_Delete(e);
        return rc;
    }
    cJSON_AddItemToArray(arr, e);
    return OTACTL_OK;
}

static int strategy_from_file(otactl_ctx *ctx, const otactl_args *a, cJSON **strategy)
{
    static const char *const flags[] = {"id", "package-kind", "compare-version", "ecu", NULL};
    for (int i = 0; flags[i]; i++) {
        if (otactl_flag(a, flags[i])) {
            return otactl_usage_err(ctx, "--json FILE and --%s cannot be combined", flags[i]);
        }
    }
    cJSON *j = otactl_read_json(ctx, otactl_arg(a, "json"));
    if (j && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "strategy"))) {
        cJSON *inner = cJSON_DetachItemFromObjectCaseSensitive(j, "strategy");
        cJSON_Delete(j);
        j = inner;
    }
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return otactl_usage_err(ctx, "%s: expected a strategy object", otactl_arg(a, "json"));
    }
    *strategy = j;
    return j ? OTACTL_OK : OTACTL_EUSAGE;
}

static int strategy_from_flags(otactl_ctx *ctx, const otactl_args *a, cJSON **strategy)
{
    const char *kind = otactl_arg(a, "package-kind") ? otactl_arg(a, "package-kind") : "auto";
    const char *cmp = otactl_arg(a, "compare-version") ? otactl_arg(a, "compare-version") : "auto";
    int rc = check_choice(ctx, "package-kind", kind, "full|delta|auto");
    rc = rc ? rc : check_choice(ctx, "compare-version", cmp, "always|never|auto");
    cJSON *s = cJSON_CreateObject();
    rc = rc ? rc : add_req(ctx, a, s, "id", "id");
    cJSON_AddStringToObject(s, "package_kind", kind);
    cJSON_AddStringToObject(s, "compare_version", cmp);
    cJSON *ecus = cJSON_AddArrayToObject(s, "ecus");
    int n = otactl_arg_count(a, "ecu");
    for (int i = 0; i < n && rc == OTACTL_OK; i++) {
        rc = add_strategy_ecu(ctx, otactl_arg_nth(a, "ecu", i), ecus);
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(s);
        return rc;
    }
    *strategy = s;
    return OTACTL_OK;
}

int otactl_build_strategy(otactl_ctx *ctx, const otactl_args *a, cJSON **strategy)
{
    return otactl_arg(a, "json") ? strategy_from_file(ctx, a, strategy)
                                 : strategy_from_flags(ctx, a, strategy);
}

/* ---- VIN lists in batches ---- */

static cJSON *batch_cmd(const char *name, const cJSON *fields, const cJSON *extra,
                        const cJSON *vins, int from, int to)
{
    cJSON *cmd = otactl_cmd_new(name);
    const cJSON *m;
    cJSON_ArrayForEach(m, fields)
    {
        cJSON_AddItemToObject(cmd, m->string, cJSON_Duplicate(m, true));
    }
    cJSON_ArrayForEach(m, extra)
    {
        cJSON_AddItemToObject(cmd, m->string, cJSON_Duplicate(m, true));
    }
    cJSON *arr = cJSON_AddArrayToObject(cmd, "vins");
    for (int i = from; i < to; i++) {
        cJSON_AddItemToArray(arr, cJSON_Duplicate(cJSON_GetArrayItem(vins, i), true));
    }
    return cmd;
}

static int report_batch_error(const otactl_ctx *ctx, const cJSON *resp, int from, int to, int n,
                              double done, const char *count_field)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(resp, "command");
    fprintf(stderr, "Error: %s", cJSON_IsString(name) ? name->valuestring : "?");
    if (n > to - from) {
        fprintf(stderr, " (VINs %d-%d of %d)", from + 1, to, n);
    }
    fprintf(stderr, ": %s\n", cJSON_IsString(err) ? err->valuestring : "no data in response");
    if (from > 0) {
        fprintf(stderr, "%s: %.0f by the earlier batches\n", count_field, done);
    }
    (void)ctx;
    return OTACTL_ECMD;
}

int otactl_run_batched(otactl_ctx *ctx, const char *name, cJSON *fields, cJSON *vins,
                       const cJSON *extra, size_t batch, const char *count_field)
{
    int n = cJSON_GetArraySize(vins);
    double total = 0;
    for (int from = 0; from == 0 || from < n; from += (int)batch) {
        int to = from + (int)batch < n ? from + (int)batch : n;
        cJSON *resp = NULL;
        cJSON *cmd = batch_cmd(name, fields, from == 0 ? extra : NULL, vins, from, to);
        int rc = otactl_request_one(ctx, cmd, &resp);
        if (rc != OTACTL_OK || !resp) {
            cJSON_Delete(resp);
            if (rc != OTACTL_OK) {
                return rc;
            }
            continue; /* --dry-run */
        }
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(data, count_field);
        if (!cJSON_IsObject(data)) {
            rc = report_batch_error(ctx, resp, from, to, n, total, count_field);
        }
        total += cJSON_IsNumber(count) ? count->valuedouble : 0;
        cJSON_Delete(resp);
        if (rc != OTACTL_OK) {
            return rc;
        }
    }
    if (!ctx->dry_run) {
        cJSON *sum = cJSON_CreateObject();
        cJSON_AddNumberToObject(sum, count_field, total);
        if (ctx->json) {
            otactl_print_json(sum);
        } else {
            otactl_print_kv(sum);
        }
        cJSON_Delete(sum);
    }
    return OTACTL_OK;
}
