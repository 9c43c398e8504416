/*
 * ota-echo-plugin.c — the baseline of ota-pkg-bench: a trivial Mosquitto plugin (API v5)
 * that answers every ota/v1/{vin}/pkg/get with the request's payload on
 * ota/v1/{vin}/pkg/desc, to the requesting client only (as mosquitto-ota replies). It
 * decodes nothing, checks nothing, signs nothing: what is left is the broker's own cost of
 * a request and its reply, against which the real plugin's pkg/get is measured.
 */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>

#include <stdio.h>
#include <string.h>

static mosquitto_plugin_id_t *plugin_id;

int mosquitto_plugin_version(int n, const int *versions)
{
    (void)n, (void)versions;
    return 5;
}

static int on_message(int event, void *event_data, void *userdata)
{
    (void)event, (void)userdata;
    struct mosquitto_evt_message *m = event_data;
    size_t n = strlen(m->topic);
    if (n != 7 + 17 + 8 || strncmp(m->topic, "ota/v1/", 7) != 0 ||
        strcmp(m->topic + 24, "/pkg/get") != 0)
        return MOSQ_ERR_SUCCESS;
    char topic[64];
    snprintf(topic, sizeof topic, "ota/v1/%.17s/pkg/desc", m->topic + 7);
    mosquitto_broker_publish_copy(mosquitto_client_id(m->client), topic, (int)m->payloadlen,
                                  m->payload, 1, false, NULL);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **userdata, struct mosquitto_opt *opts,
                          int n)
{
    (void)userdata, (void)opts, (void)n;
    plugin_id = id;
    return mosquitto_callback_register(id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int n)
{
    (void)userdata, (void)opts, (void)n;
    return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
}
