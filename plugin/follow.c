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
 * An operator's resetVehicleSeq on another broker (an ota_vehicle_state entry, appended by
 * the writer that stored the reset) resets this broker's replay guard of the VIN
 * (report.c), so the replaced unit's low seqs are taken here too.
 *
 * A group's entry carries its definition; its static members are read from the store in
 * the same job (every member row once per read that carries group entries: group changes
 * are rare) and the group is replaced through the start-up load's functions.
 *
 * A broker whose position is older than the log's oldest stored entry (it was away longer
 * than the retention) cannot catch up entry by entry: it reloads, as a restart would, in
 * the background. A second writer job takes the log's last seq, then loads a whole new
 * catalog (ota_catalog_load: vehicles, documents, lists, groups; deletions included) and
 * every task and setting document, with the executions of the tasks this broker does not
 * hold, and the replay guard rows of the VINs ever reset (resetVehicleSeq entries it missed);
 * the TICK that hands it back swaps the catalog (the old one is freed), applies the
 * documents as entries and the resets to its replay guards, then follows from that seq. Jobs finish
 * in submission order, so an operator change stored after the reload's read is applied to the new
 * catalog by its own done(). getStats follow.behind counts the times, follow.reloads the reloads.
 */
#include "follow.h"
#include "catalog.h"
#include "engine.h"
#include "groups.h"
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
    /* a reload (the broker was behind the log's start): the new catalog, the tasks held */
    ota_catalog *catalog;
    char **held; /* the tasks this broker held when the job was made (copies) */
    size_t n_held;
    ota_doc_kind loading;         /* the kind of the documents being copied as entries */
    struct group_members *groups; /* the members of the groups put by the entries */
    size_t n_groups;
    ota_report_seq_rec *resets; /* a reload: the guard rows with operator resets (copies) */
    size_t n_resets, cap_resets;
} follow_job;

/* A static group's members as the store holds them (vins malloc'd). */
typedef struct group_members {
    const char *name; /* borrowed from its entry */
    char **vins;
    size_t n, cap;
} group_members;

