/*
 * agent_report.c — ota-agent's CBOR payloads: report events (download_progress,
 * upgrade_progress, upgrade_status of SPEC §3), each queued durably in the state file
 * with its seq taken in the same transaction, then published as {seq, events: [event]}
 * (re-sent after a reconnect or a restart with the same seq: the plugin stores a
 * (vin, seq, index) once); and the shadow/update, pkg/get and file/get requests.
 */
#include "agent_int.h"

#include <cbor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(cbor_item_t *map, const char *k, cbor_item_t *v)
{
    cbor_map_add(map,
                 (struct cbor_pair){.key = cbor_move(cbor_build_string(k)), .value = cbor_move(v)});
}

static void put_text(cbor_item_t *map, const char *k, const char *v)
{
    put(map, k, cbor_build_string(v));
}

static void put_uint(cbor_item_t *map, const char *k, uint64_t v)
{
    put(map, k, cbor_build_uint64(v));
}

static size_t serialize(cbor_item_t *item, uint8_t *buf, size_t cap)
{
    size_t n = item ? cbor_serialize(item, buf, cap) : 0;

    if (item)
        cbor_decref(&item);
    return n;
}

static cbor_item_t *event(agent *a, const char *type, size_t extra)
{
    cbor_item_t *ev = cbor_new_definite_map(3 + extra);

    put_text(ev, "type", type);
    put_text(ev, "task", a->job.task);
    put_uint(ev, "ts", (uint64_t)agent_now_ms());
    return ev;
}

static void queue(agent *a, cbor_item_t *ev)
{
    uint8_t buf[1024];
    size_t n = serialize(ev, buf, sizeof buf);
    uint64_t seq;

    if (n == 0 || st_report_add(a->db, buf, n, &seq) != 0)
        agent_log("report: could not queue an event");
    agent_reports_pump(a);
}

void agent_ev_download(agent *a, uint32_t pct, uint64_t bytes)
{
    cbor_item_t *ev = event(a, "download_progress", 2);

    put_uint(ev, "pct", pct);
    put_uint(ev, "bytes", bytes);
    queue(a, ev);
}

void agent_ev_progress(agent *a, const char *ecu, int pct, const char *step)
{
    cbor_item_t *ev = event(a, "upgrade_progress", step ? 3 : 2);
    char text[257];

    put_text(ev, "ecu", ecu);
    put_uint(ev, "pct", (uint64_t)(pct < 0 ? 0 : pct > 100 ? 100 : pct));
    if (step) {
        snprintf(text, sizeof text, "%s", step); /* at most 256 bytes (protocol.md) */
        put_text(ev, "step", text);
    }
    queue(a, ev);
}

void agent_ev_status(agent *a, const char *status, const char *error, const char *fw)
{
    cbor_item_t *ev = event(a, "upgrade_status", 2 + (error != NULL) + (fw != NULL));

    put_text(ev, "status", status);
    put_text(ev, "trigger", a->job.trigger[0] ? a->job.trigger : "normal");
    if (error)
        put_text(ev, "error", error);
    if (fw)
        put_text(ev, "fw", fw);
    agent_log("task %s: %s%s%s", a->job.task, status, error ? " " : "", error ? error : "");
    queue(a, ev);
}

void agent_ev_consent(agent *a, const char *answer, int64_t until)
{
    cbor_item_t *ev = event(a, "consent", 1 + (until >= 0));

    put_text(ev, "answer", answer);
    if (until >= 0)
        put_uint(ev, "until", (uint64_t)until);
    agent_log("task %s: consent %s", a->job.task, answer);
    queue(a, ev);
}

void agent_ev_waiting(agent *a, const char *failed)
{
    cbor_item_t *ev = event(a, "upgrade_status", 2 + (failed[0] != '\0'));

    put_text(ev, "status", "waiting");
    put_text(ev, "trigger", a->job.trigger[0] ? a->job.trigger : "normal");
    if (failed[0])
        put_text(ev, "conditions", failed);
    agent_log("task %s: waiting for %s", a->job.task, failed);
    queue(a, ev);
}

