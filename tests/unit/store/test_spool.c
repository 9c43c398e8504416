/*
 * test_spool.c — unit tests of the durable report spool (store/spool.c) on real files
 * under $OTA_TEST_TMP (or /tmp): round trip, tailing, rotation, reopen, checkpoints and
 * segment deletion, torn tails and CRC errors, backlog, the sync thread, failed appends.
 * Also prints the measured cost of one append (not asserted).
 */
#include "ota_spool.h"
#include "ota_spool_desc.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define VIN "LSVAU2180N2183294"

static ota_spool *open_spool(const char *dir, unsigned sync_ms, uint64_t segment_bytes)
{
    char err[256] = "";
    ota_spool_config cfg = {.dir = dir, .sync_ms = sync_ms, .segment_bytes = segment_bytes};
    ota_spool *s = ota_spool_open(&cfg, err, sizeof err);
    if (!s)
        fail_msg("ota_spool_open: %s", err);
    return s;
}

static void fill_payload(uint8_t *p, size_t len, uint64_t i)
{
    for (size_t j = 0; j < len; j++)
        p[j] = (uint8_t)(i * 7 + j * 13);
}

/* Appends record i: seq i, received_ms 1.7e12 + i, payload of i % 300 bytes. */
static void append_n(ota_spool *s, uint64_t first, uint64_t count)
{
    uint8_t p[300];
    for (uint64_t i = first; i < first + count; i++) {
        fill_payload(p, i % 300, i);
        assert_int_equal(ota_spool_append_report(s, VIN, i, 1700000000000 + (int64_t)i, p, i % 300),
                         0);
    }
}

static void check_record(const ota_spool_record *rec, uint64_t i)
{
    uint8_t p[300];
    fill_payload(p, i % 300, i);
    assert_int_equal(rec->kind, OTA_SPOOL_KIND_REPORT);
    assert_string_equal(rec->vin, VIN);
    assert_int_equal(rec->seq, i);
    assert_int_equal(rec->received_ms, 1700000000000 + (int64_t)i);
    assert_int_equal(rec->payload_len, i % 300);
    if (rec->payload_len)
        assert_memory_equal(rec->payload, p, rec->payload_len);
}

/* Reads records first..first+count-1 and checks there is nothing more. */
static ota_spool_pos read_expect(ota_spool_reader *r, uint64_t first, uint64_t count)
{
    ota_spool_record rec;
    ota_spool_pos next = {0, 0};
    for (uint64_t i = first; i < first + count; i++) {
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
        check_record(&rec, i);
        next = rec.next;
    }
    assert_int_equal(ota_spool_reader_next(r, &rec), 0);
    return next;
}

static ota_spool_reader *reader_from_checkpoint(ota_spool *s)
{
    ota_spool_pos pos;
    assert_int_equal(ota_spool_checkpoint_load(s, &pos), 0);
    ota_spool_reader *r = ota_spool_reader_open(s, pos);
    assert_non_null(r);
    return r;
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        n += len == 24 && strcmp(de->d_name + 20, ".seg") == 0;
    }
    closedir(d);
    return n;
}

static bool segment_exists(const char *dir, uint64_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, n);
    return access(path, F_OK) == 0;
}

