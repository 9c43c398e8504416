/*
 * test_task_rules.c — cmocka tests of the task rules (plugin/core/task_rules.h, SPEC §6).
 *
 * Every test builds its own catalog in memory (no store): model M1/S1 with config words,
 * its released full package 2.0.0 with a baseline description, and its default strategy
 * with ordered ECUs; vehicles are added per test. Each per-VIN rule has a test that
 * passes and one that fails with exactly its code, and where two rules would both fail
 * the test says which wins (the order of SPEC §6). The scopes are tested: the diagnostic
 * tool skips blacklist, usage, status, firmware 0, busy and same version; the forced
 * whitelist skips usage, status, firmware 0 and busy but not the version rules;
 * spot-check and diagnostic tasks skip same version. Then the default type rules of each
 * type, custom type rules, every task-level error and its order, and the VIN set.
 */
#include "catalog.h"
#include "task_rules.h"
#include "test_fixtures.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define V1 "LSVTR000000000001"
#define V2 "LSVTR000000000002"
#define V3 "LSVTR000000000003"
#define TARGET "2.0.0"

/* A vehicle that every default rule of a normal task accepts: status, usage, fw, config. */
#define OK_VEHICLE "in_stock", "retail", "1.0.0", "CW1"

/* ---- the fixture ---- */

typedef struct {
    const char *vin;
    ota_upgrade_state st;
} latest_entry;

typedef struct {
    ota_catalog *c;
    ota_task_type_rules rules[OTA_TASK_TYPE_COUNT]; /* custom rules (owned) when custom */
    bool custom;
    latest_entry latest[8];
    size_t n_latest;
    ota_rules_env env;
} fixture;

static const ota_upgrade_state *find_latest(void *ctx, const char *vin)
{
    fixture *f = ctx;
    for (size_t i = 0; i < f->n_latest; i++) {
        if (strcmp(f->latest[i].vin, vin) == 0)
            return &f->latest[i].st;
    }
    return NULL;
}

static void set_latest(fixture *f, const char *vin, const char *status, const char *trigger)
{
    assert_true(f->n_latest < sizeof f->latest / sizeof f->latest[0]);
    f->latest[f->n_latest++] = (latest_entry){vin, {status, trigger, 0}};
}

static void put_model(ota_catalog *c, const char *m, const char *s, bool config_word)
{
    static const char *const ecus[] = {"BCM", "VCU"};
    ota_model_rec r = test_model(m, s, config_word, 2, ecus);
    assert_int_equal(ota_catalog_put_model(c, &r), 0);
}

static void put_package(ota_catalog *c, uint64_t id, const char *m, const char *s,
                        const char *version, const char *from, ota_pkg_status st,
                        const char *baseline)
{
    ota_package_rec r = test_package(id, m, s, version, from, baseline);
    r.status = st;
    assert_int_equal(ota_catalog_put_package(c, &r), 0);
}

/* A strategy over BCM (order 1) and VCU (order vcu_order; -1: not configured). */
static void put_strategy(ota_catalog *c, const char *id, int32_t vcu_order)
{
    ota_strategy_ecu ecus[] = {{"BCM", 1, true}, {"VCU", vcu_order, true}};
    ota_strategy_rec r = test_strategy(id, 2, ecus);
    assert_int_equal(ota_catalog_put_strategy(c, &r), 0);
}

static void put_vehicle_ms(fixture *f, const char *vin, const char *model, const char *series,
                           const char *status, const char *usage, const char *fw,
                           const char *config_word)
{
    ota_vehicle_rec r = test_vehicle(vin, model, series, status, usage, fw);
    r.config_word = test_strdup(config_word);
    assert_int_equal(ota_catalog_put_vehicle(f->c, &r), 0);
}

/* A vehicle of M1/S1 (NULL texts: absent). */
static void put_vehicle(fixture *f, const char *vin, const char *status, const char *usage,
                        const char *fw, const char *config_word)
{
    put_vehicle_ms(f, vin, "M1", "S1", status, usage, fw, config_word);
}

static void list(fixture *f, ota_list_kind k, const char *vin)
{
    assert_int_equal(ota_catalog_list_add(f->c, k, vin), 1);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->c = ota_catalog_new();
    assert_non_null(f->c);
    put_model(f->c, "M1", "S1", true);
    put_package(f->c, 1, "M1", "S1", TARGET, NULL, OTA_PKG_RELEASED, "baseline 2.0.0");
    put_strategy(f->c, "ST1", 2);
    assert_int_equal(ota_catalog_bind_default(f->c, "M1", "S1", "ST1"), 0);
    f->env.latest = find_latest;
    f->env.latest_ctx = f; /* type_rules NULL: the defaults */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; f->custom && i < OTA_TASK_TYPE_COUNT; i++)
        ota_task_type_rules_free(&f->rules[i]);
    ota_catalog_free(f->c);
    free(f);
    return 0;
}

/* Replaces the rules of one type (the others: defaults); NULL lists: any. */
static void custom_rules(fixture *f, ota_task_type type, size_t ns, const char *const *statuses,
                         size_t nu, const char *const *usages)
{
    if (!f->custom) {
        ota_task_type_rules defaults[OTA_TASK_TYPE_COUNT];
        ota_task_default_type_rules(defaults);
        for (int i = 0; i < OTA_TASK_TYPE_COUNT; i++) {
            const ota_task_type_rules *d = &defaults[i];
            f->rules[i] = (ota_task_type_rules){
                d->type, d->n_statuses,
                d->statuses ? test_strings(d->n_statuses, (const char *const *)d->statuses) : NULL,
                d->n_usages,
                d->usages ? test_strings(d->n_usages, (const char *const *)d->usages) : NULL};
        }
        f->custom = true;
        f->env.type_rules = f->rules;
    }
    ota_task_type_rules_free(&f->rules[type]);
    f->rules[type] = (ota_task_type_rules){type, ns, statuses ? test_strings(ns, statuses) : NULL,
                                           nu, usages ? test_strings(nu, usages) : NULL};
}

