/*
 * pkg.c — ota/v1/{vin}/pkg/get: the signed package description (SPEC §3, §6;
 * docs/protocol.md, docs/vehicle-crypto.md), signed before it is asked for (issue 14).
 *
 * A description is built on the broker thread from memory only: the vehicle's execution
 * of the task (tasks.h: assigned, not rejected, the task active and inside its window, the
 * execution not final), the rules of describe.c, the package's content key wrapped for the
 * vehicle when the package is encrypted (keys.h), vin, the next description counter, iat
 * and exp. It is encoded without the request's `req` and handed to the signer threads
 * (signer.h); on TICK the signed descriptions come back in the order they were built.
 *
 * Two ways in: ota_pkg_presign, when the engine sends a task notice (the vehicle will ask
 * soon, with cur = its firmware in the catalog), and ota_handle_pkg_get. A notice only
 * queues its vehicle. TICK builds the queued descriptions once no notice was queued for
 * PRESIGN_QUIET_MS (or the oldest has waited PRESIGN_MAX_WAIT_MS: a steady trickle of
 * notices does not starve it), at most PRESIGN_BUDGET_NS per pass and while the signer
 * has fewer than PRESIGN_BACKLOG waiting: a burst of notices goes out first, at the rate
 * it has without pre-signing (on 2 cores every CPU µs counts), and pre-signing follows at
 * the signer's pace (the signer's wake-ups keep TICK coming when the broker is otherwise
 * idle). A vehicle that asks before its turn is signed on request, as without it. Each vehicle has
 * one slot holding its newest description, with a fingerprint of everything it says
 * (task, cur, tgt, package, ECUs, texts, the keys it was wrapped with): a request whose
 * description would have the same fingerprint, while the slot's is fresh (less than half
 * its plugin_opt_description_ttl_s old), gets that description — at once when it is
 * signed, else on TICK when it is — so a retry gets the same signed bytes and a
 * pre-signed description costs the request no signature. Anything else (another cur, a
 * catalog or vehicle change, a stale or failed one) builds a new description with a
 * higher counter, which replaces the slot's: counters grow in the order the vehicle sees
 * descriptions, and a description never served leaves no trace (its counter may be given
 * again after a restart: no vehicle saw it). Deciding and fingerprinting cost more than
 * the rest of a request together, so the slot's description also remembers the request
 * it was built or last matched for (task, cur, tgt) and the catalog's generation then
 * (catalog.h: every change gives a new one): a request alike, with the catalog unchanged,
 * would get the same fingerprint and is served without deciding again (held_for). The reply
 * is a copy of the signed message with {"req": req} added to its unprotected header
 * (ota_cose.h).
 *
 * The first time a description is served, it is appended to the spool (kind 5,
 * ota_spool_desc.h: a memcpy into the page cache, like a report; no fsync) before the
 * reply goes out, and its files are granted (grants.h: file/get may fetch them). The writer
 * stores it from the spool with the reports (SPEC §3: each description returned is
 * persisted), retrying while the store fails; a broker killed before that stores it when it
 * restarts on its spool, whose unstored descriptions it also grants again at start
 * (ota_pkg_load_spooled). A vehicle gone before its reply still has its description
 * spooled; at a clean stop the signer finishes every description built and those that
 * were asked for are spooled. A spool that refuses the append (a full disk) refuses the
 * request: nothing is granted.
 *
 * Memory: a description lives while its slot holds it (fresh, at most
 * plugin_opt_presign_max slots; the oldest leaves first) and while the signer has it. Every refusal
 * is {req?, err, msg} on pkg/desc (content type application/cbor), logged and counted; nothing is
 * granted or stored for it.
 */
#include "batch.h"
#include "catalog.h"
#include "control.h"
#include "engine.h"
#include "describe.h"
#include "grants.h"
#include "keys.h"
#include "map.h"
#include "ota_cose.h"
#include "ota_plugin.h"
#include "ota_pkg_codec.h"
#include "ota_spool_desc.h"
#include "ota_errf.h"
#include "pkg.h"
#include "signer.h"
#include "tasks.h"
#include "wake.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FP_LEN 16                 /* bytes of SHA-256 kept as a description's fingerprint */
#define PRESIGN_BUDGET_NS 2000000 /* of broker-thread time per TICK */
#define PRESIGN_BACKLOG 256       /* descriptions in the signer before pre-signing waits */
#define PRESIGN_QUIET_MS 200      /* without notices before pre-signing starts */
#define PRESIGN_MAX_WAIT_MS 2000  /* the oldest waits no longer than this */

/* A notice sent: the vehicle whose description is to be pre-signed, and the task. */
typedef struct {
    int64_t at; /* ota_mono_ms when queued */
    char vin[OTA_VIN_LEN + 1];
    char task[OTA_ID_MAX + 1];
} presign_req;

