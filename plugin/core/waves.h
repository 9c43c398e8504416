/*
 * waves.h — the wave plan of a rollout (issue 16): which wave each vehicle of a task is
 * in, computed once at creation and then stored (membership is not re-derived later, so
 * a change of this code never moves a vehicle between waves of an existing task).
 *
 * Waves are given in order as a count of vehicles or a percentage of the whole target
 * (e.g. 1% -> 10% -> 50%); whatever they leave over is one last wave, "the rest".
 * Percentages are in basis points (1% = 100) of the target's size; the sizes of
 * percentage waves come from cumulative shares rounded down, so they always add up
 * exactly, and a wave with a non-zero share gets at least one vehicle while any remain.
 *
 * Who is in which wave: vehicles are ranked by a 64-bit hash of task id + VIN (FNV-1a
 * then the splitmix64 finalizer; ties, which need equal hashes, by VIN) and the waves
 * take the ranks in order. So the plan depends only on the task id and the set of VINs —
 * not on their order — and two tasks over the same fleet pick different first waves.
 * Pure functions: no catalog, no store.
 */
#ifndef OTA_WAVES_H
#define OTA_WAVES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTA_WAVES_MAX 32 /* waves given, the rest not counted */

typedef struct {
    bool percent;   /* false: value is a count of vehicles */
    uint64_t value; /* a count, or basis points of the target (1..10000) */
} ota_wave_spec;

/* Checks specs (1..OTA_WAVES_MAX waves; counts >= 1; percentages 1..10000 basis points
 * adding up to at most 10000). 0, or -1 with err naming the wave ("waves[2]: ..."). */
int ota_waves_check(const ota_wave_spec *specs, size_t n_specs, char *err, size_t errlen);

/* The size of each wave for a target of n vehicles: sizes[0..n_specs] (the last is the
 * rest; count waves take what is left when fewer remain). Returns how many waves have
 * vehicles, counting from the first up to the last non-empty one. specs must pass
 * ota_waves_check. */
size_t ota_waves_sizes(const ota_wave_spec *specs, size_t n_specs, size_t n, size_t *sizes);

/* The rank key of a VIN in a task. */
uint64_t ota_waves_key(const char *task_id, const char *vin);

/* The wave of each VIN: wave_of[i] for vins[i] (0-based; n_specs is the rest). The VINs
 * must be distinct. 0, or -1 out of memory. */
int ota_waves_plan(const char *task_id, const char *const *vins, size_t n,
                   const ota_wave_spec *specs, size_t n_specs, uint8_t *wave_of);

#endif
