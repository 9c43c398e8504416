/*
 * control.c — the operator API on $CONTROL/ota/v1 (SPEC §5), in the style of Mosquitto's
 * dynamic-security plugin: a command table, one response per command, every failure
 * answered in the response (the callback always returns success: a non-zero return
 * would disconnect the operator).
 *
 * A request is {"commands":[{"command":NAME, ...}, ...]}. Requests wait in one queue and
 * their commands run one at a time: a command that stores a change (ota_cmd_store) holds
 * the queue until the writer thread has stored it and the broker thread has applied it,
 * so every command sees the effect of those before it. When all commands of a request
 * are answered, {"responses":[{"command", "error"?, "data"?, "correlationData"?}]} goes
 * to the requesting client only, on $CONTROL/ota/v1/response.
 */
#include "control.h"
#include "control_targets.h"
#include "engine.h"
#include "rxswin.h"
#include "catalog.h"
#include "file.h"
#include "follow.h"
#include "standby.h"
#include "pkg.h"
#include "ota_catalog_json.h"
#include "ota_errf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_TOPIC "$CONTROL/ota/v1/response"
#define MAX_QUEUED_REQUESTS 1000

typedef struct ctl_request {
    struct ctl_request *next;
    char *client_id;
    cJSON *request;   /* the parsed request (NULL when it did not parse) */
    const cJSON *cmd; /* the command running or next to run */
    cJSON *root;      /* the response being built */
    cJSON *responses;
    /* a native command (ota_control_enqueue) instead of JSON ones */
    const char *native_name;
    ota_native_fn native;
    void *native_arg;
    void (*free_arg)(void *);
} ctl_request;

struct ota_cmd {
    ota_plugin *p;
    ctl_request *req;
    const char *name;
    const cJSON *corr;
    bool answered;
};

struct ota_control {
    ctl_request *head, *tail;
    size_t queued;
    ota_cmd current; /* the command in flight */
    bool waiting;    /* current waits for the store */
};

typedef struct {
    ota_writer_job job;
    ota_plugin *p;
    ota_cmd_op *op;
} store_job;

static void pump(ota_plugin *p);

static const struct {
    const char *name;
    ota_command_fn fn;
} commands[] = {
    {"getStats", ota_cmd_get_stats},
    {"upsertVehicles", ota_cmd_upsert_vehicles},
    {"getVehicle", ota_cmd_get_vehicle},
    {"deleteVehicle", ota_cmd_delete_vehicle},
    {"setModel", ota_cmd_set_model},
    {"getModel", ota_cmd_get_model},
    {"addPackage", ota_cmd_add_package},
    {"setPackageStatus", ota_cmd_set_package_status},
    {"getPackage", ota_cmd_get_package},
    {"listPackages", ota_cmd_list_packages},
    {"maxVersion", ota_cmd_max_version},
    {"getVersion", ota_cmd_get_version},
    {"getFile", ota_cmd_get_file},
    {"uploadStatus", ota_cmd_upload_status},
    {"setStrategy", ota_cmd_set_strategy},
    {"bindStrategy", ota_cmd_bind_strategy},
    {"getStrategy", ota_cmd_get_strategy},
    {"addToList", ota_cmd_add_to_list},
    {"removeFromList", ota_cmd_remove_from_list},
    {"getList", ota_cmd_get_list},
    {"createTask", ota_cmd_create_task},
    {"getTask", ota_cmd_get_task},
    {"listTaskVehicles", ota_cmd_list_task_vehicles},
    {"setTaskTypeRules", ota_cmd_set_task_type_rules},
    {"getTaskTypeRules", ota_cmd_get_task_type_rules},
    {"cancelTask", ota_cmd_cancel_task},
    {"pauseTask", ota_cmd_pause_task},
    {"resumeTask", ota_cmd_resume_task},
    {"promoteWave", ota_cmd_promote_wave},
    {"approveWave", ota_cmd_approve_wave},
    {"installNow", ota_cmd_install_now},
    {"listTasks", ota_cmd_list_tasks},
    {"listVehicles", ota_cmd_list_vehicles},
    {"getVehicleStatus", ota_cmd_get_vehicle_status},
    {"getVehicleHistory", ota_cmd_get_vehicle_history},
    {"getFleetSummary", ota_cmd_get_fleet_summary},
    {"exportTask", ota_cmd_export_task},
    {"updatePackage", ota_cmd_update_package},
    {"deletePackage", ota_cmd_delete_package},
    {"setGroup", ota_cmd_set_group},
    {"deleteGroup", ota_cmd_delete_group},
    {"listGroups", ota_cmd_list_groups},
    {"getGroup", ota_cmd_get_group},
    {"previewTarget", ota_cmd_preview_target},
    {"resetVehicleSeq", ota_cmd_reset_vehicle_seq},
    {"listQuarantine", ota_cmd_list_quarantine},
};

