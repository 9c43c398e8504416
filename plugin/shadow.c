/*
 * shadow.c — device shadows (shadow.h, SPEC §3): ota/v1/{vin}/shadow/update and
 * shadow/get, the desired state the task engine sets, and their batched persistence.
 *
 * Memory. One small record per vehicle that has a shadow (or asked for it), in a map by
 * VIN (map.h): version, the reported document as compact JSON text (a tree per vehicle
 * would cost ten times more; an update parses, merges and prints it again), the desired
 * document as a cJSON tree (NULL for most vehicles: only the task engine sets it), and
 * the client id the vehicle last used, so that a delta set later reaches it (NULL when
 * it is the VIN itself, as with use_username_as_clientid). Broker thread only.
 *
 * shadow/update: decode strictly (codec/shadow_msg.c); merge: the top-level keys of reported
 * replace the old ones, `ecus` is merged per ECU (at most OTA_SHADOW_MAX_ECUS in the
 * merged shadow, so a vehicle cannot grow its shadow without bound); version += 1;
 * answer shadow/accepted {version, token?} to the vehicle (MQTT 5 response topic and
 * correlation data honoured, reply.c); then, when desired is not empty, shadow/delta
 * {version, desired}: a vehicle is told what it should do whenever it reports. The delta
 * always goes on ota/v1/{vin}/shadow/delta (it is not the answer to the request, and is
 * the same message ota_shadow_set_desired sends). shadow/get answers shadow/state
 * {version, reported, desired, token?}. Both remember the client id, then tell the hook the
 * task engine registered (ota_shadows_on_seen) that the vehicle is online. Errors are answered
 * like reports' (ota_reply_error): E_BAD_CBOR, E_BAD_REQUEST, E_TOO_LARGE.
 *
 * Firmware in the catalog. When a catalog vehicle reports a fw other than the catalog's,
 * the catalog's vehicle is updated in memory at once (the task rules read it) and the
 * vehicle goes into the next flush's put_vehicles, built from the catalog at flush time
 * (a vehicle deleted meanwhile is skipped), so the store follows. Decision: the vehicle's
 * own report is the truth about its firmware, so this is not an operator change going
 * through the command queue; the price is a window of one writer job in which an operator
 * change to the same vehicle, stored but not yet applied, could be overwritten in the
 * store by the record taken before it (memory keeps the operator's; the next fw report or
 * upsert repairs the store). VINs not in the catalog still get a shadow.
 *
 * Persistence. Updates are applied in memory and marked dirty; ota_shadows_flush (TICK)
 * hands every dirty shadow to the writer as ONE ota_store_apply change, paced by batch.h
 * (one job in flight, at most every 50 ms; meanwhile changes keep collecting). Unlike an acked
 * report, a shadow/update may be lost if the broker dies within about a TICK and a store write of
 * it (~100-200 ms): the vehicle re-sends its state with its next update, and a lost version number
 * only means the next one is lower than a vehicle may have seen. A failed flush puts its shadows
 * back to dirty and is retried a second later. The broker thread never touches the store except in
 * ota_shadows_load at start.
 */
#include "shadow.h"
#include "batch.h"
#include "catalog.h"
#include "map.h"
#include "ota_store.h"

#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    bool dirty;         /* in the dirty list */
    bool fw_changed;    /* the catalog vehicle's fw changed: store it with the next flush */
    bool seen;          /* the vehicle sent a request since the start: client_id is known */
    bool deciding;      /* a notice decision of it is out (ota_shadow_decision_rec) */
    bool flushed_since; /* ...and a flush took it since: that older version may land after */
    int64_t version;
    int64_t updated_ms;
    char *reported;  /* compact JSON object; NULL: {} */
    cJSON *desired;  /* JSON object; NULL: none */
    char *client_id; /* NULL: the VIN */
} shadow;

struct ota_shadows {
    ota_map map;
    shadow **dirty; /* records never move or go away while the plugin runs */
    size_t n_dirty, cap_dirty;
    ota_batcher batch;
    ota_shadow_seen_fn seen_fn; /* the task engine's hook */
    void *seen_ctx;
};

