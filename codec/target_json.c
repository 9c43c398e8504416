/*
 * target_json.c — the target query (ota_target.h): strict JSON parsing with errors that
 * name the field, the emitter, copy and free.
 *
 * Parsing reads each known field with the catalog codec's field helpers
 * (ota_catalog_json.h) so the errors read like every other command's
 * ("task.target.status[1]: duplicate \"sold\" (also at [0])").
 */
#include "ota_target.h"

#include "ota_catalog_json.h"
#include "ota_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const target_fields[] = {"model",    "series",          "fw",
                                            "fw_below", "vin_prefix",      "status",
                                            "usage",    "config_bits_set", "config_bits_clear",
                                            "lists",    "not_lists",       "groups",
                                            NULL};

static const char *const list_names[OTA_LIST_COUNT] = {
    "blacklist", "forced_whitelist", "same_version_whitelist", "downgrade_whitelist"};

void ota_target_free(ota_target *t)
{
    if (t == NULL)
        return;
    free(t->model);
    free(t->series);
    free(t->fw);
    free(t->fw_below);
    free(t->vin_prefix);
    ota_json_strings_free(t->statuses, t->n_statuses);
    ota_json_strings_free(t->usages, t->n_usages);
    ota_json_strings_free(t->groups, t->n_groups);
    free(t->bits_set);
    free(t->bits_clear);
    free(t->lists);
    free(t->not_lists);
    memset(t, 0, sizeof *t);
}

/* ---- parsing ---- */

static int copy_word(const cJSON *j, const char *path, const char *key, char **dst, char *err,
                     size_t errlen)
{
    const char *s = NULL;
    if (ota_json_get_word(j, path, key, false, &s, err, errlen) < 0)
        return -1;
    if (s != NULL && (*dst = strdup(s)) == NULL)
        return ota_json_errf(err, errlen, path, key, "out of memory");
    return 0;
}

/* 1..17 characters of the VIN alphabet (0-9, A-Z without I, O, Q). */
static bool vin_prefix_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OTA_VIN_LEN)
        return false;
    char vin[OTA_VIN_LEN + 1];
    memset(vin, '0', OTA_VIN_LEN);
    vin[OTA_VIN_LEN] = '\0';
    memcpy(vin, s, n);
    return ota_vin_valid(vin);
}

static int parse_prefix(const cJSON *j, const char *path, ota_target *out, char *err, size_t errlen)
{
    if (copy_word(j, path, "vin_prefix", &out->vin_prefix, err, errlen) < 0)
        return -1;
    if (out->vin_prefix != NULL && !vin_prefix_valid(out->vin_prefix))
        return ota_json_errf(err, errlen, path, "vin_prefix",
                             "\"%s\" is not a VIN prefix (1..17 of 0-9, A-Z without I, O, Q)",
                             out->vin_prefix);
    return 0;
}

/* "key[i]" for errors. */
static void item_name(char *buf, size_t size, const char *key, size_t i)
{
    snprintf(buf, size, "%s[%zu]", key, i);
}

static int parse_bits(const cJSON *j, const char *path, const char *key, uint32_t **out, size_t *n,
                      char *err, size_t errlen)
{
    const cJSON *arr, *e;
    size_t count, i = 0;
    if (ota_json_get_array(j, path, key, false, 1, OTA_TARGET_VALUES_MAX, &arr, &count, err,
                           errlen) < 0)
        return -1;
    if (arr == NULL)
        return 0;
    if ((*out = calloc(count, sizeof **out)) == NULL)
        return ota_json_errf(err, errlen, path, key, "out of memory");
    cJSON_ArrayForEach(e, arr)
    {
        char item[48];
        item_name(item, sizeof item, key, i);
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!cJSON_IsNumber(e) || v < 0 || v > OTA_TARGET_BIT_MAX || v != (double)(uint32_t)v)
            return ota_json_errf(err, errlen, path, item, "expected a bit number 0..%d",
                                 OTA_TARGET_BIT_MAX);
        for (size_t k = 0; k < i; k++) {
            if ((*out)[k] == (uint32_t)v)
                return ota_json_errf(err, errlen, path, item, "duplicate bit %u (also at [%zu])",
                                     (unsigned)v, k);
        }
        (*out)[i++] = (uint32_t)v;
        *n = i;
    }
    return 0;
}

