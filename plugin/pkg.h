/*
 * pkg.h — package descriptions for vehicles (pkg.c): the pkg/get handler's state, its
 * error words and counts, the descriptions signed ahead of the requests (ota_pkg_presign),
 * the signer threads (signer.h) and the descriptions it serves, spooled before their
 * replies (ota_spool_desc.h). Broker thread only.
 */
#ifndef OTA_PKG_H
#define OTA_PKG_H

#include "ota_plugin.h"

#include <stdint.h>

/* The words of a refused pkg/get (SPEC §6), in the order of ERR_NAMES. */
typedef enum {
    OTA_PKG_E_BAD_CBOR = 0,
    OTA_PKG_E_BAD_REQUEST,
    OTA_PKG_E_TOO_LARGE,
    OTA_PKG_E_NOT_ASSIGNED,
    OTA_PKG_E_TASK_INACTIVE,
    OTA_PKG_E_VERSION_MISMATCH,
    OTA_PKG_E_NO_PACKAGE,
    OTA_PKG_E_INTERNAL,
} ota_pkg_err;
#define OTA_PKG_ERR_COUNT 8

const char *ota_pkg_err_name(ota_pkg_err e);

typedef struct {
    uint64_t issued; /* descriptions served (each persisted once) */
    uint64_t refused[OTA_PKG_ERR_COUNT];
    uint64_t presigned;       /* built by ota_pkg_presign */
    uint64_t presign_skipped; /* not: plugin_opt_presign_max descriptions held */
    uint64_t on_request;      /* built for a request (none held would do) */
    uint64_t from_memory;     /* requests answered with a description built before them */
} ota_pkg_counters;

ota_pkg *ota_pkg_new(void);
/* Starts the signer threads (plugin_opt_sign_threads; keys loaded). 0, or -1 with err. */
int ota_pkg_start(ota_plugin *p, char *err, size_t errlen);
/* At shutdown, before the writer stops: the signer finishes every description built; those
 * asked for are spooled (not answered: the broker is stopping). */
void ota_pkg_stop(ota_plugin *p);
void ota_pkg_free(ota_pkg *k);
const ota_pkg_counters *ota_pkg_counters_get(const ota_pkg *k);
/* getStats: adds "pkg" {issued, signing, presigned, presign_queued,
 * presign_skipped, signed_on_request, answered_from_memory, held, held_bytes,
 * refused {code: n}} to data. */
struct cJSON;
void ota_pkg_stats_json(const ota_pkg *k, struct cJSON *data);
/* The engine sent vin a notice of task (or its description may have changed): queued
 * here; a later TICK builds the vehicle's description (cur = its firmware in the catalog)
 * and the signer signs it, unless one that would do is held, so that its pkg/get is
 * answered from memory. Nothing is built when the vehicle could not be described (its
 * request will say why), when pre-signing is off (plugin_opt_presign_max 0) or when
 * plugin_opt_presign_max descriptions are held. */
void ota_pkg_presign(ota_plugin *p, const char *vin, const char *task);
/* TICK: answers the requests waiting for descriptions signed since the last TICK (each
 * spooled when first served), and forgets those no longer fresh. */
void ota_pkg_tick(ota_plugin *p);
/* Start-up (report.c's read of the spool past its checkpoint, after the grants were loaded
 * from the store): a description in the spool past
 * its checkpoint (served before the last stop or kill, not stored yet; the writer stores it
 * soon) is granted too, so its vehicle's file/get is served at once. 0, or -1 when out of
 * memory (a record that does not parse is left to the writer, which skips it). */
int ota_pkg_spooled_description(ota_plugin *p, const ota_spool_record *rec);

#endif
