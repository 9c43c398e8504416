/*
 * otactl_waves.c — `otactl task pause|resume|promote|approve ID` (issue 16): pauseTask,
 * resumeTask, promoteWave, approveWave; each prints the task's rollout state after it
 * ("paused: ...", "current_wave: N").
 */
#include "otactl.h"

static int waves_cmd(otactl_ctx *ctx, const char *name, const char *id)
{
    cJSON *c = otactl_cmd_new(name);
    cJSON_AddStringToObject(c, "id", id);
    return otactl_run(ctx, c, otactl_print_kv);
}

int otactl_cmd_task_pause(otactl_ctx *ctx, otactl_args *a)
{
    return waves_cmd(ctx, "pauseTask", a->pos[0]);
}

int otactl_cmd_task_resume(otactl_ctx *ctx, otactl_args *a)
{
    return waves_cmd(ctx, "resumeTask", a->pos[0]);
}

int otactl_cmd_task_promote(otactl_ctx *ctx, otactl_args *a)
{
    return waves_cmd(ctx, "promoteWave", a->pos[0]);
}

int otactl_cmd_task_approve(otactl_ctx *ctx, otactl_args *a)
{
    return waves_cmd(ctx, "approveWave", a->pos[0]);
}