/* ---------------------------------------------------------------- answers */

static void add_response(ota_cmd *c, const char *error, cJSON *data)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "command", c->name);
    if (error) {
        cJSON_AddStringToObject(r, "error", error);
        cJSON_Delete(data);
    } else {
        cJSON_AddItemToObject(r, "data", data ? data : cJSON_CreateObject());
    }
    if (c->corr) {
        cJSON_AddItemToObject(r, "correlationData", cJSON_Duplicate(c->corr, true));
    }
    cJSON_AddItemToArray(c->req->responses, r);
    c->answered = true;
}

void ota_cmd_ok(ota_cmd *c, cJSON *data)
{
    add_response(c, NULL, data);
}

void ota_cmd_fail(ota_cmd *c, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(text, sizeof text, fmt, ap);
    va_end(ap);
    add_response(c, text, NULL);
}

/* ---------------------------------------------------------------- storing */

static int store_job_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    store_job *j = arg;
    if (j->op->run) {
        return j->op->run(store, j->op, err, errlen);
    }
    return ota_store_apply(store, &j->op->change, err, errlen);
}

/* Broker thread: the change is stored (or not); apply it and answer, then go on. */
static void store_job_done(void *arg, int rc, const char *err)
{
    store_job *j = arg;
    ota_plugin *p = j->p;
    ota_cmd *c = &p->control->current;
    if (rc == 0) {
        ota_cmd_ok(c, j->op->apply(p, j->op));
    } else if (j->op->run) {
        ota_cmd_fail(c, "%s", err);
    } else {
        ota_cmd_fail(c, "not stored: %s", err);
    }
    j->op->free_op(j->op);
    free(j);
    p->control->waiting = false;
    pump(p);
}

void ota_cmd_store(ota_plugin *p, ota_cmd *c, ota_cmd_op *op)
{
    store_job *j = calloc(1, sizeof(*j));
    if (!j) {
        op->free_op(op);
        ota_cmd_fail(c, "out of memory");
        return;
    }
    j->job = (ota_writer_job){.run = store_job_run, .done = store_job_done, .arg = j};
    j->p = p;
    j->op = op;
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        free(j);
        op->free_op(op);
        ota_cmd_fail(c, "not stored: the plugin is stopping");
        return;
    }
    p->control->waiting = true;
}

/* ---------------------------------------------------------------- the queue */

static ota_command_fn find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return commands[i].fn;
        }
    }
    return NULL;
}

static void run_command(ota_plugin *p, ctl_request *req, const cJSON *cmd)
{
    ota_cmd *c = &p->control->current;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cmd, "command");
    *c = (ota_cmd){.p = p, .req = req, .name = "", .corr = NULL};
    c->corr = cJSON_GetObjectItemCaseSensitive(cmd, "correlationData");
    if (!cJSON_IsObject(cmd) || !cJSON_IsString(name)) {
        ota_cmd_fail(c, "command: missing or not a string");
        return;
    }
    c->name = name->valuestring;
    ota_command_fn fn = find_command(c->name);
    if (!fn) {
        ota_cmd_fail(c, "unknown command");
        return;
    }
    fn(p, c, cmd);
    if (!c->answered && !p->control->waiting) {
        ota_cmd_fail(c, "internal error: command not answered");
    }
}

static void send_response(ctl_request *req)
{
    char *text = req->client_id ? cJSON_PrintUnformatted(req->root) : NULL;
    if (text) { /* a command the plugin queued itself (no client) is answered to nobody */
        mosquitto_broker_publish_copy(req->client_id, RESPONSE_TOPIC, (int)strlen(text), text, 1,
                                      false, NULL);
        free(text);
    }
}

