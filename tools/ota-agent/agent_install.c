/*
 * agent_install.c — ota-agent's installation: the description's ECUs in order through
 * their installers (each ECU's state and resume blob in the state file, so a restart goes
 * on with the ECU it was flashing, from its blob), then the post-install check — every
 * version read back from its ECU, then the optional health command — before success is
 * reported ("commit after reboot"). When an ECU fails, or the check does, the ECUs
 * already flashed are rolled back in reverse order; the job then ends failed with
 * rollback_succeeded or rollback_failed (upgrade_failed when nothing was flashed yet,
 * prepare_failed when an ECU had no installer or did not answer before its install),
 * and upgrade_progress events name the ECU that failed and each one rolled back.
 */
#include "agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    agent *a;
    uint32_t idx;
    agent_ecu_row *row;
    int last_pct;
    char last_step[64];
} inst_arg;

static void on_progress(void *arg, int pct, const char *step)
{
    inst_arg *x = arg;

    if (pct - x->last_pct < 10 && pct != 100 && step && strcmp(step, x->last_step) == 0)
        return; /* a report per 10 % or per step is enough */
    x->last_pct = pct;
    snprintf(x->last_step, sizeof x->last_step, "%s", step ? step : "");
    agent_ev_progress(x->a, x->a->desc.ecus[x->idx].ecu, pct, step);
}

static void on_save(void *arg, const void *blob, size_t n)
{
    inst_arg *x = arg;

    if (n > sizeof x->row->blob)
        return;
    memcpy(x->row->blob, blob, n);
    x->row->blob_len = n;
    st_ecu_save(x->a->db, x->idx, x->row);
}

static agent_installer *installer_of(agent *a, const char *ecu)
{
    for (uint32_t i = 0; i < a->cfg->n_ecus; i++)
        if (strcmp(a->cfg->ecus[i].name, ecu) == 0)
            return a->cfg->ecus[i].installer;
    return NULL;
}

static const char *target_of(const agent *a, uint32_t idx)
{
    return a->desc.ecus[idx].version[0] ? a->desc.ecus[idx].version : a->job.version;
}

/* The context of an install or rollback of ECU idx. -1 when the image is unusable. */
static int make_ctx(agent *a, uint32_t idx, agent_ecu_row *row, inst_arg *x, agent_install_ctx *c,
                    char *img, size_t cap)
{
    struct stat sb;

    *x = (inst_arg){.a = a, .idx = idx, .row = row, .last_pct = -100};
    agent_file_path(a, a->desc.ecus[idx].sha_hex, "img", img, cap);
    *c = (agent_install_ctx){.ecu = a->desc.ecus[idx].ecu,
                             .file = img,
                             .from_version = row->from_version,
                             .to_version = target_of(a, idx),
                             .progress = on_progress,
                             .save = on_save,
                             .arg = x,
                             .resume = row->blob_len ? row->blob : NULL,
                             .resume_len = row->blob_len};
    if (stat(img, &sb) != 0 || vc_sha256_file(img, c->sha256) != 0)
        return -1;
    c->size = (uint64_t)sb.st_size;
    return 0;
}

static void end(agent *a, const char *status, const char *error)
{
    snprintf(a->job.status, sizeof a->job.status, "%s", status);
    snprintf(a->job.error, sizeof a->job.error, "%s", error ? error : "");
    agent_set_step(a, "final");
}

static void start_rollback(agent *a)
{
    agent_ev_status(a, "rolling_back", NULL, NULL);
    agent_set_step(a, "rollback");
}

