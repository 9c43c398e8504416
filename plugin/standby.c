/*
 * standby.c — start without the database. On a store several brokers share (every backend
 * but SQLite) the plugin keeps a local snapshot of what the start-up loads,
 * <spool_dir>/snapshot.db (store/snapshot.c): a thread of its own, with its own store
 * handle, brings it up to date from the change log every 5 s (catalog, lists, documents,
 * operators' resets) and saves it whole every plugin_opt_snapshot_period_ms (60 s), the
 * first time at start (the per-VIN task state has no log; at fleet scale a whole save is one
 * more full read of the store per broker and period); the writer is never held by it. When the
 * store cannot be reached at start, the plugin loads from the snapshot instead, gives the writer a
 * handle that opens the store on first use (ota_store_open_lazy), and serves vehicles from memory:
 * reports are spooled and stored when the store is back, the follower catches up from the
 * snapshot's change log position. With neither a store nor a snapshot the broker refuses to start.
 */
#include "standby.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_EVERY_MS 5000

struct ota_standby {
    bool from_snapshot;
    bool running;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char *uri;
    char path[4096];
    atomic_ullong refreshes, saves, errors;
    int full_every_ms, refresh_every_ms;
};

static bool shared(const ota_plugin *p)
{
    return p->cfg.store_uri && strncmp(p->cfg.store_uri, "sqlite:", 7) != 0 &&
           strstr(p->cfg.store_uri, "://") != NULL;
}

void ota_standby_path(const ota_plugin *p, char *buf, size_t len)
{
    if (!shared(p) || !p->cfg.spool_dir) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, len, "%s/snapshot.db", p->cfg.spool_dir);
}

ota_store *ota_standby_open(ota_plugin *p, bool *from_snapshot, char *err, size_t errlen)
{
    char path[4096];
    ota_standby_path(p, path, sizeof path);
    p->standby = calloc(1, sizeof(*p->standby));
    if (!p->standby) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ota_store *s = ota_store_open_or_snapshot(p->cfg.store_uri, path[0] ? path : NULL,
                                              from_snapshot, err, errlen);
    if (s && *from_snapshot) {
        p->standby->from_snapshot = true;
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota: the store is unreachable (%s): starting from the local "
                             "snapshot %s; reports are spooled until the store is back",
                             err, path);
    }
    return s;
}

ota_store *ota_standby_writer_store(ota_plugin *p, ota_store *loaded, bool from_snapshot, char *err,
                                    size_t errlen)
{
    if (!from_snapshot) {
        return loaded;
    }
    ota_store_close(loaded);
    return ota_store_open_lazy(p->cfg.store_uri, err, errlen);
}

/* ---------------------------------------------------------------- the snapshot thread
 * Its own store handle (opened on first use), so a whole save, which reads every
 * collection the start-up reads, never holds the writer (reports, claims, on-demand reads).
 * Plain malloc/free; no mosquitto_* calls: getStats shows its counters. */

static bool wait_or_stop(ota_standby *s, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0) {
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *snapshot_thread(void *arg)
{
    ota_standby *s = arg;
    char err[256];
    ota_store *store = ota_store_open_lazy(s->uri, err, sizeof err);
    int since_full = s->full_every_ms;
    for (bool stop = false; store && !stop; stop = wait_or_stop(s, s->refresh_every_ms)) {
        bool full = since_full >= s->full_every_ms;
        if (ota_store_snapshot_refresh(store, s->path, full, err, sizeof err) < 0) {
            atomic_fetch_add(&s->errors, 1);
        } else if (full) {
            atomic_fetch_add(&s->saves, 1);
            since_full = 0;
        } else {
            atomic_fetch_add(&s->refreshes, 1);
        }
        since_full += s->refresh_every_ms;
    }
    ota_store_close(store);
    return NULL;
}

void ota_standby_tick(ota_plugin *p)
{
    ota_standby *s = p->standby;
    if (!s || s->running || !shared(p) || s->stop) {
        return;
    }
    ota_standby_path(p, s->path, sizeof s->path);
    s->full_every_ms = (int)p->cfg.snapshot_period_ms;
    s->refresh_every_ms = s->full_every_ms < REFRESH_EVERY_MS ? s->full_every_ms : REFRESH_EVERY_MS;
    s->uri = strdup(p->cfg.store_uri);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->uri || pthread_create(&s->thread, NULL, snapshot_thread, s) != 0) {
        s->stop = true; /* not kept: logged once */
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: the local snapshot thread did not start");
        return;
    }
    s->running = true;
}

void ota_standby_stats(const ota_plugin *p, cJSON *data)
{
    ota_standby *s = p->standby;
    cJSON *o = s && shared(p) ? cJSON_AddObjectToObject(data, "snapshot") : NULL;
    if (!o) {
        return;
    }
    cJSON_AddBoolToObject(o, "from_snapshot", s->from_snapshot);
    cJSON_AddNumberToObject(o, "refreshes", (double)atomic_load(&s->refreshes));
    cJSON_AddNumberToObject(o, "saves", (double)atomic_load(&s->saves));
    cJSON_AddNumberToObject(o, "errors", (double)atomic_load(&s->errors));
}

void ota_standby_free(ota_plugin *p)
{
    ota_standby *s = p->standby;
    if (!s) {
        return;
    }
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free(s->uri);
    free(s);
    p->standby = NULL;
}
