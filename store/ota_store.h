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
 * Table / collection ota_vehicle_state: per VIN the last report taken (or the last
 * operator reset), so that the replay guard survives a restart; also what start-up reads
 * instead of every event (issue 15). ota_quarantine: every report refused after the broker
 * took it, with its reason and its payload. */

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

/* What the writer stores at once: events, the guard's rows (replacing the VIN's row of
 * ota_vehicle_state; of several rows of one VIN the last counts, and ota_store_put_batch
 * hands each backend that one only; never by a row with fewer operator resets than the
 * stored one), refused reports, descriptions served. A VIN with inserted events but no guard
 * row in the batch (ota_store_put_events) has its row raised to its highest seq when the
 * row has the events' epoch and no reset, or made (epoch of the events, no reset). Atomic
 * on SQLite; on MongoDB it converges on a retry, as events do. */
struct ota_description_rec;
typedef struct {
    const ota_store_event *events;
    size_t n_events;
    const ota_report_seq_rec *seqs;
    size_t n_seqs;
    const ota_quarantine_rec *quarantine;
    size_t n_quarantine;
    /* operator resets (resetVehicleSeq) among the guard rows, in order, before any row of
     * seqs stood in for them: each also appends an ota_vehicle_state entry to the change
     * log (SQLite: in the batch's transaction; MongoDB: after its writes), so the other
     * brokers' replay guards and their snapshots follow the reset */
    const ota_report_seq_rec *resets;
    size_t n_resets;
    /* package descriptions served (spooled by pkg/get before its reply): stored when their
     * key (vin, counter) is absent, as ota_store_apply's add_descriptions */
    const struct ota_description_rec *descriptions;
    size_t n_descriptions;
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

/* A place in a VIN's history, for paging (getVehicleHistory): the key of the last event a
 * page showed. */
typedef struct {
    uint64_t seq;
    uint32_t index;
} ota_store_cursor;

/* As ota_store_history, but only events older than before (seq, index) — the next page
 * after the event at before; before NULL: from the newest. */
int ota_store_history_before(ota_store *s, const char *vin, ota_event_type type,
                             const ota_store_cursor *before, size_t limit, ota_store_event_fn fn,
                             void *ctx);

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
    OTA_EXEC_ACCEPTED,  /* the driver accepted the notice's prompt (consent) */
    OTA_EXEC_POSTPONED, /* the driver postponed; the notice is re-sent at its time */
    OTA_EXEC_DECLINED,  /* the driver declined: final */
} ota_exec_state;
#define OTA_EXEC_STATE_COUNT 11
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
    int64_t wave; /* its wave (0, 1, ...; fixed at createTask), negative: in none (a task
                     without waves, a rejected VIN); stored so the store counts per wave */
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
typedef struct ota_description_rec {
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
    OTA_DOC_RXSWIN,    /* key: task "/" VIN -> what a committed success changed (issue 17) */
} ota_doc_kind;
#define OTA_DOC_KIND_COUNT 8

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

/* The replay guard's row of every VIN (ota_vehicle_state), by VIN: its memory across
 * restarts (SPEC §8, issue 8), read without reading the events. A database of an older
 * version gets the rows at open: epoch "0" and each VIN's highest seq (from the events, or
 * from the first issue 15 layout {vin, last_seq}). */
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

/* ---- shared state for several brokers on one database (issue 15) ----
 * Tables / collections (both backends):
 *   ota_vehicle_state (vin, epoch, seq, resets, updated_at)
 *                                              per VIN the replay guard's row, what
 *                                              start-up needs; written with the events
 *                                              of the same batch
 *   ota_change_log (seq, at, kind, id, op, list, doc)
 *                                              every vehicle, document and list change, in
 *                                              the order applied (docs/mongodb.md) */

