/*
 * cbor_out.c — CBOR written straight into a growing buffer (cbor_out.h): the heads are
 * libcbor's encoders (cbor/encoding.h), which write into a caller's buffer; this file only
 * grows the buffer and copies the strings' bytes.
 */
#include "cbor_out.h"

#include <cbor.h>

#include <stdlib.h>
#include <string.h>

void ota_cbor_out_init(ota_cbor_out *o, size_t cap)
{
    *o = (ota_cbor_out){.buf = malloc(cap), .cap = cap};
    o->failed = o->buf == NULL;
}

/* Room for n more bytes: a pointer to them, or NULL (o failed). */
static uint8_t *room(ota_cbor_out *o, size_t n)
{
    if (o->failed)
        return NULL;
    if (o->cap - o->len < n) {
        size_t cap = 2 * o->cap + n;
        uint8_t *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = true;
            return NULL;
        }
        o->buf = b;
        o->cap = cap;
    }
    uint8_t *at = o->buf + o->len;
    o->len += n;
    return at;
}

/* libcbor's encoder of a head of major type major (its shortest form), into p (9 bytes). */
static size_t encode_head(unsigned major, uint64_t arg, unsigned char *p)
{
    switch (major) {
    case 0:
        return cbor_encode_uint(arg, p, 9);
    case 1:
        return cbor_encode_negint(arg, p, 9);
    case 2:
        return cbor_encode_bytestring_start((size_t)arg, p, 9);
    case 3:
        return cbor_encode_string_start((size_t)arg, p, 9);
    case 4:
        return cbor_encode_array_start((size_t)arg, p, 9);
    case 5:
        return cbor_encode_map_start((size_t)arg, p, 9);
    default:
        return cbor_encode_tag(arg, p, 9);
    }
}

void ota_cbor_out_head(ota_cbor_out *o, unsigned major, uint64_t arg)
{
    unsigned char head[9];
    size_t n = encode_head(major, arg, head);
    uint8_t *p = room(o, n);
    if (p != NULL)
        memcpy(p, head, n);
}

static void put_raw(ota_cbor_out *o, const void *b, size_t n)
{
    uint8_t *p = n > 0 ? room(o, n) : NULL;
    if (p != NULL)
        memcpy(p, b, n);
}

void ota_cbor_out_text(ota_cbor_out *o, const char *s, size_t n)
{
    ota_cbor_out_head(o, 3, n);
    put_raw(o, s, n);
}

void ota_cbor_out_cstr(ota_cbor_out *o, const char *s)
{
    s = s ? s : "";
    ota_cbor_out_text(o, s, strlen(s));
}

void ota_cbor_out_bytes(ota_cbor_out *o, const void *b, size_t n)
{
    ota_cbor_out_head(o, 2, n);
    put_raw(o, b, n);
}

void ota_cbor_out_bool(ota_cbor_out *o, bool v)
{
    uint8_t *p = room(o, 1);
    if (p != NULL)
        cbor_encode_bool(v, p, 1);
}

uint8_t *ota_cbor_out_take(ota_cbor_out *o, size_t *len)
{
    if (o->failed) {
        free(o->buf);
        *o = (ota_cbor_out){.failed = true};
        return NULL;
    }
    *len = o->len;
    uint8_t *b = o->buf;
    *o = (ota_cbor_out){0};
    return b;
}
