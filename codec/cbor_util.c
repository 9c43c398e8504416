/*
 * cbor_util.c — strict CBOR reading (see cbor_util.h): the pull reader, the map scan, the
 * typed value checks, and the same checks on loaded libcbor items.
 *
 * Reader design. Each ota_cbor_next() decodes one header: the plainest kinds (integers,
 * definite arrays and maps, definite strings whose text is printable ASCII) directly,
 * everything else with one cbor_stream_decode() call whose callbacks fill the same
 * ota_cbor_item. The reader then replays what libcbor 0.8's cbor_load() does with
 * that header, without building anything: cbor_load's builder keeps a stack of open
 * containers (frames: definite arrays and maps with the items still expected, indefinite
 * arrays, maps and strings, tags); a complete item is appended to the frame on top, which
 * may complete and pop it in turn. The same conditions are errors, at the same positions:
 * a text that is not UTF-8, a break that closes nothing, anything but a chunk of the right
 * kind inside an indefinite-length string, more than CBOR_MAX_STACK_SIZE open frames.
 * Headers declaring more entries in total than the payload has bytes are refused as
 * truncated ("declared sizes exceed payload"; cbor_load would have allocated for them).
 * That rule covers every header up to the first one that does not decode, trailing bytes
 * included, and wins over the other errors: after one of them, and before reporting
 * trailing bytes, the headers left are summed too (prescan_rest).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_util.h"
#include "ota_errf.h"

/* ---- items from libcbor's streaming callbacks (context: the ota_cbor_item) ---- */

static void set_num(void *ctx, ota_cbor_type type, uint64_t u)
{
    ota_cbor_item *it = ctx;
    it->type = type;
    it->indefinite = false;
    it->u = u;
}

static void on_uint8(void *c, uint8_t v)
{
    set_num(c, OTA_CBOR_UINT, v);
}

static void on_uint16(void *c, uint16_t v)
{
    set_num(c, OTA_CBOR_UINT, v);
}

static void on_uint32(void *c, uint32_t v)
{
    set_num(c, OTA_CBOR_UINT, v);
}

static void on_uint64(void *c, uint64_t v)
{
    set_num(c, OTA_CBOR_UINT, v);
}

static void on_negint8(void *c, uint8_t v)
{
    set_num(c, OTA_CBOR_NEGINT, v);
}

static void on_negint16(void *c, uint16_t v)
{
    set_num(c, OTA_CBOR_NEGINT, v);
}

static void on_negint32(void *c, uint32_t v)
{
    set_num(c, OTA_CBOR_NEGINT, v);
}

static void on_negint64(void *c, uint64_t v)
{
    set_num(c, OTA_CBOR_NEGINT, v);
}

static void on_tag(void *c, uint64_t v)
{
    set_num(c, OTA_CBOR_TAG, v);
}

static void on_array(void *c, size_t n)
{
    set_num(c, OTA_CBOR_ARRAY, n);
}

static void on_map(void *c, size_t n)
{
    set_num(c, OTA_CBOR_MAP, n);
}

static void set_string(void *ctx, ota_cbor_type type, cbor_data data, size_t len)
{
    ota_cbor_item *it = ctx;
    it->type = type;
    it->indefinite = false;
    it->ptr = data;
    it->len = len;
    it->clean = false; /* step() checks the text (the item may hold an earlier one's flag) */
}

static void on_bytes(void *c, cbor_data data, size_t len)
{
    set_string(c, OTA_CBOR_BYTES, data, len);
}

static void on_text(void *c, cbor_data data, size_t len)
{
    set_string(c, OTA_CBOR_TEXT, data, len);
}

static void set_indefinite(void *ctx, ota_cbor_type type)
{
    ota_cbor_item *it = ctx;
    it->type = type;
    it->indefinite = true;
}

static void on_bytes_start(void *c)
{
    set_indefinite(c, OTA_CBOR_BYTES);
}

static void on_text_start(void *c)
{
    set_indefinite(c, OTA_CBOR_TEXT);
}

static void on_indef_array(void *c)
{
    set_indefinite(c, OTA_CBOR_ARRAY);
}

static void on_indef_map(void *c)
{
    set_indefinite(c, OTA_CBOR_MAP);
}

static void set_simple(void *ctx, ota_cbor_type type)
{
    ota_cbor_item *it = ctx;
    it->type = type;
    it->indefinite = false;
}