/* Applies the execution change to (to->task, to->vin) only when the stored execution is in
 * state from: every field of to replaces the stored one. Returns 1 when it applied, 0 when
 * it did not (no such execution, or another state: someone else moved it), -1 on a store
 * error (err set). Two handles racing from the same state: exactly one gets 1. SQLite:
 * UPDATE ... WHERE state = from; MongoDB: a replacement with {task, vin, state} as filter. */
int ota_store_transition_exec(ota_store *s, ota_exec_state from, const ota_exec_rec *to, char *err,
                              size_t errlen);

/* A notice decision as one write: the execution's transition from `from` to `to` (which
 * names the notice's msg_id), the vehicle's shadow (its desired state carrying the notice)
 * and the notice row, all or nothing. Returns 1 when stored, 0 when the execution was not in
 * state from (nothing stored), -1 on a store error (err set). Retrying after -1 is safe: an
 * execution found in to->state with to->msg_id is this decision already applied (a notice id
 * has one owner, ota_store_claim_notice), and the shadow and notice are written again
 * (idempotent), returning 1. SQLite: one transaction; MongoDB: one transaction on a replica
 * set; on a standalone server the transition goes first and the retry completes the rest. */
int ota_store_notice_decision(ota_store *s, ota_exec_state from, const ota_exec_rec *to,
                              const ota_shadow_rec *shadow, const ota_notice_rec *notice, char *err,
                              size_t errlen);

/* One decision of ota_store_notice_decisions: ota_store_notice_decision's arguments and,
 * once the call returned 0, its result (1 stored, 0 the execution was not in state from). */
typedef struct {
    ota_exec_state from;
    const ota_exec_rec *to;
    const ota_shadow_rec *shadow;
    const ota_notice_rec *notice;
    int result;
} ota_notice_decision;

/* n notice decisions, each with ota_store_notice_decision's meaning and all-or-nothing
 * write, in one go: SQLite one transaction (one commit, one fsync, instead of one per
 * notice: the dispatch regression of docs/benchmarks.md); MongoDB: the conditional
 * transitions one by one, then the shadows and notices of those applied in one bulk write
 * per collection (on a replica set one transaction per 1,000 decisions). Returns 0 with
 * every result set, or -1 on a store error (err set; results unset; SQLite: nothing of the
 * batch stored): retrying the whole batch is safe, a decision stored reads back as 1. */
int ota_store_notice_decisions(ota_store *s, ota_notice_decision *d, size_t n, char *err,
                               size_t errlen);

/* One entry of the change log: ota_store_apply appends one per vehicle put or deleted, per
 * document put or deleted and per list member added or removed, in the same transaction as
 * the change (MongoDB standalone: right after it); ota_store_put_group / _delete_group one
 * per group (id: its name, json: its definition; the members are in the store). seq grows
 * by one per entry. */
typedef enum {
    OTA_CHANGE_VEHICLE = 1,
    OTA_CHANGE_DOC,
    OTA_CHANGE_LIST,
    OTA_CHANGE_GROUP,
    OTA_CHANGE_VEHICLE_STATE /* an operator's reset of a VIN's replay guard (put only) */
} ota_change_what;
typedef struct {
    uint64_t seq;
    int64_t at_ms; /* when the writer appended it (its clock) */
    ota_change_what what;
    ota_doc_kind doc_kind; /* OTA_CHANGE_DOC */
    ota_list_kind list;    /* OTA_CHANGE_LIST */
    const char *id;        /* the VIN, or the document's key */
    bool deleted;          /* deleted / removed from the list */
    const char *json;      /* a document's JSON, a vehicle's (codec/catalog_json.c); NULL
                              for deletions and list changes */
} ota_store_change;

/* The change log after seq `after`, in order, at most limit entries (0: no limit); fn returns
 * non-zero to stop. A gap in the sequence (an entry not committed yet by another writer, or
 * one whose writer failed after taking its number) stops the read before it, unless the
 * entry after the gap is at least hold_ms old (at_ms <= now_ms - hold_ms): then the gap is
 * skipped for good. Returns the number of entries seen, or -1 on a store error. */
