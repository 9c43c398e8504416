/*
 * agent.c — ota-agent's core: the MQTT connection (libmosquitto's thread only records
 * what arrives and which PUBACKs came; everything else runs on the agent's thread), the
 * task notice (shadow/delta), pkg/get and the checks of the signed description (COSE
 * signature EdDSA or ES256, vin, exp, ctr above the last accepted one, req, task and
 * target), the content key unwrapped, and the job's steps:
 *
 *   desc -> download (agent_dl.c) -> install -> check | rollback (agent_install.c) -> final
 *
 * Each step change is committed to the state file before it is acted on, so a restart
 * (or kill -9) goes on from the step it was in.
 */
#include "agent_int.h"

#include <cbor.h>
#include <errno.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 3000

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void agent_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "ota-agent: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int64_t agent_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int agent_publish(agent *a, const char *kind, const uint8_t *payload, size_t n, int *mid)
{
    char topic[160];
    int rc;

    snprintf(topic, sizeof topic, "%s%s", a->prefix, kind);
    rc = mosquitto_publish(a->mosq, mid, topic, (int)n, payload, 1, false);
    if (rc != MOSQ_ERR_SUCCESS)
        agent_log("publish %s: %s", kind, mosquitto_strerror(rc));
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

/* ---- libmosquitto's thread ---- */

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    agent *a = arg;
    char filter[128];

    if (rc != 0) {
        agent_log("connection refused: %s", mosquitto_connack_string(rc));
        return;
    }
    snprintf(filter, sizeof filter, "%s#", a->prefix);
    mosquitto_subscribe(m, NULL, filter, 1);
    pthread_mutex_lock(&a->mu);
    a->connected = a->reconnected = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
    agent *a = arg;
    (void)m;

    pthread_mutex_lock(&a->mu);
    a->connected = false;
    pthread_mutex_unlock(&a->mu);
    if (rc != 0)
        agent_log("connection lost; reconnecting");
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
    agent *a = arg;
    (void)m;

    pthread_mutex_lock(&a->mu);
    if (a->n_acked < AGENT_ACKS_MAX)
        a->acked[a->n_acked++] = mid;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    agent *a = arg;
    size_t pre = strlen(a->prefix);
    agent_msg *q;
    (void)m;

    if (strncmp(msg->topic, a->prefix, pre) != 0 || strlen(msg->topic + pre) >= sizeof q->kind ||
        (q = calloc(1, sizeof *q)) == NULL)
        return;
    snprintf(q->kind, sizeof q->kind, "%s", msg->topic + pre);
    q->len = (size_t)msg->payloadlen;
    q->data = malloc(q->len ? q->len : 1);
    if (q->data == NULL) {
        free(q);
        return;
    }
    memcpy(q->data, msg->payload, q->len);
    pthread_mutex_lock(&a->mu);
    *a->inbox_tail = q;
    a->inbox_tail = &q->next;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* ---- the job ---- */

void agent_set_step(agent *a, const char *step)
{
    snprintf(a->job.step, sizeof a->job.step, "%s", step);
    if (st_job_save(a->db, &a->job) != 0)
        agent_log("state: cannot save the step %s", step);
}

void agent_fail(agent *a, const char *error)
{
    snprintf(a->job.status, sizeof a->job.status, "failed");
    snprintf(a->job.error, sizeof a->job.error, "%s", error);
    agent_set_step(a, "final");
}

/* The request id check, in one place: a description that carries `req` (in its payload,
 * or in the unprotected header of a pre-signed one) must carry ours; one without it is
 * bound to this vehicle and request by vin, task, target and a counter above the last. */
bool agent_desc_req_ok(const vc_desc *d, uint64_t sent_req)
{
    return !d->has_req || d->req == sent_req;
}

static bool text_eq(cbor_item_t *v, char *out, size_t cap)
{
    if (v == NULL || !cbor_isa_string(v) || !cbor_string_is_definite(v) ||
        cbor_string_length(v) == 0 || cbor_string_length(v) >= cap)
        return false;
    memcpy(out, cbor_string_handle(v), cbor_string_length(v));
    out[cbor_string_length(v)] = '\0';
    return true;
}

static void send_shadow(agent *a, const char *state)
{
    uint8_t buf[1024];
    size_t n = agent_shadow_payload(a, buf, sizeof buf, state);

    if (n)
        agent_publish(a, "shadow/update", buf, n, NULL);
}

static void new_job(agent *a, cbor_item_t *task)
{
    agent_job j = {0};

    if (!text_eq(vc_cbor_get(task, "task"), j.task, sizeof j.task) ||
        !text_eq(vc_cbor_get(task, "version"), j.version, sizeof j.version))
        return;
    if (!text_eq(vc_cbor_get(task, "upgrade_type"), j.trigger, sizeof j.trigger))
        snprintf(j.trigger, sizeof j.trigger, "normal");
    if (a->job.active && strcmp(a->job.task, j.task) == 0) {
        cbor_item_t *now = vc_cbor_get(task, "install_now");
        if (now && cbor_isa_float_ctrl(now) && cbor_get_bool(now))
            agent_gate_notice(a, NULL, 0, true); /* download_only: installNow came */
    }
    if (a->job.active || st_task_done(a->db, j.task))
        return; /* the task in hand, or one done: a re-delivered notice */
    j.active = true;
    char mode[32] = "forced";
    text_eq(vc_cbor_get(task, "install_mode"), mode, sizeof mode);
    cbor_item_t *dl = vc_cbor_get(task, "install_deadline");
    agent_gate_notice(a, mode, dl && cbor_isa_uint(dl) ? (int64_t)cbor_get_int(dl) : 0, false);
    snprintf(j.step, sizeof j.step, "desc");
    st_ecus_clear(a->db);
    a->job = j;
    agent_log("task %s: notice, version %s (%s)", j.task, j.version, j.trigger);
    agent_set_step(a, "desc");
    a->req_sent_ms = 0;
}

static void on_delta(agent *a, const uint8_t *p, size_t n)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(p, n, &res);
    cbor_item_t *desired = vc_cbor_get(root, "desired");
    cbor_item_t *task = vc_cbor_get(desired, "task"), *cancel = vc_cbor_get(desired, "cancel");
    char id[VC_ID_MAX + 1];

    if (task && cbor_isa_map(task))
        new_job(a, task);
    else if (a->job.active && text_eq(cancel, id, sizeof id) && strcmp(id, a->job.task) == 0 &&
             (strcmp(a->job.step, "desc") == 0 || strcmp(a->job.step, "download") == 0 ||
              strcmp(a->job.step, "gate") == 0)) {
        snprintf(a->job.status, sizeof a->job.status, "canceled");
        a->job.error[0] = '\0';
        agent_set_step(a, "final");
    }
    if (root)
        cbor_decref(&root);
}

