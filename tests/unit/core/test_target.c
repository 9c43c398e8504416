/*
 * test_target.c — cmocka tests of target queries (codec/target_json.c, group_json.c,
 * plugin/core/target.c) and catalog groups (plugin/core/catalog_groups.c).
 *
 * The codec: every field parses and emits back the same, and each kind of mistake is an
 * error naming its field. Matching: each condition on its own on a small hand-made fleet,
 * then the property test: over a random fleet of 4,000 vehicles (lists, a static and a
 * dynamic group), 400 random queries each match exactly the VINs that a brute-force
 * filter written here from the query's JSON meaning finds, and the rules preview counts
 * exactly what ota_task_check_vin says of each matched VIN. Groups: replace, delete,
 * "in use" and cycles through a definition not yet stored.
 */
#include "catalog.h"
#include "groups.h"
#include "ota_catalog_json.h"
#include "ota_target.h"
#include "target.h"
#include "task_rules.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- helpers ---- */

static void parse_ok(const char *json, ota_target *t)
{
    char err[256];
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    int rc = ota_json_target(j, "target", t, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: %s", json, err);
    cJSON_Delete(j);
}

static void parse_fails(const char *json, const char *expect)
{
    char err[256] = "";
    ota_target t;
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    assert_int_equal(ota_json_target(j, "target", &t, err, sizeof err), -1);
    if (strstr(err, expect) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", json, err, expect);
    cJSON_Delete(j);
}

static void put_vehicle(ota_catalog *c, const char *vin, const char *model, const char *series,
                        const char *status, const char *usage, const char *fw, const char *cw)
{
    ota_vehicle_rec r = {0};
    r.vin = test_strdup(vin);
    r.model = test_strdup(model);
    r.series = test_strdup(series);
    r.status = test_strdup(status);
    r.usage = test_strdup(usage);
    r.fw = test_strdup(fw);
    r.config_word = test_strdup(cw);
    r.passenger = true;
    assert_int_equal(ota_catalog_put_vehicle(c, &r), 0);
    ota_vehicle_rec_free(&r);
}

static size_t count_of(ota_catalog *c, const char *json)
{
    char err[256];
    ota_target t;
    ota_target_match *m = NULL;
    parse_ok(json, &t);
    if (ota_target_compile(c, &t, NULL, NULL, "target", &m, err, sizeof err) != 0)
        fail_msg("%s: %s", json, err);
    size_t n = ota_target_count(c, m);
    ota_target_match_free(m);
    ota_target_free(&t);
    return n;
}

static void put_static_group(ota_catalog *c, const char *name, const char *const *vins, size_t n)
{
    ota_group_rec g = {0};
    g.name = test_strdup(name);
    g.vins = calloc(n ? n : 1, sizeof *g.vins);
    assert_non_null(g.vins);
    for (size_t i = 0; i < n; i++)
        g.vins[i] = test_strdup(vins[i]);
    g.n_vins = n;
    assert_int_equal(ota_catalog_put_group(c, &g), 0);
    ota_group_rec_free(&g);
}

static void put_dynamic_group(ota_catalog *c, const char *name, const char *query)
{
    ota_group_rec g = {0};
    g.name = test_strdup(name);
    g.dynamic = true;
    parse_ok(query, &g.query);
    assert_int_equal(ota_catalog_put_group(c, &g), 0);
    ota_group_rec_free(&g);
}

/* ---- the codec ---- */

static void test_codec_round_trip(void **state)
{
    (void)state;
    const char *full =
        "{\"model\":\"M1\",\"series\":\"S1\",\"fw\":\"1.0\",\"fw_below\":\"2.0\","
        "\"vin_prefix\":\"LSV\",\"status\":[\"in_stock\",\"sold\"],\"usage\":[\"retail\"],"
        "\"config_bits_set\":[0,3],\"config_bits_clear\":[255],\"lists\":[\"blacklist\"],"
        "\"not_lists\":[\"forced_whitelist\"],\"groups\":[\"g1\",\"g2\"]}";
    ota_target t, copy;
    parse_ok(full, &t);
    assert_string_equal(t.fw_below, "2.0");
    assert_int_equal(t.n_bits_set, 2);
    assert_int_equal(t.bits_clear[0], 255);
    assert_int_equal(t.lists[0], OTA_LIST_BLACKLIST);
    assert_int_equal(ota_target_copy(&t, &copy), 0);
    cJSON *a = ota_json_from_target(&t), *b = ota_json_from_target(&copy), *in = cJSON_Parse(full);
    assert_true(cJSON_Compare(a, in, true));
    assert_true(cJSON_Compare(a, b, true));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(in);
    ota_target_free(&t);
    ota_target_free(&copy);
    parse_ok("{}", &t); /* every vehicle */
    ota_target_free(&t);
}

static void test_codec_errors(void **state)
{
    (void)state;
    parse_fails("[]", "target: expected an object");
    parse_fails("{\"colour\":\"red\"}", "target.colour: unknown field");
    parse_fails("{\"model\":5}", "target.model:");
    parse_fails("{\"model\":\"\"}", "target.model:");
    parse_fails("{\"status\":[]}", "target.status: expected 1..64 items");
    parse_fails("{\"status\":[\"sold\",\"sold\"]}", "target.status[1]: duplicate");
    parse_fails("{\"usage\":\"retail\"}", "target.usage: expected an array");
    parse_fails("{\"config_bits_set\":[256]}", "target.config_bits_set[0]: expected a bit");
    parse_fails("{\"config_bits_set\":[1.5]}", "target.config_bits_set[0]: expected a bit");
    parse_fails("{\"config_bits_clear\":[2,2]}", "target.config_bits_clear[1]: duplicate bit 2");
    parse_fails("{\"config_bits_set\":[4],\"config_bits_clear\":[4]}",
                "target.config_bits_clear: bit 4 is also in config_bits_set");
    parse_fails("{\"lists\":[\"greylist\"]}", "target.lists[0]: expected blacklist|");
    parse_fails("{\"lists\":[\"blacklist\"],\"not_lists\":[\"blacklist\"]}",
                "target.not_lists: \"blacklist\" is also in lists");
    parse_fails("{\"vin_prefix\":\"LSVI\"}", "target.vin_prefix: \"LSVI\" is not a VIN prefix");
    parse_fails("{\"vin_prefix\":\"LSVAAAAAAAAAAAAAAA\"}", "target.vin_prefix:");
    parse_fails("{\"groups\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
                "\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}",
                "target.groups: expected 1..16 items");
}

static void group_fails(const char *json, bool stored, const char *expect)
{
    char err[256] = "";
    ota_group_rec g;
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    assert_int_equal(ota_json_group(j, "group", stored, &g, err, sizeof err), -1);
    if (strstr(err, expect) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", json, err, expect);
    cJSON_Delete(j);
}

static void test_group_codec(void **state)
{
    (void)state;
    char err[256];
    ota_group_rec g;
    cJSON *j = cJSON_Parse("{\"name\":\"dyn\",\"query\":{\"status\":[\"sold\"]}}");
    assert_int_equal(ota_json_group(j, "group", false, &g, err, sizeof err), 0);
    cJSON_Delete(j);
    assert_true(g.dynamic);
    cJSON *stored = ota_json_from_group(&g);
    ota_group_rec_free(&g);
    assert_int_equal(ota_json_group(stored, NULL, true, &g, err, sizeof err), 0);
    assert_true(g.dynamic);
    assert_string_equal(g.query.statuses[0], "sold");
    ota_group_rec_free(&g);
    cJSON_Delete(stored);

    j = cJSON_Parse("{\"name\":\"st\",\"vins\":[\"LSVTR000000000001\"]}");
    assert_int_equal(ota_json_group(j, "group", false, &g, err, sizeof err), 0);
    assert_false(g.dynamic);
    assert_int_equal(g.n_vins, 1);
    ota_group_rec_free(&g);
    cJSON_Delete(j);

    group_fails("{\"name\":\"x\"}", false, "group.vins: missing (or query");
    group_fails("{\"name\":\"x\",\"vins\":[],\"query\":{}}", false, "not both");
    group_fails("{\"name\":\"x\",\"vins\":[\"BAD\"]}", false, "group.vins[0]:");
    group_fails("{\"name\":\"x\",\"query\":{\"model\":1}}", false, "group.query.model:");
    group_fails("{\"name\":\"x\",\"kind\":\"static\",\"query\":{}}", true, "no query");
    group_fails("{\"name\":\"x\",\"kind\":\"dynamic\"}", true, "group.query: missing");
}

/* ---- matching, condition by condition ---- */

#define VA "LSVAA000000000001"
#define VB "LSVAA000000000002"
#define VC "LSVBB000000000003"
#define VD "LFVCC000000000004"

static ota_catalog *small_fleet(void)
{
    ota_catalog *c = ota_catalog_new();
    assert_non_null(c);
    put_vehicle(c, VA, "M1", "S1", "in_stock", "retail", "1.9", "0009");
    put_vehicle(c, VB, "M1", "S1", "sold", "fleet", "2.10", "0001");
    put_vehicle(c, VC, "M1", "S2", "sold", "retail", NULL, NULL);
    put_vehicle(c, VD, "M2", "S1", "in_stock", "test", "2.9", "F");
    return c;
}

static void test_each_condition(void **state)
{
    (void)state;
    ota_catalog *c = small_fleet();
    assert_int_equal(count_of(c, "{}"), 4);
    assert_int_equal(count_of(c, "{\"model\":\"M1\"}"), 3);
    assert_int_equal(count_of(c, "{\"model\":\"M1\",\"series\":\"S1\"}"), 2);
    assert_int_equal(count_of(c, "{\"model\":\"NOPE\"}"), 0);
    assert_int_equal(count_of(c, "{\"fw\":\"2.10\"}"), 1);
    /* numeric parts: 1.9 and 2.9 are below 2.10; a vehicle without firmware never is */
    assert_int_equal(count_of(c, "{\"fw_below\":\"2.10\"}"), 2);
    assert_int_equal(count_of(c, "{\"status\":[\"sold\",\"nobody\"]}"), 2);
    assert_int_equal(count_of(c, "{\"status\":[\"nobody\"]}"), 0);
    assert_int_equal(count_of(c, "{\"usage\":[\"retail\",\"test\"]}"), 3);
    assert_int_equal(count_of(c, "{\"config_bits_set\":[0]}"), 3);
    assert_int_equal(count_of(c, "{\"config_bits_set\":[0,3]}"), 2);
    assert_int_equal(count_of(c, "{\"config_bits_clear\":[3]}"), 2);
    assert_int_equal(count_of(c, "{\"vin_prefix\":\"LSVAA\"}"), 2);
    assert_int_equal(count_of(c, "{\"vin_prefix\":\"" VD "\"}"), 1);
    assert_int_equal(ota_catalog_list_add(c, OTA_LIST_BLACKLIST, VB), 1);
    assert_int_equal(count_of(c, "{\"lists\":[\"blacklist\"]}"), 1);
    assert_int_equal(count_of(c, "{\"not_lists\":[\"blacklist\"],\"model\":\"M1\"}"), 2);
    const char *members[] = {VA, VC, "LSVZZ000000000099"};
    put_static_group(c, "pilot", members, 3);
    put_dynamic_group(c, "sold", "{\"status\":[\"sold\"]}");
    assert_int_equal(count_of(c, "{\"groups\":[\"pilot\"]}"), 2);
    assert_int_equal(count_of(c, "{\"groups\":[\"pilot\",\"sold\"]}"), 1);
    put_dynamic_group(c, "sold_pilot", "{\"groups\":[\"pilot\",\"sold\"]}");
    assert_int_equal(count_of(c, "{\"groups\":[\"sold_pilot\"]}"), 1);
    ota_catalog_free(c);
}

static void test_vins_sorted_and_capped(void **state)
{
    (void)state;
    ota_catalog *c = small_fleet();
    ota_target t;
    ota_target_match *m;
    char err[256], **vins;
    size_t n;
    parse_ok("{\"status\":[\"sold\",\"in_stock\"]}", &t);
    assert_int_equal(ota_target_compile(c, &t, NULL, NULL, "", &m, err, sizeof err), 0);
    assert_int_equal(ota_target_vins(c, m, 10, &vins, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(vins[0], VD);
    assert_string_equal(vins[1], VA);
    assert_string_equal(vins[3], VC);
    ota_json_strings_free(vins, n);
    assert_int_equal(ota_target_vins(c, m, 3, &vins, &n), 1);
    assert_null(vins);
    assert_int_equal(n, 4);
    ota_target_match_free(m);
    ota_target_free(&t);
    ota_catalog_free(c);
}

/* createTask's resolution at scale: vehicle pointers, sorted, capped (both passes: a catalog
 * within 4 x max is read once, a larger one counted first). */
static void test_vehicles_sorted_and_capped(void **state)
{
    (void)state;
    ota_catalog *c = small_fleet();
    ota_target t;
    ota_target_match *m;
    char err[256];
    const ota_vehicle **v;
    size_t n;
    parse_ok("{\"status\":[\"sold\",\"in_stock\"]}", &t);
    assert_int_equal(ota_target_compile(c, &t, NULL, NULL, "", &m, err, sizeof err), 0);
    for (size_t max = 4; max <= 100; max += 96) {
        assert_int_equal(ota_target_vehicles(c, m, max, &v, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(v[0]->vin, VD);
        assert_string_equal(v[1]->vin, VA);
        assert_string_equal(v[3]->vin, VC);
        free(v);
    }
    for (size_t max = 0; max <= 3; max += 3) { /* 0: counted first; 3: one pass (4 <= 12) */
        assert_int_equal(ota_target_vehicles(c, m, max, &v, &n), 1);
        assert_null(v);
        assert_int_equal(n, 4);
    }
    ota_target_match_free(m);
    ota_target_free(&t);
    ota_catalog_free(c);
}

static void compile_fails(ota_catalog *c, const char *json, const char *self, const char *self_json,
                          const char *expect)
{
    char err[256] = "";
    ota_target t, s;
    ota_target_match *m = NULL;
    parse_ok(json, &t);
    if (self_json)
        parse_ok(self_json, &s);
    assert_int_equal(
        ota_target_compile(c, &t, self, self_json ? &s : NULL, "target", &m, err, sizeof err), -1);
    assert_null(m);
    if (strstr(err, expect) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", json, err, expect);
    ota_target_free(&t);
    if (self_json)
        ota_target_free(&s);
}

static void test_groups(void **state)
{
    (void)state;
    ota_catalog *c = small_fleet();
    compile_fails(c, "{\"groups\":[\"ghost\"]}", NULL, NULL,
                  "target.groups[0]: unknown group \"ghost\"");
    put_dynamic_group(c, "a", "{\"model\":\"M1\"}");
    put_dynamic_group(c, "b", "{\"groups\":[\"a\"]}");
    /* redefining a as {groups:[b]} closes a cycle a -> b -> a: seen before storing */
    compile_fails(c, "{\"groups\":[\"b\"]}", "a", "{\"groups\":[\"b\"]}", "a cycle?");
    compile_fails(c, "{\"groups\":[\"a\"]}", "a", "{\"groups\":[\"a\"]}", "a cycle?");
    assert_string_equal(ota_catalog_group_user(c, "a"), "b");
    assert_null(ota_catalog_group_user(c, "b"));
    /* replacing a group in place: b now sees the new a */
    put_dynamic_group(c, "a", "{\"model\":\"M2\"}");
    assert_int_equal(count_of(c, "{\"groups\":[\"b\"]}"), 1);
    const char *v1[] = {VA};
    put_static_group(c, "a", v1, 1); /* a dynamic group becomes static */
    assert_int_equal(count_of(c, "{\"groups\":[\"b\"]}"), 1);
    assert_int_equal(ota_group_size(ota_catalog_group(c, "a")), 1);
    assert_null(ota_group_query(ota_catalog_group(c, "a")));
    assert_int_equal(ota_catalog_group_count(c), 2);
    assert_int_equal(ota_catalog_delete_group(c, "b"), 1);
    assert_int_equal(ota_catalog_delete_group(c, "b"), 0);
    assert_null(ota_catalog_group(c, "b"));
    ota_catalog_free(c);
}

/* ---- the property test: query == brute force over a random fleet ---- */

#define FLEET 4000
#define QUERIES 400

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *const MODELS[] = {"M1", "M2", "M3"};
static const char *const SERIES[] = {"S1", "S2"};
static const char *const STATUSES[] = {"assembly_offline", "ok_offline", "in_stock", "sold",
                                       "scrapped"};
static const char *const USAGES[] = {"retail", "fleet", "test"};
static const char *const FWS[] = {"1.0", "1.2", "1.10", "2.0", "2.9", "2.10", "0", NULL};
static const char *const CWS[] = {"0", "1", "A", "FF", "80", "1F3", "", NULL};
static const char *const PREFIXES[] = {"LSVA", "LSVB", "LFV1"};
#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    char vin[18];
    const char *model, *series, *status, *usage, *fw, *cw;
    bool listed[OTA_LIST_COUNT];
    bool in_static;
} fleet_vehicle;

static fleet_vehicle fleet[FLEET];

/* Independent of the code under test: the hex digit for bit `bit`, from the right. */
static bool bit_set(const char *cw, uint32_t bit)
{
    size_t n = cw ? strlen(cw) : 0;
    if (bit / 4 >= n)
        return false;
    char ch = cw[n - 1 - bit / 4];
    int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : 0;
    return (v >> (bit % 4)) & 1;
}

static bool str_in_json(const char *s, const cJSON *arr)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (s != NULL && strcmp(s, e->valuestring) == 0)
            return true;
    }
    return false;
}

static bool eq_opt(const cJSON *q, const char *key, const char *v)
{
    const cJSON *e = cJSON_GetObjectItem(q, key);
    return e == NULL || (v != NULL && strcmp(v, e->valuestring) == 0);
}

static bool brute_words(const cJSON *q, const fleet_vehicle *v)
{
    const cJSON *st = cJSON_GetObjectItem(q, "status"), *us = cJSON_GetObjectItem(q, "usage");
    const cJSON *below = cJSON_GetObjectItem(q, "fw_below"),
                *pre = cJSON_GetObjectItem(q, "vin_prefix");
    return eq_opt(q, "model", v->model) && eq_opt(q, "series", v->series) &&
           eq_opt(q, "fw", v->fw) && (st == NULL || str_in_json(v->status, st)) &&
           (us == NULL || str_in_json(v->usage, us)) &&
           (below == NULL || (v->fw != NULL && ota_version_cmp(v->fw, below->valuestring) < 0)) &&
           (pre == NULL || strncmp(v->vin, pre->valuestring, strlen(pre->valuestring)) == 0);
}

static bool brute_sets(const cJSON *q, const fleet_vehicle *v)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "config_bits_set"))
    {
        if (!bit_set(v->cw, (uint32_t)e->valueint))
            return false;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "config_bits_clear"))
    {
        if (bit_set(v->cw, (uint32_t)e->valueint))
            return false;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "lists"))
    {
        if (!v->listed[ota_list_from_name(e->valuestring)])
            return false;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "not_lists"))
    {
        if (v->listed[ota_list_from_name(e->valuestring)])
            return false;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "groups"))
    {
        /* "pilot": the static group; "sold_m1": status sold and model M1 */
        bool in = strcmp(e->valuestring, "pilot") == 0
                      ? v->in_static
                      : v->status && strcmp(v->status, "sold") == 0 && strcmp(v->model, "M1") == 0;
        if (!in)
            return false;
    }
    return true;
}