typedef int (*ota_store_change_fn)(void *ctx, const ota_store_change *c);
int ota_store_read_changes(ota_store *s, uint64_t after, size_t limit, int64_t now_ms,
                           int64_t hold_ms, ota_store_change_fn fn, void *ctx);
/* The guard row an OTA_CHANGE_VEHICLE_STATE entry carries (kind "ota_vehicle_state", id the
 * VIN, json {"epoch", "seq": -1, "resets"}): out->vin is c->id, out->epoch points into epoch
 * (at least OTA_STORE_EPOCH_KEY_MAX bytes). 0, or -1 when the entry is not one or does not
 * parse. */
int ota_store_change_vehicle_state(const ota_store_change *c, ota_report_seq_rec *out, char *epoch,
                                   size_t len);
/* The oldest stored seq of the change log (*last + 1 when none is stored) and the last seq
 * numbered (0 before the first change): a follower starts from *last after a full load, and
 * needs a full load again when the entry after its position was trimmed (position + 1 <
 * *first). 0 or -1. */
int ota_store_change_bounds(ota_store *s, uint64_t *first, uint64_t *last);
/* Deletes the change log entries up to seq upto (retention). 0 or -1. */
int ota_store_trim_changes(ota_store *s, uint64_t upto);

/* The stored execution of (task, vin), handed to fn (0 or 1 calls): how a broker that does not
 * hold an execution in memory (another broker notified the vehicle) reads it on demand.
 * 0, or -1 on a store error. */
int ota_store_load_exec(ota_store *s, const char *task, const char *vin, ota_store_exec_fn fn,
                        void *ctx);

/* ---- a task's rollout across brokers (issue 16; docs/task-engine.md "Waves") ----
 * A task document carries a revision, member "rev" (absent: 0), that every broker's write of
 * the document raises by one. */

/* Replaces the stored document of task id with json (whose "rev" is expect_rev + 1) only when
 * the stored one's "rev" is expect_rev, and appends its change log entry with it (SQLite: one
 * transaction; MongoDB: one transaction on a replica set, else right after the replacement).
 * Returns 1 stored, 0 not stored (no such task, or another revision: another broker changed
 * the task first; the change log brings its document), -1 on a store error (err set). Two
 * brokers racing from one revision: exactly one gets 1. SQLite: UPDATE ... WHERE key = ? AND
 * coalesce(json_extract(doc, '$.rev'), 0) = ?; MongoDB: a replacement with {_id, rev} as
 * filter (a document kept as text: with its exact text as filter). */
int ota_store_put_task_doc_if(ota_store *s, const char *id, const char *json, uint64_t expect_rev,
                              char *err, size_t errlen);

/* The executions of one task whose state is in states (a bit per ota_exec_state, 1u << s),
 * handed to fn in no set order: what a broker reads to count a wave's successes and failures
 * over every broker. 0, or -1 on a store error or when fn stopped. */
int ota_store_load_task_execs(ota_store *s, const char *task, unsigned states, ota_store_exec_fn fn,
                              void *ctx);

/* One task's executions counted by the store, none read (issue 15: a task's counts over every
 * broker at 10M vehicles): fn sees once each (state, wave) that has executions, with how
 * many; wave is negative for executions stored without one (a task without waves, or stored
 * before executions carried their wave). SQLite: SELECT state, wave, count(*) ... WHERE task
 * = ? GROUP BY state, wave over the primary key's range of the task; MongoDB: one aggregate
 * [{$match: {task}}, {$group: {_id: {state, wave}, n: {$sum: 1}}}] on the index
 * by_state_wave {task, state, wave}: the server counts, the reply holds one document per
 * (state, wave). fn returns non-zero to stop. 0, or -1 with err set (a store error, or fn
 * stopped). */
