/*
 * ota_codec.h — the messages mosquitto-ota exchanges, as plain C structs.
 *
 * Vehicles speak CBOR (maps with text keys, SPEC §3); downstream services get JSON
 * (SPEC §4). Decoders are strict: every field has one CBOR type, every string and array
 * a length limit, and every violation yields an ota_error whose code is one of the
 * stable vehicle-facing codes (E_BAD_CBOR, E_BAD_REQUEST, E_TOO_LARGE, ...) and whose
 * message names the offending field, e.g. "events[3].pct: expected unsigned integer
 * 0..100". Unknown map keys are ignored, so vehicles may send newer fields.
 *
 * The codec has no state and no threads; it is used on the broker thread (decoding
 * requests) and on the writer thread (re-decoding spooled reports).
 */
#ifndef OTA_CODEC_H
#define OTA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_VIN_LEN 17   /* ISO 3779 */
#define OTA_ID_MAX 64    /* longest id-like text: task ids, ECU names, status words */
#define OTA_TEXT_MAX 256 /* longest free text: error detail, step name */
#define OTA_ERRMSG_MAX 192

/* Error codes answered to vehicles (SPEC §6, "any topic"), and to the codec's callers. */
typedef enum {
    OTA_OK = 0,
    OTA_E_BAD_CBOR,     /* not well-formed CBOR, or bytes after the top-level item */
    OTA_E_BAD_REQUEST,  /* well-formed, but the wrong shape, type or value */
    OTA_E_TOO_LARGE,    /* payload, array or string over its limit */
    OTA_E_UNAUTHORIZED, /* a topic of another vehicle */
    OTA_E_RATE_LIMITED,
    /* file/get (SPEC §6) */
    OTA_E_NOT_FOUND,   /* no such file in the repository */
    OTA_E_BLOCK_SIZE,  /* bs outside OTA_FILE_BS_MIN..OTA_FILE_BS_MAX */
    OTA_E_OFFSET,      /* from (or every block selected) beyond the file's last block */
    OTA_E_BLOCK_COUNT, /* n outside 1..OTA_FILE_N_MAX, or a bitmap selecting nothing */
    OTA_E_INTERNAL,    /* our fault (spool write failed, out of memory) */
    /* reports (after OTA_E_INTERNAL: per-code tables of file/get end there) */
    OTA_E_REPLAY,      /* seq not newer than the last of its epoch: not taken again */
    OTA_E_UNKNOWN_VIN, /* the catalog has no such vehicle */
} ota_err_code;
#define OTA_ERR_CODE_COUNT (OTA_E_UNKNOWN_VIN + 1)

typedef struct {
    ota_err_code code;
    char msg[OTA_ERRMSG_MAX];
} ota_error;