/* ---- tasks ---- */

static ota_task_rec task(ota_task_type type, ota_task_source source, const char *version, size_t n,
                         const char *const *vins)
{
    ota_task_rec t = {0};
    t.id = test_strdup("T1");
    t.name = test_strdup("task");
    t.type = type;
    t.source = source;
    t.model = test_strdup("M1");
    t.series = test_strdup("S1");
    t.version = test_strdup(version);
    t.n_vins = n;
    t.vins = n ? test_strings(n, vins) : NULL;
    t.start_ms = t.end_ms = -1;
    return t;
}

/* The code of one VIN in a one-VIN task of this type, source and target version. */
static ota_reject_code check_tv(fixture *f, ota_task_type type, ota_task_source source,
                                const char *version, const char *vin)
{
    ota_task_rec t = task(type, source, version, 1, &vin);
    ota_vin_set *seen = ota_vin_set_new(1);
    assert_non_null(seen);
    ota_reject_code r = ota_task_check_vin(f->c, &f->env, &t, vin, seen);
    ota_vin_set_free(seen);
    ota_task_rec_free(&t);
    return r;
}

static ota_reject_code check(fixture *f, ota_task_type type, const char *vin)
{
    return check_tv(f, type, OTA_SOURCE_CONSOLE, TARGET, vin);
}

static ota_reject_code check_diag_tool(fixture *f, ota_task_type type, const char *vin)
{
    return check_tv(f, type, OTA_SOURCE_DIAGNOSTIC_TOOL, TARGET, vin);
}

#define assert_code(expr, code) assert_string_equal(ota_reject_name(expr), ota_reject_name(code))
#define assert_err(expr, e) assert_string_equal(ota_task_error_name(expr), ota_task_error_name(e))

/* ---- names and defaults ---- */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ota_reject_name(OTA_REJ_DUPLICATE_VIN), "E_DUPLICATE_VIN");
    assert_string_equal(ota_reject_name(OTA_REJ_UPGRADE_IN_PROGRESS), "E_UPGRADE_IN_PROGRESS");
    assert_string_equal(ota_reject_name(OTA_REJ_CONFIG_WORD_MISSING), "E_CONFIG_WORD_MISSING");
    assert_null(ota_reject_name((ota_reject_code)(OTA_REJ_CONFIG_WORD_MISSING + 1)));
    for (int r = OTA_REJ_DUPLICATE_VIN; r <= OTA_REJ_CONFIG_WORD_MISSING; r++)
        assert_true(strncmp(ota_reject_name((ota_reject_code)r), "E_", 2) == 0);
    assert_string_equal(ota_task_error_name(OTA_TASK_E_EMPTY_VINS), "E_EMPTY_VINS");
    assert_string_equal(ota_task_error_name(OTA_TASK_E_PACKAGE_NOT_RELEASED),
                        "E_PACKAGE_NOT_RELEASED");
    assert_string_equal(ota_task_error_name(OTA_TASK_E_STRATEGY_ECU_ORDER), "E_STRATEGY_ECU_ORDER");
    assert_null(ota_task_error_name((ota_task_error)(OTA_TASK_E_STRATEGY_ECU_ORDER + 1)));
}

static bool list_is(char **list, size_t n, size_t want_n, const char *const *want)
{
    if (n != want_n || (list == NULL) != (want == NULL))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], want[i]) != 0)
            return false;
    }
    return true;
}

static void test_default_type_rules_table(void **state)
{
    (void)state;
    static const char *const factory[] = {"assembly_offline", "ok_offline", "certificate_printed"};
    static const char *const formal[] = {"in_stock", "sold"};
    static const char *const usages[] = {"retail", "fleet", "test"};
    static const char *const spot[] = {"ok_offline", "certificate_printed", "in_stock"};
    ota_task_type_rules r[OTA_TASK_TYPE_COUNT];
    ota_task_default_type_rules(r);
    for (int i = 0; i < OTA_TASK_TYPE_COUNT; i++)
        assert_int_equal(r[i].type, i);
    assert_true(list_is(r[OTA_TASK_NORMAL].statuses, r[OTA_TASK_NORMAL].n_statuses, 2, formal));
    assert_true(list_is(r[OTA_TASK_NORMAL].usages, r[OTA_TASK_NORMAL].n_usages, 3, usages));
    assert_true(list_is(r[OTA_TASK_FORCED].statuses, r[OTA_TASK_FORCED].n_statuses, 2, formal));
    assert_true(list_is(r[OTA_TASK_FORCED].usages, r[OTA_TASK_FORCED].n_usages, 3, usages));
    assert_true(list_is(r[OTA_TASK_FACTORY].statuses, r[OTA_TASK_FACTORY].n_statuses, 3, factory));
    assert_true(list_is(r[OTA_TASK_FACTORY].usages, r[OTA_TASK_FACTORY].n_usages, 0, NULL));
    assert_true(
        list_is(r[OTA_TASK_SPOT_CHECK].statuses, r[OTA_TASK_SPOT_CHECK].n_statuses, 3, spot));
    assert_true(list_is(r[OTA_TASK_SPOT_CHECK].usages, r[OTA_TASK_SPOT_CHECK].n_usages, 0, NULL));
    assert_true(
        list_is(r[OTA_TASK_DIAGNOSTIC].statuses, r[OTA_TASK_DIAGNOSTIC].n_statuses, 0, NULL));
    assert_true(list_is(r[OTA_TASK_DIAGNOSTIC].usages, r[OTA_TASK_DIAGNOSTIC].n_usages, 0, NULL));
}

