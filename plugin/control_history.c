/*
 * control_history.c — getVehicleHistory (SPEC §5, issue 18): a vehicle's stored report
 * events, newest first, a page at a time.
 *
 * The events are in the store only, so this is a store read: it goes through the writer's
 * job queue like a change (ota_cmd_store with a run() that reads), the writer thread
 * reads the page (ota_store_history_before, one query per event kind at most) and builds
 * its JSON, and the broker thread answers it when the job's result comes back (TICK, or at
 * once when waking is on). The broker thread never waits for the store. The cursor is
 * "seq:index" of the last event of the page; the VIN need not be in the catalog.
 */
#include "control.h"
#include "ota_catalog_json.h"
#include "ota_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

typedef struct {
    ota_cmd_op base;
    char vin[OTA_VIN_LEN + 1];
    ota_event_type kind; /* 0: every kind */
    ota_store_cursor before;
    bool has_before;
    size_t limit;
    cJSON *events; /* built on the writer thread (plain malloc: cJSON's default hooks) */
    ota_store_cursor last;
    size_t n;
} history_op;

static void history_free(ota_cmd_op *base)
{
    history_op *op = (history_op *)base;
    cJSON_Delete(op->events);
    free(op);
}

static void add_opt_text(cJSON *o, const char *key, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, key, v);
    }
}

static void add_opt_num(cJSON *o, const char *key, int64_t v)
{
    if (v >= 0) {
        cJSON_AddNumberToObject(o, key, (double)v);
    }
}

/* EVENT: seq, index, kind, task, ts, received_at and the fields the kind has. */
static cJSON *event_json(const ota_store_event *se)
{
    const ota_event *ev = se->ev;
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    cJSON_AddNumberToObject(o, "seq", (double)se->seq);
    cJSON_AddNumberToObject(o, "index", ev->index);
    add_opt_text(o, "kind", ota_event_type_name(ev->type));
    add_opt_text(o, "task", ev->task);
    cJSON_AddNumberToObject(o, "ts", (double)ev->ts);
    cJSON_AddNumberToObject(o, "received_at", (double)se->received_ms);
    add_opt_text(o, "ecu", ev->ecu);
    add_opt_num(o, "pct", ev->pct);
    add_opt_num(o, "bytes", ev->bytes);
    add_opt_text(o, "step", ev->step);
    add_opt_text(o, "status", ev->status);
    add_opt_text(o, "error", ev->error);
    add_opt_text(o, "trigger", ev->trigger);
    add_opt_text(o, "fw", ev->fw);
    add_opt_text(o, "cmd", ev->cmd);
    add_opt_num(o, "at", ev->at);
    add_opt_text(o, "result", ev->result);
    add_opt_text(o, "answer", ev->answer);
    add_opt_num(o, "until", ev->until);
    add_opt_text(o, "conditions", ev->conditions);
    return o;
}

/* Writer thread: one event of the page. */
static void collect(void *ctx, const ota_store_event *se)
{
    history_op *op = ctx;
    cJSON *o = event_json(se);
    if (o) {
        cJSON_AddItemToArray(op->events, o);
    }
    op->last = (ota_store_cursor){se->seq, se->ev->index};
    op->n++;
}

/* Writer thread: reads one event more than the page, to know whether another follows. */
static int history_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    history_op *op = (history_op *)base;
    op->events = cJSON_CreateArray();
    if (!op->events) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = ota_store_history_before(store, op->vin, op->kind, op->has_before ? &op->before : NULL,
                                     op->limit + 1, collect, op);
    if (n < 0) {
        snprintf(err, errlen, "the store could not be read (%s): try again",
                 ota_store_backend(store));
        return -1;
    }
    return 0;
}

/* Broker thread: {events, next_cursor?}. */
static cJSON *history_apply(ota_plugin *p, ota_cmd_op *base)
{
    (void)p;
    history_op *op = (history_op *)base;
    cJSON *data = cJSON_CreateObject();
    if (op->n > op->limit) { /* the extra one only says that more follow */
        cJSON_DeleteItemFromArray(op->events, (int)op->limit);
        const cJSON *last = cJSON_GetArrayItem(op->events, (int)op->limit - 1);
        char cur[48];
        snprintf(cur, sizeof(cur), "%.0f:%.0f",
                 cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(last, "seq")),
                 cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(last, "index")));
        cJSON_AddItemToObject(data, "events", op->events);
        cJSON_AddStringToObject(data, "next_cursor", cur);
    } else {
        cJSON_AddItemToObject(data, "events", op->events);
    }
    op->events = NULL;
    return data;
}

static int parse_kind(const cJSON *cmd, history_op *op, char *err, size_t errlen)
{
    const char *names[OTA_EV_TYPE_COUNT];
    for (int t = 1; t <= OTA_EV_TYPE_COUNT; t++) {
        names[t - 1] = ota_event_type_name((ota_event_type)t);
    }
    int k = -1;
    if (ota_json_get_enum(cmd, "", "kind", false, names, OTA_EV_TYPE_COUNT, &k, err, errlen)) {
        return -1;
    }
    op->kind = k < 0 ? (ota_event_type)0 : (ota_event_type)(k + 1);
    return 0;
}

static int parse_cursor(const cJSON *cmd, history_op *op, char *err, size_t errlen)
{
    const char *cursor = NULL;
    if (ota_json_get_word(cmd, "", "cursor", false, &cursor, err, errlen) != 0) {
        return -1;
    }
    if (!cursor) {
        return 0;
    }
    uint64_t seq = 0;
    uint32_t idx = 0;
    int used = 0;
    if (sscanf(cursor, "%" SCNu64 ":%" SCNu32 "%n", &seq, &idx, &used) != 2 ||
        cursor[used] != '\0') {
        return ota_json_errf(err, errlen, "", "cursor", "\"%s\" is not a history cursor", cursor);
    }
    op->before = (ota_store_cursor){seq, idx};
    op->has_before = true;
    return 0;
}

static int parse_history(const cJSON *cmd, history_op *op, char *err, size_t errlen)
{
    static const char *const allowed[] = {"vin", "kind", "limit", "cursor", NULL};
    const char *vin = NULL;
    uint64_t limit = PAGE_DEFAULT;
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) ||
        ota_json_get_vin(cmd, "", "vin", true, &vin, err, errlen) ||
        parse_kind(cmd, op, err, errlen) ||
        ota_json_get_uint(cmd, "", "limit", false, 1, PAGE_MAX, &limit, err, errlen) ||
        parse_cursor(cmd, op, err, errlen)) {
        return -1;
    }
    memcpy(op->vin, vin, OTA_VIN_LEN + 1);
    op->limit = (size_t)limit;
    return 0;
}

void ota_cmd_get_vehicle_history(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256];
    history_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = history_free;
    op->base.run = history_run;
    op->base.apply = history_apply;
    if (parse_history(cmd, op, err, sizeof(err)) != 0) {
        history_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    ota_cmd_store(p, c, &op->base);
}
