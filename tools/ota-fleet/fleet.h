/*
 * fleet.h — shared types of ota-fleet, the vehicle fleet simulator / load generator.
 *
 * Design: one thread drives N libmosquitto clients (one per simulated vehicle), each
 * non-blocking. fleet_run.c owns the poll() loop; fleet_vehicle.c owns a vehicle's
 * life (connect, publish window, acks, reconnect); fleet_cbor.c builds report payloads
 * and reads error replies; fleet_acked.c writes the acked-reports file.
 *
 * Modes: `report` (vehicles publish QoS 1 reports, the ingestion load), `shadow`
 * (vehicles publish one shadow/update each, then stay connected and count the task
 * notices that arrive on shadow/delta: the dispatch benchmark's fleet) and `campaign`
 * (vehicles behave like real ones through an upgrade campaign: fleet_campaign.c, with
 * the checks of tools/vehicle-crypto/vcrypto.c and the block bookkeeping of fleet_dl.c).
 *
 * Scaling rules (a later issue runs 10,000 vehicles in one process): everything per
 * vehicle lives in a table indexed by vehicle id; the pollfd array has the same index;
 * vehicles that need attention go through O(1) ring queues, never a scan per event.
 * Only the housekeeping tick (keepalive, reconnect timers) visits every vehicle, at
 * most a few times per second.
 */
#ifndef OTA_FLEET_H
#define OTA_FLEET_H

#include "vcrypto.h"

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mosquitto;

#define FLEET_VIN_LEN 17
#define FLEET_MAX_PORTS 16
#define FLEET_TOPIC_MAX 40
#define FLEET_MAX_PENDING_CONNECTS 256 /* connects awaiting CONNACK at once */
#define FLEET_KEEPALIVE 60
#define FLEET_REPORT_FAIL_RC 0x80 /* PUBACK reason codes >= this are failures */

typedef enum {
    FLEET_MODE_REPORT,
    FLEET_MODE_SHADOW,
    FLEET_MODE_CAMPAIGN,
    FLEET_MODE_KEYS, /* print the vehicles' public keys and exit */
} fleet_mode;

typedef struct {
    fleet_mode mode;
    const char *host;
    int port;
    int ports[FLEET_MAX_PORTS]; /* --ports: vehicle i starts on ports[i % n_ports], and moves
                                   to the next one each time its link is lost (0: --port) */
    int n_ports;
    uint32_t vehicles;
    uint64_t reports;  /* per vehicle */
    uint32_t events;   /* per report */
    uint32_t inflight; /* unacked reports per vehicle */
    int mqtt;          /* 5 or 311 */
    uint64_t seq_start;
    bool seq_given;
    char vin_prefix[6];
    uint64_t vin_offset;
    const char *acked_path;
    double rate;      /* reports/s over the whole fleet, 0 = unlimited */
    double timeout_s; /* 0 = none */
    bool json;
    bool quiet;
    bool reconnect;
    /* shadow mode */
    double wait_s;          /* stay connected this long once every vehicle is up */
    uint64_t expect;        /* ... or until this many notices arrived (0 = no target) */
    const char *ready_path; /* a line is written there once every vehicle is up */
    bool subscribe_delta;   /* subscribe to the own shadow/delta (plain-broker baseline) */
    /* campaign mode */
    const char *pub_path;   /* the plugin's Ed25519 public key (PEM) */
    const char *key_seed;   /* vehicle X25519 keys = f(seed, VIN) */
    const char *fw;         /* firmware version reported before the upgrade */
    uint32_t block_size;    /* file/get bs */
    uint32_t window;        /* blocks per file/get */
    double failure_rate;    /* share of vehicles whose upgrade fails */
    double disconnect_rate; /* chance that a file/get window is cut by a lost link */
    double drop_rate;       /* chance that a block is lost (asked again with a bitmap) */
    double install_step_s;  /* time per simulated install step */
    double request_timeout_s;
    uint64_t rng_seed;
} fleet_config;

typedef enum {
    FV_WAITING,    /* in the connect queue */
    FV_CONNECTING, /* CONNECT sent, no CONNACK yet */
    FV_ACTIVE,     /* publishing reports (shadow mode: updating, then waiting) */
    FV_DRAINING,   /* everything acked; waiting for the SUBACK barrier (late error replies) */
    FV_CLOSING,    /* DISCONNECT sent */
    FV_LOST,       /* connection lost; fleet_vehicle_service decides what next */
    FV_BACKOFF,    /* waiting to reconnect */
    FV_DONE,       /* terminal: all reports finished, disconnected cleanly */
    FV_FAILED,     /* terminal: gave up */
} fleet_vstate;

typedef struct {
    int mid;         /* 0 = free slot */
    uint64_t report; /* report index 0..reports-1 */
} fleet_slot;

struct fleet;

