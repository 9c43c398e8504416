/*
 * fuzz_spool_record.c — fuzz target: the durable spool's segment and record scanning
 * (store/spool.c), on a spool directory made from the input, as the writer thread reads it
 * after a crash (ota_spool_open, checkpoint load, ota_spool_reader_next until the end).
 *
 * Input: one mode byte, then the segment. Mode bit 0 set: the rest is written as the
 * segment file as is. Clear: the rest is a list of record bodies, each preceded by a
 * 16-bit little-endian length, framed with a valid header (magic, length, CRC), so that
 * the fuzzer reaches the body parser past the CRC; bit 1 then tears the last record, bit 2
 * appends the zero tail a crash leaves. Bit 3 writes a checkpoint at offset
 * (mode >> 4) * 37 of segment 1, possibly inside a record.
 * Checks: records come out in order, each inside the segment, with a terminated VIN (and
 * epoch and message: the meta of kinds 2-4); the reader ends (0) or reports an error
 * (-1), and never loops.
 */
#include "fuzz.h"
#include "ota_spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void clean_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
}

static void write_file(const char *name, const void *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f);
    FUZZ_CHECK(len == 0 || fwrite(buf, 1, len, f) == len);
    fclose(f);
}

/* Frames length-prefixed bodies with valid record headers; returns the segment (malloc). */
static uint8_t *frame(const uint8_t *in, size_t n, uint8_t mode, size_t *out_len)
{
    uint8_t *seg = malloc(n * 7 + 4096); /* worst case: a 12-byte header per 2-byte prefix */
    FUZZ_CHECK(seg);
    size_t len = 0, last = 0;
    while (n >= 2) {
        size_t blen = (size_t)in[0] | (size_t)in[1] << 8;
        in += 2, n -= 2;
        blen = blen < n ? blen : n;
        last = len;
        memcpy(seg + len, "OTA1", 4);
        put_u32(seg + len + 4, (uint32_t)blen);
        put_u32(seg + len + 8, (uint32_t)crc32(crc32(0L, Z_NULL, 0), in, (uInt)blen));
        memcpy(seg + len + 12, in, blen);
        len += 12 + blen;
        in += blen, n -= blen;
    }
    if ((mode & 2) && len > last + 1) {
        len--; /* a torn tail */
    }
    if (mode & 4) {
        memset(seg + len, 0, 4096);
        len += 4096;
    }
    *out_len = len;
    return seg;
}

static void read_all(ota_spool *s, size_t seg_len)
{
    ota_spool_pos from = {0, 0};
    if (ota_spool_checkpoint_load(s, &from) != 0) {
        from = (ota_spool_pos){0, 0};
    }
    ota_spool_reader *r = ota_spool_reader_open(s, from);
    FUZZ_CHECK(r);
    ota_spool_record rec;
    ota_spool_pos prev = {0, 0};
    int rc, count = 0;
    while ((rc = ota_spool_reader_next(r, &rec)) == 1) {
        FUZZ_CHECK(++count <= (int)(seg_len / 12) + 1);
        FUZZ_CHECK(memchr(rec.vin, '\0', sizeof(rec.vin)) != NULL);
        FUZZ_CHECK(memchr(rec.epoch, '\0', sizeof(rec.epoch)) != NULL);
        FUZZ_CHECK(memchr(rec.msg, '\0', sizeof(rec.msg)) != NULL);
        FUZZ_CHECK(rec.next.segment == rec.pos.segment && rec.next.offset > rec.pos.offset);
        FUZZ_CHECK(rec.pos.segment > prev.segment ||
                   (rec.pos.segment == prev.segment && rec.pos.offset >= prev.offset));
        FUZZ_CHECK(rec.pos.segment != 1 || rec.next.offset <= seg_len);
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < rec.payload_len; i++) {
            sum ^= rec.payload[i];
        }
        (void)sum;
        prev = rec.next;
    }
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (getenv("OTA_FUZZ_VERBOSE")) {
        fprintf(stderr, "%d records, then %d\n", count, rc);
    }
    ota_spool_reader_close(r);
}

static void remove_dir(void)
{
    clean_dir();
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/ota-fuzz-spool-XXXXXX", base);
        FUZZ_CHECK(mkdtemp(dir));
        atexit(remove_dir);
    }
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t seg_len = size - 1;
    uint8_t *seg = (mode & 1) ? NULL : frame(data + 1, size - 1, mode, &seg_len);
    write_file("00000000000000000001.seg", seg ? seg : data + 1, seg_len);
    if (mode & 8) {
        char cp[64];
        int n = snprintf(cp, sizeof(cp), "1 %u\n", (unsigned)(mode >> 4) * 37);
        write_file("checkpoint", cp, (size_t)n);
    }
    free(seg);
    ota_spool_config cfg = {dir, 1000, 1 << 20};
    char err[256];
    ota_spool *s = ota_spool_open(&cfg, err, sizeof(err));
    if (s) {
        read_all(s, seg_len);
        ota_spool_close(s);
    }
    clean_dir();
    return 0;
}
