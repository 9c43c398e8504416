/*
 * agent_dl.c — ota-agent's resumable download (docs/protocol.md, file/get -> file/data):
 * the description's files in order, each block written at its offset in
 * <state_dir>/files/<sha256>.part and made durable (fdatasync) before its bit is set in
 * the state file's bitmap, so that after a restart only the blocks whose bit is clear are
 * asked for again (file/get with a bitmap). Two windows in flight; a window unanswered
 * for request_timeout_ms is asked again. A complete file is checked (size, SHA-256),
 * decrypted when the package is encrypted, and kept as <sha256>.img for the installers.
 */
#include "agent_int.h"

#include <cbor.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool bit(const uint8_t *m, uint32_t i)
{
    return m[i / 8] >> (i % 8) & 1;
}

static void set_bit(uint8_t *m, uint32_t i, bool on)
{
    if (on)
        m[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        m[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static size_t map_bytes(uint32_t nblocks)
{
    return (nblocks + 7) / 8;
}

void agent_file_path(const agent *a, const char *sha, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/files/%s.%s", a->cfg->state_dir, sha, ext);
}

void agent_dl_close(agent *a)
{
    if (a->dl.fd > 0)
        close(a->dl.fd);
    free(a->dl.have);
    free(a->dl.asked);
    memset(&a->dl, 0, sizeof a->dl);
    a->dl.idx = UINT32_MAX;
}

void agent_dl_reset(agent *a)
{
    if (a->dl.asked)
        memset(a->dl.asked, 0, map_bytes(a->dl.nblocks));
    a->dl.last_rx_ms = 0;
    a->dl.next_from = 0;
}

static int dl_open(agent *a, uint32_t idx)
{
    const vc_desc_ecu *f = &a->desc.ecus[idx];
    uint32_t bs = a->cfg->block_size;
    char path[1024];
    bool complete;

    agent_dl_close(a);
    a->dl.idx = idx;
    a->dl.nblocks = (uint32_t)((f->size + bs - 1) / bs);
    if (a->dl.nblocks == 0)
        a->dl.nblocks = 1;
    a->dl.have = calloc(1, map_bytes(a->dl.nblocks));
    a->dl.asked = calloc(1, map_bytes(a->dl.nblocks));
    agent_file_path(a, f->sha_hex, "part", path, sizeof path);
    a->dl.fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->dl.have == NULL || a->dl.asked == NULL || a->dl.fd < 0)
        return -1;
    st_file_load(a->db, f->sha_hex, a->dl.have, map_bytes(a->dl.nblocks), &complete);
    for (uint32_t i = 0; i < a->dl.nblocks; i++)
        a->dl.got += bit(a->dl.have, i);
    if (a->dl.got)
        agent_log("download: %s: %u of %u blocks already here", f->ecu, a->dl.got, a->dl.nblocks);
    return 0;
}

/* The whole file is here: size, SHA-256, decryption; <sha>.img for the installer. */
static int dl_finish(agent *a)
{
    const vc_desc_ecu *f = &a->desc.ecus[a->dl.idx];
    char part[1024], img[1024];
    uint8_t sha[32];
    struct stat sb;

    agent_file_path(a, f->sha_hex, "part", part, sizeof part);
    agent_file_path(a, f->sha_hex, "img", img, sizeof img);
    if (fsync(a->dl.fd) != 0 || fstat(a->dl.fd, &sb) != 0 || (uint64_t)sb.st_size != f->size ||
        vc_sha256_file(part, sha) != 0 || memcmp(sha, f->sha256, 32) != 0) {
        agent_log("download: %s: SHA-256 or size mismatch", f->ecu);
        return -1;
    }
    if (a->job.has_ckey) {
        if (vc_decrypt_file(part, img, a->job.ckey) != 0) {
            agent_log("download: %s: decryption failed (GCM tag)", f->ecu);
            return -1;
        }
        unlink(part);
    } else if (rename(part, img) != 0) {
        return -1;
    }
    st_file_save(a->db, f->sha_hex, a->dl.have, map_bytes(a->dl.nblocks), true);
    agent_log("download: %s: %s verified%s", f->ecu, f->name, a->job.has_ckey ? ", decrypted" : "");
    agent_dl_close(a);
    return 0;
}

static uint32_t asked_count(const agent_dl *d)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < d->nblocks; i++)
        n += bit(d->asked, i);
    return n;
}

