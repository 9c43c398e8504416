/*
 * encode.c — CBOR encoders for messages sent to vehicles: the error reply
 * {err, msg, seq?} on ota/v1/{vin}/error, and file/data's block header and error.
 *
 * An error reply is small and bounded (the message is at most OTA_ERRMSG_MAX bytes), so it is
 * written with libcbor's streaming encoders into a stack buffer and copied into one exact
 * malloc()ed buffer: no item tree, one allocation.
 */
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "ota_codec.h"

/* Output cursor; ok turns false (and stays false) when the buffer is too small. */
typedef struct {
    uint8_t *buf;
    size_t size;
    size_t pos;
    bool ok;
} cbor_out;

static void put_head(cbor_out *o, size_t (*enc)(size_t, unsigned char *, size_t), size_t n)
{
    size_t w = o->ok ? enc(n, o->buf + o->pos, o->size - o->pos) : 0;
    o->ok = w > 0;
    o->pos += w;
}

static void put_uint(cbor_out *o, uint64_t v)
{
    size_t w = o->ok ? cbor_encode_uint(v, o->buf + o->pos, o->size - o->pos) : 0;
    o->ok = w > 0;
    o->pos += w;
}

static void put_text(cbor_out *o, const char *s, size_t n)
{
    put_head(o, cbor_encode_string_start, n);
    if (o->ok && o->size - o->pos < n)
        o->ok = false;
    if (o->ok) {
        memcpy(o->buf + o->pos, s, n);
        o->pos += n;
    }
}

static void put_cstr(cbor_out *o, const char *s)
{
    put_text(o, s, strlen(s));
}

/* One exact malloc()ed copy of what o holds; NULL when o overflowed or out of memory. */
static uint8_t *out_dup(const cbor_out *o, size_t *len)
{
    uint8_t *out = o->ok ? malloc(o->pos) : NULL; /* !ok cannot happen: see the callers */
    if (out == NULL)
        return NULL;
    memcpy(out, o->buf, o->pos);
    *len = o->pos;
    return out;
}

uint8_t *ota_codec_encode_report_error(const ota_error *e, int64_t seq, const char *epoch,
                                       int64_t last_seq, const char *last_epoch, size_t *len)
{
    uint8_t tmp[96 + OTA_ERRMSG_MAX + 2 * OTA_EPOCH_MAX];
    cbor_out o = {.buf = tmp, .size = sizeof tmp, .ok = true};
    put_head(&o, cbor_encode_map_start,
             2 + (seq >= 0) + (epoch != NULL) + (last_seq >= 0) + (last_epoch != NULL));
    put_cstr(&o, "err");
    put_cstr(&o, ota_err_name(e->code));
    put_cstr(&o, "msg");
    put_text(&o, e->msg, strnlen(e->msg, sizeof e->msg));
    if (seq >= 0) {
        put_cstr(&o, "seq");
        put_uint(&o, (uint64_t)seq);
    }
    if (epoch != NULL) {
        put_cstr(&o, "epoch");
        put_text(&o, epoch, strnlen(epoch, OTA_EPOCH_MAX));
    }
    if (last_seq >= 0) {
        put_cstr(&o, "last_seq");
        put_uint(&o, (uint64_t)last_seq);
    }
    if (last_epoch != NULL) {
        put_cstr(&o, "last_epoch");
        put_text(&o, last_epoch, strnlen(last_epoch, OTA_EPOCH_MAX));
    }
    return out_dup(&o, len); /* tmp holds the largest reply */
}

uint8_t *ota_codec_encode_error(const ota_error *e, int64_t seq, size_t *len)
{
    return ota_codec_encode_report_error(e, seq, NULL, -1, NULL, len);
}

/* ---- file/data (SPEC §3) ---- */

size_t ota_codec_file_data_head(const char *file, uint64_t i, size_t data_len, uint8_t *out)
{
    cbor_out o = {.buf = out, .size = OTA_FILE_DATA_HEAD_MAX, .ok = true};
    put_head(&o, cbor_encode_map_start, 3);
    put_cstr(&o, "file");
    put_cstr(&o, file);
    put_cstr(&o, "i");
    put_uint(&o, i);
    put_cstr(&o, "data");
    put_head(&o, cbor_encode_bytestring_start, data_len);
    return o.ok ? o.pos : 0; /* 0 cannot happen: file is at most 64 characters */
}

uint8_t *ota_codec_encode_file_error(const char *file, const ota_error *e, size_t *len)
{
    uint8_t tmp[96 + OTA_ERRMSG_MAX];
    cbor_out o = {.buf = tmp, .size = sizeof tmp, .ok = true};
    put_head(&o, cbor_encode_map_start, 3);
    put_cstr(&o, "file");
    put_text(&o, file, strnlen(file, 64));
    put_cstr(&o, "err");
    put_cstr(&o, ota_err_name(e->code));
    put_cstr(&o, "msg");
    put_text(&o, e->msg, strnlen(e->msg, sizeof e->msg));
    return out_dup(&o, len);
}
