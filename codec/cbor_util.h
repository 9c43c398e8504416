/*
 * cbor_util.h — strict field access over libcbor items, shared by the codec's decoders
 * (private to codec/).
 *
 * A decoder loads the payload with ota_cbor_load(), then for each map collects the values
 * of the keys it knows in one pass with ota_cbor_map_fields() (which also checks that all
 * keys are definite-length text, ignores unknown keys and rejects a known key given twice),
 * then checks each value with an ota_cbor_get_*() helper. Each helper enforces one CBOR
 * type and a limit, and on failure fills the ota_error with a message naming the field by
 * its path: the path of the containing map (ctx, e.g. "events[3]", "" for the top level)
 * joined to the key with a dot, e.g. "events[3].pct: expected unsigned integer 0..100".
 *
 * The helpers take the field's value as found by ota_cbor_map_fields() (NULL = absent) and
 * return 1 when it is present and valid, 0 when it is absent and optional, and -1 (with
 * *err set) otherwise. Text values are returned as (ptr, len) pointing into the item: not
 * NUL-terminated, valid only while the item lives.
 */
#ifndef OTA_CBOR_UTIL_H
#define OTA_CBOR_UTIL_H

#include <cbor.h>

#include "ota_codec.h"

typedef enum { OTA_CBOR_OPTIONAL = 0, OTA_CBOR_REQUIRED = 1 } ota_cbor_need;

typedef struct {
    const char *ptr; /* not NUL-terminated */
    size_t len;
} ota_cbor_text;

/* Decodes exactly one item filling buf (trailing bytes are E_BAD_CBOR). Returns the item
 * (release with cbor_decref) or NULL with *err set. what names the payload in messages. */
cbor_item_t *ota_cbor_load(const void *buf, size_t len, const char *what, ota_error *err);

/* Sets *err to "PATH: <fmt...>" where PATH joins ctx and key; returns -1. */
int ota_cbor_field_error(ota_error *err, ota_err_code code, const char *ctx, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes "ctx.key[i]" (or "key[i]" when ctx is empty) into buf, for element contexts. */
void ota_cbor_index_path(char *buf, size_t size, const char *ctx, const char *key, size_t i);

/* Checks that item (the value at ctx.key) is a map whose keys are all definite-length
 * text, and stores in values[i] the value of keys[i] (NULL when absent), i < n. Other keys
 * are ignored; one of keys[] occurring twice is E_BAD_REQUEST. */
int ota_cbor_map_fields(const cbor_item_t *item, const char *ctx, const char *key,
                        const char *const *keys, size_t n, const cbor_item_t **values,
                        ota_error *err);

/* Value of the text key in a map whose keys are known to be text, or NULL (first match). */
const cbor_item_t *ota_cbor_map_find(const cbor_item_t *map, const char *key);

/* Presence check shared by the getters: 1 present, 0 absent and optional, -1 missing. */
int ota_cbor_present(const cbor_item_t *value, const char *ctx, const char *key, ota_cbor_need need,
                     ota_error *err);

/* Definite-length text of min..max bytes, valid per ota_text_valid(). Shorter than min is
 * E_BAD_REQUEST, longer than max E_TOO_LARGE. */
int ota_cbor_get_text(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, size_t min, size_t max, ota_cbor_text *out,
                      ota_error *err);

/* Unsigned integer (CBOR major type 0) in min..max. */
int ota_cbor_get_uint(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, uint64_t min, uint64_t max, uint64_t *out,
                      ota_error *err);

/* CBOR true or false. */
int ota_cbor_get_bool(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, bool *out, ota_error *err);

/* Definite-length byte string of min..max bytes (longer than max: E_TOO_LARGE). */
int ota_cbor_get_bytes(const cbor_item_t *value, const char *ctx, const char *key,
                       ota_cbor_need need, size_t min, size_t max, const uint8_t **ptr, size_t *len,
                       ota_error *err);

/* Array of min..max entries (fewer: E_BAD_REQUEST, more: E_TOO_LARGE). */
int ota_cbor_get_array(const cbor_item_t *value, const char *ctx, const char *key,
                       ota_cbor_need need, size_t min, size_t max, const cbor_item_t **out,
                       ota_error *err);

#endif
