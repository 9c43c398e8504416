/*
 * fleet_campaign.c — campaign mode of ota-fleet: each simulated vehicle goes through an
 * upgrade the way a real one does (SPEC §3):
 *
 *   connect (username = client id = VIN) -> shadow/update {fw, state} -> shadow/delta with
 *   a task notice -> pkg/get -> pkg/desc: COSE_Sign1 verified with the plugin's public
 *   key, then vin / exp / ctr / task / target checked, the content key unwrapped when the
 *   package is encrypted -> for each file in upgrade order: file/get windows of blocks,
 *   resumed after a lost link or lost blocks (bitmap), SHA-256 (and AES-256-GCM) checked
 *   -> install steps (upgrade_progress) -> upgrade_status succeeded or failed (a seed-000
 *   error word) -> shadow/update with the new firmware -> clean disconnect.
 *
 * Every event is a QoS 1 report of its own, one in flight at a time (re-sent with the
 * same seq after a reconnect). Injected faults, decided by a per-vehicle random stream
 * (--seed): --failure-rate (the upgrade fails), --disconnect-rate (a window is cut by
 * dropping the TCP link: the vehicle reconnects and resumes), --drop-rate (a block is
 * thrown away: asked again with a bitmap).
 *
 * As in fleet_vehicle.c, libmosquitto callbacks only record what arrived and put the
 * vehicle on the ready ring; fleet_campaign_service (called by the loop) publishes.
 * A vehicle's job (its task, description, download and event queue) is allocated when a
 * notice arrives and freed when the vehicle is done, so idle vehicles cost little.
 * Anything the vehicle checks and finds wrong counts in verify_failures (exit status 1).
 */
#include "fleet.h"
#include "fleet_crypto.h"

#include <cbor.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define JOB_QUEUE 32
#define PRINT_MAX 5
#define STEPS_PER_ECU 2
#define PKT_MAX 512 /* our requests, reports and updates are far smaller */

typedef enum { JOB_DESC, JOB_DOWNLOAD, JOB_INSTALL, JOB_FINAL, JOB_CLOSE } job_phase;

typedef struct fleet_job {
    job_phase phase;
    char task[VC_ID_MAX + 1], version[VC_ID_MAX + 1], trigger[VC_ID_MAX + 1];
    vc_desc desc;
    uint8_t key[VC_KEY_LEN];
    uint64_t req;
    bool send_pending; /* pkg/get or file/get to (re)send */
    bool resume;       /* the next file/get follows a lost link or a timeout */
    bool cut_pending;  /* drop the link at the next service, ignore blocks until reconnected */
    bool cut_done;
    double deadline; /* request timeout, or the next install step */
    uint32_t ecu;    /* current file / install ECU */
    fleet_dl *dl;
    uint32_t cut_after, win_blocks;
    uint32_t next_pct;
    uint64_t total_bytes, done_bytes;
    uint32_t step, fail_at_step;
    bool fail;
    const char *error;
    const char *outcome;
    fleet_event q[JOB_QUEUE];
    uint32_t q_head, q_len;
    int rep_mid; /* the report in flight (head of q); 0 = none */
    uint64_t rep_seq;
    int close_mid; /* the final shadow/update */
    bool close_acked;
} fleet_job;

static const char *const fail_words[] = {"upgrade_failed", "rollback_succeeded", "rollback_failed",
                                         "peripheral_failed", "prepare_failed"};

/* ---- randomness (per vehicle, reproducible with --seed) ---- */

static uint64_t rng_next(fleet_vehicle *v)
{
    uint64_t x = v->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v->rng = x;
    return x * 0x2545F4914F6CDD1DULL; /* xorshift64*: consecutive outputs uncorrelated */
}

static double rng_unit(fleet_vehicle *v)
{
    return (double)(rng_next(v) >> 11) / 9007199254740992.0;
}

/* ---- small helpers ---- */

static bool text_is(cbor_item_t *item, const char *s)
{
    return item && cbor_isa_string(item) && cbor_string_is_definite(item) &&
           cbor_string_length(item) == strlen(s) &&
           memcmp(cbor_string_handle(item), s, strlen(s)) == 0;
}

static void complain(fleet_vehicle *v, const char *what, const char *detail)
{
    if (v->fleet->st.verify_failures++ < PRINT_MAX)
        fprintf(stderr, "ota-fleet: %s: %s: %s\n", v->vin, what, detail);
}

