/*
 * rxswin.c — a vehicle's RXSWINs follow its committed successes (UNECE R156; issue 17,
 * docs/r156.md).
 *
 * When an execution ends succeeded (the vehicle reports success only after its post-install
 * check: the commit), and the task's package declares RXSWINs, the vehicle's list becomes
 * the merge of its list and the package's (ota_rxswin_merge), and a record of the change
 * (task, VIN, package, before, after, time: an OTA_DOC_RXSWIN document) is kept for the
 * campaign report (exportTask). The broker thread only queues the VIN: a native command on
 * the operator queue (control.c) takes up to BATCH_MAX of them, computes before/after from
 * the catalog as it is when the command runs (so it is ordered with upsertVehicles and
 * sees every earlier change), and hands one change — the vehicles and the documents — to
 * the writer thread; the catalog is changed when it is stored. Nothing waits for the store.
 *
 * A change that fails to store goes back to the queue and is tried again on a later TICK.
 * Successes whose change was not stored when the broker stopped or crashed are found again
 * at start: succeeded executions of active tasks without a record (ota_rxswin_reconcile).
 */
#include "rxswin.h"

#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX 1024
#define RETRY_MS 1000

typedef struct pending {
    struct pending *next;
    char *task;
    char vin[OTA_VIN_LEN + 1];
    uint64_t package;
    int64_t at_ms;
} pending;

struct ota_rxswin {
    pending *head, *tail;
    size_t n;
    bool queued;         /* a commit command is on the operator queue or running */
    int64_t retry_at_ms; /* after a failed store: not before then */
    uint64_t committed, failed;
};

typedef struct {
    ota_cmd_op base;
    ota_plugin *p;
    pending *batch; /* taken off the queue; back to it when not stored */
    size_t n;
    ota_vehicle_rec *vehicles;
    ota_rxswin_change_rec *changes;
    ota_store_doc *docs;
    char **keys, **jsons;
    bool applied;
} commit_op;

ota_rxswin *ota_rxswin_new(void)
{
    return calloc(1, sizeof(ota_rxswin));
}

static void pending_free(pending *e)
{
    free(e->task);
    free(e);
}

void ota_rxswin_free(ota_rxswin *r)
{
    while (r && r->head) {
        pending *e = r->head;
        r->head = e->next;
        pending_free(e);
    }
    free(r);
}

static void push(ota_rxswin *r, pending *e)
{
    e->next = NULL;
    if (r->tail) {
        r->tail->next = e;
    } else {
        r->head = e;
    }
    r->tail = e;
    r->n++;
}

/* Puts a batch back in front of the queue, in its order. */
static void push_front(ota_rxswin *r, pending *batch)
{
    pending *last = batch;
    size_t n = 0;
    for (pending *e = batch; e; e = e->next) {
        last = e;
        n++;
    }
    if (!batch) {
        return;
    }
    last->next = r->head;
    r->head = batch;
    if (!r->tail) {
        r->tail = last;
    }
    r->n += n;
}

/* ---------------------------------------------------------------- the commit command */

static void commit_free(ota_cmd_op *base)
{
    commit_op *op = (commit_op *)base;
    ota_rxswin *r = op->p->rxswin;
    for (size_t i = 0; i < op->n; i++) {
        ota_vehicle_rec_free(&op->vehicles[i]);
        ota_rxswin_change_rec_free(&op->changes[i]);
        free(op->keys[i]);
        free(op->jsons[i]);
    }
    free(op->vehicles);
    free(op->changes);
    free(op->docs);
    free(op->keys);
    free(op->jsons);
    if (op->applied) {
        while (op->batch) {
            pending *e = op->batch;
            op->batch = e->next;
            pending_free(e);
        }
    } else if (r) {
        r->failed += op->n;
        r->retry_at_ms = ota_now_ms() + RETRY_MS;
        push_front(r, op->batch);
    }
    if (r) {
        r->queued = false;
    }
    free(op);
}

