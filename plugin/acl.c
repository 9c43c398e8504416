/*
 * acl.c — who may publish, subscribe to and receive which OTA topic (SPEC §2).
 *
 *   vehicle  publish: its own request topics that have a handler (ota/v1/{VIN}/report, ...)
 *            subscribe: filters under ota/v1/{VIN}/
 *            receive: its own reply topics (error, shadow/delta, ...)
 *   admin    publish: $CONTROL/ota/v1, $CONTROL/ota/v1/file
 *            subscribe and receive: ota/v1/events/..., $CONTROL/ota/v1/response
 *   anyone   nothing else under ota/v1/ or $CONTROL/ota/v1; retained publishes there are
 *            refused; nobody ever receives a request topic (that is how requests are
 *            consumed). Topics outside our namespaces: deferred to the broker's own ACL
 *            and other plugins (with no other source, Mosquitto denies).
 * Filters with a leading wildcard (#, +/...) are deferred at subscribe time; the READ
 * check below still keeps every OTA message from reaching them. A shared subscription
 * $share/<group>/<filter> is judged by its filter, exactly like a plain one (issue 13: a
 * vehicle in the operators' event group would take their events and lose them).
 *
 * A vehicle's publish refused here (another VIN's topic, a reply topic, events/...) costs a
 * token of its rate limit (rate_limit.h), so one that keeps doing it is kicked like any
 * flooder; it is answered E_UNAUTHORIZED at most once a second and logged as one line per
 * interval with the count (issue 13: 360k foreign publishes made 47 MiB of log). A
 * connection holding another VIN's client id (identity.c) is disconnected when it shows.
 * READ runs once per subscriber per delivered message, so everything here is a few
 * string compares, no allocation.
 */
#include "batch.h"
#include "ota_plugin.h"

#include <string.h>

static bool may_publish(const ota_topic *t, const ota_identity *id)
{
    switch (t->kind) {
    case OTA_TOPIC_VEHICLE:
        return id->kind == OTA_ID_VEHICLE && ota_topic_vin_is(t, id->name) && t->vt &&
               t->vt->request && t->vt->handler;
    case OTA_TOPIC_CONTROL:
        return id->kind == OTA_ID_ADMIN;
    default:
        return false;
    }
}

static bool may_read(const ota_topic *t, const ota_identity *id)
{
    switch (t->kind) {
    case OTA_TOPIC_VEHICLE:
        return id->kind == OTA_ID_VEHICLE && ota_topic_vin_is(t, id->name) && t->vt &&
               !t->vt->request;
    case OTA_TOPIC_EVENTS:
    case OTA_TOPIC_CONTROL_RESPONSE:
        return id->kind == OTA_ID_ADMIN;
    default:
        return false;
    }
}

static bool may_subscribe(const char *filter, const ota_identity *id)
{
    if (id->kind == OTA_ID_ADMIN) {
        return strncmp(filter, "ota/v1/events/", 14) == 0 ||
               strcmp(filter, "$CONTROL/ota/v1/response") == 0;
    }
    if (id->kind == OTA_ID_VEHICLE) {
        return strncmp(filter, "ota/v1/", 7) == 0 &&
               strncmp(filter + 7, id->name, OTA_VIN_LEN) == 0 && filter[7 + OTA_VIN_LEN] == '/';
    }
    return false;
}

/* The filter a subscription matches with: past "$share/<group>/" for a shared one (NULL
 * when that is malformed: Mosquitto refuses it itself). */
static const char *plain_filter(const char *filter)
{
    if (strncmp(filter, "$share/", 7) != 0) {
        return filter;
    }
    const char *slash = strchr(filter + 7, '/');
    return slash && slash > filter + 7 ? slash + 1 : NULL;
}

/* A connection using another VIN's client id: disconnected on the next TICK. */
static void kick_if_takeover(ota_plugin *p, const struct mosquitto *client)
{
    if (ota_identity_foreign_client_id(p, client)) {
        ota_limits_queue_kick(p->limits, mosquitto_client_id(client));
    }
}

static int check_filter(ota_plugin *p, const struct mosquitto_evt_acl_check *ed)
{
    const char *filter = plain_filter(ed->topic);
    if (!filter || !ota_filter_is_ours(filter)) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE) {
        return MOSQ_ERR_SUCCESS;
    }
    ota_identity id = ota_identity_of(p, ed->client);
    if (may_subscribe(filter, &id)) {
        return MOSQ_ERR_SUCCESS;
    }
    p->counters.acl_denied++;
    kick_if_takeover(p, ed->client);
    return MOSQ_ERR_ACL_DENIED;
}

/* E_UNAUTHORIZED on the vehicle's own error topic, without a log line of its own. */
static void answer_unauthorized(ota_plugin *p, const struct mosquitto_evt_acl_check *ed,
                                const ota_identity *id)
{
    ota_error e;
    ota_error_set(&e, OTA_E_UNAUTHORIZED, "%s: not a topic of %s", ed->topic, id->name);
    p->counters.rejected[OTA_E_UNAUTHORIZED]++;
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_error(&e, -1, &len);
    ota_request req = {
        .client_id = mosquitto_client_id(ed->client), .vin = id->name, .topic = ed->topic};
    ota_reply_cbor(&req, "error", buf, len);
}

/* A vehicle's publish outside its own topics: a token of its rate limit (kicked when it
 * keeps flooding), a throttled answer when the topic is another VIN's, a throttled log. */
static void on_refused_publish(ota_plugin *p, const struct mosquitto_evt_acl_check *ed,
                               const ota_topic *t, const ota_identity *id)
{
    kick_if_takeover(p, ed->client);
    if (id->kind != OTA_ID_VEHICLE) {
        return;
    }
    bool reply;
    uint32_t log_n;
    ota_rate_verdict v =
        ota_limits_denied(p->limits, id->name, ota_mono_ms(), &reply, &log_n);
    if (v != OTA_RATE_OK) {
        p->counters.rate_limited++;
    }
    if (v == OTA_RATE_KICK) {
        ota_limits_queue_kick(p->limits, mosquitto_client_id(ed->client));
    }
    if (reply && t->kind == OTA_TOPIC_VEHICLE && !ota_topic_vin_is(t, id->name)) {
        answer_unauthorized(p, ed, id);
    }
    if (log_n == 1) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: E_UNAUTHORIZED from %s: publish on %s refused",
                             id->name, ed->topic);
    } else if (log_n > 1) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "ota: E_UNAUTHORIZED from %s: %u publishes outside its topics "
                             "refused since the last line (the last on %s)",
                             id->name, log_n, ed->topic);
    }
}

int ota_acl_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_acl_check *ed = event_data;
    ota_plugin *p = userdata;
    if (ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_UNSUBSCRIBE) {
        return check_filter(p, ed);
    }
    ota_topic t;
    ota_topic_parse(ed->topic, &t);
    if (t.kind == OTA_TOPIC_FOREIGN) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    ota_identity id = ota_identity_of(p, ed->client);
    bool ok =
        ed->access == MOSQ_ACL_WRITE ? !ed->retain && may_publish(&t, &id) : may_read(&t, &id);
    if (ok) {
        return MOSQ_ERR_SUCCESS;
    }
    if (ed->access == MOSQ_ACL_WRITE) { /* READ denials are routine: not counted */
        p->counters.acl_denied++;
        on_refused_publish(p, ed, &t, &id);
    }
    return MOSQ_ERR_ACL_DENIED;
}