static bool publish(fleet_vehicle *v, const char *suffix, const uint8_t *buf, size_t len, int *mid)
{
    char topic[FLEET_TOPIC_MAX + 16];
    int rc, m = 0;

    if (len == 0)
        return false;
    snprintf(topic, sizeof topic, "ota/v1/%s/%s", v->vin, suffix);
    rc = mosquitto_publish(v->mosq, &m, topic, (int)len, buf, 1, false);
    if (mid)
        *mid = m;
    if (m == 0 && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST && rc != MOSQ_ERR_ERRNO)
        fprintf(stderr, "ota-fleet: %s: publish %s: %s\n", v->vin, suffix, mosquitto_strerror(rc));
    return m != 0;
}

static const char *shadow_state(const fleet_job *j)
{
    if (j == NULL || j->phase >= JOB_FINAL)
        return "idle";
    return j->phase == JOB_INSTALL ? "upgrading" : "downloading";
}

static void set_phase(fleet_vehicle *v, job_phase p)
{
    fleet_stats *s = &v->fleet->st;
    fleet_job *j = v->job;

    s->in_download -= j->phase <= JOB_DOWNLOAD;
    s->in_install -= j->phase == JOB_INSTALL;
    j->phase = p;
    s->in_download += p <= JOB_DOWNLOAD;
    s->in_install += p == JOB_INSTALL;
}

/* ---- events ---- */

static void queue_event(fleet_vehicle *v, fleet_event ev)
{
    fleet_job *j = v->job;

    if (j->q_len == JOB_QUEUE) /* cannot happen: a job emits far fewer events */
        return;
    ev.ts = fleet_wall_ms();
    j->q[(j->q_head + j->q_len) % JOB_QUEUE] = ev;
    j->q_len++;
    fleet_mark_ready(v);
}

static void queue_status(fleet_vehicle *v, const char *status, const char *error)
{
    bool final = strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
                 strcmp(status, "canceled") == 0;
    const char *fw =
        final ? (strcmp(status, "succeeded") == 0 ? v->job->version : v->fleet->cfg.fw) : NULL;

    queue_event(v,
                (fleet_event){.type = FLEET_EV_STATUS, .status = status, .error = error, .fw = fw});
    if (final) {
        v->job->outcome = status;
        set_phase(v, JOB_FINAL);
    }
}

static void send_report(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    fleet_job *j = v->job;
    uint8_t buf[PKT_MAX];
    size_t len;

    if (j->rep_mid != 0 || j->q_len == 0)
        return;
    if (j->rep_seq == 0)
        j->rep_seq = v->next_seq++;
    len = fleet_cbor_campaign_report(buf, sizeof buf, j->rep_seq, j->task, j->trigger,
                                     &j->q[j->q_head]);
    if (publish(v, "report", buf, len, &j->rep_mid))
        f->st.reports_sent++;
}

static void on_report_acked(fleet_vehicle *v, int rc)
{
    fleet_job *j = v->job;
    fleet_stats *s = &v->fleet->st;
    bool last = j->q_len == 1 && j->phase == JOB_FINAL;

    j->rep_mid = 0;
    j->rep_seq = 0;
    j->q_head = (j->q_head + 1) % JOB_QUEUE;
    j->q_len--;
    if (rc >= FLEET_REPORT_FAIL_RC) {
        if (s->puback_failures++ < PRINT_MAX)
            fprintf(stderr, "ota-fleet: %s: report PUBACK reason %d\n", v->vin, rc);
        return;
    }
    s->reports_acked++;
    s->events_acked++;
    if (last && strcmp(j->outcome, "succeeded") == 0)
        s->succeeded++;
    else if (last && strcmp(j->outcome, "failed") == 0)
        s->failed++;
    else if (last)
        s->canceled++;
}

/* ---- the description ---- */

static void send_pkg_get(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    uint8_t buf[PKT_MAX];
    size_t len = fleet_cbor_pkg_get(buf, sizeof buf, j->req, j->task, v->fleet->cfg.fw, j->version);

    if (publish(v, "pkg/get", buf, len, NULL)) {
        j->send_pending = false;
        j->deadline = fleet_now() + v->fleet->cfg.request_timeout_s;
    }
}

static void start_file(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    const vc_desc_ecu *e = &j->desc.ecus[j->ecu];

    j->dl = fleet_dl_new(e->size, v->fleet->cfg.block_size, v->fleet->cfg.window,
                         j->desc.has_key ? j->key : NULL);
    if (j->dl == NULL) {
        complain(v, e->name, "cannot start the download (size or memory)");
        queue_status(v, "failed", "download_failed");
        return;
    }
    j->next_pct = 25;
    j->send_pending = true;
    fleet_mark_ready(v);
}

