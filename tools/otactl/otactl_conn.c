/*
 * otactl_conn.c — otactl's MQTT side: connect, send a request, wait for its responses.
 *
 * One libmosquitto client, MQTT 5 with clean start, opened on the first request: it
 * subscribes to $CONTROL/ota/v1/response (the plugin answers the requesting client only)
 * and publishes requests with QoS 1. No threads: every wait runs mosquitto_loop() in
 * slices of at most 100 ms until the awaited thing arrives or --timeout seconds pass.
 *
 * Received response messages are kept (parsed) in a queue; waiting takes from it the
 * response objects it is after: a request's responses by their correlationData, an
 * upload chunk's by their command name. A response with command "" and an error (a
 * request the plugin could not parse, or an operator it does not know) answers whatever
 * is awaited. A PUBACK with a failure reason code (the broker's ACL refused the publish)
 * ends the wait with an error.
 */
#include "otactl.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLICE_MS 100
#define KEEPALIVE_S 60
#define DEFAULT_CAPATH "/etc/ssl/certs"

typedef struct msg {
    char *text;
    cJSON *root; /* NULL when not JSON */
    struct msg *next;
} msg;

struct otactl_conn {
    struct mosquitto *mosq;
    int connack; /* -1 until CONNACK, then its reason code */
    int sub_mid;
    bool subacked;
    int refused; /* reason code of a refused PUBLISH, 0 if none */
    msg *head, **tail;
};

/* ---- callbacks ---- */

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)m, (void)flags, (void)props;
    ((otactl_ctx *)ud)->conn->connack = rc;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int qos_count, const int *granted,
                         const mosquitto_property *props)
{
    (void)m, (void)qos_count, (void)granted, (void)props;
    otactl_conn *c = ((otactl_ctx *)ud)->conn;
    if (mid == c->sub_mid) {
        c->subacked = true; /* refused or not: the plugin answers us directly anyway */
    }
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
    (void)m, (void)mid, (void)props;
    if (reason >= 0x80) {
        ((otactl_ctx *)ud)->conn->refused = reason;
    }
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *mm,
                       const mosquitto_property *props)
{
    (void)m, (void)props;
    otactl_conn *c = ((otactl_ctx *)ud)->conn;
    if (strcmp(mm->topic, OTACTL_TOPIC_RESPONSE) != 0) {
        return;
    }
    msg *e = calloc(1, sizeof(*e));
    if (!e || !(e->text = strndup(mm->payload ? mm->payload : "", (size_t)mm->payloadlen))) {
        free(e);
        return;
    }
    e->root = cJSON_Parse(e->text);
    *c->tail = e;
    c->tail = &e->next;
}

/* ---- waiting ---- */

