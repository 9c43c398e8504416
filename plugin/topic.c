/*
 * topic.c — a vehicle's topic ota/v1/{vin}/{name} composed without a format string: every
 * reply (reply.c) and every shadow message of a notice (shadow.c) builds one (ota_plugin.h).
 */
#include "ota_plugin.h"

#include <string.h>

const char *ota_vehicle_topic_of(char *buf, size_t len, const char *vin, const char *name)
{
    size_t v = strlen(vin), n = strlen(name);
    if (sizeof "ota/v1/" + v + 1 + n > len) {
        return NULL;
    }
    memcpy(buf, "ota/v1/", sizeof "ota/v1/" - 1);
    memcpy(buf + sizeof "ota/v1/" - 1, vin, v);
    buf[sizeof "ota/v1/" - 1 + v] = '/';
    memcpy(buf + sizeof "ota/v1/" + v, name, n + 1);
    return buf;
}