static void segment_path(char *buf, size_t len, const char *dir, uint64_t n)
{
    snprintf(buf, len, "%s/%020" PRIu64 ".seg", dir, n);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* ---------------------------------------------------------------- tests */

/* The record kinds with meta: a report with its epoch, a refused report with its reason
 * (here with an empty payload whose pointer is NULL, as Mosquitto hands it over), a reset. */
static void test_record_kinds(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("kinds"), 10, 0);
    const uint8_t cbor[] = {0xa0};
    ota_spool_entry e[] = {
        {.kind = OTA_SPOOL_KIND_REPORT_EPOCH, .vin = VIN, .seq = 5, .received_ms = 1,
         .epoch = "unit-2", .resets = 3, .payload = cbor, .len = 1},
        {.kind = OTA_SPOOL_KIND_QUARANTINE, .vin = VIN, .received_ms = 2, .code = 2,
         .msg = "seq: missing", .size = 70000, .payload = NULL, .len = 0},
        {.kind = OTA_SPOOL_KIND_RESET, .vin = VIN, .received_ms = 3, .resets = 4},
    };
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ota_spool_append(s, &e[i]), 0);
    ota_spool_entry bad = {.kind = 9, .vin = VIN};
    assert_int_equal(ota_spool_append(s, &bad), -1);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(rec.kind, OTA_SPOOL_KIND_REPORT_EPOCH);
    assert_string_equal(rec.epoch, "unit-2");
    assert_int_equal(rec.resets, 3);
    assert_int_equal(rec.payload_len, 1);
    assert_int_equal(rec.payload[0], 0xa0);
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(rec.kind, OTA_SPOOL_KIND_QUARANTINE);
    assert_int_equal(rec.code, 2);
    assert_false(rec.has_seq);
    assert_string_equal(rec.msg, "seq: missing");
    assert_string_equal(rec.epoch, "0");
    assert_int_equal(rec.size, 70000);
    assert_int_equal(rec.payload_len, 0);
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(rec.kind, OTA_SPOOL_KIND_RESET);
    assert_int_equal(rec.resets, 4);
    assert_int_equal(ota_spool_reader_next(r, &rec), 0);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.bad_records, 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

/* A description served (kind 5): every field back as appended; a payload cut short (no
 * NUL after the files) does not parse. */