static int parse_lists(const cJSON *j, const char *path, const char *key, ota_list_kind **out,
                       size_t *n, char *err, size_t errlen)
{
    const cJSON *arr, *e;
    size_t count, i = 0;
    if (ota_json_get_array(j, path, key, false, 1, OTA_LIST_COUNT, &arr, &count, err, errlen) < 0)
        return -1;
    if (arr == NULL)
        return 0;
    if ((*out = calloc(count, sizeof **out)) == NULL)
        return ota_json_errf(err, errlen, path, key, "out of memory");
    cJSON_ArrayForEach(e, arr)
    {
        char item[48];
        item_name(item, sizeof item, key, i);
        int l = cJSON_IsString(e) ? ota_list_from_name(e->valuestring) : -1;
        if (l < 0)
            return ota_json_errf(err, errlen, path, item,
                                 "expected blacklist|forced_whitelist|same_version_whitelist|"
                                 "downgrade_whitelist");
        for (size_t k = 0; k < i; k++) {
            if ((*out)[k] == (ota_list_kind)l)
                return ota_json_errf(err, errlen, path, item, "duplicate \"%s\" (also at [%zu])",
                                     list_names[l], k);
        }
        (*out)[i++] = (ota_list_kind)l;
        *n = i;
    }
    return 0;
}

static int parse_words(const cJSON *j, const char *path, ota_target *out, char *err, size_t errlen)
{
    return copy_word(j, path, "model", &out->model, err, errlen) ||
                   copy_word(j, path, "series", &out->series, err, errlen) ||
                   copy_word(j, path, "fw", &out->fw, err, errlen) ||
                   copy_word(j, path, "fw_below", &out->fw_below, err, errlen) ||
                   parse_prefix(j, path, out, err, errlen)
               ? -1
               : 0;
}

static int parse_sets(const cJSON *j, const char *path, ota_target *out, char *err, size_t errlen)
{
    const unsigned u = OTA_JSON_UNIQUE;
    const size_t vmax = OTA_TARGET_VALUES_MAX;
    return ota_json_get_string_array(j, path, "status", false, 1, vmax, u, &out->statuses,
                                     &out->n_statuses, err, errlen) ||
                   ota_json_get_string_array(j, path, "usage", false, 1, vmax, u, &out->usages,
                                             &out->n_usages, err, errlen) ||
                   ota_json_get_string_array(j, path, "groups", false, 1, OTA_TARGET_GROUPS_MAX, u,
                                             &out->groups, &out->n_groups, err, errlen) ||
                   parse_bits(j, path, "config_bits_set", &out->bits_set, &out->n_bits_set, err,
                              errlen) ||
                   parse_bits(j, path, "config_bits_clear", &out->bits_clear, &out->n_bits_clear,
                              err, errlen) ||
                   parse_lists(j, path, "lists", &out->lists, &out->n_lists, err, errlen) ||
                   parse_lists(j, path, "not_lists", &out->not_lists, &out->n_not_lists, err,
                               errlen)
               ? -1
               : 0;
}

/* A bit both required set and clear, or a list both required and excluded, can match
 * nothing: most likely a mistake, refused. */
static int check_contradictions(const ota_target *t, const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n_bits_set; i++) {
        for (size_t k = 0; k < t->n_bits_clear; k++) {
            if (t->bits_set[i] == t->bits_clear[k])
                return ota_json_errf(err, errlen, path, "config_bits_clear",
                                     "bit %u is also in config_bits_set", t->bits_set[i]);
        }
    }
    for (size_t i = 0; i < t->n_lists; i++) {
        for (size_t k = 0; k < t->n_not_lists; k++) {
            if (t->lists[i] == t->not_lists[k])
                return ota_json_errf(err, errlen, path, "not_lists", "\"%s\" is also in lists",
                                     list_names[t->lists[i]]);
        }
    }
    return 0;
}

int ota_json_target(const cJSON *j, const char *path, ota_target *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, target_fields, err, errlen) < 0 ||
        parse_words(j, path, out, err, errlen) < 0 || parse_sets(j, path, out, err, errlen) < 0 ||
        check_contradictions(out, path, err, errlen) < 0) {
        ota_target_free(out);
        return -1;
    }
    return 0;
}

