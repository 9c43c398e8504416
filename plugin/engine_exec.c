/*
 * engine_exec.c — the task engine's execution transitions (engine_impl.h): what reports,
 * cancelTask, timeouts and a task's end do to executions, applied through the state
 * machine of core/tasks.c (ota_task_exec_set_state, ota_exec_next_state,
 * ota_task_next_state), with what follows from each move: the execution joins the next
 * flush, a notice sets the vehicle's desired state, a finished execution clears it and
 * frees the vehicle for its next task, a failure calls the side effects (effects.c) and
 * may re-send the notice (compensation, claimed again like a first notice).
 */
#include "catalog.h"
#include "effects.h"
#include "engine_impl.h"
#include "pkg.h"
#include "rxswin.h"
#include "shadow.h"

#include <string.h>

void ota_eng_set_state(ota_engine *e, ota_task *task, ota_task_exec *x, uint8_t state)
{
    uint8_t from = x->state;
    if (!ota_task_exec_set_state(task, x, state, e->clock.now_ms())) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: task %s: execution state %d cannot become %d",
                             task->rec.id, from, state);
        return;
    }
    ota_eng_mark_dirty_from(e, task, x, from);
    ota_eng_timers_exec(e, task, x);
}

void ota_eng_check_task(ota_task *task)
{
    ota_task_state s = ota_task_next_state(task);
    if (s == OTA_TASK_ABORTED && task->state != OTA_TASK_ABORTED) {
        size_t seen[OTA_EXEC_STATE_COUNT]; /* a shared store's: every broker's */
        ota_task_seen(task, seen);
        size_t ok = seen[OTA_EXEC_SUCCEEDED], bad = seen[OTA_EXEC_FAILED];
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: task %s aborted: %zu of %zu failed",
                             task->rec.id, bad, ok + bad);
    }
    ota_task_set_state(task, s);
}

/* ---------------------------------------------------------------- notices */

/* The notice's members are built per notice: keys are literals (cJSON's CS variant: not
 * copied), integers are raw decimal literals (exact for 64 bits; printed without the
 * double round trip of cJSON's numbers; CBOR integers in the delta, shadow_msg.c). */
static void notice_text(cJSON *t, const char *key, const char *value)
{
    cJSON_AddItemToObjectCS(t, key, cJSON_CreateString(value));
}

static void notice_int(cJSON *t, const char *key, int64_t value)
{
    char digits[24];
    ota_eng_int_text(value, digits);
    cJSON_AddItemToObjectCS(t, key, cJSON_CreateRaw(digits));
}

cJSON *ota_eng_notice_json(const ota_task *task, const char *vin, const char *msg_id)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToObjectCS(d, "task", t);
    notice_text(t, "task", task->rec.id);
    notice_text(t, "vin", vin);
    notice_int(t, "package", (int64_t)task->package);
    notice_text(t, "version", task->rec.version);
    notice_text(t, "upgrade_type", ota_task_type_name(task->rec.type));
    notice_text(t, "msg_id", msg_id);
    if (task->rec.end_ms >= 0) {
        notice_int(t, "expires", task->rec.end_ms);
    }
    if (task->rec.install_mode != OTA_INSTALL_FORCED) { /* absent: forced, as before */
        notice_text(t, "install_mode", ota_install_mode_name(task->rec.install_mode));
    }
    if (task->rec.install_deadline_ms > 0) {
        notice_int(t, "install_deadline", task->rec.install_deadline_ms);
    }
    return d;
}

void ota_eng_send_notice(ota_engine *e, ota_task *task, ota_task_exec *x,
                         const ota_eng_decided *decided)
{
    char vin[OTA_VIN_LEN + 1], msg_id[128];
    ota_task_exec_vin(x, vin);
    ota_eng_msg_id(task, x, msg_id, sizeof(msg_id));
    int64_t decided_ms = decided ? decided->ms : -1;
    int64_t now = decided_ms >= 0 ? decided_ms : e->clock.now_ms();
    x->flags &= (uint8_t) ~(OTA_EXEC_F_CLAIMING | OTA_EXEC_F_ELSEWHERE); /* ours now */
    if (decided_ms >= 0 && decided->desired) { /* the tree the decision stored, taken */
        ota_shadow_set_desired_stored(e->plugin, vin, decided->desired, decided->version);
    } else {
        ota_shadow_set_desired(e->plugin, vin, ota_eng_notice_json(task, vin, msg_id));
    }
    x->notified_ms = now;
    if (decided_ms >= 0) { /* the decision is stored: execution, shadow and notice */
        if (ota_task_exec_set_state(task, x, OTA_EXEC_NOTIFIED, now)) {
            ota_eng_dirty_stored(e, x, OTA_EXEC_NOTIFIED);
            ota_eng_timers_exec(e, task, x); /* its timeout (engine_timers.c) */
        }
    } else {
        ota_eng_record_notice(e, task, vin, msg_id, now);
        ota_eng_set_state(e, task, x, OTA_EXEC_NOTIFIED);
    }
    ota_pkg_presign(e->plugin, vin, task->rec.id); /* its pkg/get is answered from memory */
    eng_veh *v = ota_eng_veh_get(e, vin);
    if (v) {
        v->busy = task;
    }
}

