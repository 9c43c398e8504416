/*
 * engine_grants.c — a vehicle's descriptions read from the store when it arrives at a
 * broker that shares its database (engine.h, docs/mongodb.md "Several brokers").
 *
 * pkg/get takes the vehicle's next description counter and file/get needs a description
 * naming the file (core/grants.h); both live in memory, filled at start and by the
 * descriptions this broker issues. A vehicle that got its description from another broker
 * and reconnected here would be refused (or sent a counter it rejects). So, on a shared
 * store (every backend but SQLite), the first pkg/get or file/get of a vehicle's
 * connection that needs them waits: the request is copied and parked, the writer reads
 * the vehicle's stored descriptions (ota_store_load_descriptions; one job in flight,
 * every waiting VIN in it), the TICK that brings them back adds them to the grants and
 * handles the parked requests as if they had just arrived. Once per connection: a
 * DISCONNECT makes the next connection read again. A file/get whose file is still not
 * granted is parked and read again for up to GRANT_WAIT_MS after the first read: the
 * broker that issued the description may not have stored it yet (its writer's lag, which
 * is seconds when that writer is loaded: 2 s was too short under the sanitizers, and 10 s
 * for test_ha's 300 vehicles under the sanitizers on a loaded machine). What a
 * vehicle can park is bounded by its rate limit: at most vehicle_rate x GRANT_WAIT_MS / 1000
 * requests of at most max_request_bytes each. The broker thread never waits.
 */
#include "engine_impl.h"
#include "grants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRANT_WAIT_MS 30000

/* A request parked until its vehicle's descriptions are read. */
typedef struct eng_parked {
    struct eng_parked *next;
    ota_vehicle_handler handler;
    char vin[OTA_VIN_LEN + 1];
    char *client_id, *topic;
    void *payload;
    size_t payloadlen;
    mosquitto_property *props;
    const ota_vehicle_topic *vt;
} eng_parked;

/* One VIN's stored descriptions, read by the writer. */
typedef struct {
    char vin[OTA_VIN_LEN + 1];
    struct {
        uint64_t counter;
        char *files;
    } * d;
    size_t n;
} grant_set;

typedef struct {
    ota_writer_job job;
    ota_engine *e;
    grant_set *sets;
    size_t n;
} grants_job;

static bool shared_store(const ota_plugin *p)
{
    return p->writer && p->cfg.store_uri && strncmp(p->cfg.store_uri, "sqlite:", 7) != 0;
}

static void parked_free(eng_parked *r)
{
    free(r->client_id);
    free(r->topic);
    free(r->payload);
    mosquitto_property_free_all(&r->props);
    free(r);
}

static eng_parked *park_copy(const ota_request *req, ota_vehicle_handler handler)
{
    eng_parked *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->handler = handler;
    snprintf(r->vin, sizeof r->vin, "%s", req->vin);
    r->client_id = strdup(req->client_id ? req->client_id : req->vin);
    r->topic = strdup(req->topic);
    r->payload = malloc(req->payloadlen ? req->payloadlen : 1);
    r->payloadlen = req->payloadlen;
    r->props = ota_reply_props_copy(req);
    r->vt = req->vt;
    if (!r->client_id || !r->topic || !r->payload) {
        parked_free(r);
        return NULL;
    }
    memcpy(r->payload, req->payload, req->payloadlen);
    return r;
}

bool ota_engine_grants_park(ota_plugin *p, const ota_request *req, ota_vehicle_handler handler,
                            bool missing)
{
    ota_engine *e = p->engine;
    eng_veh *v = e && shared_store(p) ? ota_eng_veh_get(e, req->vin) : NULL;
    bool again =
        v && v->grants_fresh && missing && e->clock.mono_ms() - v->grants_ms < GRANT_WAIT_MS;
    if (!v || (v->grants_fresh && !again)) {
        return false; /* handled now */
    }
    eng_parked *r = park_copy(req, handler);
    if (!r) {
        return false; /* out of memory: handled with what this broker knows */
    }
    r->next = e->parked;
    e->parked = r;
    v->grants_wanted = true;
    return true;
}

