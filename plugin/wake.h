/*
 * wake.h — waking Mosquitto 2.0.11's broker thread from a plugin thread (wake.c).
 *
 * The broker's loop sleeps in epoll_wait (100 ms timeout) when no socket is ready, and
 * its API has no way for another thread to end that wait: results of worker threads are
 * drained on TICK, which then comes up to 100 ms late. A signal sent to the broker thread
 * ends epoll_wait at once (EINTR, which the loop ignores) and the next TICK drains the
 * result. The signal is a real-time one nobody else handles (checked at start; without a
 * free one waking is off and TICK alone drains), caught by a handler that does nothing,
 * installed with SA_RESTART so that no other system call of the broker sees EINTR.
 */
#ifndef OTA_WAKE_H
#define OTA_WAKE_H

#include <stdbool.h>

typedef struct ota_wake ota_wake;

/* On the broker thread (plugin init): installs the handler. NULL when no signal is free
 * (or out of memory): then nothing can be woken. */
ota_wake *ota_wake_new(void);
/* Any thread: ends the broker thread's current or next wait. Matches signer.h's wake. */
void ota_wake_broker(void *w);
/* After every thread that may call ota_wake_broker has stopped: restores the signal. */
void ota_wake_free(ota_wake *w);

#endif
