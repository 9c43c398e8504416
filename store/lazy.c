/*
 * lazy.c — a store that opens its URI when first used (ota_store_open_lazy): the writer's
 * handle of a broker that started from its local snapshot while the database was away.
 * Every call first tries to open the real store (at most once per second); until that
 * succeeds each call fails as a store error (-1), which the writer already handles
 * (reports stay spooled and are retried; jobs report the error). Once open, every call is
 * the real store's. Used by one thread (the writer), like any store handle.
 */
#include "store_impl.h"
#include "sync_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 1000

typedef struct {
    ota_store base;
    char *uri;
    ota_store *real;
    int64_t last_try_ms;
    char why[256];
} lazy_store;

/* The real store, opened now if it is time to try; NULL (err set when given) if not open. */
static ota_store *real(ota_store *s, char *err, size_t errlen)
{
    lazy_store *l = (lazy_store *)s;
    int64_t now = ota_sync_mono_ms();
    if (!l->real && now - l->last_try_ms >= RETRY_MS) {
        l->last_try_ms = now;
        l->real = ota_store_open(l->uri, l->why, sizeof l->why);
    }
    if (!l->real && err && errlen) {
        snprintf(err, errlen, "store not reachable yet: %s", l->why);
    }
    return l->real;
}

static void lz_close(ota_store *s)
{
    lazy_store *l = (lazy_store *)s;
    ota_store_close(l->real);
    free(l->uri);
    free(l);
}

#define REAL_OR_FAIL(err, errlen)                                                                  \
    ota_store *r = real(s, err, errlen);                                                           \
    if (!r)                                                                                        \
        return -1;

static int lz_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                         ota_store_put_result *res, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->put_events(r, evs, n, res, err, errlen);
}

static int lz_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                        char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->put_batch(r, b, res, err, errlen);
}

static int lz_list_quarantine(ota_store *s, const char *vin, const char *code, int64_t before_id,
                              size_t limit, ota_store_quarantine_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->list_quarantine(r, vin, code, before_id, limit, fn, ctx);
}

static int lz_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->latest_status(r, vin, fn, ctx);
}

static int lz_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->count_events(r, type, vin, count);
}

static int lz_history(ota_store *s, const char *vin, ota_event_type type,
                      const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                      void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->history(r, vin, type, before, limit, fn, ctx);
}

static int lz_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->apply(r, c, err, errlen);
}

static int lz_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_vehicles(r, fn, ctx);
}

static int lz_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_docs(r, kind, fn, ctx);
}

static int lz_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_lists(r, fn, ctx);
}

static int lz_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_execs(r, fn, ctx);
}

static int lz_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_shadows(r, fn, ctx);
}

static int lz_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_notices(r, task, fn, ctx);
}

static int lz_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_descriptions(r, vin, fn, ctx);
}

static int lz_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_latest_statuses(r, fn, ctx);
}

static int lz_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_last_seqs(r, fn, ctx);
}

static int lz_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                           const char *owner, int64_t now_ms, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->claim_notice(r, task, vin, msg_id, owner, now_ms, err, errlen);
}

static int lz_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                            int64_t now_ms, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->claim_notices(r, claims, n, owner, now_ms, err, errlen);
}

static int lz_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to, char *err,
                              size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->transition_exec(r, from, to, err, errlen);
}

static int lz_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                               size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->notice_decisions(r, d, n, err, errlen);
}

static int lz_read_changes(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->read_changes(r, after, fn, ctx);
}

static int lz_change_bounds(ota_store *s, uint64_t *first, uint64_t *last)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->change_bounds(r, first, last);
}

static int lz_trim_changes(ota_store *s, uint64_t upto)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->trim_changes(r, upto);
}

static int lz_put_task_doc_if(ota_store *s, const char *id, const char *json, uint64_t expect_rev,
                              char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->put_task_doc_if(r, id, json, expect_rev, err, errlen);
}

static int lz_load_task_execs(ota_store *s, const char *task, unsigned states, ota_store_exec_fn fn,
                              void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_task_execs(r, task, states, fn, ctx);
}

static int lz_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                               char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->count_task_execs(r, task, fn, ctx, err, errlen);
}

static int lz_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                        void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_exec(r, task, vin, fn, ctx);
}

static int lz_put_group(ota_store *s, const char *name, const char *json, const char *const *vins,
                        size_t n_vins, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->put_group(r, name, json, vins, n_vins, err, errlen);
}

static int lz_delete_group(ota_store *s, const char *name, char *err, size_t errlen)
{
    REAL_OR_FAIL(err, errlen)
    return r->ops->delete_group(r, name, err, errlen);
}

static int lz_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                          void *ctx)
{
    REAL_OR_FAIL(NULL, 0)
    return r->ops->load_groups(r, fn, member, ctx);
}

static const ota_store_ops LAZY_OPS = {
    .name = "lazy",
    .close = lz_close,
    .put_events = lz_put_events,
    .put_batch = lz_put_batch,
    .list_quarantine = lz_list_quarantine,
    .latest_status = lz_latest_status,
    .count_events = lz_count_events,
    .history = lz_history,
    .apply = lz_apply,
    .load_vehicles = lz_load_vehicles,
    .load_docs = lz_load_docs,
    .load_lists = lz_load_lists,
    .load_execs = lz_load_execs,
    .load_shadows = lz_load_shadows,
    .load_notices = lz_load_notices,
    .load_descriptions = lz_load_descriptions,
    .load_latest_statuses = lz_load_latest_statuses,
    .load_last_seqs = lz_load_last_seqs,
    .claim_notice = lz_claim_notice,
    .claim_notices = lz_claim_notices,
    .transition_exec = lz_transition_exec,
    .notice_decisions = lz_notice_decisions,
    .read_changes = lz_read_changes,
    .change_bounds = lz_change_bounds,
    .trim_changes = lz_trim_changes,
    .load_exec = lz_load_exec,
    .put_task_doc_if = lz_put_task_doc_if,
    .load_task_execs = lz_load_task_execs,
    .count_task_execs = lz_count_task_execs,
    .put_group = lz_put_group,
    .delete_group = lz_delete_group,
    .load_groups = lz_load_groups,
};

ota_store *ota_store_open_lazy(const char *uri, char *err, size_t errlen)
{
    lazy_store *l = calloc(1, sizeof(*l));
    if (l) {
        l->uri = strdup(uri);
    }
    if (!l || !l->uri) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->base.ops = &LAZY_OPS;
    l->last_try_ms = ota_sync_mono_ms(); /* the caller just failed to open it */
    return &l->base;
}
