/*
 * fleet_acked.c — the --acked file of ota-fleet: one line "VIN SEQ NEVENTS" per report
 * whose success PUBACK arrived.
 *
 * The zero-loss test compares these lines with the store, so a line is only ever added
 * after its PUBACK was received. Lines are buffered and appended with write(2); the
 * event loop flushes at least every 100 ms and at exit. A line is never split across
 * flushes, so a reader that sees a partial file still sees whole lines only (the file
 * is not fsync()ed: it is for the test, which outlives the broker, not the fleet).
 */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACKED_BUF 65536
#define ACKED_LINE_MAX 64

struct fleet_acked {
    int fd;
    size_t len;
    bool failed;
    char buf[ACKED_BUF];
};

fleet_acked *fleet_acked_open(const char *path)
{
    fleet_acked *a = malloc(sizeof *a);

    if (a == NULL)
        return NULL;
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        fprintf(stderr, "ota-fleet: cannot open %s: %s\n", path, strerror(errno));
        free(a);
        return NULL;
    }
    a->len = 0;
    a->failed = false;
    return a;
}

int fleet_acked_flush(fleet_acked *a)
{
    size_t off = 0;

    while (off < a->len) {
        ssize_t n = write(a->fd, a->buf + off, a->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!a->failed)
                fprintf(stderr, "ota-fleet: writing the acked file: %s\n", strerror(errno));
            a->failed = true;
            a->len = 0;
            return -1;
        }
        off += (size_t)n;
    }
    a->len = 0;
    return 0;
}

void fleet_acked_add(fleet_acked *a, const char *vin, uint64_t seq, uint32_t events)
{
    int n;

    if (ACKED_BUF - a->len < ACKED_LINE_MAX)
        fleet_acked_flush(a);
    n = snprintf(a->buf + a->len, ACKED_LINE_MAX, "%s %llu %u\n", vin, (unsigned long long)seq,
                 events);
    if (n > 0 && n < ACKED_LINE_MAX)
        a->len += (size_t)n;
}

void fleet_acked_close(fleet_acked *a)
{
    if (a == NULL)
        return;
    fleet_acked_flush(a);
    close(a->fd);
    free(a);
}
