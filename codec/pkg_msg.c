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
 * unprotected header, ota_cose.h) is built as a libcbor item
 * tree (a few dozen items) and serialized with cbor_serialize_alloc: definite-length maps
 * and arrays, shortest integer heads, text keys.
 */
#include "ota_pkg_codec.h"
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

/* ---------------------------------------------------------------- tree building */

/* Adds key: value to map, consuming value (NULL: fails). */
static bool put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    cbor_item_t *k = cbor_build_string(key);
    bool ok = k != NULL && value != NULL &&
              cbor_map_add(map, (struct cbor_pair){.key = k, .value = value});
    if (k != NULL)
        cbor_decref(&k);
    if (value != NULL)
        cbor_decref(&value);
    return ok;
}

static cbor_item_t *text(const char *s)
{
    return cbor_build_string(s ? s : "");
}

static cbor_item_t *bytes(const uint8_t *b, size_t n)
{
    return cbor_build_bytestring(b, n);
}

static cbor_item_t *file_map(const ota_desc_ecu *e)
{
    cbor_item_t *m = cbor_new_definite_map(4);
    if (m != NULL &&
        !(put(m, "id", text(e->file_id)) && put(m, "name", text(e->file_name)) &&
          put(m, "size", ota_cbor_build_uint(e->size)) && put(m, "sha256", bytes(e->sha256, 32))))
        cbor_decref(&m);
    return m;
}

static cbor_item_t *ecu_map(const ota_desc_ecu *e)
{
    cbor_item_t *m = cbor_new_definite_map(5);
    if (m != NULL &&
        !(put(m, "ecu", text(e->ecu)) && put(m, "type", text(e->component ? "component" : "ecu")) &&
          put(m, "order", ota_cbor_build_uint(e->order)) && put(m, "version", text(e->version)) &&
          put(m, "file", file_map(e))))
        cbor_decref(&m);
    return m;
}

static cbor_item_t *ecus_array(const ota_description *d)
{
    cbor_item_t *a = cbor_new_definite_array(d->n_ecus);
    for (size_t i = 0; a != NULL && i < d->n_ecus; i++) {
        cbor_item_t *e = ecu_map(&d->ecus[i]);
        bool ok = e != NULL && cbor_array_push(a, e);
        if (e != NULL)
            cbor_decref(&e);
        if (!ok)
            cbor_decref(&a);
    }
    return a;
}

static cbor_item_t *key_map(const ota_wrapped_key *k)
{
    cbor_item_t *m = cbor_new_definite_map(4);
    if (m != NULL &&
        !(put(m, "alg", text(OTA_KEYWRAP_ALG)) && put(m, "epk", bytes(k->epk, sizeof k->epk)) &&
          put(m, "iv", bytes(k->iv, sizeof k->iv)) && put(m, "ct", bytes(k->ct, sizeof k->ct))))
        cbor_decref(&m);
    return m;
}

static bool put_header(cbor_item_t *m, const ota_description *d)
{
    return put(m, "task", text(d->task)) && put(m, "package", ota_cbor_build_uint(d->package)) &&
           put(m, "kind", text(d->delta ? "delta" : "full")) && put(m, "from", text(d->from)) &&
           put(m, "to", text(d->to)) &&
           put(m, "compare_version", cbor_build_bool(d->compare_version));
}

static bool put_trailer(cbor_item_t *m, const ota_description *d)
{
    return put(m, "prompt", text(d->prompt)) && put(m, "result_info", text(d->result_info)) &&
           put(m, "vin", text(d->vin)) && put(m, "ctr", ota_cbor_build_uint(d->ctr)) &&
           put(m, "iat", ota_cbor_build_uint(d->iat < 0 ? 0 : (uint64_t)d->iat)) &&
           put(m, "exp", ota_cbor_build_uint(d->exp < 0 ? 0 : (uint64_t)d->exp)) &&
           (d->key == NULL || put(m, "key", key_map(d->key)));
}

