/*
 * report.c — ota/v1/{vin}/report: vehicle progress and status reports (SPEC §3, seed 000).
 *
 * Broker thread, before the PUBACK (issue 14: the least work that makes the report
 * durable): the size and rate limits (router.c), the envelope — a CBOR map with a valid
 * seq and epoch, read without decoding the events (ota_codec_report_envelope) —, the VIN
 * against the catalog, the replay guard, then the raw report is appended to the durable
 * spool with its epoch (a copy into the page cache, no fsync) and the callback returns:
 * PUBACK. The writer thread decodes and validates the report, stores its events (or keeps
 * it in the quarantine when the decoder refuses it) and hands the result back; on TICK
 * (ota_reports_poll) the broker thread publishes each upgrade_status event as JSON on
 * ota/v1/events/status/{vin}, lets every event drive its task execution (engine_exec.c, which
 * sets off seed 000's effects) — so a subscriber that reads the store on a status event
 * finds the event there — or answers the refusal on the vehicle's error topic.
 *
 * Nothing a vehicle sent is dropped in silence (docs/protocol.md "Reports"): a report
 * refused on the broker thread — not even its envelope reads, it is oversize (router.c),
 * its VIN is unknown to the catalog (unless plugin_opt_accept_unknown_vins), or it is a
 * replay — is spooled as a quarantine record with its reason, published on
 * ota/v1/events/rejected/{vin} and answered at once; one the writer refuses is kept in
 * the quarantine by the writer and answered (and published) on TICK, once stored. A
 * report that cannot be spooled is not acked at all: the vehicle is disconnected and
 * re-sends it.
 *
 * The replay guard keeps per VIN the epoch and seq of the last report taken and the
 * number of operator resets: a report of the same epoch must have a higher seq, a report
 * of another epoch starts that epoch, and after resetVehicleSeq the next report is taken
 * whatever it says and its events are stored under "<epoch>~<resets>", away from the
 * keys of the unit that was replaced. When the writer refuses the report the guard took
 * last, the guard steps back (once its answer is sent, the seq may be used again). A reset
 * made through another broker reaches this one's guard through the change log (the writer
 * that stores the reset appends an ota_vehicle_state entry; follow.c applies it here).
 */
#include "ota_plugin.h"
#include "catalog.h"
#include "effects.h"
#include "engine.h"
#include "map.h"
#include "ota_store.h"
#include "pkg.h"
#include "tasks.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void publish_status_event(ota_plugin *p, const char *vin, uint64_t seq, const ota_event *ev,
                                 int64_t received_ms)
{
    size_t len = 0;
    char *json = ota_codec_status_event_json(vin, seq, ev, received_ms, &len);
    if (!json) {
        return;
    }
    /* ota/v1/events/{status|consent}/{vin}, without snprintf: one per status event on
     * TICK, where printf's format parsing cost ~1,000 instructions of each */
    char topic[64];
    const char *head = ev->type == OTA_EV_CONSENT ? "ota/v1/events/consent/"
                                                  : "ota/v1/events/status/";
    size_t hlen = strlen(head), vlen = strnlen(vin, sizeof(topic) - 1 - hlen);
    memcpy(topic, head, hlen);
    memcpy(topic + hlen, vin, vlen);
    topic[hlen + vlen] = '\0';
    mosquitto_property *props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
    if (mosquitto_broker_publish_copy(NULL, topic, (int)len, json, 1, false, props) ==
        MOSQ_ERR_SUCCESS) {
        p->counters.status_events++;
    } else {
        mosquitto_property_free_all(&props);
    }
    free(json);
}

/* The replay guard of one VIN. epoch: NULL for "0" (most vehicles send none), else
 * malloc'd. */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    int64_t seq; /* -1: nothing taken since the last reset */
    uint32_t resets;
    char *epoch;
    char *client_id; /* of the last report, when not the VIN: where a late refusal goes */
    /* before the last report taken: restored when the writer refuses that report */
    int64_t prev_seq;
    char *prev_epoch;
    bool has_prev;
} last_seq;