/* Asks for the next window of missing blocks not yet asked for. false: none left. */
static bool ask_window(agent *a)
{
    agent_dl *d = &a->dl;
    uint32_t from = d->next_from, window = a->cfg->window, n, last = 0;
    uint8_t map[8] = {0}, buf[256];
    bool gap = false;
    size_t len;

    while (from < d->nblocks && (bit(d->have, from) || bit(d->asked, from)))
        from++;
    if (from >= d->nblocks)
        return false;
    n = d->nblocks - from < window ? d->nblocks - from : window;
    for (uint32_t k = 0; k < n; k++) {
        bool want = !bit(d->have, from + k) && !bit(d->asked, from + k);
        if (want) {
            map[k / 8] |= (uint8_t)(1u << (k % 8));
            set_bit(d->asked, from + k, true);
            last = k;
        } else {
            gap = true;
        }
    }
    n = last + 1;
    len = agent_file_get_payload(a->desc.ecus[d->idx].sha_hex, a->cfg->block_size, from, n, map,
                                 gap ? (n + 7) / 8 : 0, buf, sizeof buf);
    d->next_from = from + n;
    d->last_rx_ms = agent_now_ms();
    return len && agent_publish(a, "file/get", buf, len, NULL) == 0;
}

static void progress(agent *a)
{
    uint64_t total = 0, done = 0;
    uint32_t pct;

    for (uint32_t i = 0; i < a->desc.n_ecus; i++) {
        total += a->desc.ecus[i].size;
        if (i < a->dl.idx)
            done += a->desc.ecus[i].size;
    }
    done += (uint64_t)a->dl.got * a->cfg->block_size;
    if (done > total)
        done = total;
    pct = total ? (uint32_t)(done * 100 / total) : 100;
    if (pct / 25 > a->dl.last_pct / 25 || (pct == 100 && a->dl.last_pct != 100)) {
        a->dl.last_pct = pct;
        agent_ev_download(a, pct, done);
    }
}

int agent_dl_step(agent *a)
{
    for (uint32_t idx = 0; idx < a->desc.n_ecus; idx++) {
        const vc_desc_ecu *f = &a->desc.ecus[idx];
        char img[1024];
        agent_file_path(a, f->sha_hex, "img", img, sizeof img);
        if (access(img, R_OK) == 0 && st_file_complete(a->db, f->sha_hex))
            continue;
        if (a->dl.idx != idx && dl_open(a, idx) != 0)
            return -1;
        if (a->dl.got == a->dl.nblocks) {
            if (dl_finish(a) != 0)
                return -1;
            continue;
        }
        pthread_mutex_lock(&a->mu);
        bool up = a->connected;
        pthread_mutex_unlock(&a->mu);
        if (!up)
            return 0;
        if (a->dl.last_rx_ms && agent_now_ms() - a->dl.last_rx_ms > a->cfg->request_timeout_ms) {
            agent_log("download: %s: no block for %d ms, asking again", f->ecu,
                      a->cfg->request_timeout_ms);
            agent_dl_reset(a);
        }
        while (asked_count(&a->dl) < 2 * a->cfg->window && ask_window(a)) {
        }
        return 0;
    }
    return 1;
}

static bool text_is(cbor_item_t *v, const char *s)
{
    return v && cbor_isa_string(v) && cbor_string_length(v) == strlen(s) &&
           memcmp(cbor_string_handle(v), s, strlen(s)) == 0;
}

static void on_block(agent *a, uint32_t i, const uint8_t *data, size_t n)
{
    agent_dl *d = &a->dl;
    const vc_desc_ecu *f = &a->desc.ecus[d->idx];
    uint64_t off = (uint64_t)i * a->cfg->block_size;
    size_t want = f->size - off < a->cfg->block_size ? (size_t)(f->size - off) : a->cfg->block_size;

    if (i >= d->nblocks || bit(d->have, i) || n != want)
        return;
    if (pwrite(d->fd, data, n, (off_t)off) != (ssize_t)n || fdatasync(d->fd) != 0) {
        agent_log("download: cannot write block %u", i);
        return;
    }
    set_bit(d->have, i, true);
    set_bit(d->asked, i, false);
    st_file_save(a->db, f->sha_hex, d->have, map_bytes(d->nblocks), false);
    d->got++;
    d->last_rx_ms = agent_now_ms();
    progress(a);
}

void agent_dl_block(agent *a, const uint8_t *payload, size_t n)
{
    struct cbor_load_result res;
    cbor_item_t *m = cbor_load(payload, n, &res);
    cbor_item_t *file = vc_cbor_get(m, "file"), *i = vc_cbor_get(m, "i");
    cbor_item_t *data = vc_cbor_get(m, "data"), *err = vc_cbor_get(m, "err");

    if (a->dl.idx < a->desc.n_ecus && text_is(file, a->desc.ecus[a->dl.idx].sha_hex)) {
        if (i && cbor_isa_uint(i) && data && cbor_isa_bytestring(data) &&
            cbor_bytestring_is_definite(data))
            on_block(a, (uint32_t)cbor_get_int(i), cbor_bytestring_handle(data),
                     cbor_bytestring_length(data));
        else if (err && cbor_isa_string(err))
            agent_log("download: refused: %.*s", (int)cbor_string_length(err),
                      (const char *)cbor_string_handle(err));
    }
    if (m)
        cbor_decref(&m);
}
