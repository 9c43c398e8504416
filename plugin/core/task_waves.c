/*
 * task_waves.c — a task's waves: parsing, the stored plan, counts and the promotion /
 * abort decisions (task_waves.h). The plan is a string, one character per execution in
 * the task's VIN order: '0' + wave, or '-' for an execution in no wave.
 */
#include "task_waves.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const approval_names[] = {"none", "first", "each"};

static int parse_one(const cJSON *item, const char *path, ota_task_waves *w, size_t i,
                     char *err, size_t errlen)
{
    static const char *const fields[] = {"count", "percent", "success_threshold",
                                         "error_threshold", NULL};
    uint64_t count = 0, ok = 100, bad = 0;
    if (ota_json_check_fields(item, path, fields, err, errlen) != 0 ||
        ota_json_get_uint(item, path, "count", false, 1, OTA_JSON_UINT_MAX, &count, err,
                          errlen) != 0 ||
        ota_json_get_uint(item, path, "success_threshold", false, 0, 100, &ok, err, errlen) ||
        ota_json_get_uint(item, path, "error_threshold", false, 0, 100, &bad, err, errlen)) {
        return -1;
    }
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(item, "percent");
    if ((pc != NULL) == (count != 0)) {
        return ota_json_errf(err, errlen, path, NULL, "give count or percent");
    }
    if (pc) {
        if (!cJSON_IsNumber(pc) || pc->valuedouble <= 0 || pc->valuedouble > 100) {
            return ota_json_errf(err, errlen, path, "percent", "expected a number in (0, 100]");
        }
        w->specs[i] = (ota_wave_spec){true, (uint64_t)(pc->valuedouble * 100 + 0.5)};
        if (w->specs[i].value == 0) {
            w->specs[i].value = 1;
        }
    } else {
        w->specs[i] = (ota_wave_spec){false, count};
    }
    w->success_pct[i] = (uint8_t)ok;
    w->error_pct[i] = (uint8_t)bad;
    return 0;
}

/* The members shared by a request and a stored document: waves, wave_approval. */
static int parse_specs(const cJSON *obj, const char *path, const char *key, ota_task_waves *w,
                       char *err, size_t errlen)
{
    const cJSON *arr = NULL;
    size_t n = 0;
    int approval = 0;
    if (ota_json_get_array(obj, path, key, true, 1, OTA_WAVES_MAX, &arr, &n, err, errlen) != 0 ||
        ota_json_get_enum(obj, path, "wave_approval", false, approval_names, 3, &approval, err,
                          errlen) != 0) {
        return -1;
    }
    w->n_specs = n;
    w->approval = (ota_wave_approval)approval;
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        char p[64];
        snprintf(p, sizeof(p), "%s%s%s[%zu]", path ? path : "", path && *path ? "." : "", key, i);
        if (parse_one(item, p, w, i, err, errlen) != 0) {
            return -1;
        }
        i++;
    }
    w->success_pct[n] = 100;
    w->error_pct[n] = n > 0 ? w->error_pct[n - 1] : 0; /* the rest keeps the last wave's */
    return ota_waves_check(w->specs, n, err, errlen);
}

int ota_task_waves_parse(const cJSON *task, const char *path, ota_task_waves **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!cJSON_GetObjectItemCaseSensitive(task, "waves")) {
        if (cJSON_GetObjectItemCaseSensitive(task, "wave_approval")) {
            return ota_json_errf(err, errlen, path, "wave_approval", "needs waves");
        }
        return 0;
    }
    ota_task_waves *w = calloc(1, sizeof(*w));
    if (!w) {
        return ota_json_errf(err, errlen, path, "waves", "out of memory");
    }
    if (parse_specs(task, path, "waves", w, err, errlen) != 0) {
        free(w);
        return -1;
    }
    w->approved = w->approval == OTA_APPROVAL_NONE ? OTA_WAVES_MAX + 1 : 0;
    *out = w;
    return 0;
}

void ota_task_waves_free(ota_task_waves *w)
{
    if (w) {
        free(w->wave_of);
        free(w);
    }
}

