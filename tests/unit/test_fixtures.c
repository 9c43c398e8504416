/*
 * test_fixtures.c — record fixtures shared by the unit tests (see test_fixtures.h).
 */
#include "test_fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- changes ---- */

void test_apply_ok(ota_store *s, const ota_catalog_change *c)
{
    char err[512] = "";
    if (ota_store_apply(s, c, err, sizeof err) != 0)
        fail_msg("ota_store_apply: %s", err);
}

void test_apply_fails(const test_db *d, const ota_catalog_change *c, const char *want)
{
    char err[512] = "";
    assert_int_equal(ota_store_apply(d->s, c, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_non_null(strstr(err, d->path));
}

/* ---- the catalog's loaders ---- */

int test_collect_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    test_got_vehicles *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    ota_vehicle_rec *c = &g->v[g->n++];
    *c = *v;
    c->vin = test_strdup(v->vin);
    c->model = test_strdup(v->model);
    c->series = test_strdup(v->series);
    c->platform = test_strdup(v->platform);
    c->status = test_strdup(v->status);
    c->usage = test_strdup(v->usage);
    c->config_word = test_strdup(v->config_word);
    c->fw = test_strdup(v->fw);
    c->rxswin = test_strdup(v->rxswin);
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_got_vehicles_free(test_got_vehicles *g)
{
    for (size_t i = 0; i < g->n; i++)
        ota_vehicle_rec_free(&g->v[i]);
    g->n = 0;
}

void test_load_vehicles_ok(ota_store *s, test_got_vehicles *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_vehicles(s, test_collect_vehicle, g), 0);
}

void test_assert_vehicle(const ota_vehicle_rec *got, const ota_vehicle_rec *want)
{
    assert_string_equal(got->vin, want->vin);
    test_assert_text(got->model, want->model);
    test_assert_text(got->series, want->series);
    test_assert_text(got->platform, want->platform);
    test_assert_text(got->status, want->status);
    test_assert_text(got->usage, want->usage);
    assert_int_equal(got->sold, want->sold);
    assert_int_equal(got->activated, want->activated);
    assert_int_equal(got->passenger, want->passenger);
    test_assert_text(got->config_word, want->config_word);
    test_assert_text(got->fw, want->fw);
    test_assert_text(got->rxswin, want->rxswin);
    assert_int_equal(got->has_public_key, want->has_public_key);
    if (want->has_public_key)
        assert_memory_equal(got->public_key, want->public_key, OTA_PUBKEY_LEN);
}

int test_collect_doc(void *ctx, const char *key, const char *json)
{
    test_got_docs *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    g->key[g->n] = test_strdup(key);
    g->json[g->n] = test_strdup(json);
    g->n++;
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_got_docs_free(test_got_docs *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->key[i]);
        free(g->json[i]);
    }
    g->n = 0;
}

void test_load_docs_ok(ota_store *s, ota_doc_kind kind, test_got_docs *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_docs(s, kind, test_collect_doc, g), 0);
}

int test_collect_list(void *ctx, ota_list_kind list, const char *vin)
{
    test_got_lists *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    assert_int_equal(strlen(vin), OTA_VIN_LEN);
    g->list[g->n] = list;
    memcpy(g->vin[g->n], vin, OTA_VIN_LEN + 1);
    g->n++;
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_load_lists_ok(ota_store *s, test_got_lists *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_lists(s, test_collect_list, g), 0);
}

/* ---- the task engine's loaders ---- */

int test_collect_exec(void *ctx, const ota_exec_rec *e)
{
    test_got_execs *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    ota_exec_rec *c = &g->e[g->n++];
    *c = *e;
    c->task = test_strdup(e->task);
    c->vin = test_strdup(e->vin);
    c->code = test_strdup(e->code);
    c->msg_id = test_strdup(e->msg_id);
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_got_execs_free(test_got_execs *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((char *)g->e[i].task);
        free((char *)g->e[i].vin);
        free((char *)g->e[i].code);
        free((char *)g->e[i].msg_id);
    }
    g->n = 0;
}

void test_load_execs_ok(ota_store *s, test_got_execs *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_execs(s, test_collect_exec, g), 0);
}

void test_assert_exec(const ota_exec_rec *got, const ota_exec_rec *want)
{
    assert_string_equal(got->task, want->task);
    assert_string_equal(got->vin, want->vin);
    assert_int_equal(got->state, want->state);
    test_assert_text(got->code, want->code);
    assert_int_equal(got->resends, want->resends);
    test_assert_text(got->msg_id, want->msg_id);
    assert_int_equal(got->notified_ms, want->notified_ms);
    assert_int_equal(got->updated_ms, want->updated_ms);
    assert_int_equal(got->wave < 0 ? -1 : got->wave, want->wave < 0 ? -1 : want->wave);
}