/* {seq, events: [the stored event]} */
static size_t report_payload(uint64_t seq, const uint8_t *ev, size_t n, uint8_t *buf, size_t cap)
{
    size_t h;

    if (cap < n + 32)
        return 0;
    buf[0] = 0xA2; /* map of 2 */
    h = 1 + cbor_encode_string_start(3, buf + 1, cap - 1);
    memcpy(buf + h, "seq", 3);
    h += 3;
    h += cbor_encode_uint64(seq, buf + h, cap - h);
    h += cbor_encode_string_start(6, buf + h, cap - h);
    memcpy(buf + h, "events", 6);
    h += 6;
    buf[h++] = 0x81; /* array of 1 */
    memcpy(buf + h, ev, n);
    return h + n;
}

/* Drops the reports the broker acknowledged (libmosquitto's thread recorded the mids). */
static void drop_acked(agent *a)
{
    int acked[AGENT_ACKS_MAX];
    uint32_t n;

    pthread_mutex_lock(&a->mu);
    n = a->n_acked;
    memcpy(acked, a->acked, n * sizeof acked[0]);
    a->n_acked = 0;
    pthread_mutex_unlock(&a->mu);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t k = 0; k < a->n_mids; k++)
            if (a->mids[k] == acked[i]) {
                st_report_del(a->db, a->mid_seq[k]);
                a->mids[k] = a->mids[--a->n_mids];
                a->mid_seq[k] = a->mid_seq[a->n_mids];
                break;
            }
}

void agent_reports_pump(agent *a)
{
    uint8_t *ev, buf[1100];
    uint64_t seq;
    size_t n, len;
    int mid;

    drop_acked(a);
    while (a->n_mids < AGENT_ACKS_MAX / 2 &&
           st_report_next(a->db, a->sent_upto, &seq, &ev, &n) == 1) {
        pthread_mutex_lock(&a->mu);
        bool up = a->connected;
        pthread_mutex_unlock(&a->mu);
        len = up ? report_payload(seq, ev, n, buf, sizeof buf) : 0;
        free(ev);
        if (len == 0 || agent_publish(a, "report", buf, len, &mid) != 0)
            return;
        a->mids[a->n_mids] = mid;
        a->mid_seq[a->n_mids++] = seq;
        a->sent_upto = seq;
    }
}

size_t agent_shadow_payload(agent *a, uint8_t *buf, size_t cap, const char *state)
{
    cbor_item_t *root = cbor_new_definite_map(1), *rep = cbor_new_definite_map(3);
    cbor_item_t *ecus = cbor_new_definite_map(a->cfg->n_ecus);
    char fw[VC_ID_MAX + 1], ver[VC_ID_MAX + 1];

    st_kv_text(a->db, "fw", fw, sizeof fw, a->cfg->initial_fw);
    put_text(rep, "fw", fw);
    put_text(rep, "state", state);
    for (uint32_t i = 0; i < a->cfg->n_ecus; i++) {
        agent_installer *in = a->cfg->ecus[i].installer;
        if (in->read_version(in, a->cfg->ecus[i].name, ver, sizeof ver) == 0)
            put_text(ecus, a->cfg->ecus[i].name, ver);
    }
    put(rep, "ecus", ecus);
    put(root, "reported", rep);
    return serialize(root, buf, cap);
}

size_t agent_pkg_get_payload(agent *a, uint8_t *buf, size_t cap)
{
    cbor_item_t *m = cbor_new_definite_map(4);
    char fw[VC_ID_MAX + 1];

    st_kv_text(a->db, "fw", fw, sizeof fw, a->cfg->initial_fw);
    put_uint(m, "req", a->job.req);
    put_text(m, "task", a->job.task);
    put_text(m, "cur", fw);
    put_text(m, "tgt", a->job.version);
    return serialize(m, buf, cap);
}

size_t agent_file_get_payload(const char *sha, uint32_t bs, uint32_t from, uint32_t n,
                              const uint8_t *bitmap, size_t bitmap_len, uint8_t *buf, size_t cap)
{
    cbor_item_t *m = cbor_new_definite_map(bitmap_len ? 5 : 4);

    put_text(m, "file", sha);
    put_uint(m, "bs", bs);
    put_uint(m, "from", from);
    put_uint(m, "n", n);
    if (bitmap_len)
        put(m, "bitmap", cbor_build_bytestring(bitmap, bitmap_len));
    return serialize(m, buf, cap);
}