struct ota_follow {
    uint64_t position; /* the last seq applied */
    uint64_t last;     /* the last seq the log had at the latest read */
    int64_t last_read_ms;
    int64_t lag_ms;       /* now - at of the newest entry applied, at its apply */
    int64_t behind_since; /* the first read that found the next entry gone, 0 = none */
    uint64_t applied, skipped, errors, behind, reloads, tasks_added, tasks_canceled, rollouts,
        tasks_ended;
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

static bool held_task(const follow_job *j, const char *task)
{
    for (size_t i = 0; i < j->n_held; i++) {
        if (strcmp(j->held[i], task) == 0) {
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

/* How many entries put (not delete) a thing of this kind. */
static size_t count_puts(const follow_job *j, ota_change_what what, ota_doc_kind kind)
{
    size_t n = 0;
    for (const entry *e = j->head; e; e = e->next) {
        n +=
            e->c.what == what && (what != OTA_CHANGE_DOC || e->c.doc_kind == kind) && !e->c.deleted;
    }
    return n;
}

/* The executions of the tasks whose documents (not deletions) came and that this broker did
 * not hold: a new task is added with them. One read per such task, by task (a rollout
 * change of a held task, issue 16, reads none). */
static int read_task_execs(ota_store *store, follow_job *j)
{
    size_t n = count_puts(j, OTA_CHANGE_DOC, OTA_DOC_TASK);
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

static group_members *group_of(follow_job *j, const char *name)
{
    for (size_t i = 0; i < j->n_groups; i++) {
        if (strcmp(j->groups[i].name, name) == 0) {
            return &j->groups[i];
        }
    }
    return NULL;
}

static int skip_group(void *ctx, const char *name, const char *json)
{
    (void)ctx, (void)name, (void)json;
    return 0; /* the definition comes with the entry */
}

static int copy_member(void *ctx, const char *name, const char *vin)
{
    group_members *g = group_of(ctx, name);
    if (!g) {
        return 0;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        char **grown = realloc(g->vins, cap * sizeof(*grown));
        if (!grown) {
            return 1;
        }
        g->vins = grown;
        g->cap = cap;
    }
    return (g->vins[g->n++] = strdup(vin)) ? 0 : 1;
}

/* The members of the groups the entries put (not deleted), read once for all of them. */
static int read_group_members(ota_store *store, follow_job *j)
{
    size_t n = count_puts(j, OTA_CHANGE_GROUP, 0);
    if (n == 0) {
        return 0;
    }
    j->groups = calloc(n, sizeof(*j->groups));
    if (!j->groups) {
        return -1;
    }
    for (entry *e = j->head; e; e = e->next) {
        if (e->c.what == OTA_CHANGE_GROUP && !e->c.deleted && !group_of(j, e->c.id)) {
            j->groups[j->n_groups++].name = e->c.id;
        }
    }
    return ota_store_load_groups(store, skip_group, copy_member, j);
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
    if (read_group_members(store, j) != 0) {
        snprintf(err, errlen, "reading the members of a changed group failed");
        return -1;
    }
    return 0;
}

/* A stored task or setting document, copied as a change entry (seq 0: not the log's). */
static int copy_doc(void *ctx, const char *key, const char *json)
{
    follow_job *j = ctx;
    ota_store_change c = {.what = OTA_CHANGE_DOC, .doc_kind = j->loading, .id = key, .json = json};
    return copy_entry(j, &c);
}

/* A guard row read by the reload: kept (copied) when the VIN was ever reset, as the
 * entries of those resets may be among the ones the broker missed. */
static int keep_reset(void *ctx, const ota_report_seq_rec *r)
{
    follow_job *j = ctx;
    if (r->resets == 0 || !r->vin || !r->epoch) {
        return 0;
    }
    if (j->n_resets == j->cap_resets) {
        size_t cap = j->cap_resets ? 2 * j->cap_resets : 64;
        ota_report_seq_rec *a = realloc(j->resets, cap * sizeof *a);
        if (!a) {
            return -1;
        }
        j->resets = a;
        j->cap_resets = cap;
    }
    ota_report_seq_rec *c = &j->resets[j->n_resets];
    *c =
        (ota_report_seq_rec){.vin = strdup(r->vin), .epoch = strdup(r->epoch), .resets = r->resets};
    if (!c->vin || !c->epoch) {
        free((char *)c->vin);
        free((char *)c->epoch);
        return -1;
    }
    j->n_resets++;
    return 0;
}

/* The reload: the log's last seq first (the follower goes on from there, as after a
 * start), then everything a start loads that the follower keeps current. */
static int reload_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    follow_job *j = arg;
    if (ota_store_change_bounds(store, &j->first, &j->last) != 0) {
        snprintf(err, errlen, "reading the change log's bounds failed");
        return -1;
    }
    j->catalog = ota_catalog_new();
    if (!j->catalog) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ota_catalog_load(j->catalog, store, err, errlen) != 0) {
        return -1;
    }
    static const ota_doc_kind kinds[] = {OTA_DOC_SETTING, OTA_DOC_TASK};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        j->loading = kinds[i];
        if (ota_store_load_docs(store, kinds[i], copy_doc, j) != 0) {
            snprintf(err, errlen, "reading the task documents failed");
            return -1;
        }
    }
    if (read_task_execs(store, j) != 0) {
        snprintf(err, errlen, "reading the executions of the tasks not held failed");
        return -1;
    }
    if (ota_store_load_last_seqs(store, keep_reset, j) != 0) {
        snprintf(err, errlen, "reading the replay guards' resets failed");
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
    for (size_t i = 0; i < j->n_groups; i++) {
        for (size_t k = 0; k < j->groups[i].n; k++) {
            free(j->groups[i].vins[k]);
        }
        free(j->groups[i].vins);
    }
    free(j->groups);
    for (size_t i = 0; i < j->n_resets; i++) {
        free((char *)j->resets[i].vin);
        free((char *)j->resets[i].epoch);
    }
    free(j->resets);
    for (size_t i = 0; i < j->n_held; i++) {
        free(j->held[i]);
    }
    free(j->held);
    if (j->catalog) {
        ota_catalog_free(j->catalog);
    }
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
 * held not canceled that the document says canceled is canceled as cancelTask does; a
 * newer document that ends the task (finished, aborted, canceled: another broker's write,
 * which told it) gives the task its state, without an event (issue 16: told once). */
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
    if (rc == 2 && st == OTA_TASK_ACTIVE) { /* another broker's promotion, pause, resume or
                                               approval (issue 16) */
        f->rollouts++;
        ota_engine_rollout_followed(p, task);
    }
    /* not canceled here yet: also a task this broker ended meanwhile (its store counts saw
     * the canceled executions before the log brought the document): the winner's end */
    bool cancel = st == OTA_TASK_CANCELED && task->state != OTA_TASK_CANCELED;
    if (cancel) {
        size_t canceled = 0, pending = 0;
        ota_engine_cancel(p, task, NULL, 0, &canceled, &pending);
        f->tasks_canceled++;
    }
    if (st != OTA_TASK_ACTIVE && (rc == 2 || cancel)) { /* another broker's write ended it */
        f->tasks_ended++;
        ota_engine_task_followed(p, task, st);
    }
    return rc == 2 || cancel ? 1 : 0; /* else held already so (this broker's own change) */
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
    if (c->what == OTA_CHANGE_VEHICLE_STATE) {
        char epoch[OTA_STORE_EPOCH_KEY_MAX];
        ota_report_seq_rec row;
        if (ota_store_change_vehicle_state(c, &row, epoch, sizeof epoch) != 0) {
            snprintf(err, errlen, "not a replay guard's row: %s", c->json ? c->json : "");
            return -1;
        }
        return ota_reports_follow_reset(p, row.vin, row.epoch, row.resets);
    }
    if (c->what == OTA_CHANGE_GROUP) {
        const group_members *g = c->deleted ? NULL : group_of(j, c->id);
        return ota_catalog_follow_group(p->catalog, c->id, c->deleted ? NULL : c->json,
                                        g ? g->vins : NULL, g ? g->n : 0, err, errlen);
    }
    return ota_catalog_apply_change(p->catalog, c, err, errlen);
}

static void apply_one(ota_plugin *p, follow_job *j, const ota_store_change *c)
{
    ota_follow *f = p->follow;
    char err[384] = "";
    int rc = apply_entry(p, j, c, err, sizeof err);
    if (rc < 0) {
        f->errors++;
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: change %llu (%s) not applied here: %s",
                             (unsigned long long)c->seq, c->id ? c->id : "", err);
    } else if (rc == 0) {
        f->skipped++;
    } else {
        f->applied++;
    }
}

static void apply_all(ota_plugin *p, follow_job *j)
{
    ota_follow *f = p->follow;
    for (entry *e = j->head; e; e = e->next) {
        apply_one(p, j, &e->c);
        f->position = e->c.seq;
        f->lag_ms = ota_now_ms() - e->c.at_ms;
    }
}

/* The reload handed back: the new catalog replaces the old, the task and setting
 * documents apply as entries (tasks not held are added, canceled ones canceled), and the
 * follower goes on from the seq taken before the load. A failed reload is tried again by
 * the next read, which finds the broker behind again. */
static void reload_done(void *arg, int rc, const char *err)
{
    follow_job *j = arg;
    ota_plugin *p = j->p;
    ota_follow *f = p->follow;
    f->in_flight = false;
    if (rc != 0) {
        f->errors++;
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "ota: reloading after the change log's start failed "
                             "(tried again): %s",
                             err);
        job_free(j);
        return;
    }
    ota_catalog *old = p->catalog;
    p->catalog = j->catalog;
    j->catalog = old; /* freed with the job */
    for (entry *e = j->head; e; e = e->next) {
        apply_one(p, j, &e->c);
    }
    for (size_t i = 0; i < j->n_resets; i++) { /* resets made while it was away */
        const ota_report_seq_rec *r = &j->resets[i];
        if (ota_reports_follow_reset(p, r->vin, r->epoch, r->resets) < 0) {
            f->errors++;
        }
    }
    f->position = f->last = j->last;
    f->reloads++;
    f->behind_logged = false;
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "ota: reloaded the catalog and tasks from the store; "
                         "following the change log from %llu",
                         (unsigned long long)j->last);
    job_free(j);
}