int test_collect_shadow(void *ctx, const ota_shadow_rec *s)
{
    test_got_shadows *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    ota_shadow_rec *c = &g->s[g->n++];
    *c = *s;
    c->vin = test_strdup(s->vin);
    c->reported = test_strdup(s->reported);
    c->desired = test_strdup(s->desired);
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_got_shadows_free(test_got_shadows *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((char *)g->s[i].vin);
        free((char *)g->s[i].reported);
        free((char *)g->s[i].desired);
    }
    g->n = 0;
}

void test_load_shadows_ok(ota_store *s, test_got_shadows *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_shadows(s, test_collect_shadow, g), 0);
}

void test_assert_shadow(const ota_shadow_rec *got, const ota_shadow_rec *want)
{
    assert_string_equal(got->vin, want->vin);
    assert_int_equal(got->version, want->version);
    assert_string_equal(got->reported, want->reported);
    test_assert_text(got->desired, want->desired);
    assert_int_equal(got->updated_ms, want->updated_ms);
}

int test_collect_notice(void *ctx, const ota_notice_rec *n)
{
    test_got_notices *g = ctx;
    assert_true(g->n < TEST_GOT_MAX);
    ota_notice_rec *c = &g->r[g->n++];
    *c = *n;
    c->task = test_strdup(n->task);
    c->vin = test_strdup(n->vin);
    c->version = test_strdup(n->version);
    c->msg_id = test_strdup(n->msg_id);
    return g->stop_after != 0 && g->n >= g->stop_after;
}

void test_got_notices_free(test_got_notices *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((char *)g->r[i].task);
        free((char *)g->r[i].vin);
        free((char *)g->r[i].version);
        free((char *)g->r[i].msg_id);
    }
    g->n = 0;
}

void test_load_notices_ok(ota_store *s, const char *task, test_got_notices *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(ota_store_load_notices(s, task, test_collect_notice, g), 0);
}

void test_assert_notice(const ota_notice_rec *got, const ota_notice_rec *want)
{
    assert_string_equal(got->task, want->task);
    assert_string_equal(got->vin, want->vin);
    assert_int_equal(got->package, want->package);
    assert_string_equal(got->version, want->version);
    assert_string_equal(got->msg_id, want->msg_id);
    assert_int_equal(got->sent_ms, want->sent_ms);
}

/* ---- catalog records ---- */

char **test_strings(size_t n, const char *const *v)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = test_strdup(v[i]);
    return out;
}

ota_vehicle_rec test_vehicle(const char *vin, const char *model, const char *series,
                             const char *status, const char *usage, const char *fw)
{
    ota_vehicle_rec r = {0};
    r.vin = test_strdup(vin);
    r.model = test_strdup(model);
    r.series = test_strdup(series);
    r.status = test_strdup(status);
    r.usage = test_strdup(usage);
    r.fw = test_strdup(fw);
    r.passenger = true;
    return r;
}

ota_model_rec test_model(const char *model, const char *series, bool config_word, size_t n,
                         const char *const *ecus)
{
    ota_model_rec r = {0};
    r.model = test_strdup(model);
    r.series = test_strdup(series);
    r.supports_config_word = config_word;
    r.n_ecus = n;
    r.ecus = test_strings(n, ecus);
    return r;
}

ota_package_rec test_package(uint64_t id, const char *model, const char *series,
                             const char *version, const char *from, const char *baseline)
{
    ota_package_rec r = {0};
    r.id = id;
    r.model = test_strdup(model);
    r.series = test_strdup(series);
    r.version = test_strdup(version);
    r.delta = from != NULL;
    r.from = test_strdup(from);
    r.baseline_description = test_strdup(baseline);
    r.n_ecus = 1;
    r.ecus = calloc(1, sizeof *r.ecus);
    assert_non_null(r.ecus);
    r.ecus[0].ecu = test_strdup("BCM");
    r.ecus[0].version = test_strdup(version);
    r.ecus[0].name = test_strdup("bcm.bin");
    memcpy(r.ecus[0].sha256, TEST_SHA_1, OTA_SHA256_HEX + 1);
    return r;
}

ota_strategy_rec test_strategy(const char *id, size_t n, const ota_strategy_ecu *ecus)
{
    ota_strategy_rec r = {0};
    r.id = test_strdup(id);
    r.n_ecus = n;
    r.ecus = calloc(n ? n : 1, sizeof *r.ecus);
    assert_non_null(r.ecus);
    for (size_t i = 0; i < n; i++)
        r.ecus[i] = (ota_strategy_ecu){test_strdup(ecus[i].ecu), ecus[i].order, ecus[i].upgrade};
    return r;
}
