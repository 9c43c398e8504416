/*
 * control_packages.c — addPackage, setPackageStatus, getPackage, listPackages,
 * maxVersion, getVersion (docs/operator-api.md).
 *
 * A package (seed 000's "升级包": a full package of a model/series/version, or a delta
 * from one version to another) lists per ECU the file a vehicle downloads; every file
 * must already be in the repository, and its size is taken from there. addPackage checks
 * everything against the catalog (model/series known, ECUs of the model, files present,
 * not added before), gives the next id and the draft status, stores the package's
 * document (key: the decimal id) and only then puts it in the catalog. A status goes
 * forward only: draft -> verified -> released (a step may be skipped; the same status
 * again changes nothing and stores nothing).
 */
#include "catalog.h"
#include "control.h"
#include "keys.h"
#include "ota_catalog_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ota_cmd_op base;
    ota_package_rec rec; /* addPackage: the new package (taken by the catalog on apply) */
    uint64_t id;
    ota_pkg_status status; /* setPackageStatus: the new status */
    char key[24];          /* the decimal id */
    char *json;
    ota_store_doc doc;
} package_op;

static void package_free(ota_cmd_op *base)
{
    package_op *op = (package_op *)base;
    ota_package_rec_free(&op->rec);
    free(op->json);
    free(op);
}

static package_op *package_op_new(void)
{
    package_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->base.free_op = package_free;
    }
    return op;
}

/* Makes op's change: the one document `json` (taken) under the package's id. */
static int package_doc(package_op *op, cJSON *json)
{
    op->json = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!op->json) {
        return -1;
    }
    snprintf(op->key, sizeof(op->key), "%" PRIu64, op->id);
    op->doc = (ota_store_doc){OTA_DOC_PACKAGE, op->key, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
    return 0;
}

/* ---------------------------------------------------------------- addPackage */

static cJSON *add_apply(ota_plugin *p, ota_cmd_op *base)
{
    package_op *op = (package_op *)base;
    ota_catalog_put_package(p->catalog, &op->rec); /* takes the record's contents */
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "id", (double)op->id);
    return data;
}

static bool model_has_ecu(const ota_model_rec *m, const char *ecu)
{
    for (size_t i = 0; i < m->n_ecus; i++) {
        if (strcmp(m->ecus[i], ecu) == 0) {
            return true;
        }
    }
    return false;
}

/* package.ecus[i]: an ECU of the model (when it declares its ECUs), its file in the
 * repository (whose size it takes). */
static int check_ecu(const ota_catalog *cat, const ota_model_rec *m, ota_pkg_ecu *e, size_t i,
                     char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof(path), "package.ecus[%zu]", i);
    if (m->n_ecus > 0 && !model_has_ecu(m, e->ecu)) {
        return ota_json_errf(err, errlen, path, "ecu", "ECU %s is not an ECU of %s/%s", e->ecu,
                             m->model, m->series);
    }
    const ota_file_rec *f = ota_catalog_file(cat, e->sha256);
    if (!f) {
        snprintf(path, sizeof(path), "package.ecus[%zu].file", i);
        return ota_json_errf(err, errlen, path, "sha256",
                             "no such file in the repository (upload it first)");
    }
    e->size = f->size;
    return 0;
}

/* The package against the catalog: model/series known, its ECUs and files, not there yet. */
static int check_package(const ota_catalog *cat, ota_package_rec *r, char *err, size_t errlen)
{
    const ota_model_rec *m = ota_catalog_model(cat, r->model, r->series);
    if (!m) {
        return ota_json_errf(err, errlen, "package", "model",
                             "unknown model/series %s/%s (setModel first)", r->model, r->series);
    }
    for (size_t i = 0; i < r->n_ecus; i++) {
        if (check_ecu(cat, m, &r->ecus[i], i, err, errlen) != 0) {
            return -1;
        }
    }
    const ota_package_rec *old =
        r->delta ? ota_catalog_package_delta(cat, r->model, r->series, r->from, r->version)
                 : ota_catalog_package_full(cat, r->model, r->series, r->version);
    if (old) {
        return ota_json_errf(err, errlen, "package", "", "already exists as id %" PRIu64, old->id);
    }
    return 0;
}

