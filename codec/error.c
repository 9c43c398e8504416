/*
 * error.c — the codec's error codes and messages, the one error-text formatter of every
 * layer (ota_errf.h), the shared validators for VINs and vehicle-supplied text (strict
 * UTF-8, no control characters) and the hot paths' decimal formatter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ota_codec.h"
#include "ota_errf.h"

const char *ota_err_name(ota_err_code code)
{
    switch (code) {
    case OTA_OK:
        return "OK";
    case OTA_E_BAD_CBOR:
        return "E_BAD_CBOR";
    case OTA_E_BAD_REQUEST:
        return "E_BAD_REQUEST";
    case OTA_E_TOO_LARGE:
        return "E_TOO_LARGE";
    case OTA_E_UNAUTHORIZED:
        return "E_UNAUTHORIZED";
    case OTA_E_RATE_LIMITED:
        return "E_RATE_LIMITED";
    case OTA_E_NOT_FOUND:
        return "E_NOT_FOUND";
    case OTA_E_BLOCK_SIZE:
        return "E_BLOCK_SIZE";
    case OTA_E_OFFSET:
        return "E_OFFSET";
    case OTA_E_BLOCK_COUNT:
        return "E_BLOCK_COUNT";
    case OTA_E_INTERNAL:
        return "E_INTERNAL";
    case OTA_E_REPLAY:
        return "E_REPLAY";
    case OTA_E_UNKNOWN_VIN:
        return "E_UNKNOWN_VIN";
    }
    return "E_INTERNAL";
}

/* Length of the UTF-8 sequence a lead byte starts (0 for a continuation byte). */
static size_t utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c < 0xC0)
        return 0;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0)
        return 3;
    return 4;
}

/* Cuts a truncated message back so it does not end inside a multi-byte character. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && n - i < 4 && utf8_seq_len((unsigned char)s[i - 1]) == 0)
        i--;
    if (i > 0 && i - 1 + utf8_seq_len((unsigned char)s[i - 1]) > n)
        s[i - 1] = '\0';
}

int ota_verrf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (buf == NULL || cap == 0)
        return -1;
    int n = vsnprintf(buf, cap, fmt, ap);
    if (n < 0)
        buf[0] = '\0';
    else if ((size_t)n >= cap)
        trim_partial_utf8(buf);
    return -1;
}

int ota_errf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(buf, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int ota_verrf_append(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (buf == NULL || cap == 0)
        return -1;
    size_t len = strnlen(buf, cap);
    if (len >= cap)
        return -1; /* not a terminated text: leave it */
    return ota_verrf(buf + len, cap - len, fmt, ap);
}

int ota_errf_append(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(buf, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int ota_error_set(ota_error *e, ota_err_code code, const char *fmt, ...)
{
    if (e == NULL)
        return -1;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

size_t ota_dec_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* The characters of a VIN: 0-9 and A-Z but I, O and Q. A table, not range tests: every
 * ACL check and every request validates one or two VINs (the identity's, the client id's),
 * and the table costs a third of the tests' instructions. */
static const bool vin_char[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['P'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

bool ota_vin_valid(const char *s)
{
    if (s == NULL)
        return false;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < OTA_VIN_LEN; i++)
        if (!vin_char[u[i]])
            return false; /* also stops at the terminating NUL of a short string */
    return s[OTA_VIN_LEN] == '\0';
}

/* Allowed range of the second byte after a multi-byte lead (Unicode Table 3-7): this
 * rejects overlong forms, UTF-16 surrogates (U+D800..DFFF) and code points > U+10FFFF. */
static bool utf8_second_ok(unsigned char lead, unsigned char c)
{
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead == 0xE0)
        lo = 0xA0;
    else if (lead == 0xED)
        hi = 0x9F;
    else if (lead == 0xF0)
        lo = 0x90;
    else if (lead == 0xF4)
        hi = 0x8F;
    return c >= lo && c <= hi;
}

/* Validates one multi-byte sequence at s[0..n); returns its length, or 0 if invalid. */
static size_t utf8_multi(const unsigned char *s, size_t n)
{
    unsigned char lead = s[0];
    if (lead < 0xC2 || lead > 0xF4)
        return 0; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
    size_t len = utf8_seq_len(lead);
    if (len > n || !utf8_second_ok(lead, s[1]))
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

bool ota_text_valid(const char *s, size_t n)
{
    if (s == NULL)
        return n == 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] >= 0x20 && p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] < 0x20)
            return false; /* NUL and the other C0 controls */
        size_t len = utf8_multi(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}
