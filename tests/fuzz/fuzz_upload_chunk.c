/*
 * fuzz_upload_chunk.c — fuzz target: operator file-upload chunks on $CONTROL/ota/v1/file
 * (ota_codec_decode_chunk). Checks: a decoded chunk has a lowercase-hex SHA-256, a total in
 * 1..OTA_UPLOAD_FILE_MAX, data inside the payload and inside the file (offset + len <=
 * total, without overflow); a refusal has a code and message.
 */
#include "fuzz.h"
#include "ota_codec.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ota_upload_chunk c;
    ota_error err;
    if (ota_codec_decode_chunk(data, size, &c, &err) != 0) {
        FUZZ_CHECK(err.code != OTA_OK && err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(strlen(c.sha256) == 64 && strspn(c.sha256, "0123456789abcdef") == 64);
    FUZZ_CHECK(c.total >= 1 && c.total <= OTA_UPLOAD_FILE_MAX);
    FUZZ_CHECK(c.len <= OTA_UPLOAD_CHUNK_MAX && c.offset <= c.total && c.len <= c.total - c.offset);
    FUZZ_CHECK(c.len == 0 || (c.data >= data && c.data + c.len <= data + size));
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < c.len; i++) {
        sum ^= c.data[i]; /* ASan: the data is readable */
    }
    (void)sum;
    return 0;
}
