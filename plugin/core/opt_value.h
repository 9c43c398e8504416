/*
 * opt_value.h — a plugin_opt_* value as both plugins read it (config.c for
 * mosquitto_ota.so, dedupe/dedupe_plugin.c for mosquitto_ota_dedupe.so): Mosquitto keeps the
 * blanks around a value, so it is trimmed, and a number is decimal within a range.
 * Broker-free.
 */
#ifndef OTA_OPT_VALUE_H
#define OTA_OPT_VALUE_H

/* value without the white space around it, malloc'd; NULL when out of memory. */
char *ota_opt_trimmed(const char *value);
/* value as a decimal unsigned number in min..max (blanks around it allowed) into *out;
 * 0, or -1 (not a number, or out of range). */
int ota_opt_uint(const char *value, unsigned long long min, unsigned long long max,
                 unsigned long long *out);

#endif