/* ---------------------------------------------------------------- records */

static ota_map_key shadow_key(const void *rec)
{
    return ota_map_key_str(((const shadow *)rec)->vin);
}

static void shadow_fini(void *rec)
{
    shadow *sh = rec;
    free(sh->reported);
    cJSON_Delete(sh->desired);
    free(sh->client_id);
}

ota_shadows *ota_shadows_new(void)
{
    ota_shadows *s = calloc(1, sizeof *s);
    if (s != NULL)
        ota_map_init(&s->map, sizeof(shadow), shadow_key);
    return s;
}

void ota_shadows_free(ota_shadows *s)
{
    if (s == NULL)
        return;
    ota_map_destroy(&s->map, shadow_fini);
    free(s->dirty);
    free(s);
}

/* The vehicle's shadow, created empty (version 0) when it has none. NULL: out of memory. */
static shadow *shadow_get(ota_shadows *s, const char *vin)
{
    shadow *sh = ota_map_get_str(&s->map, vin);
    if (sh != NULL || strlen(vin) != OTA_VIN_LEN)
        return sh;
    shadow rec = {0};
    memcpy(rec.vin, vin, OTA_VIN_LEN + 1);
    return ota_map_put(&s->map, &rec);
}

static int mark_dirty(ota_shadows *s, shadow *sh)
{
    if (sh->dirty)
        return 0;
    if (s->n_dirty == s->cap_dirty) {
        size_t cap = s->cap_dirty ? 2 * s->cap_dirty : 64;
        shadow **d = realloc(s->dirty, cap * sizeof *d);
        if (d == NULL)
            return -1;
        s->dirty = d;
        s->cap_dirty = cap;
    }
    s->dirty[s->n_dirty++] = sh;
    sh->dirty = true;
    return 0;
}

/* A new version of the shadow, to be stored. */
static void bump(ota_shadows *s, shadow *sh)
{
    sh->version++;
    sh->updated_ms = ota_now_ms();
    if (mark_dirty(s, sh) != 0)
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: shadow of %s not stored: out of memory", sh->vin);
}

static void remember_client(shadow *sh, const char *client_id)
{
    sh->seen = true;
    if (client_id == NULL || strcmp(client_id, sh->vin) == 0) {
        free(sh->client_id);
        sh->client_id = NULL;
    } else if (sh->client_id == NULL || strcmp(sh->client_id, client_id) != 0) {
        char *c = strdup(client_id);
        if (c != NULL) {
            free(sh->client_id);
            sh->client_id = c;
        }
    }
}

/* ---------------------------------------------------------------- load */

static int load_one(void *ctx, const ota_shadow_rec *r)
{
    ota_shadows *s = ctx;
    if (r->vin == NULL || strlen(r->vin) != OTA_VIN_LEN || ota_map_get_str(&s->map, r->vin))
        return 0; /* not a shadow this plugin wrote */
    shadow rec = {.version = r->version, .updated_ms = r->updated_ms};
    memcpy(rec.vin, r->vin, OTA_VIN_LEN + 1);
    if (r->reported != NULL && (rec.reported = strdup(r->reported)) == NULL)
        return -1;
    if (r->desired != NULL) {
        rec.desired = cJSON_Parse(r->desired);
        if (rec.desired != NULL && !cJSON_IsObject(rec.desired)) {
            cJSON_Delete(rec.desired); /* "null": none */
            rec.desired = NULL;
        }
    }
    if (ota_map_put(&s->map, &rec) == NULL) {
        shadow_fini(&rec);
        return -1;
    }
    return 0;
}

