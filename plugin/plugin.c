/*
 * plugin.c — the entry points Mosquitto calls: version, init, cleanup, and TICK.
 *
 * Init reads the options, opens the spool (creating a new active segment and the sync
 * thread), opens the store, loads the catalog, shadows and tasks from it into memory and
 * starts the writer thread, which first replays whatever the spool holds past its
 * checkpoint; then it makes the task engine (p->engine, from the loaded tasks). Then it
 * registers the callbacks: ACL_CHECK (acl.c), BASIC_AUTH (identity.c: client ids), MESSAGE
 * (router.c), CONTROL on $CONTROL/ota/v1 (control.c) and TICK (here, draining what worker threads hand back:
 * stored operator changes, log lines; and the task engine's dispatch, timeouts and batched
 * execution changes), DISCONNECT (the engine's view of which vehicles are online). Cleanup
 * hands the last execution and shadow changes to the writer, stops the writer (anything
 * not yet stored stays in the spool for the next start) and the spool, then frees the
 * engine before the tasks and shadows it points into.
 */
#include "catalog.h"
#include "control.h"
#include "engine.h"
#include "rxswin.h"
#include "follow.h"
#include "standby.h"
#include "file.h"
#include "grants.h"
#include "wake.h"
#include "keys.h"
#include "ota_plugin.h"
#include "ota_store.h"
#include "pkg.h"
#include "shadow.h"
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONTROL_TOPIC "$CONTROL/ota/v1"
#define UPLOAD_TOPIC "$CONTROL/ota/v1/file"

int64_t ota_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    (void)supported_version_count, (void)supported_versions;
    return 5;
}

/* Vehicles the router found flooding (rate_limit.h): kicked here, outside their own PUBLISH
 * callback. Without their will: a flooder's will is no message to trust. */
static void kick_flooders(ota_plugin *p)
{
    char *client_id;
    while ((client_id = ota_limits_pop_kick(p->limits)) != NULL) {
        if (mosquitto_kick_client_by_clientid(client_id, false) == MOSQ_ERR_SUCCESS) {
            p->counters.vehicles_kicked++;
            mosquitto_log_printf(MOSQ_LOG_WARNING,
                                 "ota: disconnected %s: kept flooding after E_RATE_LIMITED",
                                 client_id);
        }
        free(client_id);
    }
}

static int on_tick(int event, void *event_data, void *userdata)
{
    (void)event, (void)event_data;
    ota_plugin *p = userdata;
    ota_writer_poll_done(p->writer); /* stored operator changes: apply and answer */
    ota_reports_poll(p);             /* stored reports: status events, engine, effects */
    ota_engine_tick(p);              /* dispatch, timeouts, abort, execution changes to the store */
    ota_shadows_flush(p);
    ota_files_tick(p); /* the next slice of queued file blocks */
    ota_pkg_tick(p);   /* signed descriptions: spooled, answered */
    ota_follow_tick(p); /* changes other brokers stored: read, applied on a later TICK */
    ota_standby_tick(p); /* the local snapshot, to start without the database */
    ota_rxswin_tick(p);  /* RXSWIN updates of committed successes: to the operator queue */
    kick_flooders(p);
    p->counters.log_lines_dropped += ota_logq_drain(p->logq);
    return MOSQ_ERR_SUCCESS;
}

/* A vehicle's connection ended: offline until it is seen again. DISCONNECT also fires
 * for connections that never completed CONNECT (no client id): those are not vehicles. */
static int on_disconnect(int event, void *event_data, void *userdata)
{
    (void)event;
    ota_plugin *p = userdata;
    const struct mosquitto_evt_disconnect *ed = event_data;
    if (ed && ed->client && mosquitto_client_id(ed->client)) {
        ota_identity id = ota_identity_of(p, ed->client);
        if (id.kind == OTA_ID_VEHICLE) {
            ota_engine_on_disconnect(p, id.name);
            ota_files_on_disconnect(p, id.name, mosquitto_client_id(ed->client));
        }
    }
    return MOSQ_ERR_SUCCESS;
}

