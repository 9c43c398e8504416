/*
 * pkg_msg.c — pkg/get, the package description and the pkg/desc error (ota_pkg_codec.h).
 *
 * The request is skimmed first (cbor_util.h's fast path, every request of a vehicle goes
 * through it): the plainest form — a definite map, the four keys once each as text, req a
 * uint, texts of 1..64 printable ASCII bytes, unknown keys' values passed over, nothing
 * after — is taken at once. Anything else is read with the strict pull reader, in place:
 * the top-level map's known keys are kept as item headers and checked one by one; req is
 * checked first so an error reply can echo it. The description (no `req`: it is signed
 * before any request, docs/protocol.md; the reply carries req in the COSE_Sign1's
 * unprotected header, ota_cose.h) is written straight into one buffer (cbor_out.h: heads
 * by libcbor's encoders, no item tree): definite-length maps and arrays, shortest integer
 * heads, text keys — the bytes libcbor's tree would serialize to.
 */
#include "ota_pkg_codec.h"
#include "cbor_out.h"
#include "cbor_util.h"
#include "ota_records.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pkg/get */

enum { K_REQ, K_TASK, K_CUR, K_TGT, K_COUNT };
static const char *const KEYS[K_COUNT] = {"req", "task", "cur", "tgt"};

static int want_word(const ota_cbor_item *v, const char *key, char out[OTA_ID_MAX + 1],
                     ota_error *err)
{
    ota_cbor_text t;
    int rc = ota_cbor_want_text(v, "", key, OTA_CBOR_REQUIRED, 1, OTA_ID_MAX, &t, err);
    if (rc == 1) {
        memcpy(out, t.ptr, t.len);
        out[t.len] = '\0';
    }
    return rc < 0 ? -1 : 0;
}

static int decode_root(ota_cbor_reader *r, ota_pkg_request *out, ota_error *err)
{
    ota_cbor_item root, v[K_COUNT];
    uint32_t found = 0;
    if (ota_cbor_next(r, &root) < 0)
        return -1;
    if (ota_cbor_map_scan(r, &root, "", "", KEYS, K_COUNT, v, &found, err) < 0)
        return -1;
#define VAL(k) ((found >> (k)) & 1 ? &v[k] : NULL)
    if (ota_cbor_want_uint(VAL(K_REQ), "", "req", OTA_CBOR_REQUIRED, 0, UINT64_MAX, &out->req,
                           err) < 0)
        return -1;
    out->req_valid = true;
    if (want_word(VAL(K_TASK), "task", out->task, err) < 0 ||
        want_word(VAL(K_CUR), "cur", out->cur, err) < 0 ||
        want_word(VAL(K_TGT), "tgt", out->tgt, err) < 0)
        return -1;
#undef VAL
    return 0;
}

/* The index in KEYS of the n-byte key k, or K_COUNT. */
static size_t key_of(const uint8_t *k, uint64_t n)
{
    for (size_t j = 0; j < K_COUNT; j++)
        if (strlen(KEYS[j]) == n && memcmp(KEYS[j], k, n) == 0)
            return j;
    return K_COUNT;
}

/* One known key's value at b[*pos] into out: req a uint, the others text of 1..64
 * bytes (the skim reads only printable ASCII text). 0, or -1 when not sure. */
static int skim_value(const uint8_t *b, size_t len, size_t *pos, size_t key, ota_pkg_request *out)
{
    unsigned major;
    uint64_t v;
    if (ota_cbor_skim_head(b, len, pos, &major, &v) != 0)
        return -1;
    if (key == K_REQ) {
        out->req = v;
        return major == 0 ? 0 : -1;
    }
    if (major != 3 || v < 1 || v > OTA_ID_MAX)
        return -1;
    char *word = key == K_TASK ? out->task : key == K_CUR ? out->cur : out->tgt;
    memcpy(word, b + *pos - v, v);
    word[v] = '\0';
    return 0;
}

/* The fast path (see the top): 0 and *out, or -1 when not sure (the strict reader then
 * decides, from the start). What it takes, the strict reader takes the same way. */