static bool unwrap_key(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    uint8_t priv[32], pub[32];

    if (!j->desc.has_key)
        return true;
    if (vc_seed_vehicle_key(v->fleet->cfg.key_seed, v->vin, priv, pub) != 0 ||
        vc_unwrap(&j->desc, priv, v->vin, j->key) != 0) {
        complain(v, "pkg/desc", "the content key does not open with the vehicle's key");
        return false;
    }
    v->fleet->st.keys_unwrapped++;
    return true;
}

static vc_verdict check_desc(fleet_vehicle *v, const void *payload, int len)
{
    fleet_job *j = v->job;
    vc_verdict r = vc_desc_verify(&v->fleet->pub, payload, (size_t)len, &j->desc);

    if (r == VC_DESC_OK)
        r = vc_desc_check_retry(&j->desc, v->vin, fleet_wall_ms(), v->last_ctr,
                                v->last_ctr ? v->last_digest : NULL);
    if (r == VC_DESC_OK &&
        (strcmp(j->desc.task, j->task) != 0 || strcmp(j->desc.to, j->version) != 0))
        r = VC_DESC_WRONG_TASK;
    return r;
}

static void on_desc(fleet_vehicle *v, const void *payload, int len)
{
    fleet_job *j = v->job;
    char text[512];
    vc_verdict r;

    if (j == NULL || j->phase != JOB_DESC)
        return; /* a late answer to a re-sent pkg/get */
    r = check_desc(v, payload, len);
    if (r == VC_DESC_OK && j->desc.has_req && j->desc.req != j->req)
        return;                  /* the answer to an earlier attempt: this one's is coming */
    if (r == VC_DESC_BAD_COSE) { /* a refusal {req, err, msg}? */
        fleet_cbor_describe_error(payload, len, text, sizeof text);
        complain(v, "pkg/get refused or not a COSE_Sign1", text);
        queue_status(v, "failed", "download_failed");
        return;
    }
    if (r != VC_DESC_OK) {
        complain(v, "pkg/desc", vc_verdict_name(r));
        queue_status(v, "failed", "download_failed");
        return;
    }
    v->last_ctr = j->desc.ctr;
    memcpy(v->last_digest, j->desc.digest, sizeof v->last_digest);
    v->fleet->st.descs_verified++;
    if (!unwrap_key(v)) {
        queue_status(v, "failed", "download_failed");
        return;
    }
    for (uint32_t i = 0; i < j->desc.n_ecus; i++)
        j->total_bytes += j->desc.ecus[i].size;
    set_phase(v, JOB_DOWNLOAD);
    j->ecu = 0;
    start_file(v);
}

/* ---- the download ---- */

static void finish_file(fleet_vehicle *v);

static void send_window(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    fleet_job *j = v->job;
    uint32_t from, n, blen;
    uint8_t bitmap[8], buf[PKT_MAX];
    size_t len;

    if (!fleet_dl_request(j->dl, &from, &n, bitmap, &blen)) {
        finish_file(v); /* nothing missing (cannot happen: completion is handled on arrival) */
        return;
    }
    len = fleet_cbor_file_get(buf, sizeof buf, j->desc.ecus[j->ecu].sha_hex, f->cfg.block_size,
                              from, n, bitmap, blen);
    if (!publish(v, "file/get", buf, len, NULL))
        return;
    j->send_pending = false;
    f->st.bitmap_requests += blen > 0;
    f->st.resumes += j->resume;
    j->resume = false;
    j->deadline = fleet_now() + f->cfg.request_timeout_s;
    j->win_blocks = 0;
    j->cut_after = 0;
    if (n >= 2 && rng_unit(v) < f->cfg.disconnect_rate)
        j->cut_after = 1 + (uint32_t)(rng_next(v) % (n - 1));
}

static void start_install(fleet_vehicle *v)
{
    fleet_job *j = v->job;

    queue_status(v, "downloaded", NULL);
    set_phase(v, JOB_INSTALL);
    j->step = 0;
    j->deadline = fleet_now() + v->fleet->cfg.install_step_s;
}