int ota_task_waves_plan(ota_task_waves *w, const char *task_id, const char *const *vins,
                        const bool *accepted, size_t n)
{
    const char **acc = calloc(n ? n : 1, sizeof(*acc));
    uint8_t *plan = malloc(n ? n : 1);
    w->wave_of = malloc(n ? n : 1);
    if (!acc || !plan || !w->wave_of) {
        free(acc), free(plan);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (accepted[i]) {
            acc[k++] = vins[i];
        }
    }
    int rc = ota_waves_plan(task_id, acc, k, w->specs, w->n_specs, plan);
    for (size_t i = 0, j = 0; rc == 0 && i < n; i++) {
        w->wave_of[i] = accepted[i] ? plan[j++] : OTA_WAVE_NONE;
    }
    w->n_of = n;
    free(acc), free(plan);
    return rc;
}

/* ---------------------------------------------------------------- the document */

static cJSON *specs_json(const ota_task_waves *w)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < w->n_specs; i++) {
        cJSON *o = cJSON_CreateObject();
        if (w->specs[i].percent) {
            cJSON_AddNumberToObject(o, "percent", (double)w->specs[i].value / 100.0);
        } else {
            cJSON_AddNumberToObject(o, "count", (double)w->specs[i].value);
        }
        cJSON_AddNumberToObject(o, "success_threshold", w->success_pct[i]);
        cJSON_AddNumberToObject(o, "error_threshold", w->error_pct[i]);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *ota_task_waves_json(const ota_task_waves *w)
{
    cJSON *o = cJSON_CreateObject();
    char *plan = malloc(w->n_of + 1);
    if (!o || !plan) {
        cJSON_Delete(o);
        free(plan);
        return NULL;
    }
    for (size_t i = 0; i < w->n_of; i++) {
        plan[i] = w->wave_of[i] == OTA_WAVE_NONE ? '-' : (char)('0' + w->wave_of[i]);
    }
    plan[w->n_of] = '\0';
    cJSON_AddItemToObject(o, "waves", specs_json(w));
    cJSON_AddStringToObject(o, "wave_approval", approval_names[w->approval]);
    cJSON_AddNumberToObject(o, "current", w->current);
    cJSON_AddNumberToObject(o, "approved", w->approved);
    cJSON_AddStringToObject(o, "plan", plan);
    free(plan);
    return o;
}

static int plan_from(const cJSON *j, ota_task_waves *w, char *err, size_t errlen)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "plan");
    if (!cJSON_IsString(p)) {
        return ota_json_errf(err, errlen, "waves", "plan", "expected a string");
    }
    size_t n = strlen(p->valuestring);
    w->wave_of = malloc(n ? n : 1);
    if (!w->wave_of) {
        return ota_json_errf(err, errlen, "waves", "plan", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char c = p->valuestring[i];
        if (c != '-' && (c < '0' || c > '0' + (int)w->n_specs)) {
            return ota_json_errf(err, errlen, "waves", "plan", "bad wave at %zu", i);
        }
        w->wave_of[i] = c == '-' ? OTA_WAVE_NONE : (uint8_t)(c - '0');
    }
    w->n_of = n;
    return 0;
}

int ota_task_waves_from_json(const cJSON *j, ota_task_waves **out, char *err, size_t errlen)
{
    static const char *const fields[] = {"waves", "wave_approval", "current", "approved", "plan",
                                         NULL};
    uint64_t cur = 0, appr = 0;
    ota_task_waves *w = calloc(1, sizeof(*w));
    *out = NULL;
    if (!w) {
        return ota_json_errf(err, errlen, "waves", NULL, "out of memory");
    }
    if (ota_json_check_fields(j, "waves", fields, err, errlen) != 0 ||
        parse_specs(j, "waves", "waves", w, err, errlen) != 0 ||
        ota_json_get_uint(j, "waves", "current", true, 0, OTA_WAVES_MAX, &cur, err, errlen) ||
        ota_json_get_uint(j, "waves", "approved", true, 0, OTA_WAVES_MAX + 1, &appr, err,
                          errlen) ||
        plan_from(j, w, err, errlen) != 0) {
        ota_task_waves_free(w);
        return -1;
    }
    w->current = (uint8_t)cur;
    w->approved = (uint8_t)appr;
    *out = w;
    return 0;
}

/* ---------------------------------------------------------------- counts, decisions */

uint8_t ota_task_waves_of(const ota_task_waves *w, size_t idx)
{
    return idx < w->n_of ? w->wave_of[idx] : OTA_WAVE_NONE;
}

void ota_task_waves_reset(ota_task_waves *w, size_t n)
{
    memset(w->size, 0, sizeof(w->size));
    memset(w->count, 0, sizeof(w->count));
    if (w->n_of == n) {
        return;
    }
    uint8_t *of = realloc(w->wave_of, n ? n : 1); /* a plan that does not fit */
    if (!of) {
        w->n_of = 0;
        return;
    }
    w->wave_of = of;
    memset(of, 0, n);
    w->n_of = n;
}