/* ---- per-VIN rules, in order ---- */

static void test_accepted(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, "ok_offline", "rental", "1.0.0", "CW1");
    for (int type = OTA_TASK_NORMAL; type <= OTA_TASK_DIAGNOSTIC; type++) {
        if (type != OTA_TASK_FACTORY)
            assert_code(check(f, (ota_task_type)type, V1), OTA_REJ_NONE);
    }
    assert_code(check(f, OTA_TASK_FACTORY, V2), OTA_REJ_NONE);
    /* without an environment: default rules, no latest statuses */
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 1, (const char *[]){V1});
    assert_code(ota_task_check_vin(f->c, NULL, &t, V1, NULL), OTA_REJ_NONE);
    ota_task_rec_free(&t);
}

static void test_duplicate_vin(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, OK_VEHICLE);
    const char *vins[] = {V1, V2, V1, V3, V3, V1};
    ota_reject_code want[] = {OTA_REJ_NONE,          OTA_REJ_NONE,
                              OTA_REJ_DUPLICATE_VIN, OTA_REJ_UNKNOWN_VEHICLE,
                              OTA_REJ_DUPLICATE_VIN, OTA_REJ_DUPLICATE_VIN};
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 6, vins);
    ota_vin_set *seen = ota_vin_set_new(t.n_vins);
    assert_non_null(seen);
    for (size_t i = 0; i < t.n_vins; i++)
        assert_code(ota_task_check_vin(f->c, &f->env, &t, t.vins[i], seen), want[i]);
    ota_vin_set_free(seen);
    /* no set: no duplicate check */
    assert_code(ota_task_check_vin(f->c, &f->env, &t, V1, NULL), OTA_REJ_NONE);
    assert_code(ota_task_check_vin(f->c, &f->env, &t, V1, NULL), OTA_REJ_NONE);
    ota_task_rec_free(&t);
}

static void test_unknown_vehicle(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_UNKNOWN_VEHICLE);
    /* every source and type */
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_UNKNOWN_VEHICLE);
    list(f, OTA_LIST_FORCED_WHITELIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_UNKNOWN_VEHICLE);
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 1, (const char *[]){V1});
    assert_code(ota_task_check_vin(f->c, &f->env, &t, NULL, NULL), OTA_REJ_UNKNOWN_VEHICLE);
    ota_task_rec_free(&t);
}

static void test_model_mismatch(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle_ms(f, V2, "M2", "S1", OK_VEHICLE);
    put_vehicle_ms(f, V3, "M1", "S2", OK_VEHICLE);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_MODEL_MISMATCH);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_MODEL_MISMATCH);
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_MODEL_MISMATCH);
    /* before the factory status: a factory task and an in_stock vehicle of another model */
    assert_code(check(f, OTA_TASK_FACTORY, V2), OTA_REJ_MODEL_MISMATCH);
}

static void test_factory_status(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, "assembly_offline", "test", "1.0.0", "CW1");
    put_vehicle(f, V2, "certificate_printed", "retail", "1.0.0", "CW1");
    put_vehicle(f, V3, OK_VEHICLE); /* in_stock */
    assert_code(check(f, OTA_TASK_FACTORY, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_FACTORY, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_FACTORY, V3), OTA_REJ_FACTORY_STATUS);
    /* only factory tasks: a normal task gives the type rules' status code instead */
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_STATUS_MISMATCH);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_NONE);
    /* neither the diagnostic tool nor the forced whitelist skips it */
    assert_code(check_diag_tool(f, OTA_TASK_FACTORY, V3), OTA_REJ_FACTORY_STATUS);
    list(f, OTA_LIST_FORCED_WHITELIST, V3);
    assert_code(check(f, OTA_TASK_FACTORY, V3), OTA_REJ_FACTORY_STATUS);
    /* not changed by the factory type rules either */
    static const char *const any_status[] = {"in_stock"};
    custom_rules(f, OTA_TASK_FACTORY, 1, any_status, 0, NULL);
    assert_code(check(f, OTA_TASK_FACTORY, V3), OTA_REJ_FACTORY_STATUS);
    /* before the blacklist */
    list(f, OTA_LIST_BLACKLIST, V3);
    assert_code(check(f, OTA_TASK_FACTORY, V3), OTA_REJ_FACTORY_STATUS);
}

static void test_blacklisted(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, OK_VEHICLE);
    put_vehicle(f, V3, "scrapped", "rental", "1.0.0", "CW1");
    list(f, OTA_LIST_BLACKLIST, V2);
    list(f, OTA_LIST_BLACKLIST, V3);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_BLACKLISTED);
    /* every console task, diagnostic type included */
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_BLACKLISTED);
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V2), OTA_REJ_BLACKLISTED);
    /* before usage and status */
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_BLACKLISTED);
    /* the forced whitelist does not lift it */
    list(f, OTA_LIST_FORCED_WHITELIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_BLACKLISTED);
    /* the diagnostic tool does */
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_NONE);
}

static void test_usage_mismatch(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, "in_stock", "fleet", "1.0.0", "CW1");
    put_vehicle(f, V2, "in_stock", "rental", "1.0.0", "CW1");
    put_vehicle(f, V3, "scrapped", "rental", "1.0.0", "CW1");
    put_vehicle(f, "LSVTR000000000004", "in_stock", NULL, "1.0.0", "CW1");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_USAGE_MISMATCH);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_USAGE_MISMATCH);
    assert_code(check(f, OTA_TASK_NORMAL, "LSVTR000000000004"), OTA_REJ_USAGE_MISMATCH);
    /* before the status */
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_USAGE_MISMATCH);
    /* spot-check and diagnostic accept any usage */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, "LSVTR000000000004"), OTA_REJ_NONE);
}

