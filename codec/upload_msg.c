/*
 * upload_msg.c — decoder of the operator's file-upload chunks ($CONTROL/ota/v1/file, CBOR
 * {sha256, offset, total, data}; docs/operator-api.md), on the shared pull reader.
 */
#include "cbor_util.h"
#include "ota_codec.h"

#include <string.h>

/* The fields of the chunk map, each checked. */
static int check_fields(const ota_cbor_item *v, uint32_t found, ota_upload_chunk *out,
                        ota_error *err)
{
#define VAL(i) ((found >> (i)) & 1u ? &v[i] : NULL)
    if (ota_cbor_want_sha256(VAL(0), "", "sha256", out->sha256, err) < 0 ||
        ota_cbor_want_uint(VAL(1), "", "offset", OTA_CBOR_REQUIRED, 0, OTA_UPLOAD_FILE_MAX,
                           &out->offset, err) < 0 ||
        ota_cbor_want_uint(VAL(2), "", "total", OTA_CBOR_REQUIRED, 1, OTA_UPLOAD_FILE_MAX,
                           &out->total, err) < 0 ||
        ota_cbor_want_bytes(VAL(3), "", "data", OTA_CBOR_REQUIRED, 0, OTA_UPLOAD_CHUNK_MAX,
                            &out->data, &out->len, err) < 0) {
        return -1;
    }
#undef VAL
    if (out->offset + out->len > out->total) {
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "offset",
                                    "offset + data (%llu) past total (%llu)",
                                    (unsigned long long)(out->offset + out->len),
                                    (unsigned long long)out->total);
    }
    return 0;
}

int ota_codec_decode_chunk(const void *buf, size_t len, ota_upload_chunk *out, ota_error *err)
{
    static const char *const keys[] = {"sha256", "offset", "total", "data"};
    memset(out, 0, sizeof(*out));
    if (ota_cbor_check_size(len, OTA_UPLOAD_CHUNK_MAX + 1024, "chunk", err) != 0) {
        return -1;
    }
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "chunk", err);
    ota_cbor_item root, values[4];
    uint32_t found = 0;
    int rc = ota_cbor_next(&r, &root);
    if (rc == 0) {
        rc = ota_cbor_map_scan(&r, &root, "", "", keys, 4, values, &found, err);
    }
    if (rc == 0) {
        rc = check_fields(values, found, out, err);
    }
    if (ota_cbor_reader_end(&r) < 0) { /* a CBOR error replaces any other */
        rc = -1;
    }
    return rc;
}
