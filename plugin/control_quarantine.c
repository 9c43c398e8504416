/*
 * control_quarantine.c — resetVehicleSeq and listQuarantine (docs/operator-api.md): the
 * operator's side of reports a vehicle sent that were not taken (docs/protocol.md).
 *
 * resetVehicleSeq {vin} is for a replaced telematics unit that starts its seq again
 * without a new epoch: the reset is spooled like a report (so the writer applies it to the
 * VIN's guard row in order with the reports around it) and answered at once.
 * listQuarantine {vin?, code?, before?, limit?} reads the store on the writer thread (a job
 * whose run lists the rows into JSON) and answers newest first; `next` is the `before` of
 * the following page (absent on the last page).
 */
#include "control.h"
#include "ota_catalog_json.h"
#include "ota_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 20
#define LIST_MAX 100

void ota_cmd_reset_vehicle_seq(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {"vin", NULL};
    char err[256];
    const char *vin;
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_vin(cmd, "", "vin", true, &vin, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    if (!data || ota_reports_reset_seq(p, vin, data, err, sizeof(err)) != 0) {
        cJSON_Delete(data);
        ota_cmd_fail(c, "%s", data ? err : "out of memory");
        return;
    }
    ota_cmd_ok(c, data);
}

typedef struct {
    ota_cmd_op base;
    char vin[OTA_VIN_LEN + 1];
    char code[OTA_ID_MAX + 1];
    int64_t before;
    size_t limit;
    cJSON *data; /* made on the writer thread (plain malloc), answered on the broker's */
} list_op;

static void list_free(ota_cmd_op *base)
{
    list_op *op = (list_op *)base;
    cJSON_Delete(op->data);
    free(op);
}

static void add_i64(cJSON *o, const char *key, int64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, v);
    cJSON_AddRawToObject(o, key, num);
}

static char *hex_of(const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    for (size_t i = 0; s && i < n; i++) {
        s[2 * i] = digits[b[i] >> 4];
        s[2 * i + 1] = digits[b[i] & 15];
    }
    if (s) {
        s[2 * n] = '\0';
    }
    return s;
}

/* {id, vin, received_at, code, msg, seq?, epoch?, size, payload (hex)} */
static int add_item(void *ctx, const ota_quarantine_rec *q)
{
    cJSON *items = ctx;
    cJSON *o = cJSON_CreateObject();
    char *hex = hex_of(q->payload, q->payload_len);
    if (!o || !hex) {
        cJSON_Delete(o);
        free(hex);
        return 1;
    }
    add_i64(o, "id", q->id);
    cJSON_AddStringToObject(o, "vin", q->vin ? q->vin : "");
    add_i64(o, "received_at", q->received_ms);
    cJSON_AddStringToObject(o, "code", q->code ? q->code : "");
    cJSON_AddStringToObject(o, "msg", q->msg ? q->msg : "");
    if (q->seq >= 0) {
        add_i64(o, "seq", q->seq);
    }
    if (q->epoch) {
        cJSON_AddStringToObject(o, "epoch", q->epoch);
    }
    add_i64(o, "size", (int64_t)q->size);
    cJSON_AddStringToObject(o, "payload", hex);
    free(hex);
    cJSON_AddItemToArray(items, o);
    return 0;
}

/* Writer thread. One more row than asked tells whether a next page exists. */
static int list_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    list_op *op = (list_op *)base;
    cJSON *items = cJSON_CreateArray();
    op->data = cJSON_CreateObject();
    if (!items || !op->data) {
        cJSON_Delete(items);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cJSON_AddItemToObject(op->data, "items", items);
    int n = ota_store_list_quarantine(store, op->vin[0] ? op->vin : NULL,
                                      op->code[0] ? op->code : NULL, op->before, op->limit + 1,
                                      add_item, items);
    if (n < 0) {
        snprintf(err, errlen, "the quarantine could not be read from the store");
        return -1;
    }
    if ((size_t)n > op->limit) {
        cJSON *extra = cJSON_DetachItemFromArray(items, (int)op->limit);
        cJSON_Delete(extra);
        cJSON *last = cJSON_GetArrayItem(items, (int)op->limit - 1);
        cJSON *id = cJSON_GetObjectItemCaseSensitive(last, "id");
        if (id && id->valuestring) {
            cJSON_AddRawToObject(op->data, "next", id->valuestring);
        }
    }
    return 0;
}

static cJSON *list_apply(ota_plugin *p, ota_cmd_op *base)
{
    (void)p;
    list_op *op = (list_op *)base;
    cJSON *data = op->data;
    op->data = NULL;
    return data;
}

static int parse_list(const cJSON *cmd, list_op *op, char *err, size_t errlen)
{
    static const char *const allowed[] = {"vin", "code", "before", "limit", NULL};
    const char *vin = NULL, *code = NULL;
    uint64_t before = 0, limit = LIST_DEFAULT;
    if (ota_json_check_command_fields(cmd, "", allowed, err, errlen) != 0 ||
        ota_json_get_vin(cmd, "", "vin", false, &vin, err, errlen) != 0 ||
        ota_json_get_word(cmd, "", "code", false, &code, err, errlen) != 0 ||
        ota_json_get_uint(cmd, "", "before", false, 1, INT64_MAX, &before, err, errlen) != 0 ||
        ota_json_get_uint(cmd, "", "limit", false, 1, LIST_MAX, &limit, err, errlen) != 0) {
        return -1;
    }
    snprintf(op->vin, sizeof(op->vin), "%s", vin ? vin : "");
    snprintf(op->code, sizeof(op->code), "%s", code ? code : "");
    op->before = (int64_t)before;
    op->limit = (size_t)limit;
    return 0;
}

void ota_cmd_list_quarantine(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char err[256];
    list_op *op = calloc(1, sizeof(*op));
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    op->base.free_op = list_free;
    if (parse_list(cmd, op, err, sizeof(err)) != 0) {
        list_free(&op->base);
        ota_cmd_fail(c, "%s", err);
        return;
    }
    op->base.run = list_run;
    op->base.apply = list_apply;
    ota_cmd_store(p, c, &op->base);
}
