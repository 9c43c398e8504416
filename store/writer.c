/*
 * writer.c — the writer thread: spool -> codec -> store, and the job queue of store work
 * the broker thread hands over (design in ota_writer.h).
 *
 * Each round of the thread's loop (writer_main):
 *   1. reports: gather records from a spool reader until batch_events events are in hand
 *      or the reader runs dry, put them into the store (in chunks of at most batch_events;
 *      only a single report larger than that needs several), retrying with exponential
 *      backoff while the store fails, then store the checkpoint;
 *   2. wait: if this round took records, linger WRITER_LINGER_MS so the next batch is a
 *      big one; if it took none and no job is queued, wait on the spool (woken by the next
 *      append or a submitted job, at most WRITER_IDLE_WAIT_MS);
 *   3. jobs: run every job submitted so far, in order (ota_writer_submit appends to
 *      `jobs`), and move each to the `finished` list, which the broker thread empties with
 *      ota_writer_poll_done (calling done() there); cfg.notify tells it when finished
 *      jobs start waiting. Stopping stores what was spooled until then (drain_at_stop),
 *      runs the jobs still queued and finishes them.
 *
 * Positions kept by the thread:
 *   ck        — the checkpoint: next of the last record fully stored or skipped;
 *   last_next — next of the last record taken into the batch in hand (or skipped);
 *   done      — (shared) how far everything is known to be stored: ck, or the spool end
 *               seen just before the reader ran dry; ota_writer_wait_drained() waits on it.
 * A report that was decoded but did not fit the batch is kept as `look` for the next one.
 */
#include "ota_errf.h"
#include "ota_spool_desc.h"
#include "ota_writer.h"
#include "sync_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WRITER_IDLE_WAIT_MS 100
#define WRITER_LINGER_MS 10 /* while reports flow: gather for this long per batch */
#define WRITER_STOP_DRAIN_MS 2000 /* a stop stores what was spooled for at most this long */

/* One spooled record in the batch in hand: a report's events and guard row (kinds 1, 2),
 * a guard row alone (4: a reset), a refused report (3, or a report that no longer
 * decodes) for the quarantine, or a description served (5: its row in payload). */
typedef struct {
    uint8_t kind;
    char vin[32];
    char epoch[OTA_SPOOL_EPOCH_MAX + 1];      /* the vehicle's */
    char key_epoch[OTA_STORE_EPOCH_KEY_MAX]; /* what its events are stored under */
    uint64_t seq;
    uint32_t resets;
    int64_t received_ms;
    ota_report rep; /* kinds 1, 2 */
    /* quarantine, description (malloc'd) */
    bool from_report; /* a report record the decoder refused (not a broker-side refusal) */
    ota_error err;    /* its reason */
    int64_t qid;
    bool has_seq;
    char *code_msg; /* code name, NUL, message */
    uint8_t *payload;
    size_t len;
    uint64_t size;
} pending_report;

struct ota_writer {
    ota_spool *spool;
    ota_store *store;
    ota_writer_config cfg;
    pthread_t thread;

    /* writer thread only */
    ota_spool_reader *reader;
    pending_report *batch;
    size_t n_batch, cap_batch, n_events, weight; /* weight: events, 1 per other record */
    pending_report look;
    bool have_look;
    ota_store_event *evs;
    size_t cap_evs;
    ota_report_seq_rec *seqs;
    ota_report_seq_rec *resets; /* the operator resets among seqs, kept when seqs collapse */
    ota_quarantine_rec *quar;
    ota_description_rec *descs;
    size_t n_seqs, n_resets, n_quar, n_descs, cap_side;
    ota_spool_pos ck, last_next;
    unsigned backoff_ms;
    bool ck_failing;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* stop requested; `done` advanced; a job submitted or finished */
    bool stopping;
    ota_writer_job *jobs, *jobs_tail;         /* submitted, not yet run */
    ota_writer_job *finished, *finished_tail; /* run, for ota_writer_poll_done */
    ota_report_result *results, *results_tail;  /* for ota_writer_poll_reports */
    ota_report_result *used;                    /* polled: the writer frees them */
    ota_spool_pos polled;                       /* the checkpoint the polled results allow */
    bool polled_new;
    ota_spool_pos held; /* the checkpoint of the last batch whose results were queued */
    bool job_running;
    ota_spool_pos done;
    ota_writer_stats st;
};