static void test_description_record(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("desc"), 10, 0);
    const uint8_t cose[] = {0xd2, 0x84, 0x00, 0x01};
    ota_description_rec d = {.vin = VIN, .counter = 7, .task = "T000001", .req = 42,
                             .package = 3, .files = "ab,cd", .cose = cose,
                             .cose_len = sizeof cose, .issued_ms = 1000, .expires_ms = 2000};
    assert_int_equal(ota_spool_append_description(s, &d, 5), 0);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(rec.kind, OTA_SPOOL_KIND_DESCRIPTION);
    assert_int_equal(rec.received_ms, 5);
    ota_description_rec got;
    assert_int_equal(ota_spool_description(rec.vin, rec.seq, rec.payload, rec.payload_len, &got),
                     0);
    assert_string_equal(got.vin, VIN);
    assert_int_equal(got.counter, 7);
    assert_string_equal(got.task, "T000001");
    assert_int_equal(got.req, 42);
    assert_int_equal(got.package, 3);
    assert_string_equal(got.files, "ab,cd");
    assert_int_equal(got.cose_len, sizeof cose);
    assert_memory_equal(got.cose, cose, sizeof cose);
    assert_int_equal(got.issued_ms, 1000);
    assert_int_equal(got.expires_ms, 2000);
    size_t cut = 32 + strlen("T000001") + 1 + 2; /* into the files */
    assert_int_equal(ota_spool_description(rec.vin, rec.seq, rec.payload, cut, &got), -1);
    assert_int_equal(ota_spool_description(rec.vin, rec.seq, rec.payload, 31, &got), -1);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_roundtrip_1000(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("roundtrip"), 10, 0);
    append_n(s, 0, 1000);
    ota_spool_reader *r = reader_from_checkpoint(s);
    read_expect(r, 0, 1000);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.appended, 1000);
    assert_int_equal(st.append_errors, 0);
    assert_int_equal(st.bad_records, 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_reader_tails_appends(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("tail"), 10, 0);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    assert_int_equal(ota_spool_reader_next(r, &rec), 0);
    append_n(s, 0, 3);
    ota_spool_pos next = read_expect(r, 0, 3);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    assert_int_equal(next.segment, st.end.segment);
    assert_int_equal(next.offset, st.end.offset);
    assert_false(ota_spool_wait(s, st.end, 20));
    append_n(s, 3, 2);
    assert_true(ota_spool_wait(s, st.end, 20));
    read_expect(r, 3, 2);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

/* Bytes past the published end (an append in progress) are invisible to readers. */
static void test_reader_ignores_unpublished_bytes(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("unpublished");
    ota_spool *s = open_spool(dir, 10, 0);
    append_n(s, 0, 2);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    char path[1200];
    segment_path(path, sizeof path, dir, st.end.segment);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputs("OTA1\x30half a record", f);
    fclose(f);

    ota_spool_reader *r = reader_from_checkpoint(s);
    read_expect(r, 0, 2);
    append_n(s, 2, 1); /* goes at the published end, over the partial bytes */
    read_expect(r, 2, 1);
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.bad_records, 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

typedef struct {
    ota_spool *s;
} appender_arg;

static void *late_appender(void *arg)
{
    appender_arg *a = arg;
    usleep(50 * 1000);
    append_n(a->s, 0, 1);
    return NULL;
}

static void test_wait_wakes_on_append(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("wait"), 10, 0);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    appender_arg a = {s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_appender, &a), 0);
    uint64_t t0 = test_now_ns();
    assert_true(ota_spool_wait(s, st.end, 5000));
    uint64_t waited_ms = (test_now_ns() - t0) / 1000000;
    pthread_join(t, NULL);
    assert_true(waited_ms >= 40 && waited_ms < 1000);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_rotation(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("rotation");
    ota_spool *s = open_spool(dir, 10, 2048);
    ota_spool_stats st0, st;
    ota_spool_stats_get(s, &st0);
    append_n(s, 0, 300);
    ota_spool_stats_get(s, &st);
    assert_true(st.end.segment > st0.end.segment + 5);
    assert_int_equal(count_segments(dir), (int)(st.end.segment - st0.end.segment + 1));

    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    uint64_t last_seg = 0;
    for (uint64_t i = 0; i < 300; i++) {
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
        check_record(&rec, i);
        assert_true(rec.pos.segment >= last_seg);
        /* a segment holds records while it is under segment_bytes */
        assert_true(rec.pos.offset < 2048);
        last_seg = rec.pos.segment;
    }
    assert_int_equal(last_seg, st.end.segment);
    assert_int_equal(ota_spool_reader_next(r, &rec), 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_reopen(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("reopen");
    ota_spool *s = open_spool(dir, 10, 0);
    ota_spool_stats st1;
    ota_spool_stats_get(s, &st1);
    append_n(s, 0, 10);
    ota_spool_close(s);

    s = open_spool(dir, 10, 0);
    ota_spool_stats st2;
    ota_spool_stats_get(s, &st2);
    assert_int_equal(st2.end.segment, st1.end.segment + 1);
    assert_int_equal(st2.end.offset, 0);
    assert_int_equal(st2.appended, 0);
    ota_spool_reader *r = reader_from_checkpoint(s); /* no checkpoint: oldest segment */
    read_expect(r, 0, 10);
    append_n(s, 10, 5);
    read_expect(r, 10, 5);
    ota_spool_reader_close(r);

    /* A checkpoint in the middle: a reopened spool resumes after it. */
    r = reader_from_checkpoint(s);
    ota_spool_record rec;
    for (int i = 0; i < 4; i++)
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(ota_spool_checkpoint_store(s, rec.next), 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);

    s = open_spool(dir, 10, 0);
    r = reader_from_checkpoint(s);
    read_expect(r, 4, 11);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_reopen_empty_and_deleted(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("reopen-empty");
    /* Empty segments of earlier runs are dropped at open. */
    ota_spool_close(open_spool(dir, 10, 0));
    ota_spool_close(open_spool(dir, 10, 0));
    ota_spool *s = open_spool(dir, 10, 0);
    assert_int_equal(count_segments(dir), 1);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.end.segment, 3);

    /* Every segment gone but the checkpoint names a later one: numbering goes past it. */
    append_n(s, 0, 3);
    ota_spool_stats_get(s, &st);
    assert_int_equal(ota_spool_checkpoint_store(s, (ota_spool_pos){st.end.segment + 40, 0}), 0);
    ota_spool_close(s);
    char path[1200];
    segment_path(path, sizeof path, dir, st.end.segment);
    assert_int_equal(unlink(path), 0);
    s = open_spool(dir, 10, 0);
    ota_spool_stats st2;
    ota_spool_stats_get(s, &st2);
    assert_true(st2.end.segment > st.end.segment + 40);
    ota_spool_reader *r = reader_from_checkpoint(s);
    append_n(s, 3, 2);
    read_expect(r, 3, 2);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_checkpoint_store_load_delete(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("checkpoint");
    ota_spool *s = open_spool(dir, 10, 2048);
    ota_spool_stats st0;
    ota_spool_stats_get(s, &st0);
    append_n(s, 0, 200);
    ota_spool_stats end;
    ota_spool_stats_get(s, &end);
    assert_true(end.end.segment >= st0.end.segment + 4);

    /* Find the first record of the third segment and the record before it. */
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    ota_spool_pos prev_next = {0, 0};
    uint64_t third = st0.end.segment + 2, idx = 0;
    for (;; idx++) {
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
        if (rec.pos.segment == third)
            break;
        prev_next = rec.next;
    }
    ota_spool_reader_close(r);
    assert_int_equal(prev_next.segment, third - 1);

    /* Checkpoint at the end of the second segment: it ends at the checkpoint, so it goes. */
    assert_int_equal(ota_spool_checkpoint_store(s, prev_next), 0);
    ota_spool_pos loaded;
    assert_int_equal(ota_spool_checkpoint_load(s, &loaded), 0);
    assert_int_equal(loaded.segment, prev_next.segment);
    assert_int_equal(loaded.offset, prev_next.offset);
    char path[1200], text[128] = "", want[128];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    snprintf(want, sizeof want, "%" PRIu64 " %" PRIu64 "\n", prev_next.segment, prev_next.offset);
    assert_string_equal(text, want);
    assert_false(segment_exists(dir, st0.end.segment));
    assert_false(segment_exists(dir, third - 1));
    assert_true(segment_exists(dir, third));

    /* The checkpoint names a deleted segment: the reader continues at the next one. */
    r = reader_from_checkpoint(s);
    read_expect(r, idx, 200 - idx);
    ota_spool_reader_close(r);

    /* A checkpoint inside a segment keeps that segment. */
    r = ota_spool_reader_open(s, (ota_spool_pos){third, 0});
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    assert_int_equal(ota_spool_checkpoint_store(s, rec.next), 0);
    assert_true(segment_exists(dir, third));
    ota_spool_reader_close(r);

    /* Everything consumed: only the active segment is left. */
    assert_int_equal(ota_spool_checkpoint_store(s, end.end), 0);
    assert_int_equal(count_segments(dir), 1);
    assert_true(segment_exists(dir, end.end.segment));
    r = reader_from_checkpoint(s);
    assert_int_equal(ota_spool_reader_next(r, &rec), 0);
    append_n(s, 200, 1);
    read_expect(r, 200, 1);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

/* ---- damaged segment tails: one case per kind of damage a crash can leave ---- */

typedef enum {
    TAIL_TORN,         /* the last record lost its last bytes */
    TAIL_GARBAGE,      /* bytes after the last record */
    TAIL_SHORT_HEADER, /* a record header cut short */
} tail_damage;

typedef struct {
    const char *dir;
    tail_damage damage;
    uint64_t whole; /* records of the 5 written that still read back */
} tail_case;

static const tail_case tail_cases[] = {
    {"torn", TAIL_TORN, 4},
    {"garbage", TAIL_GARBAGE, 5},
    {"short-header", TAIL_SHORT_HEADER, 5},
};

static void damage_tail(const char *path, tail_damage how)
{
    if (how == TAIL_TORN) {
        assert_int_equal(truncate(path, (off_t)file_size(path) - 5), 0);
        return;
    }
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputs(how == TAIL_GARBAGE ? "garbage after the last record" : "OTA", f);
    fclose(f);
}

/* Five records, the segment's tail damaged, reopened: the whole records read back, the
 * damage counts as one bad record and reading goes on in the next segment. */
static void test_damaged_tail(void **state)
{
    const tail_case *c = *state;
    const char *dir = test_fresh_dir(c->dir);
    ota_spool *s = open_spool(dir, 10, 0);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    append_n(s, 100, 5);
    ota_spool_close(s);
    char path[1200];
    segment_path(path, sizeof path, dir, st.end.segment);
    damage_tail(path, c->damage);

    s = open_spool(dir, 10, 0);
    append_n(s, 200, 2);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    for (uint64_t i = 0; i < c->whole; i++) {
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
        check_record(&rec, 100 + i);
    }
    read_expect(r, 200, 2); /* continues into the next segment */
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.bad_records, 1);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_crc_flip(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("crc");
    ota_spool *s = open_spool(dir, 10, 0);
    append_n(s, 50, 3);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    ota_spool_pos second = rec.next;
    ota_spool_reader_close(r);
    ota_spool_close(s);

    /* Flip one payload byte of the second record (12-byte header, 35-byte body prefix). */
    char path[1200];
    segment_path(path, sizeof path, dir, second.segment);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    off_t at = (off_t)second.offset + 12 + 35 + 10;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);

    s = open_spool(dir, 10, 0);
    append_n(s, 60, 1);
    r = reader_from_checkpoint(s);
    assert_int_equal(ota_spool_reader_next(r, &rec), 1);
    check_record(&rec, 50);
    read_expect(r, 60, 1); /* the bad record ended its segment */
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    assert_int_equal(st.bad_records, 1);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_bytes_after(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("bytes-after");
    ota_spool *s = open_spool(dir, 10, 1500);
    ota_spool_stats st0, st;
    ota_spool_stats_get(s, &st0);
    ota_spool_pos start = {st0.end.segment, 0};
    assert_int_equal(ota_spool_bytes_after(s, start), 0);
    append_n(s, 0, 40);
    ota_spool_stats_get(s, &st);
    assert_true(st.end.segment > st0.end.segment);

    uint64_t total = 0;
    for (uint64_t n = st0.end.segment; n < st.end.segment; n++) {
        char path[1200];
        segment_path(path, sizeof path, dir, n);
        total += file_size(path);
    }
    total += st.end.offset;
    assert_int_equal(ota_spool_bytes_after(s, start), total);

    ota_spool_reader *r = ota_spool_reader_open(s, start);
    ota_spool_record rec;
    uint64_t consumed = 0;
    for (int i = 0; i < 25; i++) {
        assert_int_equal(ota_spool_reader_next(r, &rec), 1);
        consumed += 12 + 35 + rec.payload_len;
    }
    assert_int_equal(ota_spool_bytes_after(s, rec.next), total - consumed);
    assert_int_equal(ota_spool_bytes_after(s, st.end), 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_sync_thread(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("sync"), 20, 0);
    usleep(60 * 1000);
    ota_spool_stats st0, st1, st2;
    ota_spool_stats_get(s, &st0);
    usleep(60 * 1000);
    ota_spool_stats_get(s, &st1);
    assert_int_equal(st1.syncs, st0.syncs); /* nothing appended: nothing synced */

    append_n(s, 0, 200);
    usleep(100 * 1000);
    ota_spool_stats_get(s, &st2);
    assert_true(st2.syncs > st1.syncs);
    assert_true(st2.syncs - st1.syncs < 20); /* group commit: far fewer syncs than appends */
    ota_spool_close(s);
    test_remove_dir();
}

static void test_append_failure_publishes_nothing(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("append-fail");
    ota_spool *s = open_spool(dir, 10, 0);
    uint8_t p[200];
    fill_payload(p, sizeof p, 1);
    append_n(s, 0, 3);
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);

    /* Too long a VIN is refused. */
    assert_int_equal(ota_spool_append_report(s, "0123456789012345678901234567890123", 1, 1, p, 3),
                     -1);
    assert_int_equal(errno, EINVAL);

    /* The file size limit stops the spool from reserving space for a record larger than
     * what is reserved: EFBIG, and nothing is published. */
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = saved;
    lim.rlim_cur = 4u << 20; /* what the first reservation took */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t big_len = 5u << 20;
    uint8_t *big = calloc(1, big_len);
    assert_non_null(big);
    int rc = ota_spool_append_report(s, VIN, 99, 99, big, big_len);
    int e = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    free(big);
    assert_int_equal(rc, -1);
    assert_int_equal(e, EFBIG);

    ota_spool_stats st2;
    ota_spool_stats_get(s, &st2);
    assert_int_equal(st2.append_errors, 2);
    assert_int_equal(st2.appended, 3);
    assert_int_equal(st2.end.offset, st.end.offset);

    append_n(s, 3, 2);
    ota_spool_close(s);
    s = open_spool(dir, 10, 0);
    ota_spool_reader *r = reader_from_checkpoint(s);
    read_expect(r, 0, 5);
    ota_spool_stats_get(s, &st2);
    assert_int_equal(st2.bad_records, 0);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

static void test_open_fails_cleanly(void **state)
{
    (void)state;
    const char *dir = test_fresh_dir("open-fail");
    char path[1200], err[256] = "";
    snprintf(path, sizeof path, "%s", dir);
    FILE *f = fopen(path, "w"); /* a file where the directory should be */
    assert_non_null(f);
    fclose(f);
    ota_spool_config cfg = {.dir = path};
    assert_null(ota_spool_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, path));
    cfg.dir = NULL;
    assert_null(ota_spool_open(&cfg, err, sizeof err));
    unlink(path);

    /* One spool per directory: a second one (another broker) is refused. */
    ota_spool *s = open_spool(dir, 10, 0);
    cfg.dir = dir;
    err[0] = '\0';
    assert_null(ota_spool_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "lock"));
    ota_spool_close(s);
    ota_spool_close(open_spool(dir, 10, 0)); /* the lock went with the first spool */
    test_remove_dir();
}

static void test_append_cost(void **state)
{
    (void)state;
    ota_spool *s = open_spool(test_fresh_dir("cost"), 10, 0);
    uint8_t p[200];
    fill_payload(p, sizeof p, 3);
    enum { N = 20000 };
    uint64_t t0 = test_now_ns(), worst = 0;
    for (int i = 0; i < N; i++) {
        uint64_t t = test_now_ns();
        assert_int_equal(ota_spool_append_report(s, VIN, (uint64_t)i, 1, p, sizeof p), 0);
        t = test_now_ns() - t;
        worst = t > worst ? t : worst;
    }
    uint64_t ns = (test_now_ns() - t0) / N;
    ota_spool_stats st;
    ota_spool_stats_get(s, &st);
    print_message("append of a 200-byte report: %" PRIu64 " ns mean, %" PRIu64 " ns worst (%" PRIu64
                  " syncs meanwhile)\n",
                  ns, worst, st.syncs);
    ota_spool_reader *r = reader_from_checkpoint(s);
    ota_spool_record rec;
    int n = 0;
    t0 = test_now_ns();
    while (ota_spool_reader_next(r, &rec) == 1)
        n++;
    print_message("read back: %" PRIu64 " ns per record\n", (test_now_ns() - t0) / N);
    assert_int_equal(n, N);
    ota_spool_reader_close(r);
    ota_spool_close(s);
    test_remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_1000),
        cmocka_unit_test(test_record_kinds),
        cmocka_unit_test(test_description_record),
        cmocka_unit_test(test_reader_tails_appends),
        cmocka_unit_test(test_reader_ignores_unpublished_bytes),
        cmocka_unit_test(test_wait_wakes_on_append),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_reopen_empty_and_deleted),
        cmocka_unit_test(test_checkpoint_store_load_delete),
        {"test_torn_tail", test_damaged_tail, NULL, NULL, (void *)&tail_cases[0]},
        {"test_garbage_tail", test_damaged_tail, NULL, NULL, (void *)&tail_cases[1]},
        {"test_short_header_tail", test_damaged_tail, NULL, NULL, (void *)&tail_cases[2]},
        cmocka_unit_test(test_crc_flip),
        cmocka_unit_test(test_bytes_after),
        cmocka_unit_test(test_sync_thread),
        cmocka_unit_test(test_append_failure_publishes_nothing),
        cmocka_unit_test(test_open_fails_cleanly),
        cmocka_unit_test(test_append_cost),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