/* Installs one ECU. 0, or -1 (the failure is reported and the job goes to rollback). */
static int install_one(agent *a, uint32_t idx)
{
    agent_installer *in = installer_of(a, a->desc.ecus[idx].ecu);
    char img[1024], err[AGENT_ERR_MAX] = "", msg[AGENT_ERR_MAX + 16];
    agent_ecu_row row;
    agent_install_ctx c;
    inst_arg x;

    st_ecu_load(a->db, idx, &row);
    if (in == NULL || strcmp(row.state, "pending") == 0) {
        if (in == NULL || in->read_version(in, a->desc.ecus[idx].ecu, row.from_version,
                                           sizeof row.from_version) != 0) {
            snprintf(err, sizeof err, "%s: %s", a->desc.ecus[idx].ecu,
                     in ? "cannot read its version" : "no installer configured");
            agent_log("install: %s", err);
            agent_ev_progress(a, a->desc.ecus[idx].ecu, 0, err);
            snprintf(row.state, sizeof row.state, "unprepared");
            st_ecu_save(a->db, idx, &row);
            return -1;
        }
        snprintf(row.state, sizeof row.state, "installing");
        st_ecu_save(a->db, idx, &row);
    } else if (strcmp(row.state, "installing") != 0) {
        return 0; /* installed before the restart */
    }
    agent_log("install: %s %s -> %s (%s)%s", a->desc.ecus[idx].ecu, row.from_version,
              target_of(a, idx), in->kind, row.blob_len ? ", resumed" : "");
    if (make_ctx(a, idx, &row, &x, &c, img, sizeof img) != 0)
        snprintf(err, sizeof err, "%s: the image is gone", c.ecu);
    else if (in->install(in, &c, err, sizeof err) == 0) {
        snprintf(row.state, sizeof row.state, "installed");
        return st_ecu_save(a->db, idx, &row);
    }
    snprintf(row.state, sizeof row.state, "failed");
    st_ecu_save(a->db, idx, &row);
    agent_log("install: %s", err);
    snprintf(msg, sizeof msg, "failed: %s", err);
    agent_ev_progress(a, a->desc.ecus[idx].ecu, x.last_pct < 0 ? 0 : x.last_pct, msg);
    return -1;
}

static void install_all(agent *a)
{
    for (uint32_t idx = 0; idx < a->desc.n_ecus; idx++)
        if (install_one(a, idx) != 0) {
            start_rollback(a);
            return;
        }
    agent_set_step(a, "check");
}

/* "Commit after reboot": every ECU answers with its new version, the health command
 * passes. */
static void check(agent *a)
{
    char ver[VC_ID_MAX + 1];

    for (uint32_t idx = 0; idx < a->desc.n_ecus; idx++) {
        agent_installer *in = installer_of(a, a->desc.ecus[idx].ecu);
        ver[0] = '\0';
        if (in == NULL || in->read_version(in, a->desc.ecus[idx].ecu, ver, sizeof ver) != 0 ||
            strcmp(ver, target_of(a, idx)) != 0) {
            agent_log("check: %s reads %s, not %s", a->desc.ecus[idx].ecu, ver, target_of(a, idx));
            agent_ev_progress(a, a->desc.ecus[idx].ecu, 100, "failed: post-install check");
            start_rollback(a);
            return;
        }
    }
    if (a->cfg->health_cmd && system(a->cfg->health_cmd) != 0) {
        agent_log("check: the health command failed");
        start_rollback(a);
        return;
    }
    end(a, "succeeded", NULL);
}

static void rollback(agent *a)
{
    char img[1024], err[AGENT_ERR_MAX];
    bool any = false, ok = true, unprepared = false;
    agent_install_ctx c;
    agent_ecu_row row;
    inst_arg x;

    for (uint32_t idx = a->desc.n_ecus; idx-- > 0;) {
        agent_installer *in = installer_of(a, a->desc.ecus[idx].ecu);
        st_ecu_load(a->db, idx, &row);
        if (strcmp(row.state, "rolled_back") == 0)
            any = true;
        if (strcmp(row.state, "installed") != 0 || in == NULL)
            continue;
        any = true;
        row.blob_len = 0;
        make_ctx(a, idx, &row, &x, &c, img, sizeof img);
        if (in->rollback(in, &c, err, sizeof err) != 0) {
            agent_log("rollback: %s", err);
            agent_ev_progress(a, c.ecu, 0, "rollback failed");
            snprintf(row.state, sizeof row.state, "rollback_failed");
            ok = false;
        } else {
            agent_log("rollback: %s back to %s", c.ecu, row.from_version);
            snprintf(row.state, sizeof row.state, "rolled_back");
        }
        st_ecu_save(a->db, idx, &row);
    }
    for (uint32_t idx = 0; idx < a->desc.n_ecus; idx++) {
        st_ecu_load(a->db, idx, &row);
        ok = ok && strcmp(row.state, "rollback_failed") != 0;
        unprepared = unprepared || strcmp(row.state, "unprepared") == 0;
    }
    end(a, "failed",
        any          ? (ok ? "rollback_succeeded" : "rollback_failed")
        : unprepared ? "prepare_failed"
                     : "upgrade_failed");
}

void agent_install_step(agent *a)
{
    if (strcmp(a->job.step, "install") == 0)
        install_all(a);
    if (strcmp(a->job.step, "check") == 0)
        check(a);
    if (strcmp(a->job.step, "rollback") == 0)
        rollback(a);
}
