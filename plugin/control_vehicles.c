/*
 * control_vehicles.c — upsertVehicles, getVehicle, deleteVehicle (docs/operator-api.md).
 *
 * upsertVehicles is all or nothing: every vehicle is parsed and checked (valid fields,
 * a model/series set with setModel, no VIN twice) before anything is stored; then one
 * store change holds them all, and only once it is stored do they enter the catalog.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UPSERT_MAX 10000

typedef struct {
    ota_cmd_op base;
    ota_vehicle_rec *recs;
    size_t n;
    const char *vins[1]; /* deleteVehicle */
    char vin[OTA_VIN_LEN + 1];
} vehicles_op;

static void vehicles_free(ota_cmd_op *base)
{
    vehicles_op *op = (vehicles_op *)base;
    for (size_t i = 0; i < op->n; i++) {
        ota_vehicle_rec_free(&op->recs[i]);
    }
    free(op->recs);
    free(op);
}

static cJSON *upsert_apply(ota_plugin *p, ota_cmd_op *base)
{
    vehicles_op *op = (vehicles_op *)base;
    for (size_t i = 0; i < op->n; i++) {
        ota_catalog_put_vehicle(p->catalog, &op->recs[i]); /* takes the record's contents */
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "upserted", (double)op->n);
    return data;
}

/* By VIN, then by place in the request. */
static int cmp_vin(const void *a, const void *b)
{
    const ota_vehicle_rec *ra = *(const ota_vehicle_rec *const *)a;
    const ota_vehicle_rec *rb = *(const ota_vehicle_rec *const *)b;
    int c = strcmp(ra->vin, rb->vin);
    return c ? c : (ra > rb) - (ra < rb);
}

/* A VIN given twice in one request is an error (which one should win?); it names the later
 * place and the earlier one. */
static int check_unique(const vehicles_op *op, char *err, size_t errlen)
{
    const ota_vehicle_rec **sorted = malloc(op->n * sizeof(*sorted));
    if (!sorted) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < op->n; i++) {
        sorted[i] = &op->recs[i];
    }
    qsort(sorted, op->n, sizeof(*sorted), cmp_vin); /* equal VINs in request order */
    int rc = 0;
    for (size_t i = 1; i < op->n && rc == 0; i++) {
        if (strcmp(sorted[i]->vin, sorted[i - 1]->vin) == 0) {
            char path[32];
            snprintf(path, sizeof(path), "vehicles[%zu]", (size_t)(sorted[i] - op->recs));
            rc = ota_json_errf(err, errlen, path, "vin", "%s given twice (also at [%zu])",
                               sorted[i]->vin, (size_t)(sorted[i - 1] - op->recs));
        }
    }
    free(sorted);
    return rc;
}

/* A vehicle upserted without "rxswin" keeps the RXSWINs it has (issue 17: the plugin
 * updates them on committed successes; a factory feed re-sending the vehicle must not
 * erase them); "rxswin": [] clears them. */
