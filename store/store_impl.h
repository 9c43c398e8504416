/*
 * store_impl.h — what a store backend provides. ota_store.c dispatches the public
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
    int (*history)(ota_store *s, const char *vin, ota_event_type type, size_t limit,
                   ota_store_event_fn fn, void *ctx);
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
} ota_store_ops;

struct ota_store {
    const ota_store_ops *ops;
};

/* Backends. */
ota_store *ota_store_sqlite_open(const char *path, char *err, size_t errlen);
ota_store *ota_store_mongo_open(const char *uri, char *err, size_t errlen);

#endif