static int load_vehicle_key(agent *a)
{
    FILE *fp;
    char hex[80] = "";

    if (a->cfg->vehicle_key == NULL)
        return 0;
    fp = fopen(a->cfg->vehicle_key, "r");
    if (fp == NULL || fgets(hex, sizeof hex, fp) == NULL) {
        if (fp)
            fclose(fp);
        return -1;
    }
    fclose(fp);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        a->vkey[i] = (uint8_t)v;
    }
    a->has_vkey = true;
    return 0;
}

/* A refusal {req?, err, msg}: the job fails unless it is worth asking again. */
static void on_desc_refused(agent *a, cbor_item_t *m)
{
    char err[64] = "?", msg[256] = "";
    cbor_item_t *req = vc_cbor_get(m, "req");

    if (req && cbor_isa_uint(req) && cbor_get_int(req) != a->job.req)
        return; /* an answer to an older request */
    text_eq(vc_cbor_get(m, "err"), err, sizeof err);
    text_eq(vc_cbor_get(m, "msg"), msg, sizeof msg);
    agent_log("task %s: pkg/get refused: %s %s", a->job.task, err, msg);
    if (strcmp(err, "E_RATE_LIMITED") != 0 && strcmp(err, "E_INTERNAL") != 0)
        agent_fail(a, "download_failed");
}

/* The digest of the last accepted description, kept as hex under "last_digest" so an
 * agent restarted mid-job accepts the plugin's answer to its retried pkg/get (the same
 * signed bytes, equal ctr). Returns false when none is kept (or it is malformed). */