static int keep_rxswin(ota_plugin *p, const cJSON *item, ota_vehicle_rec *rec, char *err,
                       size_t errlen)
{
    const ota_vehicle *old = ota_catalog_vehicle(p->catalog, rec->vin);
    const char *kept = old ? ota_catalog_vehicle_rxswin(p->catalog, old) : NULL;
    if (cJSON_HasObjectItem(item, "rxswin") || !kept) {
        return 0;
    }
    rec->rxswin = strdup(kept);
    if (!rec->rxswin) {
        ota_vehicle_rec_free(rec);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Parses vehicles[i] and checks it against the catalog. */
static int parse_vehicle(ota_plugin *p, const cJSON *item, size_t i, ota_vehicle_rec *rec,
                         char *err, size_t errlen)
{
    char path[32];
    snprintf(path, sizeof(path), "vehicles[%zu]", i);
    if (ota_json_vehicle(item, path, rec, err, errlen) != 0) {
        return -1;
    }
    if (ota_vocab_check(&OTA_VOCAB_VEHICLE_STATUS, rec->status, path, "status", err, errlen) ||
        ota_vocab_check(&OTA_VOCAB_VEHICLE_USAGE, rec->usage, path, "usage", err, errlen)) {
        ota_vehicle_rec_free(rec); /* closed word lists (vocab.h) */
        return -1;
    }
    if (!ota_catalog_model(p->catalog, rec->model, rec->series)) {
        ota_json_errf(err, errlen, path, "model", "unknown model/series %s/%s (setModel first)",
                      rec->model, rec->series);
        ota_vehicle_rec_free(rec); /* not counted in op->n: the caller would not free it */
        return -1;
    }
    return keep_rxswin(p, item, rec, err, errlen);
}

static int parse_vehicles(ota_plugin *p, const cJSON *cmd, vehicles_op *op, char *err,
                          size_t errlen)
{
    static const char *const allowed[] = {"vehicles", NULL};
    const cJSON *arr;
    size_t n;
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0 ||
        ota_json_get_array(cmd, "", "vehicles", true, 1, UPSERT_MAX, &arr, &n, err, errlen) != 0) {
        return -1;
    }
    op->recs = calloc(n, sizeof(*op->recs));
    if (!op->recs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const cJSON *item = arr->child;
    for (size_t i = 0; i < n; i++, item = item->next, op->n++) {
        if (parse_vehicle(p, item, i, &op->recs[i], err, errlen) != 0) {
            return -1;
        }
    }
    return check_unique(op, err, errlen);
}

static vehicles_op *vehicles_op_new(void)
{
    vehicles_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->base.free_op = vehicles_free;
    }
    return op;
}

void ota_cmd_upsert_vehicles(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    vehicles_op *op = vehicles_op_new();
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    if (parse_vehicles(p, cmd, op, err, sizeof(err)) != 0) {
        vehicles_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    op->base.apply = upsert_apply;
    op->base.change.put_vehicles = op->recs;
    op->base.change.n_put_vehicles = op->n;
    ota_cmd_store(p, c, &op->base);
}

/* The vin field of getVehicle / deleteVehicle, which must be a known vehicle. */
static const ota_vehicle *known_vehicle(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"vin", NULL};
    char err[256];
    const char *vin;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_vin(cmd, "", "vin", true, &vin, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return NULL;
    }
    const ota_vehicle *v = ota_catalog_vehicle(p->catalog, vin);
    if (!v) {
        ota_cmd_fail(c, "vin: unknown vehicle %s", vin);
    }
    return v;
}

void ota_cmd_get_vehicle(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    const ota_vehicle *v = known_vehicle(p, c, cmd);
    ota_vehicle_rec rec;
    if (!v) {
        return;
    }
    if (ota_catalog_vehicle_rec(p->catalog, v, &rec) != 0) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "vehicle", ota_json_from_vehicle(&rec));
    ota_vehicle_rec_free(&rec);
    ota_cmd_ok(c, data);
}

static cJSON *delete_apply(ota_plugin *p, ota_cmd_op *base)
{
    vehicles_op *op = (vehicles_op *)base;
    ota_catalog_delete_vehicle(p->catalog, op->vin);
    return NULL;
}

void ota_cmd_delete_vehicle(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    const ota_vehicle *v = known_vehicle(p, c, cmd);
    vehicles_op *op = v ? vehicles_op_new() : NULL;
    if (!op) {
        if (v) {
            ota_cmd_fail(c, "out of memory");
        }
        return;
    }
    snprintf(op->vin, sizeof(op->vin), "%s", v->vin);
    op->vins[0] = op->vin;
    op->base.apply = delete_apply;
    op->base.change.delete_vehicles = op->vins;
    op->base.change.n_delete_vehicles = 1;
    ota_cmd_store(p, c, &op->base);
}
