/*
 * task_waves.h — a task's rollout in waves (issue 16): the waves as the operator gave
 * them, the stored plan (which wave each execution is in, waves.c), and the rollout's
 * state (the current wave, how many waves are approved, paused). Kept in the task
 * document under "waves" (and "paused"), so it is stored with the task and loaded with
 * it; the engine (plugin/engine_waves.c) decides promotions and aborts with the
 * functions here. Broker-free.
 *
 * Rules: an execution may be notified while its wave is started (wave <= current) and
 * approved (wave < approved), and the task is not paused. The current wave is promoted
 * when its succeeded executions reach success_threshold percent of its size (or by
 * hand); the task is aborted when, in the current wave, failed x 100 >= finished x
 * error_threshold (error_threshold 0: never; finished = succeeded + failed >= 1).
 * Succeeded and failed are the larger of this broker's counts and all_ok / all_bad (the
 * store's, over every broker, when several share it).
 */
#ifndef OTA_TASK_WAVES_H
#define OTA_TASK_WAVES_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ota_store.h"
#include "waves.h"

#define OTA_WAVE_NONE 0xff /* an execution in no wave (rejected at creation) */

typedef enum { OTA_APPROVAL_NONE = 0, OTA_APPROVAL_FIRST, OTA_APPROVAL_EACH } ota_wave_approval;

typedef struct {
    size_t n_specs; /* waves given; the rest is wave n_specs */
    ota_wave_spec specs[OTA_WAVES_MAX];
    uint8_t success_pct[OTA_WAVES_MAX + 1]; /* the rest's: 100 */
    uint8_t error_pct[OTA_WAVES_MAX + 1];   /* 0: never */
    ota_wave_approval approval;
    uint8_t current;  /* the wave started last */
    uint8_t approved; /* waves 0..approved-1 are approved */
    uint8_t *wave_of; /* per execution (the task's VIN order), OTA_WAVE_NONE outside */
    size_t n_of;
    /* runtime, recomputed (ota_task_waves_recount): executions per wave and state */
    size_t size[OTA_WAVES_MAX + 1];
    size_t count[OTA_WAVES_MAX + 1][OTA_EXEC_STATE_COUNT];
    /* runtime on a store several brokers share (the task's count job, plugin/engine_end.c):
     * succeeded and failed per wave as the store held them at the last count, every
     * broker's executions; the decisions take the larger of these and this broker's own */
    size_t all_ok[OTA_WAVES_MAX + 1], all_bad[OTA_WAVES_MAX + 1];
    bool storing;          /* a promotion's conditional write is out */
    int64_t promote_after; /* monotonic ms: a promotion that lost its write waits */
} ota_task_waves;

/* The waves of a createTask request ("waves": [{count|percent, success_threshold,
 * error_threshold}...], "wave_approval": none|first|each) under path. 0 (with *out NULL
 * when the request has no waves), or -1 with err. */
int ota_task_waves_parse(const cJSON *task, const char *path, ota_task_waves **out, char *err,
                         size_t errlen);
/* The plan for a task's executions: vins[i] accepted[i] (false: in no wave). The waves
 * are sized over the accepted ones. 0, or -1 out of memory. */
int ota_task_waves_plan(ota_task_waves *w, const char *task_id, const char *const *vins,
                        const bool *accepted, size_t n);
void ota_task_waves_free(ota_task_waves *w);

/* The document member "waves" (spec, approval, current, approved, plan), or NULL. */
cJSON *ota_task_waves_json(const ota_task_waves *w);
/* From a stored document member; the plan is checked against n_execs at recount.
 * 0, or -1 with err. */
int ota_task_waves_from_json(const cJSON *j, ota_task_waves **out, char *err, size_t errlen);

/* Recounting: reset for n executions (a plan of another length puts every execution in
 * wave 0), then add each execution's state. */
void ota_task_waves_reset(ota_task_waves *w, size_t n);
void ota_task_waves_add(ota_task_waves *w, size_t idx, uint8_t state);
/* An execution moved (count bookkeeping). */
void ota_task_waves_moved(ota_task_waves *w, size_t idx, uint8_t from, uint8_t to);
/* The wave of execution idx (OTA_WAVE_NONE outside). */
uint8_t ota_task_waves_of(const ota_task_waves *w, size_t idx);
/* How many waves have vehicles (the rest counted when it has any). */
size_t ota_task_waves_count(const ota_task_waves *w);
/* Whether execution idx may be notified now (wave started and approved). */
bool ota_task_waves_may_notify(const ota_task_waves *w, size_t idx);
/* The current wave reached its success threshold and a next wave exists. */
bool ota_task_waves_due(const ota_task_waves *w);
/* The current wave crossed its error threshold. */
bool ota_task_waves_failing(const ota_task_waves *w);
/* Starts the next wave (approved at once unless approval is "each"). false: none left. */
bool ota_task_waves_promote(ota_task_waves *w);
/* Approves the current wave. false: it was approved already. */
bool ota_task_waves_approve(ota_task_waves *w);
/* A continuous task's late joiner (tasks.c): appends an execution in wave (OTA_WAVE_NONE:
 * outside, as a rejected one is) with its state; 0, or -1 out of memory. */
int ota_task_waves_append(ota_task_waves *w, uint8_t wave, uint8_t state);
/* Puts execution idx (in state from, now to) in wave instead of its own. */
void ota_task_waves_set(ota_task_waves *w, size_t idx, uint8_t wave, uint8_t from, uint8_t to);
/* Per wave: [{wave, size, started, approved, counts:{state: n}}...]. */
cJSON *ota_task_waves_report(const ota_task_waves *w);

#endif
