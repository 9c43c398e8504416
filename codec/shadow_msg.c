/*
 * shadow_msg.c — the device shadow's messages (SPEC §3): decoders of shadow/update and
 * shadow/get, encoders of shadow/accepted, shadow/state and shadow/delta, and the generic
 * cJSON -> CBOR encoder those use for the shadow's reported and desired documents.
 *
 * Decoding reads the payload once with the strict pull reader (cbor_util.h), in place:
 * the top-level map, the reported map inside it and the ecus map inside that are walked
 * entry by entry, keeping the headers of the known keys (texts point into the payload),
 * so nothing is allocated per item. The first field error stops the walk (the reader's
 * end then reads and checks the rest: a CBOR error there wins, as for reports). One block
 * holds the result: the ecus array (at most OTA_SHADOW_MAX_ECUS) and a copy of every text,
 * NUL-terminated (the copies fit in the payload's size: each text had a header byte).
 *
 * Encoding writes libcbor's streaming encoders into a buffer that grows as needed. A raw
 * cJSON item (the task engine's notices hold their integers so, exact to 64 bits) must be
 * a decimal integer literal and becomes a CBOR integer.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <cjson/cJSON.h>

#include "cbor_util.h"
#include "ota_codec.h"

/* ---------------------------------------------------------------- decoding */

typedef struct {
    char *next, *end;
} text_arena;

static const char *arena_copy(text_arena *a, ota_cbor_text t)
{
    if ((size_t)(a->end - a->next) < t.len + 1)
        return NULL; /* cannot happen: see the top of the file */
    char *s = a->next;
    memcpy(s, t.ptr, t.len);
    s[t.len] = '\0';
    a->next += t.len + 1;
    return s;
}

/* True when the definite text item k spells name. */
static bool key_is(const ota_cbor_item *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && memcmp(k->ptr, name, n) == 0;
}

/* Index of key k in names[0..n), or n. */
static size_t key_find(const ota_cbor_item *k, const char *const *names, size_t n)
{
    size_t j = 0;
    while (j < n && !key_is(k, names[j]))
        j++;
    return j;
}

/* Reads the next key of map m (1, 0 after the last, -1): it must be definite text. */
static int next_key(ota_cbor_reader *r, const ota_cbor_item *m, const char *ctx, const char *key,
                    size_t i, ota_cbor_item *k, ota_error *err)
{
    int rc = ota_cbor_entry(r, m, k);
    if (rc == 1 && (k->type != OTA_CBOR_TEXT || k->indefinite))
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, key,
                                    "map key %zu is not definite-length text", i);
    return rc;
}

/* A word (1..OTA_ID_MAX bytes) copied into the arena; *out NULL when absent. */
static int get_word(const ota_cbor_item *v, const char *ctx, const char *key, ota_cbor_need need,
                    text_arena *a, const char **out, ota_error *err)
{
    ota_cbor_text t;
    int rc = ota_cbor_want_text(v, ctx, key, need, 1, OTA_ID_MAX, &t, err);
    if (rc == 1 && (*out = arena_copy(a, t)) == NULL)
        return ota_error_set(err, OTA_E_INTERNAL, "shadow/update: out of memory");
    return rc;
}

/* What the decoding of one update collects. */
typedef struct {
    text_arena texts;
    ota_shadow_ecu *ecus;
    size_t n_ecus;
} update_state;

/* An ECU name, the key of entry i of reported.ecus. */
static int ecu_name(const ota_cbor_item *k, size_t i, text_arena *a, const char **out,
                    ota_error *err)
{
    static const char ctx[] = "reported.ecus";
    if (k->len == 0)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, "", "ECU name %zu is empty", i);
    if (k->len > OTA_ID_MAX)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, ctx, "",
                                    "ECU name %zu longer than %d bytes", i, OTA_ID_MAX);
    if (!k->clean)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, "",
                                    "ECU name %zu: invalid UTF-8 or control character", i);
    *out = arena_copy(a, (ota_cbor_text){(const char *)k->ptr, k->len});
    return *out ? 0 : ota_error_set(err, OTA_E_INTERNAL, "shadow/update: out of memory");
}

