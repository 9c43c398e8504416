/*
 * schema.c — the store's records described once for every backend (schema.h): report
 * event fields and kinds, vehicle fields, document tables, the task engine's tables, and
 * the checks of a change that every backend makes before it writes anything.
 */
#include "schema.h"

#include "ota_catalog_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- report events ---- */

const ota_store_field OTA_STORE_FIELDS[OTA_SF_COUNT] = {
    [OTA_SF_ECU] = {"ecu", OTA_SF_TEXT, offsetof(ota_event, ecu)},
    [OTA_SF_PCT] = {"pct", OTA_SF_I32, offsetof(ota_event, pct)},
    [OTA_SF_BYTES] = {"bytes", OTA_SF_I64, offsetof(ota_event, bytes)},
    [OTA_SF_STEP] = {"step", OTA_SF_TEXT, offsetof(ota_event, step)},
    [OTA_SF_STATUS] = {"status", OTA_SF_TEXT, offsetof(ota_event, status)},
    [OTA_SF_ERROR] = {"error", OTA_SF_TEXT, offsetof(ota_event, error)},
    [OTA_SF_TRIGGER] = {"trigger", OTA_SF_TEXT, offsetof(ota_event, trigger)},
    [OTA_SF_FW] = {"fw", OTA_SF_TEXT, offsetof(ota_event, fw)},
    [OTA_SF_CMD] = {"cmd", OTA_SF_TEXT, offsetof(ota_event, cmd)},
    [OTA_SF_AT] = {"at", OTA_SF_I64, offsetof(ota_event, at)},
    [OTA_SF_RESULT] = {"result", OTA_SF_TEXT, offsetof(ota_event, result)},
    [OTA_SF_ANSWER] = {"answer", OTA_SF_TEXT, offsetof(ota_event, answer)},
    [OTA_SF_UNTIL] = {"until", OTA_SF_I64, offsetof(ota_event, until)},
    [OTA_SF_CONDITIONS] = {"conditions", OTA_SF_TEXT, offsetof(ota_event, conditions)},
};

#define B(f) OTA_SF_BIT(OTA_SF_##f)

static const ota_store_ev_kind KINDS[OTA_EV_TYPE_COUNT + 1] = {
    [OTA_EV_DOWNLOAD_PROGRESS] = {"ota_vehicle_download_progress", B(ECU) | B(PCT) | B(BYTES)},
    [OTA_EV_UPGRADE_PROGRESS] = {"ota_vehicle_upgrade_progress", B(ECU) | B(PCT) | B(STEP)},
    [OTA_EV_UPGRADE_STATUS] = {"ota_vehicle_upgrade_status",
                               B(STATUS) | B(ERROR) | B(TRIGGER) | B(FW) | B(CONDITIONS)},
    [OTA_EV_COMMAND] = {"ota_vehicle_upgrade_command", B(CMD) | B(AT)},
    [OTA_EV_EEPROM_CLEAR] = {"ota_vehicle_eeprom_clear", B(ECU) | B(RESULT)},
    [OTA_EV_CONSENT] = {"ota_vehicle_consent", B(ANSWER) | B(UNTIL) | B(ERROR)},
};

const ota_store_ev_kind *ota_store_ev_kind_get(int type)
{
    return type >= 1 && type <= OTA_EV_TYPE_COUNT ? &KINDS[type] : NULL;
}

const char *ota_store_event_problem(const ota_store_event *e)
{
    if (e->vin == NULL || e->ev == NULL)
        return "no vin or no event";
    if (ota_store_ev_kind_get(e->ev->type) == NULL)
        return "unknown event type";
    if (e->ev->task == NULL)
        return "no task";
    if (e->seq > INT64_MAX)
        return "seq above 2^63-1";
    return NULL;
}

/* ---- the catalog ---- */

#define VREC(f) offsetof(ota_vehicle_rec, f)