/* ---------------------------------------------------------------- finishing */

/* The vehicle is free again: its desired state cleared, its next task may go out. */
static void release(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    char vin[OTA_VIN_LEN + 1];
    ota_task_exec_vin(x, vin);
    ota_shadow_set_desired(e->plugin, vin, NULL);
    eng_veh *v = ota_map_get_str(&e->vehs, vin);
    if (v && v->busy == task) {
        v->busy = NULL;
    }
    ota_eng_check_task(task);
    if (v) {
        ota_eng_dispatch_vehicle(e, v);
    }
}

static void finish(ota_engine *e, ota_task *task, ota_task_exec *x, uint8_t state, const char *code)
{
    x->code = ota_tasks_code(e->plugin->tasks, code);
    ota_eng_set_state(e, task, x, state);
    release(e, task, x);
}

void ota_eng_expire_queued(ota_engine *e, ota_task *task)
{
    for (size_t i = 0; i < task->n_execs && task->count[OTA_EXEC_QUEUED] > 0; i++) {
        ota_task_exec *x = &task->execs[i];
        if (x->state == OTA_EXEC_QUEUED) {
            x->code = ota_tasks_code(e->plugin->tasks, "expired");
            ota_eng_set_state(e, task, x, OTA_EXEC_CANCELED);
        }
    }
}

/* A postponed execution's time has come (its timer, engine_timers.c): a new msg_id, so
 * the vehicle sees a new notice and asks its driver again. */
void ota_eng_wake(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    x->resends++;
    ota_eng_request_claim(e, task, x);
}

void ota_eng_time_out(ota_engine *e, ota_task *task, ota_task_exec *x)
{
    if (ota_eng_retry_take(e, task, x, "timeout")) {
        return; /* the task's retry policy */
    }
    finish(e, task, x, OTA_EXEC_FAILED, "timeout");
}

/* ---------------------------------------------------------------- reports */

static bool cancel_pending(ota_engine *e, const ota_task_exec *x)
{
    const char *c = ota_tasks_code_name(e->plugin->tasks, x->code);
    return c && strcmp(c, OTA_ENGINE_CANCEL_CODE) == 0;
}

/* upgrade_status failed: side effects already published; compensation re-sends. */
static void on_failed(ota_engine *e, ota_task *task, ota_task_exec *x, const ota_event *ev,
                      bool resend)
{
    if (resend && !cancel_pending(e, x)) {
        x->resends++;
        ota_eng_request_claim(e, task, x); /* a new msg_id: claimed like the first notice */
        return;
    }
    if (ota_eng_retry_take(e, task, x, ev->error)) {
        return; /* the task's retry policy: notified again after its backoff */
    }
    finish(e, task, x, OTA_EXEC_FAILED, ev->error ? ev->error : "failed");
}

/* The failure side effects; true when the notice should be re-sent (compensation). */
static bool call_effects(ota_plugin *p, const char *vin, const ota_event *ev, ota_task *task,
                         const ota_task_exec *x)
{
    ota_effect_ctx cx = {.vin = vin,
                         .vehicle = ota_catalog_vehicle(p->catalog, vin),
                         .ev = ev,
                         .task_id = task ? task->rec.id : NULL,
                         .task_type = task ? (int)task->rec.type : -1,
                         .resends = x ? x->resends : 0,
                         .max_resend = task ? task->rec.max_resend : 0};
    return ota_effects_on_status(p, &cx);
}

static void on_status(ota_engine *e, ota_task *task, ota_task_exec *x, const char *vin,
                      const ota_event *ev)
{
    bool resend = call_effects(e->plugin, vin, ev, task, x);
    bool pending = cancel_pending(e, x);
    switch (ota_exec_next_state(x->state, ev, pending)) {
    case OTA_EXEC_SUCCEEDED:
        finish(e, task, x, OTA_EXEC_SUCCEEDED, NULL);
        ota_rxswin_on_success(e->plugin, task, vin); /* committed: the vehicle's RXSWINs */
        break;
    case OTA_EXEC_FAILED:
        on_failed(e, task, x, ev, resend);
        break;
    case OTA_EXEC_CANCELED:
        finish(e, task, x, OTA_EXEC_CANCELED, pending ? NULL : "vehicle");
        break;
    default:
        break; /* another status: no move */
    }
}

