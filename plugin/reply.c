/*
 * reply.c — answering one vehicle, and only that vehicle.
 *
 * Replies are published with the vehicle's client id, so Mosquitto delivers them
 * straight to that connection (no subscription or READ check needed, nobody else sees
 * them). With MQTT 5, a request's Response Topic and Correlation Data are honoured:
 * the reply goes to that topic with the same Correlation Data. Every reply carries the
 * content type application/cbor (MQTT 5 clients see it; 3.1.1 clients do not), or the
 * one given to ota_reply_typed (application/cose for signed descriptions). A reply built
 * in a buffer from mosquitto_malloc is handed over, not copied (ota_reply_owned). A reply sent
 * later than its request's callback (file blocks, signed descriptions) keeps a copy of the
 * request's Response Topic and Correlation Data (ota_reply_props_copy) as its properties.
 */
#include "ota_plugin.h"

#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>

/* Copies the request's Correlation Data into *props; returns the Response Topic (to
 * free with mosquitto_free) or NULL. */
static char *mqtt5_response_topic(const ota_request *req, mosquitto_property **props)
{
    char *topic = NULL;
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (!req->properties ||
        !mosquitto_property_read_string(req->properties, MQTT_PROP_RESPONSE_TOPIC, &topic, false)) {
        return NULL;
    }
    if (mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS) {
        mosquitto_free(topic);
        return NULL;
    }
    if (mosquitto_property_read_binary(req->properties, MQTT_PROP_CORRELATION_DATA, &corr,
                                       &corr_len, false)) {
        mosquitto_property_add_binary(props, MQTT_PROP_CORRELATION_DATA, corr, corr_len);
        mosquitto_free(corr);
    }
    return topic;
}

#define TOPIC_MAX 128

/* Publishes a reply to the requester: owned (mosquitto_malloc'd) is handed over to the broker
 * (freed here if the broker refuses it); without it, buf is copied by the broker. */
static void publish_reply(const ota_request *req, const char *name, const void *buf, void *owned,
                          size_t len, const char *content_type)
{
    mosquitto_property *props = NULL;
    char *response_topic = mqtt5_response_topic(req, &props);
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, content_type);
    char own[TOPIC_MAX];
    const char *topic =
        response_topic ? response_topic : ota_vehicle_topic_of(own, sizeof own, req->vin, name);
    int rc = MOSQ_ERR_INVAL;
    if (topic && owned) {
        rc = mosquitto_broker_publish(req->client_id, topic, (int)len, owned, 1, false, props);
    } else if (topic) {
        rc = mosquitto_broker_publish_copy(req->client_id, topic, (int)len, buf, 1, false, props);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&props); /* the broker took nothing */
        mosquitto_free(owned);
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: could not queue a reply on %s",
                             topic ? topic : name);
    }
    mosquitto_free(response_topic);
}

void ota_reply_cbor(const ota_request *req, const char *name, uint8_t *buf, size_t len)
{
    ota_reply_typed(req, name, buf, len, "application/cbor");
}

void ota_reply_send(const ota_request *req, const char *name, const uint8_t *buf, size_t len,
                    const char *content_type)
{
    publish_reply(req, name, buf, NULL, len, content_type);
}

void ota_reply_owned(const ota_request *req, const char *name, void *buf, size_t len,
                     const char *content_type)
{
    publish_reply(req, name, NULL, buf, len, content_type);
}

void ota_reply_typed(const ota_request *req, const char *name, uint8_t *buf, size_t len,
                     const char *content_type)
{
    if (!buf) {
        return;
    }
    ota_reply_send(req, name, buf, len, content_type);
    free(buf);
}

mosquitto_property *ota_reply_props_copy(const ota_request *req)
{
    mosquitto_property *out = NULL;
    char *topic = NULL;
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (!req->properties) {
        return NULL;
    }
    if (mosquitto_property_read_string(req->properties, MQTT_PROP_RESPONSE_TOPIC, &topic, false)) {
        mosquitto_property_add_string(&out, MQTT_PROP_RESPONSE_TOPIC, topic);
        mosquitto_free(topic);
    }
    if (mosquitto_property_read_binary(req->properties, MQTT_PROP_CORRELATION_DATA, &corr,
                                       &corr_len, false)) {
        mosquitto_property_add_binary(&out, MQTT_PROP_CORRELATION_DATA, corr, corr_len);
        mosquitto_free(corr);
    }
    return out;
}

void ota_reply_error(ota_plugin *p, const ota_request *req, const ota_error *e, int64_t seq)
{
    p->counters.rejected[e->code]++;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: %s from %s on %s: %s", ota_err_name(e->code),
                         req->vin, req->topic, e->msg);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_error(e, seq, &len);
    ota_reply_cbor(req, "error", buf, len);
}