static void test_status_mismatch(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, "sold", "retail", "1.0.0", "CW1");
    put_vehicle(f, V2, "ok_offline", "retail", "1.0.0", "CW1");
    put_vehicle(f, V3, "ok_offline", "retail", "0", "CW1");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_STATUS_MISMATCH);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_STATUS_MISMATCH);
    /* before firmware 0 */
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_STATUS_MISMATCH);
    /* spot-check: ok_offline, certificate_printed, in_stock; not sold */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V1), OTA_REJ_STATUS_MISMATCH);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_NONE);
}

static void test_firmware_zero(void **state)
{
    fixture *f = *state;
    static const char *const zero[] = {"0", "00", "0.0", "0.0.0", "000.0.00", "", NULL};
    static const char *const nonzero[] = {"0.0.1",  "10", "0.1", "1.0.0",
                                          "0.0.0a", "0.", ".0",  "a0"};
    char vin[18];
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) {
        snprintf(vin, sizeof vin, "LSVTZ%012zu", i);
        put_vehicle(f, vin, "in_stock", "retail", zero[i], "CW1");
        assert_code(check(f, OTA_TASK_NORMAL, vin), OTA_REJ_FIRMWARE_ZERO);
    }
    for (size_t i = 0; i < sizeof nonzero / sizeof nonzero[0]; i++) {
        snprintf(vin, sizeof vin, "LSVTN%012zu", i);
        put_vehicle(f, vin, "in_stock", "retail", nonzero[i], "CW1");
        list(f, OTA_LIST_DOWNGRADE_WHITELIST, vin); /* "a0" > "99" bytewise */
        assert_code(check_tv(f, OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, "99", vin), OTA_REJ_NONE);
    }
    /* before busy */
    put_vehicle(f, V1, "in_stock", "retail", "0.0", "CW1");
    set_latest(f, V1, "upgrading", "normal");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_FIRMWARE_ZERO);
    /* spot-check and diagnostic console tasks check it too */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V1), OTA_REJ_FIRMWARE_ZERO);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_FIRMWARE_ZERO);
}

static void test_upgrade_in_progress(void **state)
{
    fixture *f = *state;
    static const char *const busy[] = {"upgrading", "waiting", "rolling_back"};
    static const char *const vins[] = {"LSVTB000000000000", "LSVTB000000000001",
                                       "LSVTB000000000002"};
    for (size_t i = 0; i < 3; i++) {
        put_vehicle(f, vins[i], OK_VEHICLE);
        set_latest(f, vins[i], busy[i], "normal");
        assert_code(check(f, OTA_TASK_NORMAL, vins[i]), OTA_REJ_UPGRADE_IN_PROGRESS);
        assert_code(check(f, OTA_TASK_SPOT_CHECK, vins[i]), OTA_REJ_UPGRADE_IN_PROGRESS);
        assert_code(check(f, OTA_TASK_DIAGNOSTIC, vins[i]), OTA_REJ_UPGRADE_IN_PROGRESS);
    }
    /* not busy: finished, or started by another task type, or never reported */
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, OK_VEHICLE);
    put_vehicle(f, V3, OK_VEHICLE);
    set_latest(f, V1, "succeeded", "normal");
    set_latest(f, V2, "upgrading", "forced");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_NONE);
    /* no latest callback: nothing is busy */
    ota_rules_env env = {0};
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 1, (const char *[]){V1});
    assert_code(ota_task_check_vin(f->c, &env, &t, vins[0], NULL), OTA_REJ_NONE);
    ota_task_rec_free(&t);
    /* before same version */
    put_vehicle(f, "LSVTR000000000009", "in_stock", "retail", TARGET, "CW1");
    set_latest(f, "LSVTR000000000009", "waiting", "normal");
    assert_code(check(f, OTA_TASK_NORMAL, "LSVTR000000000009"), OTA_REJ_UPGRADE_IN_PROGRESS);
}

static void test_same_version(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, "in_stock", "retail", TARGET, "CW1");
    put_vehicle(f, V2, "in_stock", "retail", "2.00.0", "CW1"); /* equal by ota_version_cmp */
    put_vehicle(f, V3, "in_stock", "retail", TARGET, NULL);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_SAME_VERSION);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_SAME_VERSION);
    /* before the config word */
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_SAME_VERSION);
    /* spot-check and diagnostic tasks, and the diagnostic tool, allow it */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_NONE);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    /* the same-version whitelist allows it */
    list(f, OTA_LIST_SAME_VERSION_WHITELIST, V1);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    /* the forced whitelist does not */
    list(f, OTA_LIST_FORCED_WHITELIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_SAME_VERSION);
    /* a different version passes */
    assert_code(check_tv(f, OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, "2.0.1", V2), OTA_REJ_NONE);
}

