/*
 * cbor_util.h — strict CBOR reading shared by the codec's decoders (private to codec/).
 *
 * Decoders read payloads with a pull reader (ota_cbor_reader) built on libcbor's streaming
 * decoder: one item header at a time (strings with their contents), nothing allocated per
 * item, no tree. The reader accepts exactly what libcbor 0.8's cbor_load() would load,
 * followed by nothing (trailing bytes are E_BAD_CBOR), with the same errors: it tracks
 * the open containers as libcbor's builder does (nesting limit CBOR_MAX_STACK_SIZE,
 * breaks, chunks of indefinite-length strings), checks that every text is UTF-8, and
 * refuses headers declaring more entries than the payload could hold. Every item read
 * is checked, so a decoder may look at the items it wants and stop at the first wrong
 * field: ota_cbor_reader_end() then reads (and checks) the rest, and a CBOR error found
 * there replaces the decoder's field error, as it would have with cbor_load().
 *
 * A decoder reads a map's pairs in one pass with ota_cbor_map_scan() (keys must be
 * definite-length text; the values of the keys it knows are kept as item headers, other
 * values skipped; a known key given twice is refused), then checks each value with an
 * ota_cbor_want_*() helper. Each helper enforces one CBOR type and a limit, and on failure
 * fills the ota_error with a message naming the field by its path: the path of the
 * containing map (ctx, e.g. "events[3]", "" for the top level) joined to the key with a
 * dot, e.g. "events[3].pct: expected unsigned integer 0..100".
 *
 * The helpers take a value (NULL = absent) and return 1 when it is present and valid,
 * 0 when it is absent and optional, and -1 (with *err set) otherwise. Texts are returned
 * as (ptr, len) pointing into the payload: not NUL-terminated.
 *
 * The ota_cbor_get_*() helpers do the same checks on items already loaded by
 * ota_cbor_load() (for tests and tools that hold a libcbor tree).
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

/* ---- pull reader ---- */

typedef enum {
    OTA_CBOR_UINT,
    OTA_CBOR_NEGINT,
    OTA_CBOR_BYTES,
    OTA_CBOR_TEXT,
    OTA_CBOR_ARRAY,
    OTA_CBOR_MAP,
    OTA_CBOR_TAG,
    OTA_CBOR_FLOAT,
    OTA_CBOR_BOOL,
    OTA_CBOR_NULL,
    OTA_CBOR_UNDEFINED,
    OTA_CBOR_BREAK, /* end of an indefinite-length item; only ota_cbor_entry() meets it */
} ota_cbor_type;

/* One item header. Containers (arrays, maps, tags, indefinite-length strings) are followed
 * by their contents: read them with ota_cbor_entry(), or pass them with ota_cbor_skip(). */
typedef struct {
    ota_cbor_type type;
    uint64_t u;         /* UINT: value; NEGINT: n of -1-n; TAG: number; ARRAY, MAP: entries */
    const uint8_t *ptr; /* BYTES, TEXT (definite): contents, inside the payload */
    size_t len;
    size_t depth; /* containers open around the item (0: the top-level item) */
    double f;     /* FLOAT */
    /* Flags last, away from type: a test of type and an adjacent flag compiled as one load
     * stalls when the callbacks stored them separately. */
    bool indefinite; /* ARRAY, MAP: u unknown; BYTES, TEXT: chunks follow, ptr unset */
    bool boolean;    /* BOOL */
    bool clean;      /* TEXT (definite): valid per ota_text_valid(), no C0 controls */
} ota_cbor_item;

/* Containers held in the reader itself; deeper nesting allocates room for
 * CBOR_MAX_STACK_SIZE once (freed by ota_cbor_reader_end). */
#define OTA_CBOR_INLINE_DEPTH 16

