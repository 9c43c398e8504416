/*
 * store.c — the public ota_store_* calls: pick a backend from the store URI, then
 * dispatch every operation through the backend's ops table (store_impl.h). Also the
 * names of the task engine's execution states, which every backend stores by name, and
 * the batch contract every backend relies on: one guard row per VIN (ota_store_put_batch).
 *
 * URIs: "sqlite:PATH" or a bare path (anything without "://") open the SQLite
 * backend; "mongodb://" and "mongodb+srv://" the MongoDB backend (store/mongo*.c); any
 * other scheme is an error.
 */
#include "schema.h"
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const EXEC_STATE_NAMES[OTA_EXEC_STATE_COUNT] = {
    [OTA_EXEC_QUEUED] = "queued",           [OTA_EXEC_NOTIFIED] = "notified",
    [OTA_EXEC_DOWNLOADING] = "downloading", [OTA_EXEC_INSTALLING] = "installing",
    [OTA_EXEC_SUCCEEDED] = "succeeded",     [OTA_EXEC_FAILED] = "failed",
    [OTA_EXEC_CANCELED] = "canceled",       [OTA_EXEC_REJECTED] = "rejected",
    [OTA_EXEC_ACCEPTED] = "accepted",       [OTA_EXEC_POSTPONED] = "postponed",
    [OTA_EXEC_DECLINED] = "declined",
};

const char *ota_exec_state_name(ota_exec_state s)
{
    return (unsigned)s < OTA_EXEC_STATE_COUNT ? EXEC_STATE_NAMES[s] : NULL;
}

int ota_exec_state_from_name(const char *name)
{
    for (int i = 0; name != NULL && i < OTA_EXEC_STATE_COUNT; i++)
        if (strcmp(name, EXEC_STATE_NAMES[i]) == 0)
            return i;
    return -1;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

ota_store *ota_store_open(const char *uri, char *err, size_t errlen)
{
    if (uri == NULL || uri[0] == '\0') {
        snprintf(err, errlen, "empty store URI (expected sqlite:PATH or mongodb://...)");
        return NULL;
    }
    if (has_prefix(uri, "sqlite:"))
        return ota_store_sqlite_open(uri + strlen("sqlite:"), err, errlen);
    if (has_prefix(uri, "mongodb://") || has_prefix(uri, "mongodb+srv://"))
        return ota_store_mongo_open(uri, err, errlen);
    if (strstr(uri, "://") != NULL) {
        snprintf(err, errlen,
                 "%s: unknown store URI scheme (expected sqlite:PATH, a path, mongodb:// "
                 "or mongodb+srv://)",
                 uri);
        return NULL;
    }
    return ota_store_sqlite_open(uri, err, errlen);
}

void ota_store_close(ota_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

const char *ota_store_backend(const ota_store *s)
{
    return s->ops->name;
}

int ota_store_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                         ota_store_put_result *res, char *err, size_t errlen)
{
    return s->ops->put_events(s, evs, n, res, err, errlen);
}

/* The last guard row of each VIN, in the order of those last rows, into *out (malloc'd):
 * the batch contract says the last row of a VIN counts, and each row costs a backend an
 * upsert (~10,000 instructions in SQLite), while a vehicle that reports fast has many in
 * one batch. Returns how many, or -1 when out of memory. */
static long last_guard_rows(const ota_report_seq_rec *rows, size_t n, ota_report_seq_rec **out)
{
    size_t cap = ota_store_vin_set_cap(n);
    const char **slots = calloc(cap, sizeof *slots);
    ota_report_seq_rec *kept = malloc(n * sizeof *kept);
    if (slots == NULL || kept == NULL) {
        free(slots);
        free(kept);
        return -1;
    }
    size_t first = n; /* kept rows fill kept[first..] from the end, last first */
    for (size_t i = n; i-- > 0;) {
        size_t k = ota_store_vin_set_slot(slots, cap, rows[i].vin);
        if (slots[k] != NULL)
            continue; /* a later row of this VIN is kept */
        slots[k] = rows[i].vin;
        kept[--first] = rows[i];
    }
    free(slots);
    memmove(kept, kept + first, (n - first) * sizeof *kept);
    *out = kept;
    return (long)(n - first);
}

/* Backends get at most one guard row per VIN (last_guard_rows). A backend without
 * put_batch (a test's fake) takes batches of events only. */
int ota_store_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                        char *err, size_t errlen)
{
    if (s->ops->put_batch != NULL && b->n_seqs > 1) {
        ota_store_batch one = *b;
        ota_report_seq_rec *kept;
        long n = last_guard_rows(b->seqs, b->n_seqs, &kept);
        if (n < 0) {
            snprintf(err, errlen, "guard rows: out of memory");
            return -1;
        }
        one.seqs = kept;
        one.n_seqs = (size_t)n;
        int rc = s->ops->put_batch(s, &one, res, err, errlen);
        free(kept);
        return rc;
    }
    if (s->ops->put_batch != NULL)
        return s->ops->put_batch(s, b, res, err, errlen);
    if (b->n_seqs > 0 || b->n_quarantine > 0) {
        snprintf(err, errlen, "%s store: no guard rows or quarantine", s->ops->name);
        return -1;
    }
    return s->ops->put_events(s, b->events, b->n_events, res, err, errlen);
}

