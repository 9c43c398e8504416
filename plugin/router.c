/*
 * router.c — what a topic means, and the MESSAGE callback that routes vehicle requests.
 *
 * The plugin owns two namespaces: ota/v1/ (vehicles and events) and $CONTROL/ota/v1
 * (operators; delivered through CONTROL callbacks, see control.c). Vehicle topics are
 * ota/v1/{VIN}/{name}; the table below says which names are requests (published by the
 * vehicle, consumed here) and which are replies (published by the plugin, read by the
 * vehicle). A request whose capability is not built yet has no handler and is refused
 * by the ACL, so vehicles get a clear denial instead of silence.
 *
 * Requests are consumed: the callback returns success (so an MQTT 5 vehicle gets a
 * success PUBACK) and the ACL lets nobody read a request topic, so the broker delivers
 * the message to no one.
 *
 * Before a handler runs, the request passes the hostile-input gate (issue 8): the VIN's
 * token bucket (rate_limit.h) and its kind's payload limit. See docs/security.md.
 */
#include "ota_plugin.h"
#include "batch.h"
#include "file.h"
#include "shadow.h"

#include <string.h>

#define OTA_PREFIX "ota/v1/"
#define OTA_PREFIX_LEN (sizeof(OTA_PREFIX) - 1)
#define CONTROL_PREFIX "$CONTROL/ota/v1"
#define CONTROL_PREFIX_LEN (sizeof(CONTROL_PREFIX) - 1)

static const ota_vehicle_topic vehicle_topics[] = {
    {"report", true, ota_handle_report},
    {"shadow/update", true, ota_handle_shadow_update},
    {"shadow/get", true, ota_handle_shadow_get},
    {"pkg/get", true, ota_handle_pkg_get},
    {"file/get", true, ota_handle_file_get},
    {"shadow/accepted", false, NULL},
    {"shadow/delta", false, NULL},
    {"shadow/state", false, NULL},
    {"pkg/desc", false, NULL},
    {"file/data", false, NULL},
    {"error", false, NULL},
};

static const ota_vehicle_topic *find_vehicle_topic(const char *name)
{
    for (size_t i = 0; i < sizeof(vehicle_topics) / sizeof(vehicle_topics[0]); i++) {
        if (strcmp(vehicle_topics[i].name, name) == 0) {
            return &vehicle_topics[i];
        }
    }
    return NULL;
}

static void parse_control(const char *rest, ota_topic *t)
{
    if (*rest == '\0' || strcmp(rest, "/file") == 0) {
        t->kind = OTA_TOPIC_CONTROL;
    } else if (strcmp(rest, "/response") == 0) {
        t->kind = OTA_TOPIC_CONTROL_RESPONSE;
    } else if (*rest == '/') {
        t->kind = OTA_TOPIC_OTA_OTHER;
    }
}

static void parse_ota(const char *rest, ota_topic *t)
{
    t->kind = OTA_TOPIC_OTA_OTHER;
    if (strncmp(rest, "events/", 7) == 0) {
        t->kind = OTA_TOPIC_EVENTS;
        return;
    }
    const char *slash = strchr(rest, '/');
    if (!slash || slash - rest != OTA_VIN_LEN) {
        return;
    }
    t->kind = OTA_TOPIC_VEHICLE;
    t->vin = rest;
    t->vin_len = OTA_VIN_LEN;
    t->vt = find_vehicle_topic(slash + 1);
}

void ota_topic_parse(const char *topic, ota_topic *t)
{
    memset(t, 0, sizeof(*t));
    if (strncmp(topic, OTA_PREFIX, OTA_PREFIX_LEN) == 0) {
        parse_ota(topic + OTA_PREFIX_LEN, t);
    } else if (strncmp(topic, CONTROL_PREFIX, CONTROL_PREFIX_LEN) == 0) {
        parse_control(topic + CONTROL_PREFIX_LEN, t);
    } else if (strcmp(topic, "ota/v1") == 0) {
        t->kind = OTA_TOPIC_OTA_OTHER;
    }
}

/* True when s starts with the topic levels of prefix (n chars). */
static bool has_levels(const char *s, const char *prefix, size_t n)
{
    return strncmp(s, prefix, n) == 0 && (s[n] == '/' || s[n] == '\0');
}

