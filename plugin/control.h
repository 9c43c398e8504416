/*
 * control.h — how operator commands are written (the $CONTROL/ota/v1 API, SPEC §5).
 *
 * control.c owns the flow: requests are queued and their commands run one at a time, in
 * order, across all operators. A command handler validates its JSON against the
 * in-memory catalog and then either answers at once (ota_cmd_ok / ota_cmd_fail) or hands
 * a catalog change to ota_cmd_store: the writer thread stores it, and back on the broker
 * thread the op's apply() updates the catalog in memory and returns the data to answer.
 * So an answered change is in the store, and memory never holds what the store lacks.
 * The handlers, one file per group of commands: control.c (getStats), control_vehicles.c,
 * control_models.c, control_lists.c, control_packages.c, control_strategies.c,
 * control_tasks.c, control_cancel.c and upload.c (file uploads, getFile, uploadStatus).
 */
#ifndef OTA_CONTROL_H
#define OTA_CONTROL_H

#include "ota_plugin.h"
#include "tasks.h" /* ota_task (ota_cmd_known_task) */

#include <cjson/cJSON.h>

typedef struct ota_cmd ota_cmd;
typedef struct ota_control ota_control;

/* A command handler: answers through one of the three calls below, exactly once. */
typedef void (*ota_command_fn)(ota_plugin *p, ota_cmd *c, const cJSON *cmd);

/* Answers with data (taken; NULL answers {}). */
void ota_cmd_ok(ota_cmd *c, cJSON *data);
/* Adds a counter to a response object (getStats and the sections other files add to it). */
void ota_cmd_add_u64(cJSON *obj, const char *name, uint64_t v);
/* Answers with an error text; nothing was changed. */
void ota_cmd_fail(ota_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A change to store before it is applied. Embed it first in the handler's own op struct
 * (whose data `change` points into). */
typedef struct ota_cmd_op {
    ota_catalog_change change;
    /* writer thread: the work to do; NULL stores `change` with ota_store_apply. 0, or -1
     * with err written. (File uploads write and hash files here.) */
    int (*run)(ota_store *store, struct ota_cmd_op *op, char *err, size_t errlen);
    /* broker thread, once stored: update the catalog; return the data to answer (or
     * NULL for {}) */
    cJSON *(*apply)(ota_plugin *p, struct ota_cmd_op *op);
    /* frees the op (always called, after apply or after a store failure) */
    void (*free_op)(struct ota_cmd_op *op);
} ota_cmd_op;

/* Runs op (writer thread: stores op->change, or op->run), then applies and answers. On a
 * failure the command fails with "not stored: <error>" (op->run: "<error>") and nothing
 * is applied. */
void ota_cmd_store(ota_plugin *p, ota_cmd *c, ota_cmd_op *op);

/* The path prefix for error texts of a command's fields: "" (errors read "vin: ..."). */
#define OTA_CMD_PATH ""

/* ---- control.c ---- */
ota_control *ota_control_new(void);
void ota_control_free(ota_control *ctl);
/* The CONTROL callback of $CONTROL/ota/v1. */
int ota_control_callback(int event, void *event_data, void *userdata);
/* Queues a command that does not come as JSON (an upload chunk): fn(p, c, arg) runs in
 * turn, answered as command `name`, and owns arg from then on; free_arg(arg) is called
 * only if it never runs (shutdown, a full queue). client NULL: a command of the plugin's own
 * (rxswin.c), whose answer goes to nobody. */
typedef void (*ota_native_fn)(ota_plugin *p, ota_cmd *c, void *arg);
void ota_control_enqueue(ota_plugin *p, const struct mosquitto *client, const char *name,
                         ota_native_fn fn, void *arg, void (*free_arg)(void *));

/* ---- upload.c ---- */
/* The CONTROL callback of $CONTROL/ota/v1/file. */
int ota_upload_callback(int event, void *event_data, void *userdata);
/* Creates plugin_opt_file_dir and its upload area. 0, or -1 with err. */
int ota_upload_prepare_dirs(const char *file_dir, char *err, size_t errlen);
void ota_cmd_upload_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_file(ota_plugin *p, ota_cmd *c, const cJSON *cmd);

/* ---- handlers, by file ---- */
void ota_cmd_get_stats(ota_plugin *p, ota_cmd *c, const cJSON *cmd); /* control.c */
/* control_vehicles.c */
void ota_cmd_upsert_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_vehicle(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_delete_vehicle(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_models.c */
void ota_cmd_set_model(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_model(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_lists.c */
void ota_cmd_add_to_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_remove_from_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_list(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_packages.c */
void ota_cmd_add_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_set_package_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_list_packages(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_max_version(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_version(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_strategies.c */
void ota_cmd_set_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_bind_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_tasks.c */
/* A change of one task document: d (taken) printed into *json, *doc names it, and
 * base's change stores that one document. 0, or -1 out of memory. */
int ota_cmd_task_doc_change(ota_cmd_op *base, const char *id, cJSON *d, char **json,
                            ota_store_doc *doc);
void ota_cmd_create_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_list_task_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_set_task_type_rules(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_task_type_rules(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_quarantine.c */
void ota_cmd_reset_vehicle_seq(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_list_quarantine(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_cancel.c */
void ota_cmd_cancel_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_waves.c (issue 16) */
void ota_cmd_pause_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_resume_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_promote_wave(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_approve_wave(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* getTask's "paused" and "rollout" (current wave, per-wave counts). 0, or -1. */
int ota_cmd_rollout_describe(const ota_task *task, cJSON *data);
void ota_cmd_install_now(ota_plugin *p, ota_cmd *c, const cJSON *cmd); /* control_install.c */
/* control_query.c (issue 18: finding things) */
/* A task's "counts" per execution state as getTask and listTasks show them: this broker's,
 * or on a store several brokers share every broker's as far as known (ota_task_seen). */
cJSON *ota_cmd_task_counts(const ota_task *task);
void ota_cmd_list_tasks(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_list_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_vehicle_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_get_fleet_summary(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_export_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* control_history.c: a store read through the writer's queue */
void ota_cmd_get_vehicle_history(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* The package / task a command's id field names, or NULL when it does not (answered):
 * control_packages.c, control_tasks.c. */
const ota_package_rec *ota_cmd_known_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                             const char *const *allowed);
const ota_task *ota_cmd_known_task(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                   const char *const *allowed);
/* control_package_admin.c */
void ota_cmd_update_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
void ota_cmd_delete_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd);
/* Fails the command and returns true when a task (an active one, with active_only) uses
 * package id (setPackageStatus before "deprecated"). */
bool ota_package_refuse_in_use(ota_plugin *p, ota_cmd *c, uint64_t id, bool active_only);

#endif
