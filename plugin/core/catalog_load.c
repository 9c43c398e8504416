/*
 * catalog_load.c — the start-up load of the in-memory catalog from the store.
 *
 * Order: models, files, strategies, packages (sizes resolved from the files), RXSWIN changes,
 * vehicles, strategy bindings (their per-model/series counts need the vehicles), lists, groups
 * (catalog_groups.c). Documents
 * are parsed with cJSON and the codec's record parsers (ota_catalog_json.h); one that no
 * longer parses stops the load with an error naming its kind and key, e.g.
 *   package 12: ecus[0].version: missing
 * Binding documents are {"strategy": id} under "default:MODEL/SERIES" or "vin:VIN"
 * (other members are ignored).
 */
#include "catalog_impl.h"
#include "groups.h"
#include "ota_catalog_json.h"
#include "ota_errf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct load_ctx load_ctx;
typedef int (*put_doc_fn)(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n);

struct load_ctx {
    ota_catalog *c;
    const char *kind; /* name used in errors */
    put_doc_fn put;   /* what a document of this kind goes through */
    char *err;
    size_t errlen;
    bool failed; /* a callback stopped the walk (err is set) */
};

static int fail(load_ctx *lc, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(load_ctx *lc, const char *key, const char *fmt, ...)
{
    ota_errf(lc->err, lc->errlen, "%s %s: ", lc->kind, key);
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(lc->err, lc->errlen, fmt, ap);
    va_end(ap);
    lc->failed = true;
    return 1;
}

/* ---- one function per document kind: 0, or non-zero to stop (lc->err set) ----
 * A document's key must agree with the record (id, sha256) where the record carries it. */

static int put_model(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    ota_model_rec r;
    if (ota_json_model(j, NULL, &r, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    return ota_catalog_put_model(lc->c, &r) ? fail(lc, key, "out of memory") : 0;
}

static int put_file(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    ota_file_rec r;
    if (ota_json_file(j, NULL, &r, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    if (strcmp(r.sha256, key) != 0)
        return fail(lc, key, "sha256 %s does not match the key", r.sha256);
    return ota_catalog_put_file(lc->c, &r) ? fail(lc, key, "out of memory") : 0;
}

static int put_strategy(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    ota_strategy_rec r;
    if (ota_json_strategy(j, NULL, &r, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    if (strcmp(r.id, key) != 0) {
        fail(lc, key, "id %s does not match the key", r.id);
        ota_strategy_rec_free(&r);
        return 1;
    }
    return ota_catalog_put_strategy(lc->c, &r) ? fail(lc, key, "out of memory") : 0;
}

/* The key is the id; a stored package may carry it too. */
static int put_package(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    ota_package_rec r;
    char *end;
    uint64_t id = strtoull(key, &end, 10);
    if (*key < '1' || *key > '9' || *end != '\0')
        return fail(lc, key, "the key is not a package id");
    if (ota_json_package(j, NULL, &r, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    if (r.id != 0 && r.id != id) {
        fail(lc, key, "id %" PRIu64 " does not match the key", r.id);
        ota_package_rec_free(&r);
        return 1;
    }
    r.id = id;
    return ota_catalog_put_package(lc->c, &r) ? fail(lc, key, "out of memory") : 0;
}

/* Splits "model/series" in place. Words may hold '/': the split is the first one naming a
 * known model/series, else the last one (as the control layer reads these keys). */
static char *split_model_series(const ota_catalog *c, char *ms)
{
    char *last = NULL;
    for (char *slash = strchr(ms, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (ota_catalog_model(c, ms, slash + 1) != NULL)
            return slash + 1;
        *slash = '/';
        last = slash;
    }
    if (last != NULL)
        *last = '\0';
    return last && ms[0] && last[1] ? last + 1 : NULL;
}

static int put_binding(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    const char *id = NULL;
    if (ota_json_get_word(j, NULL, "strategy", true, &id, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    int rc = 1;
    if (strncmp(key, "vin:", 4) == 0) {
        rc = ota_catalog_bind_vin(lc->c, key + 4, id);
    } else if (strncmp(key, "default:", 8) == 0) {
        char *model = strdup(key + 8);
        if (model == NULL)
            return fail(lc, key, "out of memory");
        char *series = split_model_series(lc->c, model);
        rc = series ? ota_catalog_bind_default(lc->c, model, series, id) : 1;
        free(model);
    }
    if (rc > 0)
        return fail(lc, key, "expected a key default:MODEL/SERIES or vin:VIN");
    return rc ? fail(lc, key, "out of memory or a bad VIN") : 0;
}

/* What a committed success changed (issue 17): the key is "TASK/VIN" of the record. */
static int put_rxswin(load_ctx *lc, const char *key, const cJSON *j, char *perr, size_t n)
{
    ota_rxswin_change_rec r;
    char want[128];
    if (ota_json_rxswin_change(j, NULL, &r, perr, n) != 0)
        return fail(lc, key, "%s", perr);
    ota_catalog_rxswin_key(r.task, r.vin, want, sizeof want);
    int rc = strcmp(want, key) != 0 ? fail(lc, key, "task/vin %s does not match", want)
             : ota_catalog_put_rxswin_change(lc->c, &r) ? fail(lc, key, "out of memory")
                                                        : 0;
    ota_rxswin_change_rec_free(&r);
    return rc;
}

static const struct {
    ota_doc_kind kind;
    const char *name;
    put_doc_fn put;
} DOC_STEPS[] = {
    {OTA_DOC_MODEL, "model", put_model},           {OTA_DOC_FILE, "file", put_file},
    {OTA_DOC_STRATEGY, "strategy", put_strategy},  {OTA_DOC_PACKAGE, "package", put_package},
    {OTA_DOC_RXSWIN, "rxswin change", put_rxswin},
};

static int on_doc(void *ctx, const char *key, const char *json)
{
    load_ctx *lc = ctx;
    char perr[256] = "";
    cJSON *j = cJSON_Parse(json);
    if (j == NULL)
        return fail(lc, key, "not valid JSON");
    int rc = lc->put(lc, key, j, perr, sizeof perr);
    cJSON_Delete(j);
    return rc;
}

static int load_kind(load_ctx *lc, ota_store *s, ota_doc_kind kind, const char *name,
                     put_doc_fn put)
{
    lc->kind = name;
    lc->put = put;
    if (ota_store_load_docs(s, kind, on_doc, lc) == 0)
        return 0;
    if (!lc->failed)
        snprintf(lc->err, lc->errlen, "store error while loading %s documents", name);
    return -1;
}

/* ---- vehicles and lists ---- */

static int on_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    load_ctx *lc = ctx;
    if (cat_put_vehicle_copy(lc->c, v) == 0)
        return 0;
    return fail(lc, v->vin ? v->vin : "?", "cannot be kept (out of memory or bad VIN)");
}

static int on_list(void *ctx, ota_list_kind list, const char *vin)
{
    load_ctx *lc = ctx;
    if (ota_catalog_list_add(lc->c, list, vin) >= 0)
        return 0;
    return fail(lc, vin, "cannot be kept on %s (out of memory or bad VIN)",
                ota_list_name(list) ? ota_list_name(list) : "an unknown list");
}

static int load_rows(load_ctx *lc, int rc, const char *what)
{
    if (rc != 0 && !lc->failed)
        snprintf(lc->err, lc->errlen, "store error while loading %s", what);
    return rc ? -1 : 0;
}

int ota_catalog_load(ota_catalog *c, ota_store *s, char *err, size_t errlen)
{
    cat_touch(c);
    load_ctx lc = {c, "", NULL, err, errlen, false};
    for (size_t i = 0; i < sizeof DOC_STEPS / sizeof DOC_STEPS[0]; i++) {
        if (load_kind(&lc, s, DOC_STEPS[i].kind, DOC_STEPS[i].name, DOC_STEPS[i].put) != 0)
            return -1;
    }
    lc.kind = "vehicle";
    if (load_rows(&lc, ota_store_load_vehicles(s, on_vehicle, &lc), "vehicles") != 0)
        return -1;
    if (load_kind(&lc, s, OTA_DOC_BINDING, "binding", put_binding) != 0)
        return -1;
    lc.kind = "list member";
    if (load_rows(&lc, ota_store_load_lists(s, on_list, &lc), "lists") != 0)
        return -1;
    return ota_catalog_load_groups(c, s, err, errlen);
}

/* ---- one change log entry on a running broker (plugin/follow.c) ----
 * Through the same functions as the start-up load: a put replaces the item as loading it
 * would. Returns 1 applied, 0 an entry the catalog does not hold (tasks, settings, groups,
 * deletions of documents other than packages), -1 with err set. */
int ota_catalog_apply_change(ota_catalog *c, const ota_store_change *ch, char *err, size_t errlen)
{
    cat_touch(c);
    load_ctx lc = {c, "", NULL, err, errlen, false};
    if (ch->what == OTA_CHANGE_LIST) {
        lc.kind = "list member";
        int rc = ch->deleted ? ota_catalog_list_remove(c, ch->list, ch->id)
                             : on_list(&lc, ch->list, ch->id);
        return rc < 0 || lc.failed ? -1 : 1;
    }
    if (ch->what == OTA_CHANGE_VEHICLE) {
        lc.kind = "vehicle";
        if (ch->deleted) {
            return ota_catalog_delete_vehicle(c, ch->id) < 0 ? -1 : 1;
        }
        char perr[256] = "";
        ota_vehicle_rec v;
        cJSON *j = cJSON_Parse(ch->json ? ch->json : "");
        int rc = 1;
        if (!j) {
            fail(&lc, ch->id, "not valid JSON");
        } else if (ota_json_vehicle(j, NULL, &v, perr, sizeof perr) != 0) {
            fail(&lc, ch->id, "%s", perr);
        } else {
            rc = on_vehicle(&lc, &v);
            ota_vehicle_rec_free(&v); /* the record owns its strings; the catalog copied them */
        }
        cJSON_Delete(j);
        return rc ? -1 : 1;
    }
    if (ch->doc_kind == OTA_DOC_PACKAGE && ch->deleted) {
        return ota_catalog_delete_package(c, strtoull(ch->id, NULL, 10)) < 0 ? -1 : 1;
    }
    if (ch->deleted) {
        return 0;
    }
    for (size_t i = 0; i < sizeof DOC_STEPS / sizeof DOC_STEPS[0]; i++) {
        if (DOC_STEPS[i].kind == ch->doc_kind) {
            lc.kind = DOC_STEPS[i].name;
            lc.put = DOC_STEPS[i].put;
            return on_doc(&lc, ch->id, ch->json) ? -1 : 1;
        }
    }
    if (ch->doc_kind == OTA_DOC_BINDING) {
        lc.kind = "binding";
        lc.put = put_binding;
        return on_doc(&lc, ch->id, ch->json) ? -1 : 1;
    }
    return 0;
}