static int conn_error(const otactl_ctx *ctx, const char *what, int rc)
{
    fprintf(stderr, "Error: %s %s:%d: %s\n", what, ctx->host, ctx->port,
            rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    return OTACTL_ECONN;
}

/* The connection ended before it was accepted: say why in words an operator acts on.
 * Mosquitto 2.0.11 answers a refused login (wrong user or password) with a CONNACK whose
 * reason libmosquitto reports as a protocol error, so a close while connecting is a login
 * refusal unless the CONNACK said something else. */
static int login_error(const otactl_ctx *ctx, int rc)
{
    otactl_conn *c = ctx->conn;
    if (c->connack > 0 && c->connack != MQTT_RC_NOT_AUTHORIZED &&
        c->connack != MQTT_RC_BAD_USERNAME_OR_PASSWORD) {
        fprintf(stderr, "Error: connection refused by %s:%d: %s\n", ctx->host, ctx->port,
                mosquitto_reason_string(c->connack));
    } else if (rc == MOSQ_ERR_PROTOCOL || rc == MOSQ_ERR_CONN_REFUSED || c->connack > 0 ||
               rc == MOSQ_ERR_CONN_LOST) {
        fprintf(stderr,
                "Error: %s:%d: not authorised: the broker refused the login of user %s "
                "(check --user and the password: -P, --password-file or OTACTL_PASSWORD)\n",
                ctx->host, ctx->port, ctx->user ? ctx->user : "(none)");
    } else {
        return conn_error(ctx, "connection lost to", rc);
    }
    return OTACTL_ECONN;
}

/* One slice of network work. Returns OTACTL_OK, or an error (printed) when the connection
 * is gone, a publish was refused or deadline passed. */
static int pump(otactl_ctx *ctx, double deadline, const char *waiting_for)
{
    otactl_conn *c = ctx->conn;
    double left = deadline - otactl_now_s();
    if (left <= 0) {
        fprintf(stderr, "Error: %s: no %s from %s:%d within %d s\n",
                ctx->cmd_name ? ctx->cmd_name : "otactl", waiting_for, ctx->host, ctx->port,
                ctx->timeout_s);
        return OTACTL_ECONN;
    }
    int ms = left * 1000 < SLICE_MS ? (int)(left * 1000) + 1 : SLICE_MS;
    int rc = mosquitto_loop(c->mosq, ms, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        return c->connack != 0 ? login_error(ctx, rc) : conn_error(ctx, "connection lost to", rc);
    }
    if (c->refused) {
        fprintf(stderr, "Error: %s: the broker refused the request: %s (reason 0x%02x)\n",
                ctx->cmd_name ? ctx->cmd_name : "otactl", mosquitto_reason_string(c->refused),
                (unsigned)c->refused);
        c->refused = 0;
        return OTACTL_ECMD;
    }
    return OTACTL_OK;
}

static void set_tls(otactl_ctx *ctx, struct mosquitto *m, int *rc)
{
    if (!ctx->tls) {
        return;
    }
    if (!ctx->cafile) {
        mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    }
    if (ctx->cafile || ctx->cert) {
        *rc = mosquitto_tls_set(m, ctx->cafile, ctx->cafile ? NULL : DEFAULT_CAPATH, ctx->cert,
                                ctx->key, NULL);
    }
    if (*rc == MOSQ_ERR_SUCCESS && ctx->insecure) {
        *rc = mosquitto_tls_insecure_set(m, true);
    }
}

static struct mosquitto *new_client(otactl_ctx *ctx)
{
    char id[64];
    snprintf(id, sizeof(id), "otactl-%ld-%lx", (long)getpid(), (unsigned long)time(NULL));
    struct mosquitto *m = mosquitto_new(id, true, ctx);
    if (!m) {
        return NULL;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_subscribe_v5_callback_set(m, on_subscribe);
    mosquitto_publish_v5_callback_set(m, on_publish);
    mosquitto_message_v5_callback_set(m, on_message);
    return m;
}

/* The credentials: -u / -P, else --password-file, else OTACTL_USER / OTACTL_PASSWORD
 * (so that a password need not show in ps). OTACTL_OK, or OTACTL_EUSAGE (printed). */
static int resolve_credentials(otactl_ctx *ctx)
{
    if (!ctx->user && getenv("OTACTL_USER")) {
        ctx->user = getenv("OTACTL_USER");
    }
    if (!ctx->password && ctx->password_file) {
        size_t len = 0;
        char *text = otactl_read_file(ctx->password_file, &len);
        if (!text) {
            fprintf(stderr, "Error: --password-file %s: %s\n", ctx->password_file, strerror(errno));
            return OTACTL_EUSAGE;
        }
        text[strcspn(text, "\r\n")] = '\0'; /* the first line */
        ctx->password = ctx->password_buf = text;
    }
    if (!ctx->password && getenv("OTACTL_PASSWORD")) {
        ctx->password = getenv("OTACTL_PASSWORD");
    }
    return OTACTL_OK;
}

static int conn_setup(otactl_ctx *ctx, struct mosquitto *m)
{
    int rc = MOSQ_ERR_SUCCESS;
    if (resolve_credentials(ctx) != OTACTL_OK) {
        return OTACTL_EUSAGE;
    }
    if (ctx->user || ctx->password) {
        rc = mosquitto_username_pw_set(m, ctx->user, ctx->password);
    }
    if (rc == MOSQ_ERR_SUCCESS) {
        set_tls(ctx, m, &rc);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "Error: TLS / credentials: %s\n", mosquitto_strerror(rc));
        return OTACTL_EUSAGE;
    }
    return OTACTL_OK;
}

static int conn_open(otactl_ctx *ctx)
{
    mosquitto_lib_init();
    otactl_conn *c = ctx->conn = calloc(1, sizeof(*c));
    if (!c) {
        return OTACTL_ECONN;
    }
    c->tail = &c->head;
    c->connack = -1;
    if (!ctx->port) {
        ctx->port = ctx->tls ? 8883 : 1883;
    }
    c->mosq = new_client(ctx);
    if (!c->mosq) {
        return conn_error(ctx, "cannot create a client for", MOSQ_ERR_NOMEM);
    }
    int rc = conn_setup(ctx, c->mosq);
    if (rc != OTACTL_OK) {
        return rc;
    }
    rc = mosquitto_connect_bind_v5(c->mosq, ctx->host, ctx->port, KEEPALIVE_S, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        return conn_error(ctx, "cannot connect to", rc);
    }
    double deadline = otactl_now_s() + ctx->timeout_s;
    while (c->connack < 0) {
        if ((rc = pump(ctx, deadline, "CONNACK")) != OTACTL_OK) {
            return rc;
        }
    }
    if (c->connack != 0) {
        fprintf(stderr, "Error: connection refused by %s:%d: %s\n", ctx->host, ctx->port,
                mosquitto_reason_string(c->connack));
        return OTACTL_ECONN;
    }
    mosquitto_subscribe_v5(c->mosq, &c->sub_mid, OTACTL_TOPIC_RESPONSE, 1, 0, NULL);
    while (!c->subacked) {
        if ((rc = pump(ctx, deadline, "SUBACK")) != OTACTL_OK) {
            return rc;
        }
    }
    return OTACTL_OK;
}

static int ensure_conn(otactl_ctx *ctx)
{
    if (ctx->conn) {
        return ctx->conn->connack == 0 && ctx->conn->subacked ? OTACTL_OK : OTACTL_ECONN;
    }
    return conn_open(ctx);
}

static void msg_free(msg *e)
{
    cJSON_Delete(e->root);
    free(e->text);
    free(e);
}

void otactl_conn_close(otactl_ctx *ctx)
{
    otactl_conn *c = ctx->conn;
    free(ctx->password_buf);
    ctx->password_buf = NULL;
    if (!c) {
        return;
    }
    if (c->mosq) {
        if (c->connack == 0) {
            mosquitto_disconnect_v5(c->mosq, 0, NULL);
            mosquitto_loop(c->mosq, 10, 1);
        }
        mosquitto_destroy(c->mosq);
    }
    while (c->head) {
        msg *e = c->head;
        c->head = e->next;
        msg_free(e);
    }
    free(c);
    ctx->conn = NULL;
    mosquitto_lib_cleanup();
}

int otactl_publish(otactl_ctx *ctx, const char *topic, const void *data, size_t len)
{
    int rc = ensure_conn(ctx);
    if (rc != OTACTL_OK) {
        return rc;
    }
    rc = mosquitto_publish_v5(ctx->conn->mosq, NULL, topic, (int)len, data, 1, false, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        return conn_error(ctx, "cannot publish to", rc);
    }
    return OTACTL_OK;
}

/* ---- taking responses from the queue ---- */

typedef bool (*match_fn)(const cJSON *resp, void *arg);

static bool is_request_error(const cJSON *r)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "command");
    return cJSON_IsString(name) && name->valuestring[0] == '\0' &&
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "error")) &&
           !cJSON_GetObjectItemCaseSensitive(r, "correlationData");
}

