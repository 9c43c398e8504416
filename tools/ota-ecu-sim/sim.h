/*
 * sim.h — ota-ecu-sim: several simulated ECUs behind one DoIP entity on loopback. Each ECU
 * answers the UDS services of a flash sequence (sim_ecu.c) and keeps its flash on disk in
 * the state directory: NAME.bin (the active image), NAME.prev (the previous one, for a
 * rollback), NAME.part (the download in progress), NAME.ver / NAME.prev.ver (versions).
 * sim_main.c parses the options, runs the TCP server and the fault injection.
 */
#ifndef OTA_ECU_SIM_H
#define OTA_ECU_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_ECUS 8
#define SIM_MAX_FAULTS 16
#define SIM_NAME_MAX 32
#define SIM_VER_MAX 64

typedef enum { FAULT_NRC, FAULT_PENDING, FAULT_CUT, FAULT_WRONG_KEY } sim_fault_kind;

typedef struct {
    sim_fault_kind kind;
    uint16_t addr;
    uint8_t sid; /* FAULT_NRC, FAULT_PENDING */
    uint8_t nrc; /* FAULT_NRC */
    uint32_t n;  /* NRC: times (0 = always); PENDING: 0x78 replies; CUT: after this block */
    uint32_t used;
} sim_fault;

typedef struct {
    uint16_t addr;
    char name[SIM_NAME_MAX];
    /* volatile (RAM) state, lost at a reset or a process kill */
    int session;
    bool unlocked, seed_sent, wrong_key;
    uint8_t seed[4];
    int bad_keys;
    bool dl_active, checked;
    uint32_t dl_size, dl_written, blocks; /* blocks accepted since the 34 */
    uint8_t last_ctr;
    char fingerprint[SIM_VER_MAX];
} sim_ecu;

typedef struct {
    const char *dir;
    const char *vin;
    uint16_t entity_addr;
    uint32_t max_block; /* maxNumberOfBlockLength of the 34 response */
    int pending_ms;
    uint32_t n_ecus, n_faults;
    sim_ecu ecus[SIM_MAX_ECUS];
    sim_fault faults[SIM_MAX_FAULTS];
    bool cut_now; /* set by a handler: close the connection after this request */
    bool verbose;
} sim;

/* Creates NAME.bin / NAME.ver with a factory image and `version` unless present. 0/-1. */
int sim_ecu_init(sim *s, sim_ecu *e, const char *version);

/* Handles one UDS request for e; writes the response to resp (*resp_len, 0 = none). */
void sim_ecu_handle(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp,
                    size_t *resp_len);

/* The fault of kind for (addr, sid), or NULL. */
sim_fault *sim_fault_find(sim *s, sim_fault_kind kind, uint16_t addr, uint8_t sid);

void sim_log(const sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
