/*
 * records.c — names, freeing and version order of the catalog records (ota_records.h).
 */
#include "ota_records.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const list_names[OTA_LIST_COUNT] = {
    "blacklist", "forced_whitelist", "same_version_whitelist", "downgrade_whitelist"};
static const char *const status_names[] = {"draft", "verified", "released", "deprecated"};
static const char *const task_type_names[OTA_TASK_TYPE_COUNT] = {
    "normal", "forced", "factory", "spot_check", "diagnostic"};
static const char *const source_names[] = {"console", "diagnostic_tool"};

static int index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *ota_list_name(ota_list_kind k)
{
    return (unsigned)k < OTA_LIST_COUNT ? list_names[k] : NULL;
}

int ota_list_from_name(const char *name)
{
    return index_of(list_names, OTA_LIST_COUNT, name);
}

const char *ota_pkg_status_name(ota_pkg_status s)
{
    return (unsigned)s <= OTA_PKG_DEPRECATED ? status_names[s] : NULL;
}

int ota_pkg_status_from_name(const char *name)
{
    return index_of(status_names, 4, name);
}

const char *ota_task_type_name(ota_task_type t)
{
    return (unsigned)t < OTA_TASK_TYPE_COUNT ? task_type_names[t] : NULL;
}

int ota_task_type_from_name(const char *name)
{
    return index_of(task_type_names, OTA_TASK_TYPE_COUNT, name);
}

const char *ota_task_source_name(ota_task_source s)
{
    return (unsigned)s <= OTA_SOURCE_DIAGNOSTIC_TOOL ? source_names[s] : NULL;
}

int ota_task_source_from_name(const char *name)
{
    return index_of(source_names, 2, name);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void ota_vehicle_rec_free(ota_vehicle_rec *r)
{
    free(r->vin);
    free(r->model);
    free(r->series);
    free(r->platform);
    free(r->status);
    free(r->usage);
    free(r->config_word);
    free(r->fw);
    free(r->rxswin);
    memset(r, 0, sizeof(*r));
}

void ota_rxswin_change_rec_free(ota_rxswin_change_rec *r)
{
    free(r->task);
    free(r->vin);
    free(r->before);
    free(r->after);
    memset(r, 0, sizeof(*r));
}

static void free_lang_texts(ota_lang_text *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].lang);
        free(v[i].text);
    }
    free(v);
}

void ota_model_rec_free(ota_model_rec *r)
{
    free(r->model);
    free(r->series);
    free_strings(r->ecus, r->n_ecus);
    for (size_t i = 0; i < r->n_ignore; i++) {
        free_strings(r->ignore[i].ecus, r->ignore[i].n_ecus);
    }
    free(r->ignore);
    memset(r, 0, sizeof(*r));
}

void ota_package_rec_free(ota_package_rec *r)
{
    free(r->model);
    free(r->series);
    free(r->version);
    free(r->from);
    free(r->baseline_description);
    free(r->prompt);
    free(r->result_info);
    free(r->language);
    free_lang_texts(r->prompts, r->n_prompts);
    free_lang_texts(r->result_infos, r->n_result_infos);
    free(r->rxswin);
    free(r->sealed_key);
    for (size_t i = 0; i < r->n_ecus; i++) {
        free(r->ecus[i].ecu);
        free(r->ecus[i].version);
        free(r->ecus[i].name);
    }
    free(r->ecus);
    explicit_bzero(r, sizeof(*r)); /* the content key too */
}

void ota_strategy_rec_free(ota_strategy_rec *r)
{
    free(r->id);
    for (size_t i = 0; i < r->n_ecus; i++) {
        free(r->ecus[i].ecu);
    }
    free(r->ecus);
    memset(r, 0, sizeof(*r));
}

void ota_task_rec_free(ota_task_rec *r)
{
    free(r->id);
    free(r->name);
    free(r->model);
    free(r->series);
    free(r->version);
    free_strings(r->vins, r->n_vins);
    memset(r, 0, sizeof(*r));
}

void ota_task_type_rules_free(ota_task_type_rules *r)
{
    free_strings(r->statuses, r->n_statuses);
    free_strings(r->usages, r->n_usages);
    memset(r, 0, sizeof(*r));
}

/* Length of the part of s up to the next '.' (or the end). */
static size_t part_len(const char *s)
{
    const char *dot = strchr(s, '.');
    return dot ? (size_t)(dot - s) : strlen(s);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return n > 0;
}

/* Compares one part: numbers by value (ignoring leading zeros), else bytewise. */
static int part_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    if (all_digits(a, na) && all_digits(b, nb)) {
        while (na > 1 && *a == '0') {
            a++, na--;
        }
        while (nb > 1 && *b == '0') {
            b++, nb--;
        }
        if (na != nb) {
            return na < nb ? -1 : 1;
        }
    }
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na < nb ? -1 : na > nb ? 1 : 0);
}

int ota_version_cmp(const char *a, const char *b)
{
    for (;;) {
        size_t na = part_len(a), nb = part_len(b);
        int c = part_cmp(a, na, b, nb);
        if (c) {
            return c;
        }
        a += na, b += nb;
        if (*a == '\0' || *b == '\0') {
            return *a ? 1 : *b ? -1 : 0;
        }
        a++, b++;
    }
}