static ota_map_key last_seq_key(const void *rec)
{
    return ota_map_key_str(((const last_seq *)rec)->vin);
}

static void last_seq_fini(void *rec)
{
    free(((last_seq *)rec)->epoch);
    free(((last_seq *)rec)->client_id);
    free(((last_seq *)rec)->prev_epoch);
}

static const char *epoch_of(const last_seq *l)
{
    return l->epoch ? l->epoch : "0";
}

/* Keeps l's position before a report moves it (one step of undo). */
static void keep_prev(last_seq *l)
{
    free(l->prev_epoch);
    l->prev_epoch = l->epoch ? strdup(l->epoch) : NULL;
    l->has_prev = !l->epoch || l->prev_epoch;
    l->prev_seq = l->seq;
}

/* The writer refused the report (epoch, seq) the guard took last: its seq is free again,
 * so that the vehicle may send the report again, corrected, under the same numbers. */
static void undo_take(last_seq *l, const char *epoch, uint64_t seq)
{
    if (!l->has_prev || l->seq != (int64_t)seq || strcmp(epoch_of(l), epoch) != 0) {
        return; /* a later report was taken meanwhile */
    }
    free(l->epoch);
    l->epoch = l->prev_epoch;
    l->prev_epoch = NULL;
    l->seq = l->prev_seq;
    l->has_prev = false;
}

/* Remembers the connection a report came from, for the answer the writer's result may
 * need later (NULL when it is the VIN, as with use_username_as_clientid). */
static void remember_client(last_seq *l, const char *client_id)
{
    bool is_vin = !client_id || strcmp(client_id, l->vin) == 0;
    if (is_vin ? !l->client_id : l->client_id && strcmp(l->client_id, client_id) == 0) {
        return;
    }
    free(l->client_id);
    l->client_id = is_vin ? NULL : strdup(client_id); /* NULL when out of memory: the VIN */
}

void ota_reports_init(ota_plugin *p)
{
    ota_map_init(&p->last_seqs, sizeof(last_seq), last_seq_key);
}

void ota_reports_free(ota_plugin *p)
{
    ota_map_destroy(&p->last_seqs, last_seq_fini);
}

/* Sets l's epoch; -1 when out of memory. */
static int set_epoch(last_seq *l, const char *epoch)
{
    if (strcmp(epoch_of(l), epoch) == 0) {
        return 0;
    }
    char *e = strcmp(epoch, "0") == 0 ? NULL : strdup(epoch);
    if (strcmp(epoch, "0") != 0 && !e) {
        return -1;
    }
    free(l->epoch);
    l->epoch = e;
    return 0;
}

/* vin's guard, made (seq -1) when it has none; NULL when out of memory. */
static last_seq *guard_of(ota_plugin *p, const char *vin)
{
    last_seq *l = ota_map_get_str(&p->last_seqs, vin);
    if (l) {
        return l;
    }
    last_seq rec = {.seq = -1}; /* zeroed: rec.vin stays terminated */
    memcpy(rec.vin, vin, strnlen(vin, OTA_VIN_LEN)); /* not snprintf: -O3 truncation error */
    return ota_map_put(&p->last_seqs, &rec);
}

/* True when a report (epoch, seq) of l's VIN is new: l took nothing since its reset, or
 * the epoch is another, or seq is higher. */
static bool guard_admits(const last_seq *l, const char *epoch, uint64_t seq)
{
    return l->seq < 0 || strcmp(epoch_of(l), epoch) != 0 || seq > (uint64_t)l->seq;
}

