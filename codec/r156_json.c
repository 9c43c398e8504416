/*
 * r156_json.c — the UNECE R156 fields of the catalog records as operator JSON (issue 17,
 * docs/r156.md): RXSWIN lists of vehicles and packages, a package's per-language user
 * texts (prompt / result_info as {tag: text} with a default language), its default
 * install mode, and the record of what a committed success changed (ota_rxswin_change_rec).
 *
 * Bounds, so that no operator makes a record (or the descriptions built from it)
 * unbounded: at most OTA_RXSWIN_MAX RXSWINs of OTA_RXSWIN_LEN bytes; at most
 * OTA_LANGS_MAX languages per text, whose texts together are at most OTA_FREE_TEXT_MAX
 * bytes (what one text was allowed before), so a description grows by no more than it
 * could already.
 */
#include "ota_catalog_json.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- RXSWIN */

/* Length of the regulation part "R<digits>" of s (up to the '-'), or 0. */
static size_t regulation_len(const char *s)
{
    size_t i = 1;
    if (s[0] != 'R')
        return 0;
    while (isdigit((unsigned char)s[i]) && i <= 4)
        i++;
    return i >= 2 && i <= 5 && s[i] == '-' ? i : 0;
}

bool ota_rxswin_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0, r = n ? regulation_len(s) : 0;
    if (r == 0 || n > OTA_RXSWIN_LEN || n < r + 2)
        return false;
    for (size_t i = r + 1; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '/' && c != '-')
            return false;
    }
    return true;
}

/* Compares the regulations of two RXSWINs ("R10" < "R79" < "R100": by number). */
static int cmp_regulation(const char *a, const char *b)
{
    unsigned long x = strtoul(a + 1, NULL, 10), y = strtoul(b + 1, NULL, 10);
    return (x > y) - (x < y);
}

static int cmp_rxswin(const void *a, const void *b)
{
    return cmp_regulation(*(const char *const *)a, *(const char *const *)b);
}

/* Joins v[0..n-1] (sorted by regulation) with ','; NULL for none or out of memory. */
static char *join_list(char **v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *out = n ? malloc(len) : NULL;
    for (size_t i = 0, at = 0; out && i < n; i++) {
        size_t k = strlen(v[i]);
        memcpy(out + at, v[i], k);
        at += k;
        out[at++] = i + 1 < n ? ',' : '\0';
    }
    return out;
}

int ota_json_get_rxswin(const cJSON *obj, const char *path, const char *key, char **out, char *err,
                        size_t errlen)
{
    char **v = NULL;
    size_t n = 0;
    *out = NULL;
    if (ota_json_get_string_array(obj, path, key, false, 0, OTA_RXSWIN_MAX, OTA_JSON_UNIQUE, &v, &n,
                                  err, errlen) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!ota_rxswin_valid(v[i]))
            rc = ota_json_errf(err, errlen, path, key,
                               "[%zu]: \"%s\" is not an RXSWIN (R<regulation>-<identifier>, "
                               "e.g. R79-STEER.7)",
                               i, v[i]);
    }
    if (rc == 0 && n > 0)
        qsort(v, n, sizeof *v, cmp_rxswin);
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (cmp_regulation(v[i - 1], v[i]) == 0)
            rc = ota_json_errf(err, errlen, path, key, "two RXSWINs of one regulation: %s and %s",
                               v[i - 1], v[i]);
    }
    if (rc == 0 && n > 0 && (*out = join_list(v, n)) == NULL)
        rc = ota_json_errf(err, errlen, path, key, "out of memory");
    ota_json_strings_free(v, n);
    return rc;
}

bool ota_json_add_rxswin(cJSON *o, const char *key, const char *list)
{
    if (list == NULL)
        return true;
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (const char *s = list; arr && *s;) {
        size_t k = strcspn(s, ",");
        char one[OTA_RXSWIN_LEN + 1];
        snprintf(one, sizeof one, "%.*s", (int)(k < OTA_RXSWIN_LEN ? k : OTA_RXSWIN_LEN), s);
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(one)))
            return false;
        s += k + (s[k] == ',');
    }
    return arr != NULL;
}

/* Splits a canonical list into at most OTA_RXSWIN_MAX pointers into buf. */
static size_t split_list(const char *list, char *buf, size_t len, char **v)
{
    size_t n = 0;
    snprintf(buf, len, "%s", list ? list : "");
    for (char *s = buf; *s && n < OTA_RXSWIN_MAX;) {
        v[n++] = s;
        s += strcspn(s, ",");
        if (*s)
            *s++ = '\0';
    }
    return n;
}

