/*
 * control_models.c — setModel, getModel (docs/operator-api.md).
 *
 * A model/series says whether its vehicles have config words, which ECUs it has (the only
 * ones its packages and any strategy may name), and which ECUs each config-word bit
 * makes a vehicle skip (seed 000's "配置字").
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ota_cmd_op base;
    ota_model_rec rec;
    char *key;
    char *json;
    ota_store_doc doc;
} model_op;

static void model_free(ota_cmd_op *base)
{
    model_op *op = (model_op *)base;
    ota_model_rec_free(&op->rec);
    free(op->key);
    free(op->json);
    free(op);
}

static cJSON *model_apply(ota_plugin *p, ota_cmd_op *base)
{
    model_op *op = (model_op *)base;
    ota_catalog_put_model(p->catalog, &op->rec); /* takes the record's contents */
    return NULL;
}

/* The store document of the model: key "model/series", the stored JSON. */
static int model_doc(model_op *op)
{
    cJSON *j = ota_json_from_model(&op->rec);
    op->json = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    size_t n = strlen(op->rec.model) + strlen(op->rec.series) + 2;
    op->key = malloc(n);
    if (!op->json || !op->key) {
        return -1;
    }
    snprintf(op->key, n, "%s/%s", op->rec.model, op->rec.series);
    op->doc = (ota_store_doc){OTA_DOC_MODEL, op->key, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
    return 0;
}

void ota_cmd_set_model(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    model_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base = (ota_cmd_op){.apply = model_apply, .free_op = model_free};
    if (ota_json_model(cmd, "", &op->rec, err, sizeof(err)) != 0) {
        model_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (model_doc(op) != 0) {
        model_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

void ota_cmd_get_model(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"model", "series", NULL};
    char err[256];
    const char *model, *series;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "model", true, &model, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "series", true, &series, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_model_rec *m = ota_catalog_model(p->catalog, model, series);
    if (!m) {
        ota_cmd_fail(c, "model: unknown model/series %s/%s", model, series);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "model", ota_json_from_model(m));
    ota_cmd_ok(c, data);
}
