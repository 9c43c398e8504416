/*
 * otactl_r156.c — the UNECE R156 flags of `vehicle upsert`, `package add` and `package
 * update` (issue 17, docs/r156.md): --rxswin LIST, --language TAG, --prompt TEXT and
 * --prompt-lang TAG=TEXT (repeatable), the same for --result-info, --install-mode MODE.
 * The plugin checks the values; these only build the JSON.
 */
#include "otactl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int otactl_add_rxswin(const otactl_args *a, cJSON *obj)
{
    const char *list = otactl_arg(a, "rxswin");
    if (!list) {
        return OTACTL_OK;
    }
    cJSON *arr = cJSON_AddArrayToObject(obj, "rxswin"); /* "" gives []: clears the list */
    for (const char *s = list; *s;) {
        size_t k = strcspn(s, ",");
        char *one = strndup(s, k);
        if (one && k > 0) {
            cJSON_AddItemToArray(arr, cJSON_CreateString(one));
        }
        free(one);
        s += k + (s[k] == ',');
    }
    return OTACTL_OK;
}

/* --NAME TEXT and --NAME-lang TAG=TEXT...: a string, or {tag: text} where --NAME's text is
 * the --language one's. */
static int add_lang_text(otactl_ctx *ctx, const otactl_args *a, cJSON *obj, const char *flag,
                         const char *key)
{
    char lang_flag[32];
    snprintf(lang_flag, sizeof lang_flag, "%s-lang", flag);
    const char *plain = otactl_arg(a, flag), *language = otactl_arg(a, "language");
    int n = otactl_arg_count(a, lang_flag);
    if (n == 0) {
        if (plain) {
            cJSON_AddStringToObject(obj, key, plain);
        }
        return OTACTL_OK;
    }
    cJSON *m = cJSON_AddObjectToObject(obj, key);
    if (plain && !language) {
        return otactl_usage_err(ctx, "--%s with --%s needs --language (its text's language)", flag,
                                lang_flag);
    }
    if (plain) {
        cJSON_AddStringToObject(m, language, plain);
    }
    for (int i = 0; i < n; i++) {
        const char *v = otactl_arg_nth(a, lang_flag, i), *eq = strchr(v, '=');
        if (!eq || eq == v) {
            return otactl_usage_err(ctx, "--%s: expected TAG=TEXT, got \"%s\"", lang_flag, v);
        }
        char *tag = strndup(v, (size_t)(eq - v));
        cJSON_DeleteItemFromObjectCaseSensitive(m, tag);
        cJSON_AddStringToObject(m, tag, eq + 1);
        free(tag);
    }
    return OTACTL_OK;
}

int otactl_add_pkg_r156(otactl_ctx *ctx, const otactl_args *a, cJSON *obj)
{
    int rc = add_lang_text(ctx, a, obj, "prompt", "prompt");
    rc = rc ? rc : add_lang_text(ctx, a, obj, "result-info", "result_info");
    if (rc != OTACTL_OK) {
        return rc;
    }
    const char *language = otactl_arg(a, "language"), *mode = otactl_arg(a, "install-mode");
    if (language) {
        cJSON_AddStringToObject(obj, "language", language);
    }
    if (mode && strcmp(mode, "none") == 0) {
        cJSON_AddNullToObject(obj, "install_mode"); /* package update: no default any more */
    } else if (mode) {
        cJSON_AddStringToObject(obj, "install_mode", mode);
    }
    return otactl_add_rxswin(a, obj);
}