const ota_store_vcol OTA_STORE_VCOLS[] = {
    {"vin", "TEXT PRIMARY KEY", OTA_VC_TEXT, VREC(vin)},
    {"model", "TEXT NOT NULL", OTA_VC_TEXT, VREC(model)},
    {"series", "TEXT NOT NULL", OTA_VC_TEXT, VREC(series)},
    {"platform", "TEXT", OTA_VC_TEXT, VREC(platform)},
    {"status", "TEXT NOT NULL", OTA_VC_TEXT, VREC(status)},
    {"usage", "TEXT NOT NULL", OTA_VC_TEXT, VREC(usage)},
    {"sold", "INTEGER NOT NULL", OTA_VC_BOOL, VREC(sold)},
    {"activated", "INTEGER NOT NULL", OTA_VC_BOOL, VREC(activated)},
    {"passenger", "INTEGER NOT NULL", OTA_VC_BOOL, VREC(passenger)},
    {"config_word", "TEXT", OTA_VC_TEXT, VREC(config_word)},
    {"fw", "TEXT", OTA_VC_TEXT, VREC(fw)},
    {"public_key", "BLOB", OTA_VC_PUBKEY, VREC(public_key)},
    {"rxswin", "TEXT", OTA_VC_TEXT, VREC(rxswin)}, /* issue 17: canonical RXSWIN list */
};
const int OTA_STORE_N_VCOLS = (int)(sizeof OTA_STORE_VCOLS / sizeof OTA_STORE_VCOLS[0]);

static const char *const DOC_TABLES[OTA_DOC_KIND_COUNT + 1] = {
    [OTA_DOC_MODEL] = "ota_vehicle_model",
    [OTA_DOC_PACKAGE] = "ota_package",
    [OTA_DOC_STRATEGY] = "ota_upgrade_strategy",
    [OTA_DOC_BINDING] = "ota_upgrade_strategy_relation",
    [OTA_DOC_FILE] = "ota_file",
    [OTA_DOC_TASK] = "ota_task",
    [OTA_DOC_SETTING] = "ota_setting",
    [OTA_DOC_RXSWIN] = "ota_rxswin_change",
};

const char *ota_store_doc_table(int kind)
{
    return kind >= 1 && kind <= OTA_DOC_KIND_COUNT ? DOC_TABLES[kind] : NULL;
}

/* ---- the task engine's tables ---- */

#define EXEC(f) offsetof(ota_exec_rec, f)
#define SHADOW(f) offsetof(ota_shadow_rec, f)
#define NOTICE(f) offsetof(ota_notice_rec, f)
#define DESC(f) offsetof(ota_description_rec, f)
#define REQ OTA_TC_REQ
#define KEY OTA_TC_KEY
#define JSON OTA_TC_JSON

/* clang-format off */
static const ota_store_tcol EXEC_COLS[] = {
    {"task",        OTA_TC_TEXT,    REQ | KEY, EXEC(task)},
    {"vin",         OTA_TC_TEXT,    REQ | KEY, EXEC(vin)},
    {"state",       OTA_TC_STATE,   REQ,       EXEC(state)},
    {"code",        OTA_TC_TEXT,    0,         EXEC(code)},
    {"resends",     OTA_TC_U32,     REQ,       EXEC(resends)},
    {"msg_id",      OTA_TC_TEXT,    0,         EXEC(msg_id)},
    {"notified_at", OTA_TC_I64_OPT, 0,         EXEC(notified_ms)},
    {"updated_at",  OTA_TC_I64,     REQ,       EXEC(updated_ms)},
    {"wave",        OTA_TC_I64_OPT, 0,         EXEC(wave)},
};

static const ota_store_tcol SHADOW_COLS[] = {
    {"vin",        OTA_TC_TEXT, REQ | KEY, SHADOW(vin)},
    {"version",    OTA_TC_I64,  REQ,       SHADOW(version)},
    {"reported",   OTA_TC_TEXT, REQ | JSON, SHADOW(reported)},
    {"desired",    OTA_TC_TEXT, JSON,       SHADOW(desired)},
    {"updated_at", OTA_TC_I64,  REQ,       SHADOW(updated_ms)},
};

static const ota_store_tcol NOTICE_COLS[] = {
    {"task",    OTA_TC_TEXT, REQ,       NOTICE(task)},
    {"vin",     OTA_TC_TEXT, REQ,       NOTICE(vin)},
    {"package", OTA_TC_U64,  REQ,       NOTICE(package)},
    {"version", OTA_TC_TEXT, REQ,       NOTICE(version)},
    {"msg_id",  OTA_TC_TEXT, REQ | KEY, NOTICE(msg_id)},
    {"sent_at", OTA_TC_I64,  REQ,       NOTICE(sent_ms)},
};

