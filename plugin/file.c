/*
 * file.c — resumable block download over MQTT: file/get -> file/data (see file.h).
 *
 * Design.
 * - Checking (MESSAGE callback): decode (codec/file_msg.c), the grant (grants.h: only files
 *   named in a description issued to this VIN; checked before the repository so a vehicle
 *   cannot probe which files exist), the file (<file_dir>/<sha256>, opened once and shared
 *   by every request for it: a refcounted table of open files), the blocks that exist
 *   (E_OFFSET when none), the vehicle's queue limit (E_RATE_LIMITED). The accepted request
 *   keeps what later slices need: the file, bs, from, the mask of blocks still to send,
 *   and a copy of its MQTT 5 Response Topic and Correlation Data as a property list (the
 *   request itself is gone when the callback returns). posix_fadvise(WILLNEED) asks the
 *   kernel to read the range ahead, without waiting.
 * - Sending (TICK, once per broker loop pass): round-robin over the vehicles with queued
 *   blocks, one block of each in turn, until plugin_opt_file_pass_bytes data bytes were
 *   sent in this pass (always at least one block). A block is read with pread straight
 *   behind its CBOR header (codec: ota_codec_file_data_head), so it is never copied in the
 *   plugin, and handed to the broker, which sends it at the start of the next pass. Files
 *   are never loaded whole: a pass holds at most pass_bytes + one block of file data.
 *   Reading runs on the broker thread: the repository is read-only, blocks come from the
 *   page cache (read ahead on request), a pread of 128 KiB from it costs ~10-20 µs; a cold
 *   block costs one disk read, never an fsync or a network wait (docs/decisions.md).
 * - Vehicles: a map by VIN of those with queued blocks, linked in a ring (the cursor is
 *   the next to serve). A vehicle's record goes when its queue is empty or it disconnects.
 *   Requests are answered to the client id that sent them; a request from another client
 *   id of the same VIN (a new connection) replaces the old connection's queue.
 * - Pacing (issue 13: one vehicle that never reads its socket must not grow the broker).
 *   Mosquitto 2.0.11 gives a plugin no view of a client's queue, and a message it drops
 *   for a full per-client queue (max_queued_messages/bytes) stays in its message store for
 *   good (src/loop.c single_publish: the stored message is never freed when
 *   db__message_insert drops it). So the plugin itself bounds what a vehicle may have
 *   waiting in the broker, per VIN, in a record kept across its downloads (`pace`):
 *   a byte bucket (plugin_opt_file_vehicle_rate bytes per second, up to
 *   plugin_opt_file_vehicle_burst at once) that a block must fit before it is handed to
 *   the broker (the vehicle is skipped in that pass otherwise), and the bytes accepted per
 *   file on the current connection: a file/get that would take a connection past the
 *   file's size plus one burst is refused (E_RATE_LIMITED), so asking for the same blocks
 *   over and over without reading them gets nothing more. Both are reset only by time and
 *   by a new connection, which frees what Mosquitto held for the old one
 *   (docs/security.md, "Memory per vehicle").
 */
#include "file.h"

#include "batch.h"
#include "control.h"
#include "engine.h"
#include "grants.h"
#include "map.h"
#include "ota_errf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An open repository file, shared by the requests for it. */
typedef struct {
    char sha[65];
    int fd;
    uint64_t size;
    uint32_t refs;
} open_file;

typedef struct file_req {
    struct file_req *next;
    open_file *f;
    uint32_t bs;
    uint64_t from;
    uint64_t left;             /* blocks still to send: bit k = block from+k */
    mosquitto_property *props; /* Response Topic and Correlation Data, or NULL */
} file_req;

/* Bytes of one file accepted for the current connection. */
typedef struct {
    char sha[65];
    uint64_t bytes;
} sent_file;

/* A VIN's pacing, kept while the plugin runs (~100 bytes per VIN that downloaded). */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    int64_t milli_bytes; /* byte tokens, in thousandths */
    int64_t last_ms;
    char *client_id; /* the connection `sent` counts for; NULL: none yet */
    sent_file *sent;
    uint32_t n_sent;
} pace;