typedef struct {
    uint8_t kind;
    size_t left; /* items still expected (definite), or key/value parity (indefinite map) */
} ota_cbor_frame;

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos; /* of the next header */
    const char *what;
    ota_error *err;
    size_t declared; /* entries declared by definite containers so far */
    size_t depth;    /* containers open */
    ota_cbor_frame *deep;
    ota_cbor_frame frames[OTA_CBOR_INLINE_DEPTH];
    bool done;   /* the top-level item is complete */
    bool failed; /* *err holds the CBOR error; every later call fails */
} ota_cbor_reader;

/* 0 when a payload of len bytes is within max bytes; else -1 with E_TOO_LARGE
 * "<what>: payload of <len> bytes over <max>" (every decoder checks this first). */
int ota_cbor_check_size(size_t len, size_t max, const char *what, ota_error *err);

/* Starts reading one top-level item filling buf; what names the payload in errors
 * ("report: truncated CBOR"), err receives the CBOR errors. */
void ota_cbor_reader_init(ota_cbor_reader *r, const void *buf, size_t len, const char *what,
                          ota_error *err);

/* Reads the next item header in document order. Returns 0, or -1 with *err set. */
int ota_cbor_next(ota_cbor_reader *r, ota_cbor_item *it);

/* Reads the next entry of container c (its header just read, its earlier entries fully
 * read or skipped): 1 with the entry's header in *it, 0 after the last entry, -1 on error.
 * Map entries alternate: key, value. */
int ota_cbor_entry(ota_cbor_reader *r, const ota_cbor_item *c, ota_cbor_item *it);

/* Reads the rest of item it (whose header was read), from wherever inside it the reader is.
 * Nothing to do for scalars. Returns 0 or -1. */
int ota_cbor_skip(ota_cbor_reader *r, const ota_cbor_item *it);

/* Reads whatever is left of the top-level item and checks that nothing follows it.
 * Always call it once, last: it frees what the reader allocated. Returns 0, or -1 with the
 * CBOR error in *err (overwriting whatever the decoder put there). */
int ota_cbor_reader_end(ota_cbor_reader *r);

/* ---- skimming: the fast path of a hot decoder (a report's envelope) ----
 * Reads well-formed CBOR of the plainest kind without libcbor: definite lengths, text of
 * printable ASCII only, no tags, simple values false/true/null/undefined and floats. What
 * it accepts, the reader above accepts too; anything else is "not sure" (-1), never an
 * error: the caller then runs the strict reader, which gives the error or the answer. */

/* The header at buf[*pos]: major type (0..7) and argument (a length, a count or a
 * value); *pos moves past the header. -1 (not sure) for an indefinite length, a
 * reserved or truncated header, a length past len, or a text that is not plain ASCII. */
int ota_cbor_skim_head(const uint8_t *buf, size_t len, size_t *pos, unsigned *major,
                       uint64_t *arg);

/* Passes the item at buf[*pos] (nested at most 16 deep); 0, or -1 when not sure. */
int ota_cbor_skim(const uint8_t *buf, size_t len, size_t *pos);

/* Reads the pairs of map m (its header just read) at ctx.key, as described above: for
 * keys[j] (j < n <= 32) stores the value's header in values[j] and sets bit j of *found.
 * Returns 0 after the whole map, or -1: reader error, not a map, a key that is not
 * definite-length text, or a known key given twice (field error in *err; the map is
 * then not fully read: ota_cbor_skip(r, m) passes the rest). */
int ota_cbor_map_scan(ota_cbor_reader *r, const ota_cbor_item *m, const char *ctx, const char *key,
                      const char *const *keys, size_t n, ota_cbor_item *values, uint32_t *found,
                      ota_error *err);

/* ---- typed values; v NULL = absent ---- */

/* Definite-length text of min..max bytes, valid per ota_text_valid(). Shorter than min is
 * E_BAD_REQUEST, longer than max E_TOO_LARGE. */
int ota_cbor_want_text(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, ota_cbor_text *out, ota_error *err);