static int start_pipeline(ota_plugin *p, char *err, size_t errlen)
{
    if (ota_upload_prepare_dirs(p->cfg.file_dir, err, errlen) != 0) {
        return -1;
    }
    p->wake = p->cfg.wake ? ota_wake_new() : NULL;
    if (p->cfg.wake && !p->wake) {
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: no free real-time signal to wake the broker: "
                                               "worker results wait for the next TICK");
    }
    p->keys =
        ota_keys_open(p->cfg.signing_key, p->cfg.signing_alg, p->cfg.content_kek, err, errlen);
    if (!p->keys || ota_pkg_start(p, err, errlen) != 0) {
        return -1;
    }
    ota_spool_config sc = {p->cfg.spool_dir, p->cfg.spool_sync_ms, OTA_SPOOL_SEGMENT_BYTES_DEFAULT};
    p->spool = ota_spool_open(&sc, err, errlen);
    if (!p->spool) {
        return -1;
    }
    bool from_snapshot = false;
    ota_store *store = ota_standby_open(p, &from_snapshot, err, errlen);
    if (!store) {
        return -1;
    }
    if (ota_follow_start(p, store, from_snapshot, err, errlen) != 0) { /* before the load */
        ota_store_close(store);
        return -1;
    }
    if (ota_catalog_load(p->catalog, store, err, errlen) != 0 ||
        ota_shadows_load(p->shadows, store, err, errlen) != 0 ||
        ota_tasks_load(p->tasks, store, err, errlen) != 0 ||
        ota_grants_load(p->grants, store, err, errlen) != 0 ||
        ota_reports_load(p, store, err, errlen) != 0) {
        ota_store_close(store);
        return -1;
    }
    store = ota_standby_writer_store(p, store, from_snapshot, err, errlen);
    if (!store) {
        return -1;
    }
    ota_writer_config wc = {
        .batch_events = p->cfg.writer_batch,
        .retry_min_ms = 100,
        .retry_max_ms = 5000,
        .limits = p->cfg.limits,
        .nice = (int)p->cfg.writer_nice,
        .log = ota_logq_push,
        .log_ctx = p->logq,
        .notify = p->wake ? ota_wake_broker : NULL,
        .notify_ctx = p->wake,
        .report_results = true,
    };
    p->writer = ota_writer_start(p->spool, store, &wc, err, errlen);
    if (!p->writer) {
        ota_store_close(store); /* still ours when the writer did not start */
        return -1;
    }
    return 0;
}

static void stop_pipeline(ota_plugin *p)
{
    if (p->writer) {
        ota_writer_stop(p->writer);
        p->writer = NULL;
    }
    if (p->spool) {
        ota_spool_close(p->spool);
        p->spool = NULL;
    }
}

static int register_callbacks(ota_plugin *p)
{
    mosquitto_plugin_id_t *id = p->id;
    int rc = mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, ota_acl_callback, NULL, p);
    rc = rc ? rc : mosquitto_callback_register(id, MOSQ_EVT_BASIC_AUTH, ota_auth_callback, NULL, p);
    rc = rc ? rc : mosquitto_callback_register(id, MOSQ_EVT_MESSAGE, ota_message_callback, NULL, p);
    rc = rc ? rc : mosquitto_callback_register(id, MOSQ_EVT_TICK, on_tick, NULL, p);
    rc = rc ? rc : mosquitto_callback_register(id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, p);
    rc = rc ? rc
            : mosquitto_callback_register(id, MOSQ_EVT_CONTROL, ota_control_callback, CONTROL_TOPIC,
                                          p);
    rc = rc ? rc
            : mosquitto_callback_register(id, MOSQ_EVT_CONTROL, ota_upload_callback, UPLOAD_TOPIC,
                                          p);
    return rc;
}

static void unregister_callbacks(ota_plugin *p)
{
    mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, ota_acl_callback, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, ota_auth_callback, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_MESSAGE, ota_message_callback, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_TICK, on_tick, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_CONTROL, ota_control_callback, CONTROL_TOPIC);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_CONTROL, ota_upload_callback, UPLOAD_TOPIC);
}