/* Behind the log's start: the reload job, with the ids of the tasks held (their
 * executions are this broker's own; the others come with their documents). */
static void reload_submit(ota_plugin *p)
{
    ota_follow *f = p->follow;
    follow_job *j = calloc(1, sizeof(*j));
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    if (j && n > 0) {
        j->held = calloc((size_t)n, sizeof(*j->held));
    }
    bool ok = j && n >= 0 && (n == 0 || j->held);
    for (long i = 0; ok && i < n; i++) {
        ok = (j->held[j->n_held++] = strdup(tasks[i]->rec.id)) != NULL;
    }
    free(tasks);
    if (!ok) {
        if (j) {
            job_free(j);
        }
        return; /* out of memory: the next read tries again */
    }
    j->p = p;
    j->job = (ota_writer_job){.run = reload_run, .done = reload_done, .arg = j};
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        job_free(j);
        return;
    }
    f->in_flight = true;
}

/* The entry after the position is not stored: trimmed, or not visible yet (a standalone
 * server's writer took its number and inserts it a moment later, as at a gap). Behind
 * for good once it is still missing FOLLOW_HOLD_MS after the first read that missed it. */
static bool behind_for_good(ota_follow *f)
{
    int64_t now = ota_now_ms();
    if (f->behind_since == 0) {
        f->behind_since = now;
        return false;
    }
    if (now - f->behind_since < FOLLOW_HOLD_MS) {
        return false;
    }
    f->behind_since = 0;
    return true;
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
    } else if (j->after + 1 < j->first && behind_for_good(f)) {
        f->behind++;
        if (!f->behind_logged) {
            mosquitto_log_printf(MOSQ_LOG_WARNING,
                                 "ota: this broker's change log position %llu is older than "
                                 "the log's oldest entry %llu: reloading the catalog and "
                                 "tasks in the background",
                                 (unsigned long long)j->after, (unsigned long long)j->first);
            f->behind_logged = true;
        }
        reload_submit(p);
    } else if (j->after + 1 >= j->first) {
        f->behind_since = 0;
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
    cJSON_AddNumberToObject(o, "reloads", (double)f->reloads);
    cJSON_AddNumberToObject(o, "tasks_added", (double)f->tasks_added);
    cJSON_AddNumberToObject(o, "tasks_canceled", (double)f->tasks_canceled);
    cJSON_AddNumberToObject(o, "rollouts", (double)f->rollouts);
    cJSON_AddNumberToObject(o, "tasks_ended", (double)f->tasks_ended);
}