int ota_rxswin_merge(const char *vehicle, const char *package, char **out)
{
    char a[(OTA_RXSWIN_LEN + 1) * OTA_RXSWIN_MAX], b[sizeof a];
    char *va[OTA_RXSWIN_MAX], *vb[OTA_RXSWIN_MAX], *all[2 * OTA_RXSWIN_MAX];
    size_t na = split_list(vehicle, a, sizeof a, va), nb = split_list(package, b, sizeof b, vb);
    size_t n = 0;
    for (size_t i = 0; i < na; i++) { /* the vehicle's, unless the package sets that regulation */
        bool replaced = false;
        for (size_t j = 0; j < nb && !replaced; j++)
            replaced = cmp_regulation(va[i], vb[j]) == 0;
        if (!replaced)
            all[n++] = va[i];
    }
    for (size_t j = 0; j < nb; j++)
        all[n++] = vb[j];
    if (n > OTA_RXSWIN_MAX)
        n = OTA_RXSWIN_MAX; /* 16 regulations at most: the package's come last, keep them */
    qsort(all, n, sizeof *all, cmp_rxswin);
    *out = NULL;
    return n == 0 || (*out = join_list(all, n)) != NULL ? 0 : -1;
}

/* ---------------------------------------------------------------- languages */

bool ota_lang_tag_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0, i = 0;
    while (i < n && isalpha((unsigned char)s[i]))
        i++;
    if (i < 2 || i > 3 || n > 35)
        return false;
    while (i < n) {
        size_t k = 0;
        if (s[i++] != '-')
            return false;
        while (i < n && isalnum((unsigned char)s[i]))
            i++, k++;
        if (k < 1 || k > 8)
            return false;
    }
    return true;
}

static int cmp_lang(const void *a, const void *b)
{
    return strcmp(((const ota_lang_text *)a)->lang, ((const ota_lang_text *)b)->lang);
}

/* {tag: text} at path.key into *v / *n, sorted by tag; texts together at most
 * OTA_FREE_TEXT_MAX bytes. */
static int lang_map(const cJSON *m, const char *path, const char *key, ota_lang_text **v, size_t *n,
                    char *err, size_t errlen)
{
    size_t count = (size_t)cJSON_GetArraySize(m), total = 0;
    if (count < 1 || count > OTA_LANGS_MAX)
        return ota_json_errf(err, errlen, path, key, "expected 1..%d languages, not %zu",
                             OTA_LANGS_MAX, count);
    *v = calloc(count, sizeof **v);
    if (*v == NULL)
        return ota_json_errf(err, errlen, path, key, "out of memory");
    char sub[160];
    snprintf(sub, sizeof sub, "%s%s%s", path && *path ? path : "", path && *path ? "." : "", key);
    for (const cJSON *it = m->child; it; it = it->next) {
        const char *text;
        if (!ota_lang_tag_valid(it->string))
            return ota_json_errf(err, errlen, sub, it->string,
                                 "not a language tag (e.g. en, de-AT, zh-Hans)");
        for (size_t i = 0; i < *n; i++) {
            if (strcmp((*v)[i].lang, it->string) == 0)
                return ota_json_errf(err, errlen, sub, it->string, "duplicate field");
        }
        if (ota_json_get_text(m, sub, it->string, true, &text, err, errlen) < 0)
            return -1;
        total += strlen(text);
        if (total > OTA_FREE_TEXT_MAX)
            return ota_json_errf(err, errlen, path, key,
                                 "the texts of all languages together are over %d bytes",
                                 OTA_FREE_TEXT_MAX);
        ota_lang_text *t = &(*v)[(*n)++];
        if ((t->lang = strdup(it->string)) == NULL || (t->text = strdup(text)) == NULL)
            return ota_json_errf(err, errlen, path, key, "out of memory");
    }
    qsort(*v, *n, sizeof **v, cmp_lang);
    return 0;
}

static const char *lang_find(const ota_lang_text *v, size_t n, const char *lang)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].lang, lang) == 0)
            return v[i].text;
    }
    return NULL;
}

/* One of prompt / result_info: a text (as before issue 17) or {tag: text}; the default
 * language's text goes to *text. */
static int pkg_text(const cJSON *j, const char *path, const char *key, const char *language,
                    char **text, ota_lang_text **v, size_t *n, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
    const char *s = NULL;
    if (!cJSON_IsObject(it)) {
        if (ota_json_get_text(j, path, key, false, &s, err, errlen) < 0)
            return -1;
        *text = s ? strdup(s) : NULL;
        return s && !*text ? ota_json_errf(err, errlen, path, key, "out of memory") : 0;
    }
    if (language == NULL)
        return ota_json_errf(err, errlen, path, "language",
                             "missing (the default language of per-language texts)");
    if (lang_map(it, path, key, v, n, err, errlen) < 0)
        return -1;
    if ((s = lang_find(*v, *n, language)) == NULL)
        return ota_json_errf(err, errlen, path, key, "no text in the default language %s",
                             language);
    *text = strdup(s);
    return *text ? 0 : ota_json_errf(err, errlen, path, key, "out of memory");
}