static bool last_digest_load(sqlite3 *db, uint8_t out[32])
{
    char hex[65];

    st_kv_text(db, "last_digest", hex, sizeof hex, "");
    if (strlen(hex) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return false;
        out[i] = (uint8_t)b;
    }
    return true;
}

static void last_digest_save(sqlite3 *db, const uint8_t d[32])
{
    char hex[65];

    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    st_kv_set_text(db, "last_digest", hex);
}

static void accept_desc(agent *a, const uint8_t *p, size_t n)
{
    uint64_t last = st_kv_u64(a->db, "last_ctr", 0);
    uint8_t dg[32];
    bool has_dg = last_digest_load(a->db, dg);
    vc_verdict v = vc_desc_check_retry(&a->desc, a->cfg->vin, agent_now_ms(), last,
                                       has_dg ? dg : NULL);

    if (v == VC_DESC_OK &&
        (strcmp(a->desc.task, a->job.task) != 0 || strcmp(a->desc.to, a->job.version) != 0))
        v = VC_DESC_WRONG_TASK;
    if (v == VC_DESC_OK && !agent_desc_req_ok(&a->desc, a->job.req))
        return; /* the answer to an older request: ours is still coming */
    if (v != VC_DESC_OK) {
        agent_log("task %s: description refused: %s", a->job.task, vc_verdict_name(v));
        return agent_fail(a, "download_failed");
    }
    if (a->desc.has_key &&
        (!a->has_vkey || vc_unwrap(&a->desc, a->vkey, a->cfg->vin, a->job.ckey) != 0)) {
        agent_log("task %s: the content key does not open for this vehicle", a->job.task);
        return agent_fail(a, "download_failed");
    }
    a->job.has_ckey = a->desc.has_key;
    free(a->job.cose);
    a->job.cose = malloc(n);
    if (a->job.cose == NULL)
        return;
    memcpy(a->job.cose, p, n);
    a->job.cose_len = n;
    st_begin(a->db);
    st_kv_set_u64(a->db, "last_ctr", a->desc.ctr);
    last_digest_save(a->db, a->desc.digest);
    snprintf(a->job.step, sizeof a->job.step, "download");
    st_job_save(a->db, &a->job);
    st_commit(a->db);
    agent_log("task %s: description %llu verified, %u ECUs%s", a->job.task,
              (unsigned long long)a->desc.ctr, a->desc.n_ecus,
              a->job.has_ckey ? ", encrypted" : "");
    agent_gate_texts(a); /* the user information, in the driver's language (issue 17) */
    agent_ev_status(a, "downloading", NULL, NULL);
}

static void on_desc(agent *a, const uint8_t *p, size_t n)
{
    vc_verdict v;
    struct cbor_load_result res;
    cbor_item_t *m;

    if (!a->job.active || strcmp(a->job.step, "desc") != 0)
        return;
    if (n > 0 && p[0] >= 0xA0 && p[0] <= 0xBF) { /* a map: a refusal */
        if ((m = cbor_load(p, n, &res)) != NULL) {
            on_desc_refused(a, m);
            cbor_decref(&m);
        }
        return;
    }
    v = vc_desc_verify(&a->pub, p, n, &a->desc);
    if (v != VC_DESC_OK) {
        agent_log("task %s: description refused: %s", a->job.task, vc_verdict_name(v));
        return agent_fail(a, "download_failed");
    }
    accept_desc(a, p, n);
}

static void send_pkg_get(agent *a)
{
    uint8_t buf[256];
    size_t n;

    if (a->req_sent_ms && agent_now_ms() - a->req_sent_ms < a->cfg->request_timeout_ms)
        return;
    st_begin(a->db); /* never the same req twice, even across restarts */
    a->job.req = st_kv_u64(a->db, "next_req", 1);
    st_kv_set_u64(a->db, "next_req", a->job.req + 1);
    st_job_save(a->db, &a->job);
    st_commit(a->db);
    n = agent_pkg_get_payload(a, buf, sizeof buf);
    if (n && agent_publish(a, "pkg/get", buf, n, NULL) == 0)
        a->req_sent_ms = agent_now_ms();
}