/* Detaches the first queued response object that match accepts; drops used-up messages. */
static cJSON *take(otactl_conn *c, match_fn match, void *arg)
{
    cJSON *found = NULL;
    for (msg *e = c->head; e && !found; e = e->next) {
        cJSON *rs = cJSON_GetObjectItemCaseSensitive(e->root, "responses");
        cJSON *r;
        cJSON_ArrayForEach(r, rs)
        {
            if (match(r, arg)) {
                found = cJSON_DetachItemViaPointer(rs, r);
                break;
            }
        }
    }
    while (c->head && cJSON_GetArraySize(cJSON_GetObjectItem(c->head->root, "responses")) == 0) {
        msg *e = c->head;
        if (!(c->head = e->next)) {
            c->tail = &c->head;
        }
        msg_free(e);
    }
    return found;
}

typedef struct {
    int n;
    char **corr;
    cJSON **got;
} pending;

static bool match_corr(const cJSON *r, void *arg)
{
    pending *p = arg;
    const cJSON *corr = cJSON_GetObjectItemCaseSensitive(r, "correlationData");
    if (is_request_error(r)) {
        return true;
    }
    for (int i = 0; cJSON_IsString(corr) && i < p->n; i++) {
        if (!p->got[i] && !strcmp(p->corr[i], corr->valuestring)) {
            return true;
        }
    }
    return false;
}

/* Files r under its command(s); returns how many commands it answered. */
static int file_response(pending *p, cJSON *r)
{
    const cJSON *corr = cJSON_GetObjectItemCaseSensitive(r, "correlationData");
    int answered = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->got[i]) {
            continue;
        }
        if (!corr) {
            p->got[i] = cJSON_Duplicate(r, true);
            answered++;
        } else if (!strcmp(p->corr[i], corr->valuestring)) {
            p->got[i] = cJSON_Duplicate(r, true);
            answered++;
            break;
        }
    }
    cJSON_Delete(r);
    return answered;
}