static int skim_pkg_get(const uint8_t *b, size_t len, ota_pkg_request *out)
{
    size_t pos = 0;
    unsigned major;
    uint64_t n, klen;
    uint32_t found = 0;
    if (ota_cbor_skim_head(b, len, &pos, &major, &n) != 0 || major != 5)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        if (ota_cbor_skim_head(b, len, &pos, &major, &klen) != 0 || major != 3)
            return -1;
        size_t key = key_of(b + pos - klen, klen);
        if (key == K_COUNT ? ota_cbor_skim(b, len, &pos) != 0
                           : (found >> key & 1) || skim_value(b, len, &pos, key, out) != 0)
            return -1;
        found |= key < K_COUNT ? 1u << key : 0;
    }
    if (found != (1u << K_COUNT) - 1 || pos != len)
        return -1;
    out->req_valid = true;
    return 0;
}

int ota_codec_decode_pkg_get(const void *buf, size_t len, ota_pkg_request *out, ota_error *err)
{
    *out = (ota_pkg_request){0};
    if (ota_cbor_check_size(len, OTA_PKG_GET_MAX_PAYLOAD, "pkg/get", err) != 0)
        return -1;
    if (skim_pkg_get(buf, len, out) == 0)
        return 0;
    *out = (ota_pkg_request){0};
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "pkg/get", err);
    int rc = decode_root(&r, out, err);
    if (ota_cbor_reader_end(&r) != 0) {
        rc = -1;
        out->req_valid = false; /* not CBOR after all: nothing read can be trusted */
    }
    return rc;
}

/* ---------------------------------------------------------------- writing */

/* key: a text value (NULL: ""). */
static void put_text(ota_cbor_out *o, const char *key, const char *v)
{
    ota_cbor_out_cstr(o, key);
    ota_cbor_out_cstr(o, v);
}

static void put_uint(ota_cbor_out *o, const char *key, uint64_t v)
{
    ota_cbor_out_cstr(o, key);
    ota_cbor_out_head(o, 0, v);
}

static void put_bytes(ota_cbor_out *o, const char *key, const uint8_t *b, size_t n)
{
    ota_cbor_out_cstr(o, key);
    ota_cbor_out_bytes(o, b, n);
}

static void put_bool(ota_cbor_out *o, const char *key, bool v)
{
    ota_cbor_out_cstr(o, key);
    ota_cbor_out_bool(o, v);
}

/* key: a map of n pairs (the caller writes them). */
static void put_map(ota_cbor_out *o, const char *key, size_t n)
{
    ota_cbor_out_cstr(o, key);
    ota_cbor_out_head(o, 5, n);
}

static void write_ecu(ota_cbor_out *o, const ota_desc_ecu *e)
{
    ota_cbor_out_head(o, 5, 5);
    put_text(o, "ecu", e->ecu);
    put_text(o, "type", e->component ? "component" : "ecu");
    put_uint(o, "order", e->order);
    put_text(o, "version", e->version);
    put_map(o, "file", 4);
    put_text(o, "id", e->file_id);
    put_text(o, "name", e->file_name);
    put_uint(o, "size", e->size);
    put_bytes(o, "sha256", e->sha256, 32);
}

static void write_ecus(ota_cbor_out *o, const ota_description *d)
{
    ota_cbor_out_cstr(o, "ecus");
    ota_cbor_out_head(o, 4, d->n_ecus);
    for (size_t i = 0; i < d->n_ecus; i++)
        write_ecu(o, &d->ecus[i]);
}

static void write_key(ota_cbor_out *o, const ota_wrapped_key *k)
{
    put_map(o, "key", 4);
    put_text(o, "alg", OTA_KEYWRAP_ALG);
    put_bytes(o, "epk", k->epk, sizeof k->epk);
    put_bytes(o, "iv", k->iv, sizeof k->iv);
    put_bytes(o, "ct", k->ct, sizeof k->ct);
}

static void write_header(ota_cbor_out *o, const ota_description *d)
{
    put_text(o, "task", d->task);
    put_uint(o, "package", d->package);
    put_text(o, "kind", d->delta ? "delta" : "full");
    put_text(o, "from", d->from);
    put_text(o, "to", d->to);
    put_bool(o, "compare_version", d->compare_version);
}