/* The job's downloads are no longer needed once it ended (seed 001: clean up). */
static void remove_files(agent *a)
{
    char path[1024];

    for (uint32_t i = 0; a->job.cose_len && i < a->desc.n_ecus; i++) {
        agent_file_path(a, a->desc.ecus[i].sha_hex, "part", path, sizeof path);
        unlink(path);
        agent_file_path(a, a->desc.ecus[i].sha_hex, "img", path, sizeof path);
        unlink(path);
    }
}

/* The final step: the status event, the firmware on success, the job gone. */
static void finish(agent *a)
{
    bool ok = strcmp(a->job.status, "succeeded") == 0;

    agent_ev_status(a, a->job.status, a->job.error[0] ? a->job.error : NULL,
                    ok ? a->job.version : NULL);
    if (ok)
        st_kv_set_text(a->db, "fw", a->job.version);
    st_job_end(a->db, a->job.task);
    a->job.active = false;
    agent_dl_close(a);
    remove_files(a);
    a->finished = true;
    a->exit_code = ok ? 0 : 1;
    a->want_shadow = true;
}

static void step(agent *a)
{
    bool up;

    pthread_mutex_lock(&a->mu);
    up = a->connected;
    pthread_mutex_unlock(&a->mu);
    if (!a->job.active)
        return;
    if (strcmp(a->job.step, "desc") == 0 && up)
        send_pkg_get(a);
    if (strcmp(a->job.step, "download") == 0) {
        int rc = agent_dl_step(a);
        if (rc < 0)
            agent_fail(a, "download_failed");
        else if (rc == 1) {
            agent_ev_status(a, "downloaded", NULL, NULL);
            agent_set_step(a, "gate");
        }
    }
    if (strcmp(a->job.step, "gate") == 0 && agent_gate_step(a) == 1) {
        agent_ev_status(a, "upgrading", NULL, NULL);
        agent_set_step(a, "install");
    }
    if (strcmp(a->job.step, "install") == 0 || strcmp(a->job.step, "check") == 0 ||
        strcmp(a->job.step, "rollback") == 0)
        agent_install_step(a);
    if (strcmp(a->job.step, "final") == 0)
        finish(a);
}

/* Restores the job after a restart: the accepted description is checked again, and one
 * interrupted in its download asks for its description again. */
static int restore(agent *a)
{
    vc_verdict v;

    if (st_job_load(a->db, &a->job) != 0)
        return -1;
    if (!a->job.active)
        return 0;
    agent_log("task %s: resuming at step %s", a->job.task, a->job.step);
    if (a->job.cose_len) {
        v = vc_desc_verify(&a->pub, a->job.cose, a->job.cose_len, &a->desc);
        if (v != VC_DESC_OK) {
            agent_log("task %s: the stored description does not verify: %s", a->job.task,
                      vc_verdict_name(v));
            agent_fail(a, "download_failed");
        } else if (strcmp(a->job.step, "download") == 0) {
            /* ask again: the plugin answers the description it holds for us, the same
             * signed bytes (equal ctr, accepted as a retry) or, when that one went stale
             * while we were down, a newer one; the files already here are kept */
            agent_log("task %s: asking for the description again", a->job.task);
            agent_set_step(a, "desc");
        }
    } else if (strcmp(a->job.step, "desc") != 0 && strcmp(a->job.step, "final") != 0) {
        agent_set_step(a, "desc");
    }
    return 0;
}

/* Takes the inbox and handles every message. */
static void drain(agent *a)
{
    agent_msg *q, *next;
    bool reconnected;

    pthread_mutex_lock(&a->mu);
    q = a->inbox;
    a->inbox = NULL;
    a->inbox_tail = &a->inbox;
    reconnected = a->reconnected;
    a->reconnected = false;
    pthread_mutex_unlock(&a->mu);
    if (reconnected) {
        a->sent_upto = 0; /* re-send every report still queued, with its seq */
        a->n_mids = 0;
        a->req_sent_ms = 0;
        agent_dl_reset(a);
        a->want_shadow = true;
    }
    for (; q; q = next) {
        next = q->next;
        if (strcmp(q->kind, "shadow/delta") == 0)
            on_delta(a, q->data, q->len);
        else if (strcmp(q->kind, "pkg/desc") == 0)
            on_desc(a, q->data, q->len);
        else if (strcmp(q->kind, "file/data") == 0 && a->job.active &&
                 strcmp(a->job.step, "download") == 0)
            agent_dl_block(a, q->data, q->len);
        else if (strcmp(q->kind, "error") == 0)
            agent_log("the server refused a request (error topic, %zu bytes)", q->len);
        free(q->data);
        free(q);
    }
}