/* A request waiting for its description to come back from the signer. */
typedef struct waiter {
    struct waiter *next;
    mosquitto_property *props; /* the request's Response Topic and Correlation Data */
    uint64_t req;
    char client_id[];
} waiter;

/* A description: built on the broker thread, signed by a signer thread, served to the
 * requests that match it. One allocation (the texts follow it); reference-counted by its
 * holders (the vehicle's slot, the signer, the store queue), all on the broker thread
 * except the signer's sign part. */
typedef struct desc desc;
struct desc {
    ota_sign_job sign; /* first: the signer's part; sign.cose is the result */
    unsigned refs;
    bool ready;        /* back from the signer (sign.cose NULL: signing failed) */
    bool served;       /* answered at least once: granted and queued for the store */
    bool cached;       /* held by its vehicle's slot and in the fresh list */
    desc *prev, *next; /* the fresh list, oldest first (cached only) */
    waiter *waiters, **last_waiter;
    uint8_t fp[FP_LEN];
    size_t held;                /* bytes counted in held_bytes while cached */
    uint64_t package, ctr, req; /* req: of the first request served (the stored row's) */
    int64_t iat, exp, fresh_until;
    /* What a request for (t, cur, tgt) gets while the catalog is at generation gen: this,
     * without deciding again (held_for); t is compared by address, its id too. */
    const ota_task *t;
    uint64_t gen;
    char vin[OTA_VIN_LEN + 1];
    const char *task, *files; /* into text; files: sha256 hex, comma-separated */
    const char *cur, *tgt;    /* into text */
    char text[];
};

/* A vehicle's newest description (map record, by VIN). */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    desc *d;
} slot;

struct ota_pkg {
    ota_pkg_counters counters;
    ota_signer *signer;
    ota_map slots;         /* slot by VIN */
    desc *oldest, *newest; /* the fresh list */
    size_t n_cached;
    size_t cached_bytes; /* the descriptions' allocations, signed messages included */
    EVP_MD_CTX *md;      /* fingerprints (broker thread) */
    EVP_MD *sha256;      /* fetched once: EVP_sha256() is fetched again at every init */
    presign_req *todo;   /* notices whose descriptions are to be pre-signed: [head, n) */
    size_t todo_head, todo_n, todo_cap;
};

/* ---------------------------------------------------------------- errors */

static const char *const ERR_NAMES[OTA_PKG_ERR_COUNT] = {
    "E_BAD_CBOR",      "E_BAD_REQUEST",      "E_TOO_LARGE",  "E_NOT_ASSIGNED",
    "E_TASK_INACTIVE", "E_VERSION_MISMATCH", "E_NO_PACKAGE", "E_INTERNAL"};

const char *ota_pkg_err_name(ota_pkg_err e)
{
    return (unsigned)e < OTA_PKG_ERR_COUNT ? ERR_NAMES[e] : "E_INTERNAL";
}

typedef struct {
    ota_pkg_err code;
    char msg[OTA_ERRMSG_MAX];
} refusal;

static int refuse(refusal *r, ota_pkg_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(refusal *r, ota_pkg_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->code = code;
    return -1;
}

static void answer_refusal(ota_plugin *p, const ota_request *req, bool has_req, uint64_t req_id,
                           const refusal *r)
{
    p->pkg->counters.refused[r->code]++;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: pkg/get from %s refused: %s: %s", req->vin,
                         ota_pkg_err_name(r->code), r->msg);
    size_t len = 0;
    uint8_t *buf =
        ota_codec_encode_pkg_error(has_req, req_id, ota_pkg_err_name(r->code), r->msg, &len);
    ota_reply_cbor(req, "pkg/desc", buf, len);
}

static ota_pkg_err from_codec(ota_err_code c)
{
    return c == OTA_E_BAD_CBOR    ? OTA_PKG_E_BAD_CBOR
           : c == OTA_E_TOO_LARGE ? OTA_PKG_E_TOO_LARGE
           : c == OTA_E_INTERNAL  ? OTA_PKG_E_INTERNAL
                                  : OTA_PKG_E_BAD_REQUEST;
}

/* ---------------------------------------------------------------- the task */

static bool final_state(uint8_t s)
{
    return s == OTA_EXEC_SUCCEEDED || s == OTA_EXEC_FAILED || s == OTA_EXEC_CANCELED;
}

/* The task `id`, assigned to vin and still running there. */
static const ota_task *running_task(ota_plugin *p, const char *vin, const char *id, refusal *r)
{
    const ota_task *t = ota_tasks_get(p->tasks, id);
    const ota_task_exec *x = t ? ota_task_find_exec(t, vin) : NULL;
    if (x == NULL || x->state == OTA_EXEC_REJECTED) {
        refuse(r, OTA_PKG_E_NOT_ASSIGNED, "task %s is not assigned to %s", id, vin);
        return NULL;
    }
    int64_t now = ota_now_ms();
    if (t->state != OTA_TASK_ACTIVE)
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is %s", id, ota_task_state_name(t->state));
    else if (final_state(x->state))
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is %s on %s", id,
               ota_exec_state_name((ota_exec_state)x->state), vin);
    else if ((t->rec.start_ms >= 0 && now < t->rec.start_ms) ||
             (t->rec.end_ms >= 0 && now >= t->rec.end_ms))
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is outside its time window", id);
    else
        return t;
    return NULL;
}

