/*
 * schema.h — private to the store backends: the records the store keeps, described once
 * for every backend (store/sqlite*.c, store/mongo*.c), and the checks every backend makes
 * before it writes anything. A backend generates its SQL or BSON from these descriptors
 * and reads rows or documents back through them; the names are the SQLite tables' and
 * the MongoDB collections' (seed 000's where it has them, ota_store.h).
 */
#ifndef OTA_STORE_SCHEMA_H
#define OTA_STORE_SCHEMA_H

#include "ota_store.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- report events: the optional fields and which kind keeps which ---- */

typedef enum { OTA_SF_TEXT, OTA_SF_I32, OTA_SF_I64 } ota_store_field_kind;

typedef struct {
    const char *name; /* column / field name ("trigger" is an SQL keyword: quote it) */
    ota_store_field_kind kind;
    size_t off; /* offset of the field in ota_event */
} ota_store_field;

enum {
    OTA_SF_ECU,
    OTA_SF_PCT,
    OTA_SF_BYTES,
    OTA_SF_STEP,
    OTA_SF_STATUS,
    OTA_SF_ERROR,
    OTA_SF_TRIGGER,
    OTA_SF_FW,
    OTA_SF_CMD,
    OTA_SF_AT,
    OTA_SF_RESULT,
    OTA_SF_ANSWER,
    OTA_SF_UNTIL,
    OTA_SF_CONDITIONS,
    OTA_SF_COUNT
};
extern const ota_store_field OTA_STORE_FIELDS[OTA_SF_COUNT];

#define OTA_SF_BIT(f) (1u << (f))

typedef struct {
    const char *table;
    unsigned fields; /* OTA_SF_BIT(...) of the fields this kind keeps */
} ota_store_ev_kind;

/* The kind of an event type, or NULL for an unknown type. */
const ota_store_ev_kind *ota_store_ev_kind_get(int type);
/* What the store refuses in an event before a backend sees it; NULL when acceptable. */
const char *ota_store_event_problem(const ota_store_event *e);

/* ---- the catalog: vehicles, documents, lists ---- */

typedef enum { OTA_VC_TEXT, OTA_VC_BOOL, OTA_VC_PUBKEY } ota_store_vcol_kind;

typedef struct {
    const char *name;
    const char *decl; /* SQLite: type and constraints in CREATE TABLE */
    ota_store_vcol_kind kind;
    size_t off; /* offset of the field in ota_vehicle_rec */
} ota_store_vcol;

/* The vehicle's fields; the first (vin) is the key. */
extern const ota_store_vcol OTA_STORE_VCOLS[];
extern const int OTA_STORE_N_VCOLS;

#define OTA_STORE_VEHICLE_TABLE "ota_vehicle"
#define OTA_STORE_LIST_TABLE "ota_vehicle_list"
#define OTA_STORE_GROUP_TABLE "ota_vehicle_group"
/* The table / collection of a document kind, or NULL for an unknown kind. */
const char *ota_store_doc_table(int kind);

/* ---- the task engine's records ---- */

/* The refused reports (ota_store.h); the replay guard's rows are ota_vehicle_state's. */
#define OTA_STORE_QUARANTINE_TABLE "ota_quarantine"

/* The notice claims (ota_store_claim_notice): one per msg_id, naming its owner. */
#define OTA_STORE_CLAIM_TABLE "ota_vehicle_notice_claim"

typedef enum {
    OTA_TC_TEXT,    /* const char *; NULL allowed unless required */
    OTA_TC_STATE,   /* ota_exec_state, kept by name */
    OTA_TC_U32,     /* uint32_t */
    OTA_TC_U64,     /* uint64_t, at most INT64_MAX */
    OTA_TC_I64,     /* int64_t */
    OTA_TC_I64_OPT, /* int64_t, negative <-> absent (NULL) */
    OTA_TC_BLOB,    /* const uint8_t * followed in the record by its size_t length */
} ota_store_tcol_kind;

enum {
    OTA_TC_REQ = 1,  /* required: a change without it is refused */
    OTA_TC_KEY = 2,  /* part of the key */
    OTA_TC_JSON = 4, /* a text holding a JSON object (MongoDB: a native sub-document) */
};

typedef struct {
    const char *name;
    ota_store_tcol_kind kind;
    unsigned flags; /* OTA_TC_REQ, OTA_TC_KEY, OTA_TC_JSON */
    size_t off;     /* offset of the field in the record */
} ota_store_tcol;

typedef struct {
    const char *table;
    const char *part; /* in error texts: "<part> <i> of the change" */
    const ota_store_tcol *cols;
    int n_cols;
    bool without_rowid; /* SQLite */
    bool upsert;        /* a repeated key replaces the row; else the new one is skipped */
    const char *index;  /* columns of the secondary index, or NULL */
    const char *order;  /* the loaders' order (SQL ORDER BY) */
} ota_store_ttable;