/* An encrypted package's content key, sealed under the KEK for this package id; the clear
 * key is wiped (keys.h, docs/vehicle-crypto.md). */
static int seal_content_key(ota_plugin *p, ota_package_rec *r, char *err, size_t errlen)
{
    if (!r->has_content_key)
        return 0;
    char sealed[OTA_SEALED_KEY_HEX + 1];
    int rc = p->keys ? ota_keys_seal_content(p->keys, r->id, r->content_key, sealed) : -1;
    OPENSSL_cleanse(r->content_key, sizeof r->content_key);
    r->has_content_key = false;
    if (rc != 0 || (r->sealed_key = strdup(sealed)) == NULL)
        return ota_json_errf(err, errlen, "package", "content_key", "could not be sealed");
    return 0;
}

static int parse_add(ota_plugin *p, const cJSON *cmd, package_op *op, char *err, size_t errlen)
{
    static const char *const allowed[] = {"package", NULL};
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0) {
        return -1;
    }
    const cJSON *pkg = cJSON_GetObjectItemCaseSensitive(cmd, "package");
    if (!pkg) {
        return ota_json_errf(err, errlen, "", "package", "missing");
    }
    if (ota_json_package_request(pkg, "package", &op->rec, err, errlen) != 0 ||
        check_package(p->catalog, &op->rec, err, errlen) != 0) {
        return -1;
    }
    op->id = op->rec.id = ota_catalog_next_package_id(p->catalog);
    op->rec.status = OTA_PKG_DRAFT;
    return seal_content_key(p, &op->rec, err, errlen);
}

