/*
 * fuzz_shadow.c — fuzz target: shadow/update and shadow/get payloads
 * (ota_codec_decode_shadow_update, ota_codec_decode_shadow_get). The first input byte
 * picks the decoder, the rest is the payload. Checks: a decoded update keeps its limits
 * and has its ECUs sorted by name without repeats; a refusal has a code and message.
 */
#include "fuzz.h"
#include "ota_codec.h"

#include <string.h>

static void check_word(const char *s, int required)
{
    if (!s) {
        FUZZ_CHECK(!required);
        return;
    }
    size_t n = strlen(s);
    FUZZ_CHECK(n >= 1 && n <= OTA_ID_MAX);
}

static void check_update(const ota_shadow_update *u)
{
    check_word(u->fw, 1);
    check_word(u->state, 1);
    check_word(u->config_word, 0);
    check_word(u->usage, 0);
    check_word(u->token, 0);
    FUZZ_CHECK(u->n_ecus <= OTA_SHADOW_MAX_ECUS);
    for (size_t i = 0; i < u->n_ecus; i++) {
        check_word(u->ecus[i].ecu, 1);
        check_word(u->ecus[i].version, 1);
        FUZZ_CHECK(i == 0 || strcmp(u->ecus[i - 1].ecu, u->ecus[i].ecu) < 0);
    }
}

static void check_error(const ota_error *e)
{
    FUZZ_CHECK(e->code != OTA_OK && e->code <= OTA_E_INTERNAL);
    FUZZ_CHECK(e->msg[0] != '\0' && strlen(e->msg) < OTA_ERRMSG_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    ota_error err;
    if (data[0] & 1) {
        ota_shadow_get g;
        if (ota_codec_decode_shadow_get(data + 1, size - 1, &g, &err) == 0) {
            FUZZ_CHECK(!g.has_token || (strlen(g.token) >= 1 && strlen(g.token) <= OTA_ID_MAX));
        } else {
            check_error(&err);
        }
        return 0;
    }
    ota_shadow_update u;
    if (ota_codec_decode_shadow_update(data + 1, size - 1, &u, &err) == 0) {
        FUZZ_CHECK(size - 1 <= OTA_SHADOW_MAX_PAYLOAD);
        check_update(&u);
        ota_shadow_update_free(&u);
    } else {
        check_error(&err);
    }
    return 0;
}