static void on_null(void *c)
{
    set_simple(c, OTA_CBOR_NULL);
}

static void on_undefined(void *c)
{
    set_simple(c, OTA_CBOR_UNDEFINED);
}

static void on_break(void *c)
{
    set_simple(c, OTA_CBOR_BREAK);
}

static void on_bool(void *c, bool v)
{
    set_simple(c, OTA_CBOR_BOOL);
    ((ota_cbor_item *)c)->boolean = v;
}

static void on_float(void *c, float v)
{
    set_simple(c, OTA_CBOR_FLOAT);
    ((ota_cbor_item *)c)->f = v;
}

static void on_double(void *c, double v)
{
    set_simple(c, OTA_CBOR_FLOAT);
    ((ota_cbor_item *)c)->f = v;
}

/* byte_string and string receive definite-length strings with their contents;
 * byte_string_start and string_start open indefinite-length ones. */
static const struct cbor_callbacks ITEM_CALLBACKS = {
    .uint8 = on_uint8,
    .uint16 = on_uint16,
    .uint32 = on_uint32,
    .uint64 = on_uint64,
    .negint8 = on_negint8,
    .negint16 = on_negint16,
    .negint32 = on_negint32,
    .negint64 = on_negint64,
    .byte_string_start = on_bytes_start,
    .byte_string = on_bytes,
    .string = on_text,
    .string_start = on_text_start,
    .indef_array_start = on_indef_array,
    .array_start = on_array,
    .indef_map_start = on_indef_map,
    .map_start = on_map,
    .tag = on_tag,
    .float2 = on_float,
    .float4 = on_float,
    .float8 = on_double,
    .undefined = on_undefined,
    .null = on_null,
    .boolean = on_bool,
    .indef_break = on_break,
};

/* ---- reader errors ---- */

