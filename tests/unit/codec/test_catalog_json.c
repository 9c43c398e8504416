/*
 * test_catalog_json.c — cmocka tests of the catalog JSON codec (codec/catalog_json.c):
 * round trips of every record kind (parse, emit, print, parse again: the same record),
 * defaults, and for every rule of docs/operator-api.md an input that breaks it, checking
 * that the error text names the field and that the record is left zeroed. Also the
 * helpers that the command handlers share (string arrays, uniqueness, error texts).
 *
 * Inputs are a valid base document per kind; each failing case changes one member of it
 * (found by a dotted path such as "ecus.0.file.sha256") to a JSON value, or removes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "ota_catalog_json.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define VIN1 "LSVTA000000000001"
#define VIN2 "LSVTA000000000002"

static const char vehicle_json[] =
    "{\"vin\":\"" VIN1 "\",\"model\":\"M1\",\"series\":\"S1\",\"platform\":\"P1\","
    "\"status\":\"in_stock\",\"usage\":\"retail\",\"sold\":true,\"activated\":true,"
    "\"passenger\":false,\"config_word\":\"0x0f\",\"fw\":\"1.2.3\","
    "\"public_key\":\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"}";

static const char model_json[] =
    "{\"command\":\"setModel\",\"correlationData\":{\"any\":[1]},\"model\":\"M1\","
    "\"series\":\"S1\",\"supports_config_word\":true,\"ecus\":[\"BMS\",\"VCU\",\"TBOX\"],"
    "\"ignore\":[{\"bit\":0,\"ecus\":[\"TBOX\"]},{\"bit\":63,\"ecus\":[\"BMS\",\"VCU\"]}]}";

static const char package_json[] =
    "{\"id\":9007199254740992,\"status\":\"released\",\"model\":\"M1\",\"series\":\"S1\","
    "\"version\":\"2.0.0\",\"kind\":\"delta\",\"from\":\"1.0.0\","
    "\"baseline_description\":\"line 1\\nline 2\\tend\\r\\n\",\"prompt\":\"Ünïcode ✓\","
    "\"result_info\":\"\",\"encrypted\":true,\"ecus\":["
    "{\"ecu\":\"BMS\",\"type\":\"ecu\",\"version\":\"2.0\","
    "\"file\":{\"sha256\":\"" SHA_A "\",\"name\":\"bms.bin\",\"size\":123456}},"
    "{\"ecu\":\"CAM\",\"type\":\"component\",\"version\":\"1.1\","
    "\"file\":{\"sha256\":\"" SHA_B "\",\"name\":\"cam image.bin\",\"size\":0}}]}";

static const char request_json[] =
    "{\"model\":\"M1\",\"series\":\"S1\",\"version\":\"2.0.0\",\"kind\":\"full\","
    "\"ecus\":[{\"ecu\":\"BMS\",\"type\":\"ecu\",\"version\":\"2.0\","
    "\"file\":{\"sha256\":\"" SHA_A "\",\"name\":\"bms.bin\"}}]}";

static const char strategy_json[] =
    "{\"id\":\"st1\",\"package_kind\":\"auto\",\"compare_version\":\"never\",\"ecus\":["
    "{\"ecu\":\"BMS\",\"order\":0,\"upgrade\":false},{\"ecu\":\"VCU\",\"order\":100000},"
    "{\"ecu\":\"TBOX\"}]}";

static const char task_json[] =
    "{\"name\":\"spring campaign\",\"type\":\"spot_check\",\"source\":\"diagnostic_tool\","
    "\"model\":\"M1\",\"series\":\"S1\",\"version\":\"2.0.1\",\"vins\":[\"" VIN1 "\",\"" VIN2
    "\",\"" VIN1 "\"],\"start\":100000000000,\"end\":9007199254740992,\"max_resend\":1000,"
    "\"rate\":4294967295,\"timeout_min\":525600,"
    "\"abort\":{\"min_executed\":1,\"failure_pct\":100}}";

static const char type_rules_json[] =
    "{\"command\":\"setTaskTypeRules\",\"type\":\"factory\",\"statuses\":[\"a\",\"b\"],"
    "\"usages\":[]}";

static const char file_json[] = "{\"sha256\":\"" SHA_A "\",\"size\":9007199254740992}";

/* ---- parsing through one signature ---- */

typedef int (*parse_fn)(const cJSON *j, const char *path, void *out, char *err, size_t errlen);

/* An adapter giving a record parser parse_fn's signature. */
#define PARSER(name, fn)                                                                           \
    static int name(const cJSON *j, const char *path, void *out, char *err, size_t n)              \
    {                                                                                              \
        return fn(j, path, out, err, n);                                                           \
    }

PARSER(p_vehicle, ota_json_vehicle)
PARSER(p_model, ota_json_model)
PARSER(p_package, ota_json_package)
PARSER(p_request, ota_json_package_request)
PARSER(p_strategy, ota_json_strategy)
PARSER(p_file, ota_json_file)
PARSER(p_task, ota_json_task)
PARSER(p_task_request, ota_json_task_request)
PARSER(p_type_rules, ota_json_task_type_rules)

typedef union {
    ota_task_rec t;
    ota_task_type_rules r;
    ota_vehicle_rec v;
    ota_model_rec m;
    ota_package_rec p;
    ota_strategy_rec s;
    ota_file_rec f;
} any_rec;

static char errbuf[512];

/* The member at a dotted path ("ecus.0.file"), or NULL. */
static cJSON *member_at(cJSON *root, const char *at)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", at);
    cJSON *cur = root;
    for (char *save, *seg = strtok_r(buf, ".", &save); cur && seg; seg = strtok_r(NULL, ".", &save))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(seg))
                                 : cJSON_GetObjectItemCaseSensitive(cur, seg);
    return cur;
}

/* base with the member at `at` set to the JSON value (added if new), or removed (NULL). */
static cJSON *edited(const char *base, const char *at, const char *value)
{
    cJSON *root = cJSON_Parse(base);
    assert_non_null(root);
    if (at == NULL)
        return root;
    char parent[128];
    snprintf(parent, sizeof parent, "%s", at);
    char *dot = strrchr(parent, '.');
    const char *key = dot ? dot + 1 : at;
    cJSON *obj = root;
    if (dot != NULL) {
        *dot = '\0';
        obj = member_at(root, parent);
    }
    assert_non_null(obj);
    if (value == NULL) {
        assert_non_null(cJSON_GetObjectItemCaseSensitive(obj, key));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        return root;
    }
    cJSON *v = cJSON_Parse(value);
    assert_non_null(v);
    if (cJSON_IsArray(obj))
        assert_true(cJSON_ReplaceItemInArray(obj, atoi(key), v));
    else if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL)
        assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v));
    else
        assert_true(cJSON_AddItemToObject(obj, key, v));
    return root;
}