static void plugin_free(ota_plugin *p)
{
    ota_engine_flush_final(p);  /* execution changes and notices: stored by the writer's stop */
    ota_shadows_flush_final(p); /* the writer's stop still stores it */
    ota_pkg_stop(p);            /* the signer finishes what was built: spooled if asked for */
    stop_pipeline(p);           /* may still answer commands: control and catalog go after it */
    ota_wake_free(p->wake);     /* every thread that could wake the broker has stopped */
    ota_follow_free(p->follow); /* its job, if any, was handed back by the stop */
    ota_standby_free(p);
    ota_control_free(p->control);
    ota_rxswin_free(p->rxswin); /* after the control queue: a commit may still be answered */
    ota_engine_free(p->engine); /* before the tasks and shadows it points into */
    ota_tasks_free(p->tasks);
    ota_grants_free(p->grants);
    ota_files_free(p->files);
    ota_pkg_free(p->pkg);
    ota_keys_free(p->keys);
    ota_shadows_free(p->shadows);
    ota_catalog_free(p->catalog);
    ota_reports_free(p);
    ota_limits_free(p->limits);
    if (p->logq) {
        ota_logq_drain(p->logq);
        ota_logq_free(p->logq);
    }
    ota_config_free(&p->cfg);
    free(p);
}

static int plugin_fail(ota_plugin *p, const char *err)
{
    mosquitto_log_printf(MOSQ_LOG_ERR, "ota: cannot start: %s", err);
    plugin_free(p);
    return MOSQ_ERR_UNKNOWN;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
    char err[512] = "";
    ota_plugin *p = calloc(1, sizeof(*p));
    if (!p) {
        return MOSQ_ERR_NOMEM;
    }
    p->id = identifier;
    p->logq = ota_logq_new(10000);
    p->catalog = ota_catalog_new();
    p->control = ota_control_new();
    p->shadows = ota_shadows_new();
    ota_reports_init(p);
    p->tasks = ota_tasks_new();
    p->grants = ota_grants_new();
    p->pkg = ota_pkg_new();
    if (!p->logq || !p->catalog || !p->control || !p->shadows || !p->tasks || !p->grants ||
        !p->pkg || ota_config_parse(&p->cfg, opts, opt_count, err, sizeof(err)) != 0) {
        return plugin_fail(p, err[0] ? err : "out of memory");
    }
    p->files = ota_files_new(p->cfg.file_dir, p->cfg.file_pass_bytes, p->cfg.file_queue_blocks,
                             p->cfg.file_vehicle_rate, p->cfg.file_vehicle_burst);
    p->limits = ota_limits_new(&p->cfg.rate);
    if (!p->files || !p->limits) {
        return plugin_fail(p, "out of memory");
    }
    if (start_pipeline(p, err, sizeof(err)) != 0) {
        return plugin_fail(p, err);
    }
    p->engine = ota_engine_new(p, NULL); /* after the tasks are loaded */
    p->rxswin = ota_rxswin_new();
    if (!p->engine || !p->rxswin) {
        return plugin_fail(p, "out of memory");
    }
    ota_rxswin_reconcile(p); /* RXSWIN updates a stop or crash left unstored */
    if (register_callbacks(p) != MOSQ_ERR_SUCCESS) {
        unregister_callbacks(p);
        return plugin_fail(p, "callback registration failed");
    }
    ota_logq_drain(p->logq);
    if (strcmp(p->cfg.auth, "none") == 0) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota: plugin_opt_auth none: usernames are taken as given, anyone "
                             "may claim a VIN or an operator name (tests and demos only)");
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "ota: started (store %s, spool %s, broker id %s, %zu admin users, "
                         "%zu vehicles)",
                         p->cfg.store_uri, p->cfg.spool_dir, p->cfg.broker_id, p->cfg.n_admin_users,
                         ota_catalog_vehicle_count(p->catalog));
    *userdata = p;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
    (void)opts, (void)opt_count;
    ota_plugin *p = userdata;
    if (p) {
        unregister_callbacks(p);
        plugin_free(p);
    }
    return MOSQ_ERR_SUCCESS;
}