static int ecu_cmp(const void *a, const void *b)
{
    return strcmp(((const ota_shadow_ecu *)a)->ecu, ((const ota_shadow_ecu *)b)->ecu);
}

/* Sorts the ECUs by name and refuses a name given twice. */
static int ecus_sort(update_state *st, ota_error *err)
{
    qsort(st->ecus, st->n_ecus, sizeof *st->ecus, ecu_cmp);
    for (size_t i = 1; i < st->n_ecus; i++)
        if (strcmp(st->ecus[i - 1].ecu, st->ecus[i].ecu) == 0)
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "reported.ecus", st->ecus[i].ecu,
                                        "duplicate key");
    return 0;
}

/* reported.ecus {ECU: version}, its header m just read; entries decoded in place. */
static int decode_ecus(ota_cbor_reader *r, const ota_cbor_item *m, update_state *st, ota_error *err)
{
    static const char ctx[] = "reported.ecus";
    if (m->type != OTA_CBOR_MAP)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "reported", "ecus", "expected map");
    if (!m->indefinite && m->u > OTA_SHADOW_MAX_ECUS)
        return ota_cbor_field_error(err, OTA_E_TOO_LARGE, "reported", "ecus",
                                    "more than %d entries", OTA_SHADOW_MAX_ECUS);
    ota_cbor_item k, v;
    int rc;
    for (size_t i = 0; (rc = next_key(r, m, "reported", "ecus", i, &k, err)) == 1; i++) {
        if (i == OTA_SHADOW_MAX_ECUS)
            return ota_cbor_field_error(err, OTA_E_TOO_LARGE, "reported", "ecus",
                                        "more than %d entries", OTA_SHADOW_MAX_ECUS);
        ota_shadow_ecu *e = &st->ecus[i];
        if (ecu_name(&k, i, &st->texts, &e->ecu, err) < 0 || ota_cbor_next(r, &v) < 0 ||
            get_word(&v, ctx, e->ecu, OTA_CBOR_REQUIRED, &st->texts, &e->version, err) < 0)
            return -1;
        st->n_ecus++;
    }
    return rc < 0 ? -1 : ecus_sort(st, err);
}

enum { R_FW, R_STATE, R_ECUS, R_CONFIG_WORD, R_USAGE, R_COUNT };
static const char *const REPORTED_KEYS[R_COUNT] = {"fw", "state", "ecus", "config_word", "usage"};

/* The scalar fields of reported, checked once its map has been read. */
static int reported_fields(const ota_cbor_item *v, uint32_t found, update_state *st,
                           ota_shadow_update *out, ota_error *err)
{
    static const char ctx[] = "reported";
    const ota_cbor_item *f[R_COUNT];
    for (int j = 0; j < R_COUNT; j++)
        f[j] = found >> j & 1 ? &v[j] : NULL;
    if (get_word(f[R_FW], ctx, "fw", OTA_CBOR_REQUIRED, &st->texts, &out->fw, err) < 0 ||
        get_word(f[R_STATE], ctx, "state", OTA_CBOR_REQUIRED, &st->texts, &out->state, err) < 0)
        return -1;
    if (f[R_ECUS] == NULL)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, ctx, "ecus", "missing");
    if (get_word(f[R_CONFIG_WORD], ctx, "config_word", OTA_CBOR_OPTIONAL, &st->texts,
                 &out->config_word, err) < 0)
        return -1;
    return get_word(f[R_USAGE], ctx, "usage", OTA_CBOR_OPTIONAL, &st->texts, &out->usage, err) < 0
               ? -1
               : 0;
}

