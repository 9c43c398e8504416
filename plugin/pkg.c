/*
 * pkg.c — ota/v1/{vin}/pkg/get: the signed package description (SPEC §3, §6;
 * docs/protocol.md, docs/vehicle-crypto.md).
 *
 * On the broker thread, from memory only: decode the request strictly (codec/pkg_msg.c), find
 * the vehicle's execution of the task (tasks.h: assigned, not rejected, the task active
 * and inside its window, the execution not final), decide the description (describe.c),
 * wrap the package's content key for the vehicle when the package is encrypted (the
 * sealed key of the package document opened with the KEK, keys.h), add vin, the next
 * description counter, iat and exp, and encode. The files it names are granted at once
 * (grants.h: file/get may fetch them; this also takes the counter, so the next request of
 * the vehicle gets a higher one while this one is being signed). Then the encoded
 * description goes to the signer threads (signer.h: the Ed25519 signature, ~46 µs, is the
 * biggest cost of a description and never runs on the broker thread), with what the reply
 * needs later: the client id and a copy of the request's Response Topic and Correlation
 * Data. On TICK, the signed descriptions come back in the order they were built; each is
 * answered on pkg/desc (content type application/cose) and persisted (SPEC §3) through the
 * writer: descriptions waiting are handed over as one ota_store_apply change per batch
 * (batch.h pacing, like shadows), and put back for a retry if the store fails. A vehicle
 * gone before its reply still has its description persisted; at a clean stop the signer
 * finishes every description built and they are persisted before the writer's last flush.
 *
 * Every refusal is {req?, err, msg} on pkg/desc (content type application/cbor), logged
 * and counted; nothing is granted or stored for it.
 */
#include "batch.h"
#include "catalog.h"
#include "control.h"
#include "engine.h"
#include "describe.h"
#include "grants.h"
#include "keys.h"
#include "ota_plugin.h"
#include "ota_pkg_codec.h"
#include "ota_errf.h"
#include "pkg.h"
#include "signer.h"
#include "tasks.h"
#include "wake.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A description built on the broker thread, signed by a signer thread, then answered and
 * persisted on the broker thread. One allocation (the texts follow it). */
typedef struct {
    ota_sign_job sign;         /* first: the signer's part; sign.cose is the result */
    mosquitto_property *props; /* the request's Response Topic and Correlation Data */
    uint64_t req, package, ctr;
    int64_t iat, exp;
    char vin[OTA_VIN_LEN + 1];
    const char *client_id, *task, *files; /* into text; files: sha256 hex, comma-separated */
    char text[];
} pkg_job;

/* A description waiting for the store: rec's texts and cose point into job (owned). */
typedef struct {
    ota_description_rec rec;
    pkg_job *job;
} pending;

struct ota_pkg {
    pending *items;
    size_t n, cap;
    ota_batcher batch;
    ota_pkg_counters counters;
    ota_signer *signer;
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

/* The task of the request, assigned to vin and still running there. */
static const ota_task *running_task(ota_plugin *p, const char *vin, const ota_pkg_request *q,
                                    refusal *r)
{
    const ota_task *t = ota_tasks_get(p->tasks, q->task);
    const ota_task_exec *x = t ? ota_task_find_exec(t, vin) : NULL;
    if (x == NULL || x->state == OTA_EXEC_REJECTED) {
        refuse(r, OTA_PKG_E_NOT_ASSIGNED, "task %s is not assigned to %s", q->task, vin);
        return NULL;
    }
    int64_t now = ota_now_ms();
    if (t->state != OTA_TASK_ACTIVE)
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is %s", q->task, ota_task_state_name(t->state));
    else if (final_state(x->state))
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is %s on %s", q->task,
               ota_exec_state_name((ota_exec_state)x->state), vin);
    else if ((t->rec.start_ms >= 0 && now < t->rec.start_ms) ||
             (t->rec.end_ms >= 0 && now >= t->rec.end_ms))
        refuse(r, OTA_PKG_E_TASK_INACTIVE, "task %s is outside its time window", q->task);
    else
        return t;
    return NULL;
}

/* ---------------------------------------------------------------- building */

