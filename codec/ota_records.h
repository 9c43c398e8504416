/*
 * ota_records.h — the catalog's entities as plain C records (SPEC §5).
 *
 * One definition serves every layer: the codec parses them from the operator's JSON and
 * writes them back (codec/catalog_json.c), the store persists them (store/), and the
 * in-memory catalog keeps them (plugin/core/catalog.c). A record owns its strings and arrays
 * (plain malloc); free it with its ota_*_rec_free function. Optional texts are NULL when
 * absent.
 *
 * Words (ids, statuses, names) are 1..64 bytes of UTF-8 without control characters;
 * free texts (descriptions, prompts) at most 4096 bytes.
 */
#ifndef OTA_RECORDS_H
#define OTA_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_SHA256_HEX 64
#define OTA_PUBKEY_LEN 32 /* X25519 */
#define OTA_FREE_TEXT_MAX 4096

/* ---- vehicles: upsertVehicles {vehicles:[...]} ---- */
typedef struct {
    char *vin;
    char *model;
    char *series;
    char *platform;    /* optional */
    char *status;      /* e.g. assembly_offline, ok_offline, certificate_printed, in_stock, sold */
    char *usage;       /* e.g. retail, fleet, test */
    bool sold;         /* default false */
    bool activated;    /* default false */
    bool passenger;    /* default true: a passenger car */
    char *config_word; /* optional */
    char *fw;          /* optional: current firmware version */
    bool has_public_key;
    uint8_t public_key[OTA_PUBKEY_LEN]; /* JSON: 64 hex characters */
    char *rxswin; /* optional: its RXSWINs (UNECE R156), canonical list (ota_rxswin_*) */
} ota_vehicle_rec;

/* ---- RXSWIN (UNECE R156; issue 17, docs/r156.md) ----
 * An RXSWIN is "R<regulation>-<identifier>": 'R', 1..4 digits, '-', then 1..58 of
 * [A-Za-z0-9._/-] (at most 64 bytes). A list holds at most OTA_RXSWIN_MAX of them, one per
 * regulation, and is kept as one canonical text: sorted by regulation, joined by ','
 * ("R10-EMC.3,R79-STEER.7"); NULL is the empty list. */
#define OTA_RXSWIN_MAX 16
#define OTA_RXSWIN_LEN 64
/* What a committed success changed (doc kind OTA_DOC_RXSWIN, key "TASK/VIN"). */
typedef struct {
    char *task;
    char *vin;
    uint64_t package;
    char *before; /* the vehicle's list before; NULL: none */
    char *after;  /* after: the package's RXSWINs replace those of the same regulation */
    int64_t at_ms;
} ota_rxswin_change_rec;
void ota_rxswin_change_rec_free(ota_rxswin_change_rec *r);

/* ---- per-language texts (issue 17): the user information of a package ---- */
typedef struct {
    char *lang; /* a language tag: 2..3 letters, then "-" subtags of 1..8 letters/digits */
    char *text;
} ota_lang_text;
#define OTA_LANGS_MAX 16

/* ---- models: setModel {model, series, supports_config_word, ecus?, ignore:[{bit, ecus}]} ---- */
typedef struct {
    uint32_t bit;
    size_t n_ecus;
    char **ecus;
} ota_ignore_rule;

typedef struct {
    char *model;
    char *series;
    bool supports_config_word;
    size_t n_ecus; /* the model's ECUs; strategies and packages may name only these */
    char **ecus;
    size_t n_ignore;
    ota_ignore_rule *ignore;
} ota_model_rec;

/* ---- files: the content-addressed repository ---- */
typedef struct {
    char sha256[OTA_SHA256_HEX + 1]; /* lowercase hex */
    uint64_t size;
} ota_file_rec;

