/*
 * report.c — ota/v1/{vin}/report: vehicle progress and status reports (SPEC §3, seed 000).
 *
 * On the broker thread, before the PUBACK: decode strictly (codec), append the raw
 * report to the durable spool (one write, no fsync), then republish each upgrade_status
 * event as JSON on ota/v1/events/status/{vin}. The writer thread takes it from the spool
 * to the store later. A report that fails to decode is answered on the vehicle's error
 * topic and not spooled; a report that cannot be spooled is not acked at all: the
 * vehicle is disconnected and re-sends it after reconnecting.
 */
#include "ota_plugin.h"
#include "tasks.h"

#include <errno.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void publish_status_event(ota_plugin *p, const char *vin, uint64_t seq,
                                 const ota_event *ev, int64_t received_ms)
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
    if (ota_codec_decode_report(req->payload, req->payloadlen, &p->cfg.limits, &rep, &err) !=
        0) {
        p->counters.reports_rejected++;
        ota_reply_error(p, req, &err, rep.seq_valid ? (int64_t)rep.seq : -1);
        return MOSQ_ERR_SUCCESS;
    }
    int64_t now = ota_now_ms();
    if (ota_spool_append_report(p->spool, req->vin, rep.seq, now, req->payload,
                                req->payloadlen) != 0) {
        int rc = refuse_unspooled(p, req, rep.seq);
        ota_report_free(&rep);
        return rc;
    }
    p->counters.reports_accepted++;
    p->counters.events_accepted += rep.n_events;
    for (size_t i = 0; i < rep.n_events; i++) {
        if (rep.events[i].type == OTA_EV_UPGRADE_STATUS) {
            publish_status_event(p, req->vin, rep.seq, &rep.events[i], now);
            ota_tasks_on_status(p, req->vin, &rep.events[i]);
        }
    }
    ota_report_free(&rep);
    return MOSQ_ERR_SUCCESS;
}
