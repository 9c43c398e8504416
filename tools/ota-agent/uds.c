/*
 * uds.c — DoIP framing and socket I/O, UDS encode/decode helpers and the test key
 * function shared by ota-agent and ota-ecu-sim (uds.h).
 */
#include "uds.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void doip_put_hdr(uint8_t out[DOIP_HDR_LEN], uint16_t type, uint32_t len)
{
    out[0] = DOIP_VERSION;
    out[1] = (uint8_t)~DOIP_VERSION;
    out[2] = (uint8_t)(type >> 8);
    out[3] = (uint8_t)type;
    out[4] = (uint8_t)(len >> 24);
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
}

int doip_parse_hdr(const uint8_t in[DOIP_HDR_LEN], doip_hdr *h)
{
    if (in[0] != DOIP_VERSION || in[1] != 0xFF - DOIP_VERSION)
        return -1;
    h->type = (uint16_t)(in[2] << 8 | in[3]);
    h->len = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
    return h->len > DOIP_MAX_PAYLOAD ? -1 : 0;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int doip_send(int fd, uint16_t type, const uint8_t *payload, size_t n)
{
    uint8_t hdr[DOIP_HDR_LEN];

    doip_put_hdr(hdr, type, (uint32_t)n);
    return send_all(fd, hdr, sizeof hdr) == 0 && (n == 0 || send_all(fd, payload, n) == 0) ? 0 : -1;
}

int doip_send_diag(int fd, uint16_t sa, uint16_t ta, const uint8_t *uds, size_t n)
{
    uint8_t buf[DOIP_MAX_PAYLOAD];

    if (n + 4 > sizeof buf)
        return -1;
    buf[0] = (uint8_t)(sa >> 8);
    buf[1] = (uint8_t)sa;
    buf[2] = (uint8_t)(ta >> 8);
    buf[3] = (uint8_t)ta;
    memcpy(buf + 4, uds, n);
    return doip_send(fd, DOIP_DIAG, buf, n + 4);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly n bytes before the deadline (-1: none). 0, -1 closed/error, -2 timeout. */
static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int wait = deadline < 0 ? -1 : (int)(deadline - mono_ms());
        if (deadline >= 0 && wait <= 0)
            return -2;
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (pr == 0)
            return -2;
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

long doip_recv(int fd, doip_hdr *h, uint8_t *payload, size_t cap, int timeout_ms)
{
    uint8_t hdr[DOIP_HDR_LEN];
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    int rc = recv_all(fd, hdr, sizeof hdr, deadline);

    if (rc != 0)
        return rc;
    if (doip_parse_hdr(hdr, h) != 0 || h->len > cap)
        return -1;
    /* once a header arrived, the rest of the message is on its way: no short deadline */
    rc = recv_all(fd, payload, h->len, deadline < 0 ? -1 : mono_ms() + 10000);
    return rc == 0 ? (long)h->len : -1;
}

void uds_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- UDS ---- */

void uds_test_key(const uint8_t *seed, size_t n, uint8_t *key, size_t *key_len)
{
    uint32_t s = 0, k;

    for (size_t i = 0; i < n && i < 4; i++)
        s = s << 8 | seed[i];
    s ^= 0x4F544131u;
    k = s << 7 | s >> 25;
    key[0] = (uint8_t)(k >> 24);
    key[1] = (uint8_t)(k >> 16);
    key[2] = (uint8_t)(k >> 8);
    key[3] = (uint8_t)k;
    *key_len = 4;
}

bool uds_is_negative(const uint8_t *resp, size_t n, uint8_t sid, uint8_t *nrc)
{
    if (n < 3 || resp[0] != UDS_NEGATIVE || resp[1] != sid)
        return false;
    *nrc = resp[2];
    return true;
}

bool uds_is_positive(const uint8_t *resp, size_t n, uint8_t sid, size_t min)
{
    return n >= min && n >= 1 && resp[0] == (uint8_t)(sid + 0x40);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t uds_put_request_download(uint8_t *out, uint32_t addr, uint32_t size)
{
    out[0] = UDS_RD;
    out[1] = 0x00; /* dataFormatIdentifier: neither compressed nor encrypted */
    out[2] = 0x44; /* addressAndLengthFormatIdentifier: 4-byte size, 4-byte address */
    put_u32(out + 3, addr);
    put_u32(out + 7, size);
    return 11;
}

int uds_parse_request_download(const uint8_t *req, size_t n, uint32_t *addr, uint32_t *size)
{
    if (n != 11 || req[0] != UDS_RD || req[2] != 0x44)
        return -1;
    *addr = get_u32(req + 3);
    *size = get_u32(req + 7);
    return 0;
}

int uds_parse_download_resp(const uint8_t *resp, size_t n, uint32_t *max_block)
{
    size_t len;

    if (n < 2 || resp[0] != UDS_RD + 0x40)
        return -1;
    len = resp[1] >> 4;
    if (len == 0 || len > 4 || n != 2 + len)
        return -1;
    *max_block = 0;
    for (size_t i = 0; i < len; i++)
        *max_block = *max_block << 8 | resp[2 + i];
    return *max_block > 2 ? 0 : -1;
}

size_t uds_put_routine(uint8_t *out, uint16_t rid, const uint8_t *opt, size_t opt_len)
{
    out[0] = UDS_RC;
    out[1] = 0x01; /* startRoutine */
    out[2] = (uint8_t)(rid >> 8);
    out[3] = (uint8_t)rid;
    if (opt_len)
        memcpy(out + 4, opt, opt_len);
    return 4 + opt_len;
}

const char *uds_nrc_name(uint8_t nrc)
{
    switch (nrc) {
    case UDS_NRC_SNS:
        return "serviceNotSupported";
    case UDS_NRC_SFNS:
        return "subFunctionNotSupported";
    case UDS_NRC_IMLOIF:
        return "incorrectMessageLengthOrInvalidFormat";
    case UDS_NRC_CNC:
        return "conditionsNotCorrect";
    case UDS_NRC_RSE:
        return "requestSequenceError";
    case UDS_NRC_ROOR:
        return "requestOutOfRange";
    case UDS_NRC_SAD:
        return "securityAccessDenied";
    case UDS_NRC_IK:
        return "invalidKey";
    case UDS_NRC_ENOA:
        return "exceededNumberOfAttempts";
    case UDS_NRC_UDNA:
        return "uploadDownloadNotAccepted";
    case UDS_NRC_TDS:
        return "transferDataSuspended";
    case UDS_NRC_GPF:
        return "generalProgrammingFailure";
    case UDS_NRC_WBSC:
        return "wrongBlockSequenceCounter";
    case UDS_NRC_RCRRP:
        return "responsePending";
    case UDS_NRC_SNSIAS:
        return "serviceNotSupportedInActiveSession";
    default:
        return "NRC";
    }
}
