/*
 * vocab.h — the closed word lists of the operator API (issue 18): a vehicle's status and
 * usage. A word outside its list is refused where it comes in (upsertVehicles,
 * setTaskTypeRules, listVehicles' filters) with the list of valid words, so a typo such
 * as "sodl" is seen at once instead of being stored and silently matching nothing.
 * Broker-free: no store, no Mosquitto.
 */
#ifndef OTA_VOCAB_H
#define OTA_VOCAB_H

#include <stddef.h>

typedef struct {
    const char *what; /* "a vehicle status" */
    const char *const *words;
    size_t n;
} ota_vocab;

extern const ota_vocab OTA_VOCAB_VEHICLE_STATUS; /* assembly_offline ... scrapped */
extern const ota_vocab OTA_VOCAB_VEHICLE_USAGE;  /* retail, fleet, test, rental */

/* 0 when word is in v; else -1 with err = "<path>.<key>: \"W\" is not <what> (a, b, ...)"
 * (path or key may be "" or NULL). */
int ota_vocab_check(const ota_vocab *v, const char *word, const char *path, const char *key,
                    char *err, size_t errlen);

#endif