/* ---------------------------------------------------------------- helpers */

__attribute__((format(printf, 3, 4))) static void wlog(ota_writer *w, int level, const char *fmt,
                                                       ...)
{
    if (!w->cfg.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->cfg.log(w->cfg.log_ctx, level, msg);
}

static bool stopping(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Sleeps ms unless a stop is requested; returns true when stopping. */
static bool sleep_or_stop(ota_writer *w, unsigned ms)
{
    struct timespec until;
    ota_sync_deadline(&until, ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    bool s = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* The pause between batches while reports flow: ends early on a stop or a job. */
static void linger(ota_writer *w)
{
    struct timespec until;
    ota_sync_deadline(&until, WRITER_LINGER_MS);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->stopping && !w->jobs && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    pthread_mutex_unlock(&w->mu);
}

/* Everything before pos is in the store (or skipped). */
static void set_done(ota_writer *w, ota_spool_pos pos)
{
    pthread_mutex_lock(&w->mu);
    if (ota_spool_pos_cmp(w->done, pos) < 0) {
        w->done = pos;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---------------------------------------------------------------- the batch */

/* A report's record: events to store (kinds 1, 2). */
static bool is_report(const pending_report *p)
{
    return p->kind == OTA_SPOOL_KIND_REPORT || p->kind == OTA_SPOOL_KIND_REPORT_EPOCH;
}

static size_t weight_of(const pending_report *p)
{
    return is_report(p) ? p->rep.n_events : 1;
}

static void pending_free(pending_report *p)
{
    ota_report_free(&p->rep);
    free(p->code_msg);
    free(p->payload);
    p->code_msg = NULL;
    p->payload = NULL;
}

static int batch_add(ota_writer *w, const pending_report *p)
{
    if (w->n_batch == w->cap_batch) {
        size_t cap = w->cap_batch ? 2 * w->cap_batch : 64;
        pending_report *b = realloc(w->batch, cap * sizeof *b);
        if (!b)
            return -1;
        w->batch = b;
        w->cap_batch = cap;
    }
    w->batch[w->n_batch++] = *p;
    if (is_report(p))
        w->n_events += p->rep.n_events;
    w->weight += weight_of(p);
    return 0;
}

static void batch_clear(ota_writer *w)
{
    for (size_t i = 0; i < w->n_batch; i++)
        pending_free(&w->batch[i]);
    w->n_batch = 0;
    w->n_events = 0;
    w->weight = 0;
}

static int grow_side(ota_writer *w)
{
    if (w->n_batch <= w->cap_side)
        return 0;
    ota_report_seq_rec *s = realloc(w->seqs, w->n_batch * sizeof *s);
    if (s)
        w->seqs = s;
    ota_report_seq_rec *r = s ? realloc(w->resets, w->n_batch * sizeof *r) : NULL;
    if (r)
        w->resets = r;
    ota_quarantine_rec *q = r ? realloc(w->quar, w->n_batch * sizeof *q) : NULL;
    if (q)
        w->quar = q;
    ota_description_rec *d = q ? realloc(w->descs, w->n_batch * sizeof *d) : NULL;
    if (!d)
        return -1;
    w->descs = d;
    w->cap_side = w->n_batch;
    return 0;
}

/* The guard row, the quarantine row or the description row of p. */
static void side_rows(ota_writer *w, const pending_report *p)
{
    if (p->kind == OTA_SPOOL_KIND_DESCRIPTION) { /* it parsed when it was read */
        ota_spool_description(p->vin, p->seq, p->payload, p->len, &w->descs[w->n_descs++]);
        return;
    }
    if (p->kind == OTA_SPOOL_KIND_QUARANTINE) {
        w->quar[w->n_quar++] = (ota_quarantine_rec){
            .id = p->qid,
            .vin = p->vin,
            .received_ms = p->received_ms,
            .code = p->code_msg,
            .msg = p->code_msg + strlen(p->code_msg) + 1,
            .seq = p->has_seq ? (int64_t)p->seq : -1,
            .epoch = p->has_seq ? p->epoch : NULL,
            .size = p->size,
            .payload = p->payload,
            .payload_len = p->len,
        };
        return;
    }
    int64_t seq = p->kind == OTA_SPOOL_KIND_RESET ? -1 : (int64_t)p->seq;
    w->seqs[w->n_seqs++] = (ota_report_seq_rec){p->vin, p->epoch, seq, p->resets, p->received_ms};
    if (p->kind == OTA_SPOOL_KIND_RESET)
        w->resets[w->n_resets++] = w->seqs[w->n_seqs - 1];
}

/* Lays the batch out as store events, guard rows and refused reports (after gathering:
 * batch[] no longer moves). */
static int batch_events(ota_writer *w)
{
    if (w->n_events > w->cap_evs) {
        ota_store_event *e = realloc(w->evs, w->n_events * sizeof *e);
        if (!e)
            return -1;
        w->evs = e;
        w->cap_evs = w->n_events;
    }
    if (grow_side(w) != 0)
        return -1;
    /* at most one guard row and one quarantine row per record */
    size_t k = 0;
    w->n_seqs = w->n_resets = w->n_quar = w->n_descs = 0;
    for (size_t i = 0; i < w->n_batch; i++) {
        pending_report *p = &w->batch[i];
        side_rows(w, p);
        if (!is_report(p))
            continue;
        for (size_t j = 0; j < p->rep.n_events; j++)
            w->evs[k++] = (ota_store_event){p->vin, p->seq, p->received_ms, &p->rep.events[j],
                                            p->key_epoch};
    }
    return 0;
}

/* ---------------------------------------------------------------- reading */

static void count_skipped(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->st.records_skipped++;
    pthread_mutex_unlock(&w->mu);
}

/* A stable id of a spooled record, growing in spool order: the quarantine's key. */
static int64_t record_id(ota_spool_pos pos)
{
    return (int64_t)(pos.segment << 36 | (pos.offset & ((1ull << 36) - 1)));
}

/* Keeps rec for the quarantine with its reason (copies: the reader's buffer moves). */
static int quarantine_record(const ota_spool_record *rec, uint8_t code, const char *msg,
                             pending_report *p)
{
    const char *name = ota_err_name((ota_err_code)code);
    size_t nlen = strlen(name), mlen = strlen(msg);
    p->kind = OTA_SPOOL_KIND_QUARANTINE;
    p->qid = record_id(rec->pos);
    p->code_msg = malloc(nlen + mlen + 2);
    p->payload = malloc(rec->payload_len ? rec->payload_len : 1);
    if (!p->code_msg || !p->payload) {
        pending_free(p);
        return -1;
    }
    memcpy(p->code_msg, name, nlen + 1);
    memcpy(p->code_msg + nlen + 1, msg, mlen + 1);
    memcpy(p->payload, rec->payload, rec->payload_len);
    p->len = rec->payload_len;
    p->size = rec->size;
    return 0;
}

/* Keeps a description record's row (a copy: the reader's buffer moves); 0, or -1 when it
 * is to be skipped (logged and counted). */
static int description_record(ota_writer *w, const ota_spool_record *rec, pending_report *p)
{
    ota_description_rec d;
    if (ota_spool_description(rec->vin, rec->seq, rec->payload, rec->payload_len, &d) != 0) {
        wlog(w, OTA_LOG_WARNING, "ota writer: skipping a spooled description of %s that does "
             "not parse", rec->vin);
        count_skipped(w);
        return -1;
    }
    p->payload = malloc(rec->payload_len);
    if (!p->payload) {
        wlog(w, OTA_LOG_ERR, "ota writer: out of memory: description %" PRIu64 " of %s not "
             "stored", rec->seq, rec->vin);
        count_skipped(w);
        return -1;
    }
    memcpy(p->payload, rec->payload, rec->payload_len);
    p->len = rec->payload_len;
    return 0;
}

/* Decodes a spooled record; 0, or -1 when it is to be skipped (logged and counted). A
 * report that no longer decodes goes to the quarantine with the decoder's reason. */
static int decode_record(ota_writer *w, const ota_spool_record *rec, pending_report *p)
{
    ota_error e = {0};
    *p = (pending_report){.kind = rec->kind, .seq = rec->seq, .resets = rec->resets,
                          .received_ms = rec->received_ms, .has_seq = rec->has_seq};
    memcpy(p->vin, rec->vin, sizeof p->vin);
    memcpy(p->epoch, rec->epoch, sizeof p->epoch);
    const char *key = ota_store_epoch_key(p->epoch, p->resets, p->key_epoch, sizeof p->key_epoch);
    if (key != p->key_epoch)
        memcpy(p->key_epoch, key, strlen(key) + 1);
    if (rec->kind < OTA_SPOOL_KIND_REPORT || rec->kind > OTA_SPOOL_KIND_DESCRIPTION) {
        wlog(w, OTA_LOG_WARNING, "ota writer: skipping spooled record of unknown kind %u",
             rec->kind);
        count_skipped(w);
        return -1;
    }
    if (rec->kind == OTA_SPOOL_KIND_RESET)
        return 0;
    if (rec->kind == OTA_SPOOL_KIND_DESCRIPTION)
        return description_record(w, rec, p);
    if (rec->kind == OTA_SPOOL_KIND_QUARANTINE)
        return quarantine_record(rec, rec->code, rec->msg, p) == 0 ? 0 : (count_skipped(w), -1);
    if (ota_codec_decode_report(rec->payload, rec->payload_len, &w->cfg.limits, &p->rep, &e) != 0) {
        wlog(w, OTA_LOG_WARNING,
             "ota writer: spooled report of %s seq %" PRIu64 " quarantined: %s: %s", rec->vin,
             rec->seq, ota_err_name(e.code), e.msg);
        p->from_report = rec->seq <= INT64_MAX;
        p->err = e;
        return quarantine_record(rec, (uint8_t)e.code, e.msg, p) == 0 ? 0 : (count_skipped(w), -1);
    }
    if (rec->seq > INT64_MAX) { /* no backend keys it: it would block the flow forever */
        wlog(w, OTA_LOG_WARNING,
             "ota writer: skipping spooled report of %s seq %" PRIu64 ": seq above 2^63-1",
             rec->vin, rec->seq);
        ota_report_free(&p->rep);
        count_skipped(w);
        return -1;
    }
    return 0;
}

/* Fills the batch. Returns 1 when it is full, 0 when the reader ran dry (*dry = the spool
 * end seen before the last read: everything up to it has been taken), -1 on error. */
static int gather(ota_writer *w, ota_spool_pos *dry)
{
    size_t cap = w->cfg.batch_events;
    if (w->have_look) {
        if (batch_add(w, &w->look) != 0)
            return -1;
        w->have_look = false;
    }
    while (w->weight < cap) {
        ota_spool_record rec;
        int rc = ota_spool_reader_next(w->reader, &rec);
        if (rc <= 0) {
            *dry = ota_spool_reader_seen_end(w->reader);
            return rc;
        }
        pending_report p;
        if (decode_record(w, &rec, &p) != 0) {
            w->last_next = rec.next;
            continue;
        }
        if (w->weight > 0 && w->weight + weight_of(&p) > cap) {
            w->look = p; /* its position is not in last_next: the checkpoint stays before it */
            w->have_look = true;
            return 1;
        }
        if (batch_add(w, &p) != 0) {
            pending_free(&p);
            return -1;
        }
        w->last_next = rec.next;
    }
    return 1;
}

/* ---------------------------------------------------------------- storing */

static void store_succeeded(ota_writer *w, const ota_store_put_result *res)
{
    pthread_mutex_lock(&w->mu);
    bool was_down = !w->st.store_ok;
    uint64_t errors = w->st.store_errors;
    w->st.store_ok = true;
    w->st.events_stored += res->inserted;
    w->st.duplicates += res->duplicates;
    w->st.batches++;
    pthread_mutex_unlock(&w->mu);
    if (was_down)
        wlog(w, OTA_LOG_NOTICE, "ota writer: store recovered (%" PRIu64 " failed batches so far)",
             errors);
    w->backoff_ms = w->cfg.retry_min_ms;
}

static void store_failed(ota_writer *w, const char *err)
{
    pthread_mutex_lock(&w->mu);
    bool was_ok = w->st.store_ok;
    w->st.store_ok = false;
    w->st.store_errors++;
    pthread_mutex_unlock(&w->mu);
    if (was_ok)
        wlog(w, OTA_LOG_ERR, "ota writer: store unavailable, retrying (reports stay spooled): %s",
             err);
}

/* Puts a batch, retrying until it works. -1 when stopping made it give up. */
static int put_with_retry(ota_writer *w, const ota_store_batch *b)
{
    for (;;) {
        ota_store_put_result res = {0, 0};
        char err[256] = "";
        if (ota_store_put_batch(w->store, b, &res, err, sizeof err) == 0) {
            store_succeeded(w, &res);
            return 0;
        }
        store_failed(w, err[0] ? err : "unknown error");
        if (sleep_or_stop(w, w->backoff_ms))
            return -1;
        w->backoff_ms =
            w->backoff_ms > w->cfg.retry_max_ms / 2 ? w->cfg.retry_max_ms : 2 * w->backoff_ms;
    }
}

static void store_checkpoint_at(ota_writer *w, ota_spool_pos pos)
{
    if (ota_spool_pos_cmp(w->ck, pos) < 0) {
        int rc = ota_spool_checkpoint_store(w->spool, pos);
        if (rc != 0 && !w->ck_failing)
            wlog(w, OTA_LOG_WARNING, "ota writer: cannot store the spool checkpoint: %s",
                 strerror(errno));
        else if (rc == 0 && w->ck_failing)
            wlog(w, OTA_LOG_NOTICE, "ota writer: spool checkpoint stored again");
        w->ck_failing = rc != 0;
        w->ck = pos; /* the store has it either way: at worst a restart replays */
    }
}

static int queue_results(ota_writer *w); /* below, with the other report results */

/* Every queued result was polled and what it caused is stored: the broker thread allowed
 * the checkpoint of the last batch queued (polled but not allowed is not enough: the
 * plugin holds the checkpoint until the execution moves of those reports are stored). */
static bool results_settled(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool settled = w->results == NULL && ota_spool_pos_cmp(w->polled, w->held) >= 0;
    pthread_mutex_unlock(&w->mu);
    return settled;
}

/* The checkpoint after the batch in hand: at once, or (report_results) once the broker
 * thread has polled its results. */
static void store_checkpoint(ota_writer *w)
{
    if (!w->cfg.report_results || (w->n_batch > 0 && queue_results(w) != 0))
        store_checkpoint_at(w, w->last_next);
    else if (w->n_batch == 0 && results_settled(w))
        store_checkpoint_at(w, w->last_next); /* skipped records only, nothing held */
}

/* The checkpoint the broker thread's polled results allow. */
static void store_polled_checkpoint(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool fresh = w->polled_new;
    ota_spool_pos pos = w->polled;
    w->polled_new = false;
    pthread_mutex_unlock(&w->mu);
    if (fresh)
        store_checkpoint_at(w, pos);
}

/* Whether pending report p has a result (ota_writer.h): a stored report, or one the
 * decoder refused. */
static bool has_result(const pending_report *p)
{
    return is_report(p) || p->from_report;
}

/* Fills *r with the result of pending report p, taking its decoded report. */
static void result_of(pending_report *p, ota_report_result *r)
{
    bool stored = is_report(p);
    *r = (ota_report_result){
        .resets = p->resets,
        .seq = p->seq,
        .received_ms = p->received_ms,
        .refused = !stored,
        .has_seq = p->from_report,
        .err = p->err,
        .size = p->size,
    };
    memcpy(r->vin, p->vin, sizeof r->vin);
    memcpy(r->epoch, p->epoch, sizeof r->epoch);
    if (stored) {
        r->rep = p->rep;
        p->rep = (ota_report){0};
    }
}

/* Queues the results of the stored batch for the broker thread, ended by a marker that
 * carries the batch's checkpoint. They are one allocation (a malloc per report cost the
 * writer ~450 instructions per report with its free): the marker first, the results after
 * it, queued in the order results..., marker, so that freeing the marker, the last of the
 * batch to be freed, frees them all (free_result_list). -1 when out of memory (the caller
 * checkpoints now: the effects of the batch are lost, and logged). */
static int queue_results(ota_writer *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_batch; i++)
        n += has_result(&w->batch[i]);
    ota_report_result *slab = malloc((n + 1) * sizeof *slab);
    if (!slab) {
        wlog(w, OTA_LOG_ERR, "ota writer: out of memory: the effects of %zu reports are lost", n);
        return -1;
    }
    ota_report_result *marker = &slab[0], *head = NULL, **link = &head, *tail = marker;
    *marker = (ota_report_result){.marker = true, .ck = w->last_next};
    for (size_t i = 0, k = 1; i < w->n_batch; i++) {
        if (!has_result(&w->batch[i]))
            continue;
        ota_report_result *r = &slab[k++];
        result_of(&w->batch[i], r);
        *link = r;
        link = &r->next;
    }
    *link = marker;
    pthread_mutex_lock(&w->mu);
    w->held = marker->ck;
    bool first = w->results == NULL && w->finished == NULL;
    if (w->results_tail)
        w->results_tail->next = head;
    else
        w->results = head;
    w->results_tail = tail;
    if (first && w->cfg.notify != NULL)
        w->cfg.notify(w->cfg.notify_ctx);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

size_t ota_writer_poll_reports_held(ota_writer *w,
                                    void (*fn)(void *ctx, const ota_report_result *r), void *ctx,
                                    ota_spool_pos *ck, bool *has_ck)
{
    pthread_mutex_lock(&w->mu);
    ota_report_result *r = w->results;
    w->results = w->results_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    *has_ck = false;
    ota_report_result *last = NULL;
    for (ota_report_result *q = r; q; q = q->next) {
        if (q->marker) {
            *ck = q->ck;
            *has_ck = true;
        } else {
            fn(ctx, q);
            n++;
        }
        last = q;
    }
    if (last) {
        /* The writer allocated them: it frees them too (a free from another thread costs
         * the broker thread more, and the broker thread is the one that acks). */
        pthread_mutex_lock(&w->mu);
        last->next = w->used;
        w->used = r;
        pthread_mutex_unlock(&w->mu);
    }
    return n;
}

void ota_writer_allow_checkpoint(ota_writer *w, ota_spool_pos ck)
{
    pthread_mutex_lock(&w->mu);
    if (ota_spool_pos_cmp(w->polled, ck) < 0) {
        w->polled = ck;
        w->polled_new = true;
    }
    pthread_mutex_unlock(&w->mu);
    ota_spool_wake(w->spool); /* an idle writer stores the checkpoint */
}

size_t ota_writer_poll_reports(ota_writer *w, void (*fn)(void *ctx, const ota_report_result *r),
                               void *ctx)
{
    ota_spool_pos ck = {0, 0};
    bool any = false;
    size_t n = ota_writer_poll_reports_held(w, fn, ctx, &ck, &any);
    if (any)
        ota_writer_allow_checkpoint(w, ck);
    return n;
}

/* Frees whole batches of results (queue_results): each batch's marker, which comes after
 * its results, holds their memory. */
static void free_result_list(ota_report_result *r)
{
    for (ota_report_result *next; r; r = next) {
        next = r->next;
        ota_report_free(&r->rep);
        if (r->marker)
            free(r);
    }
}

/* Frees the results the broker thread has polled. */
static void free_used(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    ota_report_result *r = w->used;
    w->used = NULL;
    pthread_mutex_unlock(&w->mu);
    free_result_list(r);
}

static void free_results(ota_writer *w)
{
    free_result_list(w->results);
    w->results = w->results_tail = NULL;
    free_result_list(w->used);
    w->used = NULL;
}

/* Stores the batch in hand and checkpoints. 0, or -1 when given up (stopping). */
static int flush(ota_writer *w)
{
    if (w->n_batch > 0) {
        while (batch_events(w) != 0) {
            wlog(w, OTA_LOG_ERR, "ota writer: out of memory, retrying");
            if (sleep_or_stop(w, w->cfg.retry_max_ms))
                return -1;
        }
        /* Chunks of batch_events events; the guard rows, the quarantine, the resets'
         * change log entries and the descriptions go with the last one. */
        size_t cap = w->cfg.batch_events, i = 0;
        do {
            size_t k = w->n_events - i < cap ? w->n_events - i : cap;
            bool last = i + k >= w->n_events;
            ota_store_batch b = {w->evs + i, k, w->seqs, last ? w->n_seqs : 0,
                                 w->quar, last ? w->n_quar : 0,
                                 w->resets, last ? w->n_resets : 0,
                                 w->descs, last ? w->n_descs : 0};
            if (put_with_retry(w, &b) != 0)
                return -1;
            pthread_mutex_lock(&w->mu);
            w->st.quarantined += b.n_quarantine;
            pthread_mutex_unlock(&w->mu);
            i += k;
        } while (i < w->n_events);
    }
    store_checkpoint(w);
    batch_clear(w);
    return 0;
}

/* ---------------------------------------------------------------- jobs */

static bool jobs_pending(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool pending = w->jobs != NULL;
    pthread_mutex_unlock(&w->mu);
    return pending;
}

static void append_job(ota_writer_job **head, ota_writer_job **tail, ota_writer_job *job)
{
    job->next = NULL;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void run_job(ota_writer *w, ota_writer_job *job)
{
    job->err[0] = '\0';
    job->rc = job->run(w->store, job->arg, job->err, sizeof job->err);
    if (job->rc != 0 && job->err[0] == '\0')
        snprintf(job->err, sizeof job->err, "store error");
}

/* Runs every job submitted so far, in order, and queues them for poll_done. */
static void run_jobs(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->jobs) {
        ota_writer_job *job = w->jobs;
        w->jobs = job->next;
        if (!w->jobs)
            w->jobs_tail = NULL;
        w->job_running = true;
        pthread_mutex_unlock(&w->mu);
        run_job(w, job);
        pthread_mutex_lock(&w->mu);
        w->job_running = false;
        bool first = w->finished == NULL;
        append_job(&w->finished, &w->finished_tail, job);
        pthread_cond_broadcast(&w->cv);
        if (first && w->cfg.notify != NULL)
            w->cfg.notify(w->cfg.notify_ctx); /* a signal: safe under the lock */
    }
    pthread_mutex_unlock(&w->mu);
}

int ota_writer_submit(ota_writer *w, ota_writer_job *job)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    append_job(&w->jobs, &w->jobs_tail, job);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    ota_spool_wake(w->spool); /* an idle writer waits on the spool */
    return 0;
}

/* Calls done() of each finished job, in order; the list is taken under the lock. */
static size_t finish_jobs(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    ota_writer_job *job = w->finished;
    w->finished = w->finished_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    while (job) {
        ota_writer_job *next = job->next;
        job->done(job->arg, job->rc, job->err);
        job = next;
        n++;
    }
    return n;
}

size_t ota_writer_poll_done(ota_writer *w)
{
    return finish_jobs(w);
}

bool ota_writer_jobs_idle(ota_writer *w, unsigned timeout_ms)
{
    struct timespec until;
    ota_sync_deadline(&until, timeout_ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while ((w->jobs || w->job_running) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    bool idle = !w->jobs && !w->job_running;
    pthread_mutex_unlock(&w->mu);
    return idle;
}

/* ---------------------------------------------------------------- the thread */

/* Opens the reader at the checkpoint, retrying while it cannot. false when stopping. */
static bool reader_start(ota_writer *w)
{
    for (;;) {
        w->reader = ota_spool_reader_open(w->spool, w->ck);
        if (w->reader)
            return true;
        wlog(w, OTA_LOG_ERR, "ota writer: cannot open the spool reader: %s", strerror(errno));
        if (sleep_or_stop(w, w->cfg.retry_max_ms))
            return false;
    }
}

/* Restarts reading at the checkpoint after a read error (the batch was flushed). */
static bool reader_restart(ota_writer *w, int error)
{
    wlog(w, OTA_LOG_ERR, "ota writer: spool read error: %s", strerror(error));
    ota_spool_reader_close(w->reader);
    w->reader = NULL;
    if (w->have_look) {
        pending_free(&w->look);
        w->have_look = false;
    }
    if (sleep_or_stop(w, w->cfg.retry_max_ms))
        return false;
    return reader_start(w);
}

static void load_checkpoint(ota_writer *w)
{
    if (ota_spool_checkpoint_load(w->spool, &w->ck) != 0) {
        wlog(w, OTA_LOG_WARNING,
             "ota writer: unreadable spool checkpoint (%s): replaying the whole spool",
             strerror(errno));
        w->ck = (ota_spool_pos){0, 0}; /* the oldest segment */
    }
    w->last_next = w->ck;
}

/* The broker thread comes first: the spool absorbs what the writer defers. A nice value
 * is per thread on Linux. */
static void lower_priority(ota_writer *w)
{
    if (w->cfg.nice > 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), w->cfg.nice) != 0)
        wlog(w, OTA_LOG_WARNING, "ota writer: cannot lower its priority: %s", strerror(errno));
}

static void *writer_main(void *arg)
{
    ota_writer *w = arg;
    lower_priority(w);
    if (!reader_start(w))
        return NULL;
    while (!stopping(w)) {
        ota_spool_pos dry = {0, 0};
        ota_spool_pos before = w->last_next;
        int rc = gather(w, &dry);
        bool busy = ota_spool_pos_cmp(before, w->last_next) < 0; /* this round took records */
        int error = errno;
        if (flush(w) != 0)
            break;
        if (rc < 0) {
            if (!reader_restart(w, error))
                break;
            continue;
        }
        store_polled_checkpoint(w);
        free_used(w);
        set_done(w, rc == 0 ? dry : w->last_next);
        /* While reports flow, sleep instead of waiting to be woken: a waiting writer makes
         * every append wake it (a system call on the broker thread) for tiny batches. */
        if (rc == 0 && busy)
            linger(w);
        else if (rc == 0 && !jobs_pending(w))
            ota_spool_wait(w->spool, dry, WRITER_IDLE_WAIT_MS);
        run_jobs(w);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

static void config_defaults(ota_writer_config *c)
{
    if (!c->batch_events)
        c->batch_events = OTA_WRITER_BATCH_DEFAULT;
    if (!c->retry_min_ms)
        c->retry_min_ms = 100;
    if (!c->retry_max_ms)
        c->retry_max_ms = 5000;
    if (c->retry_max_ms < c->retry_min_ms)
        c->retry_max_ms = c->retry_min_ms;
}

ota_writer *ota_writer_start(ota_spool *spool, ota_store *store, const ota_writer_config *cfg,
                             char *err, size_t errlen)
{
    if (!spool || !store) {
        snprintf(err, errlen, "writer: no spool or no store");
        return NULL;
    }
    ota_writer *w = calloc(1, sizeof *w);
    if (!w || ota_sync_cond_init(&w->cv) != 0) {
        free(w);
        snprintf(err, errlen, "writer: out of memory");
        return NULL;
    }
    w->spool = spool;
    w->store = store;
    if (cfg)
        w->cfg = *cfg;
    config_defaults(&w->cfg);
    w->backoff_ms = w->cfg.retry_min_ms;
    w->st.store_ok = true;
    pthread_mutex_init(&w->mu, NULL);
    /* Before the thread runs: stats measure the backlog from done (the replay's too). */
    load_checkpoint(w);
    w->done = w->ck;
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "writer: cannot start the thread: %s", strerror(rc));
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL; /* the store stays the caller's */
    }
    return w;
}

/* At a stop, what was spooled until then (the last reports, the descriptions the signer
 * finished for the requests in flight) is stored now, when the store works, for at most
 * WRITER_STOP_DRAIN_MS and without retrying a failed batch, so that the other brokers on the store find it while
 * this one is down. Its results are never polled, so the checkpoint stays before it: the
 * next start replays it (stored once, by its keys) and its effects happen then, as
 * without this. */
static void drain_at_stop(ota_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool store_ok = w->st.store_ok;
    pthread_mutex_unlock(&w->mu);
    if (!w->reader || !store_ok)
        return; /* a failing store is not tried again: the next start stores it */
    int64_t end = ota_sync_mono_ms() + WRITER_STOP_DRAIN_MS;
    ota_spool_pos dry;
    int rc;
    do {
        rc = gather(w, &dry);
        if (flush(w) != 0)
            break;
    } while (rc == 1 && ota_sync_mono_ms() < end);
}

void ota_writer_stop(ota_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    drain_at_stop(w);
    run_jobs(w); /* accepted changes still reach the store */
    finish_jobs(w);
    store_polled_checkpoint(w); /* what those jobs' done() allowed (the execution moves) */

    batch_clear(w);
    if (w->have_look)
        pending_free(&w->look);
    free(w->batch);
    free(w->evs);
    free(w->seqs);
    free(w->resets);
    free(w->quar);
    free(w->descs);
    free_results(w);
    ota_spool_reader_close(w->reader);
    ota_store_close(w->store);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* The backlog is measured when asked (a directory scan), from what the writer has
 * finished: a figure kept by the writer would be stale while it is stuck in a store call
 * (a server that stopped answering). */
void ota_writer_stats_get(ota_writer *w, ota_writer_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->results_waiting = w->results != NULL;
    ota_spool_pos done = w->done;
    pthread_mutex_unlock(&w->mu);
    st->backlog_bytes = ota_spool_bytes_after(w->spool, done);
}

bool ota_writer_wait_drained(ota_writer *w, unsigned timeout_ms)
{
    ota_spool_stats sst;
    ota_spool_stats_get(w->spool, &sst);
    struct timespec until;
    ota_sync_deadline(&until, timeout_ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (ota_spool_pos_cmp(w->done, sst.end) < 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    bool drained = ota_spool_pos_cmp(w->done, sst.end) >= 0;
    pthread_mutex_unlock(&w->mu);
    return drained;
}