void ota_engine_on_event(ota_plugin *p, const char *vin, const ota_event *ev)
{
    ota_engine *e = p->engine;
    ota_task *task = e && ev->task ? ota_tasks_get(p->tasks, ev->task) : NULL;
    ota_task_exec *x = task ? ota_task_find_exec(task, vin) : NULL;
    bool drives = ev->type == OTA_EV_UPGRADE_STATUS || ev->type == OTA_EV_DOWNLOAD_PROGRESS ||
                  ev->type == OTA_EV_UPGRADE_PROGRESS;
    if (x && drives && ota_eng_not_held(e, x)) {
        ota_eng_adopt_event(e, task, x, ev); /* driven once read from the store */
        return;
    }
    ota_eng_drive(p, task, x, vin, ev);
}

void ota_eng_drive(ota_plugin *p, ota_task *task, ota_task_exec *x, const char *vin,
                   const ota_event *ev)
{
    ota_engine *e = p->engine;
    if (!x || !ota_exec_in_flight(x->state)) {
        if (ev->type == OTA_EV_UPGRADE_STATUS && !(x && x->state != OTA_EXEC_QUEUED)) {
            call_effects(p, vin, ev, x ? task : NULL, x);
        }
        return; /* no execution in flight: nothing to drive */
    }
    if (ev->type == OTA_EV_UPGRADE_STATUS) {
        on_status(e, task, x, vin, ev);
        return;
    }
    uint8_t next = ota_exec_next_state(x->state, ev, false);
    if (next == OTA_EXEC_DECLINED) {
        finish(e, task, x, next, ev->error ? ev->error : "declined");
    } else if (next == OTA_EXEC_POSTPONED) {
        ota_eng_set_state(e, task, x, next);
        x->changed_ms = ev->until; /* a postponed execution's changed_ms: when it wakes */
    } else if (next != x->state) {
        ota_eng_set_state(e, task, x, next); /* downloading, installing, accepted */
    }
}

/* ---------------------------------------------------------------- cancel */

/* An execution in flight: the cancel is desired, the vehicle confirms it. */
static void cancel_in_flight(ota_engine *e, ota_task *task, ota_task_exec *x, const char *vin)
{
    x->code = ota_tasks_code(e->plugin->tasks, OTA_ENGINE_CANCEL_CODE);
    x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING; /* a re-send waiting is not sent */
    ota_eng_mark_dirty(e, task, x);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNullToObject(d, "task");
    cJSON_AddStringToObject(d, "cancel", task->rec.id);
    ota_shadow_set_desired(e->plugin, vin, d);
}

void ota_engine_cancel(ota_plugin *p, ota_task *task, char *const *vins, size_t n_vins,
                       size_t *canceled, size_t *pending)
{
    ota_engine *e = p->engine;
    *canceled = *pending = 0;
    for (size_t i = 0; e && i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        char vin[OTA_VIN_LEN + 1];
        ota_task_exec_vin(x, vin);
        if (!ota_vin_selected(vins, n_vins, vin)) {
            continue;
        }
        if (x->state == OTA_EXEC_QUEUED) {
            x->code = 0;
            ota_eng_set_state(e, task, x, OTA_EXEC_CANCELED);
            (*canceled)++;
        } else if (ota_exec_in_flight(x->state)) {
            cancel_in_flight(e, task, x, vin);
            (*pending)++;
        }
    }
    if (!vins && (task->state == OTA_TASK_ACTIVE || task->state == OTA_TASK_ABORTED)) {
        task->state = OTA_TASK_CANCELED; /* its document is in cancelTask's change */
    }
    ota_eng_check_task(task);
}

/* ---------------------------------------------------------------- installNow */

size_t ota_engine_install_now(ota_plugin *p, ota_task *task, char *const *vins, size_t n_vins)
{
    ota_engine *e = p->engine;
    size_t sent = 0;
    for (size_t i = 0; e && i < task->n_execs; i++) {
        ota_task_exec *x = &task->execs[i];
        char vin[OTA_VIN_LEN + 1], msg_id[128];
        ota_task_exec_vin(x, vin);
        if (!ota_vin_selected(vins, n_vins, vin) || !ota_exec_in_flight(x->state) ||
            (x->flags & (OTA_EXEC_F_CLAIMING | OTA_EXEC_F_ELSEWHERE))) {
            continue;
        }
        ota_eng_msg_id(task, x, msg_id, sizeof(msg_id)); /* the same notice, now to install */
        cJSON *d = ota_eng_notice_json(task, vin, msg_id);
        cJSON_AddBoolToObject(cJSON_GetObjectItemCaseSensitive(d, "task"), "install_now", true);
        ota_shadow_set_desired(p, vin, d);
        sent++;
    }
    return sent;
}
