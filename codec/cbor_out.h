/*
 * cbor_out.h — writing CBOR straight into a growing buffer: definite lengths and the
 * shortest heads, the bytes libcbor's item trees serialize to, without an item (and its
 * allocation) per value. For messages built often on the broker thread (pkg_msg.c: the
 * package description, tens of values). A failed allocation makes every later call a no-op
 * and ota_cbor_out_take return NULL.
 */
#ifndef OTA_CBOR_OUT_H
#define OTA_CBOR_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf; /* malloc'd */
    size_t len, cap;
    bool failed;
} ota_cbor_out;

/* Starts with room for cap bytes (grows as needed). */
void ota_cbor_out_init(ota_cbor_out *o, size_t cap);
/* A head: major type 0 (uint), 1 (negative int), 2 (bytes), 3 (text), 4 (array), 5 (map)
 * or 6 (tag) and its argument, in its shortest form. */
void ota_cbor_out_head(ota_cbor_out *o, unsigned major, uint64_t arg);
void ota_cbor_out_text(ota_cbor_out *o, const char *s, size_t n);
/* s as text; NULL as "". */
void ota_cbor_out_cstr(ota_cbor_out *o, const char *s);
void ota_cbor_out_bytes(ota_cbor_out *o, const void *b, size_t n);
void ota_cbor_out_bool(ota_cbor_out *o, bool v);
/* The bytes written (malloc'd, *len), or NULL when an allocation failed (freed). */
uint8_t *ota_cbor_out_take(ota_cbor_out *o, size_t *len);

#endif