/* Sets vin's guard to a row read at start (store, then the spool in order). */
static int load_guard(ota_plugin *p, const char *vin, const char *epoch, int64_t seq,
                      uint32_t resets)
{
    if (!ota_vin_valid(vin)) {
        return 0; /* not a vehicle's: no report of it can arrive */
    }
    last_seq *l = guard_of(p, vin);
    if (!l || set_epoch(l, epoch) != 0) {
        return -1;
    }
    l->seq = seq;
    l->resets = resets;
    return 0;
}

static int load_row(void *ctx, const ota_report_seq_rec *r)
{
    return load_guard(ctx, r->vin, r->epoch, r->seq, r->resets);
}

/* Reports and resets spooled before the last stop but not yet in the store are past the
 * spool's checkpoint: they count too, in order; so do the descriptions served then (their
 * grants: pkg.c). */
static int load_spooled_seqs(ota_plugin *p)
{
    ota_spool_pos from;
    if (ota_spool_checkpoint_load(p->spool, &from) != 0) {
        return -1;
    }
    ota_spool_reader *r = ota_spool_reader_open(p->spool, from);
    if (!r) {
        return -1;
    }
    ota_spool_record rec;
    int rc;
    while ((rc = ota_spool_reader_next(r, &rec)) == 1) {
        bool report = rec.kind == OTA_SPOOL_KIND_REPORT || rec.kind == OTA_SPOOL_KIND_REPORT_EPOCH;
        bool reset = rec.kind == OTA_SPOOL_KIND_RESET;
        if ((report || reset) && rec.seq <= INT64_MAX &&
            load_guard(p, rec.vin, rec.epoch, reset ? -1 : (int64_t)rec.seq, rec.resets) != 0) {
            rc = -1;
            break;
        }
        if (rec.kind == OTA_SPOOL_KIND_DESCRIPTION && ota_pkg_spooled_description(p, &rec) != 0) {
            rc = -1;
            break;
        }
    }
    ota_spool_reader_close(r);
    return rc;
}

int ota_reports_load(ota_plugin *p, ota_store *store, char *err, size_t errlen)
{
    if (ota_store_load_last_seqs(store, load_row, p) != 0) {
        snprintf(err, errlen, "cannot load the last report seq of each vehicle");
        return -1;
    }
    if (load_spooled_seqs(p) != 0) {
        snprintf(err, errlen, "cannot read the spool's unshipped reports and descriptions");
        return -1;
    }
    return 0;
}

static int refuse_unspooled(ota_plugin *p, const ota_request *req, uint64_t seq)
{
    ota_error e;
    ota_error_set(&e, OTA_E_INTERNAL, "report %llu not accepted: spool write failed (%s)",
                  (unsigned long long)seq, strerror(errno));
    ota_reply_error(p, req, &e, (int64_t)seq);
    return MOSQ_ERR_UNKNOWN; /* no PUBACK: the vehicle keeps the report and re-sends it */
}

/* ---- refused reports ---- */

/* A rejected event's id: "{vin}:{received_at}:{code}:{size}:{seq}:{epoch}" (seq and
 * epoch empty when unreadable), what the quarantine row keeps of the report, so that the
 * writer's refusal replayed from the spool after a kill gives the same id. */
static void rejected_id(char *buf, size_t len, const char *vin, const ota_error *e,
                        const ota_report *rep, size_t size, int64_t now)
{
    bool named = rep && rep->seq_valid;
    snprintf(buf, len, "%s:%" PRId64 ":%s:%zu:", vin, now, ota_err_name(e->code), size);
    size_t n = strlen(buf);
    if (named) {
        snprintf(buf + n, len - n, "%" PRIu64 ":%s", rep->seq, rep->epoch);
    } else {
        snprintf(buf + n, len - n, ":");
    }
}

