/*
 * sync_impl.h — private helpers shared by the spool, the writer thread and the lazy store
 * (spool.c, writer.c, lazy.c) for waiting: the monotonic clock in ms, deadlines on it,
 * condition variables that time out on it, and the order of spool positions (how far a
 * wait has got).
 * Nothing outside store/ includes this.
 */
#ifndef OTA_SYNC_IMPL_H
#define OTA_SYNC_IMPL_H

#include "ota_spool.h"

#include <pthread.h>
#include <time.h>

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t ota_sync_mono_ms(void);

/* *ts = now + ms on CLOCK_MONOTONIC, for pthread_cond_timedwait on an ota_sync_cond_init
 * condition variable. */
void ota_sync_deadline(struct timespec *ts, unsigned ms);

/* pthread_cond_init with CLOCK_MONOTONIC as the clock of its timed waits; 0 or -1. */
int ota_sync_cond_init(pthread_cond_t *cv);

/* <0, 0 or >0 as a is before, at or after b. */
static inline int ota_spool_pos_cmp(ota_spool_pos a, ota_spool_pos b)
{
    if (a.segment != b.segment)
        return a.segment < b.segment ? -1 : 1;
    return a.offset < b.offset ? -1 : a.offset > b.offset;
}

#endif
