/*
 * agent_int.h — ota-agent's internals shared by its files: the agent (MQTT connection,
 * inbox filled by libmosquitto's thread, the job in hand), its SQLite state (state.c),
 * reports (agent_report.c), the download (agent_dl.c) and the installation with its
 * rollback and post-install check (agent_install.c). Everything but the libmosquitto
 * callbacks runs on the agent's own thread.
 */
#ifndef OTA_AGENT_INT_H
#define OTA_AGENT_INT_H

#include "agent.h"
#include "vcrypto.h"

#include <pthread.h>
#include <sqlite3.h>

struct mosquitto;

/* ---- state.c: the SQLite state file <state_dir>/agent.db ---- */

typedef struct {
    bool active;
    char task[VC_ID_MAX + 1], version[VC_ID_MAX + 1], trigger[VC_ID_MAX + 1];
    char step[16]; /* desc, download, gate, install, check, rollback, final */
    uint64_t req;  /* the pkg/get request id in use */
    uint8_t *cose; /* the accepted description (COSE_Sign1 bytes) */
    size_t cose_len;
    uint8_t ckey[VC_KEY_LEN];
    bool has_ckey;
    char status[16]; /* the final status and error word (step final) */
    char error[32];
} agent_job;

typedef struct {
    char state[16]; /* pending, installing, installed, rolled_back, rollback_failed */
    char from_version[VC_ID_MAX + 1];
    uint8_t blob[AGENT_BLOB_MAX];
    size_t blob_len;
} agent_ecu_row;

int st_open(sqlite3 **db, const char *dir);
int st_begin(sqlite3 *db);
int st_commit(sqlite3 *db);
uint64_t st_kv_u64(sqlite3 *db, const char *k, uint64_t dflt);
int st_kv_set_u64(sqlite3 *db, const char *k, uint64_t v);
void st_kv_text(sqlite3 *db, const char *k, char *out, size_t cap, const char *dflt);
int st_kv_set_text(sqlite3 *db, const char *k, const char *v);
int st_job_load(sqlite3 *db, agent_job *j);
int st_job_save(sqlite3 *db, const agent_job *j);
int st_job_end(sqlite3 *db, const char *task); /* job gone, task remembered as done */
bool st_task_done(sqlite3 *db, const char *task);
int st_file_load(sqlite3 *db, const char *sha, uint8_t *bitmap, size_t n, bool *complete);
bool st_file_complete(sqlite3 *db, const char *sha);
int st_file_save(sqlite3 *db, const char *sha, const uint8_t *bitmap, size_t n, bool complete);
int st_ecu_load(sqlite3 *db, uint32_t idx, agent_ecu_row *r);
int st_ecu_save(sqlite3 *db, uint32_t idx, const agent_ecu_row *r);
int st_ecus_clear(sqlite3 *db);
/* the report queue: add takes the next seq in the same transaction */
int st_report_add(sqlite3 *db, const uint8_t *payload, size_t n, uint64_t *seq);
/* the first queued report with seq > after: 1 found, 0 none, -1 error; *payload malloc'd */
int st_report_next(sqlite3 *db, uint64_t after, uint64_t *seq, uint8_t **payload, size_t *n);
int st_report_del(sqlite3 *db, uint64_t seq);
int st_report_count(sqlite3 *db);

/* ---- the agent ---- */

typedef struct agent_msg {
    struct agent_msg *next;
    char kind[16]; /* the topic after ota/v1/VIN/ */
    uint8_t *data;
    size_t len;
} agent_msg;

#define AGENT_ACKS_MAX 256

typedef struct {
    uint32_t idx; /* the description's ECU */
    uint32_t nblocks;
    uint8_t *have;  /* durable blocks (mirrors the state file) */
    uint8_t *asked; /* asked, not yet answered */
    int fd;
    int64_t last_rx_ms; /* last block or request */
    uint32_t next_from; /* where the next window starts looking */
    uint32_t got, last_pct;
} agent_dl;

typedef struct agent {
    const agent_config *cfg;
    sqlite3 *db;
    struct mosquitto *mosq;
    char prefix[96]; /* ota/v1/VIN/ */
    vc_pub pub;
    uint8_t vkey[32];
    bool has_vkey;

    pthread_mutex_t mu; /* guards what the libmosquitto thread touches: */
    pthread_cond_t cv;
    agent_msg *inbox, **inbox_tail;
    bool connected, reconnected;
    int acked[AGENT_ACKS_MAX]; /* mids of PUBACKs, taken by agent_reports_pump */
    uint32_t n_acked;

    int mids[AGENT_ACKS_MAX]; /* reports published on this connection, not yet acked */
    uint64_t mid_seq[AGENT_ACKS_MAX];
    uint32_t n_mids;
    uint64_t sent_upto; /* reports up to this seq were published on this connection */
    agent_job job;
    vc_desc desc;
    agent_dl dl;
    int64_t req_sent_ms;
    int64_t gate_next_ms; /* agent_gate.c: when a waiting gate runs its commands again */
    bool want_shadow;
    bool finished; /* once mode: a job ended */
    int exit_code;
} agent;

int64_t agent_now_ms(void);
int agent_publish(agent *a, const char *kind, const uint8_t *payload, size_t n, int *mid);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* agent_report.c: every event is queued durably, then published (one event a report) */
void agent_ev_download(agent *a, uint32_t pct, uint64_t bytes);
void agent_ev_progress(agent *a, const char *ecu, int pct, const char *step);
void agent_ev_status(agent *a, const char *status, const char *error, const char *fw);
void agent_reports_pump(agent *a); /* drops acked reports, publishes queued ones */
size_t agent_shadow_payload(agent *a, uint8_t *buf, size_t cap, const char *state);
size_t agent_pkg_get_payload(agent *a, uint8_t *buf, size_t cap);
size_t agent_file_get_payload(const char *sha, uint32_t bs, uint32_t from, uint32_t n,
                              const uint8_t *bitmap, size_t bitmap_len, uint8_t *buf, size_t cap);

/* agent_dl.c */
int agent_dl_step(agent *a); /* 0 going on, 1 all files ready, -1 failed */
void agent_dl_block(agent *a, const uint8_t *payload, size_t n);
void agent_dl_reset(agent *a); /* after a reconnect: ask again */
void agent_dl_close(agent *a);
void agent_file_path(const agent *a, const char *sha, const char *ext, char *out, size_t cap);

/* agent_install.c */
void agent_install_step(agent *a); /* install -> check -> final, or rollback -> final */

/* agent.c */
void agent_set_step(agent *a, const char *step);
/* agent_gate.c: a notice of a new job (mode set: resets the gate) or install_now for the
 * job in hand (mode NULL). */
void agent_gate_notice(agent *a, const char *mode, int64_t deadline, bool install_now);
/* agent_gate.c: 1 go on to install, 0 wait (called again), -1 the job ended (declined). */
int agent_gate_step(agent *a);
/* The description's user information in the driver's language (issue 17): logged, and put
 * in the environment of consent_cmd (OTA_PROMPT, OTA_RESULT_INFO, OTA_TEXT_LANGUAGE). */
void agent_gate_texts(agent *a);
void agent_ev_consent(agent *a, const char *answer, int64_t until); /* until -1: none */
void agent_ev_waiting(agent *a, const char *failed_conditions);
void agent_fail(agent *a, const char *error); /* job ends failed with a seed-000 word */
bool agent_desc_req_ok(const vc_desc *d, uint64_t sent_req);

#endif