/* Everything a description is made of, and what it owns. */
typedef struct {
    ota_describe_out d;
    ota_wrapped_key key;
    ota_description desc;
} issue;

static int wrap_key(ota_plugin *p, const ota_vehicle *v, issue *is, refusal *r)
{
    uint8_t ck[OTA_CONTENT_KEY_LEN];
    const ota_package_rec *pkg = is->d.pkg;
    int rc = pkg->sealed_key ? ota_keys_open_content(p->keys, pkg->id, pkg->sealed_key, ck) : -1;
    if (rc != 0) {
        OPENSSL_cleanse(ck, sizeof ck);
        return refuse(r, OTA_PKG_E_INTERNAL,
                      "the content key of package %" PRIu64 " cannot be opened", pkg->id);
    }
    rc = ota_codec_key_wrap(ck, v->public_key, v->vin, &is->key);
    OPENSSL_cleanse(ck, sizeof ck);
    if (rc != 0)
        return refuse(r, OTA_PKG_E_NO_PACKAGE,
                      "the content key cannot be wrapped for the vehicle's public_key");
    is->desc.key = &is->key;
    return 0;
}

static int build(ota_plugin *p, const ota_vehicle *v, const ota_task *t, const ota_pkg_request *q,
                 issue *is, refusal *r)
{
    ota_describe_in in = {.cur = q->cur,
                          .tgt = q->tgt,
                          .model = t->rec.model,
                          .series = t->rec.series,
                          .version = t->rec.version,
                          .type = t->rec.type};
    ota_desc_result dr = ota_describe(p->catalog, v, &in, &is->d);
    if (dr != OTA_DESC_OK)
        return refuse(
            r, dr == OTA_DESC_VERSION_MISMATCH ? OTA_PKG_E_VERSION_MISMATCH : OTA_PKG_E_NO_PACKAGE,
            "%s", is->d.msg);
    const ota_package_rec *pkg = is->d.pkg;
    int64_t now = ota_now_ms();
    is->desc = (ota_description){.req = q->req,
                                 .task = q->task,
                                 .package = pkg->id,
                                 .delta = pkg->delta,
                                 .from = q->cur,
                                 .to = q->tgt,
                                 .compare_version = is->d.compare_version,
                                 .n_ecus = is->d.n_ecus,
                                 .ecus = is->d.ecus,
                                 .prompt = pkg->prompt,
                                 .result_info = pkg->result_info,
                                 .vin = v->vin,
                                 .ctr = ota_grants_counter(p->grants, v->vin) + 1,
                                 .iat = now,
                                 .exp = now + (int64_t)p->cfg.description_ttl_s * 1000};
    return pkg->encrypted ? wrap_key(p, v, is, r) : 0;
}

/* ---------------------------------------------------------------- persistence */

static void job_free(pkg_job *j)
{
    if (j == NULL)
        return;
    mosquitto_property_free_all(&j->props);
    free(j->sign.payload);
    free(j->sign.cose);
    free(j);
}

static void pending_free(pending *x)
{
    job_free(x->job);
}

/* Takes j (signed) into the queue for the store. 0, or -1 (nothing taken). */
static int queue_description(ota_pkg *k, pkg_job *j)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        pending *items = realloc(k->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        k->items = items;
        k->cap = cap;
    }
    k->items[k->n++] = (pending){.rec = {.vin = j->vin,
                                         .counter = j->ctr,
                                         .task = j->task,
                                         .req = j->req,
                                         .package = j->package,
                                         .files = j->files,
                                         .cose = j->sign.cose,
                                         .cose_len = j->sign.cose_len,
                                         .issued_ms = j->iat,
                                         .expires_ms = j->exp},
                                 .job = j};
    return 0;
}

typedef struct {
    ota_writer_job job;
    ota_pkg *k;
    pending *items;
    size_t n;
    ota_description_rec *recs;
    ota_catalog_change change;
} flush_job;

static void flush_job_free(flush_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        pending_free(&j->items[i]);
    free(j->items);
    free(j->recs);
    free(j);
}