void ota_task_waves_add(ota_task_waves *w, size_t idx, uint8_t state)
{
    uint8_t wv = ota_task_waves_of(w, idx);
    if (wv != OTA_WAVE_NONE && state < OTA_EXEC_STATE_COUNT) {
        w->size[wv]++;
        w->count[wv][state]++;
    }
}

void ota_task_waves_moved(ota_task_waves *w, size_t idx, uint8_t from, uint8_t to)
{
    uint8_t wv = ota_task_waves_of(w, idx);
    if (wv == OTA_WAVE_NONE || from >= OTA_EXEC_STATE_COUNT || to >= OTA_EXEC_STATE_COUNT) {
        return;
    }
    w->count[wv][from]--;
    w->count[wv][to]++;
}

size_t ota_task_waves_count(const ota_task_waves *w)
{
    size_t n = 0;
    for (size_t i = 0; i <= w->n_specs; i++) {
        if (w->size[i] > 0) {
            n = i + 1;
        }
    }
    return n;
}

bool ota_task_waves_may_notify(const ota_task_waves *w, size_t idx)
{
    uint8_t wv = ota_task_waves_of(w, idx);
    return wv != OTA_WAVE_NONE && wv <= w->current && wv < w->approved;
}

bool ota_task_waves_due(const ota_task_waves *w)
{
    size_t c = w->current;
    if (c + 1 >= ota_task_waves_count(w) || c >= w->approved) {
        return false;
    }
    return w->count[c][OTA_EXEC_SUCCEEDED] * 100 >= w->size[c] * w->success_pct[c];
}

bool ota_task_waves_failing(const ota_task_waves *w)
{
    size_t c = w->current;
    size_t bad = w->count[c][OTA_EXEC_FAILED];
    size_t done = bad + w->count[c][OTA_EXEC_SUCCEEDED];
    return w->error_pct[c] > 0 && done > 0 && bad * 100 >= done * w->error_pct[c];
}

bool ota_task_waves_promote(ota_task_waves *w)
{
    if ((size_t)w->current + 1 >= ota_task_waves_count(w)) {
        return false;
    }
    w->current++;
    if (w->approval == OTA_APPROVAL_FIRST && w->approved <= w->current) {
        w->approved = OTA_WAVES_MAX + 1; /* only the first wave waits */
    }
    return true;
}

bool ota_task_waves_approve(ota_task_waves *w)
{
    if (w->approved > w->current) {
        return false;
    }
    w->approved = w->approval == OTA_APPROVAL_FIRST ? OTA_WAVES_MAX + 1 : w->current + 1;
    return true;
}

cJSON *ota_task_waves_report(const ota_task_waves *w)
{
    cJSON *arr = cJSON_CreateArray();
    size_t n = ota_task_waves_count(w);
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "wave", (double)i);
        cJSON_AddNumberToObject(o, "size", (double)w->size[i]);
        cJSON_AddBoolToObject(o, "started", i <= w->current);
        cJSON_AddBoolToObject(o, "approved", i < w->approved);
        for (int s = 0; s < OTA_EXEC_STATE_COUNT; s++) {
            cJSON_AddNumberToObject(c, ota_exec_state_name((ota_exec_state)s),
                                    (double)w->count[i][s]);
        }
        cJSON_AddItemToObject(o, "counts", c);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* ---------------------------------------------------------------- late joiners (issue 16) */

int ota_task_waves_append(ota_task_waves *w, uint8_t wave, uint8_t state)
{
    uint8_t *of = realloc(w->wave_of, w->n_of + 1);
    if (!of) {
        return -1;
    }
    w->wave_of = of;
    w->wave_of[w->n_of++] = wave;
    ota_task_waves_add(w, w->n_of - 1, state);
    return 0;
}

void ota_task_waves_set(ota_task_waves *w, size_t idx, uint8_t wave, uint8_t from, uint8_t to)
{
    uint8_t old = ota_task_waves_of(w, idx);
    if (idx >= w->n_of || from >= OTA_EXEC_STATE_COUNT) {
        return;
    }
    if (old != OTA_WAVE_NONE) {
        w->size[old]--;
        w->count[old][from]--;
    }
    w->wave_of[idx] = wave;
    ota_task_waves_add(w, idx, to);
}