static cJSON *commit_apply(ota_plugin *p, ota_cmd_op *base)
{
    commit_op *op = (commit_op *)base;
    for (size_t i = 0; i < op->n; i++) {
        ota_catalog_put_rxswin_change(p->catalog, &op->changes[i]);
        ota_catalog_put_vehicle(p->catalog, &op->vehicles[i]); /* takes its contents */
    }
    p->rxswin->committed += op->n;
    op->applied = true;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "committed", (double)op->n);
    return data;
}

/* Entry i of the batch: the vehicle with its new list, and the record of the change. 1 added,
 * 0 nothing to do (the vehicle is gone, the package too, or already recorded), -1 memory. */
static int build_one(ota_plugin *p, commit_op *op, const pending *e)
{
    const ota_vehicle *v = ota_catalog_vehicle(p->catalog, e->vin);
    const ota_package_rec *pkg = ota_catalog_package(p->catalog, e->package);
    if (!v || !pkg || !pkg->rxswin || ota_catalog_rxswin_change(p->catalog, e->task, e->vin)) {
        return 0;
    }
    size_t i = op->n;
    ota_vehicle_rec *vr = &op->vehicles[i];
    ota_rxswin_change_rec *ch = &op->changes[i];
    if (ota_catalog_vehicle_rec(p->catalog, v, vr) != 0) {
        return -1;
    }
    op->n++; /* from here on, commit_free frees entry i */
    *ch = (ota_rxswin_change_rec){.task = strdup(e->task),
                                  .vin = strdup(e->vin),
                                  .package = e->package,
                                  .before = vr->rxswin ? strdup(vr->rxswin) : NULL,
                                  .at_ms = e->at_ms};
    char *after = NULL;
    if (!ch->task || !ch->vin || (vr->rxswin && !ch->before) ||
        ota_rxswin_merge(vr->rxswin, pkg->rxswin, &after) != 0) {
        return -1;
    }
    free(vr->rxswin);
    vr->rxswin = after;
    ch->after = after ? strdup(after) : NULL;
    cJSON *j = ota_json_from_rxswin_change(ch);
    op->jsons[i] = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    op->keys[i] = malloc(OTA_ID_MAX + OTA_VIN_LEN + 2);
    if ((after && !ch->after) || !op->jsons[i] || !op->keys[i]) {
        return -1;
    }
    ota_catalog_rxswin_key(e->task, e->vin, op->keys[i], OTA_ID_MAX + OTA_VIN_LEN + 2);
    op->docs[i] = (ota_store_doc){OTA_DOC_RXSWIN, op->keys[i], op->jsons[i]};
    return 1;
}

static bool in_batch(const pending *batch, const char *vin)
{
    for (const pending *e = batch; e; e = e->next) {
        if (strcmp(e->vin, vin) == 0) {
            return true;
        }
    }
    return false;
}

/* Takes up to BATCH_MAX queued VINs, at most once each (a second success of the same
 * vehicle waits for the next batch, which sees this one's result). */
static pending *take_batch(ota_rxswin *r, size_t *n)
{
    pending *batch = NULL, *last = NULL;
    *n = 0;
    while (r->head && *n < BATCH_MAX && !in_batch(batch, r->head->vin)) {
        pending *e = r->head;
        r->head = e->next;
        if (!r->head) {
            r->tail = NULL;
        }
        r->n--;
        e->next = NULL;
        if (last) {
            last->next = e;
        } else {
            batch = e;
        }
        last = e;
        (*n)++;
    }
    return batch;
}

static commit_op *commit_op_new(ota_plugin *p, size_t n)
{
    commit_op *op = calloc(1, sizeof(*op));
    if (!op) {
        return NULL;
    }
    op->p = p;
    op->base.free_op = commit_free;
    op->base.apply = commit_apply;
    op->vehicles = calloc(n, sizeof(*op->vehicles));
    op->changes = calloc(n, sizeof(*op->changes));
    op->docs = calloc(n, sizeof(*op->docs));
    op->keys = calloc(n, sizeof(*op->keys));
    op->jsons = calloc(n, sizeof(*op->jsons));
    if (!op->vehicles || !op->changes || !op->docs || !op->keys || !op->jsons) {
        commit_free(&op->base);
        return NULL;
    }
    return op;
}

