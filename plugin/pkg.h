/*
 * pkg.h — package descriptions for vehicles (pkg.c): the pkg/get handler's state, its
 * error words and counts, the signer threads (signer.h) and the batched persistence of
 * the descriptions it issues. Broker thread only.
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
    uint64_t issued;
    uint64_t refused[OTA_PKG_ERR_COUNT];
} ota_pkg_counters;

ota_pkg *ota_pkg_new(void);
/* Starts the signer threads (plugin_opt_sign_threads; keys loaded). 0, or -1 with err. */
int ota_pkg_start(ota_plugin *p, char *err, size_t errlen);
/* At shutdown, before ota_pkg_flush_final: the signer finishes every description built,
 * which is then queued for the store (not answered: the broker is stopping). */
void ota_pkg_stop(ota_plugin *p);
void ota_pkg_free(ota_pkg *k);
const ota_pkg_counters *ota_pkg_counters_get(const ota_pkg *k);
/* getStats: adds "pkg" {issued, signing, stored_pending, refused {code: n}} to data. */
struct cJSON;
void ota_pkg_stats_json(const ota_pkg *k, struct cJSON *data);
/* TICK: answers the descriptions signed since the last TICK and queues them for the store. */
void ota_pkg_tick(ota_plugin *p);
/* TICK: hands the descriptions issued since the last flush to the writer (batch.h). */
void ota_pkg_flush(ota_plugin *p);
/* At shutdown, before the writer stops. */
void ota_pkg_flush_final(ota_plugin *p);

#endif