bool ota_filter_is_ours(const char *filter)
{
    return has_levels(filter, "ota/v1", 6) ||
           has_levels(filter, CONTROL_PREFIX, CONTROL_PREFIX_LEN);
}

bool ota_topic_vin_is(const ota_topic *t, const char *vin)
{
    return t->vin && vin && strlen(vin) == t->vin_len && memcmp(t->vin, vin, t->vin_len) == 0;
}

/* The payload limit of a request kind: reports have their own option (the codec checks it
 * too), shadow requests theirs, the small pkg/get and file/get queries theirs. */
static size_t max_payload(const ota_plugin *p, const ota_vehicle_topic *vt)
{
    if (vt->handler == ota_handle_report) {
        return p->cfg.limits.max_payload;
    }
    if (strncmp(vt->name, "shadow/", 7) == 0) {
        return p->cfg.max_shadow_bytes;
    }
    return p->cfg.max_request_bytes;
}

/* A request over the vehicle's rate. A refused report must not look acked: MQTT 5
 * vehicles get PUBACK 0x87 (ACL_DENIED); 3.1.1 ones cannot be told in the PUBACK, so
 * they are disconnected before it and re-send the report after reconnecting. */
static int refuse_rate(ota_plugin *p, const ota_request *req, ota_rate_verdict v, bool reply)
{
    p->counters.rate_limited++;
    if (reply) {
        ota_error e;
        ota_error_set(&e, OTA_E_RATE_LIMITED, "%s refused: over %u requests per second",
                      req->vt->name, p->cfg.rate.rate);
        ota_reply_error(p, req, &e, -1);
    }
    if (v == OTA_RATE_KICK) {
        ota_limits_queue_kick(p->limits, req->client_id);
    }
    if (req->vt->handler == ota_handle_report &&
        mosquitto_client_protocol_version(req->client) != 5) {
        return MOSQ_ERR_UNKNOWN;
    }
    return MOSQ_ERR_ACL_DENIED;
}

/* The gate: MOSQ_ERR_SUCCESS to serve the request, else the callback's answer. */
static int admit(ota_plugin *p, const ota_request *req, bool *serve)
{
    bool reply = false;
    ota_rate_verdict v = ota_limits_take(p->limits, req->vin, ota_mono_ms(), &reply);
    *serve = false;
    if (v != OTA_RATE_OK) {
        return refuse_rate(p, req, v, reply);
    }
    size_t max = max_payload(p, req->vt);
    if (req->payloadlen > max) {
        ota_error e;
        ota_error_set(&e, OTA_E_TOO_LARGE, "%s: payload of %zu bytes, at most %zu", req->vt->name,
                      req->payloadlen, max);
        p->counters.oversize++;
        if (req->vt->handler == ota_handle_report) {
            return ota_report_refuse(p, req, &e); /* kept in the quarantine, cut */
        }
        ota_reply_error(p, req, &e, -1);
        return MOSQ_ERR_SUCCESS; /* consumed and answered, like any bad request */
    }
    *serve = true;
    return MOSQ_ERR_SUCCESS;
}

int ota_message_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_message *m = event_data;
    ota_plugin *p = userdata;
    ota_topic t;
    ota_topic_parse(m->topic, &t);
    if (t.kind != OTA_TOPIC_VEHICLE || !t.vt || !t.vt->request || !t.vt->handler) {
        return MOSQ_ERR_SUCCESS; /* not a request of ours: the ACL already decided */
    }
    ota_identity id = ota_identity_of(p, m->client);
    if (id.kind != OTA_ID_VEHICLE || !ota_topic_vin_is(&t, id.name)) {
        return MOSQ_ERR_ACL_DENIED; /* the ACL lets no one else publish here */
    }
    ota_request req = {
        .client = m->client,
        .client_id = mosquitto_client_id(m->client),
        .vin = id.name,
        .topic = m->topic,
        .payload = m->payload,
        .payloadlen = m->payloadlen,
        .properties = m->properties,
        .vt = t.vt,
    };
    bool serve;
    int rc = admit(p, &req, &serve);
    return serve ? t.vt->handler(p, &req) : rc;
}