void ota_eng_grants_forget(ota_engine *e, eng_veh *v)
{
    (void)e;
    v->grants_fresh = false;
}

/* ---------------------------------------------------------------- the job */

static int keep_desc(void *ctx, const ota_description_rec *d)
{
    grant_set *s = ctx;
    void *grown = realloc(s->d, (s->n + 1) * sizeof(*s->d));
    if (!grown) {
        return -1;
    }
    s->d = grown;
    s->d[s->n].counter = d->counter;
    s->d[s->n].files = strdup(d->files ? d->files : "");
    return s->d[s->n++].files ? 0 : -1;
}

static int grants_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    grants_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        if (ota_store_load_descriptions(store, j->sets[i].vin, keep_desc, &j->sets[i]) != 0) {
            snprintf(err, errlen, "descriptions of %s not read", j->sets[i].vin);
            return -1;
        }
    }
    return 0;
}

static void grants_job_free(grants_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        for (size_t k = 0; k < j->sets[i].n; k++) {
            free(j->sets[i].d[k].files);
        }
        free(j->sets[i].d);
    }
    free(j->sets);
    free(j);
}

/* The parked requests of vin, handled now (in the order they arrived). */
static void unpark(ota_engine *e, const char *vin)
{
    eng_parked *mine = NULL, **pp = &e->parked;
    while (*pp) {
        eng_parked *r = *pp;
        if (strcmp(r->vin, vin) == 0) {
            *pp = r->next;
            r->next = mine;
            mine = r; /* reversed: the list was newest first */
        } else {
            pp = &r->next;
        }
    }
    while (mine) {
        eng_parked *r = mine;
        mine = r->next;
        ota_request req = {.client = NULL,
                           .client_id = r->client_id,
                           .vin = r->vin,
                           .topic = r->topic,
                           .payload = r->payload,
                           .payloadlen = r->payloadlen,
                           .properties = r->props,
                           .vt = r->vt};
        r->handler(e->plugin, &req);
        parked_free(r);
    }
}

static void grants_done(void *arg, int rc, const char *err)
{
    grants_job *j = arg;
    ota_engine *e = j->e;
    e->grants_in_flight = false;
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "ota: descriptions not read (%s): requests answered from memory", err);
    }
    for (size_t i = 0; i < j->n; i++) {
        grant_set *s = &j->sets[i];
        for (size_t k = 0; rc == 0 && k < s->n; k++) {
            ota_grants_add(e->plugin->grants, s->vin, s->d[k].counter, s->d[k].files);
        }
        eng_veh *v = ota_map_get_str(&e->vehs, s->vin);
        if (v && !v->grants_fresh) {
            v->grants_fresh = true; /* (after a failure too: no endless parking) */
            v->grants_ms = e->clock.mono_ms();
        }
        unpark(e, s->vin);
    }
    grants_job_free(j);
}

void ota_eng_grants_submit(ota_engine *e)
{
    if (e->grants_in_flight || !e->parked || !e->plugin->writer) {
        return;
    }
    size_t n = 0, pos = 0;
    eng_veh *v;
    while ((v = ota_map_next(&e->vehs, &pos))) {
        n += v->grants_wanted;
    }
    grants_job *j = calloc(1, sizeof(*j));
    grant_set *sets = calloc(n + 1, sizeof(*sets));
    if (!j || !sets) {
        free(j);
        free(sets);
        return;
    }
    *j = (grants_job){.e = e, .sets = sets};
    pos = 0;
    while ((v = ota_map_next(&e->vehs, &pos)) && j->n < n) {
        if (v->grants_wanted) {
            v->grants_wanted = false;
            memcpy(sets[j->n++].vin, v->vin, OTA_VIN_LEN + 1);
        }
    }
    e->grants_in_flight = true;
    j->job = (ota_writer_job){.run = grants_run, .done = grants_done, .arg = j};
    if (ota_writer_submit(e->plugin->writer, &j->job) != 0) {
        grants_done(j, -1, "the writer is stopping");
    }
}

void ota_eng_grants_free(ota_engine *e)
{
    while (e->parked) {
        eng_parked *r = e->parked;
        e->parked = r->next;
        parked_free(r);
    }
}
