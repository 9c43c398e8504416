/*
 * waves.c — the wave plan of a rollout (waves.h): sizes from counts and cumulative
 * percentages, ranks from a hash of task id + VIN.
 */
#include "waves.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ota_waves_check(const ota_wave_spec *specs, size_t n_specs, char *err, size_t errlen)
{
    uint64_t bp = 0;
    if (n_specs == 0 || n_specs > OTA_WAVES_MAX) {
        snprintf(err, errlen, "waves: expected 1..%d waves, not %zu", OTA_WAVES_MAX, n_specs);
        return -1;
    }
    for (size_t i = 0; i < n_specs; i++) {
        const ota_wave_spec *s = &specs[i];
        if (s->value == 0 || (s->percent && s->value > 10000)) {
            snprintf(err, errlen, "waves[%zu]: %s", i,
                     s->percent ? "a share of 0.01%..100%" : "a count of at least 1");
            return -1;
        }
        bp += s->percent ? s->value : 0;
        if (bp > 10000) {
            snprintf(err, errlen, "waves[%zu]: the percentages add up to more than 100%%", i);
            return -1;
        }
    }
    return 0;
}

size_t ota_waves_sizes(const ota_wave_spec *specs, size_t n_specs, size_t n, size_t *sizes)
{
    size_t left = n, used_waves = 0;
    uint64_t bp = 0;      /* cumulative share of the percentage waves */
    size_t share_end = 0; /* the percentage waves' cumulative size so far */
    for (size_t i = 0; i < n_specs; i++) {
        size_t want;
        if (specs[i].percent) {
            bp += specs[i].value;
            size_t end = (size_t)((uint64_t)n * bp / 10000); /* n < 1.8e15 */
            want = end > share_end ? end - share_end : 1;    /* a share gets one at least */
            share_end += want;
        } else {
            want = specs[i].value > SIZE_MAX ? SIZE_MAX : (size_t)specs[i].value;
        }
        sizes[i] = want < left ? want : left;
        left -= sizes[i];
        used_waves = sizes[i] ? i + 1 : used_waves;
    }
    sizes[n_specs] = left;
    return left ? n_specs + 1 : used_waves;
}

uint64_t ota_waves_key(const char *task_id, const char *vin)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 over "task\x1fvin" */
    for (const char *p = task_id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h = (h ^ 0x1f) * 0x100000001b3ull;
    for (const char *p = vin; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h ^= h >> 30; /* splitmix64's finalizer: FNV's low bits are weak */
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

typedef struct {
    uint64_t key;
    const char *vin;
    size_t index;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return strcmp(x->vin, y->vin);
}

int ota_waves_plan(const char *task_id, const char *const *vins, size_t n,
                   const ota_wave_spec *specs, size_t n_specs, uint8_t *wave_of)
{
    size_t sizes[OTA_WAVES_MAX + 1];
    ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){ota_waves_key(task_id, vins[i]), vins[i], i};
    qsort(r, n, sizeof *r, ranked_cmp);
    ota_waves_sizes(specs, n_specs, n, sizes);
    for (size_t w = 0, k = 0; w <= n_specs; w++) {
        for (size_t j = 0; j < sizes[w]; j++, k++)
            wave_of[r[k].index] = (uint8_t)w;
    }
    free(r);
    return 0;
}