/* Puts the job's descriptions back in front of the queue (a failed or refused job). */
static void flush_undo(ota_pkg *k, flush_job *j)
{
    pending *items = realloc(k->items, (k->n + j->n) * sizeof *items);
    if (items == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: %zu descriptions lost: out of memory", j->n);
        return;
    }
    memmove(items + j->n, items, k->n * sizeof *items);
    memcpy(items, j->items, j->n * sizeof *items);
    k->items = items;
    k->n += j->n;
    k->cap = k->n;
    j->n = 0; /* moved back */
}

static int flush_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    flush_job *j = arg;
    return ota_store_apply(store, &j->change, err, errlen);
}

static void flush_done(void *arg, int rc, const char *err)
{
    flush_job *j = arg;
    ota_batch_ended(&j->k->batch, rc, "descriptions", j->n, err);
    if (rc != 0)
        flush_undo(j->k, j);
    flush_job_free(j);
}

static void flush_submit(ota_plugin *p, int64_t now)
{
    ota_pkg *k = p->pkg;
    flush_job *j = calloc(1, sizeof *j);
    ota_description_rec *recs = j ? malloc(k->n * sizeof *recs) : NULL;
    if (recs == NULL) {
        free(j);
        ota_batch_later(&k->batch, now);
        return;
    }
    for (size_t i = 0; i < k->n; i++)
        recs[i] = k->items[i].rec;
    *j = (flush_job){.k = k, .items = k->items, .n = k->n, .recs = recs};
    j->change = (ota_catalog_change){.add_descriptions = recs, .n_add_descriptions = k->n};
    j->job = (ota_writer_job){.run = flush_run, .done = flush_done, .arg = j};
    k->items = NULL;
    k->n = k->cap = 0;
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        flush_undo(k, j);
        flush_job_free(j);
        ota_batch_later(&k->batch, now);
        return;
    }
    ota_batch_started(&k->batch, now);
}

void ota_pkg_flush(ota_plugin *p)
{
    int64_t now = ota_mono_ms();
    if (p->pkg != NULL && p->writer != NULL && ota_batch_due(&p->pkg->batch, p->pkg->n, now))
        flush_submit(p, now);
}

void ota_pkg_flush_final(ota_plugin *p)
{
    if (p->pkg != NULL && p->pkg->n > 0 && p->writer != NULL)
        flush_submit(p, ota_mono_ms());
}

/* ---------------------------------------------------------------- the handler */

/* Copies what the reply and the store need of the description built (the texts into one
 * allocation with the job). NULL when out of memory. */
static pkg_job *job_new(const ota_request *req, const issue *is)
{
    const ota_description *d = &is->desc;
    size_t id_len = strlen(req->client_id) + 1, task_len = strlen(d->task) + 1;
    size_t files_len = d->n_ecus * (OTA_SHA256_HEX + 1);
    pkg_job *j = malloc(sizeof *j + id_len + task_len + files_len);
    if (j == NULL)
        return NULL;
    *j = (pkg_job){
        .req = d->req, .package = d->package, .ctr = d->ctr, .iat = d->iat, .exp = d->exp};
    snprintf(j->vin, sizeof j->vin, "%s", d->vin);
    char *t = j->text;
    j->client_id = memcpy(t, req->client_id, id_len);
    j->task = memcpy(t += id_len, d->task, task_len);
    j->files = t += task_len;
    for (size_t i = 0; i < d->n_ecus; i++, t += OTA_SHA256_HEX + 1) {
        memcpy(t, d->ecus[i].file_id, OTA_SHA256_HEX);
        t[OTA_SHA256_HEX] = i + 1 < d->n_ecus ? ',' : '\0';
    }
    return j;
}

/* Encodes the description, grants its files and hands it to the signer. */
static int issue_description(ota_plugin *p, const ota_request *req, issue *is, refusal *r)
{
    pkg_job *j = job_new(req, is);
    size_t len = 0;
    uint8_t *payload = j ? ota_codec_encode_description(&is->desc, &len) : NULL;
    if (payload == NULL || ota_grants_add(p->grants, j->vin, j->ctr, j->files) != 0) {
        free(payload);
        job_free(j);
        return refuse(r, OTA_PKG_E_INTERNAL, "out of memory");
    }
    j->props = ota_reply_props_copy(req);
    j->sign.payload = payload;
    j->sign.payload_len = len;
    ota_signer_submit(p->pkg->signer, &j->sign);
    return 0;
}

