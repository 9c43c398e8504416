/*
 * ota_store.h — the one interface to where mosquitto-ota keeps its data.
 *
 * Two backends implement it: SQLite (embedded default, `sqlite:PATH`) and MongoDB
 * (`mongodb://...`, store/mongo*.c). The interface speaks in domain terms — report
 * events, latest status — never in SQL or BSON, so callers do not know which backend
 * they talk to. A store handle is used by one thread at a time: in the plugin that is
 * the writer thread; tools and tests may open their own handle on the same database.
 *
 * Report events are unique by (vin, epoch, seq, index): putting an event that is already
 * stored is not an error, it is counted as a duplicate. A batch is atomic: on error
 * nothing of it is stored and the caller may retry the whole batch.
 *
 * Kinds of report event and where each backend keeps them (names from seed 000):
 *   download_progress -> ota_vehicle_download_progress
 *   upgrade_progress  -> ota_vehicle_upgrade_progress
 *   upgrade_status    -> ota_vehicle_upgrade_status
 *   command           -> ota_vehicle_upgrade_command
 *   eeprom_clear      -> ota_vehicle_eeprom_clear
 */
#ifndef OTA_STORE_H
#define OTA_STORE_H

#include "ota_codec.h"
#include "ota_records.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ota_store ota_store;

/* A report event with the context the store keeps beside it. */
typedef struct {
    const char *vin;
    uint64_t seq;        /* the report's seq; (vin, epoch, seq, ev->index) is the key */
    int64_t received_ms; /* when the broker received the report */
    const ota_event *ev;
    const char *epoch;   /* the stored epoch (ota_store_epoch_key); NULL is "0" */
} ota_store_event;

typedef struct {
    size_t inserted;
    size_t duplicates;
} ota_store_put_result;

/* Opens the store named by uri: "sqlite:PATH" (or a bare path) for now. Creates the
 * schema if needed. Returns NULL and an error text in err on failure. */
ota_store *ota_store_open(const char *uri, char *err, size_t errlen);
void ota_store_close(ota_store *s);
/* "sqlite" or "mongo". */
const char *ota_store_backend(const ota_store *s);

/* Stores a batch of events atomically; duplicates (same vin, epoch, seq, index) are
 * skipped and counted. Returns 0, or -1 with err set (nothing stored). */
int ota_store_put_events(ota_store *s, const ota_store_event *evs, size_t n,
                         ota_store_put_result *res, char *err, size_t errlen);

/* ---- the report guard and the quarantine (docs/protocol.md "Report seq and epoch") ----
 * Table / collection ota_vehicle_report_seq: per VIN the last report taken (or the last
 * operator reset), so that the replay guard survives a restart. ota_quarantine: every
 * report refused after the broker took it, with its reason and its payload. */

/* The replay guard's state of one VIN. */
typedef struct {
    const char *vin;
    const char *epoch;  /* the vehicle's epoch of the last report taken ("0": none sent) */
    int64_t seq;        /* its seq; -1 when nothing was taken since the last reset */
    uint32_t resets;    /* operator resets (resetVehicleSeq) of the VIN so far */
    int64_t updated_ms; /* when it was received / reset */
} ota_report_seq_rec;

/* The epoch a report's events are stored under: the vehicle's epoch, followed by "~N"
 * after the Nth operator reset of the VIN (so a replaced unit that starts its seq again
 * does not meet the old unit's keys). buf: at least OTA_STORE_EPOCH_KEY_MAX bytes. */
#define OTA_STORE_EPOCH_KEY_MAX (OTA_EPOCH_MAX + 12)
const char *ota_store_epoch_key(const char *epoch, uint32_t resets, char *buf, size_t len);

/* A refused report. */
typedef struct {
    int64_t id;         /* unique and growing in arrival order; a stored id is skipped */
    const char *vin;
    int64_t received_ms;
    const char *code;   /* "E_BAD_REQUEST", "E_REPLAY", "E_UNKNOWN_VIN", ... */
    const char *msg;
    int64_t seq;        /* -1: unreadable */
    const char *epoch;  /* NULL: unreadable */
    uint64_t size;      /* of the payload as received */
    const uint8_t *payload; /* as kept (cut to the report size limit) */
    size_t payload_len;
} ota_quarantine_rec;