static int collect(otactl_ctx *ctx, pending *p)
{
    double deadline = otactl_now_s() + ctx->timeout_s;
    int left = p->n;
    while (left > 0) {
        cJSON *r = take(ctx->conn, match_corr, p);
        if (r) {
            left -= file_response(p, r);
            continue;
        }
        int rc = pump(ctx, deadline, "response");
        if (rc != OTACTL_OK) {
            return rc;
        }
    }
    return OTACTL_OK;
}

static char *request_text(otactl_ctx *ctx, cJSON *commands, pending *p)
{
    cJSON *cmd;
    int i = 0;
    cJSON_ArrayForEach(cmd, commands)
    {
        cJSON *corr = cJSON_GetObjectItemCaseSensitive(cmd, "correlationData");
        if (!cJSON_IsString(corr)) {
            char buf[32];
            snprintf(buf, sizeof(buf), "otactl-%lu", ++ctx->next_corr);
            cJSON_DeleteItemFromObjectCaseSensitive(cmd, "correlationData");
            corr = cJSON_AddStringToObject(cmd, "correlationData", buf);
        }
        p->corr[i++] = corr->valuestring;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "commands", commands);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    return text;
}

static int send_and_collect(otactl_ctx *ctx, const char *text, pending *p)
{
    int rc = otactl_publish(ctx, OTACTL_TOPIC_REQUEST, text, strlen(text));
    return rc == OTACTL_OK ? collect(ctx, p) : rc;
}

int otactl_request(otactl_ctx *ctx, cJSON *commands, cJSON **responses)
{
    *responses = NULL;
    pending p = {.n = cJSON_GetArraySize(commands)};
    p.corr = calloc((size_t)p.n + 1, sizeof(char *));
    p.got = calloc((size_t)p.n + 1, sizeof(cJSON *));
    char *text = p.corr && p.got ? request_text(ctx, commands, &p) : NULL;
    int rc = OTACTL_OK;
    if (!text) {
        fprintf(stderr, "Error: out of memory\n");
        rc = OTACTL_ECONN;
    } else if (ctx->dry_run) {
        puts(text);
    } else if ((rc = send_and_collect(ctx, text, &p)) == OTACTL_OK) {
        *responses = cJSON_CreateArray();
        for (int i = 0; i < p.n; i++) {
            cJSON_AddItemToArray(*responses, p.got[i]);
            p.got[i] = NULL;
        }
    }
    for (int i = 0; i < p.n; i++) {
        cJSON_Delete(p.got[i]);
    }
    free(text);
    free(p.corr);
    free(p.got);
    return rc;
}

static bool match_name(const cJSON *r, void *arg)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "command");
    return is_request_error(r) || (cJSON_IsString(name) && !strcmp(name->valuestring, arg));
}

int otactl_wait_response(otactl_ctx *ctx, const char *name, cJSON **resp)
{
    double deadline = otactl_now_s() + ctx->timeout_s;
    int rc = ensure_conn(ctx);
    while (rc == OTACTL_OK && !(*resp = take(ctx->conn, match_name, (void *)name))) {
        rc = pump(ctx, deadline, "response");
    }
    return rc;
}

int otactl_request_raw(otactl_ctx *ctx, const char *payload, char **text)
{
    *text = NULL;
    if (ctx->dry_run) {
        puts(payload);
        return OTACTL_OK;
    }
    int rc = otactl_publish(ctx, OTACTL_TOPIC_REQUEST, payload, strlen(payload));
    double deadline = otactl_now_s() + ctx->timeout_s;
    while (rc == OTACTL_OK && !ctx->conn->head) {
        rc = pump(ctx, deadline, "response");
    }
    if (rc == OTACTL_OK) {
        msg *e = ctx->conn->head;
        if (!(ctx->conn->head = e->next)) {
            ctx->conn->tail = &ctx->conn->head;
        }
        *text = e->text;
        e->text = NULL;
        msg_free(e);
    }
    return rc;
}

int otactl_request_one(otactl_ctx *ctx, cJSON *cmd, cJSON **resp)
{
    cJSON *commands = cJSON_CreateArray();
    cJSON_AddItemToArray(commands, cmd);
    cJSON *responses = NULL;
    int rc = otactl_request(ctx, commands, &responses);
    *resp = responses ? cJSON_DetachItemFromArray(responses, 0) : NULL;
    cJSON_Delete(responses);
    cJSON_Delete(commands);
    return rc;
}