int ota_shadows_load(ota_shadows *s, ota_store *store, char *err, size_t errlen)
{
    if (ota_store_load_shadows(store, load_one, s) != 0) {
        snprintf(err, errlen, "cannot load the device shadows from the store");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- publishing */

/* Publishes a CBOR message on ota/v1/{vin}/{name} to the vehicle's client only (dropped
 * by the broker when it is not connected). Takes buf. */
static void publish_to_vehicle(const shadow *sh, const char *name, uint8_t *buf, size_t len)
{
    if (buf == NULL)
        return;
    char own[64];
    const char *topic = ota_vehicle_topic_of(own, sizeof own, sh->vin, name);
    if (topic == NULL) {
        free(buf);
        return;
    }
    mosquitto_property *props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/cbor");
    const char *client = sh->client_id ? sh->client_id : sh->vin;
    if (mosquitto_broker_publish_copy(client, topic, (int)len, buf, 1, false, props) !=
        MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&props);
        mosquitto_log_printf(MOSQ_LOG_WARNING, "ota: could not queue %s", topic);
    }
    free(buf);
}

static void send_delta(const shadow *sh)
{
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_delta(sh->version, sh->desired, &len);
    publish_to_vehicle(sh, "shadow/delta", buf, len);
}

static bool has_desired(const shadow *sh)
{
    return sh->desired != NULL && sh->desired->child != NULL;
}

/* ---------------------------------------------------------------- shadow/update */

static void reply_internal(ota_plugin *p, const ota_request *req, const char *what)
{
    ota_error e;
    ota_error_set(&e, OTA_E_INTERNAL, "%s: out of memory", what);
    ota_reply_error(p, req, &e, -1);
}

/* Sets key of obj to a string (replacing it). False when out of memory. */
static bool set_text(cJSON *obj, const char *key, const char *value)
{
    cJSON *v = cJSON_CreateString(value);
    if (v == NULL)
        return false;
    bool ok = cJSON_HasObjectItem(obj, key) ? cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v)
                                            : cJSON_AddItemToObject(obj, key, v);
    if (!ok)
        cJSON_Delete(v); /* not attached */
    return ok;
}

/* The shadow's ecus object, created (or replacing a value that is not an object). */
static cJSON *ecus_object(cJSON *reported)
{
    cJSON *ecus = cJSON_GetObjectItemCaseSensitive(reported, "ecus");
    if (cJSON_IsObject(ecus))
        return ecus;
    cJSON_DeleteItemFromObjectCaseSensitive(reported, "ecus");
    return cJSON_AddObjectToObject(reported, "ecus");
}

/* Merges the update's ECUs in; -1 out of memory, -2 over OTA_SHADOW_MAX_ECUS. */
static int merge_ecus(cJSON *reported, const ota_shadow_update *u)
{
    cJSON *ecus = ecus_object(reported);
    if (ecus == NULL)
        return -1;
    size_t n = (size_t)cJSON_GetArraySize(ecus);
    for (size_t i = 0; i < u->n_ecus; i++)
        if (!cJSON_HasObjectItem(ecus, u->ecus[i].ecu) && ++n > OTA_SHADOW_MAX_ECUS)
            return -2;
    for (size_t i = 0; i < u->n_ecus; i++)
        if (!set_text(ecus, u->ecus[i].ecu, u->ecus[i].version))
            return -1;
    return 0;
}

