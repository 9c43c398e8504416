/*
 * store_impl.h — what a store backend provides. store.c dispatches the public
 * ota_store_* calls through this table; each backend (sqlite.c, mongo.c) embeds
 * `struct ota_store` as the first member of its own handle and fills in `ops`.
 */
#ifndef OTA_STORE_IMPL_H
#define OTA_STORE_IMPL_H

#include "ota_store.h"

typedef struct ota_store_ops {
    const char *name;
    void (*close)(ota_store *s);
    int (*put_events)(ota_store *s, const ota_store_event *evs, size_t n, ota_store_put_result *res,
                      char *err, size_t errlen);
    int (*put_batch)(ota_store *s, const ota_store_batch *b, ota_store_put_result *res, char *err,
                     size_t errlen);
    int (*list_quarantine)(ota_store *s, const char *vin, const char *code, int64_t before_id,
                           size_t limit, ota_store_quarantine_fn fn, void *ctx);
    int (*latest_status)(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx);
    int (*count_events)(ota_store *s, ota_event_type type, const char *vin, uint64_t *count);
    int (*history)(ota_store *s, const char *vin, ota_event_type type,
                   const ota_store_cursor *before, size_t limit, ota_store_event_fn fn, void *ctx);
    int (*apply)(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen);
    int (*load_vehicles)(ota_store *s, ota_store_vehicle_fn fn, void *ctx);
    int (*load_docs)(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx);
    int (*load_lists)(ota_store *s, ota_store_list_fn fn, void *ctx);
    int (*load_execs)(ota_store *s, ota_store_exec_fn fn, void *ctx);
    int (*load_shadows)(ota_store *s, ota_store_shadow_fn fn, void *ctx);
    int (*load_notices)(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx);
    int (*load_descriptions)(ota_store *s, const char *vin, ota_store_description_fn fn, void *ctx);
    int (*load_latest_statuses)(ota_store *s, ota_store_event_fn fn, void *ctx);
    int (*load_last_seqs)(ota_store *s, ota_store_seq_fn fn, void *ctx);
    int (*claim_notice)(ota_store *s, const char *task, const char *vin, const char *msg_id,
                        const char *owner, int64_t now_ms, char *err, size_t errlen);
    int (*claim_notices)(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                         int64_t now_ms, char *err, size_t errlen);
    /* issue 15: shared state (ota_store.h); read_changes hands every entry after `after`
     * in seq order to fn until fn returns non-zero (store.c applies the gap rule) */
    int (*transition_exec)(ota_store *s, ota_exec_state from, const ota_exec_rec *to, char *err,
                           size_t errlen);
    int (*notice_decisions)(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                            size_t errlen);
    int (*read_changes)(ota_store *s, uint64_t after, ota_store_change_fn fn, void *ctx);
    int (*change_bounds)(ota_store *s, uint64_t *first, uint64_t *last);
    int (*trim_changes)(ota_store *s, uint64_t upto);
    /* issue 15, engine half: one execution, for a broker that does not hold it */
    int (*load_exec)(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                     void *ctx);
    /* issue 16: a task document's conditional write, one task's executions by state */
    int (*put_task_doc_if)(ota_store *s, const char *id, const char *json, uint64_t expect_rev,
                           char *err, size_t errlen);
    int (*load_task_execs)(ota_store *s, const char *task, unsigned states, ota_store_exec_fn fn,
                           void *ctx);
    /* issue 15: one task's executions counted by state and wave in the store */
    int (*count_task_execs)(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                            char *err, size_t errlen);
    /* vehicle groups (store_groups.c dispatches; sqlite_groups.c, mongo_groups.c) */
    int (*put_group)(ota_store *s, const char *name, const char *json, const char *const *vins,
                     size_t n_vins, char *err, size_t errlen);
    int (*delete_group)(ota_store *s, const char *name, char *err, size_t errlen);
    int (*load_groups)(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                       void *ctx);
} ota_store_ops;

struct ota_store {
    const ota_store_ops *ops;
};

/* Backends. */
ota_store *ota_store_sqlite_open(const char *path, char *err, size_t errlen);
ota_store *ota_store_mongo_open(const char *uri, char *err, size_t errlen);

/* Group ops of each backend (sqlite_groups.c, mongo_groups.c). */
int ota_store_sq_put_group(ota_store *s, const char *name, const char *json,
                           const char *const *vins, size_t n_vins, char *err, size_t errlen);
int ota_store_sq_delete_group(ota_store *s, const char *name, char *err, size_t errlen);
int ota_store_sq_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                             void *ctx);
int ota_store_mg_put_group(ota_store *s, const char *name, const char *json,
                           const char *const *vins, size_t n_vins, char *err, size_t errlen);
int ota_store_mg_delete_group(ota_store *s, const char *name, char *err, size_t errlen);
int ota_store_mg_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                             void *ctx);

#endif
