/*
 * fuzz_operator_json.c — fuzz target: operator requests on $CONTROL/ota/v1, as control.c
 * reads them: the strict JSON parse (ota_json_parse_exact), then each command's record
 * parser of codec/catalog_json.c by its "command" name (upsertVehicles, setModel,
 * addPackage, setStrategy, createTask, setTaskTypeRules, the RXSWIN change document
 * ("rxswinChange", issue 17), and the field helpers the other
 * commands use), plus the JSON-to-CBOR conversion. Checks: every error text is filled; a
 * record that parsed emits JSON that parses back (ota_json_X(ota_json_from_X(r)) holds).
 */
#include "fuzz.h"
#include "ota_catalog_json.h"
#include "ota_codec.h"

#include <string.h>

#define ERRLEN 256

/* Parses j with parse; on success emits the record and parses that again. */
#define ROUND_TRIP(type, parse, emit, reparse, freefn, j, path)                                    \
    do {                                                                                           \
        type r_, back_;                                                                            \
        char err_[ERRLEN] = "";                                                                    \
        if (parse(j, path, &r_, err_, ERRLEN) != 0) {                                              \
            FUZZ_CHECK(err_[0] != '\0');                                                           \
            break;                                                                                 \
        }                                                                                          \
        cJSON *out_ = emit(&r_);                                                                   \
        FUZZ_CHECK(out_);                                                                          \
        if (reparse(out_, path, &back_, err_, ERRLEN) != 0) {                                      \
            fprintf(stderr, "round trip refused: %s\n", err_);                                     \
            FUZZ_CHECK(!"an emitted record does not parse back");                                  \
        }                                                                                          \
        freefn(&back_);                                                                            \
        cJSON_Delete(out_);                                                                        \
        freefn(&r_);                                                                               \
    } while (0)

static void task(const cJSON *j)
{
    ota_task_rec r, back;
    char err[ERRLEN] = "";
    if (ota_json_task_request(j, "task", &r, err, ERRLEN) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    r.id = strdup("T-fuzz"); /* the stored form needs an id */
    cJSON *out = ota_json_from_task(&r);
    FUZZ_CHECK(out);
    if (ota_json_task(out, "task", &back, err, ERRLEN) != 0) {
        fprintf(stderr, "round trip refused: %s\n", err);
        FUZZ_CHECK(!"an emitted task does not parse back");
    }
    FUZZ_CHECK(back.n_vins == r.n_vins);
    ota_task_rec_free(&back);
    cJSON_Delete(out);
    ota_task_rec_free(&r);
}

static void vehicles(const cJSON *cmd)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cmd, "vehicles"))
    {
        ROUND_TRIP(ota_vehicle_rec, ota_json_vehicle, ota_json_from_vehicle, ota_json_vehicle,
                   ota_vehicle_rec_free, v, "vehicles[0]");
    }
}

/* The helpers other commands read their fields with. */
static void fields(const cJSON *cmd)
{
    char err[ERRLEN];
    const char *s = NULL;
    uint64_t u = 0;
    bool b = false;
    char **list = NULL;
    size_t n = 0;
    char sha[OTA_SHA256_HEX + 1];
    ota_json_get_word(cmd, "", "id", false, &s, err, ERRLEN);
    ota_json_get_vin(cmd, "", "vin", false, &s, err, ERRLEN);
    ota_json_get_text(cmd, "", "prompt", false, &s, err, ERRLEN);
    ota_json_get_uint(cmd, "", "limit", false, 1, 1000, &u, err, ERRLEN);
    ota_json_get_bool(cmd, "", "sold", false, false, &b, err, ERRLEN);
    ota_json_get_sha256(cmd, "", "sha256", sha, err, ERRLEN);
    if (ota_json_get_string_array(cmd, "", "vins", false, 0, 1000, OTA_JSON_VINS | OTA_JSON_UNIQUE,
                                  &list, &n, err, ERRLEN) == 0) {
        ota_json_strings_free(list, n);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
}

static void command(const cJSON *cmd)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cmd, "command");
    const char *c = cJSON_IsString(name) ? name->valuestring : "";
    if (strcmp(c, "upsertVehicles") == 0) {
        vehicles(cmd);
    } else if (strcmp(c, "setModel") == 0) {
        ROUND_TRIP(ota_model_rec, ota_json_model, ota_json_from_model, ota_json_model,
                   ota_model_rec_free, cmd, "");
    } else if (strcmp(c, "addPackage") == 0) {
        ROUND_TRIP(ota_package_rec, ota_json_package_request, ota_json_from_package,
                   ota_json_package, ota_package_rec_free,
                   cJSON_GetObjectItemCaseSensitive(cmd, "package"), "package");
    } else if (strcmp(c, "setStrategy") == 0) {
        ROUND_TRIP(ota_strategy_rec, ota_json_strategy, ota_json_from_strategy, ota_json_strategy,
                   ota_strategy_rec_free, cJSON_GetObjectItemCaseSensitive(cmd, "strategy"),
                   "strategy");
    } else if (strcmp(c, "createTask") == 0) {
        task(cJSON_GetObjectItemCaseSensitive(cmd, "task"));
    } else if (strcmp(c, "rxswinChange") == 0) { /* the OTA_DOC_RXSWIN document (issue 17) */
        ROUND_TRIP(ota_rxswin_change_rec, ota_json_rxswin_change, ota_json_from_rxswin_change,
                   ota_json_rxswin_change, ota_rxswin_change_rec_free,
                   cJSON_GetObjectItemCaseSensitive(cmd, "change"), "change");
    } else if (strcmp(c, "setTaskTypeRules") == 0) {
        ROUND_TRIP(ota_task_type_rules, ota_json_task_type_rules, ota_json_from_task_type_rules,
                   ota_json_task_type_rules, ota_task_type_rules_free, cmd, "");
    } else {
        fields(cmd);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *req = ota_json_parse_exact(data, size);
    if (!req) {
        return 0;
    }
    size_t len = 0;
    free(ota_codec_json_to_cbor(req, &len));
    const cJSON *cmd;
    cJSON_ArrayForEach(cmd, cJSON_GetObjectItemCaseSensitive(req, "commands"))
    {
        command(cmd);
    }
    cJSON_Delete(req);
    return 0;
}