typedef struct vehicle {
    char vin[OTA_VIN_LEN + 1];
    char *client_id;
    pace *pace;
    file_req *head, *tail;
    uint32_t queued;             /* blocks */
    struct vehicle *next, *prev; /* the ring */
} vehicle;

struct ota_files {
    char *dir;
    size_t pass_bytes;
    uint32_t queue_blocks;
    size_t rate, burst; /* per vehicle: bytes per second (0: not paced), at once */
    ota_map paces;      /* pace by VIN */
    ota_map vehicles;   /* vehicle by VIN: those with queued blocks */
    ota_map files;      /* open_file by sha256 */
    vehicle *ring;      /* next to serve */
    uint64_t queued;    /* blocks, all vehicles */
    ota_file_stats st;
};

static ota_map_key vehicle_key(const void *rec)
{
    return ota_map_key_str(((const vehicle *)rec)->vin);
}

static ota_map_key file_key(const void *rec)
{
    return ota_map_key_str(((const open_file *)rec)->sha);
}

static ota_map_key pace_key(const void *rec)
{
    return ota_map_key_str(((const pace *)rec)->vin);
}

ota_files *ota_files_new(const char *dir, size_t pass_bytes, uint32_t queue_blocks, size_t rate,
                         size_t burst)
{
    ota_files *fs = calloc(1, sizeof *fs);
    if (!fs || !(fs->dir = strdup(dir))) {
        free(fs);
        return NULL;
    }
    fs->pass_bytes = pass_bytes;
    fs->queue_blocks = queue_blocks;
    fs->rate = rate;
    fs->burst = burst;
    ota_map_init(&fs->paces, sizeof(pace), pace_key);
    ota_map_init(&fs->vehicles, sizeof(vehicle), vehicle_key);
    ota_map_init(&fs->files, sizeof(open_file), file_key);
    return fs;
}

/* ---------------------------------------------------------------- open files */

/* The open file of sha (opened on first use), or NULL with errno set. */
static open_file *file_acquire(ota_files *fs, const char *sha)
{
    open_file *f = ota_map_get_str(&fs->files, sha);
    if (f) {
        f->refs++;
        return f;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fs->dir, sha);
    open_file rec = {.fd = open(path, O_RDONLY | O_CLOEXEC), .refs = 1};
    struct stat sb;
    if (rec.fd < 0) {
        return NULL;
    }
    int rc = fstat(rec.fd, &sb);
    if (rc != 0 || !S_ISREG(sb.st_mode)) {
        int e = rc != 0 ? errno : ENOENT; /* a directory or device is no file of ours */
        close(rec.fd);
        errno = e;
        return NULL;
    }
    memcpy(rec.sha, sha, sizeof rec.sha);
    rec.size = (uint64_t)sb.st_size;
    f = ota_map_put(&fs->files, &rec);
    if (!f) {
        close(rec.fd);
        errno = ENOMEM;
    }
    return f;
}

static void file_fini(void *rec)
{
    close(((open_file *)rec)->fd);
}

static void file_release(ota_files *fs, open_file *f)
{
    if (--f->refs == 0) {
        ota_map_remove(&fs->files, f, file_fini);
    }
}

/* ---------------------------------------------------------------- pacing */

static void pace_forget_connection(pace *pc)
{
    free(pc->client_id);
    free(pc->sent);
    pc->client_id = NULL;
    pc->sent = NULL;
    pc->n_sent = 0;
}

static void pace_fini(void *rec)
{
    pace_forget_connection(rec);
}

/* The pacing record of the request's VIN, its per-file counts those of the request's
 * connection; NULL when out of memory. */