/* ---- emitting ---- */

static bool add_word(cJSON *o, const char *key, const char *s)
{
    return s == NULL || cJSON_AddStringToObject(o, key, s) != NULL;
}

/* An array member of n items made by make(v, i); nothing when v is NULL (absent). */
typedef cJSON *(*item_fn)(const void *v, size_t i);

static bool add_array(cJSON *o, const char *key, const void *v, size_t n, item_fn make)
{
    if (v == NULL)
        return true;
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (!cJSON_AddItemToArray(a, make(v, i)))
            return false;
    }
    return a != NULL;
}

static cJSON *word_item(const void *v, size_t i)
{
    return cJSON_CreateString(((char *const *)v)[i]);
}

static cJSON *bit_item(const void *v, size_t i)
{
    return cJSON_CreateNumber(((const uint32_t *)v)[i]);
}

static cJSON *list_item(const void *v, size_t i)
{
    return cJSON_CreateString(list_names[((const ota_list_kind *)v)[i]]);
}

cJSON *ota_json_from_target(const ota_target *t)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && add_word(o, "model", t->model) && add_word(o, "series", t->series) &&
              add_word(o, "fw", t->fw) && add_word(o, "fw_below", t->fw_below) &&
              add_word(o, "vin_prefix", t->vin_prefix) &&
              add_array(o, "status", t->statuses, t->n_statuses, word_item) &&
              add_array(o, "usage", t->usages, t->n_usages, word_item) &&
              add_array(o, "config_bits_set", t->bits_set, t->n_bits_set, bit_item) &&
              add_array(o, "config_bits_clear", t->bits_clear, t->n_bits_clear, bit_item) &&
              add_array(o, "lists", t->lists, t->n_lists, list_item) &&
              add_array(o, "not_lists", t->not_lists, t->n_not_lists, list_item) &&
              add_array(o, "groups", t->groups, t->n_groups, word_item);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- copying ---- */

static int dup_str(const char *s, char **out)
{
    *out = NULL;
    return s == NULL || (*out = strdup(s)) != NULL ? 0 : -1;
}

static int dup_strs(char *const *v, size_t n, char ***out)
{
    *out = NULL;
    if (v == NULL)
        return 0;
    if ((*out = calloc(n ? n : 1, sizeof **out)) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (dup_str(v[i], &(*out)[i]) < 0)
            return -1;
    }
    return 0;
}

static int dup_mem(const void *v, size_t n, size_t size, void **out)
{
    *out = NULL;
    if (v == NULL)
        return 0;
    if ((*out = malloc(n ? n * size : 1)) == NULL)
        return -1;
    memcpy(*out, v, n * size);
    return 0;
}

int ota_target_copy(const ota_target *t, ota_target *out)
{
    memset(out, 0, sizeof *out);
    out->n_statuses = t->n_statuses;
    out->n_usages = t->n_usages;
    out->n_groups = t->n_groups;
    out->n_bits_set = t->n_bits_set;
    out->n_bits_clear = t->n_bits_clear;
    out->n_lists = t->n_lists;
    out->n_not_lists = t->n_not_lists;
    int rc =
        dup_str(t->model, &out->model) | dup_str(t->series, &out->series) |
        dup_str(t->fw, &out->fw) | dup_str(t->fw_below, &out->fw_below) |
        dup_str(t->vin_prefix, &out->vin_prefix) |
        dup_strs(t->statuses, t->n_statuses, &out->statuses) |
        dup_strs(t->usages, t->n_usages, &out->usages) |
        dup_strs(t->groups, t->n_groups, &out->groups) |
        dup_mem(t->bits_set, t->n_bits_set, sizeof *t->bits_set, (void **)&out->bits_set) |
        dup_mem(t->bits_clear, t->n_bits_clear, sizeof *t->bits_clear, (void **)&out->bits_clear) |
        dup_mem(t->lists, t->n_lists, sizeof *t->lists, (void **)&out->lists) |
        dup_mem(t->not_lists, t->n_not_lists, sizeof *t->not_lists, (void **)&out->not_lists);
    if (rc != 0) {
        ota_target_free(out);
        return -1;
    }
    return 0;
}
