/*
 * standby.c — start without the database. On a store several brokers share (every backend
 * but SQLite) the writer keeps a local snapshot of what the start-up loads,
 * <spool_dir>/snapshot.db (store/snapshot.c): one writer job every 5 s brings it up to date
 * from the change log (catalog, lists, documents) and every 60 s saves it whole (the
 * per-VIN task state has no log). When the store cannot be reached at start, the plugin
 * loads from the snapshot instead, gives the writer a handle that opens the store on
 * first use (ota_store_open_lazy), and serves vehicles from memory: reports are spooled
 * and stored when the store is back, the follower catches up from the snapshot's change
 * log position. With neither a store nor a snapshot the broker refuses to start.
 */
#include "standby.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_EVERY_MS 5000
#define FULL_EVERY_MS 60000

typedef struct ota_standby {
    bool from_snapshot;
    bool in_flight;
    int64_t last_submit_ms, last_full_ms;
    uint64_t refreshes, saves, errors;
    char last_error[256];
} standby;

typedef struct {
    ota_writer_job job;
    ota_plugin *p;
    bool full;
    char path[4096];
} refresh_job;

static standby *state(const ota_plugin *p)
{
    return p->standby;
}

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
    /* the first refresh (a whole save) waits one period: the writer has the start's own
     * work first (the spool's replay, the first reports) */
    p->standby->last_submit_ms = ota_now_ms();
    ota_store *s = ota_store_open_or_snapshot(p->cfg.store_uri, path[0] ? path : NULL,
                                              from_snapshot, err, errlen);
    if (s && *from_snapshot) {
        state(p)->from_snapshot = true;
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

/* ---------------------------------------------------------------- the refresh */

static int refresh_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    refresh_job *j = arg;
    return ota_store_snapshot_refresh(store, j->path, j->full, err, errlen) < 0 ? -1 : 0;
}

static void refresh_done(void *arg, int rc, const char *err)
{
    refresh_job *j = arg;
    standby *s = state(j->p);
    s->in_flight = false;
    if (rc != 0) {
        if (s->errors++ == 0 || strcmp(s->last_error, err) != 0) {
            mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: the local snapshot was not refreshed: %s",
                                 err);
        }
        snprintf(s->last_error, sizeof s->last_error, "%s", err);
    } else if (j->full) {
        s->saves++;
    } else {
        s->refreshes++;
    }
    free(j);
}

void ota_standby_tick(ota_plugin *p)
{
    standby *s = state(p);
    int64_t now = ota_now_ms();
    if (!s || !shared(p) || s->in_flight || now - s->last_submit_ms < REFRESH_EVERY_MS) {
        return;
    }
    refresh_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return;
    }
    j->job = (ota_writer_job){.run = refresh_run, .done = refresh_done, .arg = j};
    j->p = p;
    ota_standby_path(p, j->path, sizeof j->path);
    j->full = s->last_full_ms == 0 || now - s->last_full_ms >= FULL_EVERY_MS;
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        free(j);
        return;
    }
    if (j->full) {
        s->last_full_ms = now; /* tried: a failed save is tried again in 60 s, refreshes go on */
    }
    s->in_flight = true;
    s->last_submit_ms = now;
}

void ota_standby_stats(const ota_plugin *p, cJSON *data)
{
    const standby *s = state(p);
    cJSON *o = s && shared(p) ? cJSON_AddObjectToObject(data, "snapshot") : NULL;
    if (!o) {
        return;
    }
    cJSON_AddBoolToObject(o, "from_snapshot", s->from_snapshot);
    cJSON_AddNumberToObject(o, "refreshes", (double)s->refreshes);
    cJSON_AddNumberToObject(o, "saves", (double)s->saves);
    cJSON_AddNumberToObject(o, "errors", (double)s->errors);
}

void ota_standby_free(ota_plugin *p)
{
    free(p->standby);
    p->standby = NULL;
}