/* ---------------------------------------------------------------- deciding */

/* What a description is made of: the task, the vehicle, the versions; then what
 * describe.c decided, its fingerprint, and the description itself (with what it owns). */
typedef struct {
    const ota_task *t;
    const ota_vehicle *v;
    const char *cur, *tgt;
    ota_describe_out d;
    uint8_t fp[FP_LEN];
    ota_wrapped_key key;
    ota_description desc;
} issue;

static void fp_text(EVP_MD_CTX *md, const char *s)
{
    s = s ? s : "";
    EVP_DigestUpdate(md, s, strlen(s) + 1); /* with its NUL: "ab","c" differs from "a","bc" */
}

static void fp_u64(EVP_MD_CTX *md, uint64_t v)
{
    EVP_DigestUpdate(md, &v, sizeof v);
}

/* Everything the description says but its counter, times and wrapped key's randomness:
 * two requests with the same fingerprint may get the same signed description. */
static int fingerprint(ota_pkg *k, issue *is)
{
    const ota_package_rec *pkg = is->d.pkg;
    uint8_t md[EVP_MAX_MD_SIZE];
    if (EVP_DigestInit_ex(k->md, k->sha256, NULL) != 1)
        return -1;
    fp_text(k->md, is->t->rec.id);
    fp_text(k->md, is->cur);
    fp_text(k->md, is->tgt);
    fp_u64(k->md, pkg->id);
    fp_u64(k->md, (uint64_t)pkg->delta << 1 | is->d.compare_version);
    fp_text(k->md, pkg->prompt);
    fp_text(k->md, pkg->result_info);
    fp_text(k->md, pkg->language); /* per-language texts and RXSWINs (issue 17) */
    for (size_t i = 0; i < pkg->n_prompts; i++) {
        fp_text(k->md, pkg->prompts[i].lang);
        fp_text(k->md, pkg->prompts[i].text);
    }
    fp_u64(k->md, pkg->n_prompts << 32 | pkg->n_result_infos);
    for (size_t i = 0; i < pkg->n_result_infos; i++) {
        fp_text(k->md, pkg->result_infos[i].lang);
        fp_text(k->md, pkg->result_infos[i].text);
    }
    fp_text(k->md, pkg->rxswin);
    fp_u64(k->md, (uint64_t)is->t->rec.install_mode);
    fp_u64(k->md, (uint64_t)is->t->rec.install_deadline_ms);
    fp_u64(k->md, (uint64_t)is->d.strategy->pre_flags << 8 | is->d.strategy->battery_min_pct);
    fp_u64(k->md, is->d.n_ecus);
    for (size_t i = 0; i < is->d.n_ecus; i++) {
        const ota_desc_ecu *e = &is->d.ecus[i];
        fp_text(k->md, e->ecu);
        fp_u64(k->md, (uint64_t)e->order << 1 | e->component);
        fp_text(k->md, e->version);
        fp_text(k->md, e->file_id);
        fp_text(k->md, e->file_name);
        fp_u64(k->md, e->size);
    }
    if (pkg->encrypted) { /* the keys it is wrapped with */
        fp_text(k->md, pkg->sealed_key);
        EVP_DigestUpdate(k->md, is->v->public_key, OTA_PUBKEY_LEN);
    }
    if (EVP_DigestFinal_ex(k->md, md, NULL) != 1)
        return -1;
    memcpy(is->fp, md, FP_LEN);
    return 0;
}

/* The rules of describe.c for is (t, v, cur, tgt set), and the fingerprint. */
static int decide(ota_plugin *p, issue *is, refusal *r)
{
    ota_describe_in in = {.cur = is->cur,
                          .tgt = is->tgt,
                          .model = is->t->rec.model,
                          .series = is->t->rec.series,
                          .version = is->t->rec.version,
                          .type = is->t->rec.type};
    ota_desc_result dr = ota_describe(p->catalog, is->v, &in, &is->d);
    if (dr != OTA_DESC_OK)
        return refuse(
            r, dr == OTA_DESC_VERSION_MISMATCH ? OTA_PKG_E_VERSION_MISMATCH : OTA_PKG_E_NO_PACKAGE,
            "%s", is->d.msg);
    return fingerprint(p->pkg, is) == 0 ? 0 : refuse(r, OTA_PKG_E_INTERNAL, "out of memory");
}

static void issue_fini(issue *is)
{
    if (is->d.pkg != NULL && is->d.pkg->encrypted) /* a key may have been wrapped */
        OPENSSL_cleanse(&is->key, sizeof is->key);
    ota_describe_free(&is->d);
}