/* ota/v1/events/rejected/{vin}: {id, vin, code, msg, seq?, epoch?, size, received_at}. */
static void publish_rejected(ota_plugin *p, const char *vin, const ota_error *e,
                             const ota_report *rep, size_t size, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        char num[24], id[OTA_EVENT_ID_MAX + 64];
        rejected_id(id, sizeof id, vin, e, rep, size, now);
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "vin", vin);
        cJSON_AddStringToObject(o, "code", ota_err_name(e->code));
        cJSON_AddStringToObject(o, "msg", e->msg);
        if (rep && rep->seq_valid) {
            snprintf(num, sizeof(num), "%" PRIu64, rep->seq);
            cJSON_AddRawToObject(o, "seq", num);
            cJSON_AddStringToObject(o, "epoch", rep->epoch);
        }
        cJSON_AddNumberToObject(o, "size", (double)size);
        snprintf(num, sizeof(num), "%" PRId64, now);
        cJSON_AddRawToObject(o, "received_at", num);
    }
    p->counters.rejected_events += ota_effects_publish("rejected", vin, o);
}

/* Spools the refused report with its reason, publishes the event and answers: the common
 * end of every refusal. rep (may be NULL) names the report when its seq was readable;
 * last (may be NULL) is the guard an E_REPLAY met. */
static int refuse(ota_plugin *p, const ota_request *req, const ota_error *e, const ota_report *rep,
                  const last_seq *last)
{
    int64_t now = ota_now_ms();
    bool named = rep && rep->seq_valid;
    size_t keep = req->payloadlen;
    size_t max = p->cfg.limits.max_payload ? p->cfg.limits.max_payload
                                           : OTA_REPORT_MAX_PAYLOAD_DEFAULT;
    keep = keep > max ? max : keep; /* an oversize report is kept cut to the limit */
    ota_spool_entry en = {.kind = OTA_SPOOL_KIND_QUARANTINE,
                          .vin = req->vin,
                          .seq = named ? rep->seq : 0,
                          .received_ms = now,
                          .epoch = named ? rep->epoch : NULL,
                          .code = (uint8_t)e->code,
                          .has_seq = named,
                          .msg = e->msg,
                          .size = req->payloadlen,
                          .payload = req->payload,
                          .len = keep};
    if (ota_spool_append(p->spool, &en) != 0) {
        return refuse_unspooled(p, req, named ? rep->seq : 0);
    }
    p->counters.reports_rejected++;
    p->counters.reports_quarantined++;
    p->counters.rejected[e->code]++;
    publish_rejected(p, req->vin, e, rep, req->payloadlen, now);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: %s from %s on %s: %s (quarantined)",
                         ota_err_name(e->code), req->vin, req->topic, e->msg);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_report_error(
        e, named ? (int64_t)rep->seq : -1, named ? rep->epoch : NULL,
        last && last->seq >= 0 ? last->seq : -1, last ? epoch_of(last) : NULL, &len);
    ota_reply_cbor(req, "error", buf, len);
    return MOSQ_ERR_SUCCESS;
}

int ota_report_refuse(ota_plugin *p, const ota_request *req, const ota_error *e)
{
    return refuse(p, req, e, NULL, NULL);
}

static int refuse_replay(ota_plugin *p, const ota_request *req, const ota_report *rep,
                         const last_seq *l)
{
    ota_error e;
    ota_error_set(&e, OTA_E_REPLAY,
                  "report seq %" PRIu64 " of epoch %s is not newer than the last taken (%" PRId64
                  "): start a new epoch, or continue after last_seq",
                  rep->seq, rep->epoch, l->seq);
    p->counters.reports_replayed++;
    return refuse(p, req, &e, rep, l);
}

static int refuse_unknown_vin(ota_plugin *p, const ota_request *req, const ota_report *rep)
{
    ota_error e;
    ota_error_set(&e, OTA_E_UNKNOWN_VIN, "%s is not a vehicle of the catalog", req->vin);
    p->counters.reports_unknown_vin++;
    return refuse(p, req, &e, rep, NULL);
}

/* ---- resetVehicleSeq ---- */

