/*
 * engine_claims.c — notice claims (engine_impl.h, docs/task-engine.md "Notice claims").
 *
 * Every notice — a first one and each compensation re-send — is claimed in the store
 * (ota_store_claim_notices, owner = plugin_opt_broker_id) before it goes out, so brokers
 * sharing one database never send the same msg_id twice. Dispatch queues the execution
 * here (flag OTA_EXEC_F_CLAIMING); at the end of each TICK every waiting claim goes to the
 * writer as one job, one job in flight at a time; its result comes back on a later TICK:
 * won (1) sends the notice if the execution still waits for that msg_id, lost (0) marks
 * it driven by another broker (OTA_EXEC_F_ELSEWHERE), a failed job puts the claims back
 * to wait, retried after 1 s doubling to 8 s. The writer thread reads only its job's own
 * copies of the texts.
 *
 * Each notice won is decided in the same job, as ONE store write
 * (ota_store_notice_decision): the execution's move to notified (from the state the store
 * holds), the vehicle's shadow with the notice as its desired state, and the notice row.
 * Only then does the notice go out, so a broker dying at any point leaves either no notice
 * or a stored one (that any broker serves). A decision that finds another state (another
 * broker moved the execution) sends nothing: the execution is read again (engine_adopt.c).
 */
#include "engine_impl.h"
#include "shadow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ota_eng_request_claim(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    eng_claims *q = &e->claims;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        eng_claim_ref *r = realloc(q->refs, cap * sizeof(*r));
        if (!r) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: notice of task %s not sent: out of memory",
                                 task->rec.id);
            return;
        }
        q->refs = r;
        q->cap = cap;
    }
    q->refs[q->n++] = (eng_claim_ref){task, (size_t)(x - task->execs), x->resends};
    x->flags |= OTA_EXEC_F_CLAIMING;
}

/* ---------------------------------------------------------------- claim jobs */

typedef struct {
    char task[OTA_ID_MAX + 1], vin[OTA_VIN_LEN + 1], msg_id[OTA_ID_MAX + 32];
    char version[OTA_ID_MAX + 1], code[64];
    /* the notice decision, made when the claim is won */
    uint8_t from;
    ota_exec_rec to;
    ota_shadow_rec shadow; /* texts malloc'd */
    cJSON *desired;        /* shadow.desired as a tree: the one memory takes when sent */
    ota_notice_rec notice;
    int decided; /* 1 stored, 0 the execution was not in state from, -1 not tried */
} claim_text;

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    const char *owner; /* p->cfg.broker_id: outlives the writer */
    int64_t now;
    eng_claim_ref *refs;
    ota_notice_claim *claims;
    claim_text *text; /* what claims point to: the writer thread reads only this job */
    size_t n;
} claim_job;

static void claim_job_free(claim_job *j)
{
    for (size_t i = 0; j->text && i < j->n; i++) {
        free((char *)j->text[i].shadow.vin);
        free((char *)j->text[i].shadow.reported);
        free((char *)j->text[i].shadow.desired);
        cJSON_Delete(j->text[i].desired);
    }
    free(j->refs);
    free(j->claims);
    free(j->text);
    free(j);
}

static int claim_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    claim_job *j = arg;
    if (ota_store_claim_notices(store, j->claims, j->n, j->owner, j->now, err, errlen) != 0) {
        return -1;
    }
    /* every decision won goes in one store write (SQLite: one commit for the whole job; one
     * per notice made 2,000 notices wait for 2,000 fsyncs) */
    ota_notice_decision *d = malloc((j->n ? j->n : 1) * sizeof(*d));
    size_t *of = malloc((j->n ? j->n : 1) * sizeof(*of));
    if (!d || !of) {
        free(d);
        free(of);
        snprintf(err, errlen, "notice decisions: out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < j->n; i++) {
        claim_text *t = &j->text[i];
        if (j->claims[i].result == 1 && t->shadow.vin) {
            d[n] =
                (ota_notice_decision){(ota_exec_state)t->from, &t->to, &t->shadow, &t->notice, -1};
            of[n++] = i;
        }
    }
    /* a failure is retried whole: a decision stored reads back as 1 */
    int rc = ota_store_notice_decisions(store, d, n, err, errlen);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        j->text[of[k]].decided = d[k].result;
    }
    free(d);
    free(of);
    return rc;
}

/* The execution of r, when r is still its pending claim (else NULL: it moved on). */
static ota_task_exec *claim_target(const eng_claim_ref *r)
{
    ota_task_exec *x = &r->task->execs[r->idx];
    return (x->flags & OTA_EXEC_F_CLAIMING) && x->resends == r->resends ? x : NULL;
}

/* Claimed by another broker: it sends and drives this notice. A first notice becomes
 * notified here (in memory only: never stored, never timed out by this broker), so the
 * vehicle stays busy with it until it reports the end of that task here. */