static int wrap_key(ota_plugin *p, issue *is, refusal *r)
{
    uint8_t ck[OTA_CONTENT_KEY_LEN];
    const ota_package_rec *pkg = is->d.pkg;
    int rc = pkg->sealed_key ? ota_keys_open_content(p->keys, pkg->id, pkg->sealed_key, ck) : -1;
    if (rc != 0) {
        OPENSSL_cleanse(ck, sizeof ck);
        return refuse(r, OTA_PKG_E_INTERNAL,
                      "the content key of package %" PRIu64 " cannot be opened", pkg->id);
    }
    rc = ota_codec_key_wrap(ck, is->v->public_key, is->v->vin, &is->key);
    OPENSSL_cleanse(ck, sizeof ck);
    if (rc != 0)
        return refuse(r, OTA_PKG_E_NO_PACKAGE,
                      "the content key cannot be wrapped for the vehicle's public_key");
    is->desc.key = &is->key;
    return 0;
}

/* ---------------------------------------------------------------- descriptions */

static void waiter_free(waiter *w)
{
    mosquitto_property_free_all(&w->props);
    free(w);
}

static void desc_unref(desc *d)
{
    if (d == NULL || --d->refs > 0)
        return;
    for (waiter *w = d->waiters, *next; w != NULL; w = next) {
        next = w->next;
        waiter_free(w);
    }
    free(d->sign.payload);
    free(d->sign.cose);
    free(d);
}

static ota_map_key slot_key(const void *rec)
{
    return ota_map_key_str(((const slot *)rec)->vin);
}

static void list_unlink(ota_pkg *k, desc *d)
{
    *(d->prev ? &d->prev->next : &k->oldest) = d->next;
    *(d->next ? &d->next->prev : &k->newest) = d->prev;
    d->prev = d->next = NULL;
}

static void list_append(ota_pkg *k, desc *d)
{
    d->prev = k->newest;
    d->next = NULL;
    *(k->newest ? &k->newest->next : &k->oldest) = d;
    k->newest = d;
}

/* d leaves the fresh list and the slot's count (the slot record is the caller's). */
static void release_cached(ota_pkg *k, desc *d)
{
    list_unlink(k, d);
    d->cached = false;
    k->n_cached--;
    k->cached_bytes -= d->held;
    desc_unref(d);
}

/* d's vehicle forgets it: its slot is removed. */
static void uncache(ota_pkg *k, desc *d)
{
    slot *s = ota_map_get_str(&k->slots, d->vin);
    if (s != NULL && s->d == d)
        ota_map_remove(&k->slots, s, NULL);
    release_cached(k, d);
}

/* d becomes its vehicle's newest description (replacing the slot's). 0, or -1. */
static int cache(ota_pkg *k, desc *d)
{
    slot *s = ota_map_get_str(&k->slots, d->vin);
    if (s == NULL) {
        slot rec = {.d = NULL};
        memcpy(rec.vin, d->vin, sizeof rec.vin);
        if ((s = ota_map_put(&k->slots, &rec)) == NULL)
            return -1;
    } else {
        release_cached(k, s->d);
    }
    s->d = d;
    d->refs++;
    d->cached = true;
    list_append(k, d);
    k->n_cached++;
    d->held = sizeof *d + strlen(d->task) + strlen(d->cur) + strlen(d->tgt) + strlen(d->files) + 4 +
              sizeof(slot);
    k->cached_bytes += d->held;
    return 0;
}

/* d may still serve: fresh, not a failed signature, and still the vehicle's newest — no
 * higher counter granted since (another broker's description, read from a shared store
 * when the vehicle came back here: engine_grants.c). */
static bool usable(ota_plugin *p, const desc *d, int64_t now)
{
    return now < d->fresh_until && !(d->ready && d->sign.cose == NULL) &&
           d->ctr >= ota_grants_counter(p->grants, d->vin);
}

/* The slot's description when it may serve is (same fingerprint, usable); it then also
 * serves requests like is's while the catalog stays at generation gen (held_for). */
static desc *cached_for(ota_plugin *p, const issue *is, int64_t now, uint64_t gen)
{
    slot *s = ota_map_get_str(&p->pkg->slots, is->v->vin);
    desc *d = s ? s->d : NULL;
    if (d == NULL || memcmp(d->fp, is->fp, FP_LEN) != 0 || !usable(p, d, now))
        return NULL;
    d->t = is->t; /* the same fingerprint: the same task id, cur and tgt */
    d->gen = gen;
    return d;
}

/* The vehicle's description when a request for (t, q's cur and tgt) got it and the catalog
 * has not changed since (nor the task: the same object, and its fields a description
 * reads are set when it is created): deciding again would give the same fingerprint. */
