/*
 * report.c — ota/v1/{vin}/report: vehicle progress and status reports (SPEC §3, seed 000).
 *
 * On the broker thread, before the PUBACK: decode strictly (codec), append the raw
 * report to the durable spool (a copy into the page cache, no fsync). Then, unless its
 * seq is not newer than the VIN's last report since the start (a re-sent report: the
 * store keeps it once and its effects already happened), republish each upgrade_status
 * event as JSON on ota/v1/events/status/{vin} and let every event drive its task
 * execution (engine_exec.c: states, failure side effects, compensation). The writer thread
 * takes the report from the spool to the store later. A report that fails to decode is
 * answered on the vehicle's error topic and not spooled; a report that cannot be spooled
 * is not acked at all: the vehicle is disconnected and re-sends it after reconnecting.
 */
#include "ota_plugin.h"
#include "engine.h"
#include "map.h"
#include "ota_store.h"
#include "tasks.h"

#include <errno.h>
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
    snprintf(topic, sizeof(topic), "ota/v1/events/%s/%s",
             ev->type == OTA_EV_CONSENT ? "consent" : "status", vin);
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

/* The last report seq accepted from each VIN: loaded at start, then kept up to date. */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    uint64_t seq;
} last_seq;

static ota_map_key last_seq_key(const void *rec)
{
    return ota_map_key_str(((const last_seq *)rec)->vin);
}

void ota_reports_init(ota_plugin *p)
{
    ota_map_init(&p->last_seqs, sizeof(last_seq), last_seq_key);
}

void ota_reports_free(ota_plugin *p)
{
    ota_map_destroy(&p->last_seqs, NULL);
}

/* Raises vin's last seq to seq: 1 when seq is newer than what vin had (or vin had none),
 * 0 when it is not, -1 when out of memory (vin stays unrecorded). vin is a valid VIN, so
 * exactly OTA_VIN_LEN characters are copied. */
static int last_seq_raise(ota_plugin *p, const char *vin, uint64_t seq)
{
    last_seq *l = ota_map_get_str(&p->last_seqs, vin);
    if (l) {
        bool newer = seq > l->seq;
        l->seq = newer ? seq : l->seq;
        return newer;
    }
    last_seq rec = {.seq = seq}; /* zeroed: rec.vin stays terminated */
    memcpy(rec.vin, vin, OTA_VIN_LEN);
    return ota_map_put(&p->last_seqs, &rec) ? 1 : -1;
}

/* True when seq is newer than every report accepted from vin since the start; a vehicle
 * that re-sends a report (its PUBACK was lost) sends the same seq again. Out of memory
 * counts as new: the report is accepted, its seq just not remembered. */
static bool report_is_new(ota_plugin *p, const char *vin, uint64_t seq)
{
    return last_seq_raise(p, vin, seq) != 0;
}

/* Raises vin's last seq to seq (start-up loaders). */
static int raise_last_seq(void *ctx, const char *vin, uint64_t seq)
{
    if (!ota_vin_valid(vin)) {
        return 0; /* not a vehicle's: no report of it can arrive */
    }
    return last_seq_raise(ctx, vin, seq) < 0 ? -1 : 0;
}

/* Reports accepted before the last stop but not yet shipped to the store are in the
 * spool past its checkpoint: their seqs count too. */
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
        if (rec.kind == OTA_SPOOL_KIND_REPORT && raise_last_seq(p, rec.vin, rec.seq) != 0) {
            rc = -1;
            break;
        }
    }
    ota_spool_reader_close(r);
    return rc;
}

int ota_reports_load(ota_plugin *p, ota_store *store, char *err, size_t errlen)
{
    if (ota_store_load_last_seqs(store, raise_last_seq, p) != 0) {
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

int ota_handle_report(ota_plugin *p, const ota_request *req)
{
    ota_report rep;
    ota_error err;
    if (ota_codec_decode_report(req->payload, req->payloadlen, &p->cfg.limits, &rep, &err) != 0) {
        p->counters.reports_rejected++;
        ota_reply_error(p, req, &err, rep.seq_valid ? (int64_t)rep.seq : -1);
        return MOSQ_ERR_SUCCESS;
    }
    int64_t now = ota_now_ms();
    if (ota_spool_append_report(p->spool, req->vin, rep.seq, now, req->payload, req->payloadlen) !=
        0) {
        int rc = refuse_unspooled(p, req, rep.seq);
        ota_report_free(&rep);
        return rc;
    }
    p->counters.reports_accepted++;
    p->counters.events_accepted += rep.n_events;
    if (!report_is_new(p, req->vin, rep.seq)) {
        p->counters.reports_replayed++; /* stored once; its effects happened already */
        ota_report_free(&rep);
        return MOSQ_ERR_SUCCESS;
    }
    for (size_t i = 0; i < rep.n_events; i++) {
        if (rep.events[i].type == OTA_EV_UPGRADE_STATUS) {
            publish_status_event(p, req->vin, rep.seq, &rep.events[i], now);
            ota_tasks_on_status(p->tasks, req->vin, &rep.events[i]);
        } else if (rep.events[i].type == OTA_EV_CONSENT) {
            publish_status_event(p, req->vin, rep.seq, &rep.events[i], now);
        }
        ota_engine_on_event(p, req->vin, &rep.events[i]); /* execution states (engine_exec.c) */
    }
    ota_report_free(&rep);
    return MOSQ_ERR_SUCCESS;
}