int ota_reports_reset_seq(ota_plugin *p, const char *vin, cJSON *out, char *err, size_t errlen)
{
    last_seq *l = guard_of(p, vin);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ota_spool_entry en = {.kind = OTA_SPOOL_KIND_RESET,
                          .vin = vin,
                          .received_ms = ota_now_ms(),
                          .epoch = epoch_of(l),
                          .resets = l->resets + 1};
    if (ota_spool_append(p->spool, &en) != 0) {
        snprintf(err, errlen, "not stored: spool write failed (%s)", strerror(errno));
        return -1;
    }
    char num[24];
    cJSON_AddStringToObject(out, "vin", vin);
    if (l->seq >= 0) {
        snprintf(num, sizeof(num), "%" PRId64, l->seq);
        cJSON_AddRawToObject(out, "last_seq", num);
    } else {
        cJSON_AddNullToObject(out, "last_seq");
    }
    cJSON_AddStringToObject(out, "last_epoch", epoch_of(l));
    cJSON_AddNumberToObject(out, "resets", l->resets + 1);
    l->seq = -1;
    l->resets++;
    return 0;
}

int ota_reports_follow_reset(ota_plugin *p, const char *vin, const char *epoch, uint32_t resets)
{
    last_seq *l = ota_map_get_str(&p->last_seqs, vin);
    if (l && l->resets >= resets) {
        return 0;
    }
    if ((!l && !(l = guard_of(p, vin))) || set_epoch(l, epoch) != 0) {
        return -1;
    }
    l->seq = -1;
    l->resets = resets;
    l->has_prev = false; /* a refusal of an earlier report no longer steps the guard back */
    return 1;
}

/* ---- taking a report ---- */

/* Spools a report whose envelope passed every check; its effects come with the writer's
 * result (ota_reports_poll). */
static int take(ota_plugin *p, const ota_request *req, const ota_report *env, last_seq *l)
{
    ota_spool_entry en = {.kind = OTA_SPOOL_KIND_REPORT_EPOCH,
                          .vin = req->vin,
                          .seq = env->seq,
                          .received_ms = ota_now_ms(),
                          .epoch = env->epoch,
                          .resets = l->resets,
                          .payload = req->payload,
                          .len = req->payloadlen};
    if (ota_spool_append(p->spool, &en) != 0) {
        return refuse_unspooled(p, req, env->seq);
    }
    keep_prev(l);
    if (set_epoch(l, env->epoch) != 0) {
        l->seq = -1; /* out of memory: the next report is taken whatever it says */
    } else {
        l->seq = (int64_t)env->seq;
    }
    remember_client(l, req->client_id);
    p->counters.reports_spooled++;
    return MOSQ_ERR_SUCCESS;
}

int ota_handle_report(ota_plugin *p, const ota_request *req)
{
    ota_report env;
    ota_error err;
    if (ota_codec_report_envelope(req->payload, req->payloadlen, &env, &err) != 0) {
        return refuse(p, req, &err, &env, NULL);
    }
    last_seq *l = NULL;
    if (!p->cfg.accept_unknown_vins && !ota_catalog_vehicle(p->catalog, req->vin)) {
        return refuse_unknown_vin(p, req, &env);
    }
    if (!(l = guard_of(p, req->vin))) {
        ota_error_set(&err, OTA_E_INTERNAL, "report: out of memory");
        ota_reply_error(p, req, &err, (int64_t)env.seq);
        return MOSQ_ERR_NOMEM; /* not acked: re-sent later */
    }
    if (!guard_admits(l, env.epoch, env.seq)) {
        return refuse_replay(p, req, &env, l);
    }
    return take(p, req, &env, l);
}

/* ---- the writer's results (TICK) ---- */

/* "{vin}:{seq}:" into buf (room for OTA_EVENT_ID_MAX), the head of every event id of r;
 * returns its length. */
static size_t event_id_head(char *buf, const ota_report_result *r)
{
    size_t n = strnlen(r->vin, sizeof r->vin - 1);
    memcpy(buf, r->vin, n);
    buf[n++] = ':';
    n += ota_dec_u64(buf + n, r->seq);
    buf[n++] = ':';
    return n;
}