static desc *held_for(ota_plugin *p, const char *vin, const ota_task *t, const ota_pkg_request *q,
                      int64_t now)
{
    slot *s = ota_map_get_str(&p->pkg->slots, vin);
    desc *d = s ? s->d : NULL;
    if (d == NULL || d->gen != ota_catalog_gen(p->catalog) || d->t != t || !usable(p, d, now) ||
        strcmp(d->cur, q->cur) != 0 || strcmp(d->tgt, q->tgt) != 0 ||
        strcmp(d->task, t->rec.id) != 0)
        return NULL;
    return d;
}

/* Descriptions leave memory when no longer fresh, and the oldest when the slots are over
 * plugin_opt_presign_max (keep_room: one more is coming). Only descriptions back from the
 * signer leave: the counter of one still signing must stay reserved. */
static void expire(ota_plugin *p, int64_t now, bool keep_room)
{
    ota_pkg *k = p->pkg;
    size_t max = p->cfg.presign_max;
    while (k->oldest != NULL && k->oldest->ready &&
           (now >= k->oldest->fresh_until || k->n_cached + keep_room > max))
        uncache(k, k->oldest);
}

/* The vehicle's next description counter: above every one issued (grants.h) and the one
 * of its newest description, served or not. */
static uint64_t next_counter(ota_plugin *p, const char *vin)
{
    uint64_t c = ota_grants_counter(p->grants, vin);
    slot *s = ota_map_get_str(&p->pkg->slots, vin);
    return (s && s->d->ctr > c ? s->d->ctr : c) + 1;
}

/* A description object for is->desc (texts copied after it). NULL when out of memory. */
static desc *desc_new(const issue *is)
{
    const ota_description *d = &is->desc;
    size_t task_len = strlen(d->task) + 1, cur_len = strlen(d->from) + 1;
    size_t tgt_len = strlen(d->to) + 1, files_len = d->n_ecus * (OTA_SHA256_HEX + 1);
    desc *j = malloc(sizeof *j + task_len + cur_len + tgt_len + files_len);
    if (j == NULL)
        return NULL;
    *j = (desc){.refs = 1, /* the signer's */
                .package = d->package,
                .ctr = d->ctr,
                .iat = d->iat,
                .exp = d->exp,
                .t = is->t};
    j->last_waiter = &j->waiters;
    memcpy(j->fp, is->fp, FP_LEN);
    snprintf(j->vin, sizeof j->vin, "%s", d->vin);
    char *t = j->text;
    j->task = memcpy(t, d->task, task_len);
    j->cur = memcpy(t += task_len, d->from, cur_len);
    j->tgt = memcpy(t += cur_len, d->to, tgt_len);
    j->files = t += tgt_len;
    for (size_t i = 0; i < d->n_ecus; i++, t += OTA_SHA256_HEX + 1) {
        memcpy(t, d->ecus[i].file_id, OTA_SHA256_HEX);
        t[OTA_SHA256_HEX] = i + 1 < d->n_ecus ? ',' : '\0';
    }
    return j;
}

/* Builds the description of is (decided), encodes it, hands it to the signer and makes it
 * the vehicle's newest. The new description, or NULL with r. */
static desc *build(ota_plugin *p, issue *is, refusal *r)
{
    const ota_package_rec *pkg = is->d.pkg;
    int64_t now = ota_now_ms(), ttl = (int64_t)p->cfg.description_ttl_s * 1000;
    is->desc = (ota_description){.task = is->t->rec.id,
                                 .package = pkg->id,
                                 .delta = pkg->delta,
                                 .from = is->cur,
                                 .to = is->tgt,
                                 .compare_version = is->d.compare_version,
                                 .n_ecus = is->d.n_ecus,
                                 .ecus = is->d.ecus,
                                 .prompt = pkg->prompt,
                                 .result_info = pkg->result_info,
                                 .language = pkg->language,
                                 .n_prompts = pkg->n_prompts,
                                 .prompts = pkg->prompts,
                                 .n_result_infos = pkg->n_result_infos,
                                 .result_infos = pkg->result_infos,
                                 .rxswin = pkg->rxswin,
                                 .install_mode = ota_install_mode_name(is->t->rec.install_mode),
                                 .install_deadline = is->t->rec.install_deadline_ms,
                                 .pre_flags = is->d.strategy->pre_flags,
                                 .battery_min_pct = is->d.strategy->battery_min_pct,
                                 .vin = is->v->vin,
                                 .ctr = next_counter(p, is->v->vin),
                                 .iat = now,
                                 .exp = now + ttl};
    if (pkg->encrypted && wrap_key(p, is, r) != 0)
        return NULL;
    desc *d = desc_new(is);
    if (d != NULL) {
        d->fresh_until = now + ttl / 2;
        d->gen = ota_catalog_gen(p->catalog); /* what decide() read */
    }
    size_t len = 0;
    uint8_t *payload = d ? ota_codec_encode_description(&is->desc, &len) : NULL;
    expire(p, now, true);
    if (payload == NULL || cache(p->pkg, d) != 0) {
        free(payload);
        desc_unref(d);
        refuse(r, OTA_PKG_E_INTERNAL, "out of memory");
        return NULL;
    }
    d->sign.payload = payload;
    d->sign.payload_len = len;
    ota_signer_submit(p->pkg->signer, &d->sign);
    return d;
}

