/*
 * upload.c — package files into the content-addressed repository (SPEC §5, seed 003).
 *
 * An operator sends a file as CBOR chunks {sha256, offset, total, data} on
 * $CONTROL/ota/v1/file. The broker thread only decodes a chunk and queues it as an
 * "upload" command; the writer thread does the disk work (ota_cmd_op.run): it appends the
 * new part of the chunk to plugin_opt_file_dir/.upload/<sha256>.part (what the part file
 * holds is what has been received, so an upload resumes after an interruption or a broker
 * restart, and a chunk sent twice changes nothing; <sha256>.total beside it remembers the
 * announced size for uploadStatus), and when the file is complete it
 * hashes it: only a file whose SHA-256 matches its name is synced, renamed to
 * plugin_opt_file_dir/<sha256> and recorded in the store; a mismatch removes the part
 * file and refuses the upload. Back on the broker thread the catalog learns the file.
 */
#include "catalog.h"
#include "control.h"
#include "ota_catalog_json.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPLOAD_DIR ".upload"
#define HASH_BLOCK (1u << 20)

typedef struct {
    ota_cmd_op base;
    char *file_dir;
    ota_upload_chunk chunk; /* data: our copy (NULL for a status query) */
    uint8_t *data;
    /* results (writer thread) */
    uint64_t received;
    bool stored;
    ota_store_doc doc;
    char *doc_json;
} upload_op;

/* ---------------------------------------------------------------- paths */

static void part_path(char *buf, size_t n, const upload_op *op)
{
    snprintf(buf, n, "%s/" UPLOAD_DIR "/%s.part", op->file_dir, op->chunk.sha256);
}

static void total_path(char *buf, size_t n, const upload_op *op)
{
    snprintf(buf, n, "%s/" UPLOAD_DIR "/%s.total", op->file_dir, op->chunk.sha256);
}

static void final_path(char *buf, size_t n, const upload_op *op)
{
    snprintf(buf, n, "%s/%s", op->file_dir, op->chunk.sha256);
}

int ota_upload_prepare_dirs(const char *file_dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" UPLOAD_DIR, file_dir);
    if ((mkdir(file_dir, 0750) != 0 && errno != EEXIST) ||
        (mkdir(path, 0750) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "file repository %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- writer thread */

/* The announced size of an upload in progress: written with its first chunk, read by
 * uploadStatus (0 when unknown), removed with the part file. */
static void total_write(const upload_op *op)
{
    char path[4096];
    total_path(path, sizeof(path), op);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%llu\n", (unsigned long long)op->chunk.total);
        fclose(f);
    }
}

static uint64_t total_read(const upload_op *op)
{
    char path[4096];
    unsigned long long total = 0;
    total_path(path, sizeof(path), op);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llu", &total) != 1) {
            total = 0;
        }
        fclose(f);
    }
    return total;
}

static void total_remove(const upload_op *op)
{
    char path[4096];
    total_path(path, sizeof(path), op);
    unlink(path);
}

/* SHA-256 of a whole file as lowercase hex. 0, or -1. */
static int hash_file(int fd, char hex[65])
{
    uint8_t *buf = malloc(HASH_BLOCK), md[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
    for (off_t at = 0; rc == 0;) {
        ssize_t n = pread(fd, buf, HASH_BLOCK, at);
        if (n <= 0) {
            rc = n == 0 ? 0 : -1;
            break;
        }
        rc = EVP_DigestUpdate(ctx, buf, (size_t)n) == 1 ? 0 : -1;
        at += n;
    }
    unsigned len = 0;
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, &len) == 1) {
        for (unsigned i = 0; i < 32; i++) {
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        }
    }
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* Appends the part of the chunk not received yet. 0, or -1 with err. */
static int append_chunk(upload_op *op, int fd, char *err, size_t errlen)
{
    const ota_upload_chunk *c = &op->chunk;
    if (c->offset > op->received) {
        snprintf(err, errlen, "offset %llu is past what was received: resume at %llu",
                 (unsigned long long)c->offset, (unsigned long long)op->received);
        return -1;
    }
    if (c->offset + c->len <= op->received) {
        return 0; /* sent before: nothing new */
    }
    size_t skip = (size_t)(op->received - c->offset);
    const uint8_t *p = op->data + skip;
    size_t left = c->len - skip;
    for (off_t at = (off_t)op->received; left > 0;) {
        ssize_t n = pwrite(fd, p, left, at);
        if (n < 0) {
            snprintf(err, errlen, "cannot write the upload: %s", strerror(errno));
            return -1;
        }
        p += n, left -= (size_t)n, at += n;
    }
    op->received = c->offset + c->len;
    return 0;
}