static const ota_store_tcol DESC_COLS[] = {
    {"vin",        OTA_TC_TEXT, REQ | KEY, DESC(vin)},
    {"counter",    OTA_TC_U64,  REQ | KEY, DESC(counter)},
    {"task",       OTA_TC_TEXT, REQ,       DESC(task)},
    {"req",        OTA_TC_U64,  REQ,       DESC(req)},
    {"package",    OTA_TC_U64,  REQ,       DESC(package)},
    {"files",      OTA_TC_TEXT, REQ,       DESC(files)},
    {"cose",       OTA_TC_BLOB, REQ,       DESC(cose)},
    {"issued_at",  OTA_TC_I64,  REQ,       DESC(issued_ms)},
    {"expires_at", OTA_TC_I64,  REQ,       DESC(expires_ms)},
};

#define N_OF(a) ((int)(sizeof a / sizeof a[0]))

_Static_assert(offsetof(ota_description_rec, cose_len) ==
                   offsetof(ota_description_rec, cose) + sizeof(void *),
               "OTA_TC_BLOB: the length follows the pointer");

/*  table, part, columns, WITHOUT ROWID, upsert, secondary index, loaders' order */
const ota_store_ttable OTA_STORE_TTABLES[OTA_T_COUNT] = {
    [OTA_T_EXEC] = {"ota_task_vin", "execution", EXEC_COLS, N_OF(EXEC_COLS),
                    true, true, "vin, task", "task, vin"},
    [OTA_T_SHADOW] = {"ota_vehicle_shadow", "shadow", SHADOW_COLS, N_OF(SHADOW_COLS),
                      true, true, NULL, "vin"},
    [OTA_T_NOTICE] = {"ota_vehicle_download_notice", "notice", NOTICE_COLS, N_OF(NOTICE_COLS),
                      false, false, "task, sent_at", "sent_at, rowid"},
    [OTA_T_DESC] = {"ota_vehicle_package_description", "description", DESC_COLS,
                    N_OF(DESC_COLS), true, false, NULL, "vin, counter"},
};
/* clang-format on */

ota_store_part ota_store_change_part(const ota_catalog_change *c, int t)
{
    switch (t) {
    case OTA_T_EXEC:
        return (ota_store_part){c->put_execs, sizeof(ota_exec_rec), c->n_put_execs};
    case OTA_T_SHADOW:
        return (ota_store_part){c->put_shadows, sizeof(ota_shadow_rec), c->n_put_shadows};
    case OTA_T_NOTICE:
        return (ota_store_part){c->add_notices, sizeof(ota_notice_rec), c->n_add_notices};
    default:
        return (ota_store_part){c->add_descriptions, sizeof(ota_description_rec),
                                c->n_add_descriptions};
    }
}

size_t ota_store_tasks_count(const ota_catalog_change *c)
{
    return c->n_put_execs + c->n_put_shadows + c->n_add_notices + c->n_add_descriptions;
}

/* ---- checks ---- */

/* What is wrong with column c of rec, or NULL. */
static const char *col_problem(const ota_store_tcol *c, const char *rec, char *buf, size_t len)
{
    const char *p = rec + c->off;
    if ((c->kind == OTA_TC_TEXT || c->kind == OTA_TC_BLOB) && (c->flags & REQ) &&
        *(const void *const *)p == NULL)
        snprintf(buf, len, "no %s", c->name);
    else if (c->kind == OTA_TC_STATE && ota_exec_state_name(*(const ota_exec_state *)p) == NULL)
        snprintf(buf, len, "unknown %s %d", c->name, (int)*(const ota_exec_state *)p);
    else if (c->kind == OTA_TC_U64 && *(const uint64_t *)p > INT64_MAX)
        snprintf(buf, len, "%s above 2^63-1", c->name);
    else
        return NULL;
    return buf;
}

static int check_part(int t, ota_store_part p, char *out, size_t outlen)
{
    const ota_store_ttable *d = &OTA_STORE_TTABLES[t];
    for (size_t i = 0; i < p.n; i++) {
        char buf[64];
        const char *problem = p.recs == NULL ? "missing" : NULL;
        for (int j = 0; j < d->n_cols && problem == NULL; j++)
            problem = col_problem(&d->cols[j], (const char *)p.recs + i * p.size, buf, sizeof buf);
        if (problem != NULL) {
            snprintf(out, outlen, "%s %zu of the change: %s", d->part, i, problem);
            return -1;
        }
    }
    return 0;
}