/* reported {...}, its header m just read. */
static int decode_reported(ota_cbor_reader *r, const ota_cbor_item *m, update_state *st,
                           ota_shadow_update *out, ota_error *err)
{
    if (m->type != OTA_CBOR_MAP)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "reported", "expected map");
    ota_cbor_item k, v[R_COUNT], other;
    uint32_t found = 0;
    int rc;
    for (size_t i = 0; (rc = next_key(r, m, "", "reported", i, &k, err)) == 1; i++) {
        size_t j = key_find(&k, REPORTED_KEYS, R_COUNT);
        if (j < R_COUNT && (found >> j & 1))
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "reported", REPORTED_KEYS[j],
                                        "duplicate key");
        ota_cbor_item *val = j < R_COUNT ? &v[j] : &other;
        if (ota_cbor_next(r, val) < 0 || (j == R_ECUS && decode_ecus(r, val, st, err) < 0) ||
            ota_cbor_skip(r, val) < 0)
            return -1;
        if (j < R_COUNT)
            found |= (uint32_t)1 << j;
    }
    return rc < 0 ? -1 : reported_fields(v, found, st, out, err);
}

/* The top level {reported, token?}, each known key once. */
static int decode_update_root(ota_cbor_reader *r, update_state *st, ota_shadow_update *out,
                              ota_error *err)
{
    ota_cbor_item root, k, v, token;
    bool has_reported = false, has_token = false;
    if (ota_cbor_next(r, &root) < 0)
        return -1;
    if (root.type != OTA_CBOR_MAP)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "", "expected map");
    int rc;
    for (size_t i = 0; (rc = next_key(r, &root, "", "", i, &k, err)) == 1; i++) {
        bool is_reported = key_is(&k, "reported"), is_token = key_is(&k, "token");
        if ((is_reported && has_reported) || (is_token && has_token))
            return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", is_token ? "token" : "reported",
                                        "duplicate key");
        if (ota_cbor_next(r, is_token ? &token : &v) < 0 ||
            (is_reported && decode_reported(r, &v, st, out, err) < 0) ||
            ota_cbor_skip(r, is_token ? &token : &v) < 0)
            return -1;
        has_reported |= is_reported;
        has_token |= is_token;
    }
    if (rc < 0)
        return -1;
    if (!has_reported)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "reported", "missing");
    return get_word(has_token ? &token : NULL, "", "token", OTA_CBOR_OPTIONAL, &st->texts,
                    &out->token, err) < 0
               ? -1
               : 0;
}

int ota_codec_decode_shadow_update(const void *buf, size_t len, ota_shadow_update *out,
                                   ota_error *err)
{
    *out = (ota_shadow_update){0};
    if (ota_cbor_check_size(len, OTA_SHADOW_MAX_PAYLOAD, "shadow/update", err) != 0)
        return -1;
    size_t ecus_bytes = OTA_SHADOW_MAX_ECUS * sizeof(ota_shadow_ecu);
    char *block = malloc(ecus_bytes + len + 1);
    if (block == NULL)
        return ota_error_set(err, OTA_E_INTERNAL, "shadow/update: out of memory");
    update_state st = {.texts = {block + ecus_bytes, block + ecus_bytes + len + 1},
                       .ecus = (ota_shadow_ecu *)(void *)block};
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "shadow/update", err);
    int rc = decode_update_root(&r, &st, out, err);
    if (ota_cbor_reader_end(&r) != 0) /* a CBOR error replaces any other */
        rc = -1;
    if (rc != 0) {
        free(block);
        *out = (ota_shadow_update){0};
        return -1;
    }
    out->n_ecus = st.n_ecus;
    out->ecus = st.ecus;
    out->mem_ = block;
    return 0;
}

void ota_shadow_update_free(ota_shadow_update *u)
{
    if (u == NULL)
        return;
    free(u->mem_);
    *u = (ota_shadow_update){0};
}

static int decode_get_root(ota_cbor_reader *r, ota_shadow_get *out, ota_error *err)
{
    static const char *const keys[] = {"token"};
    ota_cbor_item root, v;
    uint32_t found = 0;
    if (ota_cbor_next(r, &root) < 0)
        return -1;
    if (ota_cbor_map_scan(r, &root, "", "", keys, 1, &v, &found, err) < 0)
        return -1;
    ota_cbor_text t;
    int rc = ota_cbor_want_text(found ? &v : NULL, "", "token", OTA_CBOR_OPTIONAL, 1, OTA_ID_MAX,
                                &t, err);
    if (rc == 1) {
        memcpy(out->token, t.ptr, t.len);
        out->token[t.len] = '\0';
        out->has_token = true;
    }
    return rc < 0 ? -1 : 0;
}