/* Parses j with fn, which must fail and leave the record zeroed; returns the error text. */
static const char *fails(parse_fn fn, size_t recsize, const cJSON *j, const char *path)
{
    static const unsigned char zero[sizeof(any_rec)];
    any_rec rec;
    memset(&rec, 0xA5, sizeof rec);
    errbuf[0] = '\0';
    assert_int_equal(fn(j, path, &rec, errbuf, sizeof errbuf), -1);
    assert_memory_equal(&rec, zero, recsize);
    return errbuf;
}

typedef struct {
    const char *at;    /* dotted path of the member to change */
    const char *value; /* its new JSON value; NULL removes it */
    const char *error; /* text the error must contain */
} bad_case;

static void run_cases(parse_fn fn, size_t recsize, const char *base, const char *path,
                      const bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON *j = edited(base, cases[i].at, cases[i].value);
        const char *e = fails(fn, recsize, j, path);
        if (strstr(e, cases[i].error) == NULL)
            fail_msg("case %zu (%s = %s): error \"%s\" lacks \"%s\"", i, cases[i].at,
                     cases[i].value ? cases[i].value : "removed", e, cases[i].error);
        cJSON_Delete(j);
    }
}

static void parse_ok(parse_fn fn, const char *json, const char *path, void *out)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    errbuf[0] = '\0';
    if (fn(j, path, out, errbuf, sizeof errbuf) != 0)
        fail_msg("parse failed: %s", errbuf);
    cJSON_Delete(j);
}

static void parse_ok_tree(parse_fn fn, const cJSON *j, void *out)
{
    assert_non_null(j);
    errbuf[0] = '\0';
    if (fn(j, "tree", out, errbuf, sizeof errbuf) != 0)
        fail_msg("parse failed: %s", errbuf);
}

/* Prints the emitted object, parses the text back with fn into out; returns the text. */
static char *reparse(cJSON *emitted, parse_fn fn, void *out)
{
    assert_non_null(emitted);
    char *text = cJSON_PrintUnformatted(emitted);
    assert_non_null(text);
    cJSON_Delete(emitted);
    parse_ok(fn, text, "x", out);
    return text;
}

/* ---- record equality ---- */

static void assert_str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_vehicle_eq(const ota_vehicle_rec *a, const ota_vehicle_rec *b)
{
    assert_str_eq(a->vin, b->vin);
    assert_str_eq(a->model, b->model);
    assert_str_eq(a->series, b->series);
    assert_str_eq(a->platform, b->platform);
    assert_str_eq(a->status, b->status);
    assert_str_eq(a->usage, b->usage);
    assert_int_equal(a->sold, b->sold);
    assert_int_equal(a->activated, b->activated);
    assert_int_equal(a->passenger, b->passenger);
    assert_str_eq(a->config_word, b->config_word);
    assert_str_eq(a->fw, b->fw);
    assert_int_equal(a->has_public_key, b->has_public_key);
    assert_memory_equal(a->public_key, b->public_key, OTA_PUBKEY_LEN);
}

static void assert_strings_eq(char **a, size_t na, char **b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

static void assert_model_eq(const ota_model_rec *a, const ota_model_rec *b)
{
    assert_str_eq(a->model, b->model);
    assert_str_eq(a->series, b->series);
    assert_int_equal(a->supports_config_word, b->supports_config_word);
    assert_strings_eq(a->ecus, a->n_ecus, b->ecus, b->n_ecus);
    assert_int_equal(a->n_ignore, b->n_ignore);
    for (size_t i = 0; i < a->n_ignore; i++) {
        assert_int_equal(a->ignore[i].bit, b->ignore[i].bit);
        assert_strings_eq(a->ignore[i].ecus, a->ignore[i].n_ecus, b->ignore[i].ecus,
                          b->ignore[i].n_ecus);
    }
}

static void assert_package_eq(const ota_package_rec *a, const ota_package_rec *b)
{
    assert_int_equal(a->id, b->id);
    assert_str_eq(a->model, b->model);
    assert_str_eq(a->series, b->series);
    assert_str_eq(a->version, b->version);
    assert_int_equal(a->delta, b->delta);
    assert_str_eq(a->from, b->from);
    assert_str_eq(a->baseline_description, b->baseline_description);
    assert_str_eq(a->prompt, b->prompt);
    assert_str_eq(a->result_info, b->result_info);
    assert_int_equal(a->encrypted, b->encrypted);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->n_ecus, b->n_ecus);
    for (size_t i = 0; i < a->n_ecus; i++) {
        assert_str_eq(a->ecus[i].ecu, b->ecus[i].ecu);
        assert_int_equal(a->ecus[i].type, b->ecus[i].type);
        assert_str_eq(a->ecus[i].version, b->ecus[i].version);
        assert_string_equal(a->ecus[i].sha256, b->ecus[i].sha256);
        assert_str_eq(a->ecus[i].name, b->ecus[i].name);
        assert_int_equal(a->ecus[i].size, b->ecus[i].size);
    }
}

static void assert_strategy_eq(const ota_strategy_rec *a, const ota_strategy_rec *b)
{
    assert_str_eq(a->id, b->id);
    assert_int_equal(a->package_kind, b->package_kind);
    assert_int_equal(a->compare_version, b->compare_version);
    assert_int_equal(a->n_ecus, b->n_ecus);
    for (size_t i = 0; i < a->n_ecus; i++) {
        assert_str_eq(a->ecus[i].ecu, b->ecus[i].ecu);
        assert_int_equal(a->ecus[i].order, b->ecus[i].order);
        assert_int_equal(a->ecus[i].upgrade, b->ecus[i].upgrade);
    }
}

/* ---- round trips ---- */

static void test_vehicle_round_trip(void **state)
{
    (void)state;
    ota_vehicle_rec a, b;
    parse_ok(p_vehicle, vehicle_json, "vehicles[0]", &a);
    assert_string_equal(a.vin, VIN1);
    assert_string_equal(a.platform, "P1");
    assert_true(a.sold && a.activated && !a.passenger);
    assert_true(a.has_public_key);
    assert_int_equal(a.public_key[0], 0x00);
    assert_int_equal(a.public_key[10], 0xAA);
    assert_int_equal(a.public_key[31], 0xFF);
    char *text = reparse(ota_json_from_vehicle(&a), p_vehicle, &b);
    assert_vehicle_eq(&a, &b);
    /* the key is written in lowercase */
    assert_non_null(strstr(text, "\"public_key\":\"00112233445566778899aabbccddeeff0011"));
    free(text);
    ota_vehicle_rec_free(&a);
    ota_vehicle_rec_free(&b);
}