static pace *pace_for(ota_files *fs, const ota_request *req, int64_t now_ms)
{
    pace *pc = ota_map_get_str(&fs->paces, req->vin);
    if (!pc) {
        pace rec = {.milli_bytes = (int64_t)fs->burst * 1000, .last_ms = now_ms};
        snprintf(rec.vin, sizeof rec.vin, "%s", req->vin);
        pc = ota_map_put(&fs->paces, &rec);
    }
    if (pc && (!pc->client_id || strcmp(pc->client_id, req->client_id) != 0)) {
        pace_forget_connection(pc); /* a new connection: the old one's queue is gone */
        pc->client_id = strdup(req->client_id);
        if (!pc->client_id) {
            return NULL;
        }
    }
    return pc;
}

/* The bytes of file sha accepted for pc's connection (added when missing). */
static sent_file *pace_file(pace *pc, const char *sha)
{
    for (uint32_t i = 0; i < pc->n_sent; i++) {
        if (strcmp(pc->sent[i].sha, sha) == 0) {
            return &pc->sent[i];
        }
    }
    sent_file *grown = realloc(pc->sent, (pc->n_sent + 1) * sizeof *grown);
    if (!grown) {
        return NULL;
    }
    pc->sent = grown;
    sent_file *f = &grown[pc->n_sent++];
    memcpy(f->sha, sha, sizeof f->sha);
    f->bytes = 0;
    return f;
}

/* Refills pc's bucket; true when a block of len bytes may go to the broker now. */
static bool pace_allows(const ota_files *fs, pace *pc, uint32_t len, int64_t now_ms)
{
    if (fs->rate == 0) {
        return true;
    }
    int64_t full = (int64_t)fs->burst * 1000;
    int64_t elapsed = now_ms > pc->last_ms ? now_ms - pc->last_ms : 0;
    pc->last_ms = now_ms > pc->last_ms ? now_ms : pc->last_ms;
    int64_t cap = full / (int64_t)fs->rate + 1; /* a full refill: no overflow after idling */
    pc->milli_bytes += (elapsed < cap ? elapsed : cap) * (int64_t)fs->rate;
    if (pc->milli_bytes > full) {
        pc->milli_bytes = full;
    }
    return pc->milli_bytes >= (int64_t)len * 1000;
}

/* ---------------------------------------------------------------- requests and vehicles */

static void req_free(ota_files *fs, file_req *r)
{
    file_release(fs, r->f);
    mosquitto_property_free_all(&r->props);
    free(r);
}

/* Drops every queued request of v (counted as dropped when dropped is true). */
static void vehicle_clear(ota_files *fs, vehicle *v, bool dropped)
{
    while (v->head) {
        file_req *r = v->head;
        v->head = r->next;
        req_free(fs, r);
    }
    v->tail = NULL;
    fs->queued -= v->queued;
    if (dropped) {
        fs->st.blocks_dropped += v->queued;
    }
    v->queued = 0;
}

static void ring_insert(ota_files *fs, vehicle *v)
{
    if (!fs->ring) {
        v->next = v->prev = v;
        fs->ring = v;
        return;
    }
    /* just before the cursor: served last in the current round */
    v->next = fs->ring;
    v->prev = fs->ring->prev;
    v->prev->next = v;
    fs->ring->prev = v;
}

static void vehicle_fini(void *rec)
{
    free(((vehicle *)rec)->client_id);
}

/* Takes v (its queue empty) out of the ring and the map. */
static void vehicle_remove(ota_files *fs, vehicle *v)
{
    if (v->next == v) {
        fs->ring = NULL;
    } else {
        v->prev->next = v->next;
        v->next->prev = v->prev;
        if (fs->ring == v) {
            fs->ring = v->next;
        }
    }
    ota_map_remove(&fs->vehicles, v, vehicle_fini);
}

/* The vehicle record of the request's VIN, for the request's client id; NULL when out
 * of memory. */
