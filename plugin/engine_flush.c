/*
 * engine_flush.c — the task engine's persistence (engine_impl.h): every execution
 * change goes on a dirty list (ota_eng_mark_dirty, with the state the store holds: from),
 * every notice sent on a notice list; on TICK the dirty executions, the notices and the
 * task documents whose state changed go to the writer as ONE job, paced by batch.h (one
 * job in flight, at most every 50 ms, sooner at 4096 changes), like shadow.c. The job
 * writes each execution as a conditional transition (ota_store_transition_exec from its
 * stored state: brokers sharing one database never overwrite each other's moves), then
 * the notices as one ota_store_apply change, then each task document as a conditional
 * write from the revision this broker holds (issue 16: a document that finds another
 * broker's revision waits for the change log to bring it and is written again over it;
 * a rollout is never overwritten with an older one). A transition that does not
 * apply (another broker moved the execution) has the execution read again
 * (engine_adopt.c). The job owns copies of every text it stores. A failed job puts its
 * executions, notices and documents back, retried after 1 s (a transition it applied
 * before failing is found applied on the retry: read again, the same state). Executions
 * another broker drives (OTA_EXEC_F_ELSEWHERE) are never stored here. A new execution (a
 * continuous task's joiner, from OTA_ENG_FROM_NEW) has no row to move: it is inserted
 * with the change (put_execs) unless a row is there already — another broker sharing the
 * database took the same joiner first and may have moved it: then it is read again, as
 * for a conflict. Its later moves come in later jobs, so they find the row.
 *
 * The spool checkpoint waits for the moves (issue 15): the reports polled up to a spool
 * position (ota_engine_hold_checkpoint) may be checkpointed once the flush job after
 * them is stored, and only when no event waits for an execution read (engine_adopt.c):
 * the moves they make come later. A job with a move that found another state (read
 * again, maybe written again: the further one wins) holds its checkpoint for the next job
 * after that read. A broker killed before that replays those reports at its next start,
 * so the moves its writer had not stored are made again.
 */
#include "engine_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ota_eng_msg_id(const ota_task *task, const ota_task_exec *x, char *buf, size_t len)
{
    char vin[OTA_VIN_LEN + 1];
    ota_task_exec_vin(x, vin);
    ota_eng_msg_id_of(task->rec.id, vin, x->resends, buf, len);
}