/* ---------------------------------------------------------------- serving */

/* The first time d is served (req_id the request's): it is appended to the spool, before
 * the reply goes out (the writer stores it from there, a restart after a kill -9 too), and
 * its files are granted. A vehicle is never told of a description that was not. 0, or -1
 * when the spool refused it (a full disk): nothing granted, the request is to be refused
 * (the vehicle asks again). */
static int mark_served(ota_plugin *p, desc *d, uint64_t req_id)
{
    if (d->served)
        return 0;
    ota_description_rec rec = {.vin = d->vin,
                               .counter = d->ctr,
                               .task = d->task,
                               .req = req_id,
                               .package = d->package,
                               .files = d->files,
                               .cose = d->sign.cose,
                               .cose_len = d->sign.cose_len,
                               .issued_ms = d->iat,
                               .expires_ms = d->exp};
    if (p->spool == NULL || ota_spool_append_description(p->spool, &rec, ota_now_ms()) != 0)
        return -1;
    d->served = true;
    d->req = req_id;
    p->pkg->counters.issued++;
    if (ota_grants_add(p->grants, d->vin, d->ctr, d->files) != 0)
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: description %" PRIu64 " of %s not granted: "
                             "out of memory",
                             d->ctr, d->vin);
    return 0;
}

/* Answers req with d (signed): the signed message with {"req": req_id} added, built in the
 * buffer the broker takes over (its one copy on the way out). */
static void answer(ota_plugin *p, desc *d, const ota_request *req, uint64_t req_id)
{
    size_t cap = d->sign.cose_len + OTA_COSE_REQ_EXTRA;
    uint8_t *m = mosquitto_malloc(cap);
    size_t len = m ? ota_codec_cose_with_req(d->sign.cose, d->sign.cose_len, req_id, m, cap) : 0;
    if (len == 0) {
        mosquitto_free(m);
        refusal r;
        refuse(&r, OTA_PKG_E_INTERNAL, "out of memory");
        answer_refusal(p, req, true, req_id, &r);
        return;
    }
    if (mark_served(p, d, req_id) != 0) {
        mosquitto_free(m);
        refusal r;
        refuse(&r, OTA_PKG_E_INTERNAL,
               "description %" PRIu64 " not stored (spool write "
               "failed: %s): ask again",
               d->ctr, strerror(errno));
        answer_refusal(p, req, true, req_id, &r);
        return;
    }
    ota_reply_owned(req, "pkg/desc", m, len, "application/cose");
}

/* req waits for d (being signed). 0, or -1 out of memory. */
static int add_waiter(desc *d, const ota_request *req, uint64_t req_id)
{
    size_t id_len = strlen(req->client_id) + 1;
    waiter *w = malloc(sizeof *w + id_len);
    if (w == NULL)
        return -1;
    *w = (waiter){.props = ota_reply_props_copy(req), .req = req_id};
    memcpy(w->client_id, req->client_id, id_len);
    *d->last_waiter = w;
    d->last_waiter = &w->next;
    return 0;
}

/* Serves req with d: at once when signed, on TICK when it is. */
static int serve(ota_plugin *p, desc *d, const ota_request *req, uint64_t req_id, refusal *r)
{
    if (d->ready) {
        answer(p, d, req, req_id);
        return 0;
    }
    return add_waiter(d, req, req_id) == 0 ? 0 : refuse(r, OTA_PKG_E_INTERNAL, "out of memory");
}

/* A description back from the signer: its waiters are answered (unless the broker is
 * stopping: then only persisted); one that could not be signed refuses them. */
static void deliver(ota_plugin *p, desc *d, bool answer_them)
{
    d->ready = true;
    if (d->sign.cose == NULL && d->cached)
        uncache(p->pkg, d);
    else if (d->cached) {
        d->held += d->sign.cose_len;
        p->pkg->cached_bytes += d->sign.cose_len;
    }
    for (waiter *w = d->waiters, *next; w != NULL; w = next) {
        next = w->next;
        ota_request req = {.client_id = w->client_id, .vin = d->vin, .properties = w->props};
        if (d->sign.cose == NULL && answer_them) {
            refusal r;
            refuse(&r, OTA_PKG_E_INTERNAL, "description %" PRIu64 " of %s could not be signed",
                   d->ctr, d->vin);
            answer_refusal(p, &req, true, w->req, &r);
        } else if (d->sign.cose != NULL) {
            if (answer_them)
                answer(p, d, &req, w->req);
            else
                (void)mark_served(p, d, w->req); /* asked for: spooled, not answered */
        }
        waiter_free(w);
    }
    d->waiters = NULL;
    d->last_waiter = &d->waiters;
    desc_unref(d); /* the signer's reference */
}