static void build_random_fleet(ota_catalog *c)
{
    const char **pilot = calloc(FLEET, sizeof *pilot);
    size_t n_pilot = 0;
    assert_non_null(pilot);
    for (size_t i = 0; i < FLEET; i++) {
        fleet_vehicle *v = &fleet[i];
        snprintf(v->vin, sizeof v->vin, "%s%0*zu", PREFIXES[rnd(N(PREFIXES))], (int)(17 - 4), i);
        v->model = MODELS[rnd(N(MODELS))];
        v->series = SERIES[rnd(N(SERIES))];
        v->status = STATUSES[rnd(N(STATUSES))];
        v->usage = USAGES[rnd(N(USAGES))];
        v->fw = FWS[rnd(N(FWS))];
        v->cw = CWS[rnd(N(CWS))];
        put_vehicle(c, v->vin, v->model, v->series, v->status, v->usage, v->fw, v->cw);
        if (v->cw != NULL && v->cw[0] == '\0')
            v->cw = NULL; /* the catalog keeps "" as given; no bits either way */
        for (int l = 0; l < OTA_LIST_COUNT; l++) {
            v->listed[l] = rnd(5) == 0;
            if (v->listed[l])
                assert_int_equal(ota_catalog_list_add(c, (ota_list_kind)l, v->vin), 1);
        }
        if ((v->in_static = rnd(3) == 0))
            pilot[n_pilot++] = v->vin;
    }
    put_static_group(c, "pilot", pilot, n_pilot);
    put_dynamic_group(c, "sold_m1", "{\"status\":[\"sold\"],\"model\":\"M1\"}");
    free(pilot);
}

