/*
 * logq.c — log lines from worker threads, written by the broker thread.
 *
 * mosquitto_log_printf is not safe to call off the broker thread, so the writer thread
 * pushes complete lines into this bounded, mutex-protected queue and the TICK callback
 * drains it. When the queue is full, lines are dropped and counted rather than letting
 * a failing store grow memory without bound.
 */
#include "ota_plugin.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct logq_line {
    struct logq_line *next;
    int level;
    char text[];
} logq_line;

struct ota_logq {
    pthread_mutex_t mu;
    logq_line *head, *tail;
    size_t len, max;
    uint64_t dropped;
};

ota_logq *ota_logq_new(size_t max_lines)
{
    ota_logq *q = calloc(1, sizeof(*q));
    if (q) {
        pthread_mutex_init(&q->mu, NULL);
        q->max = max_lines;
    }
    return q;
}

static logq_line *take_all(ota_logq *q, uint64_t *dropped)
{
    pthread_mutex_lock(&q->mu);
    logq_line *lines = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    *dropped = q->dropped;
    q->dropped = 0;
    pthread_mutex_unlock(&q->mu);
    return lines;
}

void ota_logq_free(ota_logq *q)
{
    if (!q) {
        return;
    }
    uint64_t dropped;
    for (logq_line *l = take_all(q, &dropped), *next; l; l = next) {
        next = l->next;
        free(l);
    }
    pthread_mutex_destroy(&q->mu);
    free(q);
}

void ota_logq_push(void *ctx, int level, const char *msg)
{
    ota_logq *q = ctx;
    size_t n = strlen(msg) + 1;
    logq_line *l = malloc(sizeof(*l) + n);
    pthread_mutex_lock(&q->mu);
    if (!l || q->len >= q->max) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        free(l);
        return;
    }
    l->next = NULL;
    l->level = level;
    memcpy(l->text, msg, n);
    if (q->tail) {
        q->tail->next = l;
    } else {
        q->head = l;
    }
    q->tail = l;
    q->len++;
    pthread_mutex_unlock(&q->mu);
}

static int mosquitto_level(int level)
{
    static const int levels[] = {MOSQ_LOG_ERR, MOSQ_LOG_WARNING, MOSQ_LOG_NOTICE, MOSQ_LOG_INFO,
                                 MOSQ_LOG_DEBUG};
    return level >= 0 && level <= OTA_LOG_DEBUG ? levels[level] : MOSQ_LOG_INFO;
}

uint64_t ota_logq_drain(ota_logq *q)
{
    uint64_t dropped;
    for (logq_line *l = take_all(q, &dropped), *next; l; l = next) {
        next = l->next;
        mosquitto_log_printf(mosquitto_level(l->level), "ota: %s", l->text);
        free(l);
    }
    if (dropped) {
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: %llu log lines dropped",
                             (unsigned long long)dropped);
    }
    return dropped;
}
