/*
 * fuzz_file_get.c — fuzz target: file/get payloads (ota_codec_decode_file_get). Checks: a
 * decoded request names a 64-hex file, a block size and count in range, and selects at
 * least one block, none at n or above; a refusal has a code and a message.
 */
#include "fuzz.h"
#include "ota_codec.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ota_file_get g;
    ota_error err;
    if (ota_codec_decode_file_get(data, size, &g, &err) == 0) {
        FUZZ_CHECK(strlen(g.file) == 64 && strspn(g.file, "0123456789abcdef") == 64);
        FUZZ_CHECK(g.bs >= OTA_FILE_BS_MIN && g.bs <= OTA_FILE_BS_MAX);
        FUZZ_CHECK(g.n >= 1 && g.n <= OTA_FILE_N_MAX);
        FUZZ_CHECK(g.blocks != 0 && (g.n == 64 || (g.blocks >> g.n) == 0));
    } else {
        FUZZ_CHECK(err.code != OTA_OK && err.code <= OTA_E_INTERNAL);
        FUZZ_CHECK(err.msg[0] != '\0' && strlen(err.msg) < OTA_ERRMSG_MAX);
    }
    return 0;
}
