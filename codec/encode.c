/*
 * encode.c — CBOR encoders for messages sent to vehicles: the error reply
 * {err, msg, seq?} on ota/v1/{vin}/error.
 *
 * The reply is small and bounded (the message is at most OTA_ERRMSG_MAX bytes), so it is
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

uint8_t *ota_codec_encode_error(const ota_error *e, int64_t seq, size_t *len)
{
    uint8_t tmp[64 + OTA_ERRMSG_MAX];
    cbor_out o = {.buf = tmp, .size = sizeof tmp, .ok = true};
    put_head(&o, cbor_encode_map_start, seq >= 0 ? 3 : 2);
    put_cstr(&o, "err");
    put_cstr(&o, ota_err_name(e->code));
    put_cstr(&o, "msg");
    put_text(&o, e->msg, strnlen(e->msg, sizeof e->msg));
    if (seq >= 0) {
        put_cstr(&o, "seq");
        put_uint(&o, (uint64_t)seq);
    }
    if (!o.ok)
        return NULL; /* cannot happen: tmp holds the largest reply */
    uint8_t *out = malloc(o.pos);
    if (out == NULL)
        return NULL;
    memcpy(out, tmp, o.pos);
    *len = o.pos;
    return out;
}