static void test_vehicle_defaults(void **state)
{
    (void)state;
    ota_vehicle_rec a, b;
    parse_ok(p_vehicle,
             "{\"vin\":\"" VIN2 "\",\"model\":\"M1\",\"series\":\"S1\",\"status\":\"sold\","
             "\"usage\":\"fleet\"}",
             "", &a);
    assert_false(a.sold);
    assert_false(a.activated);
    assert_true(a.passenger);
    assert_null(a.platform);
    assert_null(a.config_word);
    assert_null(a.fw);
    assert_false(a.has_public_key);
    char *text = reparse(ota_json_from_vehicle(&a), p_vehicle, &b);
    assert_vehicle_eq(&a, &b);
    assert_null(strstr(text, "platform"));
    assert_null(strstr(text, "public_key"));
    free(text);
    ota_vehicle_rec_free(&a);
    ota_vehicle_rec_free(&b);
}

static void test_model_round_trip(void **state)
{
    (void)state;
    ota_model_rec a, b;
    parse_ok(p_model, model_json, "", &a);
    assert_string_equal(a.model, "M1");
    assert_true(a.supports_config_word);
    assert_int_equal(a.n_ecus, 3);
    assert_string_equal(a.ecus[2], "TBOX");
    assert_int_equal(a.n_ignore, 2);
    assert_int_equal(a.ignore[1].bit, 63);
    assert_int_equal(a.ignore[1].n_ecus, 2);
    char *text = reparse(ota_json_from_model(&a), p_model, &b);
    assert_model_eq(&a, &b);
    assert_null(strstr(text, "command")); /* the command's own members are not the model's */
    free(text);
    ota_model_rec_free(&a);
    ota_model_rec_free(&b);

    parse_ok(p_model, "{\"model\":\"M2\",\"series\":\"S\",\"supports_config_word\":false}", "", &a);
    assert_int_equal(a.n_ecus, 0);
    assert_int_equal(a.n_ignore, 0);
    text = reparse(ota_json_from_model(&a), p_model, &b);
    assert_model_eq(&a, &b);
    free(text);
    ota_model_rec_free(&a);
    ota_model_rec_free(&b);
}

static void test_package_round_trip(void **state)
{
    (void)state;
    ota_package_rec a, b;
    parse_ok(p_package, package_json, "package", &a);
    assert_int_equal(a.id, OTA_JSON_UINT_MAX);
    assert_int_equal(a.status, OTA_PKG_RELEASED);
    assert_true(a.delta);
    assert_string_equal(a.from, "1.0.0");
    assert_string_equal(a.baseline_description, "line 1\nline 2\tend\r\n");
    assert_string_equal(a.prompt, "Ünïcode ✓");
    assert_string_equal(a.result_info, "");
    assert_true(a.encrypted);
    assert_int_equal(a.n_ecus, 2);
    assert_int_equal(a.ecus[1].type, OTA_ECU_TYPE_COMPONENT);
    assert_string_equal(a.ecus[0].sha256, SHA_A);
    assert_string_equal(a.ecus[1].name, "cam image.bin");
    assert_int_equal(a.ecus[0].size, 123456);
    char *text = reparse(ota_json_from_package(&a), p_package, &b);
    assert_package_eq(&a, &b);
    assert_non_null(strstr(text, "\"id\":9007199254740992,")); /* every digit printed */
    free(text);
    ota_package_rec_free(&b);
    /* the emitted tree parses without printing too */
    cJSON *o = ota_json_from_package(&a);
    parse_ok_tree(p_package, o, &b);
    assert_package_eq(&a, &b);
    cJSON_Delete(o);
    ota_package_rec_free(&a);
    ota_package_rec_free(&b);
}

static void test_package_request_form(void **state)
{
    (void)state;
    ota_package_rec a, b, c;
    parse_ok(p_request, request_json, "package", &a);
    parse_ok(p_package, request_json, "package", &b); /* the stored form's parser takes it */
    assert_package_eq(&a, &b);
    assert_int_equal(a.id, 0);
    assert_int_equal(a.status, OTA_PKG_DRAFT);
    assert_false(a.delta);
    assert_null(a.from);
    assert_null(a.baseline_description);
    assert_false(a.encrypted);
    assert_int_equal(a.ecus[0].size, 0);
    /* an unassigned id is left out, so the emitted form parses back to id 0 */
    char *text = reparse(ota_json_from_package(&a), p_package, &c);
    assert_null(strstr(text, "\"id\""));
    assert_non_null(strstr(text, "\"status\":\"draft\""));
    assert_package_eq(&a, &c);
    free(text);
    ota_package_rec_free(&a);
    ota_package_rec_free(&b);
    ota_package_rec_free(&c);
}

static void test_strategy_round_trip(void **state)
{
    (void)state;
    ota_strategy_rec a, b;
    parse_ok(p_strategy, strategy_json, "strategy", &a);
    assert_string_equal(a.id, "st1");
    assert_int_equal(a.package_kind, OTA_KIND_AUTO);
    assert_int_equal(a.compare_version, OTA_CMP_NEVER);
    assert_int_equal(a.n_ecus, 3);
    assert_int_equal(a.ecus[0].order, 0);
    assert_false(a.ecus[0].upgrade);
    assert_int_equal(a.ecus[1].order, 100000);
    assert_true(a.ecus[1].upgrade); /* default */
    assert_int_equal(a.ecus[2].order, -1);
    char *text = reparse(ota_json_from_strategy(&a), p_strategy, &b);
    assert_strategy_eq(&a, &b);
    assert_non_null(strstr(text, "{\"ecu\":\"TBOX\",\"upgrade\":true}"));
    free(text);
    ota_strategy_rec_free(&a);
    ota_strategy_rec_free(&b);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    ota_file_rec a, b;
    parse_ok(p_file, file_json, "file", &a);
    assert_string_equal(a.sha256, SHA_A);
    assert_int_equal(a.size, OTA_JSON_UINT_MAX);
    /* around 10^15, where cJSON stops printing integers exactly */
    static const uint64_t sizes[] = {0,
                                     999999999999999,
                                     1000000000000000,
                                     1000000000000001,
                                     OTA_JSON_UINT_MAX - 1,
                                     OTA_JSON_UINT_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        a.size = sizes[i];
        char *text = reparse(ota_json_from_file(&a), p_file, &b);
        assert_string_equal(b.sha256, a.sha256);
        assert_int_equal(b.size, a.size);
        free(text);
        cJSON *o = ota_json_from_file(&a);
        parse_ok_tree(p_file, o, &b);
        assert_int_equal(b.size, a.size);
        cJSON_Delete(o);
    }
}