static void test_downgrade(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, "in_stock", "retail", "2.0.1", "CW1");
    put_vehicle(f, V2, "in_stock", "retail", "10.0.0", "CW1"); /* 10 > 2: numeric parts */
    put_vehicle(f, V3, "in_stock", "retail", "2.9", NULL);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_DOWNGRADE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_DOWNGRADE);
    /* 2.10 > 2.9: no downgrade, so the config word rule is reached */
    assert_code(check_tv(f, OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, "2.10", V3),
                OTA_REJ_CONFIG_WORD_MISSING);
    /* before the config word */
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_DOWNGRADE);
    /* every task type and source: no exemption */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V1), OTA_REJ_DOWNGRADE);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_DOWNGRADE);
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_DOWNGRADE);
    list(f, OTA_LIST_FORCED_WHITELIST, V1);
    assert_code(check(f, OTA_TASK_FORCED, V1), OTA_REJ_DOWNGRADE);
    list(f, OTA_LIST_SAME_VERSION_WHITELIST, V1);
    assert_code(check(f, OTA_TASK_FORCED, V1), OTA_REJ_DOWNGRADE);
    /* the downgrade whitelist allows it */
    list(f, OTA_LIST_DOWNGRADE_WHITELIST, V1);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    /* an upgrade passes */
    assert_code(check_tv(f, OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, "10.0.1", V2), OTA_REJ_NONE);
}

static void test_config_word_missing(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, "in_stock", "retail", "1.0.0", NULL);
    put_vehicle(f, V3, "in_stock", "retail", "1.0.0", "");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_CONFIG_WORD_MISSING);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_CONFIG_WORD_MISSING);
    /* every task type and source */
    assert_code(check(f, OTA_TASK_SPOT_CHECK, V2), OTA_REJ_CONFIG_WORD_MISSING);
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V2), OTA_REJ_CONFIG_WORD_MISSING);
    list(f, OTA_LIST_FORCED_WHITELIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_CONFIG_WORD_MISSING);
    /* a model without config words, or not declared at all, needs none */
    put_model(f->c, "M1", "S1", false);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    ota_catalog *other = ota_catalog_new();
    assert_non_null(other);
    ota_catalog *mine = f->c;
    f->c = other;
    put_vehicle(f, V2, "in_stock", "retail", "1.0.0", NULL);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    f->c = mine;
    ota_catalog_free(other);
}

/* ---- the scopes ---- */

static void test_diagnostic_tool_skips(void **state)
{
    fixture *f = *state;
    /* blacklisted, usage and status wrong, firmware 0, busy: all at once */
    put_vehicle(f, V1, "scrapped", "rental", "0", "CW1");
    list(f, OTA_LIST_BLACKLIST, V1);
    set_latest(f, V1, "upgrading", "normal");
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_BLACKLISTED);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_NONE);
    /* each one alone */
    put_vehicle(f, V2, "in_stock", "rental", "1.0.0", "CW1");
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_USAGE_MISMATCH);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    put_vehicle(f, V2, "scrapped", "retail", "1.0.0", "CW1");
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_STATUS_MISMATCH);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    put_vehicle(f, V2, "in_stock", "retail", NULL, "CW1");
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_FIRMWARE_ZERO);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    put_vehicle(f, V3, OK_VEHICLE);
    set_latest(f, V3, "rolling_back", "normal");
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_UPGRADE_IN_PROGRESS);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V3), OTA_REJ_NONE);
    /* but not the vehicle, model, factory status, downgrade and config word rules */
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, "LSVTR000000000099"), OTA_REJ_UNKNOWN_VEHICLE);
    put_vehicle(f, V2, "in_stock", "retail", "3.0.0", "CW1");
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_DOWNGRADE);
    put_vehicle(f, V2, "in_stock", "retail", "1.0.0", NULL);
    assert_code(check_diag_tool(f, OTA_TASK_NORMAL, V2), OTA_REJ_CONFIG_WORD_MISSING);
}

static void test_forced_whitelist_skips(void **state)
{
    fixture *f = *state;
    /* usage and status wrong, firmware 0, busy: all at once */
    put_vehicle(f, V1, "scrapped", "rental", "0.0.0", "CW1");
    set_latest(f, V1, "waiting", "normal");
    assert_code(check(f, OTA_TASK_FORCED, V1), OTA_REJ_USAGE_MISMATCH);
    list(f, OTA_LIST_FORCED_WHITELIST, V1);
    for (int type = OTA_TASK_NORMAL; type <= OTA_TASK_DIAGNOSTIC; type++) {
        if (type != OTA_TASK_FACTORY)
            assert_code(check(f, (ota_task_type)type, V1), OTA_REJ_NONE);
    }
    /* each one alone */
    static const char *const st[] = {"scrapped", "in_stock", "in_stock", "in_stock"};
    static const char *const us[] = {"retail", "rental", "retail", "retail"};
    static const char *const fw[] = {"1.0.0", "1.0.0", NULL, "1.0.0"};
    static const ota_reject_code code[] = {OTA_REJ_STATUS_MISMATCH, OTA_REJ_USAGE_MISMATCH,
                                           OTA_REJ_FIRMWARE_ZERO, OTA_REJ_UPGRADE_IN_PROGRESS};
    char vin[18];
    for (size_t i = 0; i < 4; i++) {
        snprintf(vin, sizeof vin, "LSVTF%012zu", i);
        put_vehicle(f, vin, st[i], us[i], fw[i], "CW1");
        if (i == 3)
            set_latest(f, "LSVTF000000000003", "upgrading", "normal");
        assert_code(check(f, OTA_TASK_NORMAL, vin), code[i]);
        list(f, OTA_LIST_FORCED_WHITELIST, vin);
        assert_code(check(f, OTA_TASK_NORMAL, vin), OTA_REJ_NONE);
    }
    /* not same version, downgrade (with fw known), blacklist, config word */
    put_vehicle(f, V2, "scrapped", "rental", TARGET, "CW1");
    list(f, OTA_LIST_FORCED_WHITELIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_SAME_VERSION);
    put_vehicle(f, V2, "scrapped", "rental", "2.1", "CW1");
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_DOWNGRADE);
    put_vehicle(f, V2, "scrapped", "rental", "1.0", NULL);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_CONFIG_WORD_MISSING);
    list(f, OTA_LIST_BLACKLIST, V2);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_BLACKLISTED);
}

