/*
 * ota_plugin.h — the plugin's state and the functions its files share.
 *
 * Everything here lives on Mosquitto's single broker thread, except what the spool's
 * sync thread and the writer thread own (see store/). The broker thread decodes a
 * message (codec/), routes it by topic (router.c) to a handler (report.c, control.c),
 * which appends to the spool or answers; the writer thread ships the spool to the store.
 * Worker threads reach the broker thread only through queues drained on TICK (logq.c; the
 * signer threads of pkg.c also wake it, wake.h).
 */
#ifndef OTA_PLUGIN_H
#define OTA_PLUGIN_H

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>

#include "rate_limit.h"
#include "map.h"
#include "ota_codec.h"
#include "ota_spool.h"
#include "ota_writer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- configuration (config.c) ---- */

typedef struct {
    char *store_uri;
    char *spool_dir;
    char *file_dir;
    char **admin_users;
    size_t n_admin_users;
    unsigned spool_sync_ms;
    ota_report_limits limits;
    size_t writer_batch;
    unsigned writer_nice;
    /* Error words that set off a log replay (effects.c): normalized "w1,w2" (trimmed, no
     * empty words); "" when the option is "none". */
    char *log_replay_errors;
    /* file/get (file.c): data bytes sent per broker loop pass; blocks queued per vehicle */
    size_t file_pass_bytes;
    unsigned file_queue_blocks;
    /* pkg.c, keys.c: the Ed25519 signing key (PEM; its public key beside it as .pub), the
     * key-encryption key of packages' content keys, and how long a description is valid. */
    char *signing_key;
    char *content_kek;
    unsigned description_ttl_s;
    /* signer.h: threads signing descriptions off the broker thread */
    unsigned sign_threads;
    /* wake 1: worker threads (signer, writer) wake the idle broker (wake.h) when a result
     * is waiting for it; 0: results wait for the next TICK (up to 100 ms when idle) */
    unsigned wake;
    /* Hostile-input limits (issue 8, docs/security.md): requests per vehicle (rate_limit.h),
     * payload bytes of shadow and pkg/file requests, VINs of one createTask. */
    ota_rate_config rate;
    size_t max_shadow_bytes;
    size_t max_request_bytes;
    size_t max_task_vins;
    /* 1: reports of VINs the catalog lacks are taken as before (registration on first
     * contact); 0 (default): refused with E_UNKNOWN_VIN and quarantined (report.c) */
    unsigned accept_unknown_vins;
    /* This broker's owner id in notice claims (engine_claims.c): plugin_opt_broker_id, default
     * "<hostname>:<absolute spool_dir>" (stable across restarts, unique per broker). */
    char *broker_id;
    /* How long a minute of a task's timeout_min lasts, in ms (engine_exec.c): 60000;
     * tests shorten it (plugin_opt_task_minute_ms). */
    unsigned task_minute_ms;
    /* A test clock (issue 16): the engine's wall clock runs this many times faster from
     * the start (maintenance windows, start/end, timeouts); 1 (plugin_opt_test_time_scale). */
    unsigned test_time_scale;
    /* A test aid: every signature takes this many ms longer (signer.h); 0. */
    unsigned sign_delay_ms;
    /* Issue 13 (docs/security.md). auth "broker": Mosquitto's password_file or certificates
     * authenticate, the plugin's BASIC_AUTH only refuses a client id that is another
     * identity's VIN; "none": usernames are taken as given (tests, demos). file/data bytes
     * handed to the broker per vehicle: per second and at once (0: not paced). */
    char *auth;
    size_t file_vehicle_rate;
    size_t file_vehicle_burst;
    /* keys.c, pkg.c (issue 14): the signing algorithm, "ed25519" (NULL: the default) or
     * "es256", and how many pre-signed descriptions pkg.c keeps in memory (0: none). */
    char *signing_alg;
    size_t presign_max;
    /* standby.c (issue 15): how often the local snapshot of a shared store is saved whole,
     * in ms (plugin_opt_snapshot_period_ms; 60000); its change log refresh runs every 5 s,
     * or every period when that is shorter. */
    unsigned snapshot_period_ms;
} ota_config;

/* Reads the plugin_opt_* options into cfg (defaults for the rest). Returns 0, or -1
 * with a message naming the option in err. */
int ota_config_parse(ota_config *cfg, const struct mosquitto_opt *opts, int n, char *err,
                     size_t errlen);
void ota_config_free(ota_config *cfg);

/* ---- counters, read by getStats ---- */

