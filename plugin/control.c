/*
 * control.c — the operator API on $CONTROL/ota/v1 (SPEC §5), in the style of Mosquitto's
 * dynamic-security plugin.
 *
 * A request is {"commands":[{"command":NAME, ...}, ...]}; each command is looked up in
 * the table below and answered, in order, in {"responses":[{"command":NAME,
 * "error"?:TEXT, "data"?:{...}, "correlationData"?:...}]} on $CONTROL/ota/v1/response,
 * sent to the requesting client only. Every failure is answered in the response (the
 * callback always returns success: a non-zero return would disconnect the operator).
 */
#include "ota_plugin.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_TOPIC "$CONTROL/ota/v1/response"

/* A command handler fills data and returns 0, or writes err and returns -1. */
typedef int (*ota_command_fn)(ota_plugin *p, const cJSON *cmd, cJSON *data, char *err,
                              size_t errlen);

static int cmd_get_stats(ota_plugin *p, const cJSON *cmd, cJSON *data, char *err,
                         size_t errlen);

static const struct {
    const char *name;
    ota_command_fn fn;
} commands[] = {
    {"getStats", cmd_get_stats},
};

static void add_u64(cJSON *obj, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(obj, name, (double)v);
}

static void add_rejected(cJSON *data, const ota_counters *c)
{
    cJSON *rej = cJSON_AddObjectToObject(data, "rejected");
    for (int code = OTA_E_BAD_CBOR; code <= OTA_E_INTERNAL; code++) {
        add_u64(rej, ota_err_name((ota_err_code)code), c->rejected[code]);
    }
}

static void add_spool_stats(cJSON *data, ota_spool *spool)
{
    ota_spool_stats st;
    ota_spool_stats_get(spool, &st);
    cJSON *o = cJSON_AddObjectToObject(data, "spool");
    add_u64(o, "appended", st.appended);
    add_u64(o, "append_errors", st.append_errors);
    add_u64(o, "syncs", st.syncs);
    add_u64(o, "bad_records", st.bad_records);
}

static void add_writer_stats(cJSON *data, ota_writer *w)
{
    ota_writer_stats st;
    ota_writer_stats_get(w, &st);
    cJSON *o = cJSON_AddObjectToObject(data, "writer");
    add_u64(o, "events_stored", st.events_stored);
    add_u64(o, "duplicates", st.duplicates);
    add_u64(o, "batches", st.batches);
    add_u64(o, "records_skipped", st.records_skipped);
    add_u64(o, "store_errors", st.store_errors);
    add_u64(o, "backlog_bytes", st.backlog_bytes);
    cJSON_AddBoolToObject(o, "store_ok", st.store_ok);
}

static int cmd_get_stats(ota_plugin *p, const cJSON *cmd, cJSON *data, char *err, size_t errlen)
{
    (void)cmd, (void)err, (void)errlen;
    const ota_counters *c = &p->counters;
    add_u64(data, "reports_accepted", c->reports_accepted);
    add_u64(data, "events_accepted", c->events_accepted);
    add_u64(data, "reports_rejected", c->reports_rejected);
    add_u64(data, "acl_denied", c->acl_denied);
    add_u64(data, "status_events", c->status_events);
    add_u64(data, "log_lines_dropped", c->log_lines_dropped);
    add_rejected(data, c);
    add_spool_stats(data, p->spool);
    add_writer_stats(data, p->writer);
    return 0;
}

static ota_command_fn find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return commands[i].fn;
        }
    }
    return NULL;
}

static void add_response(cJSON *responses, const char *name, const char *error, cJSON *data,
                         const cJSON *corr)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "command", name);
    if (error) {
        cJSON_AddStringToObject(r, "error", error);
        cJSON_Delete(data);
    } else if (data) {
        cJSON_AddItemToObject(r, "data", data);
    }
    if (corr) {
        cJSON_AddItemToObject(r, "correlationData", cJSON_Duplicate(corr, true));
    }
    cJSON_AddItemToArray(responses, r);
}

static void run_command(ota_plugin *p, const cJSON *cmd, cJSON *responses)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cmd, "command");
    const cJSON *corr = cJSON_GetObjectItemCaseSensitive(cmd, "correlationData");
    if (!cJSON_IsString(name)) {
        add_response(responses, "", "command: missing or not a string", NULL, corr);
        return;
    }
    ota_command_fn fn = find_command(name->valuestring);
    if (!fn) {
        add_response(responses, name->valuestring, "unknown command", NULL, corr);
        return;
    }
    char err[256] = "";
    cJSON *data = cJSON_CreateObject();
    int rc = fn(p, cmd, data, err, sizeof(err));
    add_response(responses, name->valuestring, rc == 0 ? NULL : err, data, corr);
}

/* Parses the request and fills responses; a request-level problem is one response. */
static void run_request(ota_plugin *p, const void *payload, size_t len, cJSON *responses)
{
    cJSON *req = cJSON_ParseWithLength(payload, len);
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(req, "commands");
    if (!req) {
        add_response(responses, "", "request is not valid JSON", NULL, NULL);
    } else if (!cJSON_IsArray(cmds)) {
        add_response(responses, "", "commands: missing or not an array", NULL, NULL);
    } else {
        const cJSON *cmd;
        cJSON_ArrayForEach(cmd, cmds)
        {
            run_command(p, cmd, responses);
        }
    }
    cJSON_Delete(req);
}

static void send_response(const struct mosquitto *client, cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    if (text) {
        mosquitto_broker_publish_copy(mosquitto_client_id(client), RESPONSE_TOPIC,
                                      (int)strlen(text), text, 1, false, NULL);
        free(text);
    }
}

int ota_control_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_control *ed = event_data;
    ota_plugin *p = userdata;
    cJSON *root = cJSON_CreateObject();
    cJSON *responses = cJSON_AddArrayToObject(root, "responses");
    if (ota_identity_of(p, ed->client).kind != OTA_ID_ADMIN) {
        add_response(responses, "", "not authorized", NULL, NULL);
    } else {
        run_request(p, ed->payload, ed->payloadlen, responses);
    }
    send_response(ed->client, root);
    cJSON_Delete(root);
    return MOSQ_ERR_SUCCESS;
}