static void write_trailer(ota_cbor_out *o, const ota_description *d)
{
    put_text(o, "prompt", d->prompt);
    put_text(o, "result_info", d->result_info);
    put_text(o, "vin", d->vin);
    put_uint(o, "ctr", d->ctr);
    put_uint(o, "iat", d->iat < 0 ? 0 : (uint64_t)d->iat);
    put_uint(o, "exp", d->exp < 0 ? 0 : (uint64_t)d->exp);
    if (d->key != NULL)
        write_key(o, d->key);
}

/* install_mode / install_deadline, when the task is not forced (docs/protocol.md). */
static bool has_mode(const ota_description *d)
{
    return d->install_mode != NULL && strcmp(d->install_mode, "forced") != 0;
}

static void write_mode(ota_cbor_out *o, const ota_description *d)
{
    if (!has_mode(d))
        return;
    put_text(o, "install_mode", d->install_mode);
    if (d->install_deadline > 0)
        put_uint(o, "install_deadline", (uint64_t)d->install_deadline);
}

/* preconditions {battery_min_pct?, parked?, ignition_off?, not_charging?}: what to check
 * before installing; only the conditions the strategy sets are keys. */
static void write_pre(ota_cbor_out *o, const ota_description *d)
{
    static const char *const words[] = {"parked", "ignition_off", "not_charging"};
    size_t n = 0;
    for (unsigned b = 0; b < OTA_PRE_COUNT; b++)
        n += (d->pre_flags >> b) & 1;
    put_map(o, "preconditions", n);
    if (d->pre_flags & OTA_PRE_BATTERY)
        put_uint(o, "battery_min_pct", d->battery_min_pct);
    for (int i = 0; i < 3; i++)
        if (d->pre_flags & (OTA_PRE_PARKED << i))
            put_bool(o, words[i], true);
}

static void write_langs(ota_cbor_out *o, const char *key, const ota_lang_text *v, size_t n)
{
    put_map(o, key, n);
    for (size_t i = 0; i < n; i++)
        put_text(o, v[i].lang, v[i].text);
}

/* texts: {language, prompt?: {tag: text}, result_info?: {tag: text}} (issue 17). */
static void write_texts(ota_cbor_out *o, const ota_description *d)
{
    put_map(o, "texts", 1 + (d->n_prompts > 0) + (d->n_result_infos > 0));
    put_text(o, "language", d->language);
    if (d->n_prompts > 0)
        write_langs(o, "prompt", d->prompts, d->n_prompts);
    if (d->n_result_infos > 0)
        write_langs(o, "result_info", d->result_infos, d->n_result_infos);
}

/* rxswin: [RXSWIN...], the canonical list split at its commas. */
static void write_rxswin(ota_cbor_out *o, const char *list)
{
    size_t n = 1;
    for (const char *s = list; *s; s++)
        n += *s == ',';
    ota_cbor_out_cstr(o, "rxswin");
    ota_cbor_out_head(o, 4, *list ? n : 0);
    for (const char *s = list; *s;) {
        size_t k = strcspn(s, ",");
        ota_cbor_out_text(o, s, k);
        s += k + (s[k] == ',');
    }
}

uint8_t *ota_codec_encode_description(const ota_description *d, size_t *len)
{
    size_t n = 13 + (d->key != NULL) + has_mode(d) + (has_mode(d) && d->install_deadline > 0) +
               (d->pre_flags != 0) + (d->language != NULL) + (d->rxswin != NULL);
    ota_cbor_out o;
    ota_cbor_out_init(&o, 1024);
    ota_cbor_out_head(&o, 5, n);
    write_header(&o, d);
    write_ecus(&o, d);
    write_mode(&o, d);
    if (d->pre_flags != 0)
        write_pre(&o, d);
    if (d->language != NULL)
        write_texts(&o, d);
    if (d->rxswin != NULL)
        write_rxswin(&o, d->rxswin);
    write_trailer(&o, d);
    return ota_cbor_out_take(&o, len);
}

uint8_t *ota_codec_encode_pkg_error(bool has_req, uint64_t req, const char *err, const char *msg,
                                    size_t *len)
{
    ota_cbor_out o;
    ota_cbor_out_init(&o, 64 + (msg ? strlen(msg) : 0));
    ota_cbor_out_head(&o, 5, has_req ? 3 : 2);
    if (has_req)
        put_uint(&o, "req", req);
    put_text(&o, "err", err);
    put_text(&o, "msg", msg);
    return ota_cbor_out_take(&o, len);
}