static vehicle *vehicle_for(ota_files *fs, const ota_request *req)
{
    vehicle *v = ota_map_get_str(&fs->vehicles, req->vin);
    if (v && strcmp(v->client_id, req->client_id) != 0) {
        vehicle_clear(fs, v, true); /* another connection's queue: that one is gone */
        char *id = strdup(req->client_id);
        if (!id) {
            vehicle_remove(fs, v);
            return NULL;
        }
        free(v->client_id);
        v->client_id = id;
    }
    if (v) {
        return v;
    }
    vehicle rec = {.client_id = strdup(req->client_id),
                   .pace = ota_map_get_str(&fs->paces, req->vin)};
    snprintf(rec.vin, sizeof rec.vin, "%s", req->vin);
    v = rec.client_id ? ota_map_put(&fs->vehicles, &rec) : NULL;
    if (!v) {
        free(rec.client_id);
        return NULL;
    }
    ring_insert(fs, v);
    return v;
}

/* ---------------------------------------------------------------- refusals */

/* Codes of any topic (SPEC §6) go on ota/v1/{vin}/error; file/get's own on file/data as
 * {file, err, msg}. Every refusal is logged and counted. */
static int refuse(ota_plugin *p, const ota_request *req, const char *file, ota_err_code code,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(ota_plugin *p, const ota_request *req, const char *file, ota_err_code code,
                  const char *fmt, ...)
{
    ota_error e = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    ota_verrf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    p->files->st.refused[code]++;
    if (code == OTA_E_BAD_CBOR || code == OTA_E_TOO_LARGE || code == OTA_E_RATE_LIMITED) {
        ota_reply_error(p, req, &e, -1);
        return MOSQ_ERR_SUCCESS;
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: %s from %s on %s: %s", ota_err_name(code), req->vin,
                         req->topic ? req->topic : "file/get", e.msg);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_file_error(file, &e, &len);
    ota_reply_cbor(req, "file/data", buf, len);
    return MOSQ_ERR_SUCCESS;
}

static int refuse_decoded(ota_plugin *p, const ota_request *req, const ota_file_get *g,
                          const ota_error *e)
{
    return refuse(p, req, g->file, e->code, "%s", e->msg);
}

/* ---------------------------------------------------------------- file/get */

/* Blocks queued for the connection that sent req (a new connection has none). */
static uint32_t queued_for(const ota_files *fs, const ota_request *req)
{
    const vehicle *v = ota_map_get_str(&fs->vehicles, req->vin);
    return v && strcmp(v->client_id, req->client_id) == 0 ? v->queued : 0;
}

/* Queues the blocks sel of g for the vehicle; the file reference is taken over. */
static int enqueue(ota_plugin *p, const ota_request *req, const ota_file_get *g, open_file *f,
                   uint64_t sel)
{
    ota_files *fs = p->files;
    uint32_t n = (uint32_t)__builtin_popcountll(sel), queued = queued_for(fs, req);
    if (queued + n > fs->queue_blocks) {
        file_release(fs, f);
        return refuse(p, req, g->file, OTA_E_RATE_LIMITED,
                      "file/get %s: %u blocks still queued, %u more over the limit of %u", g->file,
                      queued, n, fs->queue_blocks);
    }
    pace *pc = pace_for(fs, req, ota_mono_ms());
    sent_file *sf = pc ? pace_file(pc, f->sha) : NULL;
    uint64_t bytes = (uint64_t)n * g->bs < f->size ? (uint64_t)n * g->bs : f->size;
    if (sf && fs->rate && sf->bytes + bytes > f->size + fs->burst) {
        file_release(fs, f);
        return refuse(p, req, g->file, OTA_E_RATE_LIMITED,
                      "file/get %s: %llu bytes of it already sent on this connection (the file "
                      "has %llu): ask only for the blocks still missing",
                      g->file, (unsigned long long)sf->bytes, (unsigned long long)f->size);
    }
    file_req *r = sf ? calloc(1, sizeof *r) : NULL;
    vehicle *v = r ? vehicle_for(fs, req) : NULL;
    if (!v) {
        free(r);
        file_release(fs, f);
        return refuse(p, req, g->file, OTA_E_INTERNAL, "out of memory");
    }
    sf->bytes += bytes;
    *r = (file_req){
        .f = f, .bs = g->bs, .from = g->from, .left = sel, .props = ota_reply_props_copy(req)};
    if (v->tail) {
        v->tail->next = r;
    } else {
        v->head = r;
    }
    v->tail = r;
    v->queued += n;
    fs->queued += n;
    fs->st.requests++;
    uint64_t last = g->from + 63 - (uint64_t)__builtin_clzll(sel);
    posix_fadvise(f->fd, (off_t)(g->from * g->bs), (off_t)((last + 1 - g->from) * g->bs),
                  POSIX_FADV_WILLNEED);
    return MOSQ_ERR_SUCCESS;
}

int ota_handle_file_get(ota_plugin *p, const ota_request *req)
{
    ota_file_get g;
    ota_error e;
    if (ota_codec_decode_file_get(req->payload, req->payloadlen, &g, &e) != 0) {
        return refuse_decoded(p, req, &g, &e);
    }
    if (!ota_grants_allows(p->grants, req->vin, g.file)) {
        if (ota_engine_grants_park(p, req, ota_handle_file_get, true)) {
            return MOSQ_ERR_SUCCESS; /* another broker may have issued it: read, then again */
        }
        return refuse(p, req, g.file, OTA_E_UNAUTHORIZED,
                      "file %s is not named in a description issued to %s", g.file, req->vin);
    }
    open_file *f = file_acquire(p->files, g.file);
    if (!f) {
        return errno == ENOENT
                   ? refuse(p, req, g.file, OTA_E_NOT_FOUND, "file %s is not in the repository",
                            g.file)
                   : refuse(p, req, g.file, OTA_E_INTERNAL, "file %s: %s", g.file, strerror(errno));
    }
    uint64_t count = ota_file_block_count(f->size, g.bs);
    uint64_t sel = ota_file_blocks_in(&g, count);
    if (sel == 0) {
        file_release(p->files, f);
        return refuse(p, req, g.file, OTA_E_OFFSET,
                      "from %llu: no block selected exists (the file has %llu blocks of %u bytes)",
                      (unsigned long long)g.from, (unsigned long long)count, g.bs);
    }
    return enqueue(p, req, &g, f, sel);
}

/* ---------------------------------------------------------------- sending */

/* Sends the next block of v's first request; returns its data bytes (0 when it could not
 * be read: the request is then dropped with E_INTERNAL). Finished requests leave. */
static size_t send_block(ota_plugin *p, vehicle *v)
{
    ota_files *fs = p->files;
    file_req *r = v->head;
    uint64_t i = r->from + (uint64_t)__builtin_ctzll(r->left);
    r->left &= r->left - 1;
    uint32_t n = ota_file_block_len(r->f->size, r->bs, i);
    uint8_t *buf = malloc(OTA_FILE_DATA_HEAD_MAX + (size_t)n);
    size_t head = buf ? ota_codec_file_data_head(r->f->sha, i, n, buf) : 0;
    ssize_t got = head ? pread(r->f->fd, buf + head, n, (off_t)(i * r->bs)) : -1;
    ota_request req = {.client_id = v->client_id, .vin = v->vin, .properties = r->props};
    size_t sent = 0;
    v->queued--;
    fs->queued--;
    if (got == (ssize_t)n) {
        ota_reply_cbor(&req, "file/data", buf, head + n);
        fs->st.blocks_sent++;
        fs->st.bytes_sent += n;
        sent = n;
    } else {
        free(buf);
        fs->st.read_errors++;
        uint32_t rest = (uint32_t)__builtin_popcountll(r->left);
        v->queued -= rest;
        fs->queued -= rest;
        r->left = 0;
        char sha[65];
        memcpy(sha, r->f->sha, sizeof sha);
        refuse(p, &req, sha, OTA_E_INTERNAL, "block %llu of %s could not be read",
               (unsigned long long)i, sha);
    }
    if (r->left == 0) {
        v->head = r->next;
        if (!v->head) {
            v->tail = NULL;
        }
        req_free(fs, r);
    }
    return sent;
}

/* The length of v's next block. */
static uint32_t next_block_len(const vehicle *v)
{
    const file_req *r = v->head;
    uint64_t i = r->from + (uint64_t)__builtin_ctzll(r->left);
    return ota_file_block_len(r->f->size, r->bs, i);
}

void ota_files_tick(ota_plugin *p)
{
    ota_files *fs = p->files;
    if (!fs->ring) {
        return;
    }
    int64_t now = ota_mono_ms();
    size_t sent = 0;
    const vehicle *waiting = NULL; /* the first skipped since a block was sent */
    while (fs->ring && sent < fs->pass_bytes) {
        vehicle *v = fs->ring;
        uint32_t len = next_block_len(v);
        if (v->pace && !pace_allows(fs, v->pace, len, now)) {
            if (v == waiting) {
                break; /* a whole round and every vehicle is over its rate */
            }
            waiting = waiting ? waiting : v;
            fs->st.paced++;
            fs->ring = v->next;
            continue;
        }
        waiting = NULL;
        if (v->pace && fs->rate) {
            v->pace->milli_bytes -= (int64_t)len * 1000;
        }
        sent += send_block(p, v);
        fs->ring = v->next;
        if (v->queued == 0) {
            vehicle_remove(fs, v);
        }
    }
    fs->st.passes += sent > 0;
}

void ota_files_on_disconnect(ota_plugin *p, const char *vin, const char *client_id)
{
    ota_files *fs = p->files;
    vehicle *v = fs ? ota_map_get_str(&fs->vehicles, vin) : NULL;
    if (v && strcmp(v->client_id, client_id) == 0) {
        vehicle_clear(fs, v, true);
        vehicle_remove(fs, v);
    }
    pace *pc = fs ? ota_map_get_str(&fs->paces, vin) : NULL;
    if (pc && pc->client_id && strcmp(pc->client_id, client_id) == 0) {
        pace_forget_connection(pc); /* Mosquitto freed what it held for that connection */
    }
}

/* ---------------------------------------------------------------- stats and cleanup */

void ota_files_stats_json(const ota_files *fs, cJSON *data)
{
    cJSON *o = cJSON_AddObjectToObject(data, "file");
    const ota_file_stats *st = &fs->st;
    ota_cmd_add_u64(o, "requests", st->requests);
    ota_cmd_add_u64(o, "blocks_sent", st->blocks_sent);
    ota_cmd_add_u64(o, "bytes_sent", st->bytes_sent);
    ota_cmd_add_u64(o, "blocks_dropped", st->blocks_dropped);
    ota_cmd_add_u64(o, "read_errors", st->read_errors);
    ota_cmd_add_u64(o, "passes", st->passes);
    ota_cmd_add_u64(o, "blocks_queued", fs->queued);
    ota_cmd_add_u64(o, "vehicles_queued", ota_map_count(&fs->vehicles));
    ota_cmd_add_u64(o, "paced", st->paced);
    cJSON *rej = cJSON_AddObjectToObject(o, "refused");
    for (int code = OTA_E_BAD_CBOR; code <= OTA_E_INTERNAL; code++) {
        if (st->refused[code]) {
            ota_cmd_add_u64(rej, ota_err_name((ota_err_code)code), st->refused[code]);
        }
    }
}

void ota_files_free(ota_files *fs)
{
    if (!fs) {
        return;
    }
    while (fs->ring) {
        vehicle *v = fs->ring;
        vehicle_clear(fs, v, false);
        vehicle_remove(fs, v);
    }
    ota_map_destroy(&fs->vehicles, vehicle_fini);
    ota_map_destroy(&fs->paces, pace_fini);
    ota_map_destroy(&fs->files, file_fini);
    free(fs->dir);
    free(fs);
}