/* 0, or -1 naming the first NULL among n VINs ("<part> <i> of the change"). */
static int check_vins(const char *part, const char *const *vins, size_t n, char *buf, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (vins == NULL || vins[i] == NULL) {
            snprintf(buf, len, "%s %zu of the change: no VIN", part, i);
            return -1;
        }
    }
    return 0;
}

static int check_vehicles(const ota_catalog_change *c, char *buf, size_t len)
{
    for (size_t i = 0; i < c->n_put_vehicles; i++) {
        if (c->put_vehicles == NULL || c->put_vehicles[i].vin == NULL) {
            snprintf(buf, len, "vehicle %zu of the change: no VIN", i);
            return -1;
        }
    }
    return check_vins("deleted vehicle", c->delete_vehicles, c->n_delete_vehicles, buf, len);
}

static int check_docs(const ota_catalog_change *c, char *buf, size_t len)
{
    for (size_t i = 0; i < c->n_docs; i++) {
        const ota_store_doc *d = c->docs != NULL ? &c->docs[i] : NULL;
        const char *problem = d == NULL                              ? "no document"
                              : ota_store_doc_table(d->kind) == NULL ? "unknown document kind"
                              : d->key == NULL                       ? "no key"
                                                                     : NULL;
        if (problem != NULL) {
            snprintf(buf, len, "document %zu of the change (kind %d): %s", i,
                     d != NULL ? (int)d->kind : -1, problem);
            return -1;
        }
    }
    return 0;
}

static int check_lists(const ota_catalog_change *c, char *buf, size_t len)
{
    if (c->n_list_add + c->n_list_remove > 0 && ota_list_name(c->list) == NULL) {
        snprintf(buf, len, "list of the change: unknown list %d", (int)c->list);
        return -1;
    }
    if (check_vins("list addition", c->list_add, c->n_list_add, buf, len) != 0)
        return -1;
    return check_vins("list removal", c->list_remove, c->n_list_remove, buf, len);
}

int ota_store_check_change(const ota_catalog_change *c, char *buf, size_t len)
{
    if (c == NULL) {
        snprintf(buf, len, "no change");
        return -1;
    }
    if (check_vehicles(c, buf, len) != 0 || check_docs(c, buf, len) != 0 ||
        check_lists(c, buf, len) != 0)
        return -1;
    for (int t = 0; t < OTA_T_COUNT; t++)
        if (check_part(t, ota_store_change_part(c, t), buf, len) != 0)
            return -1;
    return 0;
}

bool ota_store_change_empty(const ota_catalog_change *c)
{
    size_t n = c->n_put_vehicles + c->n_delete_vehicles + c->n_docs;
    return n + c->n_list_add + c->n_list_remove + ota_store_tasks_count(c) == 0;
}

/* The column's value into the record; -1 for an unknown state name. */
static int read_col(const ota_store_tcol *c, int i, char *rec, const ota_store_col_reader *r,
                    void *src)
{
    char *p = rec + c->off;
    bool absent = r->absent(src, i, c->name);
    switch (c->kind) {
    case OTA_TC_TEXT:
        *(const char **)p = absent ? NULL : r->text(src, i, c->name);
        return 0;
    case OTA_TC_STATE: {
        int state = absent ? -1 : ota_exec_state_from_name(r->text(src, i, c->name));
        *(ota_exec_state *)p = (ota_exec_state)(state < 0 ? 0 : state);
        return state < 0 ? -1 : 0;
    }
    case OTA_TC_U32:
        *(uint32_t *)p = absent ? 0 : (uint32_t)r->i64(src, i, c->name);
        return 0;
    case OTA_TC_U64:
        *(uint64_t *)p = absent ? 0 : (uint64_t)r->i64(src, i, c->name);
        return 0;
    case OTA_TC_I64:
        *(int64_t *)p = absent ? 0 : r->i64(src, i, c->name);
        return 0;
    case OTA_TC_BLOB: {
        size_t len = 0;
        *(const void **)p = absent ? NULL : r->blob(src, i, c->name, &len);
        *(size_t *)(p + sizeof(void *)) = len;
        return 0;
    }
    default: /* OTA_TC_I64_OPT */
        *(int64_t *)p = absent ? -1 : r->i64(src, i, c->name);
        return 0;
    }
}