static void finish_file(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    const vc_desc_ecu *e = &j->desc.ecus[j->ecu];
    bool dec_ok, ok = fleet_dl_finish(j->dl, e->sha256, &dec_ok);

    fleet_dl_free(j->dl);
    j->dl = NULL;
    if (!ok) {
        complain(v, e->name, dec_ok ? "SHA-256 mismatch" : "AES-256-GCM tag does not verify");
        queue_status(v, "failed", "download_failed");
        return;
    }
    v->fleet->st.files_verified++;
    j->done_bytes += e->size;
    if (++j->ecu < j->desc.n_ecus)
        start_file(v);
    else
        start_install(v);
}

static void progress_event(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    uint64_t got = j->done_bytes + fleet_dl_bytes(j->dl);
    uint32_t pct = j->total_bytes ? (uint32_t)(got * 100 / j->total_bytes) : 100;

    if (pct < j->next_pct)
        return;
    queue_event(v, (fleet_event){.type = FLEET_EV_DOWNLOAD,
                                 .pct = (uint8_t)pct,
                                 .ecu = j->desc.ecus[j->ecu].ecu,
                                 .bytes = got});
    j->next_pct = pct / 25 * 25 + 25;
}

/* Keeps (or, for --drop-rate, throws away) block i. */
static void take_block(fleet_vehicle *v, uint32_t i, cbor_item_t *data)
{
    fleet *f = v->fleet;
    fleet_job *j = v->job;
    fleet_block_result r;

    if (rng_unit(v) < f->cfg.drop_rate) {
        fleet_dl_drop(j->dl, i);
        f->st.blocks_dropped++;
        return;
    }
    r = fleet_dl_block(j->dl, i, cbor_bytestring_handle(data), cbor_bytestring_length(data));
    if (r == FLEET_BLOCK_OK) {
        f->st.blocks++;
        f->st.bytes += cbor_bytestring_length(data);
    } else if (r == FLEET_BLOCK_BAD_LENGTH) {
        complain(v, "file/data", "a block of the wrong length");
    }
}

static void on_block_map(fleet_vehicle *v, cbor_item_t *m)
{
    fleet_job *j = v->job;
    cbor_item_t *file = vc_cbor_get(m, "file"), *i = vc_cbor_get(m, "i");
    cbor_item_t *data = vc_cbor_get(m, "data"), *err = vc_cbor_get(m, "err");
    const char *want = j->desc.ecus[j->ecu].sha_hex;

    if (file == NULL || !cbor_isa_string(file) || cbor_string_length(file) != 64 ||
        memcmp(cbor_string_handle(file), want, 64) != 0)
        return;                           /* a late block of an earlier file */
    if (text_is(err, "E_RATE_LIMITED")) { /* too many blocks queued: ask again later */
        j->deadline = fleet_now() + 1.0;
        j->resume = true;
        return;
    }
    if (err != NULL || i == NULL || !cbor_isa_uint(i) || data == NULL ||
        !cbor_isa_bytestring(data) || !cbor_bytestring_is_definite(data)) {
        v->fleet->st.error_replies++;
        complain(v, "file/get refused or bad file/data", "see the broker log");
        queue_status(v, "failed", "download_failed");
        fleet_dl_free(j->dl);
        j->dl = NULL;
        return;
    }
    take_block(v, (uint32_t)cbor_get_int(i), data);
    j->deadline = fleet_now() + v->fleet->cfg.request_timeout_s;
    progress_event(v);
    if (fleet_dl_complete(j->dl)) {
        finish_file(v);
    } else if (fleet_dl_request_answered(j->dl)) {
        j->send_pending = true;
        fleet_mark_ready(v);
    } else if (j->cut_after != 0 && ++j->win_blocks == j->cut_after) {
        j->cut_pending = true; /* the window is not complete: the link drops in its middle */
        fleet_mark_ready(v);
    }
}

static void on_block(fleet_vehicle *v, const void *payload, int len)
{
    struct cbor_load_result res;
    cbor_item_t *m;

    if (v->job == NULL || v->job->phase != JOB_DOWNLOAD || v->job->dl == NULL ||
        v->job->cut_pending)
        return;
    m = cbor_load(payload, (size_t)len, &res);
    if (m == NULL || !cbor_isa_map(m)) {
        complain(v, "file/data", "not a CBOR map");
    } else {
        on_block_map(v, m);
    }
    if (m)
        cbor_decref(&m);
}

/* ---- install ---- */

