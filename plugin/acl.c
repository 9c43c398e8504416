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
 * check below still keeps every OTA message from reaching them.
 * READ runs once per subscriber per delivered message, so everything here is a few
 * string compares, no allocation.
 */
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

static int check_filter(ota_plugin *p, const struct mosquitto_evt_acl_check *ed)
{
    if (!ota_filter_is_ours(ed->topic)) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE) {
        return MOSQ_ERR_SUCCESS;
    }
    ota_identity id = ota_identity_of(p, ed->client);
    if (may_subscribe(ed->topic, &id)) {
        return MOSQ_ERR_SUCCESS;
    }
    p->counters.acl_denied++;
    return MOSQ_ERR_ACL_DENIED;
}

/* A vehicle that publishes under another VIN is told so on its own error topic. */
static void tell_foreign_publisher(ota_plugin *p, const struct mosquitto_evt_acl_check *ed,
                                   const ota_topic *t, const ota_identity *id)
{
    if (id->kind == OTA_ID_VEHICLE && t->kind == OTA_TOPIC_VEHICLE &&
        !ota_topic_vin_is(t, id->name)) {
        ota_reply_unauthorized(p, mosquitto_client_id(ed->client), id->name, ed->topic);
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
    bool ok = ed->access == MOSQ_ACL_WRITE ? !ed->retain && may_publish(&t, &id)
                                           : may_read(&t, &id);
    if (ok) {
        return MOSQ_ERR_SUCCESS;
    }
    if (ed->access == MOSQ_ACL_WRITE) { /* READ denials are routine: not counted */
        p->counters.acl_denied++;
        tell_foreign_publisher(p, ed, &t, &id);
    }
    return MOSQ_ERR_ACL_DENIED;
}