typedef int (*ota_store_count_fn)(void *ctx, ota_exec_state state, int64_t wave, uint64_t n);
int ota_store_count_task_execs(ota_store *s, const char *task, ota_store_count_fn fn, void *ctx,
                               char *err, size_t errlen);

/* ---- a local snapshot, to start without the database (issue 15; store/snapshot.c) ----
 * A SQLite file holding everything the start-up loaders read (vehicles, documents, lists,
 * executions, shadows, notices, descriptions, every VIN's latest status and last seq) and
 * the change log position it reflects. Made and refreshed by the broker's writer from its
 * store; read by the start-up when the store cannot be opened. */

/* Saves a snapshot of `from` to path: written as path.tmp, made durable, then renamed over
 * path, so path is always a whole snapshot. 0, or -1 with err set. */
int ota_store_snapshot_save(ota_store *from, const char *path, char *err, size_t errlen);
/* Brings the snapshot at path up to date from `from`: the catalog part by the change log
 * entries after its position (vehicles, documents, lists), and the per-VIN task state in
 * full when full is true (or when there is no snapshot yet, or when the entries after its
 * position were trimmed: then the whole snapshot is saved anew). Returns the number of
 * change log entries applied (a full save counts as 0), or -1 with err set. */
int ota_store_snapshot_refresh(ota_store *from, const char *path, bool full, char *err,
                               size_t errlen);
/* The change log position of the snapshot at path: 0 and *seq, or -1 (no snapshot). */
int ota_store_snapshot_position(const char *path, uint64_t *seq);
/* A handle of uri that opens it on first use (store/lazy.c): for the writer of a broker that
 * started from its snapshot while uri was unreachable. Each call tries to open uri (at most
 * once per second) and fails as a store error (-1, err "store not reachable yet: ...")
 * until it opens; then every call is the real store's. NULL only when out of memory. */
ota_store *ota_store_open_lazy(const char *uri, char *err, size_t errlen);
/* Opens uri; when that fails and snapshot (may be NULL) is a readable snapshot, opens the
 * snapshot instead and sets *from_snapshot (the start-up loaders then read it; writes go to
 * the snapshot file, not to the store: the caller opens uri again for those). err says why
 * uri failed in both cases. NULL when neither opens. */
ota_store *ota_store_open_or_snapshot(const char *uri, const char *snapshot, bool *from_snapshot,
                                      char *err, size_t errlen);
/* ---- vehicle groups (issue 16: groups.h, control_groups.c) ----
 * A group's definition is a JSON document under its name (ota_json_from_group: {"name",
 * "kind", "query"?}); a static group's members are rows of their own, so a group of
 * 100,000 VINs is not one huge document.
 *   SQLite tables / MongoDB collections:
 *     ota_vehicle_group (name TEXT PRIMARY KEY, doc TEXT)      MongoDB: {_id: name, doc}
 *     ota_vehicle_group_member (name, vin), key (name, vin)   MongoDB: {_id: name/vin,
 *                                                               name, vin}
 * SQLite creates the tables on first use (older databases gain them then). */
typedef int (*ota_store_group_fn)(void *ctx, const char *name, const char *json);
typedef int (*ota_store_group_member_fn)(void *ctx, const char *name, const char *vin);
/* Replaces group `name`: its definition and its members (n_vins of them; 0 for a dynamic
 * group). SQLite: one transaction. MongoDB: the members are replaced first, the
 * definition last (without a replica set a failure may leave part of the new members
 * behind an old definition: putting the same group again converges). 0, or -1 with err. */
int ota_store_put_group(ota_store *s, const char *name, const char *json,
                        const char *const *vins, size_t n_vins, char *err, size_t errlen);
/* Deletes group `name` and its members (not there: no error). 0, or -1 with err. */
int ota_store_delete_group(ota_store *s, const char *name, char *err, size_t errlen);
/* Every definition (by name), then every member (by name, then VIN). fn and member return
 * 0 to go on. 0, or -1 on a store error or when a callback stopped. */
int ota_store_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                          void *ctx);

#endif