/* The shadow's reported document as a tree ({} when none or unreadable). */
static cJSON *reported_tree(const shadow *sh)
{
    cJSON *r = sh->reported ? cJSON_Parse(sh->reported) : NULL;
    if (r != NULL && !cJSON_IsObject(r)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r ? r : cJSON_CreateObject();
}

/* The merged reported text (malloc'd) into *out: 0, -1 out of memory, -2 too many ECUs. */
static int merge_reported(const shadow *sh, const ota_shadow_update *u, char **out)
{
    cJSON *r = reported_tree(sh);
    if (r == NULL)
        return -1;
    int rc = set_text(r, "fw", u->fw) && set_text(r, "state", u->state) &&
                     (!u->config_word || set_text(r, "config_word", u->config_word)) &&
                     (!u->usage || set_text(r, "usage", u->usage))
                 ? merge_ecus(r, u)
                 : -1;
    if (rc == 0 && (*out = cJSON_PrintUnformatted(r)) == NULL)
        rc = -1;
    cJSON_Delete(r);
    return rc;
}

/* The catalog's fw follows what a catalog vehicle reports (see the top of the file). */
static void follow_fw(ota_plugin *p, shadow *sh, const char *fw)
{
    const ota_vehicle *v = ota_catalog_vehicle(p->catalog, sh->vin);
    if (v == NULL || (v->fw != NULL && strcmp(v->fw, fw) == 0))
        return;
    ota_vehicle_rec rec;
    char *nfw = strdup(fw);
    if (nfw == NULL || ota_catalog_vehicle_rec(p->catalog, v, &rec) != 0) {
        free(nfw);
        return;
    }
    free(rec.fw);
    rec.fw = nfw;
    if (ota_catalog_put_vehicle(p->catalog, &rec) == 0) {
        sh->fw_changed = true;
        mosquitto_log_printf(MOSQ_LOG_INFO, "ota: %s reports fw %s", sh->vin, fw);
    }
}

static void reply_too_many_ecus(ota_plugin *p, const ota_request *req)
{
    ota_error e;
    ota_error_set(&e, OTA_E_TOO_LARGE, "reported.ecus: the shadow would hold more than %d ECUs",
                  OTA_SHADOW_MAX_ECUS);
    ota_reply_error(p, req, &e, -1);
}

void ota_shadows_on_seen(ota_shadows *s, ota_shadow_seen_fn fn, void *ctx)
{
    s->seen_fn = fn;
    s->seen_ctx = ctx;
}

static void vehicle_seen(ota_shadows *s, const char *vin)
{
    if (s->seen_fn)
        s->seen_fn(s->seen_ctx, vin);
}

int ota_handle_shadow_update(ota_plugin *p, const ota_request *req)
{
    ota_shadow_update u;
    ota_error err;
    if (ota_codec_decode_shadow_update(req->payload, req->payloadlen, &u, &err) != 0) {
        ota_reply_error(p, req, &err, -1);
        return MOSQ_ERR_SUCCESS;
    }
    shadow *sh = shadow_get(p->shadows, req->vin);
    char *merged = NULL;
    int rc = sh ? merge_reported(sh, &u, &merged) : -1;
    if (rc != 0) {
        if (rc == -2)
            reply_too_many_ecus(p, req);
        else
            reply_internal(p, req, "shadow/update");
        ota_shadow_update_free(&u);
        return MOSQ_ERR_SUCCESS;
    }
    free(sh->reported);
    sh->reported = merged;
    remember_client(sh, req->client_id);
    follow_fw(p, sh, u.fw);
    bump(p->shadows, sh);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_accepted(sh->version, u.token, &len);
    ota_reply_cbor(req, "shadow/accepted", buf, len);
    if (has_desired(sh))
        send_delta(sh);
    ota_shadow_update_free(&u);
    vehicle_seen(p->shadows, req->vin); /* online: a due notice goes out now */
    return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------- shadow/get */

int ota_handle_shadow_get(ota_plugin *p, const ota_request *req)
{
    ota_shadow_get g;
    ota_error err;
    if (ota_codec_decode_shadow_get(req->payload, req->payloadlen, &g, &err) != 0) {
        ota_reply_error(p, req, &err, -1);
        return MOSQ_ERR_SUCCESS;
    }
    shadow *sh = shadow_get(p->shadows, req->vin);
    cJSON *reported = sh ? reported_tree(sh) : NULL;
    if (reported == NULL) {
        reply_internal(p, req, "shadow/get");
        return MOSQ_ERR_SUCCESS;
    }
    remember_client(sh, req->client_id);
    size_t len = 0;
    uint8_t *buf = ota_codec_encode_shadow_state(sh->version, reported, sh->desired,
                                                 g.has_token ? g.token : NULL, &len);
    cJSON_Delete(reported);
    if (buf == NULL)
        reply_internal(p, req, "shadow/get");
    else
        ota_reply_cbor(req, "shadow/state", buf, len);
    vehicle_seen(p->shadows, req->vin); /* online: a due notice goes out now */
    return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------- desired */

/* Sets sh's desired state (taken) and bumps its version; marks it dirty unless the store
 * already holds this very version (stored_version, -1: none). */
static void set_desired(ota_plugin *p, const char *vin, cJSON *desired, int64_t stored_version)
{
    if (desired != NULL && !cJSON_IsObject(desired)) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: desired state of %s is not an object", vin);
        cJSON_Delete(desired);
        return;
    }
    shadow *sh = shadow_get(p->shadows, vin);
    if (sh == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: desired state of %s not set: out of memory", vin);
        cJSON_Delete(desired);
        return;
    }
    cJSON_Delete(sh->desired);
    sh->desired = desired;
    bool flushed_since = sh->flushed_since;
    sh->deciding = sh->flushed_since = false;
    if (stored_version >= 0 && sh->version + 1 == stored_version && !flushed_since) {
        sh->version++; /* the notice decision stored this version: no second write */
        sh->updated_ms = ota_now_ms();
    } else {
        bump(p->shadows, sh);
    }
    if (sh->seen) /* else it gets the delta with its next update, the state with a get */
        send_delta(sh);
}

void ota_shadow_set_desired(ota_plugin *p, const char *vin, cJSON *desired)
{
    set_desired(p, vin, desired, -1);
}

void ota_shadow_set_desired_stored(ota_plugin *p, const char *vin, cJSON *desired, int64_t version)
{
    set_desired(p, vin, desired, version);
}

bool ota_shadow_decision_rec(ota_plugin *p, const char *vin, const cJSON *desired,
                             ota_shadow_rec *rec)
{
    shadow *sh = ota_map_get_str(&p->shadows->map, vin);
    if (sh != NULL) { /* a flush taking it before the decision is set is written after it */
        sh->deciding = true;
        sh->flushed_since = false;
    }
    char *rep = sh && sh->reported ? strdup(sh->reported) : strdup("{}");
    char text[1024]; /* a notice prints in ~250 bytes: no buffer growing in cJSON */
    char *des = cJSON_PrintPreallocated((cJSON *)desired, text, sizeof text, false)
                    ? strdup(text)
                    : cJSON_PrintUnformatted(desired);
    char *v = strdup(vin);
    if (!rep || !des || !v) {
        free(rep);
        free(des);
        free(v);
        return false;
    }
    *rec = (ota_shadow_rec){.vin = v,
                            .version = (sh ? sh->version : 0) + 1,
                            .reported = rep,
                            .desired = des,
                            .updated_ms = ota_now_ms()};
    return true;
}

/* ---------------------------------------------------------------- flush */

/* One flush: the change and everything it points to, owned here. */
typedef struct {
    ota_writer_job job;
    ota_shadows *s;
    ota_catalog_change change;
    ota_shadow_rec *recs; /* texts malloc'd */
    size_t n;
    ota_vehicle_rec *vehicles;
    size_t n_vehicles;
    shadow **shadows; /* for a retry after a failure */
    bool *fw_changed;
} flush_job;

static void flush_job_free(flush_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free((char *)j->recs[i].reported);
        free((char *)j->recs[i].desired);
    }
    for (size_t i = 0; i < j->n_vehicles; i++)
        ota_vehicle_rec_free(&j->vehicles[i]);
    free(j->recs);
    free(j->vehicles);
    free(j->shadows);
    free(j->fw_changed);
    free(j);
}

/* The job's shadows are dirty again (a failed or refused flush). */
static void flush_undo(ota_shadows *s, flush_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        j->shadows[i]->fw_changed |= j->fw_changed[i];
        mark_dirty(s, j->shadows[i]);
    }
}