/* ---- type rules ---- */

static void test_default_type_rules_per_type(void **state)
{
    fixture *f = *state;
    static const char *const statuses[] = {"assembly_offline", "ok_offline", "certificate_printed",
                                           "in_stock",         "sold",       "scrapped"};
    /* accepted?   [type][status]: normal, forced, factory, spot_check, diagnostic */
    static const ota_reject_code want[OTA_TASK_TYPE_COUNT][6] = {
        {OTA_REJ_STATUS_MISMATCH, OTA_REJ_STATUS_MISMATCH, OTA_REJ_STATUS_MISMATCH, 0, 0,
         OTA_REJ_STATUS_MISMATCH},
        {OTA_REJ_STATUS_MISMATCH, OTA_REJ_STATUS_MISMATCH, OTA_REJ_STATUS_MISMATCH, 0, 0,
         OTA_REJ_STATUS_MISMATCH},
        {0, 0, 0, OTA_REJ_FACTORY_STATUS, OTA_REJ_FACTORY_STATUS, OTA_REJ_FACTORY_STATUS},
        {OTA_REJ_STATUS_MISMATCH, 0, 0, 0, OTA_REJ_STATUS_MISMATCH, OTA_REJ_STATUS_MISMATCH},
        {0, 0, 0, 0, 0, 0},
    };
    char vin[18];
    for (size_t s = 0; s < 6; s++) {
        snprintf(vin, sizeof vin, "LSVTS%012zu", s);
        put_vehicle(f, vin, statuses[s], "retail", "1.0.0", "CW1");
        for (int t = 0; t < OTA_TASK_TYPE_COUNT; t++)
            assert_code(check(f, (ota_task_type)t, vin), want[t][s]);
    }
    /* usages: normal and forced retail, fleet, test; the others any */
    static const char *const usages[] = {"retail", "fleet", "test", "rental"};
    for (size_t u = 0; u < 4; u++) {
        snprintf(vin, sizeof vin, "LSVTU%012zu", u);
        put_vehicle(f, vin, "ok_offline", usages[u], "1.0.0", "CW1");
        ota_reject_code formal = u < 3 ? OTA_REJ_STATUS_MISMATCH : OTA_REJ_USAGE_MISMATCH;
        assert_code(check(f, OTA_TASK_NORMAL, vin), formal);
        assert_code(check(f, OTA_TASK_FORCED, vin), formal);
        assert_code(check(f, OTA_TASK_FACTORY, vin), OTA_REJ_NONE);
        assert_code(check(f, OTA_TASK_SPOT_CHECK, vin), OTA_REJ_NONE);
        assert_code(check(f, OTA_TASK_DIAGNOSTIC, vin), OTA_REJ_NONE);
    }
    /* the same with the defaults passed explicitly */
    ota_task_type_rules rules[OTA_TASK_TYPE_COUNT];
    ota_task_default_type_rules(rules);
    f->env.type_rules = rules;
    assert_code(check(f, OTA_TASK_NORMAL, "LSVTU000000000003"), OTA_REJ_USAGE_MISMATCH);
    assert_code(check(f, OTA_TASK_SPOT_CHECK, "LSVTS000000000004"), OTA_REJ_STATUS_MISMATCH);
    assert_code(check(f, OTA_TASK_SPOT_CHECK, "LSVTS000000000003"), OTA_REJ_NONE);
    f->env.type_rules = NULL;
}

static void test_custom_type_rules(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);                             /* in_stock retail */
    put_vehicle(f, V2, "ok_offline", "test", "1.0.0", "CW1");   /* custom normal */
    put_vehicle(f, V3, "ok_offline", "rental", "1.0.0", "CW1"); /* usage only in custom */
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_STATUS_MISMATCH);
    static const char *const st[] = {"ok_offline"};
    static const char *const us[] = {"test"};
    custom_rules(f, OTA_TASK_NORMAL, 1, st, 1, us);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_USAGE_MISMATCH);
    assert_code(check(f, OTA_TASK_NORMAL, V2), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_USAGE_MISMATCH);
    /* the other types keep their defaults */
    assert_code(check(f, OTA_TASK_FORCED, V1), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_FORCED, V2), OTA_REJ_STATUS_MISMATCH);
    /* NULL usages: any usage */
    custom_rules(f, OTA_TASK_NORMAL, 1, st, 0, NULL);
    assert_code(check(f, OTA_TASK_NORMAL, V3), OTA_REJ_NONE);
    assert_code(check(f, OTA_TASK_NORMAL, V1), OTA_REJ_STATUS_MISMATCH);
    /* an empty (non-NULL) list accepts nothing */
    custom_rules(f, OTA_TASK_DIAGNOSTIC, 0, (const char *const[]){"x"}, 0, NULL);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_STATUS_MISMATCH);
    /* the diagnostic tool and the forced whitelist still skip custom rules */
    assert_code(check_diag_tool(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_NONE);
    list(f, OTA_LIST_FORCED_WHITELIST, V1);
    assert_code(check(f, OTA_TASK_DIAGNOSTIC, V1), OTA_REJ_NONE);
}

/* ---- a whole task ---- */

