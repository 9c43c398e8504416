/*
 * follow.c — the change log's follower: every 200 ms at most, one writer job reads the
 * change log after this broker's position (ota_store_read_changes, at most 1000 entries,
 * a gap held for 2 s) and copies the entries; on the TICK that hands the job back they
 * are applied to memory in log order through the start-up loaders' own functions
 * (ota_catalog_apply_change, ota_tasks_follow_doc / _setting) — the same parsing and
 * putting as a restart would do — and a task document that cancels a task this broker
 * holds active goes through ota_engine_cancel, as cancelTask's own apply does; a newer
 * revision of a held task's document brings another broker's rollout change (a wave
 * promoted, paused, resumed, approved: issue 16), which this broker takes without an event.
 *
 * The broker's own changes come back through the log too: each entry carries the full
 * new state, so applying one again is a no-op (a put of what memory holds, a task already
 * held, a cancel of a task already canceled); the log carries no origin to skip them by.
 *
 * A broker whose position is older than the log's oldest stored entry (it was away longer
 * than the retention) cannot catch up entry by entry: it logs that once, counts it in
 * getStats (follow.behind), and follows from the log's start; a restart reloads it. A
 * live full reload is not built.
 */
#include "follow.h"
#include "catalog.h"
#include "engine.h"
#include "standby.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLLOW_EVERY_MS 200
#define FOLLOW_LIMIT 1000
#define FOLLOW_HOLD_MS 2000

typedef struct entry {
    struct entry *next;
    ota_store_change c; /* id and json owned */
} entry;

typedef struct {
    ota_writer_job job;
    ota_plugin *p;
    uint64_t after;
    uint64_t first, last; /* the log's bounds, read first */
    entry *head, *tail;
    ota_exec_rec *execs; /* of the tasks whose documents came (new tasks need them) */
    size_t n_execs, cap_execs;
    char **task_ids;
    size_t n_task_ids;
    char **held; /* the tasks this broker held when the job was made (copies) */
    size_t n_held;
} follow_job;

struct ota_follow {
    uint64_t position; /* the last seq applied */
    uint64_t last;     /* the last seq the log had at the latest read */
    int64_t last_read_ms;
    int64_t lag_ms; /* now - at of the newest entry applied, at its apply */
    uint64_t applied, skipped, errors, behind, tasks_added, tasks_canceled, rollouts;
    bool in_flight;
    bool behind_logged;
};

int ota_follow_start(ota_plugin *p, ota_store *store, bool from_snapshot, char *err, size_t errlen)
{
    if (!p->cfg.store_uri || strncmp(p->cfg.store_uri, "sqlite:", 7) == 0) {
        return 0;
    }
    uint64_t first, last;
    char path[4096];
    ota_standby_path(p, path, sizeof path);
    if (from_snapshot) {
        if (ota_store_snapshot_position(path, &last) != 0) {
            snprintf(err, errlen, "the snapshot %s has no change log position", path);
            return -1;
        }
    } else if (ota_store_change_bounds(store, &first, &last) != 0) {
        snprintf(err, errlen, "reading the change log's bounds failed");
        return -1;
    }
    p->follow = calloc(1, sizeof(*p->follow));
    if (!p->follow) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->follow->position = last;
    p->follow->last = last;
    return 0;
}

void ota_follow_free(ota_follow *f)
{
    free(f);
}

/* ---------------------------------------------------------------- writer thread */

static int copy_entry(void *ctx, const ota_store_change *c)
{
    follow_job *j = ctx;
    entry *e = calloc(1, sizeof(*e));
    if (!e) {
        return 1;
    }
    e->c = *c;
    e->c.id = c->id ? strdup(c->id) : NULL;
    e->c.json = c->json ? strdup(c->json) : NULL;
    if ((c->id && !e->c.id) || (c->json && !e->c.json)) {
        free((char *)e->c.id);
        free((char *)e->c.json);
        free(e);
        return 1;
    }
    if (j->tail) {
        j->tail->next = e;
    } else {
        j->head = e;
    }
    j->tail = e;
    return 0;
}