int ota_store_list_quarantine(ota_store *s, const char *vin, const char *code, int64_t before_id,
                              size_t limit, ota_store_quarantine_fn fn, void *ctx)
{
    return s->ops->list_quarantine != NULL
               ? s->ops->list_quarantine(s, vin, code, before_id, limit, fn, ctx)
               : -1;
}

const char *ota_store_epoch_key(const char *epoch, uint32_t resets, char *buf, size_t len)
{
    const char *e = epoch != NULL ? epoch : "0";
    if (resets == 0)
        return e;
    snprintf(buf, len, "%s~%u", e, resets);
    return buf;
}

int ota_store_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx)
{
    return s->ops->latest_status(s, vin, fn, ctx);
}

int ota_store_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count)
{
    return s->ops->count_events(s, type, vin, count);
}

int ota_store_history(ota_store *s, const char *vin, ota_event_type type, size_t limit,
                      ota_store_event_fn fn, void *ctx)
{
    return s->ops->history(s, vin, type, NULL, limit, fn, ctx);
}

int ota_store_history_before(ota_store *s, const char *vin, ota_event_type type,
                             const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                             void *ctx)
{
    return s->ops->history(s, vin, type, before, limit, fn, ctx);
}

int ota_store_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen)
{
    return s->ops->apply(s, c, err, errlen);
}

int ota_store_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx)
{
    return s->ops->load_vehicles(s, fn, ctx);
}

int ota_store_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx)
{
    return s->ops->load_docs(s, kind, fn, ctx);
}

int ota_store_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx)
{
    return s->ops->load_lists(s, fn, ctx);
}

int ota_store_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx)
{
    return s->ops->load_execs(s, fn, ctx);
}

int ota_store_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx)
{
    return s->ops->load_shadows(s, fn, ctx);
}

int ota_store_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx)
{
    return s->ops->load_notices(s, task, fn, ctx);
}

int ota_store_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                void *ctx)
{
    return s->ops->load_descriptions(s, vin, fn, ctx);
}

int ota_store_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx)
{
    return s->ops->load_latest_statuses(s, fn, ctx);
}

int ota_store_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx)
{
    return s->ops->load_last_seqs(s, fn, ctx);
}

int ota_store_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                           const char *owner, int64_t now_ms, char *err, size_t errlen)
{
    if (task == NULL || vin == NULL || msg_id == NULL || owner == NULL) {
        snprintf(err, errlen, "notice claim: task, vin, msg_id and owner are required");
        return -1;
    }
    return s->ops->claim_notice(s, task, vin, msg_id, owner, now_ms, err, errlen);
}

int ota_store_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                            int64_t now_ms, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (claims[i].task == NULL || claims[i].vin == NULL || claims[i].msg_id == NULL) {
            snprintf(err, errlen, "notice claim %zu: task, vin and msg_id are required", i);
            return -1;
        }
    }
    if (owner == NULL) {
        snprintf(err, errlen, "notice claim: owner is required");
        return -1;
    }
    return n == 0 ? 0 : s->ops->claim_notices(s, claims, n, owner, now_ms, err, errlen);
}

/* ---- shared state (issue 15) ---- */

/* What a transition or decision must name; NULL when complete. */
static const char *exec_problem(const ota_exec_rec *to)
{
    if (to == NULL || to->task == NULL || to->vin == NULL)
        return "task and vin are required";
    if (ota_exec_state_name(to->state) == NULL)
        return "unknown target state";
    return NULL;
}

int ota_store_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to, char *err,
                              size_t errlen)
{
    const char *problem = exec_problem(to);
    if (problem == NULL && ota_exec_state_name(from) == NULL)
        problem = "unknown state to transition from";
    if (problem != NULL) {
        snprintf(err, errlen, "execution transition: %s", problem);
        return -1;
    }
    return s->ops->transition_exec(s, from, to, err, errlen);
}

/* What a notice decision lacks or gets wrong (buf holds the text when it is the change's);
 * NULL when it can be written. */