/* The event's id downstream (docs/events.md "Event ids"): "{vin}:{seq}:{index}:{stored
 * epoch}", the key the event is stored under, so that a replay of the spooled report, here
 * or on another broker's spool, gives the same id. The epoch comes last: it is the only
 * part that may hold ':'. head: event_id_head's. */
static void event_id(char *buf, size_t head, uint32_t index, const char *key)
{
    size_t n = head + ota_dec_u64(buf + head, index);
    buf[n++] = ':';
    size_t k = strnlen(key, OTA_STORE_EPOCH_KEY_MAX - 1);
    memcpy(buf + n, key, k);
    buf[n + k] = '\0';
}

static void publish_status_events(ota_plugin *p, const ota_report_result *r)
{
    const ota_report *rep = &r->rep;
    char id[OTA_EVENT_ID_MAX], kb[OTA_STORE_EPOCH_KEY_MAX];
    const char *key = ota_store_epoch_key(r->epoch, r->resets, kb, sizeof kb);
    size_t head = event_id_head(id, r);
    for (size_t i = 0; i < rep->n_events; i++) {
        ota_event ev = rep->events[i]; /* with its id, for the side effects too (effects.c) */
        event_id(id, head, ev.index, key);
        ev.id = id;
        if (ev.type == OTA_EV_UPGRADE_STATUS) {
            publish_status_event(p, r->vin, r->seq, &ev, r->received_ms);
            ota_tasks_on_status(p->tasks, r->vin, &ev);
        } else if (ev.type == OTA_EV_CONSENT) {
            publish_status_event(p, r->vin, r->seq, &ev, r->received_ms);
        }
        ota_engine_on_event(p, r->vin, &ev); /* execution states (engine_exec.c) */
    }
}

/* A report the writer refused (and keeps in the quarantine): counted, published and
 * answered now that the quarantine row is stored. */
static void answer_refused(ota_plugin *p, const ota_report_result *r)
{
    last_seq *l = ota_map_get_str(&p->last_seqs, r->vin);
    char topic[64];
    snprintf(topic, sizeof(topic), "ota/v1/%s/report", r->vin);
    ota_request req = {.client_id = l && l->client_id ? l->client_id : r->vin,
                       .vin = r->vin,
                       .topic = topic};
    ota_report named = {.seq = r->seq, .seq_valid = r->has_seq};
    snprintf(named.epoch, sizeof(named.epoch), "%s", r->epoch);
    if (l && r->has_seq) {
        undo_take(l, r->epoch, r->seq);
    }
    p->counters.reports_rejected++;
    p->counters.reports_quarantined++;
    p->counters.rejected[r->err.code]++;
    publish_rejected(p, r->vin, &r->err, &named, (size_t)r->size, r->received_ms);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: %s from %s on %s: %s (quarantined)",
                         ota_err_name(r->err.code), r->vin, topic, r->err.msg);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_report_error(&r->err, r->has_seq ? (int64_t)r->seq : -1,
                                                 r->has_seq ? r->epoch : NULL, -1, NULL, &len);
    ota_reply_cbor(&req, "error", buf, len);
}

static void on_result(void *ctx, const ota_report_result *r)
{
    ota_plugin *p = ctx;
    if (r->refused) {
        answer_refused(p, r);
        return;
    }
    p->counters.reports_accepted++;
    p->counters.events_accepted += r->rep.n_events;
    publish_status_events(p, r);
}

/* The checkpoint waits for the execution moves the results made (engine_flush.c). */
void ota_reports_poll(ota_plugin *p)
{
    ota_spool_pos ck;
    bool has_ck = false;
    ota_writer_poll_reports_held(p->writer, on_result, p, &ck, &has_ck);
    if (has_ck) {
        ota_engine_hold_checkpoint(p, ck);
    }
}