static int reader_fail(ota_cbor_reader *r, ota_err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reader_fail(ota_cbor_reader *r, ota_err_code code, const char *fmt, ...)
{
    r->failed = true;
    if (r->err == NULL)
        return -1;
    ota_error_set(r->err, code, "%s: ", r->what);
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(r->err->msg, sizeof r->err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Adds the entries a definite container header declares (map: keys and values). */
static void declare(ota_cbor_reader *r, const ota_cbor_item *it)
{
    uint64_t n = it->u;
    if (it->type == OTA_CBOR_MAP && __builtin_add_overflow(n, n, &n))
        n = UINT64_MAX;
    if (n > SIZE_MAX || __builtin_add_overflow(r->declared, (size_t)n, &r->declared))
        r->declared = SIZE_MAX;
}

static int declared_too_large(ota_cbor_reader *r)
{
    return reader_fail(r, OTA_E_BAD_CBOR, "truncated CBOR (declared sizes exceed payload)");
}

/* Sums the declared sizes of the headers after pos, up to the end or the first header that
 * does not decode: true when they exceed the payload (the pre-scan's error). */
static bool prescan_rest(ota_cbor_reader *r)
{
    while (r->pos < r->len) {
        ota_cbor_item it;
        struct cbor_decoder_result res =
            cbor_stream_decode(r->buf + r->pos, r->len - r->pos, &ITEM_CALLBACKS, &it);
        if (res.status != CBOR_DECODER_FINISHED)
            return false;
        r->pos += res.read;
        if ((it.type == OTA_CBOR_ARRAY || it.type == OTA_CBOR_MAP) && !it.indefinite) {
            declare(r, &it);
            if (r->declared > r->len)
                return true;
        }
    }
    return false;
}

/* For an error libcbor's builder finds after decoding a header: true when the pre-scan's
 * error, which takes precedence, is in the rest of the payload (and then reported). */
static bool prescan_precedes(ota_cbor_reader *r)
{
    if (!prescan_rest(r))
        return false;
    declared_too_large(r);
    return true;
}

static int syntax_error(ota_cbor_reader *r, const char *why)
{
    size_t at = r->pos; /* libcbor's position: the end of the offending header */
    if (prescan_precedes(r))
        return -1;
    return reader_fail(r, OTA_E_BAD_CBOR, "invalid CBOR (%s) before byte %zu", why, at);
}

static int too_deep(ota_cbor_reader *r)
{
    if (prescan_precedes(r))
        return -1;
    return reader_fail(r, OTA_E_TOO_LARGE, "CBOR too deeply nested or too large");
}

/* ---- the builder's stack of open containers ---- */

enum {
    FR_ARRAY,       /* definite; left = items still expected */
    FR_MAP,         /* definite; left = keys and values still expected */
    FR_ARRAY_INDEF, /* the rest: closed by a break */
    FR_MAP_INDEF,   /* left = 1 while a value is expected */
    FR_BYTES_INDEF,
    FR_TEXT_INDEF,
    FR_TAG,
};

static ota_cbor_frame *top(ota_cbor_reader *r)
{
    return (r->deep != NULL ? r->deep : r->frames) + r->depth - 1;
}

static int push(ota_cbor_reader *r, uint8_t kind, size_t left)
{
    if (r->depth == CBOR_MAX_STACK_SIZE)
        return too_deep(r);
    if (r->depth == OTA_CBOR_INLINE_DEPTH && r->deep == NULL) {
        r->deep = malloc(CBOR_MAX_STACK_SIZE * sizeof *r->deep);
        if (r->deep == NULL)
            return reader_fail(r, OTA_E_INTERNAL, "out of memory");
        memcpy(r->deep, r->frames, sizeof r->frames);
    }
    r->depth++;
    *top(r) = (ota_cbor_frame){.kind = kind, .left = left};
    return 0;
}

/* A complete item joins its container, which may be complete in turn. */
static int append(ota_cbor_reader *r)
{
    while (r->depth > 0) {
        ota_cbor_frame *f = top(r);
        switch (f->kind) {
        case FR_ARRAY:
        case FR_MAP:
            if (--f->left > 0)
                return 0;
            break;
        case FR_TAG:
            break;
        case FR_ARRAY_INDEF:
            return 0;
        case FR_MAP_INDEF:
            f->left ^= 1;
            return 0;
        default:
            return syntax_error(r, "not a chunk of the indefinite-length string");
        }
        r->depth--;
    }
    r->done = true;
    return 0;
}

static int close_indefinite(ota_cbor_reader *r)
{
    if (r->depth > 0) {
        const ota_cbor_frame *f = top(r);
        if (f->kind != FR_ARRAY && f->kind != FR_MAP && f->kind != FR_TAG &&
            (f->kind != FR_MAP_INDEF || f->left == 0)) {
            r->depth--;
            return append(r);
        }
    }
    return syntax_error(r, "misplaced break");
}

/* Nonzero in the top bit of every byte lane of w that is not printable ASCII (0x20..0x7F):
 * a byte below 0x20 borrows into its top bit when 0x20 is subtracted (the borrow may spoil
 * higher lanes, but only after a bad one), a byte from 0x80 up has it set already. */
static uint64_t non_printable(uint64_t w)
{
    return ((w - 0x2020202020202020u) | w) & 0x8080808080808080u;
}

static uint64_t load64(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static uint64_t load32(const uint8_t *s)
{
    uint32_t w;
    memcpy(&w, s, 4);
    return w;
}

/* True when the n bytes at s are all printable ASCII: then they are valid per
 * ota_text_valid(). Reads whole words, overlapping at the end, never past s + n. */
static bool plain_ascii(const uint8_t *s, size_t n)
{
    uint64_t w;
    if (n >= 8) {
        uint64_t bad = non_printable(load64(s + n - 8));
        for (size_t i = 0; i + 8 < n; i += 8)
            bad |= non_printable(load64(s + i));
        return bad == 0;
    }
    if (n >= 4)
        w = load32(s) | load32(s + n - 4) << 32;
    else if (n > 0)
        w = s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16 | 0x2020202020000000u;
    else
        return true;
    return non_printable(w) == 0;
}

/* Checks text it as libcbor does (UTF-8) and as ota_text_valid() does (it->clean).
 * ota_text_valid() also refuses C0 controls, which never occur inside a multi-byte
 * sequence: when it fails, the runs between them are checked separately. */
static bool utf8_valid(ota_cbor_item *it)
{
    const uint8_t *s = it->ptr;
    size_t n = it->len;
    it->clean = plain_ascii(s, n) || ota_text_valid((const char *)s, n);
    if (it->clean)
        return true;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] < 0x20) {
            if (!ota_text_valid((const char *)s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

static int string_step(ota_cbor_reader *r, ota_cbor_item *it, uint8_t chunked_kind)
{
    if (it->indefinite)
        return push(r, chunked_kind, 0);
    if (it->type == OTA_CBOR_TEXT && !it->clean && !utf8_valid(it))
        return syntax_error(r, "text not valid UTF-8");
    if (r->depth > 0 && top(r)->kind == chunked_kind)
        return 0; /* a chunk */
    return append(r);
}

static int container_step(ota_cbor_reader *r, const ota_cbor_item *it, uint8_t kind,
                          uint8_t indef_kind)
{
    if (it->indefinite)
        return push(r, indef_kind, 0);
    if (it->u == 0)
        return append(r);
    return push(r, kind, it->type == OTA_CBOR_MAP ? 2 * (size_t)it->u : (size_t)it->u);
}

/* What libcbor's builder does with the header just decoded. */
static int step(ota_cbor_reader *r, ota_cbor_item *it)
{
    switch (it->type) {
    case OTA_CBOR_BYTES:
        return string_step(r, it, FR_BYTES_INDEF);
    case OTA_CBOR_TEXT:
        return string_step(r, it, FR_TEXT_INDEF);
    case OTA_CBOR_ARRAY:
        return container_step(r, it, FR_ARRAY, FR_ARRAY_INDEF);
    case OTA_CBOR_MAP:
        return container_step(r, it, FR_MAP, FR_MAP_INDEF);
    case OTA_CBOR_TAG:
        return push(r, FR_TAG, 1);
    case OTA_CBOR_BREAK:
        return close_indefinite(r);
    default:
        return append(r);
    }
}

/* ---- reader ---- */

int ota_cbor_check_size(size_t len, size_t max, const char *what, ota_error *err)
{
    if (len <= max)
        return 0;
    return ota_error_set(err, OTA_E_TOO_LARGE, "%s: payload of %zu bytes over %zu", what, len, max);
}

void ota_cbor_reader_init(ota_cbor_reader *r, const void *buf, size_t len, const char *what,
                          ota_error *err)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->what = what;
    r->err = err;
    r->declared = 0;
    r->depth = 0;
    r->deep = NULL;
    r->done = false;
    r->failed = false;
}

static inline int skim_head(const uint8_t *buf, size_t len, size_t *pos, unsigned *major,
                            uint64_t *arg);

/* Decodes the header at r->pos without libcbor when it is of the plainest kind: an
 * integer, a definite-length array or map, a definite-length byte string or text of
 * printable ASCII, complete in the payload (the skim's header reader, below, decides).
 * Then *it is what libcbor's callbacks would have filled (a text's clean flag already
 * true), r->pos is past it and 1 is returned; anything else (and every error) is 0:
 * libcbor decodes it. The writer's report decode spent a third of its time in
 * cbor_stream_decode and its callbacks. */
static inline __attribute__((always_inline)) int plain_head(ota_cbor_reader *r, ota_cbor_item *it)
{
    size_t at = r->pos;
    unsigned major;
    uint64_t v;
    if (skim_head(r->buf, r->len, &at, &major, &v) != 0 || major > 5)
        return 0;
    if (major == 2 || major == 3) {
        it->ptr = r->buf + at - v;
        it->len = (size_t)v;
        it->clean = major == 3;
    }
    static const ota_cbor_type TYPES[6] = {OTA_CBOR_UINT, OTA_CBOR_NEGINT, OTA_CBOR_BYTES,
                                           OTA_CBOR_TEXT, OTA_CBOR_ARRAY,  OTA_CBOR_MAP};
    it->type = TYPES[major];
    it->indefinite = false;
    it->u = v;
    r->pos = at;
    return 1;
}

int ota_cbor_next(ota_cbor_reader *r, ota_cbor_item *it)
{
    if (r->failed)
        return -1;
    if (r->done)
        return reader_fail(r, OTA_E_INTERNAL, "read past the end of the CBOR item");
    if (r->len == 0)
        return reader_fail(r, OTA_E_BAD_CBOR, "empty payload");
    if (r->pos >= r->len)
        return reader_fail(r, OTA_E_BAD_CBOR, "truncated CBOR");
    it->depth = r->depth;
    if (!plain_head(r, it)) {
        struct cbor_decoder_result res =
            cbor_stream_decode(r->buf + r->pos, r->len - r->pos, &ITEM_CALLBACKS, it);
        if (res.status == CBOR_DECODER_NEDATA)
            return reader_fail(r, OTA_E_BAD_CBOR, "truncated CBOR");
        if (res.status != CBOR_DECODER_FINISHED)
            return reader_fail(r, OTA_E_BAD_CBOR, "malformed CBOR at byte %zu", r->pos);
        r->pos += res.read;
    }
    if ((it->type == OTA_CBOR_ARRAY || it->type == OTA_CBOR_MAP) && !it->indefinite) {
        declare(r, it);
        if (r->declared > r->len)
            return declared_too_large(r);
    }
    return step(r, it);
}

int ota_cbor_entry(ota_cbor_reader *r, const ota_cbor_item *c, ota_cbor_item *it)
{
    if (r->failed)
        return -1;
    if (r->depth <= c->depth)
        return 0; /* c is complete: its last entry closed it */
    if (ota_cbor_next(r, it) < 0)
        return -1;
    return it->type == OTA_CBOR_BREAK ? 0 : 1;
}

int ota_cbor_skip(ota_cbor_reader *r, const ota_cbor_item *it)
{
    ota_cbor_item inner;
    while (r->depth > it->depth)
        if (ota_cbor_next(r, &inner) < 0)
            return -1;
    return r->failed ? -1 : 0;
}

int ota_cbor_reader_end(ota_cbor_reader *r)
{
    ota_cbor_item it;
    while (!r->failed && !r->done)
        ota_cbor_next(r, &it);
    if (!r->failed && r->pos < r->len) {
        size_t trailing = r->len - r->pos;
        if (prescan_rest(r))
            declared_too_large(r);
        else
            reader_fail(r, OTA_E_BAD_CBOR, "%zu trailing bytes after the CBOR item", trailing);
    }
    free(r->deep);
    r->deep = NULL;
    return r->failed ? -1 : 0;
}

/* ---- skimming (cbor_util.h) ---- */

#define SKIM_DEPTH 16

/* The big-endian argument of n (1, 2, 4 or 8) bytes at b. */
static uint64_t skim_arg(const uint8_t *b, size_t n)
{
    switch (n) {
    case 1:
        return b[0];
    case 2:
        return (uint64_t)b[0] << 8 | b[1];
    case 4:
        return (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
    default:
        return skim_arg(b, 4) << 32 | skim_arg(b + 4, 4);
    }
}

/* ota_cbor_skim_head's body, inlined into the skim's loop (a report's events are ~20
 * headers: the call and the stores through pointers were a third of the skim). */
static inline int skim_head(const uint8_t *buf, size_t len, size_t *pos, unsigned *major,
                            uint64_t *arg)
{
    size_t at = *pos;
    if (at >= len)
        return -1;
    uint8_t ib = buf[at++];
    unsigned ai = ib & 0x1f;
    uint64_t v = ai;
    if (ai >= 24) {
        if (ai > 27)
            return -1; /* indefinite, or reserved */
        size_t n = (size_t)1 << (ai - 24);
        if (len - at < n)
            return -1;
        v = skim_arg(buf + at, n);
        at += n;
    }
    unsigned m = ib >> 5;
    *major = m;
    if (m == 7) {
        if (ai < 20 || ai == 24)
            return -1; /* unassigned simple values */
    } else if (m == 2 || m == 3) {
        if (v > len - at || (m == 3 && !plain_ascii(buf + at, (size_t)v)))
            return -1;
        at += (size_t)v; /* a string's header is passed with its bytes */
    } else if ((m == 4 || m == 5) && v > len - at) {
        return -1; /* more entries declared than bytes left */
    } else if (m == 6) {
        return -1;
    }
    *arg = v;
    *pos = at;
    return 0;
}

int ota_cbor_skim_head(const uint8_t *buf, size_t len, size_t *pos, unsigned *major, uint64_t *arg)
{
    return skim_head(buf, len, pos, major, arg);
}

int ota_cbor_skim(const uint8_t *buf, size_t len, size_t *pos)
{
    uint64_t left[SKIM_DEPTH + 1]; /* entries still to pass at each open level */
    int depth = 0;
    size_t at = *pos;
    left[0] = 1;
    while (depth > 0 || left[0] > 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        unsigned major;
        uint64_t arg;
        if (skim_head(buf, len, &at, &major, &arg) != 0)
            return -1;
        if (major == 4 || major == 5) {
            if (depth == SKIM_DEPTH)
                return -1;
            left[++depth] = major == 5 ? 2 * arg : arg;
        }
    }
    *pos = at;
    return 0;
}

/* ---- maps ---- */

/* True when the n bytes at h spell the NUL-terminated want (never reads past its NUL). */
static bool key_equals(const char *want, const unsigned char *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (want[i] == '\0' || (unsigned char)want[i] != h[i])
            return false;
    return want[n] == '\0';
}

/* Index of the key k in keys[0..n), or n. */
static size_t key_index(const ota_cbor_item *k, const char *const *keys, size_t n)
{
    if (k->len == 0) {
        size_t j = 0;
        while (j < n && keys[j][0] != '\0')
            j++;
        return j;
    }
    for (size_t j = 0; j < n; j++)
        if ((unsigned char)keys[j][0] == k->ptr[0] &&
            key_equals(keys[j] + 1, k->ptr + 1, k->len - 1))
            return j;
    return n;
}

/* One pair of the fast path below: a plain text key, not known twice, and a plain scalar
 * value (plain_head), stored as ota_cbor_map_scan stores it. false when the pair is not
 * such (r->pos and *found then unchanged, values[] perhaps not). */
static bool plain_pair(ota_cbor_reader *r, const char *const *keys, size_t n, ota_cbor_item *values,
                       uint32_t *found)
{
    size_t start = r->pos;
    ota_cbor_item k = {.ptr = NULL, .len = 0}, scratch;
    if (!plain_head(r, &k) || k.type != OTA_CBOR_TEXT || r->pos >= r->len) {
        r->pos = start;
        return false;
    }
    size_t j = key_index(&k, keys, n);
    ota_cbor_item *v = j < n ? &values[j] : &scratch;
    if ((j < n && (*found >> j & 1)) || !plain_head(r, v) || v->type == OTA_CBOR_ARRAY ||
        v->type == OTA_CBOR_MAP) {
        r->pos = start;
        return false;
    }
    v->depth = r->depth;
    if (j < n)
        *found |= (uint32_t)1 << j;
    return true;
}

/* The fast path of ota_cbor_map_scan: reads the pairs of the definite map m that
 * plain_pair takes, with no container bookkeeping but m's count, while m has more than
 * that pair left (its last pair, which completes m, and any other pair go the general
 * way). *i counts the pairs read. A report's event maps are nearly all such pairs. */
static void scan_plain_pairs(ota_cbor_reader *r, const ota_cbor_item *m, const char *const *keys,
                             size_t n, ota_cbor_item *values, uint32_t *found, size_t *i)
{
    if (r->failed || r->depth != m->depth + 1 || top(r)->kind != FR_MAP)
        return;
    ota_cbor_frame *f = top(r);
    while (f->left > 2 && r->pos < r->len && plain_pair(r, keys, n, values, found)) {
        f->left -= 2;
        (*i)++;
    }
}

int ota_cbor_map_scan(ota_cbor_reader *r, const ota_cbor_item *m, const char *ctx, const char *key,
                      const char *const *keys, size_t n, ota_cbor_item *values, uint32_t *found,
                      ota_error *err)
{
    assert(n <= 32);
    if (m->type != OTA_CBOR_MAP)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected map");
    *found = 0;
    ota_cbor_item k;
    int rc;
    size_t i = 0;
    for (; scan_plain_pairs(r, m, keys, n, values, found, &i), (rc = ota_cbor_entry(r, m, &k)) == 1;
         i++) {
        if (k.type != OTA_CBOR_TEXT || k.indefinite)
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                        "map key %zu is not definite-length text", i);
        size_t j = key_index(&k, keys, n);
        if (j < n && (*found >> j & 1))
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, keys[j], "duplicate key");
        ota_cbor_item scratch;
        ota_cbor_item *v = j < n ? &values[j] : &scratch;
        if (ota_cbor_next(r, v) < 0 || (r->depth > v->depth && ota_cbor_skip(r, v) < 0))
            return -1;
        if (j < n)
            *found |= (uint32_t)1 << j;
    }
    return rc;
}

/* ---- typed values ---- */

int ota_cbor_field_error(ota_error *err, ota_err_code code, const char *ctx, const char *key,
                         const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    if (ctx[0] == '\0' && key[0] == '\0')
        ota_error_set(err, code, "top level: ");
    else
        ota_error_set(err, code, "%s%s%s: ", ctx, ctx[0] != '\0' && key[0] != '\0' ? "." : "", key);
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void ota_cbor_index_path(char *buf, size_t size, const char *ctx, const char *key, size_t i)
{
    const char *dot = ctx[0] != '\0' && key[0] != '\0' ? "." : "";
    snprintf(buf, size, "%s%s%s[%zu]", ctx, dot, key, i);
}

/* Presence check shared by the checks: 1 present, 0 absent and optional, -1 missing. */
static int present(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                   ota_error *err)
{
    if (v != NULL)
        return 1;
    if (need == OTA_CBOR_REQUIRED)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "missing");
    return 0;
}

/* Length limits of texts and byte strings. */
static int length_error(ota_error *err, const char *ctx, const char *key, size_t len, size_t min,
                        size_t max)
{
    if (len > max)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, key, "longer than %zu bytes", max);
    if (len < min)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "shorter than %zu bytes",
                                    min);
    return 0;
}

int ota_cbor_want_text(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, ota_cbor_text *out, ota_error *err)
{
    int rc = present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (v->type != OTA_CBOR_TEXT || v->indefinite)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "expected definite-length text");
    const char *ptr = (const char *)v->ptr;
    if (length_error(err, ctx, key, v->len, min, max) < 0)
        return -1;
    if (!v->clean)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "invalid UTF-8 or control character");
    out->ptr = ptr;
    out->len = v->len;
    return 1;
}

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int ota_cbor_want_sha256(const ota_cbor_item *v, const char *ctx, const char *key, char out[65],
                         ota_error *err)
{
    ota_cbor_text t;
    if (ota_cbor_want_text(v, ctx, key, OTA_CBOR_REQUIRED, 64, 64, &t, err) < 0)
        return -1;
    if (!lower_hex(t.ptr, t.len))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "expected 64 lowercase hex characters");
    memcpy(out, t.ptr, 64);
    out[64] = '\0';
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