/* Records the file in the store (the catalog document). */
static int store_file(ota_store *store, upload_op *op, char *err, size_t errlen)
{
    ota_file_rec rec = {.size = op->chunk.total};
    memcpy(rec.sha256, op->chunk.sha256, sizeof(rec.sha256));
    cJSON *j = ota_json_from_file(&rec);
    op->doc_json = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!op->doc_json) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    op->doc = (ota_store_doc){OTA_DOC_FILE, op->chunk.sha256, op->doc_json};
    ota_catalog_change ch = {.docs = &op->doc, .n_docs = 1};
    return ota_store_apply(store, &ch, err, errlen);
}

/* The file is complete: keep it only if it is what its name says. */
static int finish_file(ota_store *store, upload_op *op, int fd, char *err, size_t errlen)
{
    char part[4096], final[4096], hex[65] = "";
    part_path(part, sizeof(part), op);
    final_path(final, sizeof(final), op);
    if (hash_file(fd, hex) != 0) {
        snprintf(err, errlen, "cannot read the upload back: %s", strerror(errno));
        return -1;
    }
    if (strcmp(hex, op->chunk.sha256) != 0) {
        unlink(part);
        total_remove(op);
        snprintf(err, errlen, "sha256 mismatch: the file's SHA-256 is %s; upload refused and "
                              "its partial file removed", hex);
        return -1;
    }
    if (fsync(fd) != 0 || rename(part, final) != 0) {
        snprintf(err, errlen, "cannot move the file into the repository: %s", strerror(errno));
        return -1;
    }
    total_remove(op);
    op->stored = true;
    return store_file(store, op, err, errlen);
}

/* Writer thread: one chunk (or, with no data, a status query). */
static int upload_run(ota_store *store, ota_cmd_op *base, char *err, size_t errlen)
{
    upload_op *op = (upload_op *)base;
    char path[4096];
    struct stat st;
    final_path(path, sizeof(path), op);
    if (stat(path, &st) == 0) { /* already in the repository */
        op->received = op->chunk.total = (uint64_t)st.st_size;
        op->stored = true;
        return 0;
    }
    part_path(path, sizeof(path), op);
    int fd = open(path, (op->data ? O_CREAT : 0) | O_RDWR | O_CLOEXEC, 0640);
    if (fd < 0) {
        op->received = 0; /* nothing received yet */
        if (!op->data && errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot open the upload: %s", strerror(errno));
        return -1;
    }
    int rc = fstat(fd, &st);
    op->received = rc == 0 ? (uint64_t)st.st_size : 0;
    if (!op->data) {
        op->chunk.total = total_read(op);
    } else if (rc == 0 && op->received == 0) {
        total_write(op);
    }
    if (rc == 0 && op->data) {
        rc = append_chunk(op, fd, err, errlen);
        if (rc == 0 && op->received == op->chunk.total) {
            rc = finish_file(store, op, fd, err, errlen);
        }
    }
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- broker thread */

static cJSON *upload_apply(ota_plugin *p, ota_cmd_op *base)
{
    upload_op *op = (upload_op *)base;
    if (op->stored) {
        ota_file_rec rec = {.size = op->chunk.total};
        memcpy(rec.sha256, op->chunk.sha256, sizeof(rec.sha256));
        ota_catalog_put_file(p->catalog, &rec);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "sha256", op->chunk.sha256);
    cJSON_AddNumberToObject(data, "received", (double)op->received);
    if (op->chunk.total) {
        cJSON_AddNumberToObject(data, "total", (double)op->chunk.total);
    }
    cJSON_AddBoolToObject(data, "stored", op->stored);
    return data;
}

static void upload_free(ota_cmd_op *base)
{
    upload_op *op = (upload_op *)base;
    free(op->data);
    free(op->file_dir);
    free(op->doc_json);
    free(op);
}

static upload_op *upload_op_new(ota_plugin *p, const char *sha256)
{
    upload_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->file_dir = strdup(p->cfg.file_dir))) {
        free(op);
        return NULL;
    }
    op->base = (ota_cmd_op){.run = upload_run, .apply = upload_apply, .free_op = upload_free};
    snprintf(op->chunk.sha256, sizeof(op->chunk.sha256), "%s", sha256);
    return op;
}