static void request_free(ctl_request *req)
{
    if (req->free_arg) {
        req->free_arg(req->native_arg);
    }
    cJSON_Delete(req->request);
    cJSON_Delete(req->root);
    free(req->client_id);
    free(req);
}

/* Takes the head request off the queue, answers it and frees it. */
static void finish_head(ota_control *ctl)
{
    ctl_request *req = ctl->head;
    ctl->head = req->next;
    if (!ctl->head) {
        ctl->tail = NULL;
    }
    ctl->queued--;
    send_response(req);
    request_free(req);
}

/* Runs queued commands until one waits for the store or the queue is empty. */
static void pump(ota_plugin *p)
{
    ota_control *ctl = p->control;
    while (!ctl->waiting && ctl->head) {
        ctl_request *req = ctl->head;
        if (req->native) {
            ota_native_fn fn = req->native;
            req->native = NULL; /* runs once, and owns its argument from now on */
            req->free_arg = NULL;
            ota_cmd *c = &ctl->current;
            *c = (ota_cmd){.p = p, .req = req, .name = req->native_name};
            fn(p, c, req->native_arg);
            continue;
        }
        if (!req->cmd) {
            finish_head(ctl);
            continue;
        }
        const cJSON *cmd = req->cmd;
        req->cmd = cmd->next;
        run_command(p, req, cmd);
    }
}

/* ---------------------------------------------------------------- requests */

static ctl_request *request_new(const struct mosquitto *client)
{
    ctl_request *req = calloc(1, sizeof(*req));
    if (!req) {
        return NULL;
    }
    req->client_id = client ? strdup(mosquitto_client_id(client)) : NULL;
    req->root = cJSON_CreateObject();
    req->responses = cJSON_AddArrayToObject(req->root, "responses");
    if ((client && !req->client_id) || !req->responses) {
        request_free(req);
        return NULL;
    }
    return req;
}

/* A request-level problem: one response, sent at once. */
static void answer_now(ctl_request *req, const char *error)
{
    ota_cmd c = {.req = req, .name = ""};
    add_response(&c, error, NULL);
    send_response(req);
    request_free(req);
}

static void enqueue(ota_control *ctl, ctl_request *req)
{
    if (ctl->tail) {
        ctl->tail->next = req;
    } else {
        ctl->head = req;
    }
    ctl->tail = req;
    ctl->queued++;
}

int ota_control_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_control *ed = event_data;
    ota_plugin *p = userdata;
    ctl_request *req = request_new(ed->client);
    if (!req) {
        return MOSQ_ERR_SUCCESS;
    }
    req->request = ota_json_parse_exact(ed->payload, ed->payloadlen);
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(req->request, "commands");
    if (ota_identity_of(p, ed->client).kind != OTA_ID_ADMIN) {
        answer_now(req, "not authorized");
    } else if (!req->request) {
        answer_now(req, "request is not valid JSON");
    } else if (!cJSON_IsArray(cmds)) {
        answer_now(req, "commands: missing or not an array");
    } else if (p->control->queued >= MAX_QUEUED_REQUESTS) {
        answer_now(req, "too many requests waiting: try again later");
    } else {
        req->cmd = cmds->child;
        enqueue(p->control, req);
        pump(p);
    }
    return MOSQ_ERR_SUCCESS;
}

void ota_control_enqueue(ota_plugin *p, const struct mosquitto *client, const char *name,
                         ota_native_fn fn, void *arg, void (*free_arg)(void *))
{
    ctl_request *req = request_new(client);
    if (!req) {
        free_arg(arg);
        return;
    }
    req->native_name = name;
    req->native = fn;
    req->native_arg = arg;
    req->free_arg = free_arg;
    if (p->control->queued >= MAX_QUEUED_REQUESTS) {
        answer_now(req, "too many requests waiting: try again later");
        return;
    }
    enqueue(p->control, req);
    pump(p);
}

ota_control *ota_control_new(void)
{
    return calloc(1, sizeof(ota_control));
}

void ota_control_free(ota_control *ctl)
{
    if (!ctl) {
        return;
    }
    while (ctl->head) {
        ctl_request *req = ctl->head;
        ctl->head = req->next;
        request_free(req);
    }
    free(ctl);
}

/* ---------------------------------------------------------------- getStats */