int ota_cbor_want_uint(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       uint64_t min, uint64_t max, uint64_t *out, ota_error *err)
{
    int rc = present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (v->type != OTA_CBOR_UINT || v->u < min || v->u > max)
        return uint_error(err, ctx, key, min, max);
    *out = v->u;
    return 1;
}

int ota_cbor_want_bool(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                       bool *out, ota_error *err)
{
    int rc = present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (v->type != OTA_CBOR_BOOL)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected true or false");
    *out = v->boolean;
    return 1;
}

int ota_cbor_want_bytes(const ota_cbor_item *v, const char *ctx, const char *key,
                        ota_cbor_need need, size_t min, size_t max, const uint8_t **ptr,
                        size_t *len, ota_error *err)
{
    int rc = present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (v->type != OTA_CBOR_BYTES || v->indefinite)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "expected definite-length bytes");
    if (length_error(err, ctx, key, v->len, min, max) < 0)
        return -1;
    *ptr = v->ptr;
    *len = v->len;
    return 1;
}

int ota_cbor_want_count(size_t n, const char *ctx, const char *key, size_t min, size_t max,
                        ota_error *err)
{
    if (n > max)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, key, "more than %zu entries", max);
    if (n < min && n == 0)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "empty");
    if (n < min)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "fewer than %zu entries",
                                    min);
    return 0;
}

