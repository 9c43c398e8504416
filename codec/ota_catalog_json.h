/*
 * ota_catalog_json.h — the catalog records (ota_records.h) as the operator API's JSON
 * (docs/operator-api.md), and the field helpers the $CONTROL command handlers share.
 *
 * Parsers are strict: every field has one JSON type and a limit, unknown fields are
 * refused, and each error text names its field by path, e.g.
 *   vehicles[3].vin: "LSV..." is not a valid VIN
 *   package.ecus[0].file.sha256: expected 64 lowercase hex characters
 * `path` is the prefix of the texts (the object's own place in the request; "" or NULL for
 * a top-level command object, whose errors then read "model: missing").
 *
 * Emitters give the stored form: what the get* commands answer and what the store keeps
 * as documents. ota_json_X(ota_json_from_X(r)) gives back r.
 *
 * All allocations are plain malloc (usable on the writer thread). cJSON numbers are
 * doubles: integers are accepted when integral and in range, at most 2^53.
 */
#ifndef OTA_CATALOG_JSON_H
#define OTA_CATALOG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ota_records.h"

#define OTA_JSON_UINT_MAX 9007199254740992ULL /* 2^53: the largest exact JSON integer */
#define OTA_JSON_ECUS_MAX 256                 /* ECUs of a package, strategy or model */
#define OTA_JSON_NAME_MAX 255                 /* a package file's name shown to vehicles */
#define OTA_JSON_ORDER_MAX 100000             /* a strategy ECU's upgrade order */
#define OTA_JSON_TASK_VINS_MAX 100000         /* VINs of one createTask */
#define OTA_JSON_TASK_RESEND_MAX 1000         /* a task's max_resend */
#define OTA_JSON_TASK_TIMEOUT_MAX 525600      /* a task's timeout_min: a year */
#define OTA_JSON_RULES_MAX 64                 /* statuses or usages of a task type's rules */

/* A request payload: exactly one JSON value (white space around it allowed, other trailing
 * bytes refused, not ignored), or NULL. Free with cJSON_Delete. */
cJSON *ota_json_parse_exact(const void *payload, size_t len);

/* ---- records from JSON ----
 * Each returns 0 and fills *out (free it with its ota_*_rec_free), or -1 with the error
 * text in err, *out then being zeroed (nothing to free). */

/* A vehicle of upsertVehicles: {vin, model, series, platform?, status, usage, sold?,
 * activated?, passenger?, config_word?, fw?, public_key?, rxswin? (issue 17)}. */
int ota_json_vehicle(const cJSON *j, const char *path, ota_vehicle_rec *out, char *err,
                     size_t errlen);
/* The setModel command object itself: {model, series, supports_config_word, ecus?,
 * ignore?}; "command" and "correlationData" are accepted and ignored. ECU names are
 * unique, ignore bits 0..63 unique, and an ignore rule names only the model's ECUs. */
int ota_json_model(const cJSON *j, const char *path, ota_model_rec *out, char *err, size_t errlen);
/* A package in the stored form, or the addPackage form (without id, status and
 * ecus[].file.size: then id 0, draft, sizes 0). */
int ota_json_package(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                     size_t errlen);
/* A package in the addPackage form only: id, status and ecus[].file.size are unknown
 * fields here. */
int ota_json_package_request(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                             size_t errlen);
/* {id, package_kind, compare_version, ecus:[{ecu, order?, upgrade?}]}; order absent -> -1. */
int ota_json_strategy(const cJSON *j, const char *path, ota_strategy_rec *out, char *err,
                      size_t errlen);
/* A task in createTask's form {name, type, source?, model, series, version, vins:[0..100000],
 * start?, end?, max_resend?, rate?, timeout_min?, abort?:{min_executed, failure_pct}}
 * (vins may be empty and repeat VINs: the task rules judge that; each is a valid VIN).
 * Defaults: source console, start/end -1, max_resend, rate, timeout_min 0, no abort
 * (abort_failure_pct 0); end must be after start; abort needs both members (failure_pct
 * 1..100). */
int ota_json_task_request(const cJSON *j, const char *path, ota_task_rec *out, char *err,
                          size_t errlen);
/* The stored form: the same with id (required) and vins optional (the stored task
 * document leaves them out: the executions hold them). */
int ota_json_task(const cJSON *j, const char *path, ota_task_rec *out, char *err, size_t errlen);
/* setTaskTypeRules, the command object itself or the stored setting: {type, statuses:[...],
 * usages:[...]} (both lists required, 0..64 unique words; an empty list is stored as NULL:
 * any value passes); "command" and "correlationData" are accepted and ignored. */