/* Required SHA-256 as text: exactly 64 lowercase hex characters, copied NUL-terminated into
 * out (a longer text is E_TOO_LARGE, anything else wrong E_BAD_REQUEST). */
int ota_cbor_want_sha256(const ota_cbor_item *v, const char *ctx, const char *key, char out[65],
                         ota_error *err);

/* Unsigned integer (CBOR major type 0) in min..max. */
int ota_cbor_want_uint(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       uint64_t min, uint64_t max, uint64_t *out, ota_error *err);

/* CBOR true or false. */
int ota_cbor_want_bool(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       bool *out, ota_error *err);

/* Definite-length byte string of min..max bytes (longer than max: E_TOO_LARGE). */
int ota_cbor_want_bytes(const ota_cbor_item *v, const char *ctx, const char *key,
                        ota_cbor_need need, size_t min, size_t max, const uint8_t **ptr,
                        size_t *len, ota_error *err);

/* Array; when definite, of min..max entries (fewer: E_BAD_REQUEST, more: E_TOO_LARGE).
 * The entries of an indefinite-length array are counted while reading them and checked
 * with ota_cbor_want_count(). */
int ota_cbor_want_array(const ota_cbor_item *v, const char *ctx, const char *key,
                        ota_cbor_need need, size_t min, size_t max, ota_error *err);
int ota_cbor_want_count(size_t n, const char *ctx, const char *key, size_t min, size_t max,
                        ota_error *err);

/* ---- paths in messages ---- */

/* Sets *err to "PATH: <fmt...>" where PATH joins ctx and key; returns -1. */
int ota_cbor_field_error(ota_error *err, ota_err_code code, const char *ctx, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes "ctx.key[i]" (or "key[i]" when ctx is empty) into buf, for element contexts. */
void ota_cbor_index_path(char *buf, size_t size, const char *ctx, const char *key, size_t i);

/* ---- loaded items (libcbor trees) ---- */

/* Decodes exactly one item filling buf, with the reader's checks and errors. Returns the
 * item (release with cbor_decref) or NULL with *err set. */
/* An unsigned integer item with the shortest head (cbor_build_uint64 always takes 9 bytes). */
cbor_item_t *ota_cbor_build_uint(uint64_t v);

cbor_item_t *ota_cbor_load(const void *buf, size_t len, const char *what, ota_error *err);

/* Checks that item (the value at ctx.key) is a map whose keys are all definite-length
 * text, and stores in values[i] the value of keys[i] (NULL when absent), i < n. Other keys
 * are ignored; one of keys[] occurring twice is E_BAD_REQUEST. */
int ota_cbor_map_fields(const cbor_item_t *item, const char *ctx, const char *key,
                        const char *const *keys, size_t n, const cbor_item_t **values,
                        ota_error *err);

/* Value of the text key in a map whose keys are known to be text, or NULL (first match). */
const cbor_item_t *ota_cbor_map_find(const cbor_item_t *map, const char *key);

/* The ota_cbor_want_*() checks on a loaded item (NULL = absent). */
int ota_cbor_get_text(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, size_t min, size_t max, ota_cbor_text *out,
                      ota_error *err);
int ota_cbor_get_uint(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, uint64_t min, uint64_t max, uint64_t *out,
                      ota_error *err);
int ota_cbor_get_bool(const cbor_item_t *value, const char *ctx, const char *key,
                      ota_cbor_need need, bool *out, ota_error *err);
int ota_cbor_get_bytes(const cbor_item_t *value, const char *ctx, const char *key,
                       ota_cbor_need need, size_t min, size_t max, const uint8_t **ptr, size_t *len,
                       ota_error *err);
/* Array of min..max entries; *out = value. */
int ota_cbor_get_array(const cbor_item_t *value, const char *ctx, const char *key,
                       ota_cbor_need need, size_t min, size_t max, const cbor_item_t **out,
                       ota_error *err);

#endif
