/*
 * task_ramp.h — a task's exponential notice-rate ramp (issue 16, AWS IoT Jobs' model):
 * the rate starts at start_rate notices per second and is multiplied by factor each time
 * another `every` vehicles were notified (or succeeded), up to max_rate. Kept in the task
 * document ("ramp"); the engine's token bucket (engine.c) uses ota_task_ramp_rate instead
 * of the task's fixed rate. Broker-free.
 */
#ifndef OTA_TASK_RAMP_H
#define OTA_TASK_RAMP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    bool on;
    double start_rate, factor, max_rate;
    size_t every;        /* vehicles per step */
    bool after_success;  /* count succeeded (else notified) */
} ota_task_ramp;

/* obj's "ramp": {"start_rate", "factor" (1..1000), "increase_after_notified" |
 * "increase_after_succeeded", "max_rate"}; r->on false when absent. 0, or -1 with err. */
int ota_task_ramp_parse(const cJSON *obj, const char *path, ota_task_ramp *r, char *err,
                        size_t errlen);
cJSON *ota_task_ramp_json(const ota_task_ramp *r);
/* The rate after `notified` notified and `succeeded` succeeded vehicles. */
double ota_task_ramp_rate(const ota_task_ramp *r, size_t notified, size_t succeeded);

#endif
