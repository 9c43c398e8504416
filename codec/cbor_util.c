/*
 * cbor_util.c — strict field access over libcbor items (see cbor_util.h): load exactly one
 * item (guarding libcbor against absurd declared sizes), collect a map's known fields in
 * one pass, and check typed, range-checked values whose errors name the field's path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cbor_util.h"

/*
 * Pre-scan guarding cbor_load. libcbor 0.8 allocates and zeroes a definite array's handle
 * as soon as it reads the array's header, so a 5-byte payload declaring 2^27 entries costs
 * a gigabyte and seconds. In well-formed CBOR every entry is a distinct item of at least one
 * byte, so the entries declared by all containers add up to less than the payload length.
 * The streaming decoder walks the item headers without allocating; payloads whose declared
 * entries exceed their length are rejected before cbor_load sees them.
 */
static void scan_add(size_t *declared, size_t n)
{
    if (__builtin_add_overflow(*declared, n, declared))
        *declared = SIZE_MAX;
}

static void scan_array(void *ctx, size_t n)
{
    scan_add(ctx, n);
}

static void scan_map(void *ctx, size_t n)
{
    scan_add(ctx, n);
    scan_add(ctx, n); /* keys and values */
}

static bool declared_sizes_fit(const uint8_t *buf, size_t len)
{
    struct cbor_callbacks cb = cbor_empty_callbacks;
    cb.array_start = scan_array;
    cb.map_start = scan_map;
    size_t declared = 0;
    for (size_t pos = 0; pos < len;) {
        struct cbor_decoder_result r = cbor_stream_decode(buf + pos, len - pos, &cb, &declared);
        if (r.status != CBOR_DECODER_FINISHED)
            break; /* not well-formed: cbor_load reports it */
        pos += r.read;
        if (declared > len)
            return false;
    }
    return true;
}

cbor_item_t *ota_cbor_load(const void *buf, size_t len, const char *what, ota_error *err)
{
    if (!declared_sizes_fit(buf, len)) {
        ota_error_set(err, OTA_E_BAD_CBOR, "%s: truncated CBOR (declared sizes exceed payload)",
                      what);
        return NULL;
    }
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(buf, len, &res);
    switch (res.error.code) {
    case CBOR_ERR_NONE:
        break;
    case CBOR_ERR_NODATA:
        ota_error_set(err, OTA_E_BAD_CBOR, "%s: empty payload", what);
        return NULL;
    case CBOR_ERR_NOTENOUGHDATA:
        ota_error_set(err, OTA_E_BAD_CBOR, "%s: truncated CBOR", what);
        return NULL;
    case CBOR_ERR_MEMERROR:
        /* libcbor reports nesting deeper than its stack (2048) and absurd declared
         * container sizes this way; real out-of-memory is rare for bounded payloads. */
        ota_error_set(err, OTA_E_TOO_LARGE, "%s: CBOR too deeply nested or too large", what);
        return NULL;
    case CBOR_ERR_SYNTAXERROR:
        /* libcbor validates UTF-8 strictly while loading, so a text string that is not
         * UTF-8 ends here, before any field path is known. */
        ota_error_set(err, OTA_E_BAD_CBOR,
                      "%s: invalid CBOR (text not valid UTF-8, or misplaced break) before "
                      "byte %zu",
                      what, res.error.position);
        return NULL;
    default:
        ota_error_set(err, OTA_E_BAD_CBOR, "%s: malformed CBOR at byte %zu", what,
                      res.error.position);
        return NULL;
    }
    if (item == NULL) {
        ota_error_set(err, OTA_E_INTERNAL, "%s: out of memory", what);
        return NULL;
    }
    if (res.read != len) {
        ota_error_set(err, OTA_E_BAD_CBOR, "%s: %zu trailing bytes after the CBOR item", what,
                      len - res.read);
        cbor_decref(&item);
        return NULL;
    }
    return item;
}