int ota_store_read_rec(const ota_store_ttable *d, char *rec, const ota_store_col_reader *r,
                       void *src)
{
    for (int i = 0; i < d->n_cols; i++)
        if (read_col(&d->cols[i], i, rec, r, src) != 0)
            return -1;
    return 0;
}

/* ---- the change log's entries (issue 15) ---- */

static int vin_seq_cmp(const void *a, const void *b)
{
    const ota_store_vin_seq *x = a, *y = b;
    int c = strcmp(x->vin, y->vin);
    return c != 0 ? c : (x->seq < y->seq) - (x->seq > y->seq); /* highest first */
}

size_t ota_store_vin_seq_max(ota_store_vin_seq *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, vin_seq_cmp);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i].vin, v[m - 1].vin) != 0)
            v[m++] = v[i];
    return m;
}

static int vin_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const ota_store_vin_seq *)elem)->vin);
}

size_t ota_store_vin_set_cap(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

size_t ota_store_vin_set_slot(const char *const *set, size_t cap, const char *vin)
{
    size_t h = 14695981039346656037u;
    for (const char *c = vin; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    size_t k = h & (cap - 1);
    while (set[k] != NULL && strcmp(set[k], vin) != 0)
        k = (k + 1) & (cap - 1);
    return k;
}

/* Drops the entries of v whose VIN has a guard row in b, before the sort: in a batch of the
 * writer nearly every event's VIN has one, and sorting every event of the batch cost
 * ~1,900 instructions per report. false when out of memory (nothing dropped). */
static bool drop_guarded(const ota_store_batch *b, ota_store_vin_seq *v, size_t *n)
{
    size_t cap = ota_store_vin_set_cap(b->n_seqs);
    const char **set = calloc(cap, sizeof *set);
    if (set == NULL)
        return false;
    for (size_t i = 0; i < b->n_seqs; i++)
        if (b->seqs[i].vin != NULL)
            set[ota_store_vin_set_slot(set, cap, b->seqs[i].vin)] = b->seqs[i].vin;
    size_t m = 0;
    for (size_t i = 0; i < *n; i++)
        if (v[i].vin == NULL || set[ota_store_vin_set_slot(set, cap, v[i].vin)] == NULL)
            v[m++] = v[i];
    *n = m;
    free(set);
    return true;
}

size_t ota_store_state_raises(const ota_store_batch *b, ota_store_vin_seq *v, size_t n)
{
    if (n > 0 && b->n_seqs > 0 && drop_guarded(b, v, &n))
        return ota_store_vin_seq_max(v, n);
    n = ota_store_vin_seq_max(v, n);
    for (size_t i = 0; i < b->n_seqs && n > 0; i++) {
        ota_store_vin_seq *hit =
            b->seqs[i].vin != NULL ? bsearch(b->seqs[i].vin, v, n, sizeof *v, vin_cmp) : NULL;
        if (hit != NULL)
            hit->seq = UINT64_MAX; /* marked: dropped below */
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].seq != UINT64_MAX)
            v[m++] = v[i];
    return m;
}

int64_t ota_store_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t ota_store_change_log_count(const ota_catalog_change *c)
{
    return c->n_put_vehicles + c->n_delete_vehicles + c->n_docs + c->n_list_add + c->n_list_remove;
}

/* A vehicle's JSON as the operator API shows it (malloc), or NULL. */
static char *vehicle_json(const ota_vehicle_rec *v)
{
    cJSON *j = ota_json_from_vehicle(v);
    char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return text;
}

int ota_store_change_log_entry(const ota_catalog_change *c, size_t i, ota_store_change *out,
                               char **owned)
{
    *out = (ota_store_change){0};
    *owned = NULL;
    if (i < c->n_put_vehicles) {
        out->what = OTA_CHANGE_VEHICLE;
        out->id = c->put_vehicles[i].vin;
        out->json = *owned = vehicle_json(&c->put_vehicles[i]);
        return out->json != NULL ? 0 : -1;
    }
    i -= c->n_put_vehicles;
    if (i < c->n_delete_vehicles) {
        *out = (ota_store_change){
            .what = OTA_CHANGE_VEHICLE, .id = c->delete_vehicles[i], .deleted = true};
        return 0;
    }
    i -= c->n_delete_vehicles;
    if (i < c->n_docs) {
        const ota_store_doc *d = &c->docs[i];
        *out = (ota_store_change){.what = OTA_CHANGE_DOC,
                                  .doc_kind = d->kind,
                                  .id = d->key,
                                  .json = d->json,
                                  .deleted = d->json == NULL};
        return 0;
    }
    i -= c->n_docs;
    bool add = i < c->n_list_add;
    *out = (ota_store_change){.what = OTA_CHANGE_LIST,
                              .list = c->list,
                              .deleted = !add,
                              .id = add ? c->list_add[i] : c->list_remove[i - c->n_list_add]};
    return 0;
}

int ota_store_change_log_reset(const ota_report_seq_rec *r, ota_store_change *out, char **owned)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j != NULL && cJSON_AddStringToObject(j, "epoch", r->epoch != NULL ? r->epoch : "0") &&
              cJSON_AddNumberToObject(j, "seq", -1) &&
              cJSON_AddNumberToObject(j, "resets", (double)r->resets);
    *owned = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    *out = (ota_store_change){.what = OTA_CHANGE_VEHICLE_STATE, .id = r->vin, .json = *owned};
    return *owned != NULL ? 0 : -1;
}