enum { OTA_T_EXEC, OTA_T_SHADOW, OTA_T_NOTICE, OTA_T_DESC, OTA_T_COUNT };
extern const ota_store_ttable OTA_STORE_TTABLES[OTA_T_COUNT];

/* A part of a change: its records, their size and count. */
typedef struct {
    const void *recs;
    size_t size;
    size_t n;
} ota_store_part;
ota_store_part ota_store_change_part(const ota_catalog_change *c, int t);
/* Where a backend's loader sends what it reads: the caller's callback of the loader's
 * kind, its context, and (for loaders sharing one reader) the task-engine table. */
typedef struct {
    union {
        ota_store_vehicle_fn vehicle;
        ota_store_doc_fn doc;
        ota_store_list_fn list;
        ota_store_exec_fn exec;
        ota_store_shadow_fn shadow;
        ota_store_notice_fn notice;
        ota_store_description_fn description;
        ota_store_seq_fn seq;
    } fn;
    void *ctx;
    int t; /* OTA_T_* */
} ota_store_sink;

/* How a backend's loader reads the columns of one stored record (a row, a document): i is
 * the column's number in the descriptor, name its name. absent: NULL / missing. */
typedef struct {
    bool (*absent)(void *src, int i, const char *name);
    const char *(*text)(void *src, int i, const char *name);
    int64_t (*i64)(void *src, int i, const char *name);
    const void *(*blob)(void *src, int i, const char *name, size_t *len);
} ota_store_col_reader;

/* Fills rec (a record of table d) from src through r; texts and blobs point into src. -1
 * when a stored state is not one this build knows (refused rather than dropped). */
int ota_store_read_rec(const ota_store_ttable *d, char *rec, const ota_store_col_reader *r,
                       void *src);

/* Items of every task engine part of a change. */
size_t ota_store_tasks_count(const ota_catalog_change *c);

/* ---- checks of a change (every backend, before it writes anything) ----
 * Each returns 0, or -1 with the problem written to buf ("vehicle 2 of the change: no
 * VIN"); the backend prefixes it with its name. */
int ota_store_check_change(const ota_catalog_change *c, char *buf, size_t len);
bool ota_store_change_empty(const ota_catalog_change *c);

/* ---- shared state (issue 15): the tables both backends add, the change log's entries ---- */

/* A VIN's report seq and the epoch (key) it is stored under. */
typedef struct {
    const char *vin;
    uint64_t seq;
    const char *epoch;
} ota_store_vin_seq;
/* A set of VINs by open addressing (the pointers, not copies), for one batch: its capacity
 * for n VINs (a power of two, at least 2n), and the slot of vin in set (set[slot] is NULL
 * when vin is absent: store it there to add it). */
size_t ota_store_vin_set_cap(size_t n);
size_t ota_store_vin_set_slot(const char *const *set, size_t cap, const char *vin);
/* Sorts v by VIN and keeps one per VIN, its highest seq; returns how many are left. */
size_t ota_store_vin_seq_max(ota_store_vin_seq *v, size_t n);
/* What batch b raises in ota_vehicle_state besides its guard rows: of v (b's inserted
 * events; reordered), per VIN the highest seq, less the VINs b has a guard row of (the row
 * replaces the state). Returns how many are left. */
size_t ota_store_state_raises(const ota_store_batch *b, ota_store_vin_seq *v, size_t n);

/* The wall clock in ms: when a change log entry, a migration or a snapshot was written. */
int64_t ota_store_wall_ms(void);

#define OTA_STORE_STATE_TABLE "ota_vehicle_state"
#define OTA_STORE_CHANGE_TABLE "ota_change_log"

/* Entries of the change log a change appends: one per vehicle put or deleted, document put
 * or deleted, list member added or removed (the task engine's parts have none). */
size_t ota_store_change_log_count(const ota_catalog_change *c);
/* Entry i (< the count) of c, seq and at_ms unset. A vehicle's JSON is made here: *owned
 * (free it) holds it. -1 when out of memory. */
int ota_store_change_log_entry(const ota_catalog_change *c, size_t i, ota_store_change *out,
                               char **owned);
/* The entry of an operator's reset (a guard row with seq -1) into *out; its JSON is made
 * here: *owned (free it) holds it. -1 when out of memory. */
int ota_store_change_log_reset(const ota_report_seq_rec *r, ota_store_change *out, char **owned);
/* Appends the entry of every operator reset of b through append (a backend's own append of
 * one entry), in order. 0, or -1 with err set. */
typedef int (*ota_store_append_fn)(void *st, const ota_store_change *e, char *err, size_t errlen);
int ota_store_log_resets(const ota_store_batch *b, ota_store_append_fn append, void *st, char *err,
                         size_t errlen);
/* The stored kind of an entry: the table / collection the change touched
 * ("ota_vehicle", "ota_vehicle_list", "ota_package", ...). */
const char *ota_store_change_kind(const ota_store_change *e);
/* Sets what / doc_kind / list of e from a stored kind and list name; -1 when unknown. */
int ota_store_change_kind_parse(ota_store_change *e, const char *kind, const char *list);

#endif