/* ---- packages: addPackage {package:{...}} ---- */
/* Forward only; deprecated (issue 18): no new task may use the package. */
typedef enum {
    OTA_PKG_DRAFT = 0,
    OTA_PKG_VERIFIED,
    OTA_PKG_RELEASED,
    OTA_PKG_DEPRECATED
} ota_pkg_status;
typedef enum { OTA_ECU_TYPE_ECU = 0, OTA_ECU_TYPE_COMPONENT } ota_ecu_type;

typedef struct {
    char *ecu;
    ota_ecu_type type;
    char *version;
    char sha256[OTA_SHA256_HEX + 1];
    char *name; /* file name shown to the vehicle */
    uint64_t size; /* from the repository; 0 until resolved */
} ota_pkg_ecu;

typedef struct {
    uint64_t id; /* assigned by the plugin: 1, 2, ... */
    char *model;
    char *series;
    char *version;
    bool delta;  /* kind: "full" or "delta" */
    char *from;  /* delta: the version it upgrades from */
    char *baseline_description;
    char *prompt;      /* optional; with languages: the text of `language` */
    char *result_info; /* optional; likewise */
    /* Per-language texts (issue 17): when the operator gives prompt / result_info as
     * {tag: text}, these hold them (sorted by tag; at most OTA_LANGS_MAX, their texts at
     * most OTA_FREE_TEXT_MAX bytes together) and `language` is the default tag. */
    char *language;
    size_t n_prompts;
    ota_lang_text *prompts;
    size_t n_result_infos;
    ota_lang_text *result_infos;
    char *rxswin; /* optional: the RXSWINs the package sets (canonical list) */
    /* The install mode a task of this package gets unless it names its own (issue 17):
     * forced, soft or download_only (time_forced needs a task's deadline). */
    bool has_install_mode;
    int install_mode; /* ota_install_mode */
    bool encrypted;
    /* encrypted packages (docs/vehicle-crypto.md): addPackage carries the clear content key
     * (JSON content_key, 64 hex), which the plugin seals at once; the stored document keeps
     * only the sealed form (JSON sealed_key, hex of nonce || AES-256-GCM || tag under the
     * plugin's KEK). Neither is ever shown by getPackage or listPackages. */
    bool has_content_key;
    uint8_t content_key[32];
    char *sealed_key;
    ota_pkg_status status;
    size_t n_ecus;
    ota_pkg_ecu *ecus;
} ota_package_rec;

/* ---- strategies: setStrategy {strategy:{id, package_kind, compare_version, ecus}} ---- */
typedef enum { OTA_KIND_FULL = 0, OTA_KIND_DELTA, OTA_KIND_AUTO } ota_pkg_kind_pref;
typedef enum { OTA_CMP_ALWAYS = 0, OTA_CMP_NEVER, OTA_CMP_AUTO } ota_compare_pref;

typedef struct {
    char *ecu;
    int32_t order; /* upgrade order; -1 when not configured */
    bool upgrade;
} ota_strategy_ecu;

/* Pre-conditions a vehicle checks before installing (issue 17, docs/protocol.md): the
 * bits of ota_strategy_rec.pre_flags, and the words a waiting vehicle reports. */
#define OTA_PRE_BATTERY 1      /* battery >= battery_min_pct (set when that is > 0) */
#define OTA_PRE_PARKED 2       /* gear in park, vehicle still */
#define OTA_PRE_IGNITION_OFF 4 /* ignition off */
#define OTA_PRE_NOT_CHARGING 8 /* no charging session */
#define OTA_PRE_COUNT 4
/* "battery", "parked", "ignition_off", "not_charging" by bit index; NULL past the end. */
const char *ota_precondition_name(unsigned bit_index);

typedef struct {
    char *id;
    ota_pkg_kind_pref package_kind;
    ota_compare_pref compare_version;
    size_t n_ecus;
    ota_strategy_ecu *ecus;
    uint8_t pre_flags;       /* OTA_PRE_*: what the vehicle checks before installing */
    uint8_t battery_min_pct; /* with OTA_PRE_BATTERY: 1..100 */
} ota_strategy_rec;

