/*
 * control_strategies.c — setStrategy, bindStrategy, getStrategy (docs/operator-api.md).
 *
 * A strategy (seed 000's "升级策略") says which package kind a vehicle gets, whether the
 * version is compared, and which ECUs are upgraded in which order. It applies to a
 * vehicle through a binding: the VIN's own binding first, else the default of its
 * model/series (SPEC §6). Strategies are documents under their id; each binding is a
 * document of its own ("default:MODEL/SERIES" or "vin:VIN" -> {"strategy": id}), and one
 * bindStrategy stores all of its bindings in one change.
 *
 * getStrategy also tells what the strategy is bound to. The in-memory catalog answers
 * "which strategy applies here" but not the reverse, so getStrategy reads the binding
 * documents from the store on the writer thread (a scan: an operator's query, not a hot
 * path); commands run one at a time, so the store then holds exactly what memory holds.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIND_VINS_MAX 10000
#define KEY_DEFAULT "default:"
#define KEY_VIN "vin:"

/* ---------------------------------------------------------------- setStrategy */

typedef struct {
    ota_cmd_op base;
    ota_strategy_rec rec;
    char *json;
    ota_store_doc doc;
} strategy_op;

static void strategy_free(ota_cmd_op *base)
{
    strategy_op *op = (strategy_op *)base;
    ota_strategy_rec_free(&op->rec);
    free(op->json);
    free(op);
}

static cJSON *strategy_apply(ota_plugin *p, ota_cmd_op *base)
{
    strategy_op *op = (strategy_op *)base;
    ota_catalog_put_strategy(p->catalog, &op->rec); /* takes the record's contents */
    return NULL;
}

/* The strategy field, whose ECUs must each be declared by some model. */
static int parse_strategy(ota_plugin *p, const cJSON *cmd, ota_strategy_rec *rec, char *err,
                          size_t errlen)
{
    static const char *const allowed[] = {"strategy", NULL};
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0) {
        return -1;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cmd, "strategy");
    if (!s) {
        return ota_json_errf(err, errlen, "", "strategy", "missing");
    }
    if (ota_json_strategy(s, "strategy", rec, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < rec->n_ecus; i++) {
        if (!ota_catalog_ecu_known(p->catalog, rec->ecus[i].ecu)) {
            char path[64];
            snprintf(path, sizeof(path), "strategy.ecus[%zu]", i);
            return ota_json_errf(err, errlen, path, "ecu", "unknown ECU %s (no model declares it)",
                                 rec->ecus[i].ecu);
        }
    }
    return 0;
}

