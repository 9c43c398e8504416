/*
 * agent.h — ota-agent, the vehicle gateway's OTA agent, as a library an integrator can
 * embed (the daemon main.c is one user): the transport to the ECUs behind an interface
 * (DoIP today; ISO-TP over SocketCAN fits the same three calls), the UDS client over it,
 * the installer interface (install / rollback / read_version with a progress callback and
 * a persisted resume blob) with its two installers (`uds`, `exec`), and the agent itself
 * (agent_run: MQTT, description checks, download, install, rollback, reports) whose
 * progress lives in its SQLite state (state.c) so that a power loss anywhere resumes.
 */
#ifndef OTA_AGENT_H
#define OTA_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- transport: one UDS request / response exchange per call ---- */

typedef struct agent_transport agent_transport;
struct agent_transport {
    /* (Re)connects if needed (DoIP: TCP + routing activation). 0 or -1. */
    int (*open)(agent_transport *t);
    /* Sends one UDS request to the ECU at logical address ecu. 0 or -1. */
    int (*send)(agent_transport *t, uint16_t ecu, const uint8_t *req, size_t n);
    /* The next UDS message from ecu within timeout_ms: its length, -1 on a broken link,
     * -2 on timeout, -3 when the ECU is not reachable (DoIP: unknown target address). */
    long (*recv)(agent_transport *t, uint16_t ecu, uint8_t *buf, size_t cap, int timeout_ms);
    /* Drops the link (the next open reconnects). */
    void (*close)(agent_transport *t);
    void (*free)(agent_transport *t);
};

/* DoIP (ISO 13400-2) over TCP to host:port, tester logical address `tester`. */
agent_transport *agent_doip_new(const char *host, int port, uint16_t tester);

/* ---- UDS client ---- */

#define UDS_P2_MS 2000      /* first answer */
#define UDS_P2STAR_MS 10000 /* after each 0x78 response pending */

/* One request: waits through 0x78 (response pending). Returns the response length with a
 * positive response in resp, -NRC (negative response), -1000 on a transport error /
 * timeout, -1001 when the ECU is not reachable. */
long uds_call(agent_transport *t, uint16_t ecu, const uint8_t *req, size_t n, uint8_t *resp,
              size_t cap);

/* The security key function: from the ECU's seed at `level`, the key. 0 or -1. The
 * built-in "test" one is uds.h's uds_test_key. */
typedef int (*agent_key_fn)(void *arg, uint16_t ecu, uint8_t level, const uint8_t *seed, size_t n,
                            uint8_t *key, size_t *key_len);
int agent_test_key(void *arg, uint16_t ecu, uint8_t level, const uint8_t *seed, size_t n,
                   uint8_t *key, size_t *key_len);

/* ---- installers ---- */

#define AGENT_BLOB_MAX 256
#define AGENT_ERR_MAX 256

typedef struct {
    const char *ecu;  /* ECU name (the description's `ecu`) */
    const char *file; /* the plain (decrypted, verified) image */
    uint64_t size;
    uint8_t sha256[32]; /* of the plain image */
    const char *from_version, *to_version;
    /* progress 0..100 with a step name; save persists the resume blob (durable on return) */
    void (*progress)(void *arg, int pct, const char *step);
    void (*save)(void *arg, const void *blob, size_t n);
    void *arg;
    const uint8_t *resume; /* the blob saved by an interrupted run, or NULL */
    size_t resume_len;
} agent_install_ctx;

typedef struct agent_installer agent_installer;
struct agent_installer {
    const char *kind;
    /* 0, or -1 with err filled */
    int (*install)(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap);
    int (*rollback)(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap);
    int (*read_version)(agent_installer *in, const char *ecu, char *out, size_t cap);
    void (*free)(agent_installer *in);
};

/* UDS over the transport (shared by the ECUs of one DoIP entity, not owned), ECU at logical address
 * `addr`, key function key. */
agent_installer *agent_uds_installer(agent_transport *t, uint16_t addr, agent_key_fn key,
                                     void *key_arg);

/* A command: run with OTA_ACTION (install / rollback / version), OTA_ECU, OTA_FILE,
 * OTA_FROM_VERSION, OTA_TO_VERSION, OTA_SHA256, OTA_RESUMED in its environment; stdout
 * lines "progress N [step]" are progress, "version V" the answer to `version`; exit 0 =
 * success. */
agent_installer *agent_exec_installer(const char *command);

/* ---- the agent ---- */

#define AGENT_MAX_ECUS 16

typedef struct {
    char name[65];
    agent_installer *installer;
} agent_ecu;

typedef struct {
    const char *host;
    int port;
    const char *vin;
    const char *cafile, *certfile, *keyfile; /* TLS when cafile is set */
    const char *server_pub;                  /* PEM: Ed25519 or P-256 */
    const char *vehicle_key;                 /* file: 64 hex chars, X25519 private key */
    const char *state_dir;
    const char *health_cmd;       /* optional, run after the versions check: exit 0 = healthy */
    const char *consent_cmd;      /* optional: asks the driver (exit 0 + "postpone N" /
                                     "decline" / anything else = accept; exit != 0 declines) */
    const char *precondition_cmd; /* optional: exit 0 = all hold, else stdout names the
                                     failed ones ("battery,parked") */
    const char *initial_fw;       /* the vehicle's firmware before any update by the agent */
    const char *language;         /* optional: the driver's language tag (issue 17), e.g. de:
                                     the description's texts in it, else its default */
    uint32_t block_size;          /* file/get bs */
    uint32_t window;              /* blocks per file/get */
    int request_timeout_ms;
    bool once; /* exit after the first job ends (tests, demo) */
    uint32_t n_ecus;
    agent_ecu ecus[AGENT_MAX_ECUS];
} agent_config;

/* Runs until a signal (or, with once, until a job ended). 0 success, else 1. */
int agent_run(const agent_config *cfg);

/* Reads the config file (docs/ota-agent.md) into cfg. 0 or -1. */
int agent_config_load(const char *path, agent_config *cfg, char *err, size_t cap);
/* Frees what agent_config_load allocated (strings, installers, transports). */
void agent_config_free(agent_config *cfg);

#endif