/* The emitters refuse a record without a required text (and do not leak). */
static void test_emit_incomplete(void **state)
{
    (void)state;
    ota_vehicle_rec v;
    parse_ok(p_vehicle, vehicle_json, "", &v);
    char *usage = v.usage;
    v.usage = NULL;
    assert_null(ota_json_from_vehicle(&v));
    v.usage = usage;
    ota_vehicle_rec_free(&v);

    ota_strategy_rec s;
    parse_ok(p_strategy, strategy_json, "", &s);
    s.package_kind = (ota_pkg_kind_pref)7;
    assert_null(ota_json_from_strategy(&s));
    ota_strategy_rec_free(&s);
}

/* ---- rules ---- */

static void test_vehicle_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"vin", "\"LSVTA00000000000I\"",
         "vehicles[3].vin: \"LSVTA00000000000I\" is not a valid VIN"},
        {"vin", "\"LSVTA0000000001\"", "vehicles[3].vin: \"LSVTA0000000001\" is not a valid VIN"},
        {"vin", "17", "vehicles[3].vin: expected a string"},
        {"vin", NULL, "vehicles[3].vin: missing"},
        {"model", NULL, "vehicles[3].model: missing"},
        {"model", "\"\"", "vehicles[3].model: expected a string of 1..64 bytes, not 0"},
        {"series",
         "\""
         "0123456789012345678901234567890123456789012345678901234567890123"
         "4\"",
         "vehicles[3].series: expected a string of 1..64 bytes, not 65"},
        {"status", "\"in\\u0001stock\"", "vehicles[3].status: not valid text"},
        {"usage", "\"a\\nb\"", "vehicles[3].usage: not valid text"},
        {"usage", NULL, "vehicles[3].usage: missing"},
        {"status", NULL, "vehicles[3].status: missing"},
        {"platform", "null", "vehicles[3].platform: expected a string"},
        {"sold", "\"yes\"", "vehicles[3].sold: expected true or false"},
        {"activated", "1", "vehicles[3].activated: expected true or false"},
        {"passenger", "null", "vehicles[3].passenger: expected true or false"},
        {"config_word", "15", "vehicles[3].config_word: expected a string"},
        {"fw", "\"\"", "vehicles[3].fw: expected a string of 1..64 bytes"},
        {"public_key", "\"0011\"", "vehicles[3].public_key: expected 64 hex characters"},
        {"public_key", "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg\"",
         "vehicles[3].public_key: expected 64 hex characters"},
        {"colour", "\"red\"", "vehicles[3].colour: unknown field"},
        {"command", "\"upsertVehicles\"", "vehicles[3].command: unknown field"},
    };
    run_cases(p_vehicle, sizeof(ota_vehicle_rec), vehicle_json, "vehicles[3]", cases,
              sizeof cases / sizeof cases[0]);

    cJSON *j = cJSON_Parse("[1]");
    assert_string_equal(fails(p_vehicle, sizeof(ota_vehicle_rec), j, "vehicles[3]"),
                        "vehicles[3]: expected an object");
    cJSON_Delete(j);
}

static void test_model_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"model", NULL, "model: missing"},
        {"series", "\"\"", "series: expected a string of 1..64 bytes"},
        {"supports_config_word", NULL, "supports_config_word: missing"},
        {"supports_config_word", "\"true\"", "supports_config_word: expected true or false"},
        {"ecus", "\"BMS\"", "ecus: expected an array"},
        {"ecus", "[\"BMS\",\"VCU\",\"BMS\"]", "ecus[2]: duplicate \"BMS\" (also at [0])"},
        {"ecus", "[\"BMS\",\"\"]", "ecus[1]: expected a string of 1..64 bytes"},
        {"ecus", "[\"BMS\",3]", "ecus[1]: expected a string"},
        {"ignore", "{}", "ignore: expected an array"},
        {"ignore.0.bit", "64", "ignore[0].bit: expected an integer in 0..63"},
        {"ignore.0.bit", "-1", "ignore[0].bit: expected an integer in 0..63"},
        {"ignore.0.bit", "1.5", "ignore[0].bit: expected an integer in 0..63"},
        {"ignore.0.bit", "\"1\"", "ignore[0].bit: expected an integer in 0..63"},
        {"ignore.0.bit", NULL, "ignore[0].bit: missing"},
        {"ignore.1.bit", "0", "ignore[1].bit: bit 0 is already in ignore[0]"},
        {"ignore.1.ecus", "[\"BMS\",\"ABS\"]",
         "ignore[1].ecus[1]: \"ABS\" is not one of the model's ecus"},
        {"ignore.1.ecus", "[]", "ignore[1].ecus: expected 1..256 items, not 0"},
        {"ignore.1.ecus", "[\"VCU\",\"VCU\"]", "ignore[1].ecus[1]: duplicate \"VCU\""},
        {"ignore.1.mask", "1", "ignore[1].mask: unknown field"},
        {"ignore.1", "7", "ignore[1]: expected an object"},
        {"colour", "1", "colour: unknown field"},
    };
    run_cases(p_model, sizeof(ota_model_rec), model_json, "", cases,
              sizeof cases / sizeof cases[0]);

    /* ignore rules need the ECUs declared */
    cJSON *j = edited(model_json, "ecus", NULL);
    assert_non_null(strstr(fails(p_model, sizeof(ota_model_rec), j, ""),
                           "ignore[0].ecus[0]: \"TBOX\" is not one of the model's ecus"));
    cJSON_Delete(j);
}

/* 0..256 model ECUs; 257 refused. */
static void test_model_ecu_count(void **state)
{
    (void)state;
    cJSON *j = edited(model_json, "ignore", NULL);
    cJSON *ecus = cJSON_CreateArray();
    for (int i = 0; i < OTA_JSON_ECUS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "E%d", i);
        cJSON_AddItemToArray(ecus, cJSON_CreateString(name));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(j, "ecus", ecus);
    ota_model_rec m;
    assert_int_equal(ota_json_model(j, "", &m, errbuf, sizeof errbuf), 0);
    assert_int_equal(m.n_ecus, OTA_JSON_ECUS_MAX);
    ota_model_rec_free(&m);
    cJSON_AddItemToArray(ecus, cJSON_CreateString("E256"));
    assert_non_null(
        strstr(fails(p_model, sizeof m, j, "m"), "m.ecus: expected 0..256 items, not 257"));
    cJSON_Delete(j);
}