/* A queued chunk, in turn: arg is the upload_op made by the callback. */
static void run_chunk(ota_plugin *p, ota_cmd *c, void *arg)
{
    upload_op *op = arg;
    ota_cmd_store(p, c, &op->base);
}

static void drop_chunk(void *arg)
{
    upload_free(arg); /* never ran */
}

static void fail_chunk(ota_plugin *p, ota_cmd *c, void *arg)
{
    (void)p;
    ota_cmd_fail(c, "%s", arg ? (const char *)arg : "out of memory");
    free(arg);
}

/* The CONTROL callback of $CONTROL/ota/v1/file (broker thread): decode and queue. */
int ota_upload_callback(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_control *ed = event_data;
    ota_plugin *p = userdata;
    ota_upload_chunk chunk;
    ota_error err;
    if (ota_identity_of(p, ed->client).kind != OTA_ID_ADMIN) {
        ota_control_enqueue(p, ed->client, "upload", fail_chunk, strdup("not authorized"), free);
        return MOSQ_ERR_SUCCESS;
    }
    if (ota_codec_decode_chunk(ed->payload, ed->payloadlen, &chunk, &err) != 0) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: upload chunk refused: %s", err.msg);
        ota_control_enqueue(p, ed->client, "upload", fail_chunk, strdup(err.msg), free);
        return MOSQ_ERR_SUCCESS;
    }
    upload_op *op = upload_op_new(p, chunk.sha256);
    uint8_t *data = op ? malloc(chunk.len ? chunk.len : 1) : NULL;
    if (!data) {
        if (op) {
            upload_free(&op->base);
        }
        return MOSQ_ERR_SUCCESS;
    }
    memcpy(data, chunk.data, chunk.len);
    op->chunk = chunk;
    op->chunk.data = op->data = data;
    ota_control_enqueue(p, ed->client, "upload", run_chunk, op, drop_chunk);
    return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------- commands */

/* Reads the sha256 field of a command; false after answering the error. */
static bool cmd_sha256(ota_cmd *c, const cJSON *cmd, char out[OTA_SHA256_HEX + 1])
{
    static const char *const allowed[] = {"sha256", NULL};
    char err[256];
    if (ota_json_check_command_fields(cmd, "", allowed, err, sizeof(err)) != 0 ||
        ota_json_get_sha256(cmd, "", "sha256", out, err, sizeof(err)) != 0) {
        ota_cmd_fail(c, "%s", err);
        return false;
    }
    return true;
}

void ota_cmd_upload_status(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char sha256[OTA_SHA256_HEX + 1];
    if (!cmd_sha256(c, cmd, sha256)) {
        return;
    }
    upload_op *op = upload_op_new(p, sha256);
    if (!op) {
        ota_cmd_fail(c, "out of memory");
        return;
    }
    ota_cmd_store(p, c, &op->base); /* no data: the writer only looks */
}

void ota_cmd_get_file(ota_plugin *p, ota_cmd *c, const cJSON *cmd)
{
    char sha256[OTA_SHA256_HEX + 1];
    if (!cmd_sha256(c, cmd, sha256)) {
        return;
    }
    const ota_file_rec *f = ota_catalog_file(p->catalog, sha256);
    if (!f) {
        ota_cmd_fail(c, "sha256: no such file in the repository");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "file", ota_json_from_file(f));
    ota_cmd_ok(c, data);
}