/* "E_BAD_CBOR", ... ; "OK" for OTA_OK. */
const char *ota_err_name(ota_err_code code);
/* Sets e (if not NULL) and returns -1, so decoders can `return ota_error_set(...)`. */
int ota_error_set(ota_error *e, ota_err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- vehicle reports: ota/v1/{vin}/report {seq, epoch?, events:[...]} ---- */

typedef struct {
    size_t max_payload; /* bytes; default 65536 */
    size_t max_events;  /* per report; default 256 */
} ota_report_limits;

#define OTA_REPORT_MAX_PAYLOAD_DEFAULT 65536
#define OTA_REPORT_MAX_EVENTS_DEFAULT 256

typedef enum {
    OTA_EV_DOWNLOAD_PROGRESS = 1,
    OTA_EV_UPGRADE_PROGRESS,
    OTA_EV_UPGRADE_STATUS,
    OTA_EV_COMMAND,
    OTA_EV_EEPROM_CLEAR,
    OTA_EV_CONSENT,
} ota_event_type;
#define OTA_EV_TYPE_COUNT 6

/* "download_progress", ...; NULL for an unknown value. */
const char *ota_event_type_name(ota_event_type type);

/*
 * One report event. Absent optional integers are -1, absent optional strings NULL.
 * Fields by type (R = required, O = optional, - = not used):
 *                     ecu pct bytes step status error trigger fw cmd at result answer until
 *   download_progress  O   R   O     -    -      -     -      -  -   -   -      -      -
 *   upgrade_progress   R   R   -     O    -      -     -      -  -   -   -      -      -
 *   upgrade_status     -   -   -     -    R      O     R      O  -   -   -      -      -
 *   command            -   -   -     -    -      -     -      -  R   O*  -      -      -
 *   eeprom_clear       R   -   -     -    -      -     -      -  -   -   R      -      -
 *   consent            -   -   -     -    -      O     -      -  -   -   -      R      O**
 * (*R for schedule; **R for postponed, the time the driver asked to be asked again.)
 * Every event has type, task (text, 1..64) and ts (unsigned, ms since the Unix epoch).
 * Allowed words: status in ota_status_valid(), trigger in ota_trigger_valid(),
 * cmd in schedule|now|cancel_schedule, answer in accepted|declined|postponed; pct 0..100.
 * consent's error is the driver's reason, free text. upgrade_status may carry
 * `conditions` (O): the pre-conditions that failed while it waits, comma-separated words
 * of battery|parked|ignition_off|not_charging, each at most once (docs/protocol.md).
 */
typedef struct {
    ota_event_type type;
    uint32_t index; /* position in the report's events array */
    const char *task;
    int64_t ts;
    const char *ecu;
    int32_t pct;
    int64_t bytes;
    const char *step;
    const char *status;
    const char *error;
    const char *trigger;
    const char *fw;
    const char *cmd;
    int64_t at;
    const char *result;
    const char *answer;     /* consent: accepted, declined, postponed */
    int64_t until;          /* consent postponed: ask again at (ms since the epoch) */
    const char *conditions; /* upgrade_status: the pre-conditions that failed, "a,b" */
    const char *id; /* not decoded: the event's id downstream, set by the publisher (report.c) */
} ota_event;

/* A report's epoch: an unsigned integer or a text of 1..OTA_EPOCH_MAX bytes, kept as text
 * (the integer in decimal, so 7 and "7" are one epoch); absent is "0". Integer fields
 * (seq, epoch, ts, bytes, at, pct) also take a CBOR float (16, 32 or 64 bits) whose value
 * is exactly an integer in range: JavaScript encoders write integers above 2^32 so. */
#define OTA_EPOCH_MAX 64
/* Room for an event id downstream (docs/events.md "Event ids"), its NUL included:
 * "{vin}:{seq}:{index}:{stored epoch}" of a report event (epoch "~resets" included). */
#define OTA_EVENT_ID_MAX 160
typedef struct {
    uint64_t seq;
    bool seq_valid;                /* seq was read and is valid (also after a failed decode) */
    char epoch[OTA_EPOCH_MAX + 1]; /* "0" when absent; set when seq_valid */
    size_t n_events;
    ota_event *events; /* n_events entries */
    void *mem_;        /* owns events and their strings */
} ota_report;

/* Decodes a report payload. On success returns 0 and fills *out (free with
 * ota_report_free). On failure returns -1, sets *err, and leaves *out without events;
 * out->seq_valid says whether out->seq could still be read (to name the report in the
 * error reply). */
int ota_codec_decode_report(const void *buf, size_t len, const ota_report_limits *lim,
                            ota_report *out, ota_error *err);
void ota_report_free(ota_report *r);

/* The cheap check of a report's envelope: a CBOR map with a valid seq (and a valid epoch
 * when present), without decoding the events. Fills seq, seq_valid and epoch of *out
 * (nothing to free). 0, or -1 with *err set as the full decoder would when it is the
 * envelope that is wrong. */
int ota_codec_report_envelope(const void *buf, size_t len, ota_report *out, ota_error *err);
/* The same check by the strict reader alone, which ota_codec_report_envelope() uses only
 * when its skim of a plain report is not sure; they give the same answer on every input
 * (the fuzz target and the unit tests compare them). */
int ota_codec_report_envelope_strict(const void *buf, size_t len, ota_report *out, ota_error *err);

/* Upgrade status words a vehicle may report (idle, downloading, downloaded, waiting,
 * upgrading, rolling_back, succeeded, failed, canceled). */
bool ota_status_valid(const char *s);
/* Upgrade triggers = task types (normal, forced, factory, spot_check, diagnostic). */
bool ota_trigger_valid(const char *s);

/* ---- operator file upload: $CONTROL/ota/v1/file {sha256, offset, total, data} ---- */

#define OTA_UPLOAD_CHUNK_MAX (1u << 20)         /* bytes of data in one chunk */
#define OTA_UPLOAD_FILE_MAX ((uint64_t)1 << 40) /* a package file: up to 1 TiB */

typedef struct {
    char sha256[65]; /* lowercase hex */
    uint64_t offset;
    uint64_t total;
    const uint8_t *data; /* points into the payload */
    size_t len;
} ota_upload_chunk;

/* Decodes a chunk: sha256 exactly 64 lowercase hex characters, total 1..OTA_UPLOAD_FILE_MAX,
 * data 0..OTA_UPLOAD_CHUNK_MAX bytes, offset + len <= total. 0, or -1 with *err. */
int ota_codec_decode_chunk(const void *buf, size_t len, ota_upload_chunk *out, ota_error *err);

/* ---- device shadow (SPEC §3): ota/v1/{vin}/shadow/update and shadow/get ---- */

#define OTA_SHADOW_MAX_PAYLOAD 16384 /* bytes of a shadow/update or shadow/get */
#define OTA_SHADOW_MAX_ECUS 256      /* entries of reported.ecus */

typedef struct {
    const char *ecu;     /* 1..OTA_ID_MAX bytes */
    const char *version; /* 1..OTA_ID_MAX bytes */
} ota_shadow_ecu;

/* shadow/update {reported:{fw, state, ecus:{ECU: version}, config_word?, usage?}, token?}.
 * Every text is a word of 1..OTA_ID_MAX bytes (token too); ecus has 0..OTA_SHADOW_MAX_ECUS
 * entries with distinct names, returned sorted by name (strcmp). Absent optional texts
 * are NULL. Unknown keys are ignored, at every level. */
typedef struct {
    const char *fw;
    const char *state;
    const char *config_word;
    const char *usage;
    size_t n_ecus;
    const ota_shadow_ecu *ecus;
    const char *token;
    void *mem_; /* owns the ecus and the texts */
} ota_shadow_update;

/* 0 and *out filled (free with ota_shadow_update_free), or -1 with *err (E_BAD_CBOR,
 * E_BAD_REQUEST, E_TOO_LARGE: over OTA_SHADOW_MAX_PAYLOAD bytes or OTA_SHADOW_MAX_ECUS
 * ECUs, a word over OTA_ID_MAX bytes; the message names the field, e.g.
 * "reported.ecus.BMS: expected definite-length text") and *out without anything to free. */
int ota_codec_decode_shadow_update(const void *buf, size_t len, ota_shadow_update *out,
                                   ota_error *err);
void ota_shadow_update_free(ota_shadow_update *u);

/* shadow/get {token?}. */
typedef struct {
    bool has_token;
    char token[OTA_ID_MAX + 1];
} ota_shadow_get;

int ota_codec_decode_shadow_get(const void *buf, size_t len, ota_shadow_get *out, ota_error *err);

/* ---- file blocks (SPEC §3): file/get {file, bs, from, n, bitmap?} -> file/data ---- */

#define OTA_FILE_BS_MIN 256
#define OTA_FILE_BS_MAX 131072
#define OTA_FILE_BS_DEFAULT 16384
#define OTA_FILE_N_MAX 64
#define OTA_FILE_GET_MAX_PAYLOAD 1024 /* bytes of a file/get (a full one is ~110) */

typedef struct {
    char file[65];   /* SHA-256, 64 lowercase hex; "" when the request named no valid file */
    uint32_t bs;     /* block size */
    uint64_t from;   /* first block */
    uint32_t n;      /* blocks from `from` on (1..OTA_FILE_N_MAX) */
    uint64_t blocks; /* selected: bit k = block from+k; all n without a bitmap */
} ota_file_get;

/* Decodes a file/get. 0, or -1 with *err: E_BAD_CBOR, E_TOO_LARGE (payload over
 * OTA_FILE_GET_MAX_PAYLOAD), E_BAD_REQUEST (shape, types, file not 64 lowercase hex, a
 * bitmap not of (n+7)/8 bytes or with bits set at n or above), E_BLOCK_SIZE, E_BLOCK_COUNT
 * (n out of range, a bitmap selecting nothing). out->file is set whenever the request's
 * file was valid, also when another field fails (so the error can name it). */
int ota_codec_decode_file_get(const void *buf, size_t len, ota_file_get *out, ota_error *err);

/* Block arithmetic. Blocks of a file of size bytes: ceil(size / bs). */
uint64_t ota_file_block_count(uint64_t size, uint32_t bs);
/* Bytes of block i (< count): bs, except the last, which is short. */
uint32_t ota_file_block_len(uint64_t size, uint32_t bs, uint64_t i);
/* The selected blocks of g that exist in a file of count blocks (bit k = block from+k). */
uint64_t ota_file_blocks_in(const ota_file_get *g, uint64_t count);

/* file/data {file, i, data}: writes the map header, file, i and the header of a byte
 * string of data_len bytes into out (room for OTA_FILE_DATA_HEAD_MAX); returns the length
 * written: the data's bytes follow it. */
#define OTA_FILE_DATA_HEAD_MAX 96
size_t ota_codec_file_data_head(const char *file, uint64_t i, size_t data_len, uint8_t *out);
/* The error {file, err, msg} on file/data; malloc()ed, NULL when out of memory. */
uint8_t *ota_codec_encode_file_error(const char *file, const ota_error *e, size_t *len);

/* ---- encoders (CBOR for vehicles, JSON for downstream) ----
 * Each returns a malloc()ed buffer and its length, or NULL when out of memory. */

/* Error reply on ota/v1/{vin}/error: {err, msg, seq?}; seq < 0 leaves it out. */
uint8_t *ota_codec_encode_error(const ota_error *e, int64_t seq, size_t *len);
/* A refused report's error reply: {err, msg, seq?, epoch?, last_seq?, last_epoch?} (E_REPLAY
 * names the last report taken of the VIN); seq or last_seq < 0 and NULL texts are left
 * out. */
uint8_t *ota_codec_encode_report_error(const ota_error *e, int64_t seq, const char *epoch,
                                       int64_t last_seq, const char *last_epoch, size_t *len);

/* Any JSON value (cJSON) as CBOR: objects as maps with text keys, arrays, strings, true,
 * false, null, integral numbers (|n| < 2^63) as CBOR integers, other numbers as doubles.
 * NULL also for a cJSON raw or invalid item or nesting deeper than OTA_JSON_CBOR_DEPTH. */
struct cJSON;
#define OTA_JSON_CBOR_DEPTH 64
uint8_t *ota_codec_json_to_cbor(const struct cJSON *json, size_t *len);

/* Shadow replies; a NULL token is left out, a NULL reported or desired is an empty map.
 * shadow/accepted {version, token?}
 * shadow/state    {version, reported, desired, token?}
 * shadow/delta    {version, desired} */
uint8_t *ota_codec_encode_shadow_accepted(int64_t version, const char *token, size_t *len);
uint8_t *ota_codec_encode_shadow_state(int64_t version, const struct cJSON *reported,
                                       const struct cJSON *desired, const char *token, size_t *len);
uint8_t *ota_codec_encode_shadow_delta(int64_t version, const struct cJSON *desired, size_t *len);

/* JSON event for ota/v1/events/status/{vin}:
 * {"id"?,"vin","seq","index","task","ts","status","error"?,"trigger","fw"?,"received_at"};
 * for a consent event (ota/v1/events/consent/{vin}):
 * {"id"?,"vin","seq","index","task","ts","answer","until"?,"error"?,"received_at"}.
 * "id" is ev->id, first, when set (docs/events.md "Event ids"). */
char *ota_codec_status_event_json(const char *vin, uint64_t seq, const ota_event *ev,
                                  int64_t received_ms, size_t *len);

/* ---- shared helpers ---- */

/* True when s is exactly 17 characters of 0-9A-HJ-NPR-Z (ISO 3779: no I, O, Q). */
bool ota_vin_valid(const char *s);
/* True when the n bytes at s are valid UTF-8 without NUL or C0 control characters. */
bool ota_text_valid(const char *s, size_t n);
/* Writes v's decimal digits to out (room for them: 20 bytes for any v; no NUL) and returns
 * how many: the hot paths' formatter (snprintf costs more than the rest of an event). */
size_t ota_dec_u64(char *out, uint64_t v);

#endif
