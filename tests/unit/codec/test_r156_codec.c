/*
 * test_r156_codec.c — the UNECE R156 fields of the catalog JSON (codec/r156_json.c, issue
 * 17): RXSWIN format and lists (canonical order, one per regulation, bounds), the merge
 * of a committed success, per-language texts (default language, tags, the byte bound),
 * a package's default install mode, and the RXSWIN change record.
 */
#include "ota_catalog_json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char err[512];

static const char *PKG =
    "{\"model\":\"M\",\"series\":\"S\",\"version\":\"2.0\",\"kind\":\"full\","
    "\"ecus\":[{\"ecu\":\"BMS\",\"type\":\"ecu\",\"version\":\"2\",\"file\":"
    "{\"sha256\":\"0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
    "e8f9\",\"name\":\"b.bin\"}}]";

/* The package request PKG plus the members in extra ("" or ",\"k\":v..."). 0 or -1. */
static int package(const char *extra, ota_package_rec *out)
{
    char text[16384];
    snprintf(text, sizeof text, "%s%s}", PKG, extra);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    int rc = ota_json_package_request(j, "package", out, err, sizeof err);
    cJSON_Delete(j);
    return rc;
}

static void refused(const char *extra, const char *want)
{
    ota_package_rec p;
    assert_int_equal(package(extra, &p), -1);
    if (strstr(err, want) == NULL)
        fail_msg("%s: got \"%s\", want \"%s\"", extra, err, want);
}

static void test_rxswin_format(void **state)
{
    (void)state;
    const char *good[] = {"R79-STEER.7", "R10-A", "R1234-x_y/z-1.2",
                          "R156-01234567890123456789012345678901234567890123456789012345678"};
    const char *bad[] = {NULL,
                         "",
                         "R79",
                         "R79-",
                         "79-A",
                         "R-A",
                         "R12345-A",
                         "r79-A",
                         "R79-a b",
                         "R79-A,B",
                         "R156-012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ota_rxswin_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ota_rxswin_valid(bad[i]))
            fail_msg("%s taken", bad[i]);
}

static void test_rxswin_lists(void **state)
{
    (void)state;
    ota_package_rec p;
    assert_int_equal(package(",\"rxswin\":[\"R79-STEER.2\",\"R100-BAT.1\",\"R10-EMC.3\"]", &p), 0);
    assert_string_equal(p.rxswin, "R10-EMC.3,R79-STEER.2,R100-BAT.1"); /* by regulation number */
    cJSON *j = ota_json_from_package(&p);
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "rxswin");
    assert_int_equal(cJSON_GetArraySize(arr), 3);
    assert_string_equal(cJSON_GetArrayItem(arr, 2)->valuestring, "R100-BAT.1");
    ota_package_rec back;
    assert_int_equal(ota_json_package(j, NULL, &back, err, sizeof err), 0);
    assert_string_equal(back.rxswin, p.rxswin);
    ota_package_rec_free(&back);
    cJSON_Delete(j);
    ota_package_rec_free(&p);
    assert_int_equal(package(",\"rxswin\":[]", &p), 0);
    assert_null(p.rxswin);
    ota_package_rec_free(&p);
    refused(",\"rxswin\":[\"R79-A\",\"R79-B\"]", "two RXSWINs of one regulation: R79-A and R79-B");
    refused(",\"rxswin\":[\"R79-A\",\"R79-A\"]", "duplicate");
    refused(",\"rxswin\":[\"STEER\"]", "package.rxswin: [0]: \"STEER\" is not an RXSWIN");
    refused(",\"rxswin\":\"R79-A\"", "package.rxswin: expected an array");
    char many[1024] = ",\"rxswin\":[";
    for (int i = 1; i <= OTA_RXSWIN_MAX + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"R%d-X\"", i > 1 ? "," : "",
                 i);
    strcat(many, "]");
    refused(many, "package.rxswin: expected 0..16 items, not 17");
}