static void test_package_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"ecus.0.file.sha256",
         "\""
         "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
         "\"",
         "package.ecus[0].file.sha256: expected 64 lowercase hex characters"},
        {"ecus.1.file.sha256", "\"abc\"", "package.ecus[1].file.sha256: expected 64 lowercase hex"},
        {"ecus.1.file.sha256", NULL, "package.ecus[1].file.sha256: missing"},
        {"ecus.0.file.name", NULL, "package.ecus[0].file.name: missing"},
        {"ecus.0.file.name", "\"\"",
         "package.ecus[0].file.name: expected a string of 1..255 bytes"},
        {"ecus.0.file.name", "\"a\\tb\"", "package.ecus[0].file.name: not valid text"},
        {"ecus.0.file.size", "-1",
         "package.ecus[0].file.size: expected an integer in 0..9007199254740992"},
        {"ecus.0.file.size", "1e300", "package.ecus[0].file.size: expected an integer"},
        {"ecus.0.file.id", "1", "package.ecus[0].file.id: unknown field"},
        {"ecus.0.file", "\"" SHA_A "\"", "package.ecus[0].file: expected an object"},
        {"ecus.0.file", NULL, "package.ecus[0].file: missing"},
        {"ecus.0.type", "\"chip\"", "package.ecus[0].type: expected ecu|component"},
        {"ecus.0.type", NULL, "package.ecus[0].type: missing"},
        {"ecus.0.version", NULL, "package.ecus[0].version: missing"},
        {"ecus.0.ecu", "\"\"", "package.ecus[0].ecu: expected a string of 1..64 bytes"},
        {"ecus.1.ecu", "\"BMS\"", "package.ecus[1].ecu: duplicate \"BMS\" (also at [0])"},
        {"ecus.1.order", "1", "package.ecus[1].order: unknown field"},
        {"ecus", "[]", "package.ecus: expected 1..256 items, not 0"},
        {"ecus", NULL, "package.ecus: missing"},
        {"kind", "\"patch\"", "package.kind: expected full|delta"},
        {"kind", NULL, "package.kind: missing"},
        {"from", NULL, "package.from: missing (a delta package needs it)"},
        {"kind", "\"full\"", "package.from: only a delta package has one"},
        {"version", "\"\"", "package.version: expected a string of 1..64 bytes"},
        {"model", NULL, "package.model: missing"},
        {"series", "[]", "package.series: expected a string"},
        {"encrypted", "0", "package.encrypted: expected true or false"},
        {"prompt", "\"a\\u0007b\"", "package.prompt: not valid text"},
        {"result_info", "5", "package.result_info: expected a string"},
        {"id", "0", "package.id: expected an integer in 1..9007199254740992"},
        {"id", "9007199254740994", "package.id: expected an integer in 1..9007199254740992"},
        {"id", "2.5", "package.id: expected an integer"},
        {"id", "\"7\"", "package.id: expected an integer"},
        {"status", "\"published\"", "package.status: expected draft|verified|released"},
        {"size", "1", "package.size: unknown field"},
    };
    run_cases(p_package, sizeof(ota_package_rec), package_json, "package", cases,
              sizeof cases / sizeof cases[0]);
}

/* Free texts: at most 4096 bytes. */
static void test_package_free_text_limit(void **state)
{
    (void)state;
    char *text = malloc(OTA_FREE_TEXT_MAX + 4);
    text[0] = '"';
    memset(text + 1, 'x', OTA_FREE_TEXT_MAX);
    strcpy(text + 1 + OTA_FREE_TEXT_MAX, "\"");
    cJSON *j = edited(package_json, "baseline_description", text);
    ota_package_rec p;
    assert_int_equal(ota_json_package(j, "package", &p, errbuf, sizeof errbuf), 0);
    assert_int_equal(strlen(p.baseline_description), OTA_FREE_TEXT_MAX);
    ota_package_rec_free(&p);
    cJSON_Delete(j);

    strcpy(text + 1 + OTA_FREE_TEXT_MAX, "y\"");
    j = edited(package_json, "baseline_description", text);
    assert_non_null(
        strstr(fails(p_package, sizeof p, j, "package"),
               "package.baseline_description: expected a string of 0..4096 bytes, not 4097"));
    cJSON_Delete(j);
    free(text);
}

/* 256 package ECUs accepted, 257 refused. */
static void test_package_ecu_count(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse(request_json);
    cJSON *ecus = cJSON_GetObjectItemCaseSensitive(j, "ecus");
    cJSON *first = cJSON_GetArrayItem(ecus, 0);
    for (int i = 1; i < OTA_JSON_ECUS_MAX; i++) {
        cJSON *e = cJSON_Duplicate(first, true);
        char name[16];
        snprintf(name, sizeof name, "E%d", i);
        cJSON_ReplaceItemInObjectCaseSensitive(e, "ecu", cJSON_CreateString(name));
        cJSON_AddItemToArray(ecus, e);
    }
    ota_package_rec p;
    assert_int_equal(ota_json_package_request(j, "package", &p, errbuf, sizeof errbuf), 0);
    assert_int_equal(p.n_ecus, OTA_JSON_ECUS_MAX);
    ota_package_rec_free(&p);
    cJSON_AddItemToArray(ecus, cJSON_Duplicate(first, true));
    assert_non_null(strstr(fails(p_request, sizeof p, j, "package"),
                           "package.ecus: expected 1..256 items, not 257"));
    cJSON_Delete(j);
}

/* The addPackage form refuses what only the stored form has. */
static void test_package_request_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"id", "3", "package.id: unknown field"},
        {"status", "\"released\"", "package.status: unknown field"},
        {"ecus.0.file.size", "10", "package.ecus[0].file.size: unknown field"},
        {"kind", "\"delta\"", "package.from: missing"},
    };
    run_cases(p_request, sizeof(ota_package_rec), request_json, "package", cases,
              sizeof cases / sizeof cases[0]);
}

static void test_strategy_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"id", NULL, "strategy.id: missing"},
        {"id", "\"\"", "strategy.id: expected a string of 1..64 bytes"},
        {"package_kind", "\"diff\"", "strategy.package_kind: expected full|delta|auto"},
        {"package_kind", NULL, "strategy.package_kind: missing"},
        {"compare_version", "true", "strategy.compare_version: expected a string"},
        {"compare_version", "\"sometimes\"",
         "strategy.compare_version: expected always|never|auto"},
        {"ecus", "[]", "strategy.ecus: expected 1..256 items, not 0"},
        {"ecus", NULL, "strategy.ecus: missing"},
        {"ecus.0.order", "100001", "strategy.ecus[0].order: expected an integer in 0..100000"},
        {"ecus.0.order", "-1", "strategy.ecus[0].order: expected an integer in 0..100000"},
        {"ecus.0.order", "0.5", "strategy.ecus[0].order: expected an integer in 0..100000"},
        {"ecus.0.order", "null", "strategy.ecus[0].order: expected an integer"},
        {"ecus.1.upgrade", "\"no\"", "strategy.ecus[1].upgrade: expected true or false"},
        {"ecus.2.ecu", "\"BMS\"", "strategy.ecus[2].ecu: duplicate \"BMS\" (also at [0])"},
        {"ecus.2.ecu", NULL, "strategy.ecus[2].ecu: missing"},
        {"ecus.2.type", "\"ecu\"", "strategy.ecus[2].type: unknown field"},
        {"ecus.2", "[]", "strategy.ecus[2]: expected an object"},
        {"model", "\"M1\"", "strategy.model: unknown field"},
    };
    run_cases(p_strategy, sizeof(ota_strategy_rec), strategy_json, "strategy", cases,
              sizeof cases / sizeof cases[0]);
}