static int flush_run(ota_store *store, void *arg, char *err, size_t errlen)
{
    flush_job *j = arg;
    return ota_store_apply(store, &j->change, err, errlen);
}

static void flush_done(void *arg, int rc, const char *err)
{
    flush_job *j = arg;
    ota_shadows *s = j->s;
    ota_batch_ended(&s->batch, rc, "shadows", j->n, err);
    if (rc != 0) {
        flush_undo(s, j);
    }
    flush_job_free(j);
}

/* Copies shadow sh into record i of the job. 0, or -1 out of memory. */
static int flush_add(ota_plugin *p, flush_job *j, shadow *sh)
{
    ota_shadow_rec *r = &j->recs[j->n];
    *r = (ota_shadow_rec){.vin = sh->vin, .version = sh->version, .updated_ms = sh->updated_ms};
    r->reported = strdup(sh->reported ? sh->reported : "{}");
    r->desired = sh->desired ? cJSON_PrintUnformatted(sh->desired) : NULL;
    j->shadows[j->n] = sh;
    j->fw_changed[j->n] = sh->fw_changed;
    sh->flushed_since = sh->deciding;
    j->n++; /* owned from here, for flush_job_free */
    if (r->reported == NULL || (sh->desired != NULL && r->desired == NULL))
        return -1;
    const ota_vehicle *v = sh->fw_changed ? ota_catalog_vehicle(p->catalog, sh->vin) : NULL;
    if (v != NULL) {
        if (ota_catalog_vehicle_rec(p->catalog, v, &j->vehicles[j->n_vehicles]) != 0)
            return -1;
        j->n_vehicles++;
    }
    return 0;
}

