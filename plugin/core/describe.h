/*
 * describe.h — what a package description says, decided from the in-memory catalog alone
 * (SPEC §6 "Building a description", seed 000 "如何给汽车返回完整正确的升级包描述信息").
 *
 * Pure functions over the catalog (no broker, no store), in the ota_catalog library so
 * that the unit tests cover every rule: the versions the vehicle gives against its task
 * and its record, the strategy (the VIN's, else the model/series default), the package
 * (full, or the delta from the current version when the strategy's kind is not full and a
 * released-enough delta exists; spot-check tasks: always full), compare_version (always /
 * never / auto: true when not a delta and current != target; spot-check: false), and the
 * ECUs (package ECUs the strategy lists with an upgrade order and the upgrade flag, minus
 * those the vehicle's config word ignores, sorted by upgrade order).
 */
#ifndef OTA_DESCRIBE_H
#define OTA_DESCRIBE_H

#include "catalog.h"
#include "ota_pkg_codec.h"

typedef enum {
    OTA_DESC_OK = 0,
    OTA_DESC_VERSION_MISMATCH, /* E_VERSION_MISMATCH */
    OTA_DESC_NO_PACKAGE,       /* E_NO_PACKAGE */
} ota_desc_result;

/* The request in the terms of its task. */
typedef struct {
    const char *cur, *tgt;      /* what the vehicle sent */
    const char *model, *series; /* the task's */
    const char *version;        /* the task's target version */
    ota_task_type type;
} ota_describe_in;

typedef struct {
    const ota_package_rec *pkg;
    const ota_strategy_rec *strategy; /* NULL never on success */
    bool compare_version;
    size_t n_ecus;
    ota_desc_ecu *ecus;       /* malloc'd (ota_describe_free); texts point into the catalog */
    char msg[OTA_ERRMSG_MAX]; /* why, when not OTA_DESC_OK */
} ota_describe_out;

ota_desc_result ota_describe(const ota_catalog *c, const ota_vehicle *v, const ota_describe_in *in,
                             ota_describe_out *out);
void ota_describe_free(ota_describe_out *out);

/* True when bit `bit` (0 = least significant) of the config word is set: the word is read
 * as a hexadecimal number ("0008" has bit 3); characters that are not hex digits count as
 * 0000. */
bool ota_config_word_bit(const char *config_word, uint32_t bit);

#endif
