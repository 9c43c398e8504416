/*
 * engine_cont.c — continuous tasks and notice jitter (issue 16; engine_impl.h,
 * docs/task-engine.md "Continuous tasks").
 *
 * Continuous: the catalog tells (ota_catalog_on_change) which VINs changed what a target
 * reads — a vehicle upserted, its firmware reported (shadow.c puts the vehicle), a list
 * member, or (NULL) a group set or deleted. While an active continuous task exists (a new
 * one starts with a pass over everything) the VINs wait in a set; at the next TICK each
 * active continuous task compiles its target once and re-matches them (a group change,
 * and the first TICK after a start, re-match the whole catalog and every queued
 * execution). A vehicle that matches and has no execution joins (ota_task_join: queued,
 * or rejected with the SPEC §6 code of ota_task_check_vehicle); one whose execution was
 * rejected, had left, or is still queued is validated again (a queued one that now fails
 * a rule, e.g. blacklisted, becomes rejected); a queued one (no claim out) that no longer
 * matches leaves: canceled with code "left_target" (AWS IoT's REMOVED; kept, not
 * deleted: counts, history and the store stay as they are). A joiner's row is new: it is
 * marked dirty from OTA_ENG_FROM_NEW and the flush inserts it (engine_flush.c).
 *
 * Jitter: a queued execution of a task with jitter_ms is not notified before
 * max(since, queued since) + ota_task_jitter(VIN), where since is when the task last
 * became able to dispatch (started, window opened, resumed, a new wave started: tracked
 * per TICK, not stored — after a restart the spread starts again).
 */
#include "catalog.h"
#include "engine_impl.h"
#include "target.h"
#include "task_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEFT_CODE "left_target"

typedef struct {
    char vin[OTA_VIN_LEN + 1];
} cont_vin;

static ota_map_key cont_key(const void *rec)
{
    return ota_map_key_str(((const cont_vin *)rec)->vin);
}

/* The catalog's hook (broker thread, right after the change). */
static void catalog_changed(void *ctx, const char *vin)
{
    ota_engine *e = ctx;
    if (!e->cont_wanted) {
        return; /* no continuous task: a new one starts with a pass over everything */
    }
    if (!vin) {
        e->cont_all = true;
        return;
    }
    if (e->cont_all || strlen(vin) != OTA_VIN_LEN || ota_map_get_str(&e->cont_vins, vin)) {
        return;
    }
    cont_vin r;
    memcpy(r.vin, vin, OTA_VIN_LEN + 1);
    if (!ota_map_put(&e->cont_vins, &r)) {
        e->cont_all = true; /* out of memory: the next pass looks at everything */
    }
}

void ota_eng_cont_init(ota_engine *e)
{
    ota_map_init(&e->cont_vins, sizeof(cont_vin), cont_key);
    e->cont_all = true; /* what changed while the broker was down */
    ota_catalog_on_change(e->plugin->catalog, catalog_changed, e);
}

void ota_eng_cont_free(ota_engine *e)
{
    if (e->plugin->catalog) {
        ota_catalog_on_change(e->plugin->catalog, NULL, NULL);
    }
    ota_map_destroy(&e->cont_vins, NULL);
}

/* ---------------------------------------------------------------- membership */

typedef struct {
    ota_engine *e;
    ota_task *task;
    const ota_target_match *m;
    ota_rules_env env;
    uint16_t left;
    int64_t now;
    size_t joined, left_n;
    ota_map *later; /* VINs to match again at the next TICK */
} cont_pass;

/* vin's execution is new and its row not stored yet (OTA_EXEC_F_NEW): it is matched
 * again at the next TICK, once the flush has stored it. */
static bool deferred(cont_pass *cp, const ota_task_exec *x, const char *vin)
{
    if (!x || !(x->flags & OTA_EXEC_F_NEW)) {
        return false;
    }
    cont_vin r;
    memcpy(r.vin, vin, OTA_VIN_LEN + 1);
    if (!ota_map_get_str(cp->later, vin) && !ota_map_put(cp->later, &r)) {
        cp->e->cont_all = true; /* out of memory: everything next time */
    }
    return true;
}

/* vin (v: its catalog record, NULL when gone) stopped matching: a queued execution with
 * no notice claim out leaves. */
static void leave(cont_pass *cp, ota_task_exec *x)
{
    if (x && x->state == OTA_EXEC_QUEUED && !x->flags) {
        x->code = cp->left;
        ota_eng_set_state(cp->e, cp->task, x, OTA_EXEC_CANCELED);
        cp->left_n++;
    }
}

/* vin matches: joins, or is validated again when it was rejected or had left. */
static void join(cont_pass *cp, const char *vin, const ota_vehicle *v, ota_task_exec *x)
{
    ota_plugin *p = cp->e->plugin;
    ota_reject_code r = ota_task_check_vehicle(p->catalog, &cp->env, &cp->task->rec, vin, v, NULL);
    uint8_t state = r == OTA_REJ_NONE ? OTA_EXEC_QUEUED : OTA_EXEC_REJECTED;
    uint16_t code = (uint16_t)r; /* rejection codes are their own number (tasks.h) */
    if (!x) {
        x = ota_task_join(cp->task, vin, state, code, cp->now);
        if (!x) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "ota: task %s: %s not joined: out of memory",
                                 cp->task->rec.id, vin);
            return;
        }
        x->flags |= OTA_EXEC_F_NEW; /* its claim must find its row (engine_flush.c) */
        ota_eng_mark_dirty_from(cp->e, cp->task, x, OTA_ENG_FROM_NEW);
        cp->joined++;
        return;
    }
    uint8_t from = x->state;
    if (from == OTA_EXEC_QUEUED && r == OTA_REJ_UPGRADE_IN_PROGRESS) {
        return; /* transient: its other upgrade ends, and one task at a time holds it back */
    }
    if ((from != state || x->code != code) &&
        ota_task_exec_rejoin(cp->task, x, state, code, cp->left, cp->now)) {
        ota_eng_mark_dirty_from(cp->e, cp->task, x, from);
        cp->joined += state == OTA_EXEC_QUEUED;
    }
}

