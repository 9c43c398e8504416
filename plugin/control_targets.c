/*
 * control_targets.c — a task's `target` (issue 16) and previewTarget
 * (docs/operator-api.md "Groups and targets").
 *
 * createTask and previewTarget read the same task object: with `vins`, as before, or with
 * a `target` query (ota_target.h) that resolves, when the command runs, to the VINs it
 * matches in the catalog — restricted to the task's model and series, which the rules
 * require anyway. The VINs then go through exactly the rules a VIN list does.
 *
 * previewTarget answers what createTask would do without creating anything: how many
 * vehicles match and how many each per-VIN rule rejects (codes of SPEC §6), plus the
 * task-level error that would fail the task, if any. It runs the rules over every
 * matching vehicle but builds no VIN list, so it may preview more vehicles than one task
 * may hold (then `too_large` is true).
 */
#include "catalog.h"
#include "control_targets.h"
#include "ota_catalog_json.h"
#include "target.h"
#include "task_rules.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the task object */

/* The target's model or series: the task's when absent; another one is an error. */
static int pin_word(char **word, const char *task_word, const char *key, char *err, size_t errlen)
{
    if (*word != NULL) {
        if (strcmp(*word, task_word) != 0)
            return ota_json_errf(err, errlen, "task.target", key,
                                 "\"%s\" is not the task's %s (\"%s\")", *word, key, task_word);
        return 0;
    }
    *word = strdup(task_word);
    return *word ? 0 : ota_json_errf(err, errlen, "task.target", key, "out of memory");
}

/* The task without its target, parsed with an empty VIN list. */
static int parse_without_target(const cJSON *task, ota_task_rec *rec, char *err, size_t errlen)
{
    if (cJSON_GetObjectItemCaseSensitive(task, "vins") != NULL)
        return ota_json_errf(err, errlen, "task", "vins", "give either vins or target, not both");
    cJSON *copy = cJSON_Duplicate(task, true);
    if (copy == NULL)
        return ota_json_errf(err, errlen, "task", NULL, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "target");
    int rc = cJSON_AddArrayToObject(copy, "vins") != NULL
                 ? ota_json_task_request(copy, "task", rec, err, errlen)
                 : ota_json_errf(err, errlen, "task", NULL, "out of memory");
    cJSON_Delete(copy);
    return rc;
}

/* Parses the task and its target (without resolving it). */
static int split_task(const cJSON *task, ota_task_rec *rec, ota_target *target, bool *has_target,
                      char *err, size_t errlen)
{
    const cJSON *tj =
        cJSON_IsObject(task) ? cJSON_GetObjectItemCaseSensitive(task, "target") : NULL;
    memset(target, 0, sizeof *target);
    *has_target = tj != NULL;
    if (tj == NULL)
        return ota_json_task_request(task, "task", rec, err, errlen);
    if (parse_without_target(task, rec, err, errlen) != 0)
        return -1;
    if (ota_json_target(tj, "task.target", target, err, errlen) != 0 ||
        pin_word(&target->model, rec->model, "model", err, errlen) != 0 ||
        pin_word(&target->series, rec->series, "series", err, errlen) != 0) {
        ota_task_rec_free(rec);
        ota_target_free(target);
        return -1;
    }
    return 0;
}

static int resolve(ota_plugin *p, const ota_target *target, size_t max, ota_task_rec *rec,
                   char *err, size_t errlen)
{
    ota_target_match *m = NULL;
    char **vins = NULL;
    size_t n = 0;
    if (ota_target_compile(p->catalog, target, NULL, NULL, "task.target", &m, err, errlen) != 0)
        return -1;
    int rc = ota_target_vins(p->catalog, m, max, &vins, &n);
    ota_target_match_free(m);
    if (rc == 1)
        return ota_json_errf(err, errlen, NULL, NULL,
                             "E_TOO_LARGE: task.target: %zu vehicles match, at most %zu in one "
                             "task",
                             n, max);
    if (rc < 0)
        return ota_json_errf(err, errlen, "task", "target", "out of memory");
    ota_json_strings_free(rec->vins, rec->n_vins);
    rec->vins = vins;
    rec->n_vins = n;
    return 0;
}

