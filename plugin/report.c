/*
 * report.c — ota/v1/{vin}/report: vehicle progress and status reports (SPEC §3, seed 000).
 *
 * On the broker thread, before the PUBACK: decode strictly (codec), check the VIN against
 * the catalog, check the replay guard, then append the raw report to the durable spool (a
 * copy into the page cache, no fsync) with its epoch. Then republish each upgrade_status
 * event as JSON on ota/v1/events/status/{vin} and let every event drive its task
 * execution (engine.c). The writer thread takes the report from the spool to the store.
 *
 * Nothing a vehicle sent is dropped in silence (docs/protocol.md "Reports"): a report
 * that is refused — it does not decode, it is oversize (router.c), its VIN is unknown to
 * the catalog (unless plugin_opt_accept_unknown_vins), or it is a replay — is spooled as a
 * quarantine record with its reason (the writer stores it in ota_quarantine), published
 * on ota/v1/events/rejected/{vin} and answered on the vehicle's error topic. A report that
 * cannot be spooled is not acked at all: the vehicle is disconnected and re-sends it.
 *
 * The replay guard keeps per VIN the epoch and seq of the last report taken and the
 * number of operator resets: a report of the same epoch must have a higher seq, a report
 * of another epoch starts that epoch, and after resetVehicleSeq the next report is taken
 * whatever it says and its events are stored under "<epoch>~<resets>", away from the
 * keys of the unit that was replaced.
 */
#include "ota_plugin.h"
#include "catalog.h"
#include "effects.h"
#include "engine.h"
#include "map.h"
#include "ota_store.h"
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
    char topic[64];
    snprintf(topic, sizeof(topic), "ota/v1/events/status/%s", vin);
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
} last_seq;

static ota_map_key last_seq_key(const void *rec)
{
    return ota_map_key_str(((const last_seq *)rec)->vin);
}

static void last_seq_fini(void *rec)
{
    free(((last_seq *)rec)->epoch);
}

static const char *epoch_of(const last_seq *l)
{
    return l->epoch ? l->epoch : "0";
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
    last_seq rec = {.seq = -1};
    snprintf(rec.vin, sizeof(rec.vin), "%s", vin);
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
 * spool's checkpoint: they count too, in order. */
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
        snprintf(err, errlen, "cannot read the report spool's unshipped reports");
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

/* ota/v1/events/rejected/{vin}: {vin, code, msg, seq?, epoch?, size, received_at}. */
static void publish_rejected(ota_plugin *p, const char *vin, const ota_error *e,
                             const ota_report *rep, size_t size, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        char num[24];
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

/* ---- taking a report ---- */

static void publish_status_events(ota_plugin *p, const ota_request *req, const ota_report *rep,
                                  int64_t now)
{
    for (size_t i = 0; i < rep->n_events; i++) {
        if (rep->events[i].type == OTA_EV_UPGRADE_STATUS) {
            publish_status_event(p, req->vin, rep->seq, &rep->events[i], now);
            ota_tasks_on_status(p, req->vin, &rep->events[i]);
        }
        ota_engine_on_event(p, req->vin, &rep->events[i]); /* execution states (engine.c) */
    }
}

/* Spools a report that passed every check and sets off its effects. */
static int take(ota_plugin *p, const ota_request *req, const ota_report *rep, last_seq *l)
{
    int64_t now = ota_now_ms();
    ota_spool_entry en = {.kind = OTA_SPOOL_KIND_REPORT_EPOCH,
                          .vin = req->vin,
                          .seq = rep->seq,
                          .received_ms = now,
                          .epoch = rep->epoch,
                          .resets = l->resets,
                          .payload = req->payload,
                          .len = req->payloadlen};
    if (ota_spool_append(p->spool, &en) != 0) {
        return refuse_unspooled(p, req, rep->seq);
    }
    if (set_epoch(l, rep->epoch) != 0) {
        l->seq = -1; /* out of memory: the next report is taken whatever it says */
    } else {
        l->seq = (int64_t)rep->seq;
    }
    p->counters.reports_accepted++;
    p->counters.events_accepted += rep->n_events;
    publish_status_events(p, req, rep, now);
    return MOSQ_ERR_SUCCESS;
}

int ota_handle_report(ota_plugin *p, const ota_request *req)
{
    ota_report rep;
    ota_error err;
    if (ota_codec_decode_report(req->payload, req->payloadlen, &p->cfg.limits, &rep, &err) != 0) {
        return refuse(p, req, &err, &rep, NULL);
    }
    int rc;
    last_seq *l = NULL;
    if (!p->cfg.accept_unknown_vins && !ota_catalog_vehicle(p->catalog, req->vin)) {
        rc = refuse_unknown_vin(p, req, &rep);
    } else if (!(l = guard_of(p, req->vin))) {
        ota_error_set(&err, OTA_E_INTERNAL, "report: out of memory");
        ota_reply_error(p, req, &err, (int64_t)rep.seq);
        rc = MOSQ_ERR_NOMEM; /* not acked: re-sent later */
    } else if (!guard_admits(l, rep.epoch, rep.seq)) {
        rc = refuse_replay(p, req, &rep, l);
    } else {
        rc = take(p, req, &rep, l);
    }
    ota_report_free(&rep);
    return rc;
}
