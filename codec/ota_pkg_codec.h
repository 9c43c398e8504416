/*
 * ota_pkg_codec.h — the package description messages (SPEC §3, docs/protocol.md):
 * the pkg/get request {req, task, cur, tgt}, the description (the payload signed into the
 * COSE_Sign1 of pkg/desc, ota_cose.h) and the error reply {req, err, msg}.
 */
#ifndef OTA_PKG_CODEC_H
#define OTA_PKG_CODEC_H

#include "ota_codec.h"
#include "ota_cose.h"
#include "ota_records.h" /* ota_lang_text */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_PKG_GET_MAX_PAYLOAD 1024 /* bytes of a pkg/get */

/* pkg/get {req: uint, task: text 1..64, cur: text 1..64, tgt: text 1..64}; every field is
 * required, unknown keys are ignored. */
typedef struct {
    uint64_t req;
    bool req_valid; /* req could be read (also after a failed decode): echo it in the error */
    char task[OTA_ID_MAX + 1];
    char cur[OTA_ID_MAX + 1];
    char tgt[OTA_ID_MAX + 1];
} ota_pkg_request;

/* 0 and *out, or -1 with *err: E_TOO_LARGE (over OTA_PKG_GET_MAX_PAYLOAD, a text over 64
 * bytes), E_BAD_CBOR (not one well-formed item), E_BAD_REQUEST (not a map, a field
 * missing or of the wrong type, an empty or invalid text); the message names the field. */
int ota_codec_decode_pkg_get(const void *buf, size_t len, ota_pkg_request *out, ota_error *err);

/* One ECU of a description: {ecu, type, order, version, file:{id, name, size, sha256}}. */
typedef struct {
    const char *ecu;
    bool component; /* type "component", else "ecu" */
    uint32_t order;
    const char *version;
    const char *file_id; /* the file's SHA-256, lowercase hex: what file/get names */
    const char *file_name;
    uint64_t size;
    uint8_t sha256[32];
} ota_desc_ecu;

/* The description (the cross-team brief: SPEC §3 fields plus vin, ctr, iat, exp). No
 * `req`: a description is signed before it is asked for (issue 14); vin, task, ctr, iat
 * and exp bind it instead, and the reply's unprotected header names the request. */
typedef struct {
    const char *task;
    uint64_t package; /* the package id */
    bool delta;       /* kind "delta", else "full" */
    const char *from; /* the version the vehicle upgrades from */
    const char *to;
    bool compare_version;
    size_t n_ecus;
    const ota_desc_ecu *ecus; /* in upgrade order */
    const char *prompt;       /* NULL: "" */
    const char *result_info;  /* NULL: "" */
    /* Per-language texts (issue 17): with language set, "texts": {language, prompt?:
     * {tag: text}, result_info?: {tag: text}} (prompt / result_info above stay the
     * default language's, for vehicles that read only those). */
    const char *language;
    size_t n_prompts;
    const ota_lang_text *prompts;
    size_t n_result_infos;
    const ota_lang_text *result_infos;
    const char *rxswin;       /* the package's canonical RXSWIN list; NULL: no "rxswin" key */
    const char *install_mode; /* NULL or "forced": left out (issue 17) */
    int64_t install_deadline; /* time_forced's deadline; <= 0: left out */
    uint8_t pre_flags;        /* OTA_PRE_* of the strategy; 0: no preconditions key */
    uint8_t battery_min_pct;  /* with OTA_PRE_BATTERY */
    const char *vin;
    uint64_t ctr;
    int64_t iat, exp;           /* ms since the epoch */
    const ota_wrapped_key *key; /* NULL: not encrypted */
} ota_description;

/* The description as a CBOR map (malloc'd, *len), or NULL out of memory. */
uint8_t *ota_codec_encode_description(const ota_description *d, size_t *len);

/* The error reply {req?, err, msg}: req is left out when has_req is false (the request
 * could not be read). NULL out of memory. */
uint8_t *ota_codec_encode_pkg_error(bool has_req, uint64_t req, const char *err, const char *msg,
                                    size_t *len);

#endif