static void install_step(fleet_vehicle *v)
{
    fleet_job *j = v->job;
    uint32_t steps = j->desc.n_ecus * STEPS_PER_ECU;
    uint32_t e = j->step / STEPS_PER_ECU;
    bool second = j->step % STEPS_PER_ECU == 1;

    if (j->fail && j->step == j->fail_at_step) {
        queue_status(v, "failed", j->error);
        return;
    }
    queue_event(v, (fleet_event){.type = FLEET_EV_UPGRADE,
                                 .ecu = j->desc.ecus[e].ecu,
                                 .pct = second ? 100 : 50,
                                 .step = second ? "verify" : "flash"});
    if (++j->step == steps) {
        queue_status(v, "succeeded", NULL);
        return;
    }
    j->deadline = fleet_now() + v->fleet->cfg.install_step_s;
}

/* ---- notices ---- */

static void new_job(fleet_vehicle *v, cbor_item_t *task)
{
    fleet *f = v->fleet;
    fleet_job *j = calloc(1, sizeof *j);
    cbor_item_t *tid = vc_cbor_get(task, "task"), *ver = vc_cbor_get(task, "version");
    cbor_item_t *type = vc_cbor_get(task, "upgrade_type");

    if (j == NULL) {
        complain(v, "notice", "out of memory");
        return;
    }
    snprintf(j->task, sizeof j->task, "%.*s", (int)cbor_string_length(tid),
             (const char *)cbor_string_handle(tid));
    snprintf(j->version, sizeof j->version, "%.*s", (int)cbor_string_length(ver),
             (const char *)cbor_string_handle(ver));
    snprintf(j->trigger, sizeof j->trigger, "%.*s",
             type && cbor_isa_string(type) ? (int)cbor_string_length(type) : 6,
             type && cbor_isa_string(type) ? (const char *)cbor_string_handle(type) : "normal");
    f->st.notices++;
    f->st.last_notice_ms = fleet_wall_ms();
    if (f->st.first_notice_ms == 0)
        f->st.first_notice_ms = f->st.last_notice_ms;
    j->phase = JOB_DESC;
    j->send_pending = true;
    j->fail = rng_unit(v) < f->cfg.failure_rate;
    j->error = fail_words[rng_next(v) % (sizeof fail_words / sizeof fail_words[0])];
    j->fail_at_step = (uint32_t)(rng_next(v) % STEPS_PER_ECU); /* first ECU; any step */
    v->job = j;
    f->st.in_download++;
    if (v->first_notice_ms == 0) {
        v->first_notice_ms = fleet_wall_ms();
        f->st.vehicles_notified++;
    }
    fleet_mark_ready(v);
}

static void on_delta(fleet_vehicle *v, const void *payload, int len)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(payload, (size_t)len, &res);
    cbor_item_t *desired = vc_cbor_get(root, "desired");
    cbor_item_t *task = vc_cbor_get(desired, "task"), *cancel = vc_cbor_get(desired, "cancel");
    cbor_item_t *tid = vc_cbor_get(task, "task"), *ver = vc_cbor_get(task, "version");

    if (task && cbor_isa_map(task)) {
        bool valid = tid && ver && cbor_isa_string(tid) && cbor_isa_string(ver) &&
                     cbor_string_length(tid) <= VC_ID_MAX && cbor_string_length(ver) <= VC_ID_MAX;
        if (!valid)
            complain(v, "shadow/delta", "a task notice without task or version");
        else if (v->job == NULL && !text_is(tid, v->done_task))
            new_job(v, task); /* a notice of the task in hand or done: a re-delivery */
    } else if (v->job && v->job->phase < JOB_FINAL && text_is(cancel, v->job->task)) {
        fleet_dl_free(v->job->dl);
        v->job->dl = NULL;
        queue_status(v, "canceled", NULL);
    }
    if (root)
        cbor_decref(&root);
}

/* ---- entry points from fleet_vehicle.c / fleet_run.c ---- */

void fleet_campaign_on_connect(fleet_vehicle *v)
{
    fleet_job *j = v->job;

    v->update_sent = false;
    if (j == NULL)
        return;
    j->rep_mid = 0; /* re-sent with the same seq */
    j->close_mid = 0;
    j->cut_pending = j->cut_done = false;
    if (j->phase == JOB_CLOSE && !j->close_acked)
        j->phase = JOB_FINAL;
    if (j->phase == JOB_DESC || (j->phase == JOB_DOWNLOAD && j->dl)) {
        j->send_pending = true;
        j->resume = j->phase == JOB_DOWNLOAD;
    }
}