static bool wanted_task(const follow_job *j, const char *task)
{
    for (size_t i = 0; i < j->n_task_ids; i++) {
        if (strcmp(j->task_ids[i], task) == 0) {
            return true;
        }
    }
    return false;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int copy_exec(void *ctx, const ota_exec_rec *e)
{
    follow_job *j = ctx;
    if (!wanted_task(j, e->task)) {
        return 0;
    }
    if (j->n_execs == j->cap_execs) {
        size_t cap = j->cap_execs ? 2 * j->cap_execs : 64;
        ota_exec_rec *grown = realloc(j->execs, cap * sizeof(*grown));
        if (!grown) {
            return 1;
        }
        j->execs = grown;
        j->cap_execs = cap;
    }
    ota_exec_rec *x = &j->execs[j->n_execs];
    *x = *e;
    x->task = strdup(e->task);
    x->vin = dup_or_null(e->vin);
    x->code = dup_or_null(e->code);
    x->msg_id = dup_or_null(e->msg_id);
    j->n_execs++;
    return 0;
}

static bool held_task(const follow_job *j, const char *task)
{
    for (size_t i = 0; i < j->n_held; i++) {
        if (strcmp(j->held[i], task) == 0) {
            return true;
        }
    }
    return false;
}

/* The executions of the tasks whose documents (not deletions) came and that this broker did
 * not hold: a new task is added with them. One read per such task, by task (a rollout
 * change of a held task, issue 16, reads none). */
static int read_task_execs(ota_store *store, follow_job *j)
{
    size_t n = 0;
    for (entry *e = j->head; e; e = e->next) {
        n += e->c.what == OTA_CHANGE_DOC && e->c.doc_kind == OTA_DOC_TASK && !e->c.deleted;
    }
    if (n == 0) {
        return 0;
    }
    j->task_ids = calloc(n, sizeof(*j->task_ids));
    if (!j->task_ids) {
        return -1;
    }
    for (entry *e = j->head; e; e = e->next) {
        if (e->c.what == OTA_CHANGE_DOC && e->c.doc_kind == OTA_DOC_TASK && !e->c.deleted &&
            !wanted_task(j, e->c.id) && !held_task(j, e->c.id)) {
            j->task_ids[j->n_task_ids++] = (char *)e->c.id; /* borrowed */
        }
    }
    unsigned every = (1u << OTA_EXEC_STATE_COUNT) - 1;
    for (size_t i = 0; i < j->n_task_ids; i++) {
        if (ota_store_load_task_execs(store, j->task_ids[i], every, copy_exec, j) != 0) {
            return -1;
        }
    }
    return 0;
}

static int follow_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    follow_job *j = arg;
    if (ota_store_change_bounds(store, &j->first, &j->last) != 0) {
        snprintf(err, errlen, "reading the change log's bounds failed");
        return -1;
    }
    if (j->after + 1 < j->first) {
        return 0; /* behind: the broker thread decides */
    }
    if (ota_store_read_changes(store, j->after, FOLLOW_LIMIT, ota_now_ms(), FOLLOW_HOLD_MS,
                               copy_entry, j) < 0) {
        snprintf(err, errlen, "reading the change log failed");
        return -1;
    }
    if (read_task_execs(store, j) != 0) {
        snprintf(err, errlen, "reading the executions of a changed task failed");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- broker thread */

static void job_free(follow_job *j)
{
    for (entry *e = j->head, *next; e; e = next) {
        next = e->next;
        free((char *)e->c.id);
        free((char *)e->c.json);
        free(e);
    }
    for (size_t i = 0; i < j->n_execs; i++) {
        free((char *)j->execs[i].task);
        free((char *)j->execs[i].vin);
        free((char *)j->execs[i].code);
        free((char *)j->execs[i].msg_id);
    }
    free(j->execs);
    free(j->task_ids);
    for (size_t i = 0; i < j->n_held; i++) {
        free(j->held[i]);
    }
    free(j->held);
    free(j);
}

/* The ids of the tasks held now, copied into the job (the writer thread reads them). */
static int copy_held(ota_plugin *p, follow_job *j)
{
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    if (n < 0) {
        return -1;
    }
    j->held = calloc((size_t)n + 1, sizeof(*j->held));
    for (long i = 0; j->held && i < n; i++) {
        if ((j->held[j->n_held] = strdup(tasks[i]->rec.id)) != NULL) {
            j->n_held++;
        }
    }
    free(tasks);
    return j->held ? 0 : -1;
}

/* A task document: a new task is added (the engine dispatches it from the next TICK); one
 * held active or aborted that the document says canceled is canceled as cancelTask does. */
static int apply_task(ota_plugin *p, follow_job *j, const ota_store_change *c, char *err,
                      size_t errlen)
{
    ota_follow *f = p->follow;
    ota_task_state st;
    int rc = ota_tasks_follow_doc(p->tasks, c->id, c->json, j->execs, j->n_execs, &st, err, errlen);
    if (rc < 0) {
        return -1;
    }
    if (rc == 1) {
        f->tasks_added++;
        return 1;
    }
    ota_task *task = ota_tasks_get(p->tasks, c->id);
    if (rc == 2) { /* another broker's promotion, pause, resume or approval (issue 16) */
        f->rollouts++;
        ota_engine_rollout_followed(p, task);
    }
    if (st == OTA_TASK_CANCELED &&
        (task->state == OTA_TASK_ACTIVE || task->state == OTA_TASK_ABORTED)) {
        size_t canceled = 0, pending = 0;
        ota_engine_cancel(p, task, NULL, 0, &canceled, &pending);
        f->tasks_canceled++;
        return 1;
    }
    return rc == 2 ? 1 : 0; /* held already in that state (this broker's own change), or a later
                 state the engine reaches by itself */
}

static int apply_entry(ota_plugin *p, follow_job *j, const ota_store_change *c, char *err,
                       size_t errlen)
{
    if (c->what == OTA_CHANGE_DOC && c->doc_kind == OTA_DOC_TASK) {
        return c->deleted ? 0 : apply_task(p, j, c, err, errlen);
    }
    if (c->what == OTA_CHANGE_DOC && c->doc_kind == OTA_DOC_SETTING) {
        if (c->deleted) {
            return 0;
        }
        return ota_tasks_follow_setting(p->tasks, c->id, c->json, err, errlen) == 0 ? 1 : -1;
    }
    return ota_catalog_apply_change(p->catalog, c, err, errlen);
}

static void apply_all(ota_plugin *p, follow_job *j)
{
    ota_follow *f = p->follow;
    for (entry *e = j->head; e; e = e->next) {
        char err[384] = "";
        int rc = apply_entry(p, j, &e->c, err, sizeof err);
        if (rc < 0) {
            f->errors++;
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: change %llu not applied here: %s",
                                 (unsigned long long)e->c.seq, err);
        } else if (rc == 0) {
            f->skipped++;
        } else {
            f->applied++;
        }
        f->position = e->c.seq;
        f->lag_ms = ota_now_ms() - e->c.at_ms;
    }
}

static void follow_done(void *arg, int rc, const char *err)
{
    follow_job *j = arg;
    ota_plugin *p = j->p;
    ota_follow *f = p->follow;
    f->in_flight = false;
    if (rc != 0) {
        f->errors++; /* the store is away: the next read retries from the same position */
        (void)err;
    } else if (j->after + 1 < j->first) {
        f->behind++;
        if (!f->behind_logged) {
            mosquitto_log_printf(MOSQ_LOG_WARNING,
                                 "ota: this broker's change log position %llu is older than "
                                 "the log's oldest entry %llu: changes in between are missed "
                                 "until a restart reloads everything",
                                 (unsigned long long)j->after, (unsigned long long)j->first);
            f->behind_logged = true;
        }
        f->position = j->first - 1;
    } else {
        f->last = j->last;
        apply_all(p, j);
    }
    job_free(j);
}

void ota_follow_tick(ota_plugin *p)
{
    ota_follow *f = p->follow;
    int64_t now = ota_now_ms();
    if (!f || f->in_flight || now - f->last_read_ms < FOLLOW_EVERY_MS) {
        return;
    }
    follow_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return;
    }
    j->job = (ota_writer_job){.run = follow_run, .done = follow_done, .arg = j};
    j->p = p;
    j->after = f->position;
    if (copy_held(p, j) != 0 || ota_writer_submit(p->writer, &j->job) != 0) {
        job_free(j);
        return;
    }
    f->in_flight = true;
    f->last_read_ms = now;
}

void ota_follow_stats(const ota_plugin *p, cJSON *data)
{
    const ota_follow *f = p->follow;
    cJSON *o = f ? cJSON_AddObjectToObject(data, "follow") : NULL;
    if (!o) {
        return;
    }
    cJSON_AddNumberToObject(o, "position", (double)f->position);
    cJSON_AddNumberToObject(o, "last", (double)f->last);
    cJSON_AddNumberToObject(o, "lag", (double)(f->last > f->position ? f->last - f->position : 0));
    cJSON_AddNumberToObject(o, "lag_ms", (double)f->lag_ms);
    cJSON_AddNumberToObject(o, "applied", (double)f->applied);
    cJSON_AddNumberToObject(o, "skipped", (double)f->skipped);
    cJSON_AddNumberToObject(o, "errors", (double)f->errors);
    cJSON_AddNumberToObject(o, "behind", (double)f->behind);
    cJSON_AddNumberToObject(o, "tasks_added", (double)f->tasks_added);
    cJSON_AddNumberToObject(o, "tasks_canceled", (double)f->tasks_canceled);
    cJSON_AddNumberToObject(o, "rollouts", (double)f->rollouts);
}