static void test_file_rules(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"sha256", "\"" SHA_A "0\"", "file.sha256: expected 64 lowercase hex characters"},
        {"sha256", NULL, "file.sha256: missing"},
        {"size", NULL, "file.size: missing"},
        {"size", "-5", "file.size: expected an integer in 0..9007199254740992"},
        {"size", "18446744073709551616", "file.size: expected an integer"},
        {"name", "\"a\"", "file.name: unknown field"},
    };
    run_cases(p_file, sizeof(ota_file_rec), file_json, "file", cases,
              sizeof cases / sizeof cases[0]);
}

/* A key given twice is refused (cJSON keeps both, and would read the first). */
static void test_duplicate_field(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"id\":\"a\",\"package_kind\":\"full\",\"compare_version\":\"auto\","
                           "\"ecus\":[{\"ecu\":\"E\"}],\"id\":\"b\"}");
    assert_string_equal(fails(p_strategy, sizeof(ota_strategy_rec), j, "strategy"),
                        "strategy.id: duplicate field");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"model\":\"M\",\"series\":\"S\",\"supports_config_word\":true,"
                    "\"command\":\"setModel\",\"command\":\"setModel\"}");
    assert_string_equal(fails(p_model, sizeof(ota_model_rec), j, ""), "command: duplicate field");
    cJSON_Delete(j);
}

/* An unknown key that is not short valid text is not copied into the error. */
static void test_unknown_field_odd_name(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse(file_json);
    cJSON_AddNumberToObject(j, "a\x01z", 1);
    assert_string_equal(fails(p_file, sizeof(ota_file_rec), j, "file"),
                        "file: unknown field (its name is not short valid text)");
    cJSON_Delete(j);
}

/* ---- helpers for command handlers ---- */