int ota_codec_decode_shadow_get(const void *buf, size_t len, ota_shadow_get *out, ota_error *err)
{
    *out = (ota_shadow_get){0};
    if (ota_cbor_check_size(len, OTA_SHADOW_MAX_PAYLOAD, "shadow/get", err) != 0)
        return -1;
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "shadow/get", err);
    int rc = decode_get_root(&r, out, err);
    if (ota_cbor_reader_end(&r) != 0)
        rc = -1;
    if (rc != 0)
        *out = (ota_shadow_get){0};
    return rc;
}

/* ---------------------------------------------------------------- encoding */

/* A growing output buffer; ok turns false (and stays false) when memory runs out or the
 * input cannot be encoded. */
typedef struct {
    uint8_t *buf;
    size_t size;
    size_t pos;
    bool ok;
} cbor_sink;

/* Room for n more bytes. */
static bool reserve(cbor_sink *o, size_t n)
{
    if (!o->ok)
        return false;
    if (o->size - o->pos >= n)
        return true;
    size_t size = o->size ? o->size : 256;
    while (size - o->pos < n)
        size *= 2;
    uint8_t *b = realloc(o->buf, size);
    if (b == NULL)
        return o->ok = false;
    o->buf = b;
    o->size = size;
    return true;
}

#define HEAD_MAX 9 /* the longest CBOR head: initial byte + 8 */

static void put_with(cbor_sink *o, size_t (*enc)(uint64_t, unsigned char *, size_t), uint64_t v)
{
    if (reserve(o, HEAD_MAX))
        o->pos += enc(v, o->buf + o->pos, o->size - o->pos);
}

static void put_size(cbor_sink *o, size_t (*enc)(size_t, unsigned char *, size_t), size_t n)
{
    if (reserve(o, HEAD_MAX))
        o->pos += enc(n, o->buf + o->pos, o->size - o->pos);
}

static void put_text(cbor_sink *o, const char *s)
{
    size_t n = strlen(s);
    put_size(o, cbor_encode_string_start, n);
    if (reserve(o, n)) {
        memcpy(o->buf + o->pos, s, n);
        o->pos += n;
    }
}

static void put_simple(cbor_sink *o, size_t (*enc)(unsigned char *, size_t))
{
    if (reserve(o, 1))
        o->pos += enc(o->buf + o->pos, o->size - o->pos);
}

static void put_bool(cbor_sink *o, bool v)
{
    if (reserve(o, 1))
        o->pos += cbor_encode_bool(v, o->buf + o->pos, o->size - o->pos);
}

static void put_int(cbor_sink *o, int64_t v)
{
    if (v >= 0)
        put_with(o, cbor_encode_uint, (uint64_t)v);
    else
        put_with(o, cbor_encode_negint, (uint64_t)(-1 - v));
}

/* Integral values of magnitude below 2^63 become integers, anything else a double. */
static void put_number(cbor_sink *o, double d)
{
    if (isfinite(d) && d > -9223372036854775808.0 && d < 9223372036854775808.0 &&
        (double)(int64_t)d == d) {
        put_int(o, (int64_t)d);
    } else if (reserve(o, HEAD_MAX)) {
        o->pos += cbor_encode_double(d, o->buf + o->pos, o->size - o->pos);
    }
}

static size_t child_count(const cJSON *j)
{
    size_t n = 0;
    for (const cJSON *c = j->child; c != NULL; c = c->next)
        n++;
    return n;
}

static void put_json(cbor_sink *o, const cJSON *j, int depth);

/* A raw JSON literal: a decimal integer as a CBOR integer; anything else fails. */
static void put_raw_int(cbor_sink *o, const char *s)
{
    char *end = NULL;
    errno = 0;
    if (s == NULL || *s == '\0') {
        o->ok = false;
    } else if (*s == '-') {
        long long v = strtoll(s, &end, 10);
        if (*end != '\0' || errno != 0)
            o->ok = false;
        else
            put_int(o, v);
    } else {
        unsigned long long v = strtoull(s, &end, 10);
        if (*end != '\0' || errno != 0 || !isdigit((unsigned char)*s))
            o->ok = false;
        else
            put_with(o, cbor_encode_uint, v);
    }
}