void ota_cmd_set_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    strategy_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base = (ota_cmd_op){.apply = strategy_apply, .free_op = strategy_free};
    if (parse_strategy(p, cmd, &op->rec, err, sizeof(err)) != 0) {
        strategy_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *j = ota_json_from_strategy(&op->rec);
    op->json = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!op->json) {
        strategy_free(&op->base);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->doc = (ota_store_doc){OTA_DOC_STRATEGY, op->rec.id, op->json};
    op->base.change.docs = &op->doc;
    op->base.change.n_docs = 1;
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- bindStrategy */

typedef struct {
    ota_cmd_op base;
    char *id;    /* the strategy */
    char *model; /* the default of model/series, or NULL */
    char *series;
    char **vins;
    size_t n_vins;
    char *json; /* {"strategy": id}: every binding's document */
    char *default_key;
    char (*vin_keys)[sizeof(KEY_VIN) + OTA_VIN_LEN];
    ota_store_doc *docs;
} bind_op;

static void bind_free(ota_cmd_op *base)
{
    bind_op *op = (bind_op *)base;
    free(op->id);
    free(op->model);
    free(op->series);
    ota_json_strings_free(op->vins, op->n_vins);
    free(op->json);
    free(op->default_key);
    free(op->vin_keys);
    free(op->docs);
    free(op);
}

static cJSON *bind_apply(ota_plugin *p, ota_cmd_op *base)
{
    bind_op *op = (bind_op *)base;
    if (op->model) {
        ota_catalog_bind_default(p->catalog, op->model, op->series, op->id);
    }
    for (size_t i = 0; i < op->n_vins; i++) {
        ota_catalog_bind_vin(p->catalog, op->vins[i], op->id);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "bound", (double)op->base.change.n_docs);
    return data;
}

/* model and series: both or neither, and a known model/series. A strategy may name ECUs
 * the model lacks: building a description keeps only the package's ECUs that the
 * strategy lists (SPEC §6), so one strategy can serve several models. */
static int parse_model(ota_plugin *p, const cJSON *cmd, bind_op *op,
                       char *err, size_t errlen)
{
    const char *model, *series;
    if (ota_json_get_word(cmd, "", "model", false, &model, err, errlen) != 0 ||
        ota_json_get_word(cmd, "", "series", false, &series, err, errlen) != 0) {
        return -1;
    }
    if (!model != !series) {
        return ota_json_errf(err, errlen, "", model ? "series" : "model",
                             "missing (model and series go together)");
    }
    if (!model) {
        return 0;
    }
    const ota_model_rec *m = ota_catalog_model(p->catalog, model, series);
    if (!m) {
        return ota_json_errf(err, errlen, "", "model",
                             "unknown model/series %s/%s (setModel first)", model, series);
    }
    op->model = strdup(model);
    op->series = strdup(series);
    if (!op->model || !op->series) {
        return ota_json_errf(err, errlen, "", "", "out of memory");
    }
    return 0;
}

/* The binding documents: the default first, then one per VIN. */
static int bind_docs(bind_op *op, char *err, size_t errlen)
{
    size_t n = (op->model ? 1 : 0) + op->n_vins;
    cJSON *j = cJSON_CreateObject();
    op->json =
        j && cJSON_AddStringToObject(j, "strategy", op->id) ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    op->docs = calloc(n, sizeof(*op->docs));
    op->vin_keys = calloc(op->n_vins ? op->n_vins : 1, sizeof(*op->vin_keys));
    if (!op->json || !op->docs || !op->vin_keys) {
        return ota_json_errf(err, errlen, "", "", "out of memory");
    }
    size_t k = 0;
    if (op->model) {
        size_t len = sizeof(KEY_DEFAULT) + strlen(op->model) + 1 + strlen(op->series);
        if (!(op->default_key = malloc(len))) {
            return ota_json_errf(err, errlen, "", "", "out of memory");
        }
        snprintf(op->default_key, len, KEY_DEFAULT "%s/%s", op->model, op->series);
        op->docs[k++] = (ota_store_doc){OTA_DOC_BINDING, op->default_key, op->json};
    }
    for (size_t i = 0; i < op->n_vins; i++) {
        snprintf(op->vin_keys[i], sizeof(op->vin_keys[i]), KEY_VIN "%s", op->vins[i]);
        op->docs[k++] = (ota_store_doc){OTA_DOC_BINDING, op->vin_keys[i], op->json};
    }
    op->base.change.docs = op->docs;
    op->base.change.n_docs = n;
    return 0;
}

static int parse_bind(ota_plugin *p, const cJSON *cmd, bind_op *op, char *err, size_t errlen)
{
    static const char *const allowed[] = {"id", "model", "series", "vins", NULL};
    const char *id;
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, errlen) != 0) {
        return -1;
    }
    const ota_strategy_rec *s = ota_catalog_strategy(p->catalog, id);
    if (!s) {
        return ota_json_errf(err, errlen, "", "id", "unknown strategy %s (setStrategy first)", id);
    }
    if (!(op->id = strdup(id))) {
        return ota_json_errf(err, errlen, "", "", "out of memory");
    }
    if (parse_model(p, cmd, op, err, errlen) != 0 ||
        ota_json_get_string_array(cmd, "", "vins", false, 1, BIND_VINS_MAX,
                                  OTA_JSON_VINS | OTA_JSON_UNIQUE, &op->vins, &op->n_vins, err,
                                  errlen) != 0) {
        return -1;
    }
    if (!op->model && !op->vins) {
        return ota_json_errf(err, errlen, "", "vins",
                             "missing (give model and series, vins, or both)");
    }
    return bind_docs(op, err, errlen);
}