/* The native command (control.c runs it in turn with the operators' commands). */
static void run_commit(ota_plugin *p, ota_cmd *c, void *arg)
{
    (void)arg;
    ota_rxswin *r = p->rxswin;
    size_t n;
    pending *batch = take_batch(r, &n);
    commit_op *op = commit_op_new(p, n ? n : 1);
    if (!op) {
        push_front(r, batch);
        r->queued = false;
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->batch = batch;
    int rc = 0;
    for (pending *e = batch; e && rc >= 0; e = e->next) {
        rc = build_one(p, op, e);
    }
    if (rc < 0 || op->n == 0) {
        op->applied = rc >= 0; /* nothing to store: the batch is done */
        commit_free(&op->base);
        ota_cmd_fail(c, rc < 0 ? "out of memory" : "nothing to commit");
        return;
    }
    op->base.change.put_vehicles = op->vehicles;
    op->base.change.n_put_vehicles = op->n;
    op->base.change.docs = op->docs;
    op->base.change.n_docs = op->n;
    ota_cmd_store(p, c, &op->base);
}

/* ---------------------------------------------------------------- queueing */

/* The commit command will not run (a full queue, shutdown): it may be queued again. */
static void never_ran(void *arg)
{
    ((ota_rxswin *)arg)->queued = false;
}

void ota_rxswin_tick(ota_plugin *p)
{
    ota_rxswin *r = p->rxswin;
    if (!r || r->queued || !r->head || ota_now_ms() < r->retry_at_ms) {
        return;
    }
    r->queued = true;
    ota_control_enqueue(p, NULL, "rxswinCommit", run_commit, r, never_ran);
}

void ota_rxswin_on_success(ota_plugin *p, const ota_task *task, const char *vin)
{
    ota_rxswin *r = p->rxswin;
    const ota_package_rec *pkg = ota_catalog_package(p->catalog, task->package);
    if (!r || !pkg || !pkg->rxswin || ota_catalog_rxswin_change(p->catalog, task->rec.id, vin)) {
        return;
    }
    pending *e = calloc(1, sizeof(*e));
    if (!e || !(e->task = strdup(task->rec.id))) {
        free(e);
        r->failed++;
        return;
    }
    snprintf(e->vin, sizeof(e->vin), "%s", vin);
    e->package = task->package;
    e->at_ms = ota_now_ms();
    push(r, e);
}

size_t ota_rxswin_reconcile(ota_plugin *p)
{
    ota_task **tasks = NULL;
    long n = ota_tasks_list(p->tasks, &tasks);
    size_t before = p->rxswin ? p->rxswin->n : 0;
    for (long t = 0; t < n; t++) {
        ota_task *task = tasks[t];
        if (task->state != OTA_TASK_ACTIVE || task->count[OTA_EXEC_SUCCEEDED] == 0) {
            continue;
        }
        for (size_t i = 0; i < task->n_execs; i++) {
            char vin[OTA_VIN_LEN + 1];
            if (task->execs[i].state == OTA_EXEC_SUCCEEDED) {
                ota_task_exec_vin(&task->execs[i], vin);
                ota_rxswin_on_success(p, task, vin);
            }
        }
    }
    free(tasks);
    return p->rxswin ? p->rxswin->n - before : 0;
}

void ota_rxswin_stats(const ota_plugin *p, cJSON *data)
{
    const ota_rxswin *r = p->rxswin;
    cJSON *o = r ? cJSON_AddObjectToObject(data, "rxswin") : NULL;
    if (o) {
        ota_cmd_add_u64(o, "committed", r->committed);
        ota_cmd_add_u64(o, "queued", r->n);
        ota_cmd_add_u64(o, "store_failures", r->failed);
        ota_cmd_add_u64(o, "records", ota_catalog_rxswin_count(p->catalog));
    }
}