static void put_container(cbor_sink *o, const cJSON *j, bool object, int depth)
{
    if (depth >= OTA_JSON_CBOR_DEPTH) {
        o->ok = false;
        return;
    }
    size_t n = child_count(j);
    put_size(o, object ? cbor_encode_map_start : cbor_encode_array_start, n);
    for (const cJSON *c = j->child; c != NULL && o->ok; c = c->next) {
        if (object) {
            if (c->string == NULL) {
                o->ok = false;
                return;
            }
            put_text(o, c->string);
        }
        put_json(o, c, depth + 1);
    }
}

static void put_json(cbor_sink *o, const cJSON *j, int depth)
{
    switch (j->type & 0xFF) {
    case cJSON_False:
        put_bool(o, false);
        break;
    case cJSON_True:
        put_bool(o, true);
        break;
    case cJSON_NULL:
        put_simple(o, cbor_encode_null);
        break;
    case cJSON_Number:
        put_number(o, j->valuedouble);
        break;
    case cJSON_String:
        if (j->valuestring == NULL)
            o->ok = false;
        else
            put_text(o, j->valuestring);
        break;
    case cJSON_Array:
        put_container(o, j, false, depth);
        break;
    case cJSON_Object:
        put_container(o, j, true, depth);
        break;
    case cJSON_Raw: /* only an integer literal (the task engine's exact 64-bit ids) */
        put_raw_int(o, j->valuestring);
        break;
    default: /* cJSON_Invalid */
        o->ok = false;
    }
}

/* A map's value that may be absent: an empty map then. */
static void put_doc(cbor_sink *o, const cJSON *j)
{
    if (j == NULL)
        put_size(o, cbor_encode_map_start, 0);
    else
        put_json(o, j, 1);
}

/* The sink's bytes, or NULL (and nothing allocated) when it failed. */
static uint8_t *sink_finish(cbor_sink *o, size_t *len)
{
    if (!o->ok || o->buf == NULL) {
        free(o->buf);
        return NULL;
    }
    *len = o->pos;
    return o->buf;
}

uint8_t *ota_codec_json_to_cbor(const cJSON *json, size_t *len)
{
    cbor_sink o = {.ok = json != NULL};
    if (json != NULL)
        put_json(&o, json, 0);
    return sink_finish(&o, len);
}

/* The version, as an unsigned integer (versions start at 0). */
static void put_version(cbor_sink *o, int64_t version)
{
    put_text(o, "version");
    put_with(o, cbor_encode_uint, version < 0 ? 0 : (uint64_t)version);
}

uint8_t *ota_codec_encode_shadow_accepted(int64_t version, const char *token, size_t *len)
{
    cbor_sink o = {.ok = true};
    put_size(&o, cbor_encode_map_start, token ? 2 : 1);
    put_version(&o, version);
    if (token != NULL) {
        put_text(&o, "token");
        put_text(&o, token);
    }
    return sink_finish(&o, len);
}

uint8_t *ota_codec_encode_shadow_state(int64_t version, const cJSON *reported, const cJSON *desired,
                                       const char *token, size_t *len)
{
    cbor_sink o = {.ok = true};
    put_size(&o, cbor_encode_map_start, token ? 4 : 3);
    put_version(&o, version);
    put_text(&o, "reported");
    put_doc(&o, reported);
    put_text(&o, "desired");
    put_doc(&o, desired);
    if (token != NULL) {
        put_text(&o, "token");
        put_text(&o, token);
    }
    return sink_finish(&o, len);
}

uint8_t *ota_codec_encode_shadow_delta(int64_t version, const cJSON *desired, size_t *len)
{
    cbor_sink o = {.ok = true};
    put_size(&o, cbor_encode_map_start, 2);
    put_version(&o, version);
    put_text(&o, "desired");
    put_doc(&o, desired);
    return sink_finish(&o, len);
}
