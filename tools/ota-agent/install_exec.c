/*
 * install_exec.c — the `exec` installer: one command per ECU type, run with the action,
 * the ECU, the image path and the versions in its environment (agent.h). Its stdout lines
 * "progress N [step]" become upgrade_progress, "version V" answers read_version; exit
 * status 0 is success. The resume blob only records that an install was started, so that
 * a command run again after a power loss sees OTA_RESUMED=1.
 */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    agent_installer ops;
    char *command;
} exec_installer;

typedef struct {
    const char *action, *ecu, *file, *from, *to, *sha, *resumed;
} exec_env;

static void child(const char *command, const exec_env *e, int out)
{
    dup2(out, STDOUT_FILENO);
    setenv("OTA_ACTION", e->action, 1);
    setenv("OTA_ECU", e->ecu, 1);
    setenv("OTA_FILE", e->file ? e->file : "", 1);
    setenv("OTA_FROM_VERSION", e->from ? e->from : "", 1);
    setenv("OTA_TO_VERSION", e->to ? e->to : "", 1);
    setenv("OTA_SHA256", e->sha ? e->sha : "", 1);
    setenv("OTA_RESUMED", e->resumed ? e->resumed : "0", 1);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
}

/* Runs the command; each stdout line goes to line(). Returns the exit status or -1. */
static int run(const char *command, const exec_env *e, void (*line)(void *, char *), void *arg)
{
    int fds[2], status = 0;
    char buf[512];
    FILE *fp;
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(command, e, fds[1]);
    }
    close(fds[1]);
    if (pid < 0 || (fp = fdopen(fds[0], "r")) == NULL) {
        close(fds[0]);
        return -1;
    }
    while (fgets(buf, sizeof buf, fp)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        line(arg, buf);
    }
    fclose(fp);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void progress_line(void *arg, char *l)
{
    const agent_install_ctx *c = arg;
    char *end;
    long pct;

    if (strncmp(l, "progress ", 9) != 0)
        return;
    pct = strtol(l + 9, &end, 10);
    if (end == l + 9 || pct < 0 || pct > 100)
        return;
    while (*end == ' ')
        end++;
    c->progress(c->arg, (int)pct, *end ? end : NULL);
}

static int act(agent_installer *in, const agent_install_ctx *c, const char *action, char *err,
               size_t cap)
{
    exec_installer *x = (exec_installer *)in;
    char sha[65];
    int rc;
    exec_env e = {
        action, c->ecu, c->file, c->from_version, c->to_version, sha, c->resume_len ? "1" : "0"};

    for (int i = 0; i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", c->sha256[i]);
    if (strcmp(action, "install") == 0)
        c->save(c->arg, "started", 7);
    rc = run(x->command, &e, progress_line, (void *)c);
    if (rc != 0)
        snprintf(err, cap, "%s: %s command exited with %d", c->ecu, action, rc);
    return rc == 0 ? 0 : -1;
}

static int x_install(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap)
{
    return act(in, c, "install", err, cap);
}

static int x_rollback(agent_installer *in, const agent_install_ctx *c, char *err, size_t cap)
{
    return act(in, c, "rollback", err, cap);
}

typedef struct {
    char *out;
    size_t cap;
    bool found;
} version_answer;

static void version_line(void *arg, char *l)
{
    version_answer *v = arg;

    if (strncmp(l, "version ", 8) == 0) {
        snprintf(v->out, v->cap, "%s", l + 8);
        v->found = true;
    }
}

static int x_read_version(agent_installer *in, const char *ecu, char *out, size_t cap)
{
    exec_installer *x = (exec_installer *)in;
    exec_env e = {.action = "version", .ecu = ecu};
    version_answer v = {out, cap, false};

    return run(x->command, &e, version_line, &v) == 0 && v.found ? 0 : -1;
}

static void x_free(agent_installer *in)
{
    exec_installer *x = (exec_installer *)in;

    free(x->command);
    free(x);
}

agent_installer *agent_exec_installer(const char *command)
{
    exec_installer *x = calloc(1, sizeof *x);

    if (x == NULL || (x->command = strdup(command)) == NULL) {
        free(x);
        return NULL;
    }
    x->ops = (agent_installer){"exec", x_install, x_rollback, x_read_version, x_free};
    return &x->ops;
}