static void test_rxswin_merge(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(ota_rxswin_merge("R10-EMC.1,R79-STEER.1", "R13-BRK.5,R79-STEER.2", &out), 0);
    assert_string_equal(out, "R10-EMC.1,R13-BRK.5,R79-STEER.2");
    free(out);
    assert_int_equal(ota_rxswin_merge(NULL, "R79-STEER.2", &out), 0);
    assert_string_equal(out, "R79-STEER.2");
    free(out);
    assert_int_equal(ota_rxswin_merge("R79-STEER.1", NULL, &out), 0);
    assert_string_equal(out, "R79-STEER.1");
    free(out);
    assert_int_equal(ota_rxswin_merge(NULL, NULL, &out), 0);
    assert_null(out);
}

static void test_vehicle_rxswin(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"vin\":\"LSVTA000000000001\",\"model\":\"M\",\"series\":\"S\","
                           "\"status\":\"sold\",\"usage\":\"retail\","
                           "\"rxswin\":[\"R79-B\",\"R10-A\"]}");
    ota_vehicle_rec v, back;
    assert_int_equal(ota_json_vehicle(j, "vehicles[0]", &v, err, sizeof err), 0);
    assert_string_equal(v.rxswin, "R10-A,R79-B");
    cJSON *o = ota_json_from_vehicle(&v);
    assert_int_equal(ota_json_vehicle(o, NULL, &back, err, sizeof err), 0);
    assert_string_equal(back.rxswin, "R10-A,R79-B");
    ota_vehicle_rec_free(&back);
    ota_vehicle_rec_free(&v);
    cJSON_Delete(o);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "rxswin", cJSON_CreateString("R10-A"));
    assert_int_equal(ota_json_vehicle(j, "vehicles[0]", &v, err, sizeof err), -1);
    assert_string_equal(err, "vehicles[0].rxswin: expected an array");
    cJSON_Delete(j);
}

static void test_texts_per_language(void **state)
{
    (void)state;
    ota_package_rec p;
    assert_int_equal(package(",\"language\":\"en\",\"prompt\":{\"en\":\"Park the car\","
                             "\"de-AT\":\"Bitte parken\"},\"result_info\":\"done\"",
                             &p),
                     0);
    assert_string_equal(p.prompt, "Park the car"); /* the default language's */
    assert_int_equal(p.n_prompts, 2);
    assert_string_equal(p.prompts[0].lang, "de-AT"); /* sorted by tag */
    assert_string_equal(p.prompts[1].text, "Park the car");
    assert_string_equal(p.result_info, "done");
    assert_int_equal(p.n_result_infos, 0);
    cJSON *j = ota_json_from_package(&p);
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "prompt")));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "result_info")));
    ota_package_rec back;
    assert_int_equal(ota_json_package(j, NULL, &back, err, sizeof err), 0);
    assert_string_equal(back.language, "en");
    assert_int_equal(back.n_prompts, 2);
    assert_string_equal(back.prompts[0].text, "Bitte parken");
    ota_package_rec_free(&back);
    cJSON_Delete(j);
    ota_package_rec_free(&p);
    refused(",\"prompt\":{\"en\":\"x\"}", "package.language: missing (the default language");
    refused(",\"language\":\"fr\",\"prompt\":{\"en\":\"x\"}",
            "package.prompt: no text in the default language fr");
    refused(",\"language\":\"en\",\"prompt\":{\"en\":\"x\",\"english\":\"y\"}",
            "package.prompt.english: not a language tag");
    refused(",\"language\":\"en\",\"prompt\":{}",
            "package.prompt: expected 1..16 languages, not 0");
    refused(",\"language\":\"en\",\"prompt\":\"x\"",
            "package.language: only with prompt or result_info given per language");
    refused(",\"language\":\"e1\",\"prompt\":{\"en\":\"x\"}", "package.language: \"e1\" is not");
    refused(",\"language\":\"en\",\"prompt\":{\"en\":5}", "package.prompt.en: expected a string");
}

