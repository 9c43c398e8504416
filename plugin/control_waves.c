/*
 * control_waves.c — pauseTask, resumeTask, promoteWave, approveWave {id} (issue 16,
 * docs/operator-api.md) and the rollout part of getTask.
 *
 * Each command computes the task's new rollout state (paused; the current wave; the
 * waves approved), stores the task document with it as a conditional write over the
 * revision this broker holds (ota_store_put_task_doc_if: when another broker, or this
 * broker's engine, stored the task meanwhile, nothing changes and the command answers
 * E_CONFLICT), then applies it in memory: the engine dispatches by it from the next TICK,
 * the other brokers take it from the change log (follow.c) within about 200 ms. Only the
 * broker that stored it publishes the task event.
 */
#include "control.h"
#include "engine.h"
#include "ota_catalog_json.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { W_PAUSE, W_RESUME, W_PROMOTE, W_APPROVE } waves_verb;

typedef struct {
    ota_cmd_op base;
    char id[32];
    waves_verb verb;
    bool paused;
    uint8_t current, approved;
    uint64_t expect_rev; /* the document revision this broker holds (issue 16) */
    char *json;
    ota_store_doc doc;
} waves_op;

static void waves_free(ota_cmd_op *base)
{
    waves_op *op = (waves_op *)base;
    free(op->json);
    free(op);
}

/* Writer thread: the document, only over the revision this broker holds. */
static int waves_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    waves_op *op = (waves_op *)base;
    int rc = ota_store_put_task_doc_if(store, op->id, op->json, op->expect_rev, err, errlen);
    if (rc == 0) {
        snprintf(err, errlen,
                 "E_CONFLICT: task %s changed meanwhile (another broker, or a wave this broker "
                 "promoted): nothing changed, try again",
                 op->id);
    }
    return rc == 1 ? 0 : -1;
}

static cJSON *waves_apply(ota_plugin *p, ota_cmd_op *base)
{
    waves_op *op = (waves_op *)base;
    ota_task *task = ota_tasks_get(p->tasks, op->id);
    if (task) {
        task->rev = task->rev > op->expect_rev + 1 ? task->rev : op->expect_rev + 1;
        task->paused = op->paused;
        if (task->waves && op->current > task->waves->current) {
            task->waves->current = op->current;
        }
        if (task->waves && op->approved > task->waves->approved) {
            task->waves->approved = op->approved;
        }
        static const char *const what[] = {"paused", "resumed", "wave_started",
                                           "wave_approved"};
        ota_engine_task_changed(p, task, what[op->verb]);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddBoolToObject(data, "paused", op->paused);
    if (task && task->waves) {
        cJSON_AddNumberToObject(data, "current_wave", task->waves->current);
    }
    return data;
}

/* The new rollout state on a copy of the task's; false with err when the verb does not
 * apply. */
static bool waves_decide(const ota_task *task, waves_op *op, char *err, size_t len)
{
    ota_task_waves w = {0};
    if (task->state != OTA_TASK_ACTIVE) {
        snprintf(err, len, "E_TASK_STATE: task %s is %s", task->rec.id,
                 ota_task_state_name(task->state));
        return false;
    }
    if ((op->verb == W_PROMOTE || op->verb == W_APPROVE) && !task->waves) {
        snprintf(err, len, "E_NO_WAVES: task %s has no waves", task->rec.id);
        return false;
    }
    if (task->waves) {
        w = *task->waves;
    }
    op->paused = op->verb == W_PAUSE ? true : op->verb == W_RESUME ? false : task->paused;
    if (op->verb == W_PROMOTE && !ota_task_waves_promote(&w)) {
        snprintf(err, len, "E_LAST_WAVE: task %s is in its last wave", task->rec.id);
        return false;
    }
    if (op->verb == W_APPROVE && !ota_task_waves_approve(&w)) {
        snprintf(err, len, "E_APPROVED: wave %u of task %s is approved already", w.current,
                 task->rec.id);
        return false;
    }
    op->current = w.current;
    op->approved = w.approved;
    return true;
}

/* The task document with the new state (the task's own, changed on a copy). */
static int waves_doc(ota_task *task, waves_op *op)
{
    ota_task copy = *task;
    ota_task_waves w;
    if (task->waves) {
        w = *task->waves;
        w.current = op->current;
        w.approved = op->approved;
        copy.waves = &w;
    }
    copy.paused = op->paused;
    copy.rev = task->rev + 1;
    op->expect_rev = task->rev;
    return ota_cmd_task_doc_change(&op->base, op->id, ota_task_doc_of(&copy, task->state),
                                   &op->json, &op->doc);
}

static void waves_command(ota_plugin *p, ota_cmd *c, const cJSON *cmd, waves_verb verb)
{
    static const char *const allowed[] = {"id", NULL};
    char err[256];
    const char *id = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_task *task = ota_tasks_get(p->tasks, id);
    if (!task) {
        ota_cmd_fail(c, "id: unknown task %s", id);
        return;
    }
    waves_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = waves_free;
    op->base.apply = waves_apply;
    op->base.run = waves_run;
    op->verb = verb;
    snprintf(op->id, sizeof(op->id), "%s", id);
    if (!waves_decide(task, op, err, sizeof(err))) {
        waves_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (waves_doc(task, op) != 0) {
        waves_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

void ota_cmd_pause_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    waves_command(p, c, cmd, W_PAUSE);
}

void ota_cmd_resume_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    waves_command(p, c, cmd, W_RESUME);
}

void ota_cmd_promote_wave(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    waves_command(p, c, cmd, W_PROMOTE);
}

void ota_cmd_approve_wave(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    waves_command(p, c, cmd, W_APPROVE);
}

int ota_cmd_rollout_describe(const ota_task *task, cJSON *data)
{
    if (!cJSON_AddBoolToObject(data, "paused", task->paused)) {
        return -1;
    }
    if (!task->waves) {
        return 0;
    }
    static const char *const approvals[] = {"none", "first", "each"};
    cJSON *r = cJSON_AddObjectToObject(data, "rollout");
    if (!r) {
        return -1;
    }
    cJSON_AddNumberToObject(r, "current_wave", task->waves->current);
    cJSON_AddStringToObject(r, "wave_approval", approvals[task->waves->approval]);
    cJSON_AddBoolToObject(r, "awaiting_approval", task->waves->approved <= task->waves->current);
    cJSON *w = ota_task_waves_report(task->waves);
    return w && cJSON_AddItemToObject(r, "waves", w) ? 0 : -1;
}