void ota_eng_copy_text(char *buf, size_t len, const char *s)
{
    size_t n = strnlen(s, len - 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
}

/* s at *at (as much as fits before end), *at moved past it. */
static void put_text(char **at, const char *end, const char *s, size_t n)
{
    n = n < (size_t)(end - *at) ? n : (size_t)(end - *at);
    memcpy(*at, s, n);
    *at += n;
}

size_t ota_eng_int_text(int64_t v, char buf[24])
{
    size_t n = 0;
    if (v < 0) {
        buf[n++] = '-';
    }
    n += ota_dec_u64(buf + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    buf[n] = '\0';
    return n;
}

void ota_eng_msg_id_of(const char *task, const char *vin, unsigned resends, char *buf, size_t len)
{
    char digits[24];
    size_t n = ota_eng_int_text(resends, digits);
    char *at = buf, *end = buf + len - 1;
    put_text(&at, end, task, strlen(task));
    put_text(&at, end, ":", 1);
    put_text(&at, end, vin, strlen(vin));
    put_text(&at, end, ":", 1);
    put_text(&at, end, digits, n);
    *at = '\0';
}

void ota_eng_mark_dirty(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    ota_eng_mark_dirty_from(e, task, x, x->state);
}

void ota_eng_dirty_stored(ota_engine *e, const ota_task_exec *x, uint8_t state)
{
    for (size_t i = 0; x->dirty && i < e->n_dirty; i++) {
        if (&e->dirty[i].task->execs[e->dirty[i].idx] == x) {
            e->dirty[i].from = state;
        }
    }
}

uint8_t ota_eng_stored_state(const ota_engine *e, const ota_task_exec *x)
{
    for (size_t i = 0; x->dirty && i < e->n_dirty; i++) {
        if (&e->dirty[i].task->execs[e->dirty[i].idx] == x) {
            return e->dirty[i].from;
        }
    }
    return x->state;
}

void ota_eng_mark_dirty_from(ota_engine *e, ota_task *task, ota_task_exec *x, uint8_t from)
{
    if (x->dirty || (x->flags & OTA_EXEC_F_ELSEWHERE)) {
        return; /* another broker's notice: that broker stores the execution */
    }
    if (e->n_dirty == e->cap_dirty) {
        size_t cap = e->cap_dirty ? 2 * e->cap_dirty : 64;
        eng_exec_ref *d = realloc(e->dirty, cap * sizeof(*d));
        if (!d) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: execution change not stored: out of memory");
            return;
        }
        e->dirty = d;
        e->cap_dirty = cap;
    }
    e->dirty[e->n_dirty++] = (eng_exec_ref){task, (size_t)(x - task->execs), from};
    x->dirty = 1;
}

static void notice_fini(eng_notice *n)
{
    free((char *)n->rec.task);
    free((char *)n->rec.vin);
    free((char *)n->rec.version);
    free((char *)n->rec.msg_id);
}

void ota_eng_record_notice(ota_engine *e, const ota_task *task, const char *vin, const char *msg_id,
                           int64_t now)
{
    if (e->n_notices == e->cap_notices) {
        size_t cap = e->cap_notices ? 2 * e->cap_notices : 64;
        eng_notice *n = realloc(e->notices, cap * sizeof(*n));
        if (!n) {
            return;
        }
        e->notices = n;
        e->cap_notices = cap;
    }
    eng_notice *n = &e->notices[e->n_notices];
    n->rec = (ota_notice_rec){strdup(task->rec.id),      strdup(vin),    task->package,
                              strdup(task->rec.version), strdup(msg_id), now};
    if (!n->rec.task || !n->rec.vin || !n->rec.version || !n->rec.msg_id) {
        notice_fini(n);
        return;
    }
    e->n_notices++;
}

void ota_eng_flush_free(ota_engine *e)
{
    for (size_t i = 0; i < e->n_notices; i++) {
        notice_fini(&e->notices[i]);
    }
    free(e->notices);
    free(e->dirty);
}

/* ---------------------------------------------------------------- flush jobs */

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    ota_catalog_change change;
    ota_exec_rec *execs;
    char **strs; /* every string the records point to */
    size_t n_strs;
    eng_exec_ref *refs;
    int *applied; /* per execution: 1 the transition applied, 0 not (read again) */
    size_t n;
    eng_notice *notices;
    size_t n_notices;
    ota_store_doc *docs;
    ota_task **doc_tasks;
    uint64_t *doc_revs; /* per document: the revision it replaces (issue 16) */
    int *doc_stored;    /* per document: 1 stored, 0 another revision was there */
    ota_task_state *doc_states; /* per document: the task's state it stores */
    size_t n_docs;
    ota_spool_pos ck; /* the checkpoint allowed once this job is stored */
    bool has_ck;
} flush_job;

static void flush_job_free(flush_job *j)
{
    for (size_t i = 0; i < j->n_strs; i++) {
        free(j->strs[i]);
    }
    for (size_t i = 0; i < j->n_notices; i++) {
        notice_fini(&j->notices[i]);
    }
    free(j->strs);
    free(j->execs);
    free(j->refs);
    free(j->applied);
    free(j->notices);
    free(j->docs);
    free(j->doc_tasks);
    free(j->doc_revs);
    free(j->doc_stored);
    free(j->doc_states);
    free(j);
}

static char *keep(flush_job *j, char *s)
{
    j->strs[j->n_strs++] = s;
    return s;
}

static int exec_there(void *ctx, const ota_exec_rec *e)
{
    (void)e;
    *(bool *)ctx = true;
    return 0;
}

