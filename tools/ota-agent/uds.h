/*
 * uds.h — the wire formats shared by ota-agent (the tester) and ota-ecu-sim (the ECUs):
 * DoIP (ISO 13400-2) message framing over TCP and the UDS (ISO 14229-1) requests and
 * responses of a flash sequence, as pure encode/decode functions, plus blocking DoIP
 * socket helpers. Nothing here keeps state.
 */
#ifndef OTA_UDS_H
#define OTA_UDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- DoIP ---- */

#define DOIP_VERSION 0x02
#define DOIP_HDR_LEN 8
#define DOIP_MAX_PAYLOAD (64 * 1024 + 16)
#define DOIP_PORT 13400

enum {
    DOIP_GENERIC_NACK = 0x0000,
    DOIP_ROUTING_REQ = 0x0005,
    DOIP_ROUTING_RESP = 0x0006,
    DOIP_ALIVE_REQ = 0x0007,
    DOIP_ALIVE_RESP = 0x0008,
    DOIP_DIAG = 0x8001,
    DOIP_DIAG_ACK = 0x8002,
    DOIP_DIAG_NACK = 0x8003,
};

#define DOIP_ROUTING_OK 0x10      /* routing activation response code: success */
#define DOIP_NACK_UNKNOWN_TA 0x03 /* diagnostic NACK: unknown target address */

typedef struct {
    uint16_t type;
    uint32_t len;
} doip_hdr;

/* Writes the 8-byte generic header. */
void doip_put_hdr(uint8_t out[DOIP_HDR_LEN], uint16_t type, uint32_t len);

/* Checks version / inverse version and reads type and length. 0, or -1 when malformed. */
int doip_parse_hdr(const uint8_t in[DOIP_HDR_LEN], doip_hdr *h);

/* Sends one DoIP message (header + payload). 0 or -1. */
int doip_send(int fd, uint16_t type, const uint8_t *payload, size_t n);

/* Sends a diagnostic message sa -> ta with UDS data. 0 or -1. */
int doip_send_diag(int fd, uint16_t sa, uint16_t ta, const uint8_t *uds, size_t n);

/* Reads one whole DoIP message within timeout_ms (-1: no limit). Returns the payload
 * length, -1 on a closed or broken connection or a malformed header, -2 on timeout. */
long doip_recv(int fd, doip_hdr *h, uint8_t *payload, size_t cap, int timeout_ms);

/* Sleeps ms milliseconds (the simulator's delays, the flasher's back-off). */
void uds_sleep_ms(int ms);

/* ---- UDS ---- */

enum {
    UDS_DSC = 0x10,   /* DiagnosticSessionControl */
    UDS_ER = 0x11,    /* ECUReset */
    UDS_SA = 0x27,    /* SecurityAccess */
    UDS_CC = 0x28,    /* CommunicationControl */
    UDS_TP = 0x3E,    /* TesterPresent */
    UDS_CDTCS = 0x85, /* ControlDTCSetting */
    UDS_RDBI = 0x22,  /* ReadDataByIdentifier */
    UDS_WDBI = 0x2E,  /* WriteDataByIdentifier */
    UDS_RC = 0x31,    /* RoutineControl */
    UDS_RD = 0x34,    /* RequestDownload */
    UDS_TD = 0x36,    /* TransferData */
    UDS_RTE = 0x37,   /* RequestTransferExit */
    UDS_NEGATIVE = 0x7F,
};

enum {
    UDS_NRC_SNS = 0x11,    /* serviceNotSupported */
    UDS_NRC_SFNS = 0x12,   /* subFunctionNotSupported */
    UDS_NRC_IMLOIF = 0x13, /* incorrectMessageLengthOrInvalidFormat */
    UDS_NRC_CNC = 0x22,    /* conditionsNotCorrect */
    UDS_NRC_RSE = 0x24,    /* requestSequenceError */
    UDS_NRC_ROOR = 0x31,   /* requestOutOfRange */
    UDS_NRC_SAD = 0x33,    /* securityAccessDenied */
    UDS_NRC_IK = 0x35,     /* invalidKey */
    UDS_NRC_ENOA = 0x36,   /* exceededNumberOfAttempts */
    UDS_NRC_UDNA = 0x70,   /* uploadDownloadNotAccepted */
    UDS_NRC_TDS = 0x71,    /* transferDataSuspended */
    UDS_NRC_GPF = 0x72,    /* generalProgrammingFailure */
    UDS_NRC_WBSC = 0x73,   /* wrongBlockSequenceCounter */
    UDS_NRC_RCRRP = 0x78,  /* requestCorrectlyReceived-ResponsePending */
    UDS_NRC_SNSIAS = 0x7F, /* serviceNotSupportedInActiveSession */
};

enum { UDS_SESSION_DEFAULT = 1, UDS_SESSION_PROGRAMMING = 2, UDS_SESSION_EXTENDED = 3 };

/* Data identifiers the flash sequence reads and writes. */
enum {
    UDS_DID_FINGERPRINT = 0xF15B, /* written before download: the version being flashed */
    UDS_DID_BOOT_VERSION = 0xF180,
    UDS_DID_APP_VERSION = 0xF189,
    UDS_DID_VIN = 0xF190,
};

/* Routine identifiers (RoutineControl 31 01 RID). 0202/0201 as in seed 001; FF00 erase
 * and FF01 check programming dependencies are ISO 14229's; FF02 is ours: switch back to
 * the previous image of an A/B ECU (the installer's rollback). */
enum {
    UDS_RID_CHECK_IMAGE = 0x0201,
    UDS_RID_PRE_PROGRAMMING = 0x0202,
    UDS_RID_ERASE = 0xFF00,
    UDS_RID_CHECK_DEPENDENCIES = 0xFF01,
    UDS_RID_ROLLBACK = 0xFF02,
};

#define UDS_SA_LEVEL 0x07 /* requestSeed 27 07, sendKey 27 08 (seed 001) */
#define UDS_SEED_LEN 4

/* The documented test key function (ota-ecu-sim's and the agent's default):
 * key = rotl32(seed ^ 0x4F544131 ("OTA1"), 7), big-endian, 4 bytes. Production ECUs
 * have their own secret algorithm: ota-agent takes it as a plug-in (agent_key_fn). */
void uds_test_key(const uint8_t *seed, size_t n, uint8_t *key, size_t *key_len);

/* True when resp is the negative response 7F sid NRC; *nrc gets the NRC. */
bool uds_is_negative(const uint8_t *resp, size_t n, uint8_t sid, uint8_t *nrc);

/* True when resp is the positive response to sid (sid + 0x40) with at least `min` bytes. */
bool uds_is_positive(const uint8_t *resp, size_t n, uint8_t sid, size_t min);

/* 34 00 44 addr(4) size(4): dataFormat 00 (no compression/encryption), 4-byte address and
 * size. Returns the length (11). */
size_t uds_put_request_download(uint8_t *out, uint32_t addr, uint32_t size);

/* Parses 74 LFID maxNumberOfBlockLength. 0, or -1. */
int uds_parse_download_resp(const uint8_t *resp, size_t n, uint32_t *max_block);

/* Parses the request 34 back (the ECU's side). 0, or -1. */
int uds_parse_request_download(const uint8_t *req, size_t n, uint32_t *addr, uint32_t *size);

/* 31 01 RID option... Returns the length. */
size_t uds_put_routine(uint8_t *out, uint16_t rid, const uint8_t *opt, size_t opt_len);

const char *uds_nrc_name(uint8_t nrc);

#endif
