/*
 * vocab.c — the closed word lists (vocab.h). The vehicle statuses are SPEC §6's plus
 * `scrapped`; the usages SPEC §6's plus `rental` (both already in use by the test fleet
 * and the task type rules' tests).
 */
#include "vocab.h"

#include "ota_catalog_json.h"

#include <stdio.h>
#include <string.h>

static const char *const statuses[] = {"assembly_offline", "ok_offline", "certificate_printed",
                                       "in_stock",         "sold",       "scrapped"};
static const char *const usages[] = {"retail", "fleet", "test", "rental"};

const ota_vocab OTA_VOCAB_VEHICLE_STATUS = {"a vehicle status", statuses,
                                            sizeof statuses / sizeof statuses[0]};
const ota_vocab OTA_VOCAB_VEHICLE_USAGE = {"a vehicle usage", usages,
                                           sizeof usages / sizeof usages[0]};

int ota_vocab_check(const ota_vocab *v, const char *word, const char *path, const char *key,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < v->n; i++)
        if (word != NULL && strcmp(word, v->words[i]) == 0)
            return 0;
    char list[256];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < v->n && used < sizeof list; i++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", v->words[i]);
    return ota_json_errf(err, errlen, path, key, "\"%.64s\" is not %s (%s)", word ? word : "",
                         v->what, list);
}