static int flush_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    flush_job *j = arg;
    ota_exec_rec *puts = (ota_exec_rec *)j->change.put_execs;
    j->change.n_put_execs = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->refs[i].from == OTA_ENG_FROM_NEW) {
            bool there = false;
            if (ota_store_load_exec(store, j->execs[i].task, j->execs[i].vin, exec_there,
                                    &there) != 0) {
                snprintf(err, errlen, "reading execution %s of %s failed", j->execs[i].vin,
                         j->execs[i].task);
                return -1;
            }
            if (!there && !puts) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            j->applied[i] = there ? 0 : 1; /* 0: read again (flush_conflicts) */
            if (!there) {
                puts[j->change.n_put_execs++] = j->execs[i];
            }
            continue;
        }
        j->applied[i] = ota_store_transition_exec(store, (ota_exec_state)j->refs[i].from,
                                                  &j->execs[i], err, errlen);
        if (j->applied[i] < 0) {
            return -1;
        }
    }
    if ((j->change.n_add_notices > 0 || j->change.n_put_execs > 0) &&
        ota_store_apply(store, &j->change, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < j->n_docs; i++) { /* each from the revision this broker holds */
        j->doc_stored[i] = ota_store_put_task_doc_if(store, j->docs[i].key, j->docs[i].json,
                                                     j->doc_revs[i], err, errlen);
        if (j->doc_stored[i] < 0) {
            return -1;
        }
    }
    return 0;
}

/* The documents stored raise their task's revision, and the end they store is told here on a
 * shared store (engine_end.c: the broker whose write moved the task tells it); one that found
 * another revision (another broker's change, which the change log brings) is stored again
 * over that one later, unless that change was the task's end (then it is taken as it is). */
static void flush_docs_done(flush_job *j)
{
    for (size_t i = 0; i < j->n_docs; i++) {
        ota_task *task = j->doc_tasks[i];
        if (j->doc_stored[i] == 1) {
            task->rev = task->rev < j->doc_revs[i] + 1 ? j->doc_revs[i] + 1 : task->rev;
            ota_eng_task_stored(j->e, task, j->doc_states[i]);
        } else {
            j->e->waves.ends_lost += j->doc_states[i] != OTA_TASK_ACTIVE;
            task->doc_dirty = !ota_eng_task_end_stored(j->e, task);
        }
    }
}

/* Transitions that found another state: another broker moved those executions. New
 * executions are stored now (or were by another broker): they may be notified. True when
 * one is read again (its move may still have to be written again over the stored one). */
static bool flush_conflicts(ota_engine *e, flush_job *j)
{
    bool any = false;
    for (size_t i = 0; i < j->n; i++) {
        if (j->refs[i].from == OTA_ENG_FROM_NEW) {
            j->refs[i].task->execs[j->refs[i].idx].flags &= (uint8_t)~OTA_EXEC_F_NEW;
        }
        if (j->applied[i] == 0) {
            ota_task *task = j->refs[i].task;
            ota_eng_adopt_reload(e, task, &task->execs[j->refs[i].idx]);
            any = true;
        }
    }
    return any;
}

/* A failed job: what it carried waits for the next flush. */
static void flush_put_back(ota_engine *e, flush_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        ota_task_exec *x = &j->refs[i].task->execs[j->refs[i].idx];
        if (j->applied[i] == 0) {
            ota_eng_adopt_reload(e, j->refs[i].task, x);
        } else {
            ota_eng_mark_dirty_from(e, j->refs[i].task, x, j->refs[i].from);
        }
    }
    for (size_t i = 0; i < j->n_docs; i++) {
        j->doc_tasks[i]->doc_dirty = true;
    }
    for (size_t i = 0; i < j->n_notices; i++) {
        ota_notice_rec *r = &j->notices[i].rec;
        ota_eng_record_notice(
            e,
            &(ota_task){.rec = {.id = (char *)r->task, .version = (char *)r->version},
                        .package = r->package},
            r->vin, r->msg_id, r->sent_ms);
    }
}

/* The reports behind ck drove their executions. Polls come in spool order: the latest
 * checkpoint covers the earlier ones. */
static void ck_pend(ota_engine *e, ota_spool_pos ck)
{
    e->ck_want = ck;
    e->ck_pending = true;
}