/* What the writer stores at once: events, the guard's rows (upserted by VIN, in order),
 * refused reports. Atomic on SQLite; on MongoDB it converges on a retry, as events do. */
typedef struct {
    const ota_store_event *events;
    size_t n_events;
    const ota_report_seq_rec *seqs;
    size_t n_seqs;
    const ota_quarantine_rec *quarantine;
    size_t n_quarantine;
} ota_store_batch;

int ota_store_put_batch(ota_store *s, const ota_store_batch *b, ota_store_put_result *res,
                        char *err, size_t errlen);

/* Refused reports, newest first: of vin (or every VIN when NULL), with code (or any when
 * NULL), id below before_id (0: no bound), at most limit. fn's pointers are valid during
 * the call. Returns the number seen, or -1. */
typedef int (*ota_store_quarantine_fn)(void *ctx, const ota_quarantine_rec *q);
int ota_store_list_quarantine(ota_store *s, const char *vin, const char *code, int64_t before_id,
                              size_t limit, ota_store_quarantine_fn fn, void *ctx);

/* The newest upgrade_status event of a VIN (highest seq, then index).
 * Returns 1 and calls fn once, 0 if the VIN has none, -1 on error. */
typedef void (*ota_store_event_fn)(void *ctx, const ota_store_event *ev);
int ota_store_latest_status(ota_store *s, const char *vin, ota_store_event_fn fn, void *ctx);

/* Number of stored events of a type, for one VIN or (vin NULL) for all.
 * Returns 0 and sets *count, or -1. */
int ota_store_count_events(ota_store *s, ota_event_type type, const char *vin, uint64_t *count);

/* Stored events of a VIN, newest first (seq desc, index desc), of one type or (type 0) of
 * every type, at most limit of them. fn sees each one; its pointers are valid only during
 * the call. Returns the number of events seen, or -1. */
int ota_store_history(ota_store *s, const char *vin, ota_event_type type, size_t limit,
                      ota_store_event_fn fn, void *ctx);

/* ---- the catalog (SPEC §5) ----
 * The in-memory catalog (plugin/core/catalog.c) is loaded from here at start and answers every
 * read; every change is stored here first, on the writer thread, then applied in memory,
 * then answered to the operator. Vehicles are rows (a fleet has millions); models,
 * packages, strategies, strategy bindings and files are JSON documents under a key (their
 * JSON is what the operator API shows, made by codec/catalog_json.c); lists are
 * (list, vin) memberships.
 *   SQLite tables / MongoDB collections:
 *     ota_vehicle (one row per VIN, with the ota_vehicle_rec fields as columns)
 *     ota_vehicle_model, ota_package, ota_upgrade_strategy,
 *     ota_upgrade_strategy_relation, ota_file   (key TEXT PRIMARY KEY, doc TEXT)
 *     ota_vehicle_list (list, vin)              (names from seed 000 where it has them)
 *     ota_task, ota_setting                     (key TEXT PRIMARY KEY, doc TEXT)
 *   and for the task engine (rows: there are as many as a fleet has vehicles):
 *     ota_task_vin (task, vin, state, ...)      one execution per task and VIN
 *     ota_vehicle_shadow (vin, version, reported, desired, updated_at)
 *     ota_vehicle_download_notice (task, vin, package, version, msg_id, sent_at)
 *     ota_vehicle_package_description (vin, counter, task, req, package, files, cose,
 *                                      issued_at, expires_at)  (SPEC §3: every
 *                                      description returned is persisted)
 */

