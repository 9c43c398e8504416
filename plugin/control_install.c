/*
 * control_install.c — installNow {id, vins?} (issue 17, docs/operator-api.md): the second
 * command of a download_only task. Nothing is stored: the engine sets the notice again as
 * the vehicles' desired state, with "install_now": true (the shadow keeps it, so an
 * offline vehicle gets it when it is next seen).
 */
#include "control.h"
#include "engine.h"
#include "ota_catalog_json.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>

/* Checks the command; the task, or NULL with err set. vins are the command's (owned). */
static ota_task *install_parse(ota_plugin *p, const cJSON *cmd, char ***vins, size_t *n_vins,
                               char *err, size_t len)
{
    static const char *const allowed[] = {"id", "vins", NULL};
    const char *id = NULL;
    if (ota_json_check_command_fields(cmd, "", allowed, err, len) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, len) != 0) {
        return NULL;
    }
    ota_task *task = ota_tasks_get(p->tasks, id);
    if (!task) {
        snprintf(err, len, "id: unknown task %s", id);
        return NULL;
    }
    if (task->rec.install_mode != OTA_INSTALL_DOWNLOAD_ONLY) {
        snprintf(err, len, "id: task %s is %s, not download_only", id,
                 ota_install_mode_name(task->rec.install_mode));
        return NULL;
    }
    if (ota_json_get_string_array(cmd, "", "vins", false, 1, 1000000, OTA_JSON_VINS, vins, n_vins,
                                  err, len) != 0) {
        return NULL;
    }
    for (size_t i = 0; i < *n_vins; i++) {
        if (!ota_task_find_exec(task, (*vins)[i])) {
            snprintf(err, len, "vins: %s is not in task %s", (*vins)[i], id);
            return NULL;
        }
    }
    return task;
}

void ota_cmd_install_now(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256];
    char **vins = NULL;
    size_t n_vins = 0;
    ota_task *task = install_parse(p, cmd, &vins, &n_vins, err, sizeof(err));
    if (!task) {
        ota_json_strings_free(vins, n_vins);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    size_t sent = ota_engine_install_now(p, task, vins, n_vins);
    ota_json_strings_free(vins, n_vins);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "sent", (double)sent);
    ota_cmd_ok(c, data);
}
