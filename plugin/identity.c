/*
 * identity.c — who a connection is (SPEC §2), and who may connect with which client id.
 *
 * A vehicle's VIN is its MQTT username when it has one (with TLS client certificates
 * and use_identity_as_username, the certificate CN), else its client id; it counts as a
 * vehicle only if that text is a valid VIN. Operators are the usernames listed in
 * plugin_opt_admin_users. Everyone else is "other": kept out of the OTA topics and left
 * to the broker's own access control elsewhere. Called on every ACL check, so it only
 * compares strings.
 *
 * Client ids (issue 13): the plugin delivers a vehicle's replies and notices to a client
 * id (by default the VIN itself), and Mosquitto hands a client id to whoever connects with
 * it last. So a connection whose client id is a VIN other than its own identity (vehicle A
 * logged in as A with B's VIN as client id, an operator or any other user with a VIN as
 * client id) is a takeover attempt: the BASIC_AUTH callback refuses it at CONNECT, and
 * should one get in where Mosquitto does not ask (certificate listeners with
 * use_identity_as_username but without use_username_as_clientid), it is "other" to every
 * check here (acl.c also disconnects it when it shows itself).
 *
 * BASIC_AUTH in 2.0.11 (src/security.c mosquitto_unpwd_check): plugins' callbacks run in
 * order, then the password_file's (registered after the plugins); the first answer that is
 * not PLUGIN_DEFER decides. So with plugin_opt_auth broker (the default) the callback
 * answers AUTH (refuse) or DEFER, never SUCCESS: a password_file still checks every
 * password. Once a plugin registers BASIC_AUTH, a client with a username and no other
 * source saying yes is refused (Mosquitto: "all plugins deferred"), so a broker without
 * password_file or certificates must say plugin_opt_auth none (tests, demos): usernames
 * are then taken as given, and clients without one follow allow_anonymous.
 */
#include "batch.h"
#include "ota_plugin.h"

#include <string.h>

static bool is_admin(const ota_plugin *p, const char *username)
{
    for (size_t i = 0; username && i < p->cfg.n_admin_users; i++) {
        if (strcmp(p->cfg.admin_users[i], username) == 0) {
            return true;
        }
    }
    return false;
}

/* The identity of a connection with this username and client id, ignoring takeovers. */
static ota_identity claimed(const ota_plugin *p, const char *username, const char *client_id)
{
    ota_identity id = {OTA_ID_OTHER, NULL};
    if (is_admin(p, username)) {
        id.kind = OTA_ID_ADMIN;
        id.name = username;
        return id;
    }
    const char *vin = username ? username : client_id;
    if (vin && ota_vin_valid(vin)) {
        id.kind = OTA_ID_VEHICLE;
        id.name = vin;
    }
    return id;
}

/* True when client_id is a VIN that is not the identity's own. */
static bool foreign_client_id(const ota_identity *id, const char *client_id)
{
    if (!client_id) {
        return false;
    }
    if (id->kind == OTA_ID_VEHICLE) { /* its own VIN (the usual case) is checked already */
        return strcmp(id->name, client_id) != 0 && ota_vin_valid(client_id);
    }
    return ota_vin_valid(client_id);
}

bool ota_identity_foreign_client_id(const ota_plugin *p, const struct mosquitto *client)
{
    const char *client_id = mosquitto_client_id(client);
    ota_identity id = claimed(p, mosquitto_client_username(client), client_id);
    return foreign_client_id(&id, client_id);
}

ota_identity ota_identity_of(const ota_plugin *p, const struct mosquitto *client)
{
    const char *client_id = mosquitto_client_id(client);
    ota_identity id = claimed(p, mosquitto_client_username(client), client_id);
    if (foreign_client_id(&id, client_id)) {
        id = (ota_identity){OTA_ID_OTHER, NULL};
    }
    return id;
}

/* At most one log line per second about refused connections, with the count since. */
static void log_refused(const char *username, const char *client_id)
{
    static int64_t last_ms = INT64_MIN;
    static uint64_t unlogged;
    int64_t now = ota_mono_ms();
    unlogged++;
    if (last_ms != INT64_MIN && now - last_ms < 1000) {
        return;
    }
    mosquitto_log_printf(MOSQ_LOG_WARNING,
                         "ota: refused a connection of %s with client id %s: a VIN's client id "
                         "is that vehicle's alone (%llu refused since the last line)",
                         username ? username : "(no username)", client_id,
                         (unsigned long long)unlogged);
    last_ms = now;
    unlogged = 0;
}

int ota_auth_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    const struct mosquitto_evt_basic_auth *ed = event_data;
    const ota_plugin *p = userdata;
    const char *client_id = mosquitto_client_id(ed->client);
    ota_identity id = claimed(p, ed->username, client_id);
    if (foreign_client_id(&id, client_id)) {
        log_refused(ed->username, client_id);
        return MOSQ_ERR_AUTH;
    }
    if (strcmp(p->cfg.auth, "none") == 0 && ed->username) {
        return MOSQ_ERR_SUCCESS;
    }
    return MOSQ_ERR_PLUGIN_DEFER;
}