int ota_cbor_field_error(ota_error *err, ota_err_code code, const char *ctx, const char *key,
                         const char *fmt, ...)
{
    char detail[OTA_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (ctx[0] == '\0' && key[0] == '\0')
        return ota_error_set(err, code, "top level: %s", detail);
    const char *dot = ctx[0] != '\0' && key[0] != '\0' ? "." : "";
    return ota_error_set(err, code, "%s%s%s: %s", ctx, dot, key, detail);
}

void ota_cbor_index_path(char *buf, size_t size, const char *ctx, const char *key, size_t i)
{
    const char *dot = ctx[0] != '\0' && key[0] != '\0' ? "." : "";
    snprintf(buf, size, "%s%s%s[%zu]", ctx, dot, key, i);
}

/* True when the n bytes at h spell the NUL-terminated want (never reads past its NUL). */
static bool key_equals(const char *want, const unsigned char *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (want[i] == '\0' || (unsigned char)want[i] != h[i])
            return false;
    return want[n] == '\0';
}

int ota_cbor_map_fields(const cbor_item_t *item, const char *ctx, const char *key,
                        const char *const *keys, size_t n, const cbor_item_t **values,
                        ota_error *err)
{
    if (!cbor_isa_map(item))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected map");
    for (size_t j = 0; j < n; j++)
        values[j] = NULL;
    const struct cbor_pair *pairs = cbor_map_handle(item);
    size_t size = cbor_map_size(item);
    for (size_t i = 0; i < size; i++) {
        const cbor_item_t *k = pairs[i].key;
        if (!cbor_isa_string(k) || !cbor_string_is_definite(k))
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                        "map key %zu is not definite-length text", i);
        const unsigned char *h = cbor_string_handle(k);
        size_t len = cbor_string_length(k);
        for (size_t j = 0; j < n; j++) {
            if (!key_equals(keys[j], h, len))
                continue;
            if (values[j] != NULL)
                return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, keys[j], "duplicate key");
            values[j] = pairs[i].value;
            break;
        }
    }
    return 0;
}

const cbor_item_t *ota_cbor_map_find(const cbor_item_t *map, const char *key)
{
    const struct cbor_pair *pairs = cbor_map_handle(map);
    size_t size = cbor_map_size(map);
    for (size_t i = 0; i < size; i++) {
        const cbor_item_t *k = pairs[i].key;
        if (key_equals(key, cbor_string_handle(k), cbor_string_length(k)))
            return pairs[i].value;
    }
    return NULL;
}

int ota_cbor_present(const cbor_item_t *value, const char *ctx, const char *key, ota_cbor_need need,
                     ota_error *err)
{
    if (value != NULL)
        return 1;
    if (need == OTA_CBOR_REQUIRED)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "missing");
    return 0;
}

int ota_cbor_get_text(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      size_t min, size_t max, ota_cbor_text *out, ota_error *err)
{
    int rc = ota_cbor_present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (!cbor_isa_string(v) || !cbor_string_is_definite(v))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "expected definite-length text");
    size_t len = cbor_string_length(v);
    const char *ptr = (const char *)cbor_string_handle(v);
    if (len > max)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, key, "longer than %zu bytes", max);
    if (len < min)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "shorter than %zu bytes",
                                    min);
    if (!ota_text_valid(ptr, len))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "invalid UTF-8 or control character");
    out->ptr = ptr;
    out->len = len;
    return 1;
}

/* "expected unsigned integer", with the allowed range unless it is the whole of uint64. */
static int uint_error(ota_error *err, const char *ctx, const char *key, uint64_t min, uint64_t max)
{
    if (min == 0 && max == UINT64_MAX)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected unsigned integer");
    return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                "expected unsigned integer %llu..%llu", (unsigned long long)min,
                                (unsigned long long)max);
}

int ota_cbor_get_uint(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      uint64_t min, uint64_t max, uint64_t *out, ota_error *err)
{
    int rc = ota_cbor_present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (!cbor_isa_uint(v))
        return uint_error(err, ctx, key, min, max);
    uint64_t x = cbor_get_int(v);
    if (x < min || x > max)
        return uint_error(err, ctx, key, min, max);
    *out = x;
    return 1;
}

int ota_cbor_get_bool(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      bool *out, ota_error *err)
{
    int rc = ota_cbor_present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (!cbor_is_bool(v))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected true or false");
    *out = cbor_get_bool(v);
    return 1;
}

int ota_cbor_get_bytes(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, const uint8_t **ptr, size_t *len, ota_error *err)
{
    int rc = ota_cbor_present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (!cbor_isa_bytestring(v) || !cbor_bytestring_is_definite(v))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "expected definite-length bytes");
    size_t n = cbor_bytestring_length(v);
    if (n > max)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, key, "longer than %zu bytes", max);
    if (n < min)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "shorter than %zu bytes",
                                    min);
    *ptr = cbor_bytestring_handle(v);
    *len = n;
    return 1;
}

int ota_cbor_get_array(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, const cbor_item_t **out, ota_error *err)
{
    int rc = ota_cbor_present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (!cbor_isa_array(v))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected array");
    size_t n = cbor_array_size(v);
    if (n > max)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, key, "more than %zu entries", max);
    if (n < min && n == 0)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "empty");
    if (n < min)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "fewer than %zu entries",
                                    min);
    *out = v;
    return 1;
}