int ota_json_pkg_texts(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                       size_t errlen)
{
    const char *language = NULL;
    if (ota_json_get_word(j, path, "language", false, &language, err, errlen) < 0)
        return -1;
    if (language && !ota_lang_tag_valid(language))
        return ota_json_errf(err, errlen, path, "language",
                             "\"%s\" is not a language tag (e.g. en, de-AT)", language);
    if (pkg_text(j, path, "prompt", language, &out->prompt, &out->prompts, &out->n_prompts, err,
                 errlen) < 0 ||
        pkg_text(j, path, "result_info", language, &out->result_info, &out->result_infos,
                 &out->n_result_infos, err, errlen) < 0)
        return -1;
    if (language && out->n_prompts == 0 && out->n_result_infos == 0)
        return ota_json_errf(err, errlen, path, "language",
                             "only with prompt or result_info given per language");
    out->language = language ? strdup(language) : NULL;
    return language && !out->language
               ? ota_json_errf(err, errlen, path, "language", "out of memory")
               : 0;
}

static bool add_lang_map(cJSON *o, const char *key, const ota_lang_text *v, size_t n)
{
    cJSON *m = cJSON_AddObjectToObject(o, key);
    for (size_t i = 0; m && i < n; i++) {
        if (!cJSON_AddStringToObject(m, v[i].lang, v[i].text))
            return false;
    }
    return m != NULL;
}

bool ota_json_add_pkg_texts(cJSON *o, const ota_package_rec *r)
{
    bool ok = r->language == NULL || cJSON_AddStringToObject(o, "language", r->language);
    if (ok && r->n_prompts > 0)
        ok = add_lang_map(o, "prompt", r->prompts, r->n_prompts);
    else if (ok && r->prompt)
        ok = cJSON_AddStringToObject(o, "prompt", r->prompt) != NULL;
    if (ok && r->n_result_infos > 0)
        ok = add_lang_map(o, "result_info", r->result_infos, r->n_result_infos);
    else if (ok && r->result_info)
        ok = cJSON_AddStringToObject(o, "result_info", r->result_info) != NULL;
    return ok;
}

/* ---------------------------------------------------------------- install mode */

static const char *const pkg_install_modes[] = {"forced", "soft", "download_only"};

int ota_json_pkg_install_mode(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                              size_t errlen)
{
    int mode = -1;
    if (ota_json_get_enum(j, path, "install_mode", false, pkg_install_modes, 3, &mode, err,
                          errlen) < 0)
        return -1;
    out->has_install_mode = mode >= 0;
    out->install_mode = mode >= 0 ? mode : OTA_INSTALL_FORCED;
    return 0;
}

bool ota_json_add_pkg_install_mode(cJSON *o, const ota_package_rec *r)
{
    return !r->has_install_mode ||
           cJSON_AddStringToObject(o, "install_mode",
                                   ota_install_mode_name((ota_install_mode)r->install_mode));
}

/* ---------------------------------------------------------------- RXSWIN changes */

static const char *const change_fields[] = {"task",  "vin", "package", "before",
                                            "after", "at",  NULL};

int ota_json_rxswin_change(const cJSON *j, const char *path, ota_rxswin_change_rec *out, char *err,
                           size_t errlen)
{
    const char *task, *vin;
    uint64_t at = 0;
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, change_fields, err, errlen) < 0 ||
        ota_json_get_word(j, path, "task", true, &task, err, errlen) < 0 ||
        ota_json_get_vin(j, path, "vin", true, &vin, err, errlen) < 0 ||
        ota_json_get_uint(j, path, "package", true, 1, OTA_JSON_UINT_MAX, &out->package, err,
                          errlen) < 0 ||
        ota_json_get_uint(j, path, "at", true, 0, OTA_JSON_UINT_MAX, &at, err, errlen) < 0 ||
        ota_json_get_rxswin(j, path, "before", &out->before, err, errlen) < 0 ||
        ota_json_get_rxswin(j, path, "after", &out->after, err, errlen) < 0) {
        ota_rxswin_change_rec_free(out);
        return -1;
    }
    out->at_ms = (int64_t)at;
    out->task = strdup(task);
    out->vin = strdup(vin);
    if (!out->task || !out->vin) {
        ota_rxswin_change_rec_free(out);
        return ota_json_errf(err, errlen, path, NULL, "out of memory");
    }
    return 0;
}

cJSON *ota_json_from_rxswin_change(const ota_rxswin_change_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "task", r->task) &&
              cJSON_AddStringToObject(o, "vin", r->vin) &&
              ota_json_add_u64(o, "package", r->package) &&
              ota_json_add_rxswin(o, "before", r->before ? r->before : "") &&
              ota_json_add_rxswin(o, "after", r->after ? r->after : "") &&
              ota_json_add_i64(o, "at", r->at_ms);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