static void match_one(cont_pass *cp, const char *vin)
{
    const ota_vehicle *v = ota_catalog_vehicle(cp->e->plugin->catalog, vin);
    ota_task_exec *x = ota_task_find_exec(cp->task, vin);
    if (deferred(cp, x, vin)) {
        return;
    }
    if (v && ota_target_matches(cp->m, v)) {
        join(cp, vin, v, x);
    } else {
        leave(cp, x);
    }
}

static void match_vehicle(void *ctx, const ota_vehicle *v)
{
    cont_pass *cp = ctx;
    ota_task_exec *x = ota_task_find_exec(cp->task, v->vin);
    if (!deferred(cp, x, v->vin)) {
        join(cp, v->vin, v, x);
    }
}

/* Everything: the catalog's matching vehicles join, queued executions that no longer
 * match leave. */
static void match_all(cont_pass *cp)
{
    ota_target_each(cp->e->plugin->catalog, cp->m, match_vehicle, cp);
    for (size_t i = 0; i < cp->task->n_execs; i++) {
        ota_task_exec *x = &cp->task->execs[i];
        if (x->state == OTA_EXEC_QUEUED) {
            char vin[OTA_VIN_LEN + 1];
            ota_task_exec_vin(x, vin);
            const ota_vehicle *v = ota_catalog_vehicle(cp->e->plugin->catalog, vin);
            if (deferred(cp, x, vin)) {
                continue;
            }
            if (!v || !ota_target_matches(cp->m, v)) {
                leave(cp, x);
            }
        }
    }
}

static void match_task(ota_engine *e, ota_task *task, bool all, ota_map *later, int64_t now)
{
    char err[256];
    ota_target_match *m = NULL;
    if (ota_target_compile(e->plugin->catalog, task->target, NULL, NULL, "target", &m, err,
                           sizeof(err)) != 0) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota: continuous task %s: %s; nobody joins or "
                             "leaves until its target compiles again",
                             task->rec.id, err);
        return;
    }
    cont_pass cp = {.e = e,
                    .task = task,
                    .m = m,
                    .env = ota_tasks_rules_env(e->plugin->tasks),
                    .left = ota_tasks_code(e->plugin->tasks, LEFT_CODE),
                    .now = now,
                    .later = later};
    if (all) {
        match_all(&cp);
    } else {
        size_t pos = 0;
        for (cont_vin *r; (r = ota_map_next(&e->cont_vins, &pos)) != NULL;) {
            match_one(&cp, r->vin);
        }
    }
    ota_target_match_free(m);
    ota_task_joins_done(task);
    if (cp.joined || cp.left_n) {
        char what[64];
        snprintf(what, sizeof(what), "%zu joined, %zu left", cp.joined, cp.left_n);
        mosquitto_log_printf(MOSQ_LOG_INFO, "ota: continuous task %s: %s", task->rec.id, what);
        ota_task_event(task, "members", task->waves ? task->waves->current : -1, what, now);
    }
}

static bool takes_members(const ota_task *task, int64_t now)
{
    return task->continuous && task->target && task->state == OTA_TASK_ACTIVE &&
           (task->rec.end_ms < 0 || now < task->rec.end_ms);
}

void ota_eng_cont_run(ota_engine *e, ota_task **tasks, long n, int64_t now)
{
    bool wanted = false;
    for (long i = 0; i < n; i++) {
        if (tasks[i]->continuous && !takes_members(tasks[i], now)) {
            tasks[i]->closed = tasks[i]->state == OTA_TASK_ACTIVE; /* past its end */
        }
        wanted |= takes_members(tasks[i], now);
    }
    e->cont_all |= wanted && !e->cont_wanted; /* a new one: what changed before it was seen */
    e->cont_wanted = wanted;
    if (!e->cont_all && ota_map_count(&e->cont_vins) == 0) {
        return;
    }
    ota_map later;
    ota_map_init(&later, sizeof(cont_vin), cont_key);
    bool all = e->cont_all;
    e->cont_all = false; /* set again during the pass only when out of memory */
    for (long i = 0; i < n; i++) {
        if (takes_members(tasks[i], now)) {
            match_task(e, tasks[i], all, &later, now);
        }
    }
    ota_map_destroy(&e->cont_vins, NULL);
    e->cont_vins = later; /* the joiners whose rows were not stored yet */
}

/* ---------------------------------------------------------------- jitter */

void ota_eng_jitter_track(ota_task *task, bool can_dispatch, int64_t now)
{
    uint8_t wave = task->waves ? task->waves->current : 0;
    if (!can_dispatch) {
        task->open_since_ms = 0;
    } else if (task->open_since_ms == 0 || wave != task->open_wave) {
        task->open_since_ms = now;
    }
    task->open_wave = wave;
}

bool ota_eng_jitter_due(const ota_task *task, const ota_task_exec *x, int64_t now)
{
    if (task->jitter_ms == 0) {
        return true;
    }
    if (task->open_since_ms == 0) {
        return false; /* the next TICK sets when the task opened */
    }
    char vin[OTA_VIN_LEN + 1];
    ota_task_exec_vin(x, vin);
    int64_t base = task->open_since_ms > x->changed_ms ? task->open_since_ms : x->changed_ms;
    return now >= base + ota_task_jitter(task, vin);
}
