/*
 * describe.c — the rules of a package description (describe.h), in the order a request
 * meets them: versions, strategy, package, compare_version, ECUs.
 */
#include "describe.h"
#include "ota_errf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ota_desc_result fail(ota_describe_out *out, ota_desc_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ota_desc_result fail(ota_describe_out *out, ota_desc_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(out->msg, sizeof out->msg, fmt, ap);
    va_end(ap);
    return r;
}

/* ---------------------------------------------------------------- versions */

static ota_desc_result check_versions(const ota_catalog *c, const ota_vehicle *v,
                                      const ota_describe_in *in, ota_describe_out *out)
{
    if (strcmp(in->tgt, in->version) != 0)
        return fail(out, OTA_DESC_VERSION_MISMATCH, "tgt %s is not the task's version %s", in->tgt,
                    in->version);
    if (v->fw != NULL && v->fw[0] != '\0' && strcmp(v->fw, in->cur) != 0)
        return fail(out, OTA_DESC_VERSION_MISMATCH, "cur %s is not the vehicle's firmware %s",
                    in->cur, v->fw);
    int cmp = ota_version_cmp(in->tgt, in->cur);
    bool same_ok = in->type == OTA_TASK_SPOT_CHECK || in->type == OTA_TASK_DIAGNOSTIC ||
                   ota_catalog_listed(c, OTA_LIST_SAME_VERSION_WHITELIST, v->vin);
    if (cmp == 0 && !same_ok)
        return fail(out, OTA_DESC_VERSION_MISMATCH,
                    "cur equals tgt %s and the vehicle is not on the same-version whitelist",
                    in->tgt);
    if (cmp < 0 && !ota_catalog_listed(c, OTA_LIST_DOWNGRADE_WHITELIST, v->vin))
        return fail(out, OTA_DESC_VERSION_MISMATCH,
                    "tgt %s is below cur %s and the vehicle is not on the downgrade whitelist",
                    in->tgt, in->cur);
    return OTA_DESC_OK;
}

/* ---------------------------------------------------------------- package */

/* Formal tasks (normal, forced, factory) install released packages only (as at creation). */
static bool usable(const ota_package_rec *p, ota_task_type type)
{
    bool formal = type == OTA_TASK_NORMAL || type == OTA_TASK_FORCED || type == OTA_TASK_FACTORY;
    return p != NULL && (!formal || p->status == OTA_PKG_RELEASED);
}

static ota_desc_result choose_package(const ota_catalog *c, const ota_vehicle *v,
                                      const ota_describe_in *in, ota_describe_out *out)
{
    const ota_package_rec *full = ota_catalog_package_full(c, in->model, in->series, in->tgt);
    const ota_package_rec *delta = NULL;
    if (in->type != OTA_TASK_SPOT_CHECK && out->strategy->package_kind != OTA_KIND_FULL)
        delta = ota_catalog_package_delta(c, in->model, in->series, in->cur, in->tgt);
    out->pkg = usable(delta, in->type) ? delta : full;
    if (out->pkg == NULL)
        return fail(out, OTA_DESC_NO_PACKAGE, "no package of %s/%s version %s", in->model,
                    in->series, in->tgt);
    if (!usable(out->pkg, in->type))
        return fail(out, OTA_DESC_NO_PACKAGE, "package %" PRIu64 " is %s, not released",
                    out->pkg->id, ota_pkg_status_name(out->pkg->status));
    if (out->pkg->encrypted && v->public_key == NULL)
        return fail(out, OTA_DESC_NO_PACKAGE,
                    "package %" PRIu64 " is encrypted and the vehicle has no public_key",
                    out->pkg->id);
    return OTA_DESC_OK;
}

static bool compare_version(const ota_describe_in *in, const ota_describe_out *out)
{
    if (in->type == OTA_TASK_SPOT_CHECK)
        return false;
    switch (out->strategy->compare_version) {
    case OTA_CMP_ALWAYS:
        return true;
    case OTA_CMP_NEVER:
        return false;
    case OTA_CMP_AUTO:
        break;
    }
    return !out->pkg->delta && strcmp(in->cur, in->tgt) != 0;
}

/* ---------------------------------------------------------------- ECUs */

