/*
 * spool.c — the durable report spool (format and guarantees: see ota_spool.h).
 *
 * Three kinds of thread touch a spool:
 *   - the broker thread appends: it owns the active segment (fd, map, seg, off) and is the
 *     only one that changes it, always under `mu`, so it may read it without the lock.
 *     An append is a memcpy into the segment's shared mapping, i.e. into the kernel's page
 *     cache: no system call, yet the record survives a crash of the process. The file is
 *     grown ahead of the appends with posix_fallocate, so its blocks are reserved and a
 *     full disk fails an append cleanly (instead of SIGBUS on a write through the map);
 *     a segment's unused reserved tail is zeros, which readers take as its end;
 *   - the sync thread fdatasync()s the active segment once per sync_ms when something was
 *     appended (group commit), and syncs and closes the segments retired by a rotation;
 *   - readers (the writer thread) read whole records up to the published end (seg, off)
 *     of the active segment and to EOF of older ones, and store the checkpoint.
 * The broker thread never waits for an fsync: `mu` is never held across a system call
 * that touches the disk, and the sync thread only ever closes fds it was handed.
 * An exclusive flock() on the directory keeps a second spool (another broker) out of it.
 * The checkpoint is not fsynced: a stale or lost checkpoint only makes a restart replay
 * records, which the store's unique key absorbs.
 * What the spool creates is its owner's only (directory 0700, segments and checkpoint
 * 0600): it holds vehicles' reports.
 */
#include "ota_spool.h"
#include "sync_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <libdeflate.h>
#include <unistd.h>

#define REC_MAGIC "OTA1"
#define REC_HDR 12           /* magic | body length | crc32 */
#define BODY_FIXED 18        /* kind | received_ms | vin length | seq (vin excluded) */
#define VIN_MAX 31           /* fits ota_spool_record.vin with its NUL */
#define BODY_MAX (16u << 20) /* longer lengths are corruption */
#define META_MAX (1 + OTA_SPOOL_EPOCH_MAX + 4 + 4 + OTA_SPOOL_MSG_MAX + 8)
#define READ_CHUNK ((size_t)1 << 20)
#define GROW_BYTES ((uint64_t)4 << 20) /* the active segment's file grows by this much */
#define SEG_DIGITS 20
#define SEG_SUFFIX ".seg"
#define CHECKPOINT "checkpoint"
#define CHECKPOINT_TMP "checkpoint.tmp"

/* A segment that rotation took out of service (already cut to its records), for the
 * sync thread to unmap, sync and close. */
typedef struct {
    int fd;
    uint8_t *map;
    uint64_t map_len;
} retired_seg;

struct ota_spool {
    char *dir;
    int dirfd;
    unsigned sync_ms;
    uint64_t segment_bytes;
    pthread_t sync_thread;

    pthread_mutex_t mu;
    pthread_cond_t data_cv; /* ota_spool_wait(): signalled by each append */
    pthread_cond_t sync_cv; /* sync thread: work arrived, or closing */
    /* Active segment: written by the broker thread under mu, read by others under mu.
     * (seg, off) is the published end: everything before it is whole records. */
    int fd;
    uint8_t *map;      /* the active segment, mapped for appends */
    uint64_t map_len;  /* segment_bytes + one largest record */
    uint64_t file_len; /* bytes reserved in the file so far */
    uint64_t seg;
    uint64_t off;
    unsigned data_waiters;
    uint64_t kicks; /* ota_spool_wake() calls: they end waits early */
    bool dirty;     /* appended since the last fdatasync */
    bool dir_dirty; /* a segment was created since the last directory fsync */
    bool closing;
    retired_seg *retired; /* old active segments for the sync thread to finish */
    size_t n_retired, cap_retired;
    ota_spool_stats st; /* st.end unused: (seg, off) is the truth */
};

struct ota_spool_reader {
    ota_spool *s;
    int fd;       /* -1 while no segment is open */
    uint64_t seg; /* segment read (or to look for, when fd < 0) */
    uint64_t cur; /* file offset of the next record */
    uint8_t *buf;
    size_t cap;
    uint64_t buf_off; /* file offset of buf[0]; buf_off <= cur <= buf_off + buf_len */
    size_t buf_len;
    ota_spool_pos end; /* the published end last seen: refreshed only when reached, so
                          a busy reader does not contend for the appender's lock */
};