void ota_cmd_bind_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[512];
    bind_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base = (ota_cmd_op){.apply = bind_apply, .free_op = bind_free};
    if (parse_bind(p, cmd, op, err, sizeof(err)) != 0) {
        bind_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- getStrategy */

typedef struct {
    ota_cmd_op base;
    char *id;
    /* found by the writer thread (plain malloc) */
    char **defaults; /* "model/series" of each default binding */
    size_t n_defaults, cap_defaults;
    size_t n_vins;
    bool out_of_memory;
} get_op;

static void get_free(ota_cmd_op *base)
{
    get_op *op = (get_op *)base;
    for (size_t i = 0; i < op->n_defaults; i++) {
        free(op->defaults[i]);
    }
    free(op->defaults);
    free(op->id);
    free(op);
}

static int add_default(get_op *op, const char *model_series)
{
    if (op->n_defaults == op->cap_defaults) {
        size_t cap = op->cap_defaults ? 2 * op->cap_defaults : 8;
        char **d = realloc(op->defaults, cap * sizeof(*d));
        if (!d) {
            return -1;
        }
        op->defaults = d;
        op->cap_defaults = cap;
    }
    if (!(op->defaults[op->n_defaults] = strdup(model_series))) {
        return -1;
    }
    op->n_defaults++;
    return 0;
}

/* Writer thread: one binding document; counts it when it binds op's strategy. */
static int binding_doc(void *ctx, const char *key, const char *json)
{
    get_op *op = ctx;
    cJSON *j = cJSON_Parse(json);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "strategy");
    if (cJSON_IsString(s) && strcmp(s->valuestring, op->id) == 0) {
        if (strncmp(key, KEY_VIN, strlen(KEY_VIN)) == 0) {
            op->n_vins++;
        } else if (strncmp(key, KEY_DEFAULT, strlen(KEY_DEFAULT)) == 0 &&
                   add_default(op, key + strlen(KEY_DEFAULT)) != 0) {
            op->out_of_memory = true;
        }
    }
    cJSON_Delete(j);
    return op->out_of_memory ? 1 : 0;
}

static int get_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    get_op *op = (get_op *)base;
    if (ota_store_load_docs(store, OTA_DOC_BINDING, binding_doc, op) != 0) {
        snprintf(err, errlen, "%s",
                 op->out_of_memory ? "out of memory" : "cannot read the bindings from the store");
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* {"model", "series"} of a default binding's key "model/series". Words may hold '/', so
 * the split is the first one naming a known model/series, else the last one. */
static cJSON *default_json(const ota_catalog *cat, const char *model_series)
{
    char buf[2 * 64 + 2];
    snprintf(buf, sizeof(buf), "%s", model_series);
    cJSON *o = cJSON_CreateObject();
    for (char *slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        bool known = ota_catalog_model(cat, buf, slash + 1) != NULL;
        if (known || !strchr(slash + 1, '/')) {
            cJSON_AddStringToObject(o, "model", buf);
            cJSON_AddStringToObject(o, "series", slash + 1);
            return o;
        }
        *slash = '/';
    }
    cJSON_AddStringToObject(o, "model", buf); /* no '/': not a key this plugin writes */
    cJSON_AddStringToObject(o, "series", "");
    return o;
}

static cJSON *get_apply(ota_plugin *p, ota_cmd_op *base)
{
    get_op *op = (get_op *)base;
    const ota_strategy_rec *s = ota_catalog_strategy(p->catalog, op->id);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "strategy", s ? ota_json_from_strategy(s) : cJSON_CreateNull());
    if (op->n_defaults > 1) {
        qsort(op->defaults, op->n_defaults, sizeof(*op->defaults), cmp_str);
    }
    cJSON *defaults = cJSON_AddArrayToObject(data, "defaults");
    for (size_t i = 0; i < op->n_defaults; i++) {
        cJSON_AddItemToArray(defaults, default_json(p->catalog, op->defaults[i]));
    }
    cJSON_AddNumberToObject(data, "vins", (double)op->n_vins);
    return data;
}

void ota_cmd_get_strategy(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"id", NULL};
    char err[256];
    const char *id;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_word(cmd, "", "id", true, &id, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    if (!ota_catalog_strategy(p->catalog, id)) {
        ota_cmd_fail(c, "id: unknown strategy %s", id);
        return;
    }
    get_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->id = strdup(id))) {
        free(op);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base = (ota_cmd_op){.run = get_run, .apply = get_apply, .free_op = get_free};
    ota_cmd_store(p, c, &op->base);
}
