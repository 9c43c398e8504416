/*
 * control_package_admin.c — fixing and retiring packages (issue 18, docs/operator-api.md):
 * updatePackage (its baseline description, prompt, result info: e.g. a package added
 * without the baseline description createTask requires), deletePackage (a package no
 * task uses), and the "in use" check setPackageStatus makes before `deprecated`.
 *
 * A package is "used" by a task whose `package` is its id (the full package a task
 * installs). Tasks keep their package for their whole life (getTask, exports), so delete
 * looks at tasks of every state; update and deprecate only at active ones, which are
 * still handing out descriptions built from it.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"
#include "tasks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first task (oldest) that uses package id — an active one when active_only — or NULL. */
static const ota_task *package_user(ota_plugin *p, uint64_t id, bool active_only)
{
    ota_task **all = NULL;
    long n = ota_tasks_list(p->tasks, &all);
    const ota_task *user = NULL;
    for (long i = 0; i < n && !user; i++) {
        if (all[i]->package == id && (!active_only || all[i]->state == OTA_TASK_ACTIVE)) {
            user = all[i];
        }
    }
    free(all);
    return user;
}

bool ota_package_refuse_in_use(ota_plugin *p, ota_cmd *c, uint64_t id, bool active_only)
{
    const ota_task *t = package_user(p, id, active_only);
    if (!t) {
        return false;
    }
    ota_cmd_fail(c, "id: package %" PRIu64 " is used by task %s (%s)%s", id, t->rec.id,
                 ota_task_state_name(t->state),
                 active_only ? ": cancel the task first" : ": deprecate it instead");
    return true;
}

typedef struct {
    ota_cmd_op base;
    ota_package_rec rec; /* updatePackage: the new record (taken by the catalog on apply) */
    uint64_t id;
    char key[24];
    char *json;
    ota_store_doc doc;
} admin_op;

static void admin_free(ota_cmd_op *base)
{
    admin_op *op = (admin_op *)base;
    ota_package_rec_free(&op->rec);
    free(op->json);
    free(op);
}

/* op's change: the package's document `json` (NULL deletes it). */
static void admin_change(admin_op *op)
{
    snprintf(op->key, sizeof(op->key), "%" PRIu64, op->id);
    op->doc = (ota_store_doc){OTA_DOC_PACKAGE, op->key, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
}

static admin_op *admin_op_new(uint64_t id)
{
    admin_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->base.free_op = admin_free;
        op->id = id;
    }
    return op;
}

/* ---------------------------------------------------------------- updatePackage */

static const char *const text_fields[] = {
    "baseline_description", "prompt", "result_info", "language", "rxswin", "install_mode", NULL};

/* One field of updatePackage into the document j: null removes it (language, rxswin,
 * install_mode); a text is checked here, anything else by the parse of the whole document
 * (per-language texts, RXSWINs, install mode: r156_json.c). */
static int update_field(cJSON *j, const cJSON *cmd, const char *key, size_t *given, char *err,
                        size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cmd, key);
    const char *text = NULL;
    if (!it) {
        return 0;
    }
    if (!cJSON_IsObject(it) && !cJSON_IsArray(it) && !cJSON_IsNull(it) &&
        ota_json_get_text(cmd, "", key, false, &text, err, errlen) != 0) {
        return -1;
    }
    (*given)++;
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (cJSON_IsNull(it) && strcmp(key, "baseline_description") == 0) {
        return ota_json_errf(err, errlen, NULL, key, "expected a string");
    }
    return cJSON_IsNull(it) || cJSON_AddItemToObject(j, key, cJSON_Duplicate(it, true))
               ? 0
               : ota_json_errf(err, errlen, NULL, NULL, "out of memory");
}

/* The stored document of r with the fields the command gives replaced. 0, or -1 with err. */
static int updated_doc(const ota_package_rec *r, const cJSON *cmd, cJSON **out, char *err,
                       size_t errlen)
{
    size_t given = 0;
    cJSON *j = ota_json_from_package_stored(r);
    for (size_t i = 0; j && text_fields[i]; i++) {
        if (update_field(j, cmd, text_fields[i], &given, err, errlen) != 0) {
            cJSON_Delete(j);
            return -1;
        }
    }
    if (!j) {
        return ota_json_errf(err, errlen, NULL, NULL, "out of memory");
    }
    if (given == 0) {
        cJSON_Delete(j);
        return ota_json_errf(err, errlen, NULL, NULL,
                             "give baseline_description, prompt, result_info, language, rxswin "
                             "and/or install_mode");
    }
    *out = j;
    return 0;
}

static cJSON *update_apply(ota_plugin *p, ota_cmd_op *base)
{
    admin_op *op = (admin_op *)base;
    ota_catalog_put_package(p->catalog, &op->rec); /* replaces by id, takes the record */
    const ota_package_rec *r = ota_catalog_package(p->catalog, op->id);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "package", r ? ota_json_from_package(r) : cJSON_CreateNull());
    return data;
}

void ota_cmd_update_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {
        "id",     "baseline_description", "prompt", "result_info", "language",
        "rxswin", "install_mode",         NULL};
    char err[512];
    cJSON *doc = NULL;
    const ota_package_rec *r = ota_cmd_known_package(p, c, cmd, allowed);
    if (!r || ota_package_refuse_in_use(p, c, r->id, true)) {
        return;
    }
    if (updated_doc(r, cmd, &doc, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    admin_op *op = admin_op_new(r->id);
    int rc = op ? ota_json_package(doc, "package", &op->rec, err, sizeof(err)) : -1;
    if (op && rc == 0) {
        op->json = cJSON_PrintUnformatted(doc);
    }
    cJSON_Delete(doc);
    if (!op || rc != 0 || !op->json) {
        ota_cmd_fail(c, "%s", op && rc != 0 ? err : "out of memory");
        if (op) {
            admin_free(&op->base);
        }
        return;
    }
    op->base.apply = update_apply;
    admin_change(op);
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- deletePackage */

static cJSON *delete_apply(ota_plugin *p, ota_cmd_op *base)
{
    ota_catalog_delete_package(p->catalog, ((admin_op *)base)->id);
    return NULL;
}

void ota_cmd_delete_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", NULL};
    const ota_package_rec *r = ota_cmd_known_package(p, c, cmd, allowed);
    if (!r || ota_package_refuse_in_use(p, c, r->id, false)) {
        return;
    }
    admin_op *op = admin_op_new(r->id);
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.apply = delete_apply;
    admin_change(op); /* json NULL: the document goes */
    ota_cmd_store(p, c, &op->base);
}
