/*
 * ota-wave-bench.c — benchmark of rollouts in waves at 1,000,000 executions (issue 16:
 * plugin/core/task_waves.c, tasks.c), broker-free.
 *
 * Builds one task of N executions (default 1,000,000) in memory, its wave plan
 * (1% -> 10% -> 50% -> rest), then measures:
 *   plan      the plan over N VINs (waves.c ranking), once at createTask
 *   promote   the engine's work when the success that completes wave 0 lands: the
 *             execution's move (counts per wave kept as it goes), the threshold check
 *             and the promotion — the latency until wave 1 may be notified
 *   doc       the task document with the plan (what a promotion stores), serialized
 *   memory    resident bytes per execution (task + plan + wave counts), from
 *             /proc/self/statm before and after
 * The 2-core VM is shared: figures are noisy, read them as orders of magnitude.
 *
 * Usage: ota-wave-bench [--json] [executions]
 */
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static void make_vin(char out[OTA_VIN_LEN + 1], size_t i)
{
    snprintf(out, OTA_VIN_LEN + 1, "LWB%014lu", (unsigned long)(i % 100000000000000ul));
}

int main(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    size_t n = (size_t)strtoull(argc > 1 + json ? argv[1 + json] : "1000000", NULL, 10);
    long rss0 = rss_bytes();
    ota_tasks *tasks = ota_tasks_new();
    ota_task_exec *execs = calloc(n, sizeof(*execs));
    char(*vins)[OTA_VIN_LEN + 1] = malloc(n * sizeof(*vins));
    const char **vp = malloc(n * sizeof(*vp));
    bool *acc = malloc(n);
    for (size_t i = 0; i < n; i++) {
        make_vin(vins[i], i);
        vp[i] = vins[i];
        acc[i] = true;
        memcpy(execs[i].vin, vins[i], OTA_VIN_LEN);
        execs[i].state = OTA_EXEC_QUEUED;
        execs[i].notified_ms = -1;
    }
    ota_task_rec rec = {.id = strdup("T000001"), .name = strdup("bench"), .model = strdup("M1"),
                        .series = strdup("S1"), .version = strdup("2.0"), .start_ms = -1,
                        .end_ms = -1};
    if (ota_tasks_add(tasks, &rec, OTA_TASK_ACTIVE, 0, 1, execs, n) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    ota_task *task = ota_tasks_get(tasks, "T000001");
    ota_task_waves *w = calloc(1, sizeof(*w));
    w->n_specs = 3;
    w->specs[0] = (ota_wave_spec){true, 100};
    w->specs[1] = (ota_wave_spec){true, 1000};
    w->specs[2] = (ota_wave_spec){true, 5000};
    for (int i = 0; i <= 3; i++) {
        w->success_pct[i] = 100;
    }
    w->approved = OTA_WAVES_MAX + 1;
    double t0 = now_s();
    if (ota_task_waves_plan(w, "T000001", vp, acc, n) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double plan_s = now_s() - t0;
    task->waves = w;
    ota_task_recount(task);
    free(vp), free(acc), free(vins);
    long rss1 = rss_bytes();
    /* wave 0 succeeds but for one execution, which then lands */
    ota_task_exec *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ota_task_waves_of(w, i) != 0) {
            continue;
        }
        ota_task_exec_set_state(task, &task->execs[i], OTA_EXEC_NOTIFIED, 1);
        if (last) {
            ota_task_exec_set_state(task, last, OTA_EXEC_SUCCEEDED, 2);
        }
        last = &task->execs[i];
    }
    double t1 = now_s();
    ota_task_exec_set_state(task, last, OTA_EXEC_SUCCEEDED, 3);
    bool promoted = ota_task_waves_due(w) && ota_task_waves_promote(w);
    double promote_s = now_s() - t1;
    double t2 = now_s();
    cJSON *doc = ota_task_doc_of(task, task->state);
    char *text = cJSON_PrintUnformatted(doc);
    double doc_s = now_s() - t2;
    size_t doc_len = text ? strlen(text) : 0;
    double per_exec = (double)(rss1 - rss0) / (double)n;
    if (json) {
        printf("{\"executions\":%zu,\"plan_s\":%.4f,\"promote_us\":%.3f,\"doc_s\":%.4f,"
               "\"doc_bytes\":%zu,\"bytes_per_execution\":%.1f,\"promoted\":%s}\n",
               n, plan_s, promote_s * 1e6, doc_s, doc_len, per_exec, promoted ? "true" : "false");
    } else {
        printf("executions %zu, waves of %zu/%zu/%zu/%zu\n", n, w->size[0], w->size[1],
               w->size[2], w->size[3]);
        printf("plan       %.3f s\n", plan_s);
        printf("promote    %.2f us (last success of wave 0 -> wave %u may notify)%s\n",
               promote_s * 1e6, w->current, promoted ? "" : " NOT PROMOTED");
        printf("doc        %.3f s to serialize the task document (%zu bytes) a promotion stores\n",
               doc_s, doc_len);
        printf("memory     %.1f bytes per execution resident (task + plan + counts)\n", per_exec);
    }
    free(text);
    cJSON_Delete(doc);
    ota_tasks_free(tasks);
    return promoted ? 0 : 1;
}
