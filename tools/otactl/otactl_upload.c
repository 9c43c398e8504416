/*
 * otactl_upload.c — `otactl file upload PATH`: puts a package file into the plugin's
 * content-addressed repository (docs/operator-api.md, "Uploading a file").
 *
 * 1. SHA-256 of the file (OpenSSL EVP), streamed.
 * 2. uploadStatus {sha256}: a file already stored is done; otherwise the upload resumes
 *    at `received` (0 for a new one).
 * 3. CBOR chunks {sha256, offset, total, data} on $CONTROL/ota/v1/file, at most --window
 *    unanswered at a time; the plugin answers each, in order, with an `upload` response
 *    {sha256, received, total, stored}. An error answer stops the upload (run the command
 *    again to resume from what the plugin has); the last chunk's answer says stored: true
 *    once the plugin has checked the whole file's hash.
 * A progress bar (bytes, %, rate) goes to stderr unless --json or --quiet; the SHA-256 is
 * printed at the end (--json: the last answer's data). With --dry-run the uploadStatus
 * request and one line per chunk ({sha256, offset, total, size}) are printed.
 *
 * --encrypt (encrypted packages, docs/vehicle-crypto.md): the file is first encrypted into
 * --out (default PATH.enc) as nonce(12) || AES-256-GCM ciphertext || tag(16) under the
 * content key given with --key (64 hex: every file of one package shares its key) or a
 * new random one, and that file is uploaded; the end prints "sha256=HEX content_key=HEX"
 * (--json: content_key added to the data) for `package add --encrypted --content-key`.
 */
#include "cbor_util.h"
#include "otactl.h"
#include "ota_cose.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_DEFAULT (256 * 1024)
#define CHUNK_MAX (1024 * 1024)
#define WINDOW_DEFAULT 4
#define WINDOW_MAX 16
#define HASH_BUF (1024 * 1024)

typedef struct {
    int fd;
    const char *path;
    uint64_t size;
    char sha[65];
    size_t chunk;
    int window;
    uint8_t *buf;
    char key_hex[2 * OTA_CONTENT_KEY_LEN + 1]; /* --encrypt: the content key; "" otherwise */
    char enc_path[4096];
    /* progress */
    double t0, last_draw;
    uint64_t start_offset;
} upload;

static int hash_file(upload *u)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HASH_BUF);
    int ok = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t done = 0;
    ssize_t n;
    while (ok && (n = pread(u->fd, buf, HASH_BUF, (off_t)done)) > 0) {
        ok = EVP_DigestUpdate(md, buf, (size_t)n);
        done += (uint64_t)n;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ok = ok && done == u->size && EVP_DigestFinal_ex(md, digest, &len) && len == 32;
    for (unsigned i = 0; ok && i < len; i++) {
        sprintf(u->sha + 2 * i, "%02x", digest[i]);
    }
    EVP_MD_CTX_free(md);
    free(buf);
    if (!ok) {
        fprintf(stderr, "Error: file upload: cannot hash %s\n", u->path);
        return OTACTL_ECMD;
    }
    return OTACTL_OK;
}

/* ---- chunks ---- */

static bool map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    cbor_item_t *k = cbor_build_string(key);
    bool ok = k && value &&
              cbor_map_add(map, (struct cbor_pair){.key = cbor_move(k), .value = cbor_move(value)});
    if (!ok) {
        if (k) {
            cbor_decref(&k);
        }
        if (value) {
            cbor_decref(&value);
        }
    }
    return ok;
}

/* The CBOR chunk of [offset, offset+len): malloc'd, *n its size; NULL on failure. */
static unsigned char *encode_chunk(const upload *u, uint64_t offset, size_t len, size_t *n)
{
    cbor_item_t *map = cbor_new_definite_map(4);
    unsigned char *out = NULL;
    size_t cap = 0;
    *n = 0;
    if (map && map_put(map, "sha256", cbor_build_string(u->sha)) &&
        map_put(map, "offset", ota_cbor_build_uint(offset)) && map_put(map, "total", ota_cbor_build_uint(u->size)) &&
        map_put(map, "data", cbor_build_bytestring(u->buf, len))) {
        *n = cbor_serialize_alloc(map, &out, &cap);
    }
    if (map) {
        cbor_decref(&map);
    }
    if (*n == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int send_chunk(otactl_ctx *ctx, upload *u, uint64_t offset, size_t len)
{
    ssize_t got = len ? pread(u->fd, u->buf, len, (off_t)offset) : 0;
    if (got != (ssize_t)len) {
        fprintf(stderr, "Error: file upload: cannot read %s: %s\n", u->path,
                got < 0 ? strerror(errno) : "file shrank");
        return OTACTL_ECMD;
    }
    size_t n;
    unsigned char *payload = encode_chunk(u, offset, len, &n);
    if (!payload) {
        fprintf(stderr, "Error: file upload: out of memory\n");
        return OTACTL_ECMD;
    }
    int rc = otactl_publish(ctx, OTACTL_TOPIC_FILE, payload, n);
    free(payload);
    return rc;
}

/* ---- progress ---- */

static void draw_progress(upload *u, uint64_t received, bool final)
{
    double t = otactl_now_s();
    if (!final && t - u->last_draw < 0.1) {
        return;
    }
    u->last_draw = t;
    double pct = u->size ? 100.0 * (double)received / (double)u->size : 100.0;
    double rate = t > u->t0 ? (double)(received - u->start_offset) / (t - u->t0) : 0;
    char bar[31];
    int fill = (int)(pct * 30 / 100);
    for (int i = 0; i < 30; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %llu / %llu bytes %5.1f%% %8.2f MiB/s", bar,
            (unsigned long long)received, (unsigned long long)u->size, pct, rate / 1048576.0);
    if (final) {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

/* ---- the exchange ---- */

/* The data of an upload/uploadStatus answer; NULL (printed) for an error. */
static const cJSON *answer_data(const otactl_ctx *ctx, const cJSON *resp)
{
    if (otactl_check_response(ctx, resp) != OTACTL_OK) {
        return NULL;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "data");
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "received"))) {
        fprintf(stderr, "Error: file upload: answer without `received`\n");
        return NULL;
    }
    return d;
}

static uint64_t num(const cJSON *d, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static bool stored(const cJSON *d)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "stored"));
}

