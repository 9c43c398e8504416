/*
 * control_cancel.c — cancelTask {id, vins?} (SPEC §5, docs/operator-api.md): cancels a
 * whole task or some of its vehicles.
 *
 * The command stores its change first (ota_cmd_store): the executions it changes — queued
 * ones as canceled, those in flight with the code cancel_requested — and, for a whole
 * task that is active or aborted, the task document as canceled. Once stored, the engine
 * applies it in memory (ota_engine_cancel: the in-flight ones get the cancel as their
 * desired state and are canceled when the vehicle confirms) and the answer counts
 * {canceled, pending}. The task document is a conditional write over the revision this
 * broker holds (issue 16, ota_store_put_task_doc_if), stored before the executions: when
 * another broker changed the task meanwhile, nothing is stored and the command answers
 * E_CONFLICT (try again once the change log brought it, ~200 ms).
 */
#include "control.h"
#include "engine.h"
#include "ota_catalog_json.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ota_cmd_op base;
    char *id;
    char **vins; /* NULL: the whole task */
    size_t n_vins;
    char *json;
    ota_store_doc doc;
    uint64_t expect_rev; /* the document's revision this broker holds */
    ota_exec_rec *recs;
    char **strs;
    size_t n_strs;
} cancel_op;

static void cancel_free(ota_cmd_op *base)
{
    cancel_op *op = (cancel_op *)base;
    free(op->id);
    ota_json_strings_free(op->vins, op->n_vins);
    free(op->json);
    free(op->recs);
    for (size_t i = 0; i < op->n_strs; i++) {
        free(op->strs[i]);
    }
    free(op->strs);
    free(op);
}

/* In memory, once stored. */
static cJSON *cancel_apply(ota_plugin *p, ota_cmd_op *base)
{
    cancel_op *op = (cancel_op *)base;
    ota_task *task = ota_tasks_get(p->tasks, op->id);
    size_t canceled = 0, pending = 0;
    if (task && op->json && task->rev < op->expect_rev + 1) {
        task->rev = op->expect_rev + 1;
    }
    if (task) {
        ota_engine_cancel(p, task, op->vins, op->n_vins, &canceled, &pending);
    }
    if (task && op->json) { /* this broker's write ended the task: told here, once */
        ota_engine_task_stored(p, task, task->state);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "canceled", (double)canceled);
    cJSON_AddNumberToObject(data, "pending", (double)pending);
    return data;
}

static int cancel_parse(ota_plugin *p, const cJSON *cmd, cancel_op *op, char *err, size_t len)
{
    static const char *const allowed[] = {"id", "vins", NULL};
    const char *id = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, len) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, len) != 0) {
        return -1;
    }
    ota_task *task = ota_tasks_get(p->tasks, id);
    if (!task) {
        snprintf(err, len, "id: unknown task %s", id);
        return -1;
    }
    op->id = strdup(id);
    if (ota_json_get_string_array(cmd, "", "vins", false, 1, 1000000, OTA_JSON_VINS, &op->vins,
                                  &op->n_vins, err, len) != 0) {
        return -1;
    }
    for (size_t i = 0; i < op->n_vins; i++) {
        if (!ota_task_find_exec(task, op->vins[i])) {
            snprintf(err, len, "vins: %s is not in task %s", op->vins[i], id);
            return -1;
        }
    }
    return op->id ? 0 : -1;
}

/* The whole task's document, canceled, at the next revision. */
static int cancel_doc(cancel_op *op, const ota_task *task)
{
    ota_task next = *task;
    next.rev++;
    op->expect_rev = task->rev;
    return ota_cmd_task_doc_change(&op->base, op->id,
                                   ota_task_doc_of(&next, OTA_TASK_CANCELED), /* waves kept */
                                   &op->json, &op->doc);
}

/* Writer thread: the document (conditional), then the executions. */
static int cancel_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    cancel_op *op = (cancel_op *)base;
    ota_catalog_change rest = base->change;
    char why[256] = "";
    if (op->json) {
        int rc =
            ota_store_put_task_doc_if(store, op->id, op->json, op->expect_rev, why, sizeof why);
        if (rc == 0) {
            snprintf(err, errlen,
                     "E_CONFLICT: task %s changed meanwhile (another broker): nothing changed, "
                     "try again",
                     op->id);
            return -1;
        }
        if (rc < 0) {
            snprintf(err, errlen, "not stored: %s", why);
            return -1;
        }
        rest.docs = NULL;
        rest.n_docs = 0;
    }
    if (ota_store_apply(store, &rest, why, sizeof why) != 0) {
        snprintf(err, errlen, "not stored: %s", why);
        return -1;
    }
    return 0;
}

/* The stored change: the task document (whole task) and the executions it changes. */
static int cancel_change(ota_plugin *p, cancel_op *op)
{
    ota_task *task = ota_tasks_get(p->tasks, op->id);
    op->recs = calloc(task->n_execs + 1, sizeof(*op->recs));
    op->strs = calloc(3 * task->n_execs + 1, sizeof(*op->strs));
    if (!op->recs || !op->strs) {
        return -1;
    }
    size_t k = 0;
    int64_t now = ota_now_ms();
    for (size_t i = 0; i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        char vin[OTA_VIN_LEN + 1];
        ota_task_exec_vin(x, vin);
        bool q = x->state == OTA_EXEC_QUEUED;
        if (!ota_vin_selected(op->vins, op->n_vins, vin) || !(q || ota_exec_in_flight(x->state))) {
            continue;
        }
        char *v = op->strs[op->n_strs++] = strdup(vin);
        op->recs[k++] = (ota_exec_rec){.task = op->id,
                                       .vin = v,
                                       .state = q ? OTA_EXEC_CANCELED : (ota_exec_state)x->state,
                                       .code = q ? NULL : OTA_ENGINE_CANCEL_CODE,
                                       .resends = x->resends,
                                       .notified_ms = x->notified_ms,
                                       .updated_ms = now,
                                       .wave = ota_task_exec_wave(task, x)};
    }
    op->base.change.put_execs = op->recs;
    op->base.change.n_put_execs = k;
    bool whole = !op->vins && (task->state == OTA_TASK_ACTIVE || task->state == OTA_TASK_ABORTED);
    return whole ? cancel_doc(op, task) : 0;
}

void ota_cmd_cancel_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256] = "out of memory";
    cancel_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = cancel_free;
    op->base.apply = cancel_apply;
    op->base.run = cancel_run;
    if (cancel_parse(p, cmd, op, err, sizeof(err)) != 0 || cancel_change(p, op) != 0) {
        cancel_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_cmd_store(p, c, &op->base);
}
