/*
 * task_retry.h — a task's retry policy (issue 16): which failures are tried again (error
 * words of upgrade_status failed, and "timeout"), how many times, and the backoff
 * (backoff_ms x factor^(retries so far)). Kept in the task document ("retry"). The
 * engine (engine_waves.c) sends the notice again after the backoff with a new msg_id
 * (task:vin:resends), so every attempt is a row of the notice table and the execution's
 * resends counts them. Broker-free.
 */
#ifndef OTA_TASK_RETRY_H
#define OTA_TASK_RETRY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_RETRY_WORDS_MAX 16

typedef struct {
    bool on;
    size_t n_words;
    char words[OTA_RETRY_WORDS_MAX][65]; /* error words; "timeout" for timeouts */
    unsigned max_retries;                /* 1..100 */
    uint64_t backoff_ms;                 /* 0..86400000 */
    double factor;                       /* 1..10 */
} ota_task_retry;

/* obj's "retry": {"on": [word...], "max_retries", "backoff_ms"?, "backoff_factor"?}; r->on
 * false when absent. 0, or -1 with err. */
int ota_task_retry_parse(const cJSON *obj, const char *path, ota_task_retry *r, char *err,
                         size_t errlen);
cJSON *ota_task_retry_json(const ota_task_retry *r);
/* Whether a failure with word (NULL: none) after `done` retries is tried again. */
bool ota_task_retry_wanted(const ota_task_retry *r, const char *word, unsigned done);
/* The wait before retry number done + 1. */
int64_t ota_task_retry_backoff(const ota_task_retry *r, unsigned done);

#endif