static void test_whole_task(void **state)
{
    fixture *f = *state;
    put_vehicle(f, V1, OK_VEHICLE);
    put_vehicle(f, V2, "in_stock", "retail", "3.0", "CW1");
    list(f, OTA_LIST_BLACKLIST, V3);
    put_vehicle(f, V3, OK_VEHICLE);
    const char *vins[] = {V1, V2, V3, V1, "LSVTR000000000077"};
    const ota_reject_code want[] = {OTA_REJ_NONE, OTA_REJ_DOWNGRADE, OTA_REJ_BLACKLISTED,
                                    OTA_REJ_DUPLICATE_VIN, OTA_REJ_UNKNOWN_VEHICLE};
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 5, vins);
    const ota_package_rec *p = NULL;
    assert_err(ota_task_check(f->c, &t, &p), OTA_TASK_OK);
    assert_non_null(p);
    assert_int_equal(p->id, 1);
    ota_vin_set *seen = ota_vin_set_new(t.n_vins);
    assert_non_null(seen);
    for (size_t i = 0; i < t.n_vins; i++)
        assert_code(ota_task_check_vin(f->c, &f->env, &t, t.vins[i], seen), want[i]);
    ota_vin_set_free(seen);
    ota_task_rec_free(&t);
}

/* ---- task-level rules ---- */

static ota_task_error check_task(fixture *f, ota_task_type type, const char *model,
                                 const char *version, size_t n, const ota_package_rec **p)
{
    const char *vins[] = {V1};
    ota_task_rec t = task(type, OTA_SOURCE_CONSOLE, version, n, vins);
    free(t.model);
    t.model = test_strdup(model);
    ota_task_error e = ota_task_check(f->c, &t, p);
    ota_task_rec_free(&t);
    return e;
}

static void test_task_ok(void **state)
{
    fixture *f = *state;
    const ota_package_rec *p = NULL;
    for (int type = 0; type < OTA_TASK_TYPE_COUNT; type++) {
        p = NULL;
        assert_err(check_task(f, (ota_task_type)type, "M1", TARGET, 1, &p), OTA_TASK_OK);
        assert_non_null(p);
        assert_int_equal(p->id, 1);
        assert_string_equal(p->version, TARGET);
    }
    /* the package argument is optional */
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", TARGET, 1, NULL), OTA_TASK_OK);
}

static void test_task_empty_vins(void **state)
{
    fixture *f = *state;
    const ota_package_rec *p = (const ota_package_rec *)&p;
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", TARGET, 0, &p), OTA_TASK_E_EMPTY_VINS);
    assert_null(p);
    /* before the package */
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", "9.9.9", 0, NULL), OTA_TASK_E_EMPTY_VINS);
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", "9.9.9", 1, NULL), OTA_TASK_E_NO_PACKAGE);
}

static void test_task_no_package(void **state)
{
    fixture *f = *state;
    const ota_package_rec *p = (const ota_package_rec *)&p;
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", "9.9.9", 1, &p), OTA_TASK_E_NO_PACKAGE);
    assert_null(p);
    /* another model/series's package does not count */
    assert_err(check_task(f, OTA_TASK_NORMAL, "M2", TARGET, 1, NULL), OTA_TASK_E_NO_PACKAGE);
    /* a delta to the version is not the full package */
    put_package(f->c, 2, "M1", "S1", "3.0.0", TARGET, OTA_PKG_RELEASED, "delta");
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M1", "3.0.0", 1, NULL), OTA_TASK_E_NO_PACKAGE);
    put_package(f->c, 3, "M1", "S1", "3.0.0", NULL, OTA_PKG_RELEASED, "full");
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M1", "3.0.0", 1, &p), OTA_TASK_OK);
    assert_int_equal(p->id, 3);
}

static void test_task_not_released(void **state)
{
    fixture *f = *state;
    put_package(f->c, 2, "M1", "S1", "3.0.0", NULL, OTA_PKG_DRAFT, "baseline");
    put_package(f->c, 3, "M1", "S1", "4.0.0", NULL, OTA_PKG_VERIFIED, "baseline");
    put_package(f->c, 4, "M1", "S1", "5.0.0", NULL, OTA_PKG_DRAFT, NULL);
    const ota_package_rec *p = NULL;
    static const ota_task_type formal[] = {OTA_TASK_NORMAL, OTA_TASK_FORCED, OTA_TASK_FACTORY};
    for (size_t i = 0; i < 3; i++) {
        assert_err(check_task(f, formal[i], "M1", "3.0.0", 1, &p), OTA_TASK_E_PACKAGE_NOT_RELEASED);
        assert_int_equal(p->id, 2); /* found, not released */
        assert_err(check_task(f, formal[i], "M1", "4.0.0", 1, NULL),
                   OTA_TASK_E_PACKAGE_NOT_RELEASED);
        /* before the baseline */
        assert_err(check_task(f, formal[i], "M1", "5.0.0", 1, NULL),
                   OTA_TASK_E_PACKAGE_NOT_RELEASED);
    }
    /* spot-check and diagnostic tasks take unreleased packages */
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M1", "3.0.0", 1, NULL), OTA_TASK_OK);
    assert_err(check_task(f, OTA_TASK_DIAGNOSTIC, "M1", "4.0.0", 1, NULL), OTA_TASK_OK);
    assert_err(ota_catalog_set_package_status(f->c, 2, OTA_PKG_RELEASED), 0);
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", "3.0.0", 1, NULL), OTA_TASK_OK);
}

