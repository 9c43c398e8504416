/*
 * install_uds.c — the built-in UDS flasher (seed 001's sequence) over an agent_transport:
 *
 *   pre-programming  10 03, 31 01 02 02, 85 02, 28 03 03, 22 F189 / F180 / F190
 *   programming      10 02, 27 07 / 27 08 (key function), 31 01 FF 00 (erase),
 *                    2E F15B (fingerprint: the version), 34, 36 ..., 37,
 *                    31 01 02 01 (image SHA-256), 31 01 FF 01 (dependencies), 11 01
 *   post-programming 10 01, 22 F189 (the version read back)
 *
 * Every request waits through 0x78 (response pending). The resume blob is saved after
 * each confirmed TransferData block (offset, block sequence counter): an interrupted
 * transfer — a cut link, or the agent killed — goes on from the next block with the next
 * counter; a block whose answer was lost is sent again with the same counter, which the
 * ECU acknowledges without writing it twice (ISO 14229-1). If the ECU lost the download
 * (a reset, a power cut: requestSequenceError), programming starts over.
 * The rollback switches the ECU back to its previous image (31 01 FF 02, then 11 01).
 */
#include "agent.h"
#include "uds.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINK_RETRIES 8
#define RESP_MAX 4096
#define CALL_LINK (-1000)
#define CALL_UNREACHABLE (-1001)

enum { STEP_NONE, STEP_TRANSFER, STEP_RESET };

typedef struct {
    uint8_t magic, step, ctr, pad;
    uint32_t offset, block;
} uds_blob;

typedef struct {
    agent_installer ops;
    agent_transport *t;
    uint16_t addr;
    agent_key_fn key;
    void *key_arg;
} uds_installer;

typedef struct {
    uds_installer *u;
    const agent_install_ctx *c;
    char *err;
    size_t cap;
    uint8_t resp[RESP_MAX];
    long rlen;
    bool relinked; /* the link was lost and reopened: the ECU may have lost its state */
} flash;

int agent_test_key(void *arg, uint16_t ecu, uint8_t level, const uint8_t *seed, size_t n,
                   uint8_t *key, size_t *key_len)
{
    (void)arg;
    (void)ecu;
    (void)level;
    uds_test_key(seed, n, key, key_len);
    return 0;
}

long uds_call(agent_transport *t, uint16_t ecu, const uint8_t *req, size_t n, uint8_t *resp,
              size_t cap)
{
    int timeout = UDS_P2_MS;
    uint8_t nrc;
    long r;

    if (t->open(t) != 0 || t->send(t, ecu, req, n) != 0)
        return CALL_LINK;
    for (;;) {
        r = t->recv(t, ecu, resp, cap, timeout);
        if (r == -3)
            return CALL_UNREACHABLE;
        if (r < 0) {
            t->close(t); /* a late answer must not be taken for the next request's */
            return CALL_LINK;
        }
        if (uds_is_negative(resp, (size_t)r, req[0], &nrc)) {
            if (nrc == UDS_NRC_RCRRP) {
                timeout = UDS_P2STAR_MS;
                continue;
            }
            return -(long)nrc;
        }
        if (uds_is_positive(resp, (size_t)r, req[0], 1))
            return r;
        /* an answer to another service: ignore it */
    }
}

/* One request that must succeed; fills f->err otherwise. */
static int call(flash *f, const char *what, const uint8_t *req, size_t n)
{
    for (int attempt = 0;; attempt++) {
        f->rlen = uds_call(f->u->t, f->u->addr, req, n, f->resp, sizeof f->resp);
        if (f->rlen >= 0)
            return 0;
        if (f->rlen != CALL_LINK || attempt == LINK_RETRIES)
            break;
        f->relinked = true;
        uds_sleep_ms(100 * (attempt + 1));
    }
    if (f->rlen == CALL_LINK)
        snprintf(f->err, f->cap, "%s: %s: no answer (link to the ECU lost)", f->c->ecu, what);
    else if (f->rlen == CALL_UNREACHABLE)
        snprintf(f->err, f->cap, "%s: %s: not reachable (unknown target address)", f->c->ecu, what);
    else
        snprintf(f->err, f->cap, "%s: %s: NRC 0x%02lX %s", f->c->ecu, what, -f->rlen,
                 uds_nrc_name((uint8_t)-f->rlen));
    return -1;
}