typedef struct {
    uint64_t reports_accepted; /* stored by the writer and their effects set off (TICK) */
    uint64_t events_accepted;  /* events of those */
    uint64_t reports_spooled;  /* taken on the broker thread (durable, acked) */
    uint64_t reports_rejected;
    uint64_t rejected[OTA_ERR_CODE_COUNT]; /* by ota_err_code */
    uint64_t acl_denied;
    uint64_t status_events;
    uint64_t reports_replayed; /* seq not newer than the last of its epoch: E_REPLAY */
    uint64_t reports_unknown_vin;  /* from a VIN the catalog lacks: E_UNKNOWN_VIN */
    uint64_t reports_quarantined;  /* refused and kept in the quarantine (spooled) */
    uint64_t rejected_events;      /* ota/v1/events/rejected/{vin} published */
    uint64_t log_lines_dropped;
    uint64_t rate_limited;    /* requests refused by a vehicle's token bucket */
    uint64_t vehicles_kicked; /* disconnected for flooding */
    uint64_t oversize;        /* requests refused by their kind's payload limit */
} ota_counters;

typedef struct ota_logq ota_logq;
typedef struct ota_catalog ota_catalog;
typedef struct ota_control ota_control;
typedef struct ota_shadows ota_shadows;
typedef struct ota_tasks ota_tasks;
typedef struct ota_engine ota_engine; /* engine.h: dispatch and execution states */
typedef struct ota_grants ota_grants; /* grants.h: files each vehicle may fetch */
typedef struct ota_wake ota_wake;     /* wake.h: ending the broker's idle wait */
typedef struct ota_files ota_files;   /* file.h: block downloads in progress */
typedef struct ota_keys ota_keys;     /* keys.h: signing key and content-key KEK */
typedef struct ota_pkg ota_pkg;       /* pkg.c: descriptions waiting to be stored, counts */
typedef struct ota_follow ota_follow; /* follow.h: the change log's follower */
typedef struct ota_standby ota_standby; /* standby.c: the local snapshot */
typedef struct ota_rxswin ota_rxswin;   /* rxswin.h: RXSWIN updates on committed successes */

typedef struct {
    mosquitto_plugin_id_t *id;
    ota_config cfg;
    ota_catalog *catalog;
    ota_control *control;
    ota_shadows *shadows;
    ota_map last_seqs; /* report.c: the replay guard, per VIN */
    ota_tasks *tasks;
    ota_engine *engine; /* created at init, once the tasks are loaded */
    ota_grants *grants;
    ota_wake *wake; /* NULL: waking is off (option, or no free signal) */
    ota_files *files;
    ota_keys *keys;
    ota_pkg *pkg;
    ota_spool *spool;
    ota_writer *writer;
    ota_logq *logq;
    ota_limits *limits; /* rate_limit.h: token buckets per VIN, vehicles to kick */
    ota_follow *follow; /* NULL on SQLite (one broker: nobody else changes its store) */
    ota_standby *standby; /* standby.h: start without the database */
    ota_rxswin *rxswin;   /* rxswin.h (issue 17) */
    ota_counters counters;
} ota_plugin;

/* ---- identity (identity.c) ---- */

typedef enum { OTA_ID_OTHER = 0, OTA_ID_VEHICLE, OTA_ID_ADMIN } ota_id_kind;

typedef struct {
    ota_id_kind kind;
    const char *name; /* the VIN of a vehicle, the username of an admin, else NULL */
} ota_identity;

/* SPEC §2: the VIN is the username when set, else the client id. A connection whose client
 * id is a VIN other than that identity (a session takeover attempt) is OTA_ID_OTHER. */
ota_identity ota_identity_of(const ota_plugin *p, const struct mosquitto *client);
/* True when the client id of the connection is a VIN other than its own identity. */
bool ota_identity_foreign_client_id(const ota_plugin *p, const struct mosquitto *client);

/* ---- topics (router.c) ---- */

typedef enum {
    OTA_TOPIC_FOREIGN = 0, /* outside ota/v1/ and $CONTROL/ota/v1: not ours */
    OTA_TOPIC_VEHICLE,     /* ota/v1/{vin}/{name} */
    OTA_TOPIC_EVENTS,      /* ota/v1/events/... */
    OTA_TOPIC_CONTROL,     /* $CONTROL/ota/v1 and $CONTROL/ota/v1/file */
    OTA_TOPIC_CONTROL_RESPONSE,
    OTA_TOPIC_OTA_OTHER, /* anything else under our prefixes */
} ota_topic_kind;

typedef struct ota_request ota_request;
/* Returns MOSQ_ERR_SUCCESS to let the broker ack the request, or MOSQ_ERR_UNKNOWN when
 * it must not be acked (it could not be made durable): the broker then disconnects the
 * vehicle, which re-sends after reconnecting. */
typedef int (*ota_vehicle_handler)(ota_plugin *p, const ota_request *req);

/* What a vehicle topic name means. */
typedef struct {
    const char *name;            /* "report", "error", ... */
    bool request;                /* published by vehicles, consumed by the plugin */
    ota_vehicle_handler handler; /* requests only; NULL until the capability is built */
} ota_vehicle_topic;

typedef struct {
    ota_topic_kind kind;
    const char *vin; /* points into the topic; OTA_VIN_LEN chars, not terminated */
    size_t vin_len;
    const ota_vehicle_topic *vt; /* OTA_TOPIC_VEHICLE: NULL when the name is unknown */
} ota_topic;

