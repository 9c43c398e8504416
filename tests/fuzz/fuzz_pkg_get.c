/*
 * fuzz_pkg_get.c — fuzz target: pkg/get payloads (ota_codec_decode_pkg_get). Checks: a
 * decoded request has its three texts within 1..OTA_ID_MAX; a refusal has a code and a
 * message.
 */
#include "fuzz.h"
#include "ota_pkg_codec.h"

#include <string.h>

static void check_text(const char *s)
{
    size_t n = strnlen(s, OTA_ID_MAX + 1);
    FUZZ_CHECK(n >= 1 && n <= OTA_ID_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ota_pkg_request r;
    ota_error err;
    if (ota_codec_decode_pkg_get(data, size, &r, &err) == 0) {
        check_text(r.task);
        check_text(r.cur);
        check_text(r.tgt);
    } else {
        FUZZ_CHECK(err.code != OTA_OK && err.code <= OTA_E_INTERNAL);
        FUZZ_CHECK(err.msg[0] != '\0' && strlen(err.msg) < OTA_ERRMSG_MAX);
    }
    return 0;
}