/* Serializes item (consumed) into a malloc'd buffer. */
static uint8_t *finish(cbor_item_t *item, bool ok, size_t *len)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    size_t n = ok ? cbor_serialize_alloc(item, &buf, &size) : 0;
    if (item != NULL)
        cbor_decref(&item);
    if (n == 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* install_mode / install_deadline, when the task is not forced (docs/protocol.md). */
static bool has_mode(const ota_description *d)
{
    return d->install_mode != NULL && strcmp(d->install_mode, "forced") != 0;
}

static bool put_mode(cbor_item_t *m, const ota_description *d)
{
    return !has_mode(d) ||
           (put(m, "install_mode", text(d->install_mode)) &&
            (d->install_deadline <= 0 ||
             put(m, "install_deadline", ota_cbor_build_uint((uint64_t)d->install_deadline))));
}

/* {battery_min_pct?, parked?, ignition_off?, not_charging?}: what to check before
 * installing; only the conditions the strategy sets are keys. */
static cbor_item_t *pre_map(const ota_description *d)
{
    static const char *const words[] = {"parked", "ignition_off", "not_charging"};
    size_t n = 0;
    for (unsigned b = 0; b < OTA_PRE_COUNT; b++)
        n += (d->pre_flags >> b) & 1;
    cbor_item_t *m = cbor_new_definite_map(n);
    bool ok = m != NULL && (!(d->pre_flags & OTA_PRE_BATTERY) ||
                            put(m, "battery_min_pct", ota_cbor_build_uint(d->battery_min_pct)));
    for (int i = 0; ok && i < 3; i++) {
        if (d->pre_flags & (OTA_PRE_PARKED << i))
            ok = put(m, words[i], cbor_build_bool(true));
    }
    if (!ok && m != NULL)
        cbor_decref(&m);
    return m;
}

static cbor_item_t *lang_map(const ota_lang_text *v, size_t n)
{
    cbor_item_t *m = cbor_new_definite_map(n);
    bool ok = m != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = put(m, v[i].lang, text(v[i].text));
    if (!ok && m != NULL)
        cbor_decref(&m);
    return m;
}

/* texts: {language, prompt?: {tag: text}, result_info?: {tag: text}} (issue 17). */
static cbor_item_t *texts_map(const ota_description *d)
{
    cbor_item_t *m = cbor_new_definite_map(1 + (d->n_prompts > 0) + (d->n_result_infos > 0));
    bool ok = m != NULL && put(m, "language", text(d->language)) &&
              (d->n_prompts == 0 || put(m, "prompt", lang_map(d->prompts, d->n_prompts))) &&
              (d->n_result_infos == 0 ||
               put(m, "result_info", lang_map(d->result_infos, d->n_result_infos)));
    if (!ok && m != NULL)
        cbor_decref(&m);
    return m;
}

/* rxswin: [RXSWIN...], the canonical list split at its commas. */
static cbor_item_t *rxswin_array(const char *list)
{
    size_t n = 1;
    for (const char *s = list; *s; s++)
        n += *s == ',';
    cbor_item_t *a = cbor_new_definite_array(n);
    bool ok = a != NULL;
    for (const char *s = list; ok && *s;) {
        size_t k = strcspn(s, ",");
        cbor_item_t *t = cbor_build_stringn(s, k);
        ok = t != NULL && cbor_array_push(a, t);
        if (t != NULL)
            cbor_decref(&t);
        s += k + (s[k] == ',');
    }
    if (!ok && a != NULL)
        cbor_decref(&a);
    return a;
}

uint8_t *ota_codec_encode_description(const ota_description *d, size_t *len)
{
    size_t n = 13 + (d->key != NULL) + has_mode(d) + (has_mode(d) && d->install_deadline > 0) +
               (d->pre_flags != 0) + (d->language != NULL) + (d->rxswin != NULL);
    cbor_item_t *m = cbor_new_definite_map(n);
    bool ok = m != NULL && put_header(m, d) && put(m, "ecus", ecus_array(d)) && put_mode(m, d) &&
              (d->pre_flags == 0 || put(m, "preconditions", pre_map(d))) &&
              (d->language == NULL || put(m, "texts", texts_map(d))) &&
              (d->rxswin == NULL || put(m, "rxswin", rxswin_array(d->rxswin))) && put_trailer(m, d);
    return finish(m, ok, len);
}

uint8_t *ota_codec_encode_pkg_error(bool has_req, uint64_t req, const char *err, const char *msg,
                                    size_t *len)
{
    cbor_item_t *m = cbor_new_definite_map(has_req ? 3 : 2);
    bool ok = m != NULL && (!has_req || put(m, "req", ota_cbor_build_uint(req))) &&
              put(m, "err", text(err)) && put(m, "msg", text(msg));
    return finish(m, ok, len);
}