int ota_json_task_type_rules(const cJSON *j, const char *path, ota_task_type_rules *out, char *err,
                             size_t errlen);
/* {sha256, size}. */
int ota_json_file(const cJSON *j, const char *path, ota_file_rec *out, char *err, size_t errlen);

/* ---- records to JSON (the stored form) ----
 * Each returns a new object (free with cJSON_Delete), or NULL when out of memory or when
 * the record lacks a required text. Absent optional texts are left out; a package's id
 * is left out while it is 0, a strategy ECU's order while it is -1. Integers from 10^15 on
 * (ids, sizes) are raw number items, as cJSON would print them inexactly; the parsers
 * read those too. */
cJSON *ota_json_from_vehicle(const ota_vehicle_rec *r);
cJSON *ota_json_from_model(const ota_model_rec *r);
cJSON *ota_json_from_package(const ota_package_rec *r);
/* The stored document: the same plus sealed_key (never shown to operators). */
cJSON *ota_json_from_package_stored(const ota_package_rec *r);
cJSON *ota_json_from_strategy(const ota_strategy_rec *r);
cJSON *ota_json_from_file(const ota_file_rec *r);
/* A task: vins only when n_vins > 0, id only when set, start/end only when >= 0, abort only
 * when abort_failure_pct > 0; source, max_resend, rate and timeout_min always. */
cJSON *ota_json_from_task(const ota_task_rec *r);
/* {type, statuses, usages}; a NULL list (any) is []. */
cJSON *ota_json_from_task_type_rules(const ota_task_type_rules *r);

/* Adds an integer member written as raw JSON number text, exact at any size (a cJSON
 * number is a double: exact only up to 2^53). False when out of memory. */
bool ota_json_add_u64(cJSON *o, const char *key, uint64_t v);
bool ota_json_add_i64(cJSON *o, const char *key, int64_t v);

/* ---- field helpers for command handlers ----
 * Each reads obj's member `key` (case-sensitive) and returns 0, or -1 with err set to
 * "<path>.<key>: <problem>" ("<key>: <problem>" when path is "" or NULL). A required
 * member that is absent is "<key>: missing"; JSON null is not "absent" but a wrong type.
 * Strings returned as const char * point into obj (valid while obj lives). */

/* Formats "<path>.<key>: <message>" (either part may be "" or NULL) into err; the text is
 * cut at a whole UTF-8 character when err is too small. Returns -1. */