/* ---- lists ---- */
typedef enum {
    OTA_LIST_BLACKLIST = 0,
    OTA_LIST_FORCED_WHITELIST,
    OTA_LIST_SAME_VERSION_WHITELIST,
    OTA_LIST_DOWNGRADE_WHITELIST,
} ota_list_kind;
#define OTA_LIST_COUNT 4

/* Names used on the wire and in the store; NULL / -1 for unknown values. */
const char *ota_list_name(ota_list_kind k);
int ota_list_from_name(const char *name);
const char *ota_pkg_status_name(ota_pkg_status s);
int ota_pkg_status_from_name(const char *name);

/* ---- tasks (SPEC §5-6, seed 000): createTask {task:{...}} ---- */
typedef enum {
    OTA_TASK_NORMAL = 0,
    OTA_TASK_FORCED,
    OTA_TASK_FACTORY,
    OTA_TASK_SPOT_CHECK,
    OTA_TASK_DIAGNOSTIC,
} ota_task_type;
#define OTA_TASK_TYPE_COUNT 5

typedef enum { OTA_SOURCE_CONSOLE = 0, OTA_SOURCE_DIAGNOSTIC_TOOL } ota_task_source;

/* How a vehicle installs a task's update (UNECE R156; issue 17, docs/protocol.md). */
typedef enum {
    OTA_INSTALL_FORCED = 0,    /* installs without asking (the behaviour before issue 17) */
    OTA_INSTALL_SOFT,          /* asks the driver, who may postpone or decline */
    OTA_INSTALL_DOWNLOAD_ONLY, /* downloads, then waits for installNow */
    OTA_INSTALL_TIME_FORCED,   /* soft until install_deadline, then forced */
} ota_install_mode;
#define OTA_INSTALL_MODE_COUNT 4
/* "forced", "soft", "download_only", "time_forced"; NULL for an unknown value. */
const char *ota_install_mode_name(ota_install_mode m);

typedef struct {
    char *id; /* assigned by the plugin */
    char *name;
    ota_task_type type;
    ota_task_source source;
    char *model;
    char *series;
    char *version; /* the target version */
    size_t n_vins;
    char **vins;
    int64_t start_ms; /* -1: at once */
    int64_t end_ms;   /* -1: no end */
    uint32_t max_resend;
    uint32_t rate;        /* notices per second; 0: unlimited */
    uint32_t timeout_min; /* minutes in progress before an execution fails; 0: none */
    uint32_t abort_min_executed; /* abort: after this many finished executions... */
    uint32_t abort_failure_pct;  /* ...when this share of them failed; 0: never */
    ota_install_mode install_mode; /* what the driver may do (issue 17); forced by default */
    int64_t install_deadline_ms;   /* time_forced: soft until then; -1 or 0 otherwise */
} ota_task_rec;

/* Statuses and usages a task type accepts (setTaskTypeRules); NULL lists = any. */
typedef struct {
    ota_task_type type;
    size_t n_statuses;
    char **statuses;
    size_t n_usages;
    char **usages;
} ota_task_type_rules;

/* Names on the wire: "normal", ...; "console", "diagnostic_tool". NULL / -1 unknown. */
const char *ota_task_type_name(ota_task_type t);
int ota_task_type_from_name(const char *name);
const char *ota_task_source_name(ota_task_source s);
int ota_task_source_from_name(const char *name);
void ota_task_rec_free(ota_task_rec *r);
void ota_task_type_rules_free(ota_task_type_rules *r);

void ota_vehicle_rec_free(ota_vehicle_rec *r);
void ota_model_rec_free(ota_model_rec *r);
void ota_package_rec_free(ota_package_rec *r);
void ota_strategy_rec_free(ota_strategy_rec *r);

/* Compares two version texts: dot-separated parts, numeric parts numerically, others
 * bytewise; "2.10" > "2.9", "1.2" < "1.2.1". Returns <0, 0, >0. */
int ota_version_cmp(const char *a, const char *b);

#endif