bool ota_config_word_bit(const char *config_word, uint32_t bit)
{
    size_t n = config_word ? strlen(config_word) : 0;
    size_t digit = bit / 4;
    if (digit >= n)
        return false;
    int v = ota_codec_hex_value(config_word[n - 1 - digit]);
    return v > 0 && ((v >> (bit % 4)) & 1);
}

/* True when the vehicle's config word makes it skip ecu (setModel ignore rules). */
static bool ignored(const ota_catalog *c, const ota_vehicle *v, const char *ecu)
{
    const ota_model_rec *m = v->config_word ? ota_catalog_model(c, v->model, v->series) : NULL;
    for (size_t i = 0; m != NULL && i < m->n_ignore; i++) {
        const ota_ignore_rule *r = &m->ignore[i];
        if (!ota_config_word_bit(v->config_word, r->bit))
            continue;
        for (size_t j = 0; j < r->n_ecus; j++) {
            if (strcmp(r->ecus[j], ecu) == 0)
                return true;
        }
    }
    return false;
}

/* The strategy's entry for ecu when it is to be upgraded (an order and the flag), or NULL. */
static const ota_strategy_ecu *upgraded(const ota_strategy_rec *s, const char *ecu)
{
    for (size_t i = 0; i < s->n_ecus; i++) {
        const ota_strategy_ecu *e = &s->ecus[i];
        if (strcmp(e->ecu, ecu) == 0)
            return e->order >= 0 && e->upgrade ? e : NULL;
    }
    return NULL;
}

static void fill_ecu(const ota_catalog *c, const ota_pkg_ecu *pe, int32_t order, ota_desc_ecu *d)
{
    const ota_file_rec *f = ota_catalog_file(c, pe->sha256);
    *d = (ota_desc_ecu){.ecu = pe->ecu,
                        .component = pe->type == OTA_ECU_TYPE_COMPONENT,
                        .order = (uint32_t)order,
                        .version = pe->version,
                        .file_id = pe->sha256,
                        .file_name = pe->name,
                        .size = f ? f->size : pe->size};
    ota_codec_unhex(pe->sha256, d->sha256, sizeof d->sha256);
}

static int by_order(const void *a, const void *b)
{
    const ota_desc_ecu *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->ecu, y->ecu); /* equal orders: by name, so the result is stable */
}

static ota_desc_result choose_ecus(const ota_catalog *c, const ota_vehicle *v,
                                   ota_describe_out *out)
{
    const ota_package_rec *p = out->pkg;
    out->ecus = calloc(p->n_ecus ? p->n_ecus : 1, sizeof *out->ecus);
    if (out->ecus == NULL)
        return fail(out, OTA_DESC_NO_PACKAGE, "out of memory");
    for (size_t i = 0; i < p->n_ecus; i++) {
        const ota_strategy_ecu *se = upgraded(out->strategy, p->ecus[i].ecu);
        if (se != NULL && !ignored(c, v, p->ecus[i].ecu))
            fill_ecu(c, &p->ecus[i], se->order, &out->ecus[out->n_ecus++]);
    }
    if (out->n_ecus == 0)
        return fail(out, OTA_DESC_NO_PACKAGE,
                    "no ECU of package %" PRIu64 " is to be upgraded under strategy %s", p->id,
                    out->strategy->id);
    qsort(out->ecus, out->n_ecus, sizeof *out->ecus, by_order);
    return OTA_DESC_OK;
}

/* ---------------------------------------------------------------- all */

ota_desc_result ota_describe(const ota_catalog *c, const ota_vehicle *v, const ota_describe_in *in,
                             ota_describe_out *out)
{
    *out = (ota_describe_out){0};
    ota_desc_result r = check_versions(c, v, in, out);
    if (r != OTA_DESC_OK)
        return r;
    out->strategy = ota_catalog_strategy_for(c, v);
    if (out->strategy == NULL)
        return fail(out, OTA_DESC_NO_PACKAGE, "no upgrade strategy for %s (nor a default of %s/%s)",
                    v->vin, v->model, v->series);
    if ((r = choose_package(c, v, in, out)) != OTA_DESC_OK)
        return r;
    out->compare_version = compare_version(in, out);
    return choose_ecus(c, v, out);
}

void ota_describe_free(ota_describe_out *out)
{
    free(out->ecus);
    out->ecus = NULL;
    out->n_ecus = 0;
}
