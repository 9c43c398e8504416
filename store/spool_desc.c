/*
 * spool_desc.c — a package description as a spool record and back (layout in
 * ota_spool_desc.h). The broker thread encodes it into one buffer and appends it (the
 * spool's append is a memcpy: no system call, no fsync); the writer and the start-up
 * decode it without copying.
 */
#include "ota_spool_desc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIXED 32 /* req | package | issued_ms | expires_ms */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int ota_spool_append_description(ota_spool *s, const ota_description_rec *d, int64_t now_ms)
{
    const char *task = d->task ? d->task : "", *files = d->files ? d->files : "";
    size_t tlen = strlen(task) + 1, flen = strlen(files) + 1;
    size_t len = FIXED + tlen + flen + d->cose_len;
    uint8_t *b = malloc(len);
    if (b == NULL) {
        errno = ENOMEM;
        return -1;
    }
    put_u64(b, d->req);
    put_u64(b + 8, d->package);
    put_u64(b + 16, (uint64_t)d->issued_ms);
    put_u64(b + 24, (uint64_t)d->expires_ms);
    memcpy(b + FIXED, task, tlen);
    memcpy(b + FIXED + tlen, files, flen);
    if (d->cose_len > 0)
        memcpy(b + FIXED + tlen + flen, d->cose, d->cose_len);
    ota_spool_entry e = {.kind = OTA_SPOOL_KIND_DESCRIPTION,
                         .vin = d->vin,
                         .seq = d->counter,
                         .received_ms = now_ms,
                         .payload = b,
                         .len = len};
    int rc = ota_spool_append(s, &e);
    int saved = errno;
    free(b);
    errno = saved;
    return rc;
}

int ota_spool_description(const char *vin, uint64_t seq, const uint8_t *payload, size_t len,
                          ota_description_rec *out)
{
    if (len < FIXED)
        return -1;
    const uint8_t *task = payload + FIXED, *end = payload + len;
    const uint8_t *tnul = memchr(task, '\0', (size_t)(end - task));
    const uint8_t *files = tnul != NULL ? tnul + 1 : NULL;
    const uint8_t *fnul = files != NULL ? memchr(files, '\0', (size_t)(end - files)) : NULL;
    if (fnul == NULL)
        return -1;
    *out = (ota_description_rec){.vin = vin,
                                 .counter = seq,
                                 .task = (const char *)task,
                                 .req = get_u64(payload),
                                 .package = get_u64(payload + 8),
                                 .files = (const char *)files,
                                 .cose = fnul + 1,
                                 .cose_len = (size_t)(end - fnul - 1),
                                 .issued_ms = (int64_t)get_u64(payload + 16),
                                 .expires_ms = (int64_t)get_u64(payload + 24)};
    return 0;
}