typedef struct fleet_vehicle {
    struct fleet *fleet;
    struct mosquitto *mosq; /* NULL while not connected */
    uint32_t id;            /* index in fleet.v and fleet.pfd */
    fleet_vstate state;
    char vin[FLEET_VIN_LEN + 1];
    char report_topic[FLEET_TOPIC_MAX];
    char error_topic[FLEET_TOPIC_MAX];
    uint64_t next_report; /* first report never sent */
    uint64_t finished;    /* reports acked (successfully or not) */
    uint32_t inflight;    /* used entries of slots */
    uint32_t n_resend;    /* entries of resend */
    fleet_slot *slots;    /* cfg.inflight entries */
    uint64_t *resend;     /* reports to send again after a reconnect, ascending */
    int barrier_mid;
    bool no_retry; /* CONNACK refused or a local error: do not reconnect */
    bool in_ready;
    bool in_connq;
    unsigned attempts; /* failed connection attempts in a row */
    unsigned losses;   /* links lost: with --ports, which broker is next */
    double retry_at;   /* FV_BACKOFF: when to reconnect */
    double lost_at;    /* monotonic time of the last lost link not yet served again, 0 = none */
    /* shadow mode */
    char update_topic[FLEET_TOPIC_MAX];
    char delta_topic[FLEET_TOPIC_MAX];
    int update_mid;          /* the shadow/update awaiting its PUBACK */
    int sub_mid;             /* the shadow/delta SUBSCRIBE awaiting its SUBACK */
    bool update_sent;        /* on this connection */
    bool up;                 /* update acked (and delta subscribed) on this connection */
    int64_t first_notice_ms; /* wall clock; 0 = none yet */
    /* campaign mode */
    struct fleet_job *job;   /* the task being worked on (fleet_campaign.c), or NULL */
    uint64_t last_ctr;       /* highest description counter accepted */
    uint8_t last_digest[32]; /* SHA-256 of its payload (a retry's answer has the same) */
    uint64_t next_seq;       /* seq of the next report */
    uint64_t rng;            /* xorshift state */
    char done_task[65];      /* the last task finished: its notices are stale */
    bool upgraded;           /* reports the target version as its firmware */
} fleet_vehicle;

/* FIFO of vehicle ids; each vehicle is in a given ring at most once (in_* flags). */
typedef struct {
    uint32_t *items;
    uint32_t cap;
    uint32_t head;
    uint32_t len;
} fleet_ring;

typedef struct {
    uint64_t reports_sent;  /* publishes, resends included */
    uint64_t reports_acked; /* success PUBACKs */
    uint64_t events_acked;
    uint64_t puback_failures;
    uint64_t error_replies;
    uint64_t replays;     /* E_REPLAY replies: a re-sent report the broker had taken already */
    uint64_t disconnects; /* connections lost (not closed by us) */
    uint64_t connect_failures;
    uint64_t connect_refused;
    uint64_t resent;
    /* shadow mode */
    uint64_t updates_acked;
    uint64_t notices;           /* shadow/delta messages with desired.task */
    uint32_t vehicles_notified; /* vehicles with at least one notice */
    int64_t first_notice_ms;    /* wall clock of the first / last notice, 0 = none */
    int64_t last_notice_ms;
    /* campaign mode */
    uint64_t descs_verified;  /* descriptions whose signature and fields checked out */
    uint64_t keys_unwrapped;  /* content keys opened */
    uint64_t files_verified;  /* files whose SHA-256 (and GCM tag) matched */
    uint64_t bytes;           /* file bytes received */
    uint64_t blocks;          /* blocks received (kept) */
    uint64_t blocks_dropped;  /* blocks thrown away on purpose (--drop-rate) */
    uint64_t bitmap_requests; /* file/get asking for some blocks of a range only */
    uint64_t resumes;         /* file/get after a lost link or a timeout */
    uint64_t links_cut;       /* connections dropped on purpose (--disconnect-rate) */
    uint64_t verify_failures; /* anything checked that was wrong: exit status 1 */
    uint32_t in_download, in_install, succeeded, failed, canceled;
    /* served again: the first message or PUBACK after a lost link (ota-ha-bench) */
    int64_t served_again_last_ms; /* wall clock of the last one, 0 = none */
} fleet_stats;

typedef struct fleet_acked fleet_acked;

typedef struct fleet {
    fleet_config cfg;
    fleet_vehicle *v;   /* cfg.vehicles entries */
    struct pollfd *pfd; /* cfg.vehicles entries, same index as v */
    fleet_ring ready;   /* vehicles to service (send, finish, handle a lost link) */
    fleet_ring connq;   /* vehicles to connect */
    fleet_stats st;
    fleet_acked *acked; /* NULL without --acked */
    uint8_t *buf;       /* report encoding scratch */
    size_t buf_cap;
    uint32_t pending_connects;
    uint32_t terminal; /* vehicles FV_DONE or FV_FAILED */
    uint32_t n_backoff;
    uint32_t connected;
    bool broker_gone;
    bool timed_out;
    bool interrupted;
    double tokens; /* --rate token bucket */
    double start;  /* monotonic seconds */
    double end;    /* last ack, or the end of the run */
    int64_t t0_ms; /* wall clock at start: base of event timestamps */
    /* shadow mode */
    uint32_t up;      /* vehicles up now (fleet_vehicle.up) */
    bool all_up;      /* every vehicle was up at once (the ready line is written) */
    double all_up_at; /* monotonic */
    int64_t ready_ms; /* wall clock of the ready line */
    bool closing;     /* the wait is over: every vehicle disconnects */
    /* campaign mode */
    vc_pub pub; /* the plugin's signing key */
    /* ms from each lost link to the vehicle being served again (fleet_vehicle.c) */
    uint32_t *again_ms;
    size_t n_again, cap_again;
} fleet;