static void test_task_no_baseline(void **state)
{
    fixture *f = *state;
    put_package(f->c, 2, "M1", "S1", "3.0.0", NULL, OTA_PKG_RELEASED, NULL);
    put_package(f->c, 3, "M1", "S1", "4.0.0", NULL, OTA_PKG_RELEASED, "");
    for (int type = 0; type < OTA_TASK_TYPE_COUNT; type++) {
        assert_err(check_task(f, (ota_task_type)type, "M1", "3.0.0", 1, NULL),
                   OTA_TASK_E_NO_BASELINE);
        assert_err(check_task(f, (ota_task_type)type, "M1", "4.0.0", 1, NULL),
                   OTA_TASK_E_NO_BASELINE);
    }
    /* before the strategy: a model/series without a default strategy */
    put_package(f->c, 4, "M2", "S1", TARGET, NULL, OTA_PKG_RELEASED, NULL);
    assert_err(check_task(f, OTA_TASK_NORMAL, "M2", TARGET, 1, NULL), OTA_TASK_E_NO_BASELINE);
}

static void test_task_no_default_strategy(void **state)
{
    fixture *f = *state;
    put_model(f->c, "M2", "S1", false);
    put_package(f->c, 2, "M2", "S1", TARGET, NULL, OTA_PKG_RELEASED, "baseline");
    assert_err(check_task(f, OTA_TASK_NORMAL, "M2", TARGET, 1, NULL),
               OTA_TASK_E_NO_DEFAULT_STRATEGY);
    /* a strategy bound to one of its VINs is not a default; an unordered one is not
     * looked at before */
    put_strategy(f->c, "ST_VIN", -1);
    put_vehicle_ms(f, V2, "M2", "S1", OK_VEHICLE);
    assert_int_equal(ota_catalog_bind_vin(f->c, V2, "ST_VIN"), 0);
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M2", TARGET, 1, NULL),
               OTA_TASK_E_NO_DEFAULT_STRATEGY);
    put_strategy(f->c, "ST2", 3);
    assert_int_equal(ota_catalog_bind_default(f->c, "M2", "S1", "ST2"), 0);
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M2", TARGET, 1, NULL),
               OTA_TASK_E_STRATEGY_ECU_ORDER);
    put_strategy(f->c, "ST_VIN", 4);
    assert_err(check_task(f, OTA_TASK_SPOT_CHECK, "M2", TARGET, 1, NULL), OTA_TASK_OK);
}

static void test_task_strategy_ecu_order(void **state)
{
    fixture *f = *state;
    /* the default strategy with an unordered ECU */
    put_strategy(f->c, "ST1", -1);
    for (int type = 0; type < OTA_TASK_TYPE_COUNT; type++)
        assert_err(check_task(f, (ota_task_type)type, "M1", TARGET, 1, NULL),
                   OTA_TASK_E_STRATEGY_ECU_ORDER);
    put_strategy(f->c, "ST1", 0); /* order 0 is an order */
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", TARGET, 1, NULL), OTA_TASK_OK);
    /* a strategy bound to one of its vehicles */
    put_strategy(f->c, "ST_VIN", -1);
    put_vehicle(f, V1, OK_VEHICLE);
    assert_int_equal(ota_catalog_bind_vin(f->c, V1, "ST_VIN"), 0);
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", TARGET, 1, NULL),
               OTA_TASK_E_STRATEGY_ECU_ORDER);
    /* an unordered strategy that no vehicle of the model/series uses is not looked at */
    assert_int_equal(ota_catalog_bind_vin(f->c, V1, "ST1"), 0);
    assert_err(check_task(f, OTA_TASK_NORMAL, "M1", TARGET, 1, NULL), OTA_TASK_OK);
}

/* ---- the VIN set ---- */

static void test_vin_set(void **state)
{
    fixture *f = *state;
    enum { N = 5000 };
    put_vehicle(f, V1, OK_VEHICLE);
    ota_task_rec t = task(OTA_TASK_NORMAL, OTA_SOURCE_CONSOLE, TARGET, 1, (const char *[]){V1});
    ota_vin_set *seen = ota_vin_set_new(0);
    assert_non_null(seen);
    char vin[40];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(vin, sizeof vin, "LSVTV%012d", i);
            assert_code(ota_task_check_vin(f->c, &f->env, &t, vin, seen),
                        round ? OTA_REJ_DUPLICATE_VIN : OTA_REJ_UNKNOWN_VEHICLE);
        }
    }
    /* longer strings than a VIN, and the empty one, are remembered too */
    static const char *const odd[] = {"LSVTV0000000000001234567890", "", "x"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++)
            assert_code(ota_task_check_vin(f->c, &f->env, &t, odd[i], seen),
                        round ? OTA_REJ_DUPLICATE_VIN : OTA_REJ_UNKNOWN_VEHICLE);
    }
    /* a prefix of a long one is another string */
    assert_code(ota_task_check_vin(f->c, &f->env, &t, "LSVTV000000000000123", seen),
                OTA_REJ_UNKNOWN_VEHICLE);
    ota_vin_set_free(seen);
    ota_vin_set_free(NULL);
    ota_task_rec_free(&t);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_names),
        T(test_default_type_rules_table),
        T(test_accepted),
        T(test_duplicate_vin),
        T(test_unknown_vehicle),
        T(test_model_mismatch),
        T(test_factory_status),
        T(test_blacklisted),
        T(test_usage_mismatch),
        T(test_status_mismatch),
        T(test_firmware_zero),
        T(test_upgrade_in_progress),
        T(test_same_version),
        T(test_downgrade),
        T(test_config_word_missing),
        T(test_diagnostic_tool_skips),
        T(test_forced_whitelist_skips),
        T(test_default_type_rules_per_type),
        T(test_custom_type_rules),
        T(test_whole_task),
        T(test_task_ok),
        T(test_task_empty_vins),
        T(test_task_no_package),
        T(test_task_not_released),
        T(test_task_no_baseline),
        T(test_task_no_default_strategy),
        T(test_task_strategy_ecu_order),
        T(test_vin_set),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