static void test_get_helpers(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"vin\":\"" VIN1 "\",\"bad\":\"LSVTA00000000000O\",\"n\":42,"
                           "\"flag\":false,\"text\":\"a\\nb\",\"list\":\"blacklist\"}");
    const char *s;
    bool b;
    uint64_t u = 7;
    int e = -5;
    assert_int_equal(ota_json_get_vin(j, "", "vin", true, &s, errbuf, sizeof errbuf), 0);
    assert_string_equal(s, VIN1);
    assert_int_equal(ota_json_get_vin(j, "", "bad", true, &s, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "bad: \"LSVTA00000000000O\" is not a valid VIN");
    assert_int_equal(ota_json_get_vin(j, NULL, "other", false, &s, errbuf, sizeof errbuf), 0);
    assert_null(s);
    assert_int_equal(ota_json_get_word(j, "", "id", true, &s, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "id: missing");
    assert_int_equal(ota_json_get_word(j, "", "text", true, &s, errbuf, sizeof errbuf), -1);
    assert_int_equal(ota_json_get_text(j, "", "text", true, &s, errbuf, sizeof errbuf), 0);
    assert_string_equal(s, "a\nb");

    assert_int_equal(ota_json_get_uint(j, "", "absent", false, 0, 10, &u, errbuf, sizeof errbuf),
                     0);
    assert_int_equal(u, 7); /* left as it was */
    assert_int_equal(ota_json_get_uint(j, "", "n", true, 0, 10, &u, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "n: expected an integer in 0..10");
    assert_int_equal(ota_json_get_uint(j, "", "n", true, 42, 42, &u, errbuf, sizeof errbuf), 0);
    assert_int_equal(u, 42);
    /* max is capped at 2^53 */
    assert_int_equal(ota_json_get_uint(j, "", "n", true, 0, UINT64_MAX, &u, errbuf, sizeof errbuf),
                     0);

    assert_int_equal(ota_json_get_bool(j, "", "absent", false, true, &b, errbuf, sizeof errbuf), 0);
    assert_true(b);
    assert_int_equal(ota_json_get_bool(j, "", "flag", true, true, &b, errbuf, sizeof errbuf), 0);
    assert_false(b);
    assert_int_equal(ota_json_get_bool(j, "", "absent", true, true, &b, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "absent: missing");

    static const char *const lists[] = {"blacklist", "forced_whitelist"};
    assert_int_equal(ota_json_get_enum(j, "", "list", true, lists, 2, &e, errbuf, sizeof errbuf),
                     0);
    assert_int_equal(e, 0);
    assert_int_equal(ota_json_get_enum(j, "", "vin", true, lists, 2, &e, errbuf, sizeof errbuf),
                     -1);
    assert_string_equal(errbuf, "vin: expected blacklist|forced_whitelist");
    e = -5;
    assert_int_equal(ota_json_get_enum(j, "", "absent", false, lists, 2, &e, errbuf, sizeof errbuf),
                     0);
    assert_int_equal(e, -5);

    char sha[OTA_SHA256_HEX + 1];
    assert_int_equal(ota_json_get_sha256(j, "", "vin", sha, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "vin: expected 64 lowercase hex characters");

    static const char *const allowed[] = {"vin", "bad", "n", "flag", "text", NULL};
    assert_int_equal(ota_json_check_fields(j, "", allowed, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "list: unknown field");
    cJSON_Delete(j);

    j = cJSON_Parse("{\"command\":\"getList\",\"correlationData\":\"c\",\"list\":\"blacklist\"}");
    static const char *const list_only[] = {"list", NULL};
    assert_int_equal(ota_json_check_command_fields(j, "", list_only, errbuf, sizeof errbuf), 0);
    assert_int_equal(ota_json_check_fields(j, "", list_only, errbuf, sizeof errbuf), -1);
    assert_string_equal(errbuf, "command: unknown field");
    cJSON_Delete(j);
}

/* ota_json_get_string_array on one object: each case a call and what it must give. */
typedef struct {
    const char *path, *key;
    bool required;
    size_t min, max;
    unsigned flags;
    int rc;
    size_t n;        /* items returned (rc 0) */
    const char *err; /* the error text (rc -1; NULL: not checked) */
} string_array_case;

static void test_string_array(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"vins\":[\"" VIN1 "\",\"" VIN2 "\",\"" VIN1 "\"],"
                           "\"bad\":[\"" VIN1 "\",\"nope\"],\"empty\":[]}");
    static const string_array_case cases[] = {
        /* repeats pass without OTA_JSON_UNIQUE (createTask rejects them per VIN) */
        {"", "vins", true, 1, 10, OTA_JSON_VINS, 0, 3, NULL},
        {"", "vins", true, 1, 10, OTA_JSON_VINS | OTA_JSON_UNIQUE, -1, 0,
         "vins[2]: duplicate \"" VIN1 "\" (also at [0])"},
        {"cmd", "bad", true, 1, 10, OTA_JSON_VINS, -1, 0,
         "cmd.bad[1]: \"nope\" is not a valid VIN"},
        {"", "vins", true, 1, 2, 0, -1, 0, "vins: expected 1..2 items, not 3"},
        {"", "empty", true, 1, 2, 0, -1, 0, NULL},
        {"", "empty", true, 0, 2, 0, 0, 0, NULL},
        {"", "absent", false, 1, 2, 0, 0, 0, NULL}, /* absent and optional: NULL */
        {"", "absent", true, 1, 2, 0, -1, 0, "absent: missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const string_array_case *c = &cases[i];
        char **v;
        size_t n;
        int rc = ota_json_get_string_array(j, c->path, c->key, c->required, c->min, c->max,
                                           c->flags, &v, &n, errbuf, sizeof errbuf);
        if (rc != c->rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, c->rc, errbuf);
        assert_int_equal(n, c->n);
        if (rc != 0 || (n == 0 && !c->required))
            assert_null(v); /* nothing on failure; NULL for an absent optional array */
        if (c->err != NULL && strcmp(errbuf, c->err) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, errbuf, c->err);
        if (rc == 0 && n > 1)
            assert_string_equal(v[1], VIN2);
        ota_json_strings_free(v, n);
    }
    cJSON_Delete(j);
}

/* 10000 VINs (a bulk command's limit) are checked for repeats at once; the first repeat
 * is named. */
static void test_string_array_large_unique(void **state)
{
    (void)state;
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(j, "vins");
    for (int i = 0; i < 10000; i++) {
        char vin[18];
        snprintf(vin, sizeof vin, "LSVTA%012d", i);
        cJSON_AddItemToArray(arr, cJSON_CreateString(vin));
    }
    char **v;
    size_t n;
    assert_int_equal(ota_json_get_string_array(j, "", "vins", true, 1, 10000,
                                               OTA_JSON_VINS | OTA_JSON_UNIQUE, &v, &n, errbuf,
                                               sizeof errbuf),
                     0);
    assert_int_equal(n, 10000);
    ota_json_strings_free(v, n);
    cJSON_ReplaceItemInArray(arr, 9000, cJSON_CreateString("LSVTA000000000005"));
    cJSON_ReplaceItemInArray(arr, 7000, cJSON_CreateString("LSVTA000000000009"));
    assert_int_equal(ota_json_get_string_array(j, "", "vins", true, 1, 10000,
                                               OTA_JSON_VINS | OTA_JSON_UNIQUE, &v, &n, errbuf,
                                               sizeof errbuf),
                     -1);
    assert_string_equal(errbuf, "vins[7000]: duplicate \"LSVTA000000000009\" (also at [9])");
    cJSON_Delete(j);
}

/* ota_json_errf: "<path>.<key>: <message>" into a buffer of `cap` bytes. */
typedef struct {
    size_t cap;
    const char *path, *key, *arg; /* arg: the message's %s */
    const char *want;
} errf_case;

static void test_errf(void **state)
{
    (void)state;
    static const errf_case cases[] = {
        {sizeof errbuf, "a[1]", "b", "bad 5", "a[1].b: bad 5"},
        {sizeof errbuf, "", "b", "x", "b: x"},
        {sizeof errbuf, "a", NULL, "x", "a: x"},
        {sizeof errbuf, NULL, NULL, "x", "x"},
        /* cut at a whole character: "k: ééé" is 9 bytes */
        {10, "", "k", "ééé", "k: ééé"},
        {9, "", "k", "ééé", "k: éé"}, /* room for 8: half an é is cut */
        {8, "", "k", "ééé", "k: éé"},
        {7, "", "k", "ééé", "k: é"},
        {3, "a", "k", "x", "a."}, /* the prefix itself is cut */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const errf_case *c = &cases[i];
        assert_int_equal(ota_json_errf(errbuf, c->cap, c->path, c->key, "%s", c->arg), -1);
        if (strcmp(errbuf, c->want) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, errbuf, c->want);
    }
    assert_int_equal(ota_json_errf(NULL, 0, "a", "b", "x"), -1);
}

/* ---- tasks ---- */

static void assert_task_eq(const ota_task_rec *a, const ota_task_rec *b)
{
    assert_str_eq(a->id, b->id);
    assert_str_eq(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->source, b->source);
    assert_str_eq(a->model, b->model);
    assert_str_eq(a->series, b->series);
    assert_str_eq(a->version, b->version);
    assert_strings_eq(a->vins, a->n_vins, b->vins, b->n_vins);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->end_ms, b->end_ms);
    assert_int_equal(a->max_resend, b->max_resend);
    assert_int_equal(a->rate, b->rate);
    assert_int_equal(a->timeout_min, b->timeout_min);
    assert_int_equal(a->abort_min_executed, b->abort_min_executed);
    assert_int_equal(a->abort_failure_pct, b->abort_failure_pct);
}

static void test_task_round_trip(void **state)
{
    (void)state;
    ota_task_rec a, b;
    parse_ok(p_task_request, task_json, "task", &a);
    assert_null(a.id);
    assert_int_equal(a.type, OTA_TASK_SPOT_CHECK);
    assert_int_equal(a.source, OTA_SOURCE_DIAGNOSTIC_TOOL);
    assert_int_equal(a.n_vins, 3); /* a repeated VIN is the rules' business */
    assert_int_equal(a.start_ms, 100000000000LL);
    assert_int_equal(a.end_ms, 9007199254740992LL);
    assert_int_equal(a.rate, UINT32_MAX);
    assert_int_equal(a.abort_failure_pct, 100);
    a.id = strdup("T000001");
    free(reparse(ota_json_from_task(&a), p_task, &b));
    assert_task_eq(&a, &b);
    /* Without VINs (the stored document): the stored form takes that. */
    ota_task_rec_free(&b);
    ota_json_strings_free(a.vins, a.n_vins);
    a.vins = NULL;
    a.n_vins = 0;
    char *text = reparse(ota_json_from_task(&a), p_task, &b);
    assert_null(strstr(text, "vins"));
    assert_task_eq(&a, &b);
    free(text);
    ota_task_rec_free(&a);
    ota_task_rec_free(&b);
}

static void test_task_defaults(void **state)
{
    (void)state;
    ota_task_rec a;
    parse_ok(p_task_request,
             "{\"name\":\"n\",\"type\":\"normal\",\"model\":\"M\",\"series\":\"S\","
             "\"version\":\"1\",\"vins\":[]}",
             "task", &a);
    assert_int_equal(a.source, OTA_SOURCE_CONSOLE);
    assert_int_equal(a.n_vins, 0);
    assert_int_equal(a.start_ms, -1);
    assert_int_equal(a.end_ms, -1);
    assert_int_equal(a.max_resend + a.rate + a.timeout_min, 0);
    assert_int_equal(a.abort_min_executed + a.abort_failure_pct, 0);
    cJSON *j = ota_json_from_task(&a);
    assert_null(cJSON_GetObjectItem(j, "start"));
    assert_null(cJSON_GetObjectItem(j, "abort"));
    assert_string_equal(cJSON_GetObjectItem(j, "source")->valuestring, "console");
    cJSON_Delete(j);
    ota_task_rec_free(&a);
}

static void test_task_rules_codec(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"name", NULL, "task.name: missing"},
        {"type", "\"urgent\"", "task.type: expected normal|forced|factory|spot_check|diagnostic"},
        {"source", "\"phone\"", "task.source: expected console|diagnostic_tool"},
        {"version", "2", "task.version: expected a string"},
        {"vins", NULL, "task.vins: missing"},
        {"vins.1", "\"LSVTA00000000000I\"", "task.vins[1]: "},
        {"vins", "\"" VIN1 "\"", "task.vins: expected an array"},
        {"start", "-1", "task.start: expected ms since the Unix epoch or an ISO 8601 text"},
        {"start", "99999999999", "task.start: 99999999999 looks like seconds"},
        {"start", "\"2026-13-01T00:00:00Z\"", "task.start: \"2026-13-01T00:00:00Z\" is not an ISO"},
        {"start", "\"2026-12-08T10:00:00\"", "task.start: \"2026-12-08T10:00:00\" is not an ISO"},
        {"end", "100000000000", "task.end: must be after start"},
        {"end", "\"1973-03-03T09:46:40Z\"", "task.end: must be after start"},
        {"max_resend", "1001", "task.max_resend: expected an integer in 0..1000"},
        {"rate", "4294967296", "task.rate: expected an integer in 0..4294967295"},
        {"timeout_min", "525601", "task.timeout_min: expected an integer in 0..525600"},
        {"abort.failure_pct", "0", "task.abort.failure_pct: expected an integer in 1..100"},
        {"abort.min_executed", NULL, "task.abort.min_executed: missing"},
        {"abort.when", "1", "task.abort.when: unknown field"},
        {"id", "\"T1\"", "task.id: unknown field"},
        {"colour", "1", "task.colour: unknown field"},
    };
    run_cases(p_task_request, sizeof(ota_task_rec), task_json, "task", cases,
              sizeof cases / sizeof cases[0]);
    static const bad_case stored[] = {{"id", NULL, "task.id: missing"},
                                      {"id", "\"\"", "task.id: expected a string of 1..64"}};
    cJSON *j = edited(task_json, "id", "\"T000001\"");
    char *base = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_cases(p_task, sizeof(ota_task_rec), base, "task", stored, 2);
    free(base);
}

/* ISO 8601 times of the operator API (time_json.c): zones, fractions, leap days, and
 * what is refused; formatting back. */
static void test_iso8601(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(ota_iso8601_parse("2026-12-08T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1796724000000LL);
    assert_int_equal(ota_iso8601_parse("2026-12-08T18:00:00+08:00", &ms), 0);
    assert_int_equal(ms, 1796724000000LL);
    assert_int_equal(ota_iso8601_parse("2026-12-08T05:30:00.250-0430", &ms), 0);
    assert_int_equal(ms, 1796724000250LL);
    assert_int_equal(ota_iso8601_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(ota_iso8601_parse("2024-02-29T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 1709164800000LL);
    static const char *const bad[] = {
        "2023-02-29T00:00:00Z", "2026-12-08T10:00:00",       "2026-12-08",
        "2026-12-08T24:00:00Z", "2026-12-08T10:00Z",         "2026-12-08T10:00:00Zjunk",
        "1969-12-31T23:59:59Z", "2026-12-08T10:00:00+25:00", "",
        "2026-12-08T10:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ota_iso8601_parse(bad[i], &ms), -1);
    char buf[32];
    ota_iso8601_format(1796724000000LL, buf, sizeof buf);
    assert_string_equal(buf, "2026-12-08T10:00:00Z");
    ota_iso8601_format(1709164800250LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29T00:00:00.250Z");
}

static void test_type_rules_codec(void **state)
{
    (void)state;
    ota_task_type_rules a, b;
    parse_ok(p_type_rules, type_rules_json, "", &a);
    assert_int_equal(a.type, OTA_TASK_FACTORY);
    assert_int_equal(a.n_statuses, 2);
    assert_null(a.usages); /* [] = any */
    char *text = reparse(ota_json_from_task_type_rules(&a), p_type_rules, &b);
    assert_string_equal(text, "{\"type\":\"factory\",\"statuses\":[\"a\",\"b\"],\"usages\":[]}");
    assert_strings_eq(a.statuses, a.n_statuses, b.statuses, b.n_statuses);
    assert_int_equal(b.n_usages, 0);
    free(text);
    ota_task_type_rules_free(&a);
    ota_task_type_rules_free(&b);
    static const bad_case cases[] = {
        {"type", "\"urgent\"", "type: expected normal|"},
        {"statuses", NULL, "statuses: missing"},
        {"statuses.0", "1", "statuses[0]: expected a string"},
        {"usages", "{}", "usages: expected an array"},
        {"statuses.1", "\"a\"", "statuses[1]: duplicate \"a\" (also at [0])"},
        {"extra", "1", "extra: unknown field"},
    };
    run_cases(p_type_rules, sizeof(ota_task_type_rules), type_rules_json, "", cases,
              sizeof cases / sizeof cases[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vehicle_round_trip),
        cmocka_unit_test(test_vehicle_defaults),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_package_round_trip),
        cmocka_unit_test(test_package_request_form),
        cmocka_unit_test(test_strategy_round_trip),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_emit_incomplete),
        cmocka_unit_test(test_vehicle_rules),
        cmocka_unit_test(test_model_rules),
        cmocka_unit_test(test_model_ecu_count),
        cmocka_unit_test(test_package_rules),
        cmocka_unit_test(test_package_free_text_limit),
        cmocka_unit_test(test_package_ecu_count),
        cmocka_unit_test(test_package_request_rules),
        cmocka_unit_test(test_strategy_rules),
        cmocka_unit_test(test_file_rules),
        cmocka_unit_test(test_duplicate_field),
        cmocka_unit_test(test_unknown_field_odd_name),
        cmocka_unit_test(test_get_helpers),
        cmocka_unit_test(test_string_array),
        cmocka_unit_test(test_string_array_large_unique),
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_task_round_trip),
        cmocka_unit_test(test_task_defaults),
        cmocka_unit_test(test_task_rules_codec),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_type_rules_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
