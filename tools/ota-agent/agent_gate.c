/*
 * agent_gate.c — what stands between a finished download and the install (issue 17,
 * docs/ota-agent.md "Consent, pre-conditions, download-only"): the install mode of the
 * notice (download_only waits for install_now; soft and time_forced before the deadline
 * ask the driver through consent_cmd), then the pre-conditions through precondition_cmd.
 * Everything it must remember across a restart is in the state file's kv table
 * (gate.mode, gate.deadline, gate.install_now, gate.consent, gate.until, gate.failed).
 */
#include "agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define GATE_RECHECK_MS 1000 /* how often a waiting gate runs its commands again */

/* Runs cmd; its first stdout line into out; the exit code (-1: not run, killed). */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p == NULL)
        return -1;
    if (fgets(out, (int)cap, p) != NULL)
        out[strcspn(out, "\r\n")] = '\0';
    while (fgetc(p) != EOF) /* the rest, so the command never blocks on a full pipe */
        ;
    int st = pclose(p);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void agent_gate_notice(agent *a, const char *mode, int64_t deadline, bool install_now)
{
    if (mode != NULL) { /* a new job: forget the last one's answers */
        st_kv_set_text(a->db, "gate.mode", mode);
        st_kv_set_u64(a->db, "gate.deadline", deadline > 0 ? (uint64_t)deadline : 0);
        st_kv_set_u64(a->db, "gate.install_now", 0);
        st_kv_set_text(a->db, "gate.consent", "");
        st_kv_set_u64(a->db, "gate.until", 0);
        st_kv_set_text(a->db, "gate.failed", "");
    }
    if (install_now)
        st_kv_set_u64(a->db, "gate.install_now", 1);
}

void agent_gate_texts(agent *a)
{
    char prompt[4097], info[4097], lang[64], info_lang[64];
    if (a->job.cose == NULL ||
        vc_desc_user_text(a->job.cose, a->job.cose_len, "prompt", a->cfg->language, prompt,
                          sizeof prompt, lang, sizeof lang) != 0 ||
        vc_desc_user_text(a->job.cose, a->job.cose_len, "result_info", a->cfg->language, info,
                          sizeof info, info_lang, sizeof info_lang) != 0)
        return;
    setenv("OTA_PROMPT", prompt, 1);
    setenv("OTA_RESULT_INFO", info, 1);
    setenv("OTA_TEXT_LANGUAGE", lang, 1);
    if (prompt[0] != '\0' || info[0] != '\0')
        agent_log("task %s: prompt (%s): %s | result_info (%s): %s", a->job.task,
                  lang[0] ? lang : "-", prompt, info_lang[0] ? info_lang : "-", info);
}

/* The driver's answer: 1 accepted, 0 ask again later, -1 declined (the job ended). */
static int consent(agent *a, int64_t now)
{
    char answer[64], line[128];
    st_kv_text(a->db, "gate.consent", answer, sizeof answer, "");
    if (strcmp(answer, "accepted") == 0)
        return 1;
    if ((int64_t)st_kv_u64(a->db, "gate.until", 0) > now)
        return 0; /* postponed: not yet */
    if (a->cfg->consent_cmd)
        agent_gate_texts(a); /* what the driver is told, in its language */
    int rc = a->cfg->consent_cmd ? run(a->cfg->consent_cmd, line, sizeof line) : 0;
    long secs = 0;
    if (rc == 0 && strncmp(line, "postpone", 8) != 0 && strcmp(line, "decline") != 0) {
        st_kv_set_text(a->db, "gate.consent", "accepted");
        agent_ev_consent(a, "accepted", -1);
        return 1;
    }
    if (sscanf(line, "postpone %ld", &secs) == 1 && secs > 0) {
        st_kv_set_u64(a->db, "gate.until", (uint64_t)(now + secs * 1000));
        agent_ev_consent(a, "postponed", now + secs * 1000);
        return 0;
    }
    agent_ev_consent(a, "declined", -1); /* "decline", or a failing command */
    snprintf(a->job.status, sizeof a->job.status, "canceled");
    a->job.error[0] = '\0';
    agent_set_step(a, "final");
    return -1;
}

/* 1 when every pre-condition holds; else reports the failed ones (once per change). */
static int preconditions(agent *a)
{
    char failed[128], last[128];
    if (a->cfg->precondition_cmd == NULL ||
        run(a->cfg->precondition_cmd, failed, sizeof failed) == 0)
        return 1;
    st_kv_text(a->db, "gate.failed", last, sizeof last, "");
    if (strcmp(failed, last) != 0) {
        st_kv_set_text(a->db, "gate.failed", failed);
        agent_ev_waiting(a, failed);
    }
    return 0;
}

int agent_gate_step(agent *a)
{
    int64_t now = agent_now_ms();
    char mode[32];
    if (now < a->gate_next_ms)
        return 0;
    a->gate_next_ms = now + GATE_RECHECK_MS;
    st_kv_text(a->db, "gate.mode", mode, sizeof mode, "forced");
    if (strcmp(mode, "download_only") == 0 && st_kv_u64(a->db, "gate.install_now", 0) == 0)
        return 0;
    int64_t deadline = (int64_t)st_kv_u64(a->db, "gate.deadline", 0);
    bool ask = strcmp(mode, "soft") == 0 || (strcmp(mode, "time_forced") == 0 && now < deadline);
    if (ask) {
        int c = consent(a, now);
        if (c <= 0)
            return c;
    }
    if (!preconditions(a))
        return 0;
    a->gate_next_ms = 0;
    return 1;
}