/* No event waits for an execution read: every move the polled reports make is made. */
static bool adopts_idle(const ota_engine *e)
{
    return e->adopts.n == 0 && !e->adopts.in_flight;
}

void ota_engine_hold_checkpoint(ota_plugin *p, ota_spool_pos ck)
{
    if (!p->engine) {
        ota_writer_allow_checkpoint(p->writer, ck);
        return;
    }
    ck_pend(p->engine, ck);
}

static void flush_done(void *arg, int rc, const char *err)
{
    flush_job *j = arg;
    ota_batch_ended(&j->e->batch, rc, "execution changes", j->n, err);
    if (rc != 0) {
        ota_batch_later(&j->e->batch, j->e->clock.mono_ms()); /* on the engine's clock */
        flush_put_back(j->e, j);
        if (j->has_ck && !j->e->ck_pending) { /* a pending one is later: it covers */
            ck_pend(j->e, j->ck);
        }
    } else {
        bool reread = flush_conflicts(j->e, j);
        if (j->has_ck && reread && !j->e->ck_pending) {
            ck_pend(j->e, j->ck); /* a move found another state: it waits for the read */
        } else if (j->has_ck && !reread) {
            ota_writer_allow_checkpoint(j->e->plugin->writer, j->ck);
        }
        flush_docs_done(j);
    }
    flush_job_free(j);
}

static void exec_rec(ota_engine *e, flush_job *j, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1], msg_id[128];
    ota_task_exec_vin(x, vin);
    ota_eng_msg_id(task, x, msg_id, sizeof(msg_id));
    const char *code = ota_tasks_code_name(e->plugin->tasks, x->code);
    j->execs[j->n] = (ota_exec_rec){.task = keep(j, strdup(task->rec.id)),
                                    .vin = keep(j, strdup(vin)),
                                    .state = (ota_exec_state)x->state,
                                    .code = code ? keep(j, strdup(code)) : NULL,
                                    .resends = x->resends,
                                    .msg_id = x->notified_ms >= 0 ? keep(j, strdup(msg_id)) : NULL,
                                    .notified_ms = x->notified_ms,
                                    .updated_ms = x->changed_ms,
                                    .wave = ota_task_exec_wave(task, x)};
}

static void add_docs(flush_job *j, ota_task **tasks, long n)
{
    for (long i = 0; i < n; i++) {
        if (!tasks[i]->doc_dirty) {
            continue;
        }
        ota_task next = *tasks[i]; /* the document's next revision (issue 16) */
        next.rev++;
        cJSON *d = ota_task_doc_of(&next, tasks[i]->state); /* with its waves */
        char *json = d ? cJSON_PrintUnformatted(d) : NULL;
        cJSON_Delete(d);
        if (!json) {
            continue;
        }
        j->docs[j->n_docs] = (ota_store_doc){OTA_DOC_TASK, tasks[i]->rec.id, keep(j, json)};
        j->doc_revs[j->n_docs] = tasks[i]->rev;
        j->doc_states[j->n_docs] = tasks[i]->state;
        j->doc_tasks[j->n_docs++] = tasks[i];
        tasks[i]->doc_dirty = false;
    }
}

/* The engine's dirty executions and notices move into the job. */
static void take_changes(ota_engine *e, flush_job *j)
{
    for (size_t i = 0; i < e->n_dirty; i++) {
        ota_task_exec *x = &e->dirty[i].task->execs[e->dirty[i].idx];
        exec_rec(e, j, e->dirty[i].task, x);
        x->dirty = 0;
        j->n++;
    }
    j->refs = e->dirty;
    e->dirty = NULL;
    e->n_dirty = e->cap_dirty = 0;
    j->notices = e->notices;
    j->n_notices = e->n_notices;
    e->notices = NULL;
    e->n_notices = e->cap_notices = 0;
}

/* Room for the job's new executions, the rows flush_run inserts (those not stored yet). */
static void put_new_execs(flush_job *j)
{
    ota_exec_rec *puts = calloc(j->n + 1, sizeof(*puts));
    j->change.put_execs = puts;
    j->change.n_put_execs = 0;
    j->strs[j->n_strs++] = (char *)puts; /* freed with the strings */
}