static void finish(const otactl_ctx *ctx, const upload *u, const cJSON *data)
{
    if (ctx->json) {
        cJSON *d = cJSON_Duplicate(data, true);
        if (d && u->key_hex[0]) {
            cJSON_AddStringToObject(d, "content_key", u->key_hex);
        }
        otactl_print_json(d ? d : data);
        cJSON_Delete(d);
    } else if (u->key_hex[0]) {
        printf("sha256=%s content_key=%s\n", u->sha, u->key_hex);
    } else {
        puts(u->sha);
    }
}

/* Waits for the next upload answer of this file: *data (owned by *resp) or an error. */
static int next_answer(otactl_ctx *ctx, const upload *u, cJSON **resp, const cJSON **data)
{
    for (;;) {
        int rc = otactl_wait_response(ctx, "upload", resp);
        if (rc != OTACTL_OK) {
            return rc;
        }
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(*resp, "data");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(d, "sha256");
        if (!cJSON_IsString(sha) || !strcmp(sha->valuestring, u->sha)) {
            *data = answer_data(ctx, *resp);
            return *data ? OTACTL_OK : OTACTL_ECMD;
        }
        cJSON_Delete(*resp); /* a stale answer about another file */
    }
}

/* Sends the chunks from offset on; ends with the file stored or an error. */
static int send_chunks(otactl_ctx *ctx, upload *u, uint64_t offset)
{
    bool progress = !ctx->json && !ctx->quiet;
    uint64_t next = offset;
    int inflight = 0;
    bool first = true;
    u->t0 = otactl_now_s(), u->start_offset = offset;
    for (;;) {
        while (inflight < u->window && (next < u->size || first)) {
            size_t len = u->size - next < u->chunk ? (size_t)(u->size - next) : u->chunk;
            int rc = send_chunk(ctx, u, next, len);
            if (rc != OTACTL_OK) {
                return rc;
            }
            next += len, inflight++, first = false;
        }
        if (inflight == 0) {
            fprintf(stderr,
                    "Error: file upload: every chunk was answered but the plugin did "
                    "not store %s\n",
                    u->sha);
            return OTACTL_ECMD;
        }
        cJSON *resp = NULL;
        const cJSON *data = NULL;
        int rc = next_answer(ctx, u, &resp, &data);
        inflight--;
        if (rc == OTACTL_OK && progress) {
            draw_progress(u, num(data, "received"), stored(data));
        }
        if (rc == OTACTL_OK && stored(data)) {
            finish(ctx, u, data);
        }
        bool done = rc != OTACTL_OK || stored(data);
        cJSON_Delete(resp);
        if (done) {
            if (rc != OTACTL_OK && progress && u->last_draw > 0) {
                fputc('\n', stderr);
            }
            return rc;
        }
    }
}

static void print_plan(const upload *u)
{
    uint64_t off = 0;
    do {
        size_t len = u->size - off < u->chunk ? (size_t)(u->size - off) : u->chunk;
        printf("{\"topic\":\"%s\",\"sha256\":\"%s\",\"offset\":%llu,\"total\":%llu,"
               "\"size\":%zu}\n",
               OTACTL_TOPIC_FILE, u->sha, (unsigned long long)off, (unsigned long long)u->size,
               len);
        off += len;
    } while (off < u->size);
}

