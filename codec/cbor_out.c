/*
 * cbor_out.c — CBOR written straight into a growing buffer (cbor_out.h).
 */
#include "cbor_out.h"

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

void ota_cbor_out_head(ota_cbor_out *o, unsigned major, uint64_t arg)
{
    unsigned extra = arg < 24            ? 0
                     : arg <= UINT8_MAX  ? 1
                     : arg <= UINT16_MAX ? 2
                     : arg <= UINT32_MAX ? 4
                                         : 8;
    uint8_t *p = room(o, 1 + extra);
    if (p == NULL)
        return;
    static const uint8_t ai[9] = {0, 24, 25, 0, 26, 0, 0, 0, 27};
    p[0] = (uint8_t)(major << 5 | (extra ? ai[extra] : arg));
    for (unsigned i = 0; i < extra; i++)
        p[1 + i] = (uint8_t)(arg >> (8 * (extra - 1 - i)));
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
        *p = v ? 0xF5 : 0xF4;
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