int ota_json_errf(char *err, size_t errlen, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Refuses a non-object ("<path>: expected an object"), a key outside `allowed` (a
 * NULL-terminated list of at most 62 names: "<path>.<key>: unknown field") and a key given
 * twice ("<path>.<key>: duplicate field"). */
int ota_json_check_fields(const cJSON *obj, const char *path, const char *const *allowed, char *err,
                          size_t errlen);
/* The same for a command object: "command" and "correlationData" are allowed too. */
int ota_json_check_command_fields(const cJSON *obj, const char *path, const char *const *allowed,
                                  char *err, size_t errlen);

/* A word: a string of 1..64 bytes (OTA_ID_MAX) of valid text (ota_text_valid). *out is
 * NULL when absent and not required. */
int ota_json_get_word(const cJSON *obj, const char *path, const char *key, bool required,
                      const char **out, char *err, size_t errlen);
/* A free text: at most 4096 bytes (OTA_FREE_TEXT_MAX) of UTF-8; tabs and line breaks are
 * allowed, other control characters are not. *out is NULL when absent and not required. */
int ota_json_get_text(const cJSON *obj, const char *path, const char *key, bool required,
                      const char **out, char *err, size_t errlen);
/* A VIN (ota_vin_valid): "<key>: \"X\" is not a valid VIN". *out is NULL when absent and
 * not required. */
int ota_json_get_vin(const cJSON *obj, const char *path, const char *key, bool required,
                     const char **out, char *err, size_t errlen);
/* A SHA-256 (always required): exactly 64 lowercase hex characters, copied into out. */
int ota_json_get_sha256(const cJSON *obj, const char *path, const char *key,
                        char out[OTA_SHA256_HEX + 1], char *err, size_t errlen);
/* true or false; *out = def when absent and not required. */
int ota_json_get_bool(const cJSON *obj, const char *path, const char *key, bool required, bool def,
                      bool *out, char *err, size_t errlen);
/* An integral number in min..max (max capped at OTA_JSON_UINT_MAX). When absent and not
 * required, *out is left as it was: set the default before the call. */
int ota_json_get_uint(const cJSON *obj, const char *path, const char *key, bool required,
                      uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen);
/* A word among names[0..n-1]; *out is its index. Left as it was when absent and not
 * required. Error: "<key>: expected full|delta". */
int ota_json_get_enum(const cJSON *obj, const char *path, const char *key, bool required,
                      const char *const *names, size_t n, int *out, char *err, size_t errlen);
/* An array of min..max items; *arr is NULL and *n 0 when absent and not required. */
int ota_json_get_array(const cJSON *obj, const char *path, const char *key, bool required,
                       size_t min, size_t max, const cJSON **arr, size_t *n, char *err,
                       size_t errlen);

/* Flags of ota_json_get_string_array. */
#define OTA_JSON_VINS 1u   /* each item is a VIN (else a word) */
#define OTA_JSON_UNIQUE 2u /* refuse a repeated item: "<key>[7]: duplicate \"X\" (also at [2])" */

/* An array of min..max words (or VINs), copied: *out is a malloc()ed array of *n
 * malloc()ed strings (free with ota_json_strings_free); NULL and 0 when absent and not
 * required. Errors name the item: "vins[3]: \"X\" is not a valid VIN". */
int ota_json_get_string_array(const cJSON *obj, const char *path, const char *key, bool required,
                              size_t min, size_t max, unsigned flags, char ***out, size_t *n,
                              char *err, size_t errlen);
void ota_json_strings_free(char **v, size_t n);

/* ---- UNECE R156 fields (r156_json.c, issue 17; docs/r156.md) ---- */

/* An RXSWIN: "R<1..4 digits>-<1..58 of [A-Za-z0-9._/-]>", at most 64 bytes. */
bool ota_rxswin_valid(const char *s);
/* An array of 0..16 unique RXSWINs, at most one per regulation, into its canonical text
 * (sorted by regulation, joined by ','): *out malloc()ed, NULL when absent or []. */
int ota_json_get_rxswin(const cJSON *obj, const char *path, const char *key, char **out, char *err,
                        size_t errlen);
/* Adds a canonical list as an array (nothing for NULL; "" gives []). False: out of memory. */
bool ota_json_add_rxswin(cJSON *o, const char *key, const char *list);
/* The vehicle's list after installing a package's: each RXSWIN of the package replaces
 * the vehicle's of the same regulation or is added. *out malloc()ed (NULL: empty). 0, or
 * -1 out of memory. */
int ota_rxswin_merge(const char *vehicle, const char *package, char **out);
/* A language tag: 2..3 letters, then "-" subtags of 1..8 letters or digits; at most 35. */
bool ota_lang_tag_valid(const char *s);
/* A package's language?, prompt? and result_info?: each text either a string or
 * {tag: text} (1..16 languages, texts together at most 4096 bytes), which needs
 * `language`, the default, to be one of its tags. */
int ota_json_pkg_texts(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                       size_t errlen);
bool ota_json_add_pkg_texts(cJSON *o, const ota_package_rec *r);
/* A package's default install_mode?: forced, soft or download_only. */
int ota_json_pkg_install_mode(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                              size_t errlen);
bool ota_json_add_pkg_install_mode(cJSON *o, const ota_package_rec *r);
/* {task, vin, package, before: [RXSWIN...], after: [...], at}: the stored form of an
 * OTA_DOC_RXSWIN document. */
int ota_json_rxswin_change(const cJSON *j, const char *path, ota_rxswin_change_rec *out, char *err,
                           size_t errlen);
cJSON *ota_json_from_rxswin_change(const ota_rxswin_change_rec *r);

/* ---- times (time_json.c, issue 18) ---- */

/* ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|±hh:mm]" (zone required, 1970 or later) into ms
 * since the Unix epoch: 0, or -1 when it is not such a time. */
int ota_iso8601_parse(const char *s, int64_t *ms);
/* ms as "2026-12-08T10:00:00Z" (".250Z" when not whole seconds); buf of 32 bytes. */
void ota_iso8601_format(int64_t ms, char *buf, size_t len);
/* A time: ms (a number of at least 1e11: smaller ones look like seconds and are refused)
 * or ISO 8601 text. *out is left as it was when absent and not required. */
int ota_json_get_time(const cJSON *obj, const char *path, const char *key, bool required,
                      int64_t *out, char *err, size_t errlen);

#endif