int ota_store_log_resets(const ota_store_batch *b, ota_store_append_fn append, void *st, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < b->n_resets; i++) {
        ota_store_change e;
        char *json;
        if (ota_store_change_log_reset(&b->resets[i], &e, &json) != 0) {
            snprintf(err, errlen, "change log entry of a reset: out of memory");
            return -1;
        }
        int rc = append(st, &e, err, errlen);
        free(json);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int ota_store_change_vehicle_state(const ota_store_change *c, ota_report_seq_rec *out, char *epoch,
                                   size_t len)
{
    if (c->what != OTA_CHANGE_VEHICLE_STATE || c->id == NULL || c->json == NULL)
        return -1;
    cJSON *j = cJSON_Parse(c->json);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "resets");
    bool ok = cJSON_IsString(e) && strlen(e->valuestring) < len && cJSON_IsNumber(n) &&
              n->valuedouble >= 1 && n->valuedouble <= UINT32_MAX;
    if (ok) {
        snprintf(epoch, len, "%s", e->valuestring);
        *out = (ota_report_seq_rec){.vin = c->id,
                                    .epoch = epoch,
                                    .seq = -1,
                                    .resets = (uint32_t)n->valuedouble,
                                    .updated_ms = c->at_ms};
    }
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

const char *ota_store_change_kind(const ota_store_change *e)
{
    if (e->what == OTA_CHANGE_VEHICLE_STATE)
        return OTA_STORE_STATE_TABLE;
    if (e->what == OTA_CHANGE_VEHICLE)
        return OTA_STORE_VEHICLE_TABLE;
    if (e->what == OTA_CHANGE_LIST)
        return OTA_STORE_LIST_TABLE;
    if (e->what == OTA_CHANGE_GROUP)
        return OTA_STORE_GROUP_TABLE;
    return ota_store_doc_table(e->doc_kind);
}

int ota_store_change_kind_parse(ota_store_change *e, const char *kind, const char *list)
{
    if (kind == NULL)
        return -1;
    if (strcmp(kind, OTA_STORE_VEHICLE_TABLE) == 0) {
        e->what = OTA_CHANGE_VEHICLE;
        return 0;
    }
    if (strcmp(kind, OTA_STORE_GROUP_TABLE) == 0) {
        e->what = OTA_CHANGE_GROUP;
        return 0;
    }
    if (strcmp(kind, OTA_STORE_STATE_TABLE) == 0) {
        e->what = OTA_CHANGE_VEHICLE_STATE;
        return 0;
    }
    if (strcmp(kind, OTA_STORE_LIST_TABLE) == 0) {
        int l = ota_list_from_name(list);
        e->what = OTA_CHANGE_LIST;
        e->list = (ota_list_kind)(l < 0 ? 0 : l);
        return l < 0 ? -1 : 0;
    }
    for (int k = 1; k <= OTA_DOC_KIND_COUNT; k++) {
        if (strcmp(kind, DOC_TABLES[k]) == 0) {
            e->what = OTA_CHANGE_DOC;
            e->doc_kind = (ota_doc_kind)k;
            return 0;
        }
    }
    return -1;
}
