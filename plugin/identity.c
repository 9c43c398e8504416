/*
 * identity.c — who a connection is (SPEC §2).
 *
 * A vehicle's VIN is its MQTT username when it has one (with TLS client certificates
 * and use_identity_as_username, the certificate CN), else its client id; it counts as a
 * vehicle only if that text is a valid VIN. Operators are the usernames listed in
 * plugin_opt_admin_users. Everyone else is "other": kept out of the OTA topics and left
 * to the broker's own access control elsewhere. Called on every ACL check, so it only
 * compares strings.
 */
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

ota_identity ota_identity_of(const ota_plugin *p, const struct mosquitto *client)
{
    ota_identity id = {OTA_ID_OTHER, NULL};
    const char *username = mosquitto_client_username(client);
    if (is_admin(p, username)) {
        id.kind = OTA_ID_ADMIN;
        id.name = username;
        return id;
    }
    const char *vin = username ? username : mosquitto_client_id(client);
    if (vin && ota_vin_valid(vin)) {
        id.kind = OTA_ID_VEHICLE;
        id.name = vin;
    }
    return id;
}
