/*
 * fuzz_target_json.c — fuzz target: the target queries and groups of issue 16 as the
 * operator sends them (codec/target_json.c, group_json.c): the strict JSON parse, then
 * setGroup's group, previewTarget's target and createTask's task.target. Checks: every
 * error text is filled; a parsed target or group emits JSON that parses back to the same
 * JSON (and a copy emits the same); a stored group definition parses back.
 */
#include "fuzz.h"
#include "ota_catalog_json.h"
#include "ota_codec.h"
#include "ota_target.h"

#include <stdlib.h>

#define ERRLEN 256

static void target(const cJSON *j, const char *path)
{
    ota_target t, back, copy;
    char err[ERRLEN] = "";
    if (j == NULL)
        return;
    if (ota_json_target(j, path, &t, err, ERRLEN) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    cJSON *out = ota_json_from_target(&t);
    FUZZ_CHECK(out);
    if (ota_json_target(out, path, &back, err, ERRLEN) != 0) {
        fprintf(stderr, "round trip refused: %s\n", err);
        FUZZ_CHECK(!"an emitted target does not parse back");
    }
    FUZZ_CHECK(ota_target_copy(&t, &copy) == 0);
    cJSON *out2 = ota_json_from_target(&back), *out3 = ota_json_from_target(&copy);
    FUZZ_CHECK(cJSON_Compare(out, out2, true) && cJSON_Compare(out, out3, true));
    cJSON_Delete(out);
    cJSON_Delete(out2);
    cJSON_Delete(out3);
    ota_target_free(&back);
    ota_target_free(&copy);
    ota_target_free(&t);
}

static void group(const cJSON *j)
{
    ota_group_rec g, back;
    char err[ERRLEN] = "";
    if (j == NULL)
        return;
    if (ota_json_group(j, "group", false, &g, err, ERRLEN) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    cJSON *def = ota_json_from_group(&g);
    FUZZ_CHECK(def);
    if (ota_json_group(def, NULL, true, &back, err, ERRLEN) != 0) {
        fprintf(stderr, "round trip refused: %s\n", err);
        FUZZ_CHECK(!"a stored group definition does not parse back");
    }
    FUZZ_CHECK(back.dynamic == g.dynamic && back.n_vins == 0);
    ota_group_rec_free(&back);
    cJSON_Delete(def);
    ota_group_rec_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *req = ota_json_parse_exact(data, size);
    if (!req) {
        return 0;
    }
    const cJSON *cmd;
    cJSON_ArrayForEach(cmd, cJSON_GetObjectItemCaseSensitive(req, "commands"))
    {
        group(cJSON_GetObjectItemCaseSensitive(cmd, "group"));
        target(cJSON_GetObjectItemCaseSensitive(cmd, "target"), "target");
        const cJSON *task = cJSON_GetObjectItemCaseSensitive(cmd, "task");
        target(cJSON_GetObjectItemCaseSensitive(task, "target"), "task.target");
    }
    cJSON_Delete(req);
    return 0;
}