/* ---------------------------------------------------------------- small helpers */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static ota_spool_pos published_end(ota_spool *s)
{
    pthread_mutex_lock(&s->mu);
    ota_spool_pos end = {s->seg, s->off};
    pthread_mutex_unlock(&s->mu);
    return end;
}

/* ---------------------------------------------------------------- segment files */

static void seg_name(char *buf, size_t len, uint64_t n)
{
    snprintf(buf, len, "%0*" PRIu64 SEG_SUFFIX, SEG_DIGITS, n);
}

/* True when name is a segment file name; sets *n to its number. */
static bool seg_parse(const char *name, uint64_t *n)
{
    if (strlen(name) != SEG_DIGITS + strlen(SEG_SUFFIX) ||
        strcmp(name + SEG_DIGITS, SEG_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < SEG_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *n = v;
    return true;
}

typedef void (*seg_fn)(ota_spool *s, uint64_t n, void *ctx);

/* Calls fn for every segment file in the directory, in no particular order. */
static int seg_scan(ota_spool *s, seg_fn fn, void *ctx)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -1;
    struct dirent *de;
    uint64_t n;
    while ((de = readdir(d)) != NULL) {
        if (seg_parse(de->d_name, &n))
            fn(s, n, ctx);
    }
    closedir(d);
    return 0;
}

typedef struct {
    uint64_t min;
    uint64_t found;
    bool any;
} seg_lowest_ctx;

static void seg_lowest_cb(ota_spool *s, uint64_t n, void *ctx)
{
    (void)s;
    seg_lowest_ctx *c = ctx;
    if (n >= c->min && (!c->any || n < c->found)) {
        c->found = n;
        c->any = true;
    }
}

/* The lowest existing segment numbered min or more: 1 found, 0 none, -1 error. */
static int seg_lowest_from(ota_spool *s, uint64_t min, uint64_t *out)
{
    seg_lowest_ctx c = {min, 0, false};
    if (seg_scan(s, seg_lowest_cb, &c) != 0)
        return -1;
    *out = c.found;
    return c.any ? 1 : 0;
}

/* Size of a segment that is no longer written (0 when it is gone). */
static uint64_t seg_size(ota_spool *s, uint64_t n)
{
    char name[64];
    struct stat st;
    seg_name(name, sizeof name, n);
    return fstatat(s->dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

static int seg_create(ota_spool *s, uint64_t n)
{
    char name[64];
    seg_name(name, sizeof name, n);
    return openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

/* Maps a new segment's file for appends. Returns the mapping or NULL. */
static uint8_t *seg_map(ota_spool *s, int fd)
{
    void *m = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* Cuts a segment's file to its records, dropping the unused reserved tail, so that its
 * size is exact as soon as it stops being active. */
static void seg_cut(int fd, uint64_t size)
{
    if (ftruncate(fd, (off_t)size) != 0) {
        /* Readers stop at the zero tail anyway. */
    }
}

/* Reserves file blocks so that the active segment holds at least `need` bytes. */
static int seg_reserve(ota_spool *s, uint64_t need)
{
    if (need <= s->file_len)
        return 0;
    uint64_t step = s->segment_bytes < GROW_BYTES ? s->segment_bytes : GROW_BYTES;
    uint64_t len = s->file_len + step > need ? s->file_len + step : need;
    if (len > s->map_len)
        len = s->map_len;
    int rc = posix_fallocate(s->fd, (off_t)s->file_len, (off_t)(len - s->file_len));
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    s->file_len = len;
    return 0;
}

/* ---------------------------------------------------------------- open */

static int mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Parses "SEGMENT OFFSET\n". */
static int checkpoint_parse(const char *text, ota_spool_pos *pos)
{
    char *end;
    errno = 0;
    unsigned long long seg = strtoull(text, &end, 10);
    if (end == text || *end != ' ' || errno)
        return -1;
    const char *p = end + 1;
    unsigned long long off = strtoull(p, &end, 10);
    if (end == p || *end != '\n' || errno)
        return -1;
    pos->segment = seg;
    pos->offset = off;
    return 0;
}

/* Reads the checkpoint file: 1 read, 0 missing, -1 unreadable or malformed. */
static int checkpoint_read(ota_spool *s, ota_spool_pos *pos)
{
    int fd = openat(s->dirfd, CHECKPOINT, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char text[96];
    ssize_t n = read(fd, text, sizeof text - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    text[n] = '\0';
    if (checkpoint_parse(text, pos) != 0) {
        errno = EINVAL;
        return -1;
    }
    return 1;
}

typedef struct {
    uint64_t max;
} seg_open_ctx;

/* At open: remember the highest number, drop empty segments (they hold nothing). */
static void seg_open_cb(ota_spool *s, uint64_t n, void *ctx)
{
    seg_open_ctx *c = ctx;
    char name[64];
    if (n > c->max)
        c->max = n;
    seg_name(name, sizeof name, n);
    struct stat st;
    if (fstatat(s->dirfd, name, &st, 0) == 0 && st.st_size == 0)
        unlinkat(s->dirfd, name, 0);
}

/* Numbers the new active segment above every segment and the checkpoint, and creates it. */
static int spool_start_segment(ota_spool *s)
{
    seg_open_ctx c = {0};
    if (seg_scan(s, seg_open_cb, &c) != 0)
        return -1;
    ota_spool_pos cp;
    if (checkpoint_read(s, &cp) == 1 && cp.segment > c.max)
        c.max = cp.segment;
    s->seg = c.max + 1;
    s->off = 0;
    s->fd = seg_create(s, s->seg);
    s->dir_dirty = true;
    if (s->fd < 0)
        return -1;
    s->map = seg_map(s, s->fd);
    return s->map ? 0 : -1;
}

static void *sync_main(void *arg);

static void spool_free(ota_spool *s)
{
    if (s->fd >= 0) {
        if (s->map)
            munmap(s->map, s->map_len);
        seg_cut(s->fd, s->off);
        close(s->fd);
    }
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_cond_destroy(&s->sync_cv);
    pthread_cond_destroy(&s->data_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->retired);
    free(s->dir);
    free(s);
}

static ota_spool *spool_alloc(const ota_spool_config *cfg)
{
    ota_spool *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fd = -1;
    s->dirfd = -1;
    s->sync_ms = cfg->sync_ms ? cfg->sync_ms : OTA_SPOOL_SYNC_MS_DEFAULT;
    s->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : OTA_SPOOL_SEGMENT_BYTES_DEFAULT;
    s->map_len = s->segment_bytes + REC_HDR + BODY_MAX;
    pthread_mutex_init(&s->mu, NULL);
    if (ota_sync_cond_init(&s->data_cv) != 0 || ota_sync_cond_init(&s->sync_cv) != 0 ||
        !(s->dir = strdup(cfg->dir))) {
        spool_free(s);
        return NULL;
    }
    return s;
}

ota_spool *ota_spool_open(const ota_spool_config *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->dir || !*cfg->dir) {
        snprintf(err, errlen, "spool: no directory given");
        return NULL;
    }
    ota_spool *s = spool_alloc(cfg);
    if (!s) {
        snprintf(err, errlen, "spool: out of memory");
        return NULL;
    }
    const char *what = "create directory";
    if (mkdir_p(s->dir) != 0)
        goto fail;
    what = "open directory";
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        goto fail;
    what = "lock (is another broker using it?)";
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) /* released when dirfd is closed */
        goto fail;
    what = "create segment in";
    if (spool_start_segment(s) != 0)
        goto fail;
    what = "start sync thread for";
    if ((errno = pthread_create(&s->sync_thread, NULL, sync_main, s)) != 0)
        goto fail;
    return s;
fail:
    snprintf(err, errlen, "spool: cannot %s %s: %s", what, cfg->dir, strerror(errno));
    spool_free(s);
    return NULL;
}

void ota_spool_close(ota_spool *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->data_cv);
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->sync_thread, NULL); /* its last round made the final fdatasync */
    spool_free(s);
}

/* ---------------------------------------------------------------- sync thread */

/* One round of syncing; called and returns with mu held, drops it for the system calls. */
static void sync_round(ota_spool *s)
{
    retired_seg *segs = s->retired;
    size_t n = s->n_retired;
    s->retired = NULL;
    s->n_retired = s->cap_retired = 0;
    bool dirty = s->dirty, dir_dirty = s->dir_dirty;
    int fd = s->fd; /* if rotated meanwhile it is retired, so closed only by us, later */
    s->dirty = s->dir_dirty = false;
    pthread_mutex_unlock(&s->mu);

    uint64_t syncs = 0;
    for (size_t i = 0; i < n; i++) {
        munmap(segs[i].map, segs[i].map_len);
        fdatasync(segs[i].fd);
        close(segs[i].fd);
        syncs++;
    }
    free(segs);
    if (dirty) {
        fdatasync(fd);
        syncs++;
    }
    if (dir_dirty)
        fsync(s->dirfd);

    pthread_mutex_lock(&s->mu);
    s->st.syncs += syncs;
}

static bool sync_has_work(ota_spool *s)
{
    return s->dirty || s->dir_dirty || s->n_retired > 0;
}

static void *sync_main(void *arg)
{
    ota_spool *s = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next); /* earliest time of the next sync */
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        while (!s->closing && !sync_has_work(s))
            pthread_cond_wait(&s->sync_cv, &s->mu);
        /* Group commit: at most one sync per sync_ms; appends meanwhile share it. */
        while (!s->closing && pthread_cond_timedwait(&s->sync_cv, &s->mu, &next) != ETIMEDOUT)
            ;
        sync_round(s);
        ota_sync_deadline(&next, s->sync_ms);
    }
    sync_round(s); /* final fdatasync */
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------- append */

/* Called with mu held. */
static int retire_push(ota_spool *s, retired_seg seg)
{
    if (s->n_retired == s->cap_retired) {
        size_t cap = s->cap_retired ? 2 * s->cap_retired : 8;
        retired_seg *p = realloc(s->retired, cap * sizeof *p);
        if (!p)
            return -1;
        s->retired = p;
        s->cap_retired = cap;
    }
    s->retired[s->n_retired++] = seg;
    return 0;
}

/* Opens the next segment and hands the current one to the sync thread. On failure the
 * current segment stays active (it just grows past segment_bytes). */
static void rotate(ota_spool *s)
{
    uint64_t n = s->seg + 1;
    char name[64];
    seg_name(name, sizeof name, n);
    int fd = seg_create(s, n);
    if (fd < 0)
        return;
    uint8_t *map = seg_map(s, fd);
    if (!map) {
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return;
    }
    seg_cut(s->fd, s->off); /* outside the lock: it touches the disk */
    s->file_len = s->off;   /* its reservation is gone, should it stay active */
    pthread_mutex_lock(&s->mu);
    if (retire_push(s, (retired_seg){s->fd, s->map, s->map_len}) != 0) {
        pthread_mutex_unlock(&s->mu);
        munmap(map, s->map_len);
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return;
    }
    s->fd = fd;
    s->map = map;
    s->file_len = 0;
    s->seg = n;
    s->off = 0;
    s->dir_dirty = true;
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Fills record header + body prefix (kind .. seq, then meta); returns its length. */
static size_t encode_head(uint8_t *h, const ota_spool_entry *e, size_t vlen, const uint8_t *meta,
                          size_t mlen)
{
    uint8_t *b = h + REC_HDR;
    b[0] = e->kind;
    put_u64(b + 1, (uint64_t)e->received_ms);
    b[9] = (uint8_t)vlen;
    memcpy(b + 10, e->vin, vlen);
    put_u64(b + 10 + vlen, e->seq);
    memcpy(b + BODY_FIXED + vlen, meta, mlen);
    size_t prefix = BODY_FIXED + vlen + mlen;
    /* zlib's CRC-32, computed by libdeflate (carry-less multiply): ~150 instructions for a
     * 200-byte report instead of zlib's ~1,000, on the broker thread before the PUBACK */
    uint32_t crc = libdeflate_crc32(0, b, prefix);
    if (e->len > 0)
        crc = libdeflate_crc32(crc, e->payload, e->len);
    memcpy(h, REC_MAGIC, 4);
    put_u32(h + 4, (uint32_t)(prefix + e->len));
    put_u32(h + 8, (uint32_t)crc);
    return REC_HDR + prefix;
}

/* The meta of kinds 2, 3 and 4 (ota_spool.h) into m; its length (0: kinds 1 and 5). */
static size_t encode_meta(uint8_t m[META_MAX], const ota_spool_entry *e)
{
    if (e->kind == OTA_SPOOL_KIND_REPORT || e->kind == OTA_SPOOL_KIND_DESCRIPTION)
        return 0;
    const char *epoch = e->epoch ? e->epoch : "0";
    size_t elen = strlen(epoch), n = 0;
    m[n++] = (uint8_t)elen;
    memcpy(m + n, epoch, elen);
    n += elen;
    put_u32(m + n, e->resets);
    n += 4;
    if (e->kind != OTA_SPOOL_KIND_QUARANTINE)
        return n;
    size_t mlen = e->msg ? strlen(e->msg) : 0;
    mlen = mlen > OTA_SPOOL_MSG_MAX ? OTA_SPOOL_MSG_MAX : mlen;
    m[n++] = e->code;
    m[n++] = e->has_seq;
    m[n++] = (uint8_t)(mlen & 0xff);
    m[n++] = (uint8_t)(mlen >> 8);
    memcpy(m + n, e->msg, mlen);
    n += mlen;
    put_u64(m + n, e->size ? e->size : e->len);
    return n + 8;
}

static void append_failed(ota_spool *s)
{
    int e = errno;
    pthread_mutex_lock(&s->mu);
    s->st.append_errors++;
    pthread_mutex_unlock(&s->mu);
    errno = e;
}

int ota_spool_append(ota_spool *s, const ota_spool_entry *e)
{
    size_t vlen = strlen(e->vin);
    size_t elen = e->epoch ? strlen(e->epoch) : 1;
    bool known = e->kind >= OTA_SPOOL_KIND_REPORT && e->kind <= OTA_SPOOL_KIND_DESCRIPTION;
    uint8_t meta[META_MAX];
    size_t mlen = known && elen <= OTA_SPOOL_EPOCH_MAX ? encode_meta(meta, e) : 0;
    if (!known || elen > OTA_SPOOL_EPOCH_MAX || vlen > VIN_MAX ||
        e->len > BODY_MAX - BODY_FIXED - vlen - mlen || (!e->payload && e->len)) {
        errno = EINVAL;
        append_failed(s);
        return -1;
    }
    if (s->off > 0 && s->off >= s->segment_bytes)
        rotate(s);

    size_t hlen = REC_HDR + BODY_FIXED + vlen + mlen;
    if (seg_reserve(s, s->off + hlen + e->len) != 0) {
        append_failed(s);
        return -1;
    }
    uint8_t *rec = s->map + s->off;
    encode_head(rec, e, vlen, meta, mlen);
    if (e->len)
        memcpy(rec + hlen, e->payload, e->len);

    pthread_mutex_lock(&s->mu);
    s->off += hlen + e->len;
    s->st.appended++;
    if (!s->dirty) {
        s->dirty = true;
        pthread_cond_signal(&s->sync_cv);
    }
    if (s->data_waiters)
        pthread_cond_broadcast(&s->data_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int ota_spool_append_report(ota_spool *s, const char *vin, uint64_t seq, int64_t received_ms,
                            const void *payload, size_t len)
{
    ota_spool_entry e = {.kind = OTA_SPOOL_KIND_REPORT,
                         .vin = vin,
                         .seq = seq,
                         .received_ms = received_ms,
                         .payload = payload,
                         .len = len};
    return ota_spool_append(s, &e);
}

bool ota_spool_wait(ota_spool *s, ota_spool_pos pos, unsigned timeout_ms)
{
    struct timespec until;
    ota_sync_deadline(&until, timeout_ms);
    pthread_mutex_lock(&s->mu);
    s->data_waiters++;
    int rc = 0;
    uint64_t kicks = s->kicks;
    while (!s->closing && rc != ETIMEDOUT && kicks == s->kicks &&
           ota_spool_pos_cmp((ota_spool_pos){s->seg, s->off}, pos) <= 0)
        rc = pthread_cond_timedwait(&s->data_cv, &s->mu, &until);
    s->data_waiters--;
    bool more = ota_spool_pos_cmp((ota_spool_pos){s->seg, s->off}, pos) > 0;
    pthread_mutex_unlock(&s->mu);
    return more;
}

void ota_spool_wake(ota_spool *s)
{
    pthread_mutex_lock(&s->mu);
    s->kicks++;
    pthread_cond_broadcast(&s->data_cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------- readers */

/* Opens the lowest existing segment numbered min or more (at offset if it is min itself).
 * Returns 1 when one is open, 0 when there is none yet, -1 on error. */
static int reader_enter(ota_spool_reader *r, uint64_t min, uint64_t offset)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->seg = min;
    r->cur = r->buf_off = offset;
    r->buf_len = 0;
    for (uint64_t from = min;;) {
        uint64_t n;
        int rc = seg_lowest_from(r->s, from, &n);
        if (rc <= 0)
            return rc;
        char name[64];
        seg_name(name, sizeof name, n);
        r->fd = openat(r->s->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0 && errno == ENOENT) {
            from = n + 1; /* deleted meanwhile */
            continue;
        }
        if (r->fd < 0)
            return -1;
        if (n != min) {
            r->seg = n;
            r->cur = r->buf_off = 0;
        }
        return 1;
    }
}

ota_spool_reader *ota_spool_reader_open(ota_spool *s, ota_spool_pos from)
{
    ota_spool_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->s = s;
    r->fd = -1;
    r->cap = READ_CHUNK;
    r->buf = malloc(r->cap);
    if (!r->buf || reader_enter(r, from.segment, from.offset) < 0) {
        ota_spool_reader_close(r);
        return NULL;
    }
    return r;
}

void ota_spool_reader_close(ota_spool_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
}

/* Makes at least `need` bytes from cur available in buf when the segment (up to limit)
 * has them. Sets *avail to what is available; -1 on I/O error. */
static int reader_fill(ota_spool_reader *r, size_t need, uint64_t limit, size_t *avail)
{
    size_t have = (size_t)(r->buf_off + r->buf_len - r->cur);
    if (have < need) {
        memmove(r->buf, r->buf + (r->cur - r->buf_off), have);
        r->buf_off = r->cur;
        r->buf_len = have;
        if (need > r->cap) {
            uint8_t *p = realloc(r->buf, need);
            if (!p)
                return -1;
            r->buf = p;
            r->cap = need;
        }
    }
    while (r->buf_len < need) {
        uint64_t at = r->buf_off + r->buf_len;
        if (at >= limit)
            break;
        size_t room = r->cap - r->buf_len;
        if (limit - at < room)
            room = (size_t)(limit - at);
        ssize_t n = pread(r->fd, r->buf + r->buf_len, room, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        r->buf_len += (size_t)n;
    }
    *avail = (size_t)(r->buf_off + r->buf_len - r->cur);
    return 0;
}

enum { PARSE_ERR = -1, PARSE_END = 0, PARSE_OK = 1, PARSE_BAD = 2 };

/* Decodes the meta of kinds 2 and 3 at m (n bytes) into rec; its length, or 0 when it
 * does not fit (a corrupt record: its CRC matched, so a bug's; it is passed on as kind 0,
 * which every reader skips). */
static size_t parse_meta(const uint8_t *m, size_t n, ota_spool_record *rec)
{
    size_t elen = n > 0 ? m[0] : 0, k = 1 + elen + 4;
    if (n == 0 || elen > OTA_SPOOL_EPOCH_MAX || k > n)
        return 0;
    memcpy(rec->epoch, m + 1, elen);
    rec->epoch[elen] = '\0';
    rec->resets = get_u32(m + 1 + elen);
    if (rec->kind != OTA_SPOOL_KIND_QUARANTINE)
        return k;
    if (k + 4 > n)
        return 0;
    rec->code = m[k];
    rec->has_seq = m[k + 1] != 0;
    size_t mlen = (size_t)m[k + 2] | (size_t)m[k + 3] << 8;
    k += 4;
    if (mlen > OTA_SPOOL_MSG_MAX || k + mlen + 8 > n)
        return 0;
    memcpy(rec->msg, m + k, mlen);
    rec->msg[mlen] = '\0';
    rec->size = get_u64(m + k + mlen);
    return k + mlen + 8;
}

/* Decodes a CRC-checked body into rec. */
static int parse_body(const uint8_t *b, uint32_t blen, ota_spool_record *rec)
{
    size_t vlen = b[9];
    if (vlen > VIN_MAX || BODY_FIXED + vlen > blen)
        return PARSE_BAD;
    rec->kind = b[0];
    rec->received_ms = (int64_t)get_u64(b + 1);
    memcpy(rec->vin, b + 10, vlen);
    rec->vin[vlen] = '\0';
    rec->seq = get_u64(b + 10 + vlen);
    snprintf(rec->epoch, sizeof rec->epoch, "0");
    rec->resets = 0;
    rec->code = 0;
    rec->has_seq = true;
    rec->msg[0] = '\0';
    rec->payload = b + BODY_FIXED + vlen;
    rec->payload_len = blen - BODY_FIXED - vlen;
    rec->size = rec->payload_len;
    if (rec->kind >= OTA_SPOOL_KIND_REPORT_EPOCH && rec->kind <= OTA_SPOOL_KIND_RESET) {
        size_t m = parse_meta(rec->payload, rec->payload_len, rec);
        if (m == 0)
            rec->kind = 0;
        rec->payload += m;
        rec->payload_len -= m;
        if (rec->kind != OTA_SPOOL_KIND_QUARANTINE)
            rec->size = rec->payload_len;
    }
    return PARSE_OK;
}

/* Reads the record at cur, limited to `limit` bytes of the segment. */
static int parse_one(ota_spool_reader *r, uint64_t limit, ota_spool_record *rec)
{
    size_t avail;
    if (reader_fill(r, REC_HDR, limit, &avail) != 0)
        return PARSE_ERR;
    if (avail == 0)
        return PARSE_END;
    if (avail < REC_HDR)
        return PARSE_BAD;
    const uint8_t *h = r->buf + (r->cur - r->buf_off);
    uint32_t blen = get_u32(h + 4);
    if (get_u32(h) == 0 && blen == 0)
        return PARSE_END; /* the zero tail of a segment's reserved space */
    if (memcmp(h, REC_MAGIC, 4) != 0 || blen < BODY_FIXED || blen > BODY_MAX)
        return PARSE_BAD;
    if (reader_fill(r, REC_HDR + (size_t)blen, limit, &avail) != 0)
        return PARSE_ERR;
    if (avail < REC_HDR + (size_t)blen)
        return PARSE_BAD;
    h = r->buf + (r->cur - r->buf_off);
    if (libdeflate_crc32(0, h + REC_HDR, blen) != get_u32(h + 8))
        return PARSE_BAD;
    if (parse_body(h + REC_HDR, blen, rec) != PARSE_OK)
        return PARSE_BAD;
    rec->pos = (ota_spool_pos){r->seg, r->cur};
    r->cur += REC_HDR + blen;
    rec->next = (ota_spool_pos){r->seg, r->cur};
    return PARSE_OK;
}

/* True when the reader is at the end it last saw of the active segment. */
static bool reader_at_seen_end(const ota_spool_reader *r)
{
    return r->seg > r->end.segment || (r->seg == r->end.segment && r->cur >= r->end.offset);
}

ota_spool_pos ota_spool_reader_seen_end(const ota_spool_reader *r)
{
    return r->end;
}

int ota_spool_reader_next(ota_spool_reader *r, ota_spool_record *rec)
{
    for (;;) {
        if (r->fd < 0 || reader_at_seen_end(r))
            r->end = published_end(r->s);
        if (r->fd < 0) {
            int rc = reader_enter(r, r->seg, r->cur);
            if (rc <= 0)
                return rc;
        }
        ota_spool_pos end = r->end;
        bool active = r->seg >= end.segment;
        uint64_t limit = !active ? UINT64_MAX : r->seg == end.segment ? end.offset : 0;
        int rc = parse_one(r, limit, rec);
        if (rc == PARSE_OK || rc == PARSE_ERR)
            return rc;
        if (rc == PARSE_BAD) {
            pthread_mutex_lock(&r->s->mu);
            r->s->st.bad_records++;
            pthread_mutex_unlock(&r->s->mu);
            if (active) { /* whole records only are published: this is not a torn tail */
                errno = EIO;
                return -1;
            }
        }
        if (active)
            return 0;
        if (reader_enter(r, r->seg + 1, 0) < 0) /* an older segment is finished */
            return -1;
    }
}

/* ---------------------------------------------------------------- checkpoint */

int ota_spool_checkpoint_load(ota_spool *s, ota_spool_pos *pos)
{
    int rc = checkpoint_read(s, pos);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    uint64_t oldest;
    rc = seg_lowest_from(s, 0, &oldest);
    if (rc < 0)
        return -1;
    *pos = (ota_spool_pos){rc == 1 ? oldest : published_end(s).segment, 0};
    return 0;
}

typedef struct {
    ota_spool_pos cp;
    uint64_t active;
} seg_drop_ctx;

/* True when no record starts at off of segment n: its end, or its zero tail (space
 * reserved for appends that rotation or a crash left unused). */
static bool seg_ends_at(ota_spool *s, uint64_t n, uint64_t off)
{
    char name[64];
    seg_name(name, sizeof name, n);
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    uint8_t h[8];
    ssize_t got = pread(fd, h, sizeof h, (off_t)off);
    close(fd);
    return got == 0 || (got == (ssize_t)sizeof h && get_u32(h) == 0 && get_u32(h + 4) == 0);
}

/* Deletes a segment that ends at or before the checkpoint, never the active one. */
static void seg_drop_cb(ota_spool *s, uint64_t n, void *ctx)
{
    seg_drop_ctx *c = ctx;
    if (n >= c->active || n > c->cp.segment)
        return;
    if (n == c->cp.segment && !seg_ends_at(s, n, c->cp.offset))
        return;
    char name[64];
    seg_name(name, sizeof name, n);
    unlinkat(s->dirfd, name, 0);
}

static int checkpoint_write(ota_spool *s, ota_spool_pos pos)
{
    char text[64];
    int len = snprintf(text, sizeof text, "%" PRIu64 " %" PRIu64 "\n", pos.segment, pos.offset);
    int fd = openat(s->dirfd, CHECKPOINT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, (size_t)len);
    int e = errno;
    if (close(fd) != 0 || w != len) {
        errno = w < 0 ? e : EIO;
        return -1;
    }
    return renameat(s->dirfd, CHECKPOINT_TMP, s->dirfd, CHECKPOINT);
}

int ota_spool_checkpoint_store(ota_spool *s, ota_spool_pos pos)
{
    if (checkpoint_write(s, pos) != 0)
        return -1;
    seg_drop_ctx c = {pos, published_end(s).segment};
    seg_scan(s, seg_drop_cb, &c);
    return 0;
}

/* ---------------------------------------------------------------- stats */

typedef struct {
    ota_spool_pos from;
    ota_spool_pos end;
    uint64_t bytes;
} bytes_after_ctx;

static void bytes_after_cb(ota_spool *s, uint64_t n, void *ctx)
{
    bytes_after_ctx *c = ctx;
    if (n < c->from.segment || n > c->end.segment)
        return;
    uint64_t size = n == c->end.segment ? c->end.offset : seg_size(s, n);
    if (n > c->from.segment)
        c->bytes += size;
    else if (size > c->from.offset)
        c->bytes += size - c->from.offset;
}

uint64_t ota_spool_bytes_after(ota_spool *s, ota_spool_pos pos)
{
    bytes_after_ctx c = {pos, published_end(s), 0};
    seg_scan(s, bytes_after_cb, &c);
    return c.bytes;
}

void ota_spool_stats_get(ota_spool *s, ota_spool_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->end = (ota_spool_pos){s->seg, s->off};
    pthread_mutex_unlock(&s->mu);
}