/* A description back from the signer: answered (unless the broker is stopping) and
 * queued for the store; one that could not be signed is refused with E_INTERNAL. */
static void deliver(ota_plugin *p, pkg_job *j, bool answer)
{
    ota_request req = {.client_id = j->client_id, .vin = j->vin, .properties = j->props};
    if (j->sign.cose == NULL) {
        refusal r;
        refuse(&r, OTA_PKG_E_INTERNAL, "description %" PRIu64 " of %s could not be signed", j->ctr,
               j->vin);
        if (answer)
            answer_refusal(p, &req, true, j->req, &r);
        job_free(j);
        return;
    }
    if (answer)
        ota_reply_send(&req, "pkg/desc", j->sign.cose, j->sign.cose_len, "application/cose");
    mosquitto_property_free_all(&j->props);
    p->pkg->counters.issued++;
    if (queue_description(p->pkg, j) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: description %" PRIu64 " of %s not stored: "
                             "out of memory",
                             j->ctr, j->vin);
        job_free(j);
    }
}

static void take_signed(ota_plugin *p, bool answer)
{
    ota_sign_job *sj = p->pkg->signer ? ota_signer_take(p->pkg->signer) : NULL;
    while (sj != NULL) {
        ota_sign_job *next = sj->next;
        deliver(p, (pkg_job *)sj, answer);
        sj = next;
    }
}

void ota_pkg_tick(ota_plugin *p)
{
    take_signed(p, true);
}

int ota_handle_pkg_get(ota_plugin *p, const ota_request *req)
{
    ota_pkg_request q;
    ota_error e = {0};
    refusal r = {0};
    issue is = {0};
    const ota_task *t = NULL;
    const ota_vehicle *v = NULL;
    if (ota_engine_grants_park(p, req, ota_handle_pkg_get, false))
        return MOSQ_ERR_SUCCESS; /* its counter may be another broker's: read, then again */
    if (ota_codec_decode_pkg_get(req->payload, req->payloadlen, &q, &e) != 0)
        refuse(&r, from_codec(e.code), "%s", e.msg);
    else if ((t = running_task(p, req->vin, &q, &r)) == NULL)
        ;
    else if ((v = ota_catalog_vehicle(p->catalog, req->vin)) == NULL)
        refuse(&r, OTA_PKG_E_NOT_ASSIGNED, "vehicle %s is not in the catalog", req->vin);
    else if (build(p, v, t, &q, &is, &r) == 0)
        issue_description(p, req, &is, &r);
    if (r.msg[0] != '\0')
        answer_refusal(p, req, q.req_valid, q.req, &r);
    ota_describe_free(&is.d);
    OPENSSL_cleanse(&is.key, sizeof is.key);
    return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------- state */

ota_pkg *ota_pkg_new(void)
{
    return calloc(1, sizeof(ota_pkg));
}

int ota_pkg_start(ota_plugin *p, char *err, size_t errlen)
{
    ota_pkg *k = p->pkg;
    k->signer = ota_signer_start(p->keys->signing, p->keys->kid, p->cfg.sign_threads,
                                 p->cfg.sign_delay_ms, p->wake ? ota_wake_broker : NULL, p->wake, err, errlen);
    return k->signer ? 0 : -1;
}

void ota_pkg_stop(ota_plugin *p)
{
    ota_pkg *k = p->pkg;
    if (k == NULL || k->signer == NULL)
        return;
    ota_signer_stop(k->signer);
    take_signed(p, false); /* persisted by ota_pkg_flush_final, not answered */
    ota_signer_free(k->signer);
    k->signer = NULL;
}

void ota_pkg_free(ota_pkg *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++)
        pending_free(&k->items[i]);
    free(k->items);
    free(k);
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
    ota_cmd_add_u64(o, "stored_pending", k->n);
    cJSON *rej = cJSON_AddObjectToObject(o, "refused");
    for (int e = 0; e < OTA_PKG_ERR_COUNT; e++)
        if (k->counters.refused[e])
            ota_cmd_add_u64(rej, ota_pkg_err_name((ota_pkg_err)e), k->counters.refused[e]);
}
