/*
 * task_retry.c — a task's retry policy (task_retry.h).
 */
#include "task_retry.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <string.h>

int ota_task_retry_parse(const cJSON *obj, const char *path, ota_task_retry *r, char *err,
                         size_t errlen)
{
    static const char *const fields[] = {"on", "max_retries", "backoff_ms", "backoff_factor",
                                         NULL};
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "retry");
    *r = (ota_task_retry){0};
    if (!j) {
        return 0;
    }
    char p[64];
    snprintf(p, sizeof(p), "%s%sretry", path ? path : "", path && *path ? "." : "");
    char **words = NULL;
    size_t n = 0;
    uint64_t max = 0, backoff = 0;
    if (ota_json_check_fields(j, p, fields, err, errlen) != 0 ||
        ota_json_get_string_array(j, p, "on", true, 1, OTA_RETRY_WORDS_MAX, OTA_JSON_UNIQUE,
                                  &words, &n, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(r->words[i], sizeof(r->words[i]), "%s", words[i]);
    }
    ota_json_strings_free(words, n);
    r->n_words = n;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "backoff_factor");
    if (ota_json_get_uint(j, p, "max_retries", true, 1, 100, &max, err, errlen) ||
        ota_json_get_uint(j, p, "backoff_ms", false, 0, 86400000, &backoff, err, errlen)) {
        return -1;
    }
    if (f && (!cJSON_IsNumber(f) || f->valuedouble < 1 || f->valuedouble > 10)) {
        return ota_json_errf(err, errlen, p, "backoff_factor", "expected a number in 1..10");
    }
    r->max_retries = (unsigned)max;
    r->backoff_ms = backoff;
    r->factor = f ? f->valuedouble : 2.0;
    r->on = true;
    return 0;
}

cJSON *ota_task_retry_json(const ota_task_retry *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *on = cJSON_AddArrayToObject(o, "on");
    for (size_t i = 0; on && i < r->n_words; i++) {
        cJSON_AddItemToArray(on, cJSON_CreateString(r->words[i]));
    }
    cJSON_AddNumberToObject(o, "max_retries", r->max_retries);
    cJSON_AddNumberToObject(o, "backoff_ms", (double)r->backoff_ms);
    cJSON_AddNumberToObject(o, "backoff_factor", r->factor);
    return o;
}

bool ota_task_retry_wanted(const ota_task_retry *r, const char *word, unsigned done)
{
    if (!r->on || done >= r->max_retries) {
        return false;
    }
    for (size_t i = 0; i < r->n_words; i++) {
        if (strcmp(r->words[i], word ? word : "failed") == 0) {
            return true;
        }
    }
    return false;
}

int64_t ota_task_retry_backoff(const ota_task_retry *r, unsigned done)
{
    double ms = (double)r->backoff_ms;
    for (unsigned i = 0; i < done && ms < 86400000.0; i++) {
        ms *= r->factor;
    }
    return ms < 86400000.0 ? (int64_t)ms : 86400000;
}