/* ---- task engine records ---- */
typedef enum {
    OTA_EXEC_QUEUED = 0,
    OTA_EXEC_NOTIFIED,
    OTA_EXEC_DOWNLOADING,
    OTA_EXEC_INSTALLING,
    OTA_EXEC_SUCCEEDED,
    OTA_EXEC_FAILED,
    OTA_EXEC_CANCELED,
    OTA_EXEC_REJECTED,
} ota_exec_state;
#define OTA_EXEC_STATE_COUNT 8
/* "queued", ...; -1 for an unknown name. */
const char *ota_exec_state_name(ota_exec_state s);
int ota_exec_state_from_name(const char *name);

/* One task's execution on one vehicle; (task, vin) is the key. */
typedef struct {
    const char *task;
    const char *vin;
    ota_exec_state state;
    const char *code;    /* rejection code or failure reason; NULL */
    uint32_t resends;    /* notices re-sent (compensation) */
    const char *msg_id;  /* of the last notice; NULL before one was sent */
    int64_t notified_ms; /* -1 before */
    int64_t updated_ms;
} ota_exec_rec;

/* A vehicle's device shadow; reported and desired are JSON objects (desired may be NULL). */
typedef struct {
    const char *vin;
    int64_t version;
    const char *reported;
    const char *desired;
    int64_t updated_ms;
} ota_shadow_rec;

/* A task notice sent (seed 000's ota_vehicle_download_notice); insert-only. */
typedef struct {
    const char *task;
    const char *vin;
    uint64_t package;
    const char *version;
    const char *msg_id;
    int64_t sent_ms;
} ota_notice_rec;
/* A package description issued to a vehicle (pkg/get); insert-only, (vin, counter) is
 * the key: counter is the vehicle's description counter, which only grows (rollback
 * defence). files: the sha256 (hex) of every file it names, comma-separated — what the
 * vehicle may then fetch with file/get. cose: the signed COSE_Sign1 as sent. */
typedef struct {
    const char *vin;
    uint64_t counter;
    const char *task;
    uint64_t req; /* the vehicle's request id */
    uint64_t package;
    const char *files;
    const uint8_t *cose;
    size_t cose_len;
    int64_t issued_ms;
    int64_t expires_ms;
} ota_description_rec;

typedef enum {
    OTA_DOC_MODEL = 1, /* key: model "/" series */
    OTA_DOC_PACKAGE,   /* key: package id (decimal) */
    OTA_DOC_STRATEGY,  /* key: strategy id */
    OTA_DOC_BINDING,   /* key: "default:" model "/" series, or "vin:" VIN -> {"strategy": id} */
    OTA_DOC_FILE,      /* key: sha256 */
    OTA_DOC_TASK,      /* key: task id -> the task and its state (task engine) */
    OTA_DOC_SETTING,   /* key: e.g. "task_type_rules:normal" -> plugin settings */
} ota_doc_kind;
#define OTA_DOC_KIND_COUNT 7

typedef struct {
    ota_doc_kind kind;
    const char *key;
    const char *json; /* NULL deletes the document */
} ota_store_doc;

/* One atomic change of the catalog: everything in it is stored, or nothing. */
typedef struct {
    const ota_vehicle_rec *put_vehicles; /* insert or replace, by VIN */
    size_t n_put_vehicles;
    const char *const *delete_vehicles;
    size_t n_delete_vehicles;
    const ota_store_doc *docs;
    size_t n_docs;
    ota_list_kind list; /* the list list_add / list_remove change */
    const char *const *list_add;
    size_t n_list_add;
    const char *const *list_remove;
    size_t n_list_remove;
    /* task engine state (upserts by key; notices are appended) */
    const ota_exec_rec *put_execs;
    size_t n_put_execs;
    const ota_shadow_rec *put_shadows;
    size_t n_put_shadows;
    const ota_notice_rec *add_notices;
    size_t n_add_notices;
    const ota_description_rec *add_descriptions; /* appended; a stored key is skipped */
    size_t n_add_descriptions;
} ota_catalog_change;

/* Returns 0, or -1 with err set (nothing stored; on MongoDB without a replica set the
 * parts before the failure may be stored: applying the same change again converges, see
 * docs/mongodb.md). */
