/*
 * grants.h — which package files each vehicle may fetch, and its description counter.
 *
 * SPEC §3: a vehicle may fetch (file/get) only files named in a description issued to it
 * (pkg/get). Each description issued carries the vehicle's description counter, which only
 * grows (rollback defence, docs/protocol.md). Both facts live here, in memory, on the
 * broker thread: filled at start from the stored descriptions (ota_store_load_descriptions)
 * and by pkg.c for every description it issues (before the description is persisted by
 * the writer: a grant issued and then lost in a crash only allows a file the vehicle was
 * about to be told of again). file.c asks ota_grants_allows for every file/get.
 */
#ifndef OTA_GRANTS_H
#define OTA_GRANTS_H

#include "ota_store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ota_grants ota_grants;

ota_grants *ota_grants_new(void);
void ota_grants_free(ota_grants *g);

/* Records a description issued to vin with counter, naming files (sha256 hex,
 * comma-separated). Returns 0, or -1 when out of memory or files is malformed. */
int ota_grants_add(ota_grants *g, const char *vin, uint64_t counter, const char *files);

/* True when a description issued to vin names the file (64 lowercase hex characters). */
bool ota_grants_allows(const ota_grants *g, const char *vin, const char *sha256_hex);

/* The highest description counter issued to vin; 0 when none was. */
uint64_t ota_grants_counter(const ota_grants *g, const char *vin);

/* Start-up: adds every stored description. Returns 0, or -1 with err set. */
int ota_grants_load(ota_grants *g, ota_store *s, char *err, size_t errlen);

#endif
