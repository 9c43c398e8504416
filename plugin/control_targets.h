/*
 * control_targets.h — operator commands of issue 16's targeting (docs/operator-api.md
 * "Groups and targets"): groups (control_groups.c), previewTarget and the task object
 * with a `target` that createTask shares with it (control_targets.c). A header of their
 * own so that control.h stays as other work changes it.
 */
#ifndef OTA_CONTROL_TARGETS_H
#define OTA_CONTROL_TARGETS_H

#include "control.h"
#include "ota_target.h"

#include <stdbool.h>

/* control_groups.c */
void ota_cmd_set_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_delete_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_list_groups(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_group(ota_plugin *p, ota_cmd *c, const cJSON *cmd);

/* control_targets.c */
void ota_cmd_preview_target(ota_plugin *p, ota_cmd *c, const cJSON *cmd);

/* createTask's task object (path "task"), given with `vins` or with a `target` (not
 * both). With a target, *has_target is set, *target receives the query as it applies —
 * the task's model and series added when it names none (naming others is an error) —
 * and rec->vins the VINs it matches now, in VIN order; more than max_vins of them fails
 * with "E_TOO_LARGE: task.target: N vehicles match, at most M in one task". 0, or -1
 * with err (rec and target then hold nothing). */
int ota_cmd_task_request(ota_plugin *p, const cJSON *task, size_t max_vins, ota_task_rec *rec,
                         ota_target *target, bool *has_target, char *err, size_t errlen);

#endif