static void flush_submit(ota_engine *e)
{
    ota_plugin *p = e->plugin;
    ota_task **tasks = NULL;
    long nt = ota_tasks_list(p->tasks, &tasks);
    size_t n = e->n_dirty;
    flush_job *j = calloc(1, sizeof(*j));
    if (!j || nt < 0) {
        free(j);
        free(tasks);
        return;
    }
    j->e = e;
    j->execs = calloc(n + 1, sizeof(*j->execs));
    j->applied = calloc(n + 1, sizeof(*j->applied));
    j->strs = calloc(4 * n + (size_t)nt + 2, sizeof(*j->strs));
    j->docs = calloc((size_t)nt + 1, sizeof(*j->docs));
    j->doc_tasks = calloc((size_t)nt + 1, sizeof(*j->doc_tasks));
    j->doc_revs = calloc((size_t)nt + 1, sizeof(*j->doc_revs));
    j->doc_stored = calloc((size_t)nt + 1, sizeof(*j->doc_stored));
    j->doc_states = calloc((size_t)nt + 1, sizeof(*j->doc_states));
    if (!j->execs || !j->applied || !j->strs || !j->docs || !j->doc_tasks || !j->doc_revs ||
        !j->doc_stored || !j->doc_states) {
        flush_job_free(j);
        free(tasks);
        return;
    }
    take_changes(e, j);
    for (size_t i = 0; i < j->n; i++) {
        j->applied[i] = -1; /* not written yet: a failed job puts it back */
    }
    add_docs(j, tasks, nt);
    free(tasks);
    ota_notice_rec *nr = calloc(j->n_notices + 1, sizeof(*nr));
    for (size_t i = 0; nr && i < j->n_notices; i++) {
        nr[i] = j->notices[i].rec;
    }
    j->change = (ota_catalog_change){.add_notices = nr, /* documents: each on its own */
                                     .n_add_notices = nr ? j->n_notices : 0};
    j->strs[j->n_strs++] = (char *)nr; /* freed with the strings */
    put_new_execs(j);
    if (e->ck_pending && adopts_idle(e)) {
        j->ck = e->ck_want;
        j->has_ck = true;
        e->ck_pending = false;
    }
    j->job = (ota_writer_job){.run = flush_run, .done = flush_done, .arg = j};
    int64_t now = e->clock.mono_ms();
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        flush_done(j, -1, "the writer is stopping");
        return;
    }
    ota_batch_started(&e->batch, now);
}

static bool has_changes(ota_engine *e)
{
    if (e->n_dirty || e->n_notices) {
        return true;
    }
    ota_task **tasks = NULL;
    long n = ota_tasks_list(e->plugin->tasks, &tasks);
    bool any = false;
    for (long i = 0; i < n && !any; i++) {
        any = tasks[i]->doc_dirty;
    }
    free(tasks);
    return any;
}

void ota_eng_flush(ota_engine *e)
{
    if (!e->plugin->writer || e->batch.in_flight) {
        return;
    }
    /* dirty executions count; only notices or task documents waiting count as one */
    size_t pending = e->n_dirty ? e->n_dirty : (has_changes(e) ? 1 : 0);
    if (pending == 0 && e->ck_pending && adopts_idle(e)) {
        e->ck_pending = false; /* nothing to store: every move is stored already */
        ota_writer_allow_checkpoint(e->plugin->writer, e->ck_want);
        return;
    }
    if (ota_batch_due(&e->batch, pending, e->clock.mono_ms())) {
        flush_submit(e);
    }
}

void ota_eng_flush_now(ota_engine *e)
{
    if (e->plugin->writer && has_changes(e)) {
        flush_submit(e);
    } else if (e->plugin->writer && e->ck_pending && adopts_idle(e) && !e->batch.in_flight) {
        e->ck_pending = false; /* at stop: a clean restart replays nothing twice */
        ota_writer_allow_checkpoint(e->plugin->writer, e->ck_want);
    }
}