static void claim_lost(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    x->flags |= OTA_EXEC_F_ELSEWHERE;
    if (x->state == OTA_EXEC_QUEUED) {
        ota_eng_set_state(e, task, x, OTA_EXEC_NOTIFIED);
        if (task->rec.rate) {
            task->tokens += 1.0; /* no notice went out from here */
        }
    }
}

/* The execution of r moved on while its claim was out (canceled, expired, finished,
 * re-sent again): a queued one that got canceled frees its vehicle. */
static void claim_moved_on(ota_engine *e, const eng_claim_ref *r)
{
    ota_task_exec *x = &r->task->execs[r->idx];
    if (!ota_exec_in_flight(x->state) && x->resends == r->resends) {
        ota_eng_release_vehicle(e, r->task, x);
    }
}

/* One claim's outcome (result 1 mine, 0 another broker's), with its decision. */
static void claim_one_done(ota_engine *e, const eng_claim_ref *r, int result, claim_text *t)
{
    ota_task_exec *x = claim_target(r);
    if (!x) {
        claim_moved_on(e, r);
        return;
    }
    x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING;
    if (result == 0) {
        e->claims.lost++;
        claim_lost(e, r->task, x);
    } else if (t->decided == 0) {
        ota_eng_adopt_reload(e, r->task, x); /* another broker moved it: nothing sent */
    } else if (t->decided < 0 && x->state == OTA_EXEC_QUEUED && r->task->state != OTA_TASK_ACTIVE) {
        ota_eng_release_vehicle(e, r->task, x); /* the task stopped dispatching meanwhile */
    } else {
        e->claims.won++;
        ota_eng_decided d = {t->to.notified_ms, t->shadow.version, t->desired};
        t->desired = NULL; /* taken */
        ota_eng_send_notice(e, r->task, x, t->decided == 1 ? &d : NULL);
    }
}

/* A failed job: its claims wait again, retried after a backoff (1 s doubling to 8 s). */
static void claim_failed(ota_engine *e, claim_job *j, const char *err)
{
    eng_claims *q = &e->claims;
    q->errors++;
    if (!q->failing) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: %zu notice claims failed (%s); the notices wait, retrying", j->n,
                             err);
    }
    q->failing = true;
    q->backoff_ms = q->backoff_ms ? (q->backoff_ms >= 4000 ? 8000 : 2 * q->backoff_ms) : 1000;
    q->retry_after = e->clock.mono_ms() + q->backoff_ms;
    for (size_t i = 0; i < j->n; i++) {
        ota_task_exec *x = claim_target(&j->refs[i]);
        if (x) {
            x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING;
            ota_eng_request_claim(e, j->refs[i].task, x);
        } else {
            claim_moved_on(e, &j->refs[i]);
        }
    }
}

static void claim_done(void *arg, int rc, const char *err)
{
    claim_job *j = arg;
    ota_engine *e = j->e;
    e->claims.in_flight = false;
    if (e->stopping) {
        /* Claimed but not sent: stored as queued, they are claimed again (1: same broker
         * id) and sent after the restart (only when claims_final timed out). */
    } else if (rc != 0) {
        claim_failed(e, j, err);
    } else {
        if (e->claims.failing) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: notice claims work again");
        }
        e->claims.failing = false;
        e->claims.backoff_ms = 0;
        for (size_t i = 0; i < j->n; i++) {
            claim_one_done(e, &j->refs[i], j->claims[i].result, &j->text[i]);
        }
    }
    claim_job_free(j);
}

/* The decision claim i stores when won (its shadow unset when out of memory: the notice
 * then goes the old way, with the next flush). */
static void decision_fill(ota_engine *e, claim_job *j, size_t i)
{
    const eng_claim_ref *r = &j->refs[i];
    claim_text *t = &j->text[i];
    ota_task_exec *x = &r->task->execs[r->idx];
    const char *code = ota_tasks_code_name(e->plugin->tasks, x->code);
    ota_eng_copy_text(t->version, sizeof(t->version), r->task->rec.version);
    ota_eng_copy_text(t->code, sizeof(t->code), code ? code : "");
    t->decided = -1;
    t->from = ota_eng_stored_state(e, x);
    t->to = (ota_exec_rec){.task = t->task,
                           .vin = t->vin,
                           .state = OTA_EXEC_NOTIFIED,
                           .code = code ? t->code : NULL,
                           .resends = r->resends,
                           .msg_id = t->msg_id,
                           .notified_ms = j->now,
                           .updated_ms = j->now,
                           .wave = ota_task_exec_wave(r->task, x)};
    t->notice = (ota_notice_rec){t->task, t->vin, r->task->package, t->version, t->msg_id, j->now};
    /* built once: printed into the decision here, set as desired when sent */
    t->desired = ota_eng_notice_json(r->task, t->vin, t->msg_id);
    if (!t->desired || !ota_shadow_decision_rec(e->plugin, t->vin, t->desired, &t->shadow)) {
        t->shadow = (ota_shadow_rec){0};
    }
}

