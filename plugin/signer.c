/*
 * signer.c — the signer threads (signer.h).
 *
 * Design: one mutex-protected list of every job submitted and not yet taken, in
 * submission order (head..tail), and a cursor on the first job no thread has claimed.
 * A thread claims the job at the cursor, signs it outside the lock with its own
 * EVP_MD_CTX, and marks it done; the broker thread takes the done jobs from the head,
 * stopping at the first not done, so results come back in order whatever the number of
 * threads. `told` says whether the wake callback was already called for the results
 * waiting; taking them clears it, so a burst costs one wake-up, not one per job.
 */
#include "signer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ota_signer {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job submitted, or stop */
    ota_sign_job *head, *tail, *cursor;
    size_t pending;
    bool stopping, told;
    EVP_PKEY *key;
    uint8_t kid[OTA_COSE_KID_LEN];
    void (*wake)(void *);
    void *wake_arg;
    unsigned delay_ms; /* a test aid: plugin_opt_sign_delay_ms, a slow signer */
    unsigned n_threads;
    pthread_t threads[OTA_SIGNER_MAX_THREADS];
};

/* The next unclaimed job, waiting for one; NULL when stopping and none is left. */
static ota_sign_job *claim(ota_signer *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->cursor == NULL && !s->stopping)
        pthread_cond_wait(&s->work, &s->mu);
    ota_sign_job *j = s->cursor;
    if (j != NULL)
        s->cursor = j->next;
    pthread_mutex_unlock(&s->mu);
    return j;
}

/* Marks j done; true when the broker thread is to be told (the head is done, untold). */
static bool finish(ota_signer *s, ota_sign_job *j)
{
    pthread_mutex_lock(&s->mu);
    j->done = true;
    bool tell = !s->told && s->head != NULL && s->head->done;
    s->told = s->told || tell;
    pthread_mutex_unlock(&s->mu);
    return tell;
}

static void *signer_main(void *arg)
{
    ota_signer *s = arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ota_sign_job *j;
    while ((j = claim(s)) != NULL) {
        j->cose = ctx ? ota_codec_cose_sign_ctx(ctx, s->key, s->kid, j->payload, j->payload_len,
                                                &j->cose_len)
                      : NULL;
        free(j->payload);
        j->payload = NULL;
        if (s->delay_ms > 0)
            nanosleep(&(struct timespec){s->delay_ms / 1000, (long)(s->delay_ms % 1000) * 1000000},
                      NULL);
        if (finish(s, j) && s->wake != NULL)
            s->wake(s->wake_arg);
    }
    EVP_MD_CTX_free(ctx);
    return NULL;
}

ota_signer *ota_signer_start(EVP_PKEY *key, const uint8_t kid[OTA_COSE_KID_LEN], unsigned threads,
                             unsigned delay_ms, void (*wake)(void *), void *wake_arg, char *err,
                             size_t errlen)
{
    ota_signer *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "signer: out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    s->key = key;
    memcpy(s->kid, kid, OTA_COSE_KID_LEN);
    s->wake = wake;
    s->wake_arg = wake_arg;
    s->delay_ms = delay_ms;
    threads = threads < 1 ? 1 : threads > OTA_SIGNER_MAX_THREADS ? OTA_SIGNER_MAX_THREADS : threads;
    for (; s->n_threads < threads; s->n_threads++) {
        if (pthread_create(&s->threads[s->n_threads], NULL, signer_main, s) != 0) {
            snprintf(err, errlen, "signer: cannot start thread %u", s->n_threads + 1);
            ota_signer_free(s);
            return NULL;
        }
    }
    return s;
}

void ota_signer_submit(ota_signer *s, ota_sign_job *j)
{
    j->next = NULL;
    j->done = false;
    j->cose = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->tail != NULL)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    if (s->cursor == NULL)
        s->cursor = j;
    s->pending++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

ota_sign_job *ota_signer_take(ota_signer *s)
{
    pthread_mutex_lock(&s->mu);
    ota_sign_job *first = s->head, *last = NULL;
    for (ota_sign_job *j = first; j != NULL && j->done; j = j->next) {
        last = j;
        s->pending--;
    }
    if (last == NULL) {
        first = NULL;
    } else {
        s->head = last->next;
        if (s->head == NULL)
            s->tail = NULL;
        last->next = NULL;
    }
    s->told = false;
    pthread_mutex_unlock(&s->mu);
    return first;
}

size_t ota_signer_pending(ota_signer *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->pending;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ota_signer_stop(ota_signer *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->n_threads = 0;
}

void ota_signer_free(ota_signer *s)
{
    if (s == NULL)
        return;
    ota_signer_stop(s);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
