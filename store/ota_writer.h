/*
 * ota_writer.h — the writer thread: the only path from the spool to the store, and the
 * only thread that uses the plugin's store handle (reports, and the jobs below).
 *
 * Data flows one way: broker thread -> spool (append) -> writer thread -> store.
 * The writer starts at the spool's checkpoint (so a restart replays whatever had not
 * reached the store), reads records, re-decodes each report with the codec, and puts
 * up to batch_events events into the store in one atomic batch; after each successful
 * batch it stores the checkpoint. When the store fails it keeps the batch, retries with
 * exponential backoff between retry_min_ms and retry_max_ms, and logs once when the
 * store goes down and once when it comes back. Refused reports (spool kind 3) and reports
 * that no longer decode go to the quarantine with their reason; resets (kind 4) and
 * reports update the VIN's replay guard row (ota_store.h), all in the batch's store call.
 *
 * The writer never calls Mosquitto: it logs through cfg->log, which the plugin turns
 * into a queue drained on the broker thread.
 */
#ifndef OTA_WRITER_H
#define OTA_WRITER_H

#include "ota_codec.h"
#include "ota_spool.h"
#include "ota_store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ota_writer ota_writer;

enum { OTA_LOG_ERR = 0, OTA_LOG_WARNING, OTA_LOG_NOTICE, OTA_LOG_INFO, OTA_LOG_DEBUG };
/* Must be thread-safe; msg is a complete line without newline. */
typedef void (*ota_log_fn)(void *ctx, int level, const char *msg);

typedef struct {
    size_t batch_events;   /* most events per store batch; default 4096 */
    unsigned retry_min_ms; /* default 100 */
    unsigned retry_max_ms; /* default 5000 */
    ota_report_limits limits;
    int nice;       /* nice value of the writer thread (per thread on Linux); 0 leaves it */
    ota_log_fn log; /* may be NULL */
    void *log_ctx;
    /* May be NULL. Called on the writer thread when finished jobs start waiting for
     * ota_writer_poll_done (once until they are polled), e.g. to wake the broker. */
    void (*notify)(void *ctx);
    void *notify_ctx;
    /* true: every report the writer stores or refuses is handed back through
     * ota_writer_poll_reports (the plugin: it publishes the effects once the report is
     * durable); false: nothing is kept (tools, tests of the writer alone). */
    bool report_results;
} ota_writer_config;

#define OTA_WRITER_BATCH_DEFAULT 4096
#define OTA_WRITER_NICE_DEFAULT 19

typedef struct {
    uint64_t events_stored;   /* newly stored */
    uint64_t duplicates;      /* already in the store */
    uint64_t batches;         /* successful store batches */
    uint64_t records_skipped; /* spooled records of an unknown kind, or unreadable */
    uint64_t quarantined;     /* refused reports stored in the quarantine */
    uint64_t store_errors;    /* failed store batches (each retried) */
    uint64_t backlog_bytes;   /* spool bytes not yet in the store */
    bool results_waiting;     /* stored reports whose results the broker has not polled yet */
    bool store_ok;            /* false while the store is failing */
} ota_writer_stats;

/* Starts the thread. The writer takes ownership of store (closes it at stop); the spool
 * stays the caller's and must outlive the writer. NULL with err on failure. */
ota_writer *ota_writer_start(ota_spool *spool, ota_store *store, const ota_writer_config *cfg,
                             char *err, size_t errlen);
/* Finishes the batch in hand (no retries once stopping), runs the jobs still queued and
 * calls their done() on the calling thread (the broker thread, at cleanup), stops and
 * frees. */
void ota_writer_stop(ota_writer *w);
void ota_writer_stats_get(ota_writer *w, ota_writer_stats *st);
/* Test helper: waits until every record appended so far is in the store (or timeout).
 * Returns true when drained. */
bool ota_writer_wait_drained(ota_writer *w, unsigned timeout_ms);

/* ---- jobs: catalog changes and other store work for the broker thread ----
 * The broker thread submits a job; the writer thread runs it (between report batches, in
 * order of submission) and queues it as done; the broker thread's TICK calls
 * ota_writer_poll_done, which calls each finished job's done() on the broker thread.
 * That is how an operator's change is stored before it is applied in memory and
 * answered. A job whose run fails is not retried (rc -1 and err reach done()): catalog
 * changes are validated in memory first, so a failure is the store's, and the operator
 * is told. */
typedef struct ota_writer_job ota_writer_job;
struct ota_writer_job {
    /* writer thread: 0, or -1 with err written */
    int (*run)(ota_store *store, void *arg, char *err, size_t errlen);
    /* broker thread, from ota_writer_poll_done: the job's end (free arg here) */
    void (*done)(void *arg, int rc, const char *err);
    void *arg;
    /* private */
    int rc;
    char err[256];
    ota_writer_job *next;
};

/* Any thread. The writer owns the job until it is handed back by poll_done (after done()
 * the job memory is the caller's again: free it in done() if it was allocated).
 * Returns 0, or -1 when the writer is stopping (the job is not run). */
int ota_writer_submit(ota_writer *w, ota_writer_job *job);
/* Broker thread: calls done() of every finished job, in order. Returns how many. */
size_t ota_writer_poll_done(ota_writer *w);
/* Test helper: waits up to timeout_ms until no job is queued or running. */
bool ota_writer_jobs_idle(ota_writer *w, unsigned timeout_ms);

/* ---- report results: what the broker thread does once a report is in the store ----
 * After each committed batch the writer queues, in spool order, one result per report
 * record: the decoded report (stored: its events are in the store, or were already —
 * a replay of the spool after a crash hands them back again), or the reason the
 * decoder refused it (kept in the quarantine). notify() is called as for jobs. With
 * report_results the spool checkpoint moves past a batch only once its results have
 * been polled: a crash or a stop between the store and the broker thread's TICK replays
 * the batch at the next start (stored once; its results, so its effects, again). */
typedef struct ota_report_result ota_report_result;
struct ota_report_result {
    char vin[32];
    char epoch[OTA_SPOOL_EPOCH_MAX + 1];
    uint32_t resets; /* the VIN's operator resets when spooled: the stored epoch's "~N" */
    uint64_t seq;
    int64_t received_ms;
    bool refused;  /* the decoder refused it: code, msg (and seq when has_seq) */
    bool has_seq;
    ota_error err;
    uint64_t size;  /* of the payload */
    ota_report rep; /* stored: the decoded report (freed after the callback, by the writer) */
    /* private */
    bool marker;      /* the end of a batch: not handed to fn */
    ota_spool_pos ck; /* marker: the checkpoint once everything before is polled */
    ota_report_result *next;
};

/* Broker thread: calls fn for each queued result, in order, then hands them back to the
 * writer thread, which frees them. Returns how many. The spool checkpoint may then move past
 * the polled reports. */
size_t ota_writer_poll_reports(ota_writer *w, void (*fn)(void *ctx, const ota_report_result *r),
                               void *ctx);
/* The same, but the checkpoint stays where it is: *ck gets the position the polled
 * results allow (*has_ck false when no batch ended), for ota_writer_allow_checkpoint once
 * what the results caused is stored too (the plugin: the execution moves, issue 15). Until
 * then a crash replays those reports at the next start: stored once, their effects again. */
size_t ota_writer_poll_reports_held(ota_writer *w,
                                    void (*fn)(void *ctx, const ota_report_result *r), void *ctx,
                                    ota_spool_pos *ck, bool *has_ck);
/* Any thread: the checkpoint may move up to ck (a position from poll_reports_held). */
void ota_writer_allow_checkpoint(ota_writer *w, ota_spool_pos ck);

#endif