int ota_cmd_task_request(ota_plugin *p, const cJSON *task, size_t max_vins, ota_task_rec *rec,
                         ota_target *target, bool *has_target, char *err, size_t errlen)
{
    if (split_task(task, rec, target, has_target, err, errlen) != 0)
        return -1;
    if (*has_target && resolve(p, target, max_vins, rec, err, errlen) != 0) {
        ota_task_rec_free(rec);
        ota_target_free(target);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- previewTarget */

/* {"matched", "accepted", "rejected": {CODE: n...}, "task_error"?, "too_large"?}. */
static cJSON *preview_answer(const ota_target_preview *pv, ota_task_error e, bool too_large)
{
    cJSON *data = cJSON_CreateObject();
    cJSON *rej = cJSON_CreateObject();
    if (data == NULL || rej == NULL || !cJSON_AddItemToObject(data, "rejected", rej)) {
        cJSON_Delete(data);
        cJSON_Delete(rej);
        return NULL;
    }
    cJSON_AddNumberToObject(data, "matched", (double)pv->matched);
    cJSON_AddNumberToObject(data, "accepted", (double)pv->by_code[OTA_REJ_NONE]);
    for (int r = 1; r < OTA_REJ_SLOTS; r++) {
        if (pv->by_code[r] > 0)
            cJSON_AddNumberToObject(rej, ota_reject_name((ota_reject_code)r),
                                    (double)pv->by_code[r]);
    }
    if (e != OTA_TASK_OK)
        cJSON_AddStringToObject(data, "task_error", ota_task_error_name(e));
    if (too_large)
        cJSON_AddBoolToObject(data, "too_large", true);
    return data;
}

/* The per-VIN rules over a VIN list, repeats included (E_DUPLICATE_VIN). */
static int preview_vins(ota_plugin *p, const ota_task_rec *rec, ota_target_preview *pv)
{
    ota_rules_env env = ota_tasks_rules_env(p->tasks);
    ota_vin_set *seen = ota_vin_set_new(rec->n_vins);
    if (seen == NULL)
        return -1;
    memset(pv, 0, sizeof *pv);
    pv->matched = rec->n_vins;
    for (size_t i = 0; i < rec->n_vins; i++)
        pv->by_code[ota_task_check_vin(p->catalog, &env, rec, rec->vins[i], seen)]++;
    ota_vin_set_free(seen);
    return 0;
}

static int preview_target(ota_plugin *p, const ota_target *target, const char *path,
                          const ota_task_rec *rec, ota_target_preview *pv, char *err, size_t errlen)
{
    ota_target_match *m = NULL;
    if (ota_target_compile(p->catalog, target, NULL, NULL, path, &m, err, errlen) != 0)
        return -1;
    memset(pv, 0, sizeof *pv);
    if (rec != NULL) {
        ota_rules_env env = ota_tasks_rules_env(p->tasks);
        ota_target_preview_run(p->catalog, m, &env, rec, pv);
    } else {
        pv->matched = ota_target_count(p->catalog, m);
    }
    ota_target_match_free(m);
    return 0;
}

/* {target}: how many vehicles match, nothing else. */
static void preview_bare_target(ota_plugin *p, ota_cmd *c, const cJSON *tj)
{
    char err[512];
    ota_target target;
    ota_target_preview pv;
    if (ota_json_target(tj, "target", &target, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    int rc = preview_target(p, &target, "target", NULL, &pv, err, sizeof err);
    ota_target_free(&target);
    if (rc != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "matched", (double)pv.matched);
    ota_cmd_ok(c, data);
}

/* {task}: what createTask would make of it. A continuous one (issue 16) may match
 * nobody yet; its continuous and jitter_ms change nothing here. */
static void preview_task(ota_plugin *p, ota_cmd *c, const cJSON *given)
{
    char err[512] = "";
    ota_task_rec rec;
    ota_target target;
    ota_target_preview pv;
    bool has_target = false;
    bool continuous = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(given, "continuous"));
    cJSON *task = cJSON_Duplicate(given, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(task, "continuous");
    cJSON_DeleteItemFromObjectCaseSensitive(task, "jitter_ms");
    int split = split_task(task ? task : given, &rec, &target, &has_target, err, sizeof err);
    cJSON_Delete(task);
    if (split != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    int rc = has_target ? preview_target(p, &target, "task.target", &rec, &pv, err, sizeof err)
                        : preview_vins(p, &rec, &pv);
    if (rc == 0) {
        ota_task_rec probe = rec; /* the task-level rules read only how many VINs it has */
        probe.n_vins = pv.matched + (continuous && pv.matched == 0);
        ota_task_error e = ota_task_check(p->catalog, &probe, NULL);
        cJSON *data = preview_answer(&pv, e, has_target && pv.matched > p->cfg.max_task_vins);
        if (data != NULL)
            ota_cmd_ok(c, data);
        else
            ota_cmd_fail(c, "out of memory");
    } else {
        ota_cmd_fail(c, "%s", err[0] && has_target ? err : "out of memory");
    }
    ota_task_rec_free(&rec);
    ota_target_free(&target);
}

void ota_cmd_preview_target(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"task", "target", NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof err) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(cmd, "task");
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(cmd, "target");
    if ((task == NULL) == (target == NULL)) {
        ota_cmd_fail(c, "task: %s",
                     task ? "give either task or target, not both" : "missing (or target)");
        return;
    }
    if (task != NULL)
        preview_task(p, c, task);
    else
        preview_bare_target(p, c, target);
}