static void take_signed(ota_plugin *p, bool answer_them)
{
    ota_sign_job *sj = p->pkg->signer ? ota_signer_take(p->pkg->signer) : NULL;
    while (sj != NULL) {
        ota_sign_job *next = sj->next;
        deliver(p, (desc *)sj, answer_them);
        sj = next;
    }
}

static void presign_now(ota_plugin *p, const char *vin, const char *task);

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* True while notices are going out (one queued in the last PRESIGN_QUIET_MS) and the
 * oldest waiting is younger than PRESIGN_MAX_WAIT_MS: the dispatch goes first. */
static bool dispatching(const ota_pkg *k)
{
    int64_t now = ota_mono_ms();
    return now - k->todo[k->todo_n - 1].at < PRESIGN_QUIET_MS &&
           now - k->todo[k->todo_head].at < PRESIGN_MAX_WAIT_MS;
}

/* Builds queued pre-signs within the pass's budget and the signer's backlog. */
static void presign_queued(ota_plugin *p)
{
    ota_pkg *k = p->pkg;
    if (k->todo_head == k->todo_n || dispatching(k))
        return;
    uint64_t t0 = mono_ns();
    for (unsigned i = 0; k->todo_head < k->todo_n; i++) {
        if ((i % 16 == 15 && mono_ns() - t0 > PRESIGN_BUDGET_NS) ||
            ota_signer_pending(k->signer) >= PRESIGN_BACKLOG)
            return;
        const presign_req *r = &k->todo[k->todo_head++];
        presign_now(p, r->vin, r->task);
    }
    k->todo_head = k->todo_n = 0;
}

void ota_pkg_tick(ota_plugin *p)
{
    take_signed(p, true);
    expire(p, ota_now_ms(), false);
    if (p->pkg->signer != NULL)
        presign_queued(p);
}

/* ---------------------------------------------------------------- the handler */

/* The description for the request (is->t its task): the vehicle's held one when it may
 * serve — asked for alike since the catalog last changed (held_for), or with the same
 * fingerprint when decided again (cached_for) — else a new one. NULL with r. */
static desc *description_for(ota_plugin *p, const ota_request *req, const ota_pkg_request *q,
                             issue *is, refusal *r)
{
    int64_t now = ota_now_ms();
    desc *d = held_for(p, req->vin, is->t, q, now);
    if (d == NULL) {
        if ((is->v = ota_catalog_vehicle(p->catalog, req->vin)) == NULL) {
            refuse(r, OTA_PKG_E_NOT_ASSIGNED, "vehicle %s is not in the catalog", req->vin);
            return NULL;
        }
        is->cur = q->cur;
        is->tgt = q->tgt;
        if (decide(p, is, r) != 0)
            return NULL;
        d = cached_for(p, is, now, ota_catalog_gen(p->catalog));
    }
    if (d != NULL)
        p->pkg->counters.from_memory++;
    else if ((d = build(p, is, r)) != NULL)
        p->pkg->counters.on_request++;
    return d;
}

/* Answers the request from the vehicle's description when it may, else from a new one. */
static int describe_request(ota_plugin *p, const ota_request *req, const ota_pkg_request *q,
                            issue *is, refusal *r)
{
    if ((is->t = running_task(p, req->vin, q->task, r)) == NULL)
        return -1;
    desc *d = description_for(p, req, q, is, r);
    return d ? serve(p, d, req, q->req, r) : -1;
}

int ota_handle_pkg_get(ota_plugin *p, const ota_request *req)
{
    ota_pkg_request q;
    ota_error e = {0};
    refusal r = {0};
    issue is = {0};
    if (ota_engine_grants_park(p, req, ota_handle_pkg_get, false))
        return MOSQ_ERR_SUCCESS; /* its counter may be another broker's: read, then again */
    if (ota_codec_decode_pkg_get(req->payload, req->payloadlen, &q, &e) != 0)
        refuse(&r, from_codec(e.code), "%s", e.msg);
    else
        describe_request(p, req, &q, &is, &r);
    if (r.msg[0] != '\0')
        answer_refusal(p, req, q.req_valid, q.req, &r);
    issue_fini(&is);
    return MOSQ_ERR_SUCCESS;
}