/* fleet_run.c */
double fleet_now(void); /* monotonic seconds */
int64_t fleet_wall_ms(void);
void fleet_ring_push(fleet_ring *r, uint32_t id);
uint32_t fleet_ring_pop(fleet_ring *r);
void fleet_mark_ready(fleet_vehicle *v);
void fleet_refresh_pollfd(fleet_vehicle *v);
/* Runs until every vehicle is finished, the timeout, or *stop. Returns 0, or -1 on a
 * setup failure (already reported). */
int fleet_run(fleet *f, volatile sig_atomic_t *stop);

/* fleet_vehicle.c */
int fleet_vehicle_init(fleet *f, fleet_vehicle *v, uint32_t id);
void fleet_vehicle_free(fleet_vehicle *v);
void fleet_vehicle_connect(fleet_vehicle *v);
/* Acts on the vehicle's state: sends reports (while tokens allow; *tokens is NULL
 * without a rate limit), finishes, or handles a lost connection. */
void fleet_vehicle_service(fleet_vehicle *v, double *tokens);
/* True when the vehicle would send a report if it had a token. */
bool fleet_vehicle_wants_token(const fleet_vehicle *v);

void fleet_vehicle_close(fleet_vehicle *v); /* clean DISCONNECT; DONE once it is out */

/* fleet_campaign.c (campaign mode; the connection life stays in fleet_vehicle.c) */
void fleet_campaign_on_connect(fleet_vehicle *v);
void fleet_campaign_on_lost(fleet_vehicle *v);
void fleet_campaign_on_publish(fleet_vehicle *v, int mid, int rc);
void fleet_campaign_on_message(fleet_vehicle *v, const char *topic, const void *payload, int len);
void fleet_campaign_service(fleet_vehicle *v);
void fleet_campaign_tick(fleet *f, double now); /* timers: install steps, request timeouts */
void fleet_campaign_free(fleet_vehicle *v);

/* fleet_cbor.c */
/* Encodes report `report` (0-based) of vehicle events into buf; returns its length or
 * 0 when buf is too small. */
size_t fleet_cbor_report(const fleet_config *cfg, int64_t t0_ms, uint64_t report, uint8_t *buf,
                         size_t cap);
size_t fleet_cbor_report_bound(uint32_t events);
/* Encodes the shadow/update {reported:{fw:"1.0.0", state:"idle", ecus:{}}}; returns its
 * length or 0 when buf is too small. */
size_t fleet_cbor_shadow_update(uint8_t *buf, size_t cap);
size_t fleet_cbor_shadow_state(uint8_t *buf, size_t cap, const char *fw, const char *state);

/* One campaign event (fleet_campaign.c), sent as a report of its own. */
typedef enum { FLEET_EV_DOWNLOAD, FLEET_EV_UPGRADE, FLEET_EV_STATUS } fleet_ev_type;
typedef struct {
    fleet_ev_type type;
    uint8_t pct;
    const char *ecu;    /* progress events */
    const char *step;   /* upgrade_progress, or NULL */
    const char *status; /* upgrade_status */
    const char *error;  /* upgrade_status failed, or NULL */
    const char *fw;     /* upgrade_status, or NULL */
    uint64_t bytes;     /* download_progress */
    int64_t ts;
} fleet_event;
size_t fleet_cbor_campaign_report(uint8_t *buf, size_t cap, uint64_t seq, const char *task,
                                  const char *trigger, const fleet_event *ev);
size_t fleet_cbor_pkg_get(uint8_t *buf, size_t cap, uint64_t req, const char *task, const char *cur,
                          const char *tgt);
size_t fleet_cbor_file_get(uint8_t *buf, size_t cap, const char *file, uint32_t bs, uint32_t from,
                           uint32_t n, const uint8_t *bitmap, uint32_t bitmap_len);
/* True when payload is a shadow/delta whose desired.task is present and not null. */
bool fleet_cbor_is_notice(const void *payload, int len);
/* Formats an error reply {err, msg, seq?} for humans into out. */
void fleet_cbor_describe_error(const void *payload, int len, char *out, size_t cap);
/* True when a described error (fleet_cbor_describe_error) is E_REPLAY: the broker took
 * that report before (its PUBACK was lost and the vehicle re-sent it), not an error. */
bool fleet_error_is_replay(const char *described);

/* fleet_acked.c */
fleet_acked *fleet_acked_open(const char *path);
void fleet_acked_add(fleet_acked *a, const char *vin, uint64_t seq, uint32_t events);
int fleet_acked_flush(fleet_acked *a);
void fleet_acked_close(fleet_acked *a);

#endif