static int call2(flash *f, const char *what, uint8_t a, uint8_t b)
{
    const uint8_t req[2] = {a, b};

    return call(f, what, req, 2);
}

static int read_did(flash *f, uint16_t did, char *out, size_t cap)
{
    const uint8_t req[3] = {UDS_RDBI, (uint8_t)(did >> 8), (uint8_t)did};
    char what[32];
    size_t n;

    snprintf(what, sizeof what, "22 %04X", did);
    if (call(f, what, req, 3) != 0 || f->rlen < 3)
        return -1;
    n = (size_t)f->rlen - 3 < cap - 1 ? (size_t)f->rlen - 3 : cap - 1;
    memcpy(out, f->resp + 3, n);
    out[n] = '\0';
    return 0;
}

static int routine(flash *f, const char *what, uint16_t rid, const uint8_t *opt, size_t n)
{
    uint8_t req[64];
    size_t len = uds_put_routine(req, rid, opt, n);

    if (call(f, what, req, len) != 0)
        return -1;
    if (f->rlen >= 5 && f->resp[4] != 0) {
        snprintf(f->err, f->cap, "%s: %s: routine result %u", f->c->ecu, what, f->resp[4]);
        return -1;
    }
    return 0;
}

static int pre_programming(flash *f)
{
    char text[128];

    f->c->progress(f->c->arg, 0, "pre-programming");
    return call2(f, "10 03", UDS_DSC, UDS_SESSION_EXTENDED) ||
                   routine(f, "31 01 02 02", UDS_RID_PRE_PROGRAMMING, NULL, 0) ||
                   call2(f, "85 02", UDS_CDTCS, 0x02) ||
                   call(f, "28 03 03", (const uint8_t[]){UDS_CC, 0x03, 0x03}, 3) ||
                   read_did(f, UDS_DID_APP_VERSION, text, sizeof text) ||
                   read_did(f, UDS_DID_BOOT_VERSION, text, sizeof text) ||
                   read_did(f, UDS_DID_VIN, text, sizeof text)
               ? -1
               : 0;
}