void ota_pkg_presign(ota_plugin *p, const char *vin, const char *task)
{
    ota_pkg *k = p->pkg;
    if (k == NULL || p->cfg.presign_max == 0)
        return;
    if (k->todo_n == k->todo_cap && k->todo_head > 0) { /* reuse the room taken */
        memmove(k->todo, k->todo + k->todo_head, (k->todo_n - k->todo_head) * sizeof *k->todo);
        k->todo_n -= k->todo_head;
        k->todo_head = 0;
    }
    if (k->todo_n == k->todo_cap) {
        size_t cap = k->todo_cap ? 2 * k->todo_cap : 256;
        presign_req *todo = realloc(k->todo, cap * sizeof *todo);
        if (todo == NULL) {
            k->counters.presign_skipped++;
            return;
        }
        k->todo = todo;
        k->todo_cap = cap;
    }
    presign_req *r = &k->todo[k->todo_n++];
    r->at = ota_mono_ms();
    snprintf(r->vin, sizeof r->vin, "%s", vin);
    snprintf(r->task, sizeof r->task, "%s", task);
}

/* The description of a notice sent, built now unless one that would do is held. */
static void presign_now(ota_plugin *p, const char *vin, const char *task)
{
    ota_pkg *k = p->pkg;
    refusal r = {0};
    issue is = {0};
    if ((is.t = running_task(p, vin, task, &r)) == NULL ||
        (is.v = ota_catalog_vehicle(p->catalog, vin)) == NULL || is.v->fw == NULL ||
        is.v->fw[0] == '\0')
        return; /* not running there, or no firmware to guess cur from: the request tells */
    is.cur = is.v->fw;
    is.tgt = is.t->rec.version;
    int64_t now = ota_now_ms();
    if (decide(p, &is, &r) == 0 && cached_for(p, &is, now, ota_catalog_gen(p->catalog)) == NULL) {
        expire(p, now, true);
        if (k->n_cached >= p->cfg.presign_max)
            k->counters.presign_skipped++;
        else if (build(p, &is, &r) != NULL)
            k->counters.presigned++;
    }
    issue_fini(&is);
}

/* ---------------------------------------------------------------- state */

ota_pkg *ota_pkg_new(void)
{
    ota_pkg *k = calloc(1, sizeof(ota_pkg));
    if (k == NULL)
        return NULL;
    ota_map_init(&k->slots, sizeof(slot), slot_key);
    if ((k->md = EVP_MD_CTX_new()) == NULL ||
        (k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
        ota_pkg_free(k);
        return NULL;
    }
    return k;
}

int ota_pkg_start(ota_plugin *p, char *err, size_t errlen)
{
    ota_pkg *k = p->pkg;
    k->signer =
        ota_signer_start(p->keys->signing, p->keys->kid, p->cfg.sign_threads, p->cfg.sign_delay_ms,
                         p->wake ? ota_wake_broker : NULL, p->wake, err, errlen);
    return k->signer ? 0 : -1;
}

void ota_pkg_stop(ota_plugin *p)
{
    ota_pkg *k = p->pkg;
    if (k == NULL || k->signer == NULL)
        return;
    ota_signer_stop(k->signer);
    take_signed(p, false); /* spooled (stored by the writer, or at the next start), not answered */
    ota_signer_free(k->signer);
    k->signer = NULL;
}

void ota_pkg_free(ota_pkg *k)
{
    if (k == NULL)
        return;
    while (k->oldest != NULL)
        uncache(k, k->oldest);
    ota_map_destroy(&k->slots, NULL);
    free(k->todo);
    EVP_MD_CTX_free(k->md);
    EVP_MD_free(k->sha256);
    free(k);
}

int ota_pkg_spooled_description(ota_plugin *p, const ota_spool_record *rec)
{
    ota_description_rec d;
    if (ota_spool_description(rec->vin, rec->seq, rec->payload, rec->payload_len, &d) != 0)
        return 0; /* the writer skips it too, and says so */
    return ota_grants_add(p->grants, d.vin, d.counter, d.files);
}

const ota_pkg_counters *ota_pkg_counters_get(const ota_pkg *k)
{
    return &k->counters;
}

void ota_pkg_stats_json(const ota_pkg *k, cJSON *data)
{
    cJSON *o = cJSON_AddObjectToObject(data, "pkg");
    ota_cmd_add_u64(o, "issued", k->counters.issued);
    ota_cmd_add_u64(o, "signing", k->signer ? ota_signer_pending(k->signer) : 0);
    ota_cmd_add_u64(o, "presigned", k->counters.presigned);
    ota_cmd_add_u64(o, "presign_queued", k->todo_n - k->todo_head);
    ota_cmd_add_u64(o, "presign_skipped", k->counters.presign_skipped);
    ota_cmd_add_u64(o, "signed_on_request", k->counters.on_request);
    ota_cmd_add_u64(o, "answered_from_memory", k->counters.from_memory);
    ota_cmd_add_u64(o, "held", k->n_cached);
    ota_cmd_add_u64(o, "held_bytes", k->cached_bytes);
    cJSON *rej = cJSON_AddObjectToObject(o, "refused");
    for (int e = 0; e < OTA_PKG_ERR_COUNT; e++)
        if (k->counters.refused[e])
            ota_cmd_add_u64(rej, ota_pkg_err_name((ota_pkg_err)e), k->counters.refused[e]);
}