void ota_cmd_add_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    package_op *op = package_op_new();
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.apply = add_apply;
    if (parse_add(p, cmd, op, err, sizeof(err)) != 0) {
        package_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (package_doc(op, ota_json_from_package_stored(&op->rec)) != 0) {
        package_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- by id */

/* The id field of a command, which must name a known package; answers when it fails. */
static const ota_package_rec *known_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                            const char *const *allowed)
{
    char err[256];
    uint64_t id = 0;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_uint(cmd, "", "id", true, 1, OTA_JSON_UINT_MAX, &id, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return NULL;
    }
    const ota_package_rec *r = ota_catalog_package(p->catalog, id);
    if (!r) {
        ota_cmd_fail(c, "id: unknown package %" PRIu64, id);
    }
    return r;
}

static cJSON *status_apply(ota_plugin *p, ota_cmd_op *base)
{
    package_op *op = (package_op *)base;
    ota_catalog_set_package_status(p->catalog, op->id, op->status);
    return NULL;
}

/* The stored document of r with status st. */
static cJSON *package_with_status(const ota_package_rec *r, ota_pkg_status st)
{
    cJSON *j = ota_json_from_package_stored(r);
    cJSON *s = cJSON_CreateString(ota_pkg_status_name(st));
    if (!j || !s || !cJSON_ReplaceItemInObjectCaseSensitive(j, "status", s)) {
        cJSON_Delete(j);
        cJSON_Delete(s);
        return NULL;
    }
    return j;
}

/* The status field: a known status, not before the package's current one. */
static int new_status(const ota_package_rec *r, const cJSON *cmd, ota_pkg_status *st, char *err,
                      size_t errlen)
{
    const char *names[] = {
        ota_pkg_status_name(OTA_PKG_DRAFT), ota_pkg_status_name(OTA_PKG_VERIFIED),
        ota_pkg_status_name(OTA_PKG_RELEASED), ota_pkg_status_name(OTA_PKG_DEPRECATED)};
    int k = 0;
    if (ota_json_get_enum(cmd, "", "status", true, names, 4, &k, err, errlen) != 0) {
        return -1;
    }
    if ((ota_pkg_status)k < r->status) {
        return ota_json_errf(err, errlen, "", "status",
                             "package %" PRIu64 " is %s: a status goes forward only "
                             "(draft, verified, released, deprecated)",
                             r->id, ota_pkg_status_name(r->status));
    }
    *st = (ota_pkg_status)k;
    return 0;
}

void ota_cmd_set_package_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", "status", NULL};
    char err[256];
    ota_pkg_status st = OTA_PKG_DRAFT;
    const ota_package_rec *r = known_package(p, c, cmd, allowed);
    if (!r) {
        return;
    }
    if (new_status(r, cmd, &st, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (st == r->status) {
        ota_cmd_ok(c, NULL); /* already so: nothing to store */
        return;
    }
    if (st == OTA_PKG_DEPRECATED && ota_package_refuse_in_use(p, c, r->id, true)) {
        return; /* control_package_admin.c: an active task uses it */
    }
    package_op *op = package_op_new();
    if (op) {
        op->base.apply = status_apply;
        op->id = r->id;
        op->status = st;
    }
    if (!op || package_doc(op, package_with_status(r, st)) != 0) {
        if (op) {
            package_free(&op->base);
        }
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

/* Answers {"package": r}. */
static void answer_package(ota_cmd *c, const ota_package_rec *r)
{
    cJSON *j = ota_json_from_package(r);
    if (!j) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "package", j);
    ota_cmd_ok(c, data);
}

void ota_cmd_get_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", NULL};
    const ota_package_rec *r = known_package(p, c, cmd, allowed);
    if (r) {
        answer_package(c, r);
    }
}

/* ---------------------------------------------------------------- listings */

typedef struct {
    const char *model; /* only this model's packages (NULL: all) */
    cJSON *arr;
    bool failed;
} list_ctx;

static void add_package(void *ctx, const ota_package_rec *r)
{
    list_ctx *l = ctx;
    if (l->failed || (l->model && strcmp(r->model, l->model) != 0)) {
        return;
    }
    cJSON *j = ota_json_from_package(r);
    if (!j || !cJSON_AddItemToArray(l->arr, j)) {
        cJSON_Delete(j);
        l->failed = true;
    }
}

void ota_cmd_list_packages(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"model", "series", NULL};
    char err[256];
    const char *model, *series;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "model", false, &model, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "series", false, &series, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (series && !model) {
        ota_cmd_fail(c, "series: only together with model");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    list_ctx l = {.arr = cJSON_AddArrayToObject(data, "packages")};
    if (series) {
        ota_catalog_packages_each(p->catalog, model, series, add_package, &l);
    } else {
        l.model = model; /* a whole model, or everything */
        ota_catalog_packages_each(p->catalog, NULL, NULL, add_package, &l);
    }
    if (!l.arr || l.failed) {
        cJSON_Delete(data);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_ok(c, data);
}

/* The model and series fields (both required) of a known model/series, and the allowed
 * fields of the command; answers when it fails. */
static bool model_series(ota_plugin *p, ota_cmd *c, const cJSON *cmd, const char *const *allowed,
                         const char **model, const char **series)
{
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "model", true, model, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "series", true, series, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return false;
    }
    if (!ota_catalog_model(p->catalog, *model, *series)) {
        ota_cmd_fail(c, "model: unknown model/series %s/%s", *model, *series);
        return false;
    }
    return true;
}

void ota_cmd_max_version(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"model", "series", "released", NULL};
    char err[256];
    const char *model, *series;
    bool released;
    if (!model_series(p, c, cmd, allowed, &model, &series)) {
        return;
    }
    if (ota_json_get_bool(cmd, "", "released", false, false, &released, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_package_rec *r = ota_catalog_max_version(p->catalog, model, series, released);
    if (!r) {
        ota_cmd_fail(c, "no %spackage for %s/%s", released ? "released " : "", model, series);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "version", r->version);
    cJSON_AddNumberToObject(data, "id", (double)r->id);
    ota_cmd_ok(c, data);
}

void ota_cmd_get_version(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"model", "series", "version", NULL};
    char err[256];
    const char *model, *series, *version;
    if (!model_series(p, c, cmd, allowed, &model, &series)) {
        return;
    }
    if (ota_json_get_word(cmd, "", "version", true, &version, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_package_rec *r = ota_catalog_package_full(p->catalog, model, series, version);
    if (!r) {
        ota_cmd_fail(c, "version: no full package of %s/%s version %s", model, series, version);
        return;
    }
    answer_package(c, r);
}

/* The package named by the command's id field (control_package_admin.c), or NULL when it
 * failed (answered). */
const ota_package_rec *ota_cmd_known_package(ota_plugin *p, ota_cmd *c, const cJSON *cmd,
                                             const char *const *allowed)
{
    return known_package(p, c, cmd, allowed);
}