static int unlock(flash *f)
{
    uds_installer *u = f->u;
    uint8_t key[64], req[66], seed[16];
    size_t klen = 0, slen;

    if (call2(f, "27 07", UDS_SA, UDS_SA_LEVEL) != 0 || f->rlen < 2)
        return -1;
    slen = (size_t)f->rlen - 2 < sizeof seed ? (size_t)f->rlen - 2 : sizeof seed;
    memcpy(seed, f->resp + 2, slen);
    if (slen > 0 && memcmp(seed, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", slen) == 0)
        return 0; /* already unlocked */
    if (u->key(u->key_arg, u->addr, UDS_SA_LEVEL, seed, slen, key, &klen) != 0 ||
        klen > sizeof key) {
        snprintf(f->err, f->cap, "%s: the key function failed", f->c->ecu);
        return -1;
    }
    req[0] = UDS_SA;
    req[1] = UDS_SA_LEVEL + 1;
    memcpy(req + 2, key, klen);
    return call(f, "27 08", req, 2 + klen);
}

static void save(flash *f, uint8_t step, uint32_t offset, uint8_t ctr, uint32_t block)
{
    uds_blob b = {.magic = 'U', .step = step, .ctr = ctr, .offset = offset, .block = block};

    f->c->save(f->c->arg, &b, sizeof b);
}

/* 10 02 .. 34: returns the data bytes per TransferData block, 0 on failure. */
static uint32_t programming(flash *f)
{
    uint8_t req[80];
    uint32_t max_block = 0;
    size_t vlen = strlen(f->c->to_version);

    f->c->progress(f->c->arg, 5, "programming session");
    if (call2(f, "10 02", UDS_DSC, UDS_SESSION_PROGRAMMING) || unlock(f) ||
        routine(f, "31 01 FF 00", UDS_RID_ERASE, NULL, 0))
        return 0;
    if (vlen > 64) {
        snprintf(f->err, f->cap, "%s: version too long for the fingerprint", f->c->ecu);
        return 0;
    }
    req[0] = UDS_WDBI;
    req[1] = UDS_DID_FINGERPRINT >> 8;
    req[2] = UDS_DID_FINGERPRINT & 0xFF;
    memcpy(req + 3, f->c->to_version, vlen);
    if (call(f, "2E F15B", req, 3 + vlen) != 0)
        return 0;
    if (call(f, "34", req, uds_put_request_download(req, 0, (uint32_t)f->c->size)) != 0)
        return 0;
    if (uds_parse_download_resp(f->resp, (size_t)f->rlen, &max_block) != 0) {
        snprintf(f->err, f->cap, "%s: 34: bad response", f->c->ecu);
        return 0;
    }
    return max_block - 2 < 65536 ? max_block - 2 : 65536;
}

/* 36 from offset with counter ctr (the last confirmed). 0, -1 failure, 1 = the ECU lost
 * the download (start over): the first block after a resume or a lost link is refused
 * as out of sequence. */
static int transfer(flash *f, int fd, uint32_t offset, uint8_t ctr, uint32_t block, bool resumed)
{
    uint8_t *req = malloc(block + 2);
    uint64_t size = f->c->size;
    int rc = 0;

    while (rc == 0 && req && offset < size) {
        uint32_t n = size - offset < block ? (uint32_t)(size - offset) : block;
        req[0] = UDS_TD;
        req[1] = (uint8_t)(ctr + 1);
        if (pread(fd, req + 2, n, offset) != (ssize_t)n) {
            snprintf(f->err, f->cap, "%s: cannot read the image", f->c->ecu);
            rc = -1;
        } else if (call(f, "36", req, n + 2) != 0) {
            bool lost = -f->rlen == UDS_NRC_RSE || -f->rlen == UDS_NRC_WBSC;
            rc = (resumed || f->relinked) && lost ? 1 : -1;
        } else {
            offset += n;
            ctr++;
            resumed = f->relinked = false;
            save(f, STEP_TRANSFER, offset, ctr, block);
            f->c->progress(f->c->arg, (int)(10 + 80 * (uint64_t)offset / size), "transfer");
        }
    }
    if (req == NULL) {
        snprintf(f->err, f->cap, "%s: out of memory", f->c->ecu);
        rc = -1;
    }
    free(req);
    return rc;
}

static int finish(flash *f)
{
    char version[128];

    f->c->progress(f->c->arg, 90, "check");
    if (call(f, "37", (const uint8_t[]){UDS_RTE}, 1) ||
        routine(f, "31 01 02 01", UDS_RID_CHECK_IMAGE, f->c->sha256, 32) ||
        routine(f, "31 01 FF 01", UDS_RID_CHECK_DEPENDENCIES, NULL, 0))
        return -1;
    save(f, STEP_RESET, (uint32_t)f->c->size, 0, 0);
    if (call2(f, "11 01", UDS_ER, 0x01) != 0)
        return -1;
    f->c->progress(f->c->arg, 95, "post-programming");
    if (call2(f, "10 01", UDS_DSC, UDS_SESSION_DEFAULT) ||
        read_did(f, UDS_DID_APP_VERSION, version, sizeof version))
        return -1;
    if (strcmp(version, f->c->to_version) != 0) {
        snprintf(f->err, f->cap, "%s: version after reset is %s, not %s", f->c->ecu, version,
                 f->c->to_version);
        return -1;
    }
    f->c->progress(f->c->arg, 100, "done");
    return 0;
}

/* The whole sequence from 10 03. 0, -1, or 1 when the ECU lost the download. */
static int fresh(flash *f, int fd)
{
    uint32_t block;
    int rc;

    if (pre_programming(f) != 0 || (block = programming(f)) == 0)
        return -1;
    rc = transfer(f, fd, 0, 0, block, false);
    return rc != 0 ? rc : finish(f) != 0 ? -1 : 0;
}

static int u_install(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap)
{
    static flash f; /* one flash at a time; the response buffer is large */
    uds_blob b = {0};
    char version[128];
    int fd = open(c->file, O_RDONLY | O_CLOEXEC), rc = -1;
    bool resumed_transfer = false;

    f = (flash){.u = (uds_installer *)in, .c = c, .err = err, .cap = cap};
    if (fd < 0) {
        snprintf(err, cap, "%s: cannot open %s", c->ecu, c->file);
        return -1;
    }
    if (c->resume && c->resume_len == sizeof b)
        memcpy(&b, c->resume, sizeof b);
    if (b.magic == 'U' && b.step == STEP_RESET &&
        read_did(&f, UDS_DID_APP_VERSION, version, sizeof version) == 0 &&
        strcmp(version, c->to_version) == 0) {
        rc = 0; /* the reset happened before the interruption */
    } else if ((resumed_transfer = b.magic == 'U' && b.step == STEP_TRANSFER)) {
        c->progress(c->arg, 10, "transfer resumed");
        rc = transfer(&f, fd, b.offset, b.ctr, b.block, true);
        if (rc == 0)
            rc = finish(&f);
    }
    /* from the start: no blob, the ECU reset before its version changed, or it lost the
     * download (once more if it loses it again in this run: a power cut of the ECU) */
    bool again = rc != 0 && !(rc == -1 && resumed_transfer);
    for (int run = 0; again && run < 2; run++) {
        if (rc == 1)
            c->progress(c->arg, 0, "the ECU lost the download: programming again");
        err[0] = '\0';
        f.relinked = false;
        rc = fresh(&f, fd);
        again = rc == 1;
    }
    close(fd);
    return rc == 0 ? 0 : -1;
}

static int u_rollback(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap)
{
    static flash f;
    char version[128];

    f = (flash){.u = (uds_installer *)in, .c = c, .err = err, .cap = cap};
    c->progress(c->arg, 0, "rollback");
    if (call2(&f, "10 03", UDS_DSC, UDS_SESSION_EXTENDED) ||
        call2(&f, "10 02", UDS_DSC, UDS_SESSION_PROGRAMMING) || unlock(&f) ||
        routine(&f, "31 01 FF 02", UDS_RID_ROLLBACK, NULL, 0) || call2(&f, "11 01", UDS_ER, 0x01) ||
        call2(&f, "10 01", UDS_DSC, UDS_SESSION_DEFAULT) ||
        read_did(&f, UDS_DID_APP_VERSION, version, sizeof version))
        return -1;
    if (c->from_version[0] && strcmp(version, c->from_version) != 0) {
        snprintf(err, cap, "%s: version after rollback is %s, not %s", c->ecu, version,
                 c->from_version);
        return -1;
    }
    c->progress(c->arg, 100, "rolled back");
    return 0;
}

static void no_progress(void *arg, int pct, const char *step)
{
    (void)arg;
    (void)pct;
    (void)step;
}

static int u_read_version(agent_installer *in, const char *ecu, char *out, size_t cap)
{
    static flash f;
    static const agent_install_ctx c = {.progress = no_progress};
    char err[AGENT_ERR_MAX];
    agent_install_ctx cc = c;

    cc.ecu = ecu;
    f = (flash){.u = (uds_installer *)in, .c = &cc, .err = err, .cap = sizeof err};
    return read_did(&f, UDS_DID_APP_VERSION, out, cap);
}

static void u_free(agent_installer *in)
{
    free(in); /* the transport is shared by the ECUs behind one entity: not ours */
}

agent_installer *agent_uds_installer(agent_transport *t, uint16_t addr, agent_key_fn key,
                                     void *key_arg)
{
    uds_installer *u = calloc(1, sizeof *u);

    if (u == NULL)
        return NULL;
    u->ops = (agent_installer){"uds", u_install, u_rollback, u_read_version, u_free};
    u->t = t;
    u->addr = addr;
    u->key = key ? key : agent_test_key;
    u->key_arg = key_arg;
    return &u->ops;
}