static int start_upload(otactl_ctx *ctx, upload *u)
{
    cJSON *cmd = otactl_cmd_new("uploadStatus");
    cJSON_AddStringToObject(cmd, "sha256", u->sha);
    cJSON *resp = NULL;
    int rc = otactl_request_one(ctx, cmd, &resp);
    if (rc != OTACTL_OK || !resp) { /* error, or --dry-run */
        if (rc == OTACTL_OK) {
            print_plan(u);
        }
        return rc;
    }
    const cJSON *data = answer_data(ctx, resp);
    uint64_t received = data ? num(data, "received") : 0;
    if (!data) {
        rc = OTACTL_ECMD;
    } else if (stored(data)) {
        if (!ctx->json && !ctx->quiet) {
            fprintf(stderr, "%s is already in the repository\n", u->path);
        }
        finish(ctx, u, data);
    } else if (received > u->size) {
        fprintf(stderr, "Error: file upload: the plugin has %llu bytes of a %llu-byte file\n",
                (unsigned long long)received, (unsigned long long)u->size);
        rc = OTACTL_ECMD;
    } else {
        rc = send_chunks(ctx, u, received);
    }
    cJSON_Delete(resp);
    return rc;
}

static int upload_options(otactl_ctx *ctx, const otactl_args *a, upload *u)
{
    const char *c = otactl_arg(a, "chunk"), *w = otactl_arg(a, "window");
    uint64_t v;
    u->chunk = CHUNK_DEFAULT, u->window = WINDOW_DEFAULT;
    if (c && (otactl_parse_u64(c, &v) != 0 || v < 1 || v > CHUNK_MAX)) {
        return otactl_usage_err(ctx, "--chunk: expected 1..%d bytes, got \"%s\"", CHUNK_MAX, c);
    }
    u->chunk = c ? (size_t)v : u->chunk;
    if (w && (otactl_parse_u64(w, &v) != 0 || v < 1 || v > WINDOW_MAX)) {
        return otactl_usage_err(ctx, "--window: expected 1..%d, got \"%s\"", WINDOW_MAX, w);
    }
    u->window = w ? (int)v : u->window;
    return OTACTL_OK;
}

/* --key HEX or a fresh random key. */
static int content_key(otactl_ctx *ctx, const otactl_args *a, uint8_t key[OTA_CONTENT_KEY_LEN])
{
    const char *k = otactl_arg(a, "key");
    if (k && ota_codec_unhex(k, key, OTA_CONTENT_KEY_LEN) != 0) {
        return otactl_usage_err(ctx, "--key: expected 64 hex characters (an AES-256 key)");
    }
    if (!k && RAND_bytes(key, OTA_CONTENT_KEY_LEN) != 1) {
        return otactl_usage_err(ctx, "--encrypt: no randomness for a content key");
    }
    return OTACTL_OK;
}

/* --encrypt: PATH encrypted into --out (default PATH.enc), which is then uploaded. */
static int encrypt_file(otactl_ctx *ctx, const otactl_args *a, upload *u)
{
    uint8_t key[OTA_CONTENT_KEY_LEN];
    int rc = content_key(ctx, a, key);
    if (rc != OTACTL_OK) {
        return rc;
    }
    const char *out = otactl_arg(a, "out");
    snprintf(u->enc_path, sizeof u->enc_path, "%s%s", out ? out : u->path, out ? "" : ".enc");
    FILE *in = fopen(u->path, "rb");
    FILE *f = in ? fopen(u->enc_path, "wb") : NULL;
    int ok = f && ota_codec_seal_stream(key, in, f) == 0;
    ok = (f ? fclose(f) == 0 : 0) && ok;
    if (in) {
        fclose(in);
    }
    if (!ok) {
        OPENSSL_cleanse(key, sizeof key);
        return otactl_usage_err(ctx, "--encrypt: cannot encrypt %s into %s: %s", u->path,
                                u->enc_path, strerror(errno));
    }
    ota_codec_hex(key, sizeof key, u->key_hex);
    OPENSSL_cleanse(key, sizeof key);
    u->path = u->enc_path;
    return OTACTL_OK;
}

int otactl_cmd_file_upload(otactl_ctx *ctx, otactl_args *a)
{
    upload u = {.path = a->pos[0], .fd = -1};
    int rc = upload_options(ctx, a, &u);
    if (rc == OTACTL_OK && (otactl_arg(a, "key") || otactl_arg(a, "out")) &&
        !otactl_flag(a, "encrypt")) {
        rc = otactl_usage_err(ctx, "--key and --out go with --encrypt");
    }
    if (rc == OTACTL_OK && otactl_flag(a, "encrypt")) {
        rc = encrypt_file(ctx, a, &u);
    }
    if (rc != OTACTL_OK) {
        return rc;
    }
    struct stat st;
    u.fd = open(u.path, O_RDONLY | O_CLOEXEC);
    if (u.fd < 0 || fstat(u.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = otactl_usage_err(ctx, "%s: %s", u.path,
                              u.fd < 0 ? strerror(errno) : "not a regular file");
    } else {
        u.size = (uint64_t)st.st_size;
        u.buf = malloc(u.chunk);
        rc = u.buf ? hash_file(&u) : OTACTL_ECMD;
    }
    if (rc == OTACTL_OK) {
        rc = start_upload(ctx, &u);
    }
    free(u.buf);
    if (u.fd >= 0) {
        close(u.fd);
    }
    return rc;
}