static void add_random_words(cJSON *q)
{
    if (rnd(3) == 0)
        cJSON_AddStringToObject(q, "model", MODELS[rnd(N(MODELS))]);
    if (rnd(4) == 0)
        cJSON_AddStringToObject(q, "series", SERIES[rnd(N(SERIES))]);
    if (rnd(6) == 0)
        cJSON_AddStringToObject(q, "fw", FWS[rnd(N(FWS) - 1)]);
    if (rnd(4) == 0)
        cJSON_AddStringToObject(q, "fw_below", FWS[rnd(N(FWS) - 1)]);
    if (rnd(5) == 0)
        cJSON_AddStringToObject(q, "vin_prefix", rnd(2) ? PREFIXES[rnd(N(PREFIXES))] : "LSV");
    if (rnd(3) == 0) {
        cJSON *a = cJSON_AddArrayToObject(q, "status");
        size_t first = rnd(N(STATUSES)), k = 1 + rnd(3);
        for (size_t i = 0; i < k && first + i < N(STATUSES); i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(STATUSES[first + i]));
    }
    if (rnd(4) == 0) {
        cJSON *a = cJSON_AddArrayToObject(q, "usage");
        cJSON_AddItemToArray(a, cJSON_CreateString(USAGES[rnd(N(USAGES))]));
    }
}