void ota_topic_parse(const char *topic, ota_topic *t);
/* True when a subscription filter could only match topics under ota/v1/ or
 * $CONTROL/ota/v1 (its leading levels are literal). */
bool ota_filter_is_ours(const char *filter);
bool ota_topic_vin_is(const ota_topic *t, const char *vin);

/* ---- requests and replies (reply.c) ---- */

struct ota_request {
    const struct mosquitto *client;
    const char *client_id;
    const char *vin;
    const char *topic;
    const void *payload;
    size_t payloadlen;
    const mosquitto_property *properties;
    const ota_vehicle_topic *vt;
};

/* ota/v1/{vin}/{name} into buf (len bytes; topic.c: without a format, every reply and notice
 * builds one); NULL when it does not fit. */
const char *ota_vehicle_topic_of(char *buf, size_t len, const char *vin, const char *name);
/* Sends a CBOR reply to the requesting vehicle only: on the request's MQTT 5 Response
 * Topic (echoing its Correlation Data) when it has one, else on ota/v1/{vin}/{name}.
 * Takes ownership of buf (malloc'd). */
void ota_reply_cbor(const ota_request *req, const char *name, uint8_t *buf, size_t len);
/* The same with another content type (e.g. "application/cose"). */
void ota_reply_typed(const ota_request *req, const char *name, uint8_t *buf, size_t len,
                     const char *content_type);
/* The same, handing buf over to the broker (allocated with mosquitto_malloc: no copy). */
void ota_reply_owned(const ota_request *req, const char *name, void *buf, size_t len,
                     const char *content_type);
/* The same, borrowing buf (the broker copies it). */
void ota_reply_send(const ota_request *req, const char *name, const uint8_t *buf, size_t len,
                    const char *content_type);
/* A copy of the request's Response Topic and Correlation Data (NULL when it has neither),
 * for a reply sent after the request's callback returned: pass it as the properties of
 * an ota_request holding the client id and VIN; free with mosquitto_property_free_all. */
mosquitto_property *ota_reply_props_copy(const ota_request *req);
/* Answers an error on ota/v1/{vin}/error (or the Response Topic), logs it and counts it. */
void ota_reply_error(ota_plugin *p, const ota_request *req, const ota_error *e, int64_t seq);

/* ---- handlers ---- */

int ota_handle_report(ota_plugin *p, const ota_request *req);  /* report.c */
int ota_handle_pkg_get(ota_plugin *p, const ota_request *req); /* pkg.c */
void ota_reports_init(ota_plugin *p);
/* Start-up, before the writer runs: each VIN's last report seq from the store and the
 * spool (the replay guard's memory across restarts). 0, or -1 with err. */
int ota_reports_load(ota_plugin *p, ota_store *store, char *err, size_t errlen);
void ota_reports_free(ota_plugin *p);
/* Refuses a report the broker took (decode error, oversize, ...): kept in the quarantine
 * (spooled before the PUBACK), published on ota/v1/events/rejected/{vin} and answered on
 * the vehicle's error topic. Returns the callback's answer: success, or no PUBACK when
 * it cannot be spooled. */
int ota_report_refuse(ota_plugin *p, const ota_request *req, const ota_error *e);
/* TICK: the writer's results of stored (or refused) reports: status events, the engine's
 * transitions and seed 000's effects, the answers to refusals. */
void ota_reports_poll(ota_plugin *p);
/* resetVehicleSeq (report.c): the next report of vin is taken whatever its seq and epoch,
 * and stored under a new epoch key. 0, or -1 with err. */
int ota_reports_reset_seq(ota_plugin *p, const char *vin, struct cJSON *out, char *err,
                          size_t errlen);
/* Another broker's resetVehicleSeq of vin, followed from the change log (follow.c): the
 * guard forgets its seq when the reset is newer than every one it knows (more resets), and
 * counts it. 1 applied, 0 known already (this broker's own, or older), -1 out of memory. */
int ota_reports_follow_reset(ota_plugin *p, const char *vin, const char *epoch, uint32_t resets);
int ota_message_callback(int event, void *event_data, void *userdata); /* router.c */
int ota_acl_callback(int event, void *event_data, void *userdata);     /* acl.c */
int ota_auth_callback(int event, void *event_data, void *userdata);    /* identity.c */

/* ---- logging from any thread (logq.c) ---- */

ota_logq *ota_logq_new(size_t max_lines);
void ota_logq_free(ota_logq *q);
/* Thread-safe; matches ota_log_fn so the writer can use it. Drops lines past max. */
void ota_logq_push(void *q, int level, const char *msg);
/* Broker thread: writes queued lines with mosquitto_log_printf; returns lines dropped
 * since the last drain. */
uint64_t ota_logq_drain(ota_logq *q);

/* Milliseconds since the Unix epoch. */
int64_t ota_now_ms(void);

#endif