int ota_cbor_want_array(const ota_cbor_item *v, const char *ctx, const char *key,
                        ota_cbor_need need, size_t min, size_t max, ota_error *err)
{
    int rc = present(v, ctx, key, need, err);
    if (rc <= 0)
        return rc;
    if (v->type != OTA_CBOR_ARRAY)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key, "expected array");
    if (!v->indefinite && ota_cbor_want_count(v->u, ctx, key, min, max, err) < 0)
        return -1;
    return 1;
}

/* ---- loaded items ---- */

cbor_item_t *ota_cbor_load(const void *buf, size_t len, const char *what, ota_error *err)
{
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, what, err);
    if (ota_cbor_reader_end(&r) < 0)
        return NULL;
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(buf, len, &res);
    if (item == NULL) {
        /* The reader accepts what cbor_load loads: only memory can be short here. */
        ota_error_set(err, OTA_E_INTERNAL, "%s: out of memory", what);
        return NULL;
    }
    return item;
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

/* The header of a loaded item as the reader returns it; arrays and maps, whose entries are
 * all loaded, count as definite. */
static ota_cbor_item view(const cbor_item_t *v)
{
    ota_cbor_item it = {.type = OTA_CBOR_UNDEFINED};
    switch (cbor_typeof(v)) {
    case CBOR_TYPE_UINT:
    case CBOR_TYPE_NEGINT:
        it.type = cbor_isa_uint(v) ? OTA_CBOR_UINT : OTA_CBOR_NEGINT;
        it.u = cbor_get_int(v);
        break;
    case CBOR_TYPE_BYTESTRING:
    case CBOR_TYPE_STRING:
        it.type = cbor_isa_string(v) ? OTA_CBOR_TEXT : OTA_CBOR_BYTES;
        it.indefinite =
            cbor_isa_string(v) ? cbor_string_is_indefinite(v) : cbor_bytestring_is_indefinite(v);
        if (!it.indefinite) {
            it.ptr = cbor_isa_string(v) ? cbor_string_handle(v) : cbor_bytestring_handle(v);
            it.len = cbor_isa_string(v) ? cbor_string_length(v) : cbor_bytestring_length(v);
            it.clean = ota_text_valid((const char *)it.ptr, it.len);
        }
        break;
    case CBOR_TYPE_ARRAY:
        it.type = OTA_CBOR_ARRAY;
        it.u = cbor_array_size(v);
        break;
    case CBOR_TYPE_MAP:
        it.type = OTA_CBOR_MAP;
        it.u = cbor_map_size(v);
        break;
    case CBOR_TYPE_TAG:
        it.type = OTA_CBOR_TAG;
        it.u = cbor_tag_value(v);
        break;
    case CBOR_TYPE_FLOAT_CTRL:
        if (cbor_is_bool(v)) {
            it.type = OTA_CBOR_BOOL;
            it.boolean = cbor_get_bool(v);
        } else if (cbor_is_null(v)) {
            it.type = OTA_CBOR_NULL;
        } else if (cbor_isa_float_ctrl(v) && !cbor_float_ctrl_is_ctrl(v)) {
            it.type = OTA_CBOR_FLOAT;
            it.f = cbor_float_get_float(v);
        }
        break;
    }
    return it;
}