void ota_cmd_add_u64(cJSON *obj, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(obj, name, (double)v);
}

static void add_rejected(cJSON *data, const ota_counters *c)
{
    cJSON *rej = cJSON_AddObjectToObject(data, "rejected");
    for (int code = OTA_E_BAD_CBOR; code < OTA_ERR_CODE_COUNT; code++) {
        ota_cmd_add_u64(rej, ota_err_name((ota_err_code)code), c->rejected[code]);
    }
}

static void add_spool_stats(cJSON *data, ota_spool *spool)
{
    ota_spool_stats st;
    ota_spool_stats_get(spool, &st);
    cJSON *o = cJSON_AddObjectToObject(data, "spool");
    ota_cmd_add_u64(o, "appended", st.appended);
    ota_cmd_add_u64(o, "append_errors", st.append_errors);
    ota_cmd_add_u64(o, "syncs", st.syncs);
    ota_cmd_add_u64(o, "bad_records", st.bad_records);
}

static void add_writer_stats(cJSON *data, ota_writer *w)
{
    ota_writer_stats st;
    ota_writer_stats_get(w, &st);
    cJSON *o = cJSON_AddObjectToObject(data, "writer");
    ota_cmd_add_u64(o, "events_stored", st.events_stored);
    ota_cmd_add_u64(o, "duplicates", st.duplicates);
    ota_cmd_add_u64(o, "batches", st.batches);
    ota_cmd_add_u64(o, "records_skipped", st.records_skipped);
    ota_cmd_add_u64(o, "quarantined", st.quarantined);
    ota_cmd_add_u64(o, "store_errors", st.store_errors);
    ota_cmd_add_u64(o, "backlog_bytes", st.backlog_bytes);
    cJSON_AddBoolToObject(o, "results_waiting", st.results_waiting);
    cJSON_AddBoolToObject(o, "store_ok", st.store_ok);
}

static void add_catalog_stats(cJSON *data, const ota_catalog *cat)
{
    cJSON *o = cJSON_AddObjectToObject(data, "catalog");
    ota_cmd_add_u64(o, "vehicles", ota_catalog_vehicle_count(cat));
}

static void add_limit_stats(cJSON *data, const ota_plugin *p)
{
    cJSON *o = cJSON_AddObjectToObject(data, "limits");
    ota_cmd_add_u64(o, "rate_limited", p->counters.rate_limited);
    ota_cmd_add_u64(o, "vehicles_kicked", p->counters.vehicles_kicked);
    ota_cmd_add_u64(o, "oversize", p->counters.oversize);
    ota_cmd_add_u64(o, "vehicles_tracked", p->limits ? ota_limits_vehicles(p->limits) : 0);
}

void ota_cmd_get_stats(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    static const char *const allowed[] = {NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return;
    }
    const ota_counters *k = &p->counters;
    cJSON *data = cJSON_CreateObject();
    ota_cmd_add_u64(data, "reports_accepted", k->reports_accepted);
    ota_cmd_add_u64(data, "reports_spooled", k->reports_spooled);
    ota_cmd_add_u64(data, "events_accepted", k->events_accepted);
    ota_cmd_add_u64(data, "reports_rejected", k->reports_rejected);
    ota_cmd_add_u64(data, "acl_denied", k->acl_denied);
    ota_cmd_add_u64(data, "status_events", k->status_events);
    ota_cmd_add_u64(data, "reports_replayed", k->reports_replayed);
    ota_cmd_add_u64(data, "reports_unknown_vin", k->reports_unknown_vin);
    ota_cmd_add_u64(data, "reports_quarantined", k->reports_quarantined);
    ota_cmd_add_u64(data, "rejected_events", k->rejected_events);
    ota_cmd_add_u64(data, "log_lines_dropped", k->log_lines_dropped);
    add_limit_stats(data, p);
    add_rejected(data, k);
    add_spool_stats(data, p->spool);
    add_writer_stats(data, p->writer);
    ota_rxswin_stats(p, data);
    ota_follow_stats(p, data);
    ota_standby_stats(p, data);
    add_catalog_stats(data, p->catalog);
    ota_files_stats_json(p->files, data);
    ota_pkg_stats_json(p->pkg, data);
    ota_engine_stats_json(p, data);
    ota_cmd_ok(c, data);
}
