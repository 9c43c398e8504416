/*
 * sim_ecu.c — one simulated ECU's UDS server: sessions, security access (the documented
 * test key function of uds.h), the pre-programming services, RequestDownload /
 * TransferData (block sequence counter; a repeated block is acknowledged without being
 * written again, so a tester may resume after a lost response) / RequestTransferExit, the
 * image check (SHA-256 sent in the routine's option record), and ECUReset, which makes a
 * checked download the active image (the old one kept for the rollback routine FF02).
 * Flash and versions live in files, so they survive a process kill; sessions, security
 * and the download in progress are RAM and do not.
 */
#include "sim.h"
#include "uds.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void path(const sim *s, const sim_ecu *e, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.%s", s->dir, e->name, ext);
}

static int write_text(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");

    if (fp == NULL)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

static void read_text(const char *p, char *out, size_t cap)
{
    FILE *fp = fopen(p, "r");
    size_t n = 0;

    if (fp) {
        n = fread(out, 1, cap - 1, fp);
        fclose(fp);
    }
    out[n] = '\0';
}

int sim_ecu_init(sim *s, sim_ecu *e, const char *version)
{
    char p[512], image[128];

    e->session = UDS_SESSION_DEFAULT;
    path(s, e, "bin", p, sizeof p);
    if (access(p, F_OK) == 0)
        return 0;
    snprintf(image, sizeof image, "factory image of %s %s\n", e->name, version);
    if (write_text(p, image) != 0)
        return -1;
    path(s, e, "ver", p, sizeof p);
    return write_text(p, version);
}

/* ---- responses ---- */

static void negative(uint8_t sid, uint8_t nrc, uint8_t *resp, size_t *len)
{
    resp[0] = UDS_NEGATIVE;
    resp[1] = sid;
    resp[2] = nrc;
    *len = 3;
}

static void positive(const uint8_t *echo, size_t n, uint8_t *resp, size_t *len)
{
    resp[0] = (uint8_t)(echo[0] + 0x40);
    memcpy(resp + 1, echo + 1, n - 1);
    *len = n;
}

/* The reset: a checked download becomes the active image, the old one the previous. */
static void reset(sim *s, sim_ecu *e)
{
    char bin[512], prev[512], part[512], ver[512], pver[512], cur[SIM_VER_MAX];

    if (e->checked && !e->dl_active) {
        path(s, e, "bin", bin, sizeof bin);
        path(s, e, "prev", prev, sizeof prev);
        path(s, e, "part", part, sizeof part);
        path(s, e, "ver", ver, sizeof ver);
        path(s, e, "prev.ver", pver, sizeof pver);
        read_text(ver, cur, sizeof cur);
        if (rename(bin, prev) == 0 && rename(part, bin) == 0) {
            write_text(pver, cur);
            write_text(ver, e->fingerprint[0] ? e->fingerprint : "unknown");
            sim_log(s, "%s: reset: new image active, version %s", e->name, e->fingerprint);
        }
    } else {
        sim_log(s, "%s: reset", e->name);
    }
    e->session = UDS_SESSION_DEFAULT;
    e->unlocked = e->seed_sent = e->dl_active = e->checked = false;
    e->fingerprint[0] = '\0';
}

static void dsc(sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    static const uint8_t timing[] = {0x00, 0x32, 0x01, 0xF4}; /* P2 50 ms, P2* 5 s */
    uint8_t sub = n == 2 ? req[1] & 0x7F : 0;

    if (n != 2)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (sub < UDS_SESSION_DEFAULT || sub > UDS_SESSION_EXTENDED)
        return negative(req[0], UDS_NRC_SFNS, resp, len);
    if (sub == UDS_SESSION_PROGRAMMING && e->session == UDS_SESSION_DEFAULT)
        return negative(req[0], UDS_NRC_CNC, resp, len); /* programming via extended only */
    if (sub != e->session && !(sub == UDS_SESSION_PROGRAMMING && e->dl_active)) {
        e->unlocked = e->seed_sent = false; /* a session change locks the ECU */
        e->dl_active = false;
    }
    e->session = sub;
    resp[0] = 0x50;
    resp[1] = sub;
    memcpy(resp + 2, timing, sizeof timing);
    *len = 6;
}

static void security(sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    uint8_t key[8];
    size_t klen;

    if (n < 2)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (e->session != UDS_SESSION_PROGRAMMING)
        return negative(req[0], UDS_NRC_SNSIAS, resp, len);
    if (req[1] == UDS_SA_LEVEL) {
        resp[0] = 0x67;
        resp[1] = UDS_SA_LEVEL;
        if (e->unlocked)
            memset(e->seed, 0, 4); /* already unlocked: a zero seed */
        else if (RAND_bytes(e->seed, 4) != 1)
            return negative(req[0], UDS_NRC_CNC, resp, len);
        memcpy(resp + 2, e->seed, 4);
        e->seed_sent = !e->unlocked;
        *len = 6;
        return;
    }
    if (req[1] != UDS_SA_LEVEL + 1)
        return negative(req[0], UDS_NRC_SFNS, resp, len);
    if (!e->seed_sent)
        return negative(req[0], UDS_NRC_RSE, resp, len);
    e->seed_sent = false;
    uds_test_key(e->seed, 4, key, &klen);
    if (e->wrong_key)
        key[0] ^= 0xA5; /* fault: this ECU expects another key */
    if (n - 2 != klen || memcmp(req + 2, key, klen) != 0)
        return negative(req[0], ++e->bad_keys >= 3 ? UDS_NRC_ENOA : UDS_NRC_IK, resp, len);
    e->unlocked = true;
    e->bad_keys = 0;
    resp[0] = 0x67;
    resp[1] = UDS_SA_LEVEL + 1;
    *len = 2;
}

static void read_did(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    char p[512], text[SIM_VER_MAX] = "";
    uint16_t did = n == 3 ? (uint16_t)(req[1] << 8 | req[2]) : 0;

    if (n != 3)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (did == UDS_DID_APP_VERSION) {
        path(s, e, "ver", p, sizeof p);
        read_text(p, text, sizeof text);
    } else if (did == UDS_DID_BOOT_VERSION) {
        snprintf(text, sizeof text, "BOOT-1.0");
    } else if (did == UDS_DID_VIN) {
        snprintf(text, sizeof text, "%s", s->vin);
    } else if (did == UDS_DID_FINGERPRINT) {
        snprintf(text, sizeof text, "%s", e->fingerprint);
    } else {
        return negative(req[0], UDS_NRC_ROOR, resp, len);
    }
    memcpy(resp, req, 3);
    resp[0] = 0x62;
    memcpy(resp + 3, text, strlen(text));
    *len = 3 + strlen(text);
}

static void write_did(sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    if (n < 4 || n - 3 >= SIM_VER_MAX)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if ((req[1] << 8 | req[2]) != UDS_DID_FINGERPRINT)
        return negative(req[0], UDS_NRC_ROOR, resp, len);
    if (!e->unlocked)
        return negative(req[0], UDS_NRC_SAD, resp, len);
    memcpy(e->fingerprint, req + 3, n - 3);
    e->fingerprint[n - 3] = '\0';
    positive(req, 3, resp, len);
}

static bool image_matches(sim *s, sim_ecu *e, const uint8_t *sha)
{
    char p[512];
    uint8_t buf[65536], digest[32];
    size_t r;
    FILE *fp;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = false;

    path(s, e, "part", p, sizeof p);
    fp = fopen(p, "rb");
    if (fp && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
        while ((r = fread(buf, 1, sizeof buf, fp)) > 0)
            EVP_DigestUpdate(md, buf, r);
        ok = EVP_DigestFinal_ex(md, digest, NULL) == 1 && memcmp(digest, sha, 32) == 0;
    }
    if (fp)
        fclose(fp);
    EVP_MD_CTX_free(md);
    return ok;
}

/* FF02: the previous image becomes the active one again (A/B switch). */
static bool rollback(sim *s, sim_ecu *e)
{
    char bin[512], prev[512], tmp[512], ver[512], pver[512], tver[512];

    path(s, e, "bin", bin, sizeof bin);
    path(s, e, "prev", prev, sizeof prev);
    path(s, e, "swap", tmp, sizeof tmp);
    path(s, e, "ver", ver, sizeof ver);
    path(s, e, "prev.ver", pver, sizeof pver);
    path(s, e, "swap.ver", tver, sizeof tver);
    if (access(prev, F_OK) != 0)
        return false;
    return rename(bin, tmp) == 0 && rename(prev, bin) == 0 && rename(tmp, prev) == 0 &&
           rename(ver, tver) == 0 && rename(pver, ver) == 0 && rename(tver, pver) == 0;
}

static void routine(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    uint16_t rid = n >= 4 ? (uint16_t)(req[2] << 8 | req[3]) : 0;
    uint8_t status = 0;
    char p[512];

    if (n < 4 || req[1] != 0x01)
        return negative(req[0], n < 4 ? UDS_NRC_IMLOIF : UDS_NRC_SFNS, resp, len);
    if (rid == UDS_RID_PRE_PROGRAMMING) {
        status = 0; /* conditions hold in the simulator */
    } else if (rid == UDS_RID_ERASE || rid == UDS_RID_CHECK_IMAGE || rid == UDS_RID_ROLLBACK ||
               rid == UDS_RID_CHECK_DEPENDENCIES) {
        if (e->session != UDS_SESSION_PROGRAMMING || !e->unlocked)
            return negative(req[0], UDS_NRC_SAD, resp, len);
        if (rid == UDS_RID_ERASE) {
            path(s, e, "part", p, sizeof p);
            unlink(p);
            e->checked = e->dl_active = false;
        } else if (rid == UDS_RID_CHECK_IMAGE) {
            if (n != 4 + 32 || e->dl_active)
                return negative(req[0], n != 36 ? UDS_NRC_IMLOIF : UDS_NRC_RSE, resp, len);
            e->checked = image_matches(s, e, req + 4);
            status = e->checked ? 0 : 1;
        } else if (rid == UDS_RID_CHECK_DEPENDENCIES) {
            status = e->checked ? 0 : 1;
        } else {
            status = rollback(s, e) ? 0 : 1;
        }
    } else {
        return negative(req[0], UDS_NRC_ROOR, resp, len);
    }
    sim_log(s, "%s: routine %04X -> %u", e->name, rid, status);
    positive(req, 4, resp, len);
    resp[4] = status;
    *len = 5;
}

static void request_download(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp,
                             size_t *len)
{
    uint32_t addr, size;
    char p[512];
    int fd;

    if (uds_parse_request_download(req, n, &addr, &size) != 0)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (e->session != UDS_SESSION_PROGRAMMING)
        return negative(req[0], UDS_NRC_SNSIAS, resp, len);
    if (!e->unlocked)
        return negative(req[0], UDS_NRC_SAD, resp, len);
    if (addr != 0 || size == 0 || size > 256u * 1024 * 1024)
        return negative(req[0], UDS_NRC_ROOR, resp, len);
    path(s, e, "part", p, sizeof p);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return negative(req[0], UDS_NRC_UDNA, resp, len);
    close(fd);
    e->dl_active = true;
    e->checked = false;
    e->dl_size = size;
    e->dl_written = e->blocks = 0;
    e->last_ctr = 0;
    sim_log(s, "%s: download of %u bytes", e->name, size);
    resp[0] = 0x74;
    resp[1] = 0x40; /* 4-byte maxNumberOfBlockLength */
    resp[2] = (uint8_t)(s->max_block >> 24);
    resp[3] = (uint8_t)(s->max_block >> 16);
    resp[4] = (uint8_t)(s->max_block >> 8);
    resp[5] = (uint8_t)s->max_block;
    *len = 6;
}

static int append_part(sim *s, sim_ecu *e, const uint8_t *data, size_t n)
{
    char p[512];
    int fd, rc = -1;

    path(s, e, "part", p, sizeof p);
    fd = open(p, O_WRONLY);
    if (fd >= 0 && pwrite(fd, data, n, e->dl_written) == (ssize_t)n && fsync(fd) == 0)
        rc = 0;
    if (fd >= 0)
        close(fd);
    return rc;
}

static void transfer(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    uint8_t ctr = n >= 2 ? req[1] : 0, want = (uint8_t)(e->last_ctr + 1);
    sim_fault *cut;

    if (n < 2)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (!e->dl_active)
        return negative(req[0], UDS_NRC_RSE, resp, len);
    if (n > s->max_block)
        return negative(req[0], UDS_NRC_IMLOIF, resp, len);
    if (e->blocks > 0 && ctr == e->last_ctr) {
        sim_log(s, "%s: block %u repeated: acknowledged, not written", e->name, ctr);
        return positive(req, 2, resp, len);
    }
    if (ctr != want)
        return negative(req[0], UDS_NRC_WBSC, resp, len);
    if (e->dl_written + (n - 2) > e->dl_size)
        return negative(req[0], UDS_NRC_TDS, resp, len);
    if (append_part(s, e, req + 2, n - 2) != 0)
        return negative(req[0], UDS_NRC_GPF, resp, len);
    e->dl_written += (uint32_t)(n - 2);
    e->last_ctr = ctr;
    e->blocks++;
    cut = sim_fault_find(s, FAULT_CUT, e->addr, 0);
    if (cut && cut->used == 0 && e->blocks == cut->n) {
        cut->used = 1;
        s->cut_now = true; /* written, but the response is lost with the link */
        sim_log(s, "%s: fault: cutting the connection after block %u", e->name, e->blocks);
    }
    positive(req, 2, resp, len);
}

static void transfer_exit(sim *s, sim_ecu *e, const uint8_t *req, uint8_t *resp, size_t *len)
{
    if (!e->dl_active || e->dl_written != e->dl_size)
        return negative(req[0], UDS_NRC_RSE, resp, len);
    e->dl_active = false;
    sim_log(s, "%s: transfer exit, %u bytes in %u blocks", e->name, e->dl_written, e->blocks);
    positive(req, 1, resp, len);
}

static bool faulted(sim *s, sim_ecu *e, uint8_t sid, uint8_t *resp, size_t *len)
{
    sim_fault *f = sim_fault_find(s, FAULT_NRC, e->addr, sid);

    if (f == NULL || (f->n != 0 && f->used >= f->n))
        return false;
    f->used++;
    sim_log(s, "%s: fault: NRC %02X on %02X", e->name, f->nrc, sid);
    negative(sid, f->nrc, resp, len);
    return true;
}

void sim_ecu_handle(sim *s, sim_ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *len)
{
    bool suppress = n >= 2 && (req[1] & 0x80) &&
                    (req[0] == UDS_DSC || req[0] == UDS_ER || req[0] == UDS_TP ||
                     req[0] == UDS_CC || req[0] == UDS_CDTCS);

    *len = 0;
    if (n == 0 || faulted(s, e, req[0], resp, len))
        return;
    switch (req[0]) {
    case UDS_DSC:
        dsc(e, req, n, resp, len);
        break;
    case UDS_ER:
        if (n != 2 || req[1] != 0x01)
            return negative(req[0], n != 2 ? UDS_NRC_IMLOIF : UDS_NRC_SFNS, resp, len);
        positive(req, 2, resp, len);
        reset(s, e);
        break;
    case UDS_SA:
        security(e, req, n, resp, len);
        break;
    case UDS_CC:
    case UDS_CDTCS:
    case UDS_TP:
        if (n < 2)
            return negative(req[0], UDS_NRC_IMLOIF, resp, len);
        if (req[0] != UDS_TP && e->session == UDS_SESSION_DEFAULT)
            return negative(req[0], UDS_NRC_SNSIAS, resp, len);
        positive(req, 2, resp, len);
        break;
    case UDS_RDBI:
        read_did(s, e, req, n, resp, len);
        break;
    case UDS_WDBI:
        write_did(e, req, n, resp, len);
        break;
    case UDS_RC:
        routine(s, e, req, n, resp, len);
        break;
    case UDS_RD:
        request_download(s, e, req, n, resp, len);
        break;
    case UDS_TD:
        transfer(s, e, req, n, resp, len);
        break;
    case UDS_RTE:
        transfer_exit(s, e, req, resp, len);
        break;
    default:
        negative(req[0], UDS_NRC_SNS, resp, len);
    }
    if (suppress && resp[0] != UDS_NEGATIVE)
        *len = 0;
}