void fleet_campaign_on_lost(fleet_vehicle *v)
{
    if (v->job)
        v->job->rep_mid = 0;
}

void fleet_campaign_on_publish(fleet_vehicle *v, int mid, int rc)
{
    fleet_job *j = v->job;

    if (mid == v->update_mid && mid != 0) {
        v->update_mid = 0;
        v->fleet->st.updates_acked++;
        return;
    }
    if (j == NULL)
        return;
    if (mid == j->rep_mid)
        on_report_acked(v, rc);
    else if (mid == j->close_mid)
        j->close_acked = true;
    fleet_mark_ready(v);
}

void fleet_campaign_on_message(fleet_vehicle *v, const char *topic, const void *payload, int len)
{
    size_t pre = strlen("ota/v1/") + FLEET_VIN_LEN + 1;
    const char *name = strlen(topic) > pre ? topic + pre : "";
    char text[512];

    if (strcmp(name, "shadow/delta") == 0) {
        on_delta(v, payload, len);
    } else if (strcmp(name, "pkg/desc") == 0) {
        on_desc(v, payload, len);
    } else if (strcmp(name, "file/data") == 0) {
        on_block(v, payload, len);
    } else if (strcmp(name, "error") == 0) {
        fleet_cbor_describe_error(payload, len, text, sizeof text);
        if (fleet_error_is_replay(text))
            v->fleet->st.replays++;
        else if (v->fleet->st.error_replies++ < PRINT_MAX)
            fprintf(stderr, "ota-fleet: %s: error reply: %s\n", v->vin, text);
    }
}

static void send_shadow(fleet_vehicle *v, int *mid)
{
    uint8_t buf[PKT_MAX];
    const char *fw = v->upgraded ? v->job->version : v->fleet->cfg.fw;
    size_t len = fleet_cbor_shadow_state(buf, sizeof buf, fw, shadow_state(v->job));

    publish(v, "shadow/update", buf, len, mid);
}

static void finish_job(fleet_vehicle *v)
{
    fleet_job *j = v->job;

    if (j->phase == JOB_FINAL && j->q_len == 0) {
        v->upgraded = strcmp(j->outcome, "succeeded") == 0;
        send_shadow(v, &j->close_mid);
        if (j->close_mid != 0)
            set_phase(v, JOB_CLOSE);
    } else if (j->phase == JOB_CLOSE && j->close_acked) {
        snprintf(v->done_task, sizeof v->done_task, "%s", j->task);
        fleet_vehicle_close(v);
    }
}

static void drive_job(fleet_vehicle *v, double now)
{
    fleet_job *j = v->job;

    if (j->cut_pending) {   /* --disconnect-rate: the link drops in the middle of a window */
        if (!j->cut_done) { /* what is still buffered is ignored until the reconnect */
            j->cut_done = true;
            v->fleet->st.links_cut++;
            shutdown(mosquitto_socket(v->mosq), SHUT_RDWR);
        }
        return;
    }
    if (j->phase == JOB_DESC && (j->send_pending || now >= j->deadline)) {
        j->req++; /* a new req per attempt */
        send_pkg_get(v);
    } else if (j->phase == JOB_DOWNLOAD && j->dl && (j->send_pending || now >= j->deadline)) {
        j->resume |= !j->send_pending; /* a timeout */
        send_window(v);
    } else if (j->phase == JOB_INSTALL && now >= j->deadline) {
        install_step(v);
    }
    send_report(v);
    finish_job(v);
}

void fleet_campaign_service(fleet_vehicle *v)
{
    if (!v->update_sent) {
        send_shadow(v, &v->update_mid);
        v->update_sent = v->update_mid != 0;
        if (!v->update_sent)
            return;
    }
    if (v->job)
        drive_job(v, fleet_now());
}

void fleet_campaign_tick(fleet *f, double now)
{
    for (uint32_t i = 0; i < f->cfg.vehicles; i++) {
        fleet_vehicle *v = &f->v[i];
        fleet_job *j = v->job;
        if (j == NULL || v->state != FV_ACTIVE)
            continue;
        bool waiting =
            j->phase == JOB_INSTALL || j->phase == JOB_DESC || (j->phase == JOB_DOWNLOAD && j->dl);
        if (waiting && now >= j->deadline)
            fleet_mark_ready(v);
    }
}

void fleet_campaign_free(fleet_vehicle *v)
{
    if (v->job == NULL)
        return;
    fleet_dl_free(v->job->dl);
    free(v->job);
    v->job = NULL;
}
