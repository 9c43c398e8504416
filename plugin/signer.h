/*
 * signer.h — Ed25519 signing of package descriptions off the broker thread (signer.c).
 *
 * The broker thread submits jobs (a CBOR payload to wrap in a COSE_Sign1); one or more
 * signer threads (plugin_opt_sign_threads) sign them, each with its own EVP_MD_CTX; the
 * broker thread takes the finished jobs back on TICK, always in submission order (a job
 * finished early waits for those before it), so what follows from them (replies,
 * persistence) keeps the order in which the descriptions were built.
 *
 * Mosquitto 2.0.11 cannot be woken by a plugin thread through its API: a finished job is
 * seen at the next TICK, which under load is the next loop pass and when the broker is
 * idle up to 100 ms later. The optional wake callback is called (from a signer thread)
 * when the first finished job is waiting and nobody was told yet; pkg.c points it at
 * wake.h, which interrupts the broker's epoll wait with a signal.
 *
 * Signer threads use plain malloc/free and OpenSSL only, never mosquitto_* functions.
 * A test aid: delay_ms (plugin_opt_sign_delay_ms, default 0) makes every signature take
 * that much longer, so that a test can stop the broker with descriptions still in the
 * signer (tests/integration/test_pkg.py).
 */
#ifndef OTA_SIGNER_H
#define OTA_SIGNER_H

#include "ota_cose.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ota_signer ota_signer;

typedef struct ota_sign_job {
    struct ota_sign_job *next; /* the signer's; after ota_signer_take: the next done */
    uint8_t *payload;          /* in: malloc'd CBOR, freed by the signer once signed */
    size_t payload_len;
    uint8_t *cose; /* out: the COSE_Sign1 (malloc'd), NULL when signing failed */
    size_t cose_len;
    bool done;
} ota_sign_job;

/* Starts threads (1..OTA_SIGNER_MAX_THREADS) signing with key (kept, not owned) and kid.
 * wake (may be NULL) is called from a signer thread as described above. NULL with err. */
#define OTA_SIGNER_MAX_THREADS 16
ota_signer *ota_signer_start(EVP_PKEY *key, const uint8_t kid[OTA_COSE_KID_LEN], unsigned threads,
                             unsigned delay_ms, void (*wake)(void *), void *wake_arg, char *err,
                             size_t errlen);

/* Broker thread: queues j (its payload set). Never blocks on signing. */
void ota_signer_submit(ota_signer *s, ota_sign_job *j);

/* Broker thread: the finished jobs at the head of the queue, in submission order, linked
 * by next (NULL when none). */
ota_sign_job *ota_signer_take(ota_signer *s);

/* Jobs submitted and not yet taken. */
size_t ota_signer_pending(ota_signer *s);

/* Lets the threads finish every job submitted, joins them; the jobs stay to be taken
 * (ota_signer_take returns them all afterwards). Idempotent. */
void ota_signer_stop(ota_signer *s);

/* Stops the signer if needed; jobs never taken are left to their owner (none should be). */
void ota_signer_free(ota_signer *s);

#endif