static const char *decision_problem(ota_exec_state from, const ota_exec_rec *to,
                                    const ota_shadow_rec *shadow, const ota_notice_rec *notice,
                                    char *buf, size_t buflen)
{
    const char *problem = exec_problem(to);
    if (problem == NULL && ota_exec_state_name(from) == NULL)
        problem = "unknown state to transition from";
    else if (problem == NULL && (to->msg_id == NULL || shadow == NULL || notice == NULL))
        problem = "the execution's msg_id, the shadow and the notice are required";
    else if (problem == NULL && (notice->msg_id == NULL || strcmp(notice->msg_id, to->msg_id)))
        problem = "the notice's msg_id is not the execution's";
    else if (problem == NULL && (shadow->vin == NULL || strcmp(shadow->vin, to->vin) != 0))
        problem = "the shadow is not the execution's vehicle's";
    ota_catalog_change rest = {
        .put_shadows = shadow, .n_put_shadows = 1, .add_notices = notice, .n_add_notices = 1};
    if (problem == NULL && ota_store_check_change(&rest, buf, buflen) != 0)
        problem = buf;
    return problem;
}

int ota_store_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                               size_t errlen)
{
    char buf[192];
    for (size_t i = 0; i < n; i++) {
        const char *problem =
            decision_problem(d[i].from, d[i].to, d[i].shadow, d[i].notice, buf, sizeof buf);
        if (problem != NULL) {
            snprintf(err, errlen, "notice decision %zu: %s", i, problem);
            return -1;
        }
    }
    return n == 0 ? 0 : s->ops->notice_decisions(s, d, n, err, errlen);
}

/* A batch of one. */
int ota_store_notice_decision(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                              const ota_shadow_rec *shadow, const ota_notice_rec *notice, char *err,
                              size_t errlen)
{
    ota_notice_decision d = {from, to, shadow, notice, -1};
    return ota_store_notice_decisions(s, &d, 1, err, errlen) == 0 ? d.result : -1;
}

/* The gap rule of ota_store_read_changes around the caller's callback. */
typedef struct {
    uint64_t next; /* the seq expected next */
    size_t limit, seen;
    int64_t settled_before; /* an entry at or before this time closes a gap behind it */
    ota_store_change_fn fn;
    void *ctx;
} change_walk;

static int change_step(void *arg, const ota_store_change *c)
{
    change_walk *w = arg;
    if (c->seq != w->next && c->at_ms > w->settled_before)
        return 1; /* a gap that may still fill: stop before it */
    if (w->fn(w->ctx, c) != 0) {
        w->seen++;
        return 1;
    }
    w->next = c->seq + 1;
    w->seen++;
    return w->limit > 0 && w->seen >= w->limit;
}

int ota_store_read_changes(ota_store *s, uint64_t after, size_t limit, int64_t now_ms,
                           int64_t hold_ms, ota_store_change_fn fn, void *ctx)
{
    if (fn == NULL)
        return -1;
    change_walk w = {after + 1, limit, 0, now_ms - hold_ms, fn, ctx};
    if (s->ops->read_changes(s, after, change_step, &w) != 0)
        return -1;
    return w.seen > INT32_MAX ? INT32_MAX : (int)w.seen;
}

int ota_store_change_bounds(ota_store *s, uint64_t *first, uint64_t *last)
{
    return s->ops->change_bounds(s, first, last);
}

int ota_store_trim_changes(ota_store *s, uint64_t upto)
{
    return s->ops->trim_changes(s, upto);
}

int ota_store_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                        void *ctx)
{
    if (task == NULL || vin == NULL || fn == NULL || s->ops->load_exec == NULL)
        return -1;
    return s->ops->load_exec(s, task, vin, fn, ctx);
}

/* ---- a task's rollout across brokers (issue 16) ---- */

int ota_store_put_task_doc_if(ota_store *s, const char *id, const char *json, uint64_t expect_rev,
                              char *err, size_t errlen)
{
    if (id == NULL || json == NULL || expect_rev >= (uint64_t)INT64_MAX) {
        snprintf(err, errlen, "task document: the id, the JSON and a revision are required");
        return -1;
    }
    return s->ops->put_task_doc_if(s, id, json, expect_rev, err, errlen);
}

int ota_store_load_task_execs(ota_store *s, const char *task, unsigned states, ota_store_exec_fn fn,
                              void *ctx)
{
    if (task == NULL || fn == NULL)
        return -1;
    return s->ops->load_task_execs(s, task, states, fn, ctx);
}

int ota_store_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                               char *err, size_t errlen)
{
    if (task == NULL || fn == NULL) {
        snprintf(err, errlen, "counting executions: a task and a function are required");
        return -1;
    }
    return s->ops->count_task_execs(s, task, fn, ctx, err, errlen);
}