/* 16 languages at most; their texts together at most 4096 bytes. */
static void test_texts_bounds(void **state)
{
    (void)state;
    char extra[12000] = ",\"language\":\"aa\",\"prompt\":{";
    for (int i = 0; i < OTA_LANGS_MAX + 1; i++)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s\"a%c\":\"t\"",
                 i ? "," : "", 'a' + i);
    strcat(extra, "}");
    refused(extra, "package.prompt: expected 1..16 languages, not 17");
    char big[1500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(extra, sizeof extra,
             ",\"language\":\"en\",\"prompt\":{\"en\":\"%s\",\"de\":\"%s\",\"fr\":\"%s\"}", big,
             big, big);
    refused(extra, "package.prompt: the texts of all languages together are over 4096 bytes");
    ota_package_rec p;
    snprintf(extra, sizeof extra, ",\"language\":\"en\",\"prompt\":{\"en\":\"%s\",\"de\":\"%s\"}",
             big, big);
    assert_int_equal(package(extra, &p), 0);
    ota_package_rec_free(&p);
}

static void test_install_mode_default(void **state)
{
    (void)state;
    ota_package_rec p;
    assert_int_equal(package("", &p), 0);
    assert_false(p.has_install_mode);
    ota_package_rec_free(&p);
    assert_int_equal(package(",\"install_mode\":\"download_only\"", &p), 0);
    assert_true(p.has_install_mode);
    assert_int_equal(p.install_mode, OTA_INSTALL_DOWNLOAD_ONLY);
    cJSON *j = ota_json_from_package(&p);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "install_mode")->valuestring,
                        "download_only");
    cJSON_Delete(j);
    ota_package_rec_free(&p);
    refused(",\"install_mode\":\"time_forced\"",
            "package.install_mode: expected forced|soft|download_only");
}

static void test_rxswin_change_record(void **state)
{
    (void)state;
    ota_rxswin_change_rec r = {.task = "T000001",
                               .vin = "LSVTA000000000001",
                               .package = 3,
                               .before = NULL,
                               .after = "R79-STEER.2",
                               .at_ms = 1700000000000};
    cJSON *j = ota_json_from_rxswin_change(&r);
    char *text = cJSON_PrintUnformatted(j);
    assert_string_equal(text, "{\"task\":\"T000001\",\"vin\":\"LSVTA000000000001\",\"package\":3,"
                              "\"before\":[],\"after\":[\"R79-STEER.2\"],\"at\":1700000000000}");
    ota_rxswin_change_rec back;
    assert_int_equal(ota_json_rxswin_change(j, NULL, &back, err, sizeof err), 0);
    assert_null(back.before);
    assert_string_equal(back.after, "R79-STEER.2");
    assert_int_equal(back.at_ms, 1700000000000);
    ota_rxswin_change_rec_free(&back);
    free(text);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "vin");
    assert_int_equal(ota_json_rxswin_change(j, NULL, &back, err, sizeof err), -1);
    assert_string_equal(err, "vin: missing");
    cJSON_Delete(j);
}

static void test_lang_tags(void **state)
{
    (void)state;
    const char *good[] = {"en", "deu", "de-AT", "zh-Hans-CN", "sr-Latn", "en-123"};
    const char *bad[] = {NULL, "", "e", "engl", "en-", "en_US", "-en", "en-toolongsubtag", "1en"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ota_lang_tag_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ota_lang_tag_valid(bad[i]))
            fail_msg("%s taken", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rxswin_format),
        cmocka_unit_test(test_rxswin_lists),
        cmocka_unit_test(test_rxswin_merge),
        cmocka_unit_test(test_vehicle_rxswin),
        cmocka_unit_test(test_texts_per_language),
        cmocka_unit_test(test_texts_bounds),
        cmocka_unit_test(test_install_mode_default),
        cmocka_unit_test(test_rxswin_change_record),
        cmocka_unit_test(test_lang_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
