/*
 * task_ramp.c — the exponential notice-rate ramp (task_ramp.h).
 */
#include "task_ramp.h"
#include "ota_catalog_json.h"

#include <stdio.h>

static int get_rate(const cJSON *j, const char *p, const char *key, double lo, double hi,
                    bool required, double *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        return required ? ota_json_errf(err, errlen, p, key, "missing") : 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) {
        return ota_json_errf(err, errlen, p, key, "expected a number in %g..%g", lo, hi);
    }
    *out = v->valuedouble;
    return 0;
}

int ota_task_ramp_parse(const cJSON *obj, const char *path, ota_task_ramp *r, char *err,
                        size_t errlen)
{
    static const char *const fields[] = {"start_rate", "factor", "increase_after_notified",
                                         "increase_after_succeeded", "max_rate", NULL};
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "ramp");
    *r = (ota_task_ramp){0};
    if (!j) {
        return 0;
    }
    char p[64];
    snprintf(p, sizeof(p), "%s%sramp", path ? path : "", path && *path ? "." : "");
    uint64_t n_not = 0, n_ok = 0;
    if (ota_json_check_fields(j, p, fields, err, errlen) != 0 ||
        get_rate(j, p, "start_rate", 0.01, 1000000, true, &r->start_rate, err, errlen) ||
        get_rate(j, p, "factor", 1, 1000, true, &r->factor, err, errlen) ||
        get_rate(j, p, "max_rate", 0.01, 1000000, true, &r->max_rate, err, errlen) ||
        ota_json_get_uint(j, p, "increase_after_notified", false, 1, 100000000, &n_not, err,
                          errlen) ||
        ota_json_get_uint(j, p, "increase_after_succeeded", false, 1, 100000000, &n_ok, err,
                          errlen)) {
        return -1;
    }
    if ((n_not != 0) == (n_ok != 0)) {
        return ota_json_errf(err, errlen, p, NULL,
                             "give increase_after_notified or increase_after_succeeded");
    }
    if (r->max_rate < r->start_rate) {
        return ota_json_errf(err, errlen, p, "max_rate", "below start_rate");
    }
    r->every = (size_t)(n_not ? n_not : n_ok);
    r->after_success = n_ok != 0;
    r->on = true;
    return 0;
}

cJSON *ota_task_ramp_json(const ota_task_ramp *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "start_rate", r->start_rate);
    cJSON_AddNumberToObject(o, "factor", r->factor);
    cJSON_AddNumberToObject(o, r->after_success ? "increase_after_succeeded"
                                                : "increase_after_notified",
                            (double)r->every);
    cJSON_AddNumberToObject(o, "max_rate", r->max_rate);
    return o;
}

double ota_task_ramp_rate(const ota_task_ramp *r, size_t notified, size_t succeeded)
{
    size_t steps = (r->after_success ? succeeded : notified) / r->every;
    double rate = r->start_rate;
    for (size_t i = 0; i < steps && rate < r->max_rate; i++) {
        rate *= r->factor;
    }
    return rate < r->max_rate ? rate : r->max_rate;
}