static void add_random_sets(cJSON *q)
{
    static const char *const lists[] = {"blacklist", "forced_whitelist", "same_version_whitelist",
                                        "downgrade_whitelist"};
    uint32_t bit = rnd(10);
    if (rnd(4) == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "config_bits_set"), cJSON_CreateNumber(bit));
    if (rnd(4) == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "config_bits_clear"),
                             cJSON_CreateNumber(bit + 1));
    int l = (int)rnd(4);
    if (rnd(5) == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "lists"), cJSON_CreateString(lists[l]));
    if (rnd(5) == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "not_lists"),
                             cJSON_CreateString(lists[(l + 1) % 4]));
    if (rnd(5) == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "groups"),
                             cJSON_CreateString(rnd(2) ? "pilot" : "sold_m1"));
}

static const ota_upgrade_state *no_latest(void *ctx, const char *vin)
{
    (void)ctx;
    (void)vin;
    return NULL;
}

/* The preview counts what ota_task_check_vin says of each matched VIN. */
static void check_preview(ota_catalog *c, const ota_target_match *m, const cJSON *q)
{
    ota_task_rec t = {.type = OTA_TASK_NORMAL, .model = "M1", .series = "S1", .version = "2.0"};
    ota_rules_env env = {NULL, no_latest, NULL};
    ota_target_preview p;
    size_t expect[OTA_REJ_SLOTS] = {0}, matched = 0;
    ota_target_preview_run(c, m, &env, &t, &p);
    for (size_t i = 0; i < FLEET; i++) {
        if (brute_words(q, &fleet[i]) && brute_sets(q, &fleet[i])) {
            matched++;
            expect[ota_task_check_vin(c, &env, &t, fleet[i].vin, NULL)]++;
        }
    }
    assert_int_equal(p.matched, matched);
    for (int r = 0; r < OTA_REJ_SLOTS; r++)
        assert_int_equal(p.by_code[r], expect[r]);
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_property_random_fleet(void **state)
{
    (void)state;
    ota_catalog *c = ota_catalog_new();
    assert_non_null(c);
    build_random_fleet(c);
    size_t nonempty = 0;
    for (int k = 0; k < QUERIES; k++) {
        cJSON *q = cJSON_CreateObject();
        add_random_words(q);
        add_random_sets(q);
        char *text = cJSON_PrintUnformatted(q);
        ota_target t;
        ota_target_match *m;
        char err[256], **vins;
        size_t n, expect = 0;
        parse_ok(text, &t);
        assert_int_equal(ota_target_compile(c, &t, NULL, NULL, "", &m, err, sizeof err), 0);
        assert_int_equal(ota_target_vins(c, m, FLEET, &vins, &n), 0);
        for (size_t j = 1; j < n; j++)
            assert_true(strcmp(vins[j - 1], vins[j]) < 0);
        for (size_t i = 0; i < FLEET; i++) {
            bool want = brute_words(q, &fleet[i]) && brute_sets(q, &fleet[i]);
            const char *key = fleet[i].vin;
            expect += want;
            bool got = bsearch(&key, vins, n, sizeof *vins, str_ptr_cmp) != NULL;
            if (want != got)
                fail_msg("query %s: %s %s", text, fleet[i].vin,
                         want ? "missed" : "matched wrongly");
        }
        assert_int_equal(n, expect);
        nonempty += n > 0;
        check_preview(c, m, q);
        ota_json_strings_free(vins, n);
        ota_target_match_free(m);
        ota_target_free(&t);
        free(text);
        cJSON_Delete(q);
    }
    assert_true(nonempty > QUERIES / 4); /* the queries are not all empty ones */
    ota_catalog_free(c);
}

/* ---- groups through the store (SQLite) ---- */

static void test_groups_stored(void **state)
{
    test_db *d = *state;
    char err[256];
    const char *vins[] = {VA, VB};
    assert_int_equal(ota_store_put_group(d->s, "pilot", "{\"name\":\"pilot\",\"kind\":\"static\"}",
                                         vins, 2, err, sizeof err),
                     0);
    assert_int_equal(ota_store_put_group(d->s, "dyn",
                                         "{\"name\":\"dyn\",\"kind\":\"dynamic\",\"query\":"
                                         "{\"model\":\"M1\"}}",
                                         NULL, 0, err, sizeof err),
                     0);
    /* replacing keeps only the new members */
    const char *vins2[] = {VC};
    assert_int_equal(ota_store_put_group(d->s, "pilot", "{\"name\":\"pilot\",\"kind\":\"static\"}",
                                         vins2, 1, err, sizeof err),
                     0);
    ota_catalog *c = ota_catalog_new();
    assert_int_equal(ota_catalog_load(c, d->s, err, sizeof err), 0);
    assert_int_equal(ota_catalog_group_count(c), 2);
    const ota_group *g = ota_catalog_group(c, "pilot");
    assert_non_null(g);
    assert_int_equal(ota_group_size(g), 1);
    assert_true(ota_group_has(g, VC));
    assert_false(ota_group_has(g, VA));
    assert_non_null(ota_group_query(ota_catalog_group(c, "dyn")));
    ota_catalog_free(c);
    assert_int_equal(ota_store_delete_group(d->s, "pilot", err, sizeof err), 0);
    assert_int_equal(ota_store_delete_group(d->s, "pilot", err, sizeof err), 0);
    c = ota_catalog_new();
    assert_int_equal(ota_catalog_load(c, d->s, err, sizeof err), 0);
    assert_int_equal(ota_catalog_group_count(c), 1);
    ota_catalog_free(c);
    /* a definition that no longer parses stops the load, naming the group */
    assert_int_equal(
        ota_store_put_group(d->s, "bad", "{\"name\":\"bad\"}", NULL, 0, err, sizeof err), 0);
    c = ota_catalog_new();
    assert_int_equal(ota_catalog_load(c, d->s, err, sizeof err), -1);
    assert_non_null(strstr(err, "group bad: kind: missing"));
    ota_catalog_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip),
        cmocka_unit_test(test_codec_errors),
        cmocka_unit_test(test_group_codec),
        cmocka_unit_test(test_each_condition),
        cmocka_unit_test(test_vins_sorted_and_capped),
        cmocka_unit_test(test_vehicles_sorted_and_capped),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_property_random_fleet),
        cmocka_unit_test_setup_teardown(test_groups_stored, test_db_setup, test_db_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_remove_dirs(NULL);
    return rc;
}