static void wait_inbox(agent *a, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_mutex_lock(&a->mu);
    if (a->inbox == NULL && !a->reconnected && a->n_acked == 0)
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    pthread_mutex_unlock(&a->mu);
}

static int connect_mqtt(agent *a)
{
    const agent_config *c = a->cfg;
    int rc;

    a->mosq = mosquitto_new(c->vin, true, a);
    if (a->mosq == NULL)
        return -1;
    mosquitto_username_pw_set(a->mosq, c->vin, NULL);
    mosquitto_connect_callback_set(a->mosq, on_connect);
    mosquitto_disconnect_callback_set(a->mosq, on_disconnect);
    mosquitto_publish_callback_set(a->mosq, on_publish);
    mosquitto_message_callback_set(a->mosq, on_message);
    mosquitto_reconnect_delay_set(a->mosq, 1, 5, false);
    mosquitto_max_inflight_messages_set(a->mosq, 64);
    if (c->cafile && (rc = mosquitto_tls_set(a->mosq, c->cafile, NULL, c->certfile, c->keyfile,
                                             NULL)) != MOSQ_ERR_SUCCESS) {
        agent_log("TLS: %s", mosquitto_strerror(rc));
        return -1;
    }
    rc = mosquitto_connect_async(a->mosq, c->host, c->port, 30);
    if (rc != MOSQ_ERR_SUCCESS)
        agent_log("connect %s:%d: %s (retrying)", c->host, c->port, mosquitto_strerror(rc));
    return mosquitto_loop_start(a->mosq) == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static int setup(agent *a, const agent_config *cfg)
{
    char dir[1024];

    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->dl.idx = UINT32_MAX;
    a->inbox_tail = &a->inbox;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    snprintf(a->prefix, sizeof a->prefix, "ota/v1/%s/", cfg->vin);
    snprintf(dir, sizeof dir, "%s/files", cfg->state_dir);
    mkdir(cfg->state_dir, 0700);
    mkdir(dir, 0700);
    if (vc_load_pub(cfg->server_pub, &a->pub) != 0) {
        agent_log("cannot read the server's public key %s", cfg->server_pub);
        return -1;
    }
    if (load_vehicle_key(a) != 0) {
        agent_log("cannot read the vehicle key %s", cfg->vehicle_key);
        return -1;
    }
    return st_open(&a->db, cfg->state_dir) == 0 && restore(a) == 0 ? 0 : -1;
}

static void teardown(agent *a)
{
    agent_msg *q, *next;

    if (a->mosq) {
        mosquitto_disconnect(a->mosq);
        mosquitto_loop_stop(a->mosq, false);
        mosquitto_destroy(a->mosq);
    }
    for (q = a->inbox; q; q = next) {
        next = q->next;
        free(q->data);
        free(q);
    }
    agent_dl_close(a);
    free(a->job.cose);
    sqlite3_close(a->db);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

int agent_run(const agent_config *cfg)
{
    static agent a;
    int rc = 1;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    if (setup(&a, cfg) == 0 && connect_mqtt(&a) == 0) {
        agent_log("VIN %s, state in %s, %u ECUs", cfg->vin, cfg->state_dir, cfg->n_ecus);
        while (!stop_flag) {
            wait_inbox(&a, 50);
            drain(&a);
            pthread_mutex_lock(&a.mu);
            bool up = a.connected;
            pthread_mutex_unlock(&a.mu);
            if (a.want_shadow && up) {
                a.want_shadow = false;
                send_shadow(&a, a.job.active ? "upgrading" : "idle");
            }
            step(&a);
            agent_reports_pump(&a);
            if (cfg->once && a.finished && st_report_count(a.db) == 0)
                break;
        }
        rc = a.finished ? a.exit_code : 0;
    }
    teardown(&a);
    mosquitto_lib_cleanup();
    return rc;
}