/* The job for every dirty shadow, or NULL out of memory (they stay dirty). */
static flush_job *flush_build(ota_plugin *p)
{
    ota_shadows *s = p->shadows;
    size_t n = s->n_dirty;
    flush_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->s = s;
    j->recs = calloc(n, sizeof *j->recs);
    j->vehicles = calloc(n, sizeof *j->vehicles);
    j->shadows = calloc(n, sizeof *j->shadows);
    j->fw_changed = calloc(n, sizeof *j->fw_changed);
    bool ok = j->recs && j->vehicles && j->shadows && j->fw_changed;
    for (size_t i = 0; ok && i < n; i++)
        ok = flush_add(p, j, s->dirty[i]) == 0;
    if (!ok) {
        flush_job_free(j);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        s->dirty[i]->dirty = s->dirty[i]->fw_changed = false;
    s->n_dirty = 0;
    j->change = (ota_catalog_change){.put_shadows = j->recs,
                                     .n_put_shadows = j->n,
                                     .put_vehicles = j->vehicles,
                                     .n_put_vehicles = j->n_vehicles};
    j->job = (ota_writer_job){.run = flush_run, .done = flush_done, .arg = j};
    return j;
}

/* Hands the dirty shadows to the writer now. */
static void flush_submit(ota_plugin *p, int64_t now)
{
    ota_shadows *s = p->shadows;
    flush_job *j = flush_build(p);
    if (j == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "ota: shadows not flushed: out of memory");
        ota_batch_later(&s->batch, now);
        return;
    }
    if (ota_writer_submit(p->writer, &j->job) != 0) {
        flush_undo(s, j); /* the writer is stopping */
        ota_batch_later(&s->batch, now);
        flush_job_free(j);
        return;
    }
    ota_batch_started(&s->batch, now);
}

void ota_shadows_flush(ota_plugin *p)
{
    ota_shadows *s = p->shadows;
    int64_t now = ota_mono_ms();
    if (s != NULL && p->writer != NULL && ota_batch_due(&s->batch, s->n_dirty, now))
        flush_submit(p, now);
}

void ota_shadows_flush_final(ota_plugin *p)
{
    ota_shadows *s = p->shadows;
    if (s != NULL && s->n_dirty > 0 && p->writer != NULL)
        flush_submit(p, ota_mono_ms()); /* after the one in flight, if any: jobs run in order */
}

/* ---------------------------------------------------------------- operators */

cJSON *ota_shadow_json(ota_plugin *p, const char *vin)
{
    const shadow *sh = ota_map_get_str(&p->shadows->map, vin);
    cJSON *o = sh ? cJSON_CreateObject() : NULL;
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "version", (double)sh->version);
    cJSON_AddItemToObject(o, "reported", reported_tree(sh));
    cJSON_AddItemToObject(o, "desired",
                          sh->desired ? cJSON_Duplicate(sh->desired, true) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "updated_at", (double)sh->updated_ms);
    return o;
}