/* Fills claim i of the job from its reference. */
static void claim_fill(ota_engine *e, claim_job *j, size_t i)
{
    const eng_claim_ref *r = &j->refs[i];
    claim_text *t = &j->text[i];
    ota_task_exec_vin(&r->task->execs[r->idx], t->vin);
    ota_eng_copy_text(t->task, sizeof(t->task), r->task->rec.id);
    ota_eng_msg_id_of(t->task, t->vin, r->resends, t->msg_id, sizeof(t->msg_id));
    j->claims[i] = (ota_notice_claim){t->task, t->vin, t->msg_id, -1};
    decision_fill(e, j, i);
}

void ota_eng_claims_submit(ota_engine *e)
{
    ota_plugin *p = e->plugin;
    eng_claims *q = &e->claims;
    if (!p->writer || q->in_flight || q->n == 0 || e->clock.mono_ms() < q->retry_after) {
        return;
    }
    claim_job *j = calloc(1, sizeof(*j));
    ota_notice_claim *claims = calloc(q->n, sizeof(*claims));
    claim_text *text = calloc(q->n, sizeof(*text));
    if (!j || !claims || !text) {
        free(j);
        free(claims);
        free(text);
        q->retry_after = e->clock.mono_ms() + 1000;
        return;
    }
    /* every reference goes (one that moved on meanwhile is claimed needlessly, and handled
     * in claim_one_done like one that moves on while the job runs) */
    *j = (claim_job){.e = e,
                     .owner = p->cfg.broker_id,
                     .now = e->clock.now_ms(),
                     .refs = q->refs,
                     .claims = claims,
                     .text = text,
                     .n = q->n};
    for (size_t i = 0; i < j->n; i++) {
        claim_fill(e, j, i);
    }
    q->refs = NULL;
    q->n = q->cap = 0;
    j->job = (ota_writer_job){.run = claim_run, .done = claim_done, .arg = j};
    q->in_flight = true;
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        claim_done(j, -1, "the writer is stopping");
    }
}

/* At shutdown only (the broker no longer serves): the claims out or waiting are settled
 * before the last flush, so that a clean stop sends (and stores) what it claimed. Waits
 * for the writer at most CLAIM_FINAL_WAIT_MS; a claim job failing then (store down) leaves
 * its first notices queued in the store, claimed again after the restart. */
#define CLAIM_FINAL_WAIT_MS 5000
void ota_eng_claims_final(ota_engine *e)
{
    ota_plugin *p = e->plugin;
    e->claims.retry_after = 0;
    for (int round = 0; round < 2 && (e->claims.in_flight || e->claims.n); round++) {
        ota_eng_claims_submit(e); /* the waiting ones, unless a job is still out */
        if (!ota_writer_jobs_idle(p->writer, CLAIM_FINAL_WAIT_MS)) {
            break;
        }
        ota_writer_poll_done(p->writer); /* claim_done: sends what this broker won */
    }
}

void ota_engine_stats_json(ota_plugin *p, cJSON *data)
{
    ota_engine *e = p->engine;
    cJSON *o = cJSON_AddObjectToObject(data, "claims");
    cJSON_AddStringToObject(o, "broker_id", p->cfg.broker_id);
    cJSON_AddNumberToObject(o, "won", e ? (double)e->claims.won : 0);
    cJSON_AddNumberToObject(o, "lost", e ? (double)e->claims.lost : 0);
    cJSON_AddNumberToObject(o, "errors", e ? (double)e->claims.errors : 0);
    cJSON_AddNumberToObject(o, "waiting", e ? (double)e->claims.n : 0);
    /* executions read from the store on demand, and conditional writes another broker beat */
    cJSON_AddNumberToObject(o, "adopted", e ? (double)e->adopts.loaded : 0);
    cJSON_AddNumberToObject(o, "conflicts", e ? (double)e->adopts.conflicts : 0);
    /* issue 16: wave promotions another broker stored first; rollouts taken from the log */
    cJSON *w = cJSON_AddObjectToObject(data, "rollouts");
    cJSON_AddNumberToObject(w, "promotions_lost", e ? (double)e->waves.lost : 0);
    cJSON_AddNumberToObject(w, "followed", e ? (double)e->waves.followed : 0);
    /* task ends (finished, aborted, canceled) whose document write another broker beat */
    cJSON_AddNumberToObject(w, "ends_lost", e ? (double)e->waves.ends_lost : 0);
}