int ota_store_apply(ota_store *s, const ota_catalog_change *c, char *err, size_t errlen);

/* Loaders, for the start-up: fn sees each item (pointers valid during the call) and
 * returns 0 to go on or non-zero to stop. Return 0, or -1 on a store error or when fn
 * stopped. */
typedef int (*ota_store_vehicle_fn)(void *ctx, const ota_vehicle_rec *v);
typedef int (*ota_store_doc_fn)(void *ctx, const char *key, const char *json);
typedef int (*ota_store_list_fn)(void *ctx, ota_list_kind list, const char *vin);
int ota_store_load_vehicles(ota_store *s, ota_store_vehicle_fn fn, void *ctx);
int ota_store_load_docs(ota_store *s, ota_doc_kind kind, ota_store_doc_fn fn, void *ctx);
int ota_store_load_lists(ota_store *s, ota_store_list_fn fn, void *ctx);
/* Task engine state, at start: every execution (by task, then VIN), every shadow (by
 * VIN); notices (of one task, or task NULL for all, by sent time). */
typedef int (*ota_store_exec_fn)(void *ctx, const ota_exec_rec *e);
typedef int (*ota_store_shadow_fn)(void *ctx, const ota_shadow_rec *s);
typedef int (*ota_store_notice_fn)(void *ctx, const ota_notice_rec *n);
int ota_store_load_execs(ota_store *s, ota_store_exec_fn fn, void *ctx);
int ota_store_load_shadows(ota_store *s, ota_store_shadow_fn fn, void *ctx);
int ota_store_load_notices(ota_store *s, const char *task, ota_store_notice_fn fn, void *ctx);
/* Descriptions issued (of one VIN, or vin NULL for all), by VIN then counter. */
typedef int (*ota_store_description_fn)(void *ctx, const ota_description_rec *d);
int ota_store_load_descriptions(ota_store *s, const char *vin, ota_store_description_fn fn,
                                void *ctx);
/* The latest upgrade_status event of every VIN (highest seq, then index), for the rules'
 * "upgrade in progress" check at start. */
int ota_store_load_latest_statuses(ota_store *s, ota_store_event_fn fn, void *ctx);

/* The replay guard's row of every VIN (ota_vehicle_report_seq), by VIN: its memory across
 * restarts (SPEC §8, issue 8). A database of an older version gets the rows at open:
 * epoch "0" and the highest seq stored of each VIN. */
typedef int (*ota_store_seq_fn)(void *ctx, const ota_report_seq_rec *r);
int ota_store_load_last_seqs(ota_store *s, ota_store_seq_fn fn, void *ctx);

/* Claims the sending of notice msg_id (of task, to vin) for owner (a broker's id), so that
 * several brokers sharing one database never send the same notice twice: the first claim
 * of a msg_id wins for good. Returns 1 when owner holds the claim (also when it claimed it
 * before: a retried claim is harmless), 0 when another owner does, -1 on a store error
 * (err set). Table / collection ota_vehicle_notice_claim (msg_id, task, vin, owner,
 * claimed_at). */
int ota_store_claim_notice(ota_store *s, const char *task, const char *vin, const char *msg_id,
                           const char *owner, int64_t now_ms, char *err, size_t errlen);

/* One notice of a batch claim (ota_store_claim_notices). */
typedef struct {
    const char *task, *vin, *msg_id; /* in */
    int result;                      /* out: 1 owner holds the claim, 0 another owner does */
} ota_notice_claim;

/* The claim of n notices at once, with ota_store_claim_notice's meaning for each, in a few
 * round trips (SQLite: one transaction; MongoDB: per 1000 claims one unordered insert of
 * the claims and one find of their owners). Returns 0 with every result set, or -1 on a
 * store error (err set; results unset): retrying the whole batch is harmless, the claims
 * owner took already read back as 1. */
int ota_store_claim_notices(ota_store *s, ota_notice_claim *claims, size_t n, const char *owner,
                            int64_t now_ms, char *err, size_t errlen);

#endif