/* The view of v in *buf, or NULL when v is absent. */
static const ota_cbor_item *view_of(const cbor_item_t *v, ota_cbor_item *buf)
{
    if (v == NULL)
        return NULL;
    *buf = view(v);
    return buf;
}

int ota_cbor_get_text(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      size_t min, size_t max, ota_cbor_text *out, ota_error *err)
{
    ota_cbor_item it;
    return ota_cbor_want_text(view_of(v, &it), ctx, key, need, min, max, out, err);
}

int ota_cbor_get_uint(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      uint64_t min, uint64_t max, uint64_t *out, ota_error *err)
{
    ota_cbor_item it;
    return ota_cbor_want_uint(view_of(v, &it), ctx, key, need, min, max, out, err);
}

int ota_cbor_get_bool(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                      bool *out, ota_error *err)
{
    ota_cbor_item it;
    return ota_cbor_want_bool(view_of(v, &it), ctx, key, need, out, err);
}

int ota_cbor_get_bytes(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, const uint8_t **ptr, size_t *len, ota_error *err)
{
    ota_cbor_item it;
    return ota_cbor_want_bytes(view_of(v, &it), ctx, key, need, min, max, ptr, len, err);
}

int ota_cbor_get_array(const cbor_item_t *v, const char *ctx, const char *key, ota_cbor_need need,
                       size_t min, size_t max, const cbor_item_t **out, ota_error *err)
{
    ota_cbor_item it;
    int rc = ota_cbor_want_array(view_of(v, &it), ctx, key, need, min, max, err);
    if (rc == 1)
        *out = v;
    return rc;
}

cbor_item_t *ota_cbor_build_uint(uint64_t v)
{
    if (v <= UINT8_MAX)
        return cbor_build_uint8((uint8_t)v);
    if (v <= UINT16_MAX)
        return cbor_build_uint16((uint16_t)v);
    if (v <= UINT32_MAX)
        return cbor_build_uint32((uint32_t)v);
    return cbor_build_uint64(v);
}
