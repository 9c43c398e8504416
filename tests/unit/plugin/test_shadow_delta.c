/*
 * test_shadow_delta.c — cmocka tests of plugin/shadow.c outside the broker: the delta path
 * (ota_shadow_set_desired, which the task engine drives and no vehicle can), the seen-hook
 * the engine registers, the delta after an update, the remembered client id, and the
 * batched persistence through a real writer and SQLite store (one job in flight, at most
 * every 50 ms, reload at start).
 *
 * The few broker functions shadow.c calls (publish, log, properties) and the plugin's reply
 * functions (reply.c) are replaced here by fakes that record what would have been sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <cbor.h>
#include <cjson/cJSON.h>

#include "catalog.h"
#include "cbor_util.h"
#include "ota_plugin.h"
#include "ota_store.h"
#include "shadow.h"
#include "test_util.h"

/* ---------------------------------------------------------------- fakes */

#define MAX_SENT 64

typedef struct {
    char client[64];
    char topic[128]; /* publishes: the topic; replies: the reply name */
    cbor_item_t *msg;
} sent_msg;

static sent_msg g_sent[MAX_SENT];
static size_t g_n_sent;
static ota_err_code g_last_error;

static void record(const char *client, const char *topic, const void *buf, size_t len)
{
    assert_true(g_n_sent < MAX_SENT);
    sent_msg *m = &g_sent[g_n_sent++];
    snprintf(m->client, sizeof m->client, "%s", client ? client : "");
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    struct cbor_load_result res;
    m->msg = cbor_load(buf, len, &res);
    assert_non_null(m->msg);
}

static void sent_clear(void)
{
    for (size_t i = 0; i < g_n_sent; i++)
        cbor_decref(&g_sent[i].msg);
    g_n_sent = 0;
    g_last_error = OTA_OK;
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties)
{
    assert_int_equal(qos, 1);
    assert_false(retain);
    (void)properties;
    record(clientid, topic, payload, (size_t)payloadlen);
    return MOSQ_ERR_SUCCESS;
}

void mosquitto_log_printf(int level, const char *fmt, ...)
{
    (void)level, (void)fmt;
}

int mosquitto_property_add_string(mosquitto_property **proplist, int identifier, const char *value)
{
    (void)proplist, (void)identifier, (void)value;
    return MOSQ_ERR_SUCCESS;
}

void mosquitto_property_free_all(mosquitto_property **properties)
{
    *properties = NULL;
}

void ota_reply_cbor(const ota_request *req, const char *name, uint8_t *buf, size_t len)
{
    record(req->client_id, name, buf, len);
    free(buf);
}

void ota_reply_error(ota_plugin *p, const ota_request *req, const ota_error *e, int64_t seq)
{
    (void)p, (void)req, (void)seq;
    g_last_error = e->code;
}

int64_t ota_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- helpers */

#define VIN "LSVTA000000000001"

static ota_plugin *plugin_new(void)
{
    ota_plugin *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->catalog = ota_catalog_new();
    p->shadows = ota_shadows_new();
    assert_non_null(p->catalog);
    assert_non_null(p->shadows);
    return p;
}

static void plugin_free(ota_plugin *p)
{
    ota_shadows_free(p->shadows);
    ota_catalog_free(p->catalog);
    free(p);
    sent_clear();
}

/* Sends a request (JSON text, sent as CBOR) from client_id as vehicle VIN. */
static int request(ota_plugin *p, const char *client_id, const char *name, const char *json)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    size_t len = 0;
    uint8_t *buf = ota_codec_json_to_cbor(j, &len);
    cJSON_Delete(j);
    assert_non_null(buf);
    ota_request req = {
        .client_id = client_id, .vin = VIN, .topic = name, .payload = buf, .payloadlen = len};
    int rc = strcmp(name, "shadow/update") == 0 ? ota_handle_shadow_update(p, &req)
                                                : ota_handle_shadow_get(p, &req);
    free(buf);
    assert_int_equal(rc, MOSQ_ERR_SUCCESS);
    return rc;
}

static uint64_t uint_field(const cbor_item_t *m, const char *key)
{
    const cbor_item_t *v = ota_cbor_map_find(m, key);
    assert_non_null(v);
    assert_true(cbor_isa_uint(v));
    return cbor_get_int(v);
}

static void assert_text_field(const cbor_item_t *m, const char *key, const char *want)
{
    const cbor_item_t *v = ota_cbor_map_find(m, key);
    assert_non_null(v);
    assert_true(cbor_isa_string(v));
    assert_int_equal(cbor_string_length(v), strlen(want));
    assert_memory_equal(cbor_string_handle(v), want, strlen(want));
}

/* Checks message i: to client, on topic, with this version; returns its map. */
static const cbor_item_t *expect_sent(size_t i, const char *client, const char *topic,
                                      uint64_t version)
{
    assert_true(i < g_n_sent);
    assert_string_equal(g_sent[i].client, client);
    assert_string_equal(g_sent[i].topic, topic);
    assert_int_equal(uint_field(g_sent[i].msg, "version"), version);
    return g_sent[i].msg;
}

static cJSON *task_notice(const char *task)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"task\":{\"task\":\"%s\",\"vin\":\"%s\",\"package\":7,\"version\":\"4.0\","
             "\"upgrade_type\":\"normal\",\"msg_id\":\"%s:%s:0\"}}",
             task, VIN, task, VIN);
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    return j;
}

#define DELTA_TOPIC "ota/v1/" VIN "/shadow/delta"
#define UPDATE "{\"reported\":{\"fw\":\"1.0\",\"state\":\"idle\",\"ecus\":{\"BMS\":\"1\"}}}"

/* ---------------------------------------------------------------- delta path */

/* The seen-hook (what the task engine registers): called after each answered
 * shadow/update and shadow/get, with the VIN; a malformed request is not a sighting. */
static char g_seen_vin[OTA_VIN_LEN + 1];
static size_t g_seen, g_seen_sent; /* calls; messages already sent at the last call */

static void on_seen(void *ctx, const char *vin)
{
    assert_ptr_equal(ctx, &g_seen);
    snprintf(g_seen_vin, sizeof g_seen_vin, "%s", vin);
    g_seen++;
    g_seen_sent = g_n_sent;
}

static void test_seen_hook(void **state)
{
    (void)state;
    ota_plugin *p = plugin_new();
    g_seen = 0;
    request(p, "car-cid", "shadow/update", UPDATE); /* no hook yet: nothing to call */
    ota_shadows_on_seen(p->shadows, on_seen, &g_seen);
    request(p, "car-cid", "shadow/update", UPDATE);
    assert_int_equal(g_seen, 1);
    assert_string_equal(g_seen_vin, VIN);
    assert_int_equal(g_seen_sent, g_n_sent); /* after the answer */
    request(p, "car-cid", "shadow/get", "{}");
    assert_int_equal(g_seen, 2);
    request(p, "car-cid", "shadow/update", "{\"reported\":7}");
    assert_int_equal(g_last_error, OTA_E_BAD_REQUEST);
    assert_int_equal(g_seen, 2);
    ota_shadows_on_seen(p->shadows, NULL, NULL); /* removed */
    request(p, "car-cid", "shadow/get", "{}");
    assert_int_equal(g_seen, 2);
    plugin_free(p);
}

static void test_desired_reaches_vehicle(void **state)
{
    (void)state;
    ota_plugin *p = plugin_new();
    /* never seen: nothing published, the version moves */
    ota_shadow_set_desired(p, VIN, task_notice("T-1"));
    assert_int_equal(g_n_sent, 0);
    /* its next update: accepted, then the delta, both to the client id it used */
    request(p, "car-cid", "shadow/update", UPDATE);
    assert_int_equal(g_n_sent, 2);
    expect_sent(0, "car-cid", "shadow/accepted", 2);
    const cbor_item_t *d = expect_sent(1, "car-cid", DELTA_TOPIC, 2);
    const cbor_item_t *task = ota_cbor_map_find(ota_cbor_map_find(d, "desired"), "task");
    assert_text_field(task, "task", "T-1");
    assert_text_field(task, "msg_id", "T-1:" VIN ":0");
    assert_int_equal(uint_field(task, "package"), 7);
    sent_clear();
    /* seen: a new desired state is published at once */
    ota_shadow_set_desired(p, VIN, cJSON_Parse("{\"task\":null,\"cancel\":\"T-1\"}"));
    assert_int_equal(g_n_sent, 1);
    d = expect_sent(0, "car-cid", DELTA_TOPIC, 3);
    const cbor_item_t *desired = ota_cbor_map_find(d, "desired");
    assert_true(cbor_is_null(ota_cbor_map_find(desired, "task")));
    assert_text_field(desired, "cancel", "T-1");
    sent_clear();
    /* get: the state with desired */
    request(p, "car-cid", "shadow/get", "{\"token\":\"g\"}");
    assert_int_equal(g_n_sent, 1);
    const cbor_item_t *st = expect_sent(0, "car-cid", "shadow/state", 3);
    assert_text_field(ota_cbor_map_find(st, "reported"), "fw", "1.0");
    assert_text_field(ota_cbor_map_find(st, "desired"), "cancel", "T-1");
    assert_text_field(st, "token", "g");
    sent_clear();
    /* cleared: an empty delta, and no more deltas after updates */
    ota_shadow_set_desired(p, VIN, NULL);
    assert_int_equal(g_n_sent, 1);
    d = expect_sent(0, "car-cid", DELTA_TOPIC, 4);
    assert_int_equal(cbor_map_size(ota_cbor_map_find(d, "desired")), 0);
    sent_clear();
    request(p, "car-cid", "shadow/update", UPDATE);
    assert_int_equal(g_n_sent, 1);
    expect_sent(0, "car-cid", "shadow/accepted", 5);
    sent_clear();
    /* an empty object is no desired state either */
    ota_shadow_set_desired(p, VIN, cJSON_CreateObject());
    sent_clear();
    request(p, "car-cid", "shadow/update", UPDATE);
    assert_int_equal(g_n_sent, 1);
    /* not an object: refused, nothing changes */
    sent_clear();
    ota_shadow_set_desired(p, VIN, cJSON_CreateString("x"));
    assert_int_equal(g_n_sent, 0);
    plugin_free(p);
}

static void test_client_id_follows_vehicle(void **state)
{
    (void)state;
    ota_plugin *p = plugin_new();
    request(p, "first", "shadow/get", "{}");
    expect_sent(0, "first", "shadow/state", 0);
    sent_clear();
    ota_shadow_set_desired(p, VIN, task_notice("T-2"));
    expect_sent(0, "first", DELTA_TOPIC, 1);
    sent_clear();
    request(p, VIN, "shadow/get", "{}"); /* reconnected with the VIN as client id */
    sent_clear();
    ota_shadow_set_desired(p, VIN, task_notice("T-3"));
    expect_sent(0, VIN, DELTA_TOPIC, 2);
    sent_clear();
    request(p, "third", "shadow/update", UPDATE);
    expect_sent(0, "third", "shadow/accepted", 3);
    expect_sent(1, "third", DELTA_TOPIC, 3);
    /* a rejected request answers an error and changes nothing */
    sent_clear();
    request(p, "fourth", "shadow/update", "{\"reported\":{\"fw\":1}}");
    assert_int_equal(g_last_error, OTA_E_BAD_REQUEST);
    assert_int_equal(g_n_sent, 0);
    ota_shadow_set_desired(p, VIN, task_notice("T-4"));
    expect_sent(0, "third", DELTA_TOPIC, 4);
    plugin_free(p);
}

/* ---------------------------------------------------------------- persistence */

typedef struct {
    int64_t version;
    char reported[512];
    char desired[512];
    int n;
} loaded;

static int load_fn(void *ctx, const ota_shadow_rec *s)
{
    loaded *l = ctx;
    if (strcmp(s->vin, VIN) == 0) {
        l->version = s->version;
        snprintf(l->reported, sizeof l->reported, "%s", s->reported);
        snprintf(l->desired, sizeof l->desired, "%s", s->desired ? s->desired : "");
    }
    l->n++;
    return 0;
}

static loaded load_store(ota_store *s)
{
    loaded l = {.version = -1};
    assert_int_equal(ota_store_load_shadows(s, load_fn, &l), 0);
    return l;
}

/* Lets the writer run the flush job and calls its done(). */
static void settle(ota_plugin *p)
{
    assert_true(ota_writer_jobs_idle(p->writer, 5000));
    ota_writer_poll_done(p->writer);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A plugin whose writer stores into db (its spool in *spool). */
static ota_plugin *plugin_with_writer(test_db *db, ota_spool **spool)
{
    char err[256] = "";
    ota_spool_config sc = {.dir = test_fresh_dir("spool"), .sync_ms = 5};
    *spool = ota_spool_open(&sc, err, sizeof err);
    assert_non_null(*spool);
    ota_writer_config wc = {0};
    ota_plugin *p = plugin_new();
    p->writer = ota_writer_start(*spool, test_store_open(db->uri), &wc, err, sizeof err);
    assert_non_null(p->writer);
    return p;
}

static void test_flush_batches_and_reloads(void **state)
{
    test_db *db = *state;
    ota_spool *spool;
    ota_plugin *p = plugin_with_writer(db, &spool);
    ota_vehicle_rec v = {.vin = strdup(VIN),
                         .model = strdup("L9"),
                         .series = strdup("2024"),
                         .status = strdup("sold"),
                         .usage = strdup("retail"),
                         .fw = strdup("0.9")};
    assert_int_equal(ota_catalog_put_vehicle(p->catalog, &v), 0);

    request(p, VIN, "shadow/update", UPDATE); /* fw 1.0: the catalog follows */
    assert_string_equal(ota_catalog_vehicle(p->catalog, VIN)->fw, "1.0");
    ota_shadow_set_desired(p, VIN, task_notice("T-9"));
    assert_int_equal(load_store(db->s).n, 0); /* nothing before a flush */
    uint64_t flushed_at = test_now_ms();
    ota_shadows_flush(p);
    request(p, VIN, "shadow/update", UPDATE); /* version 3, while the flush is in flight */
    ota_shadows_flush(p);                     /* in flight or too soon: nothing */
    settle(p);
    loaded l = load_store(db->s);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.version, 2);
    assert_non_null(strstr(l.reported, "\"fw\":\"1.0\""));
    assert_non_null(strstr(l.desired, "\"task\":\"T-9\""));
    assert_int_equal(test_sql_int(db->path, "SELECT COUNT(*) FROM ota_vehicle WHERE vin = '" VIN
                                            "' AND fw = '1.0'"),
                     1);
    if (test_now_ms() - flushed_at < 40) { /* (a slow disk may have taken longer) */
        ota_shadows_flush(p);              /* within 50 ms of the last flush: still nothing */
        settle(p);
        assert_int_equal(load_store(db->s).version, 2);
    }
    sleep_ms(60);
    ota_shadows_flush(p);
    settle(p);
    assert_int_equal(load_store(db->s).version, 3);

    /* changes not yet flushed are handed over by the final flush at cleanup */
    ota_shadow_set_desired(p, VIN, NULL);
    ota_shadows_flush_final(p);
    ota_writer_stop(p->writer);
    p->writer = NULL;
    ota_spool_close(spool);
    l = load_store(db->s);
    assert_int_equal(l.version, 4);
    assert_string_equal(l.desired, "");

    /* a new plugin loads the shadows */
    plugin_free(p);
    p = plugin_new();
    char err[256] = "";
    assert_int_equal(ota_shadows_load(p->shadows, db->s, err, sizeof err), 0);
    request(p, "c", "shadow/get", "{}");
    const cbor_item_t *st = expect_sent(0, "c", "shadow/state", 4);
    assert_text_field(ota_cbor_map_find(st, "reported"), "state", "idle");
    assert_int_equal(cbor_map_size(ota_cbor_map_find(st, "desired")), 0);
    plugin_free(p);
}

static void rec_free(ota_shadow_rec *rec)
{
    free((char *)rec->vin);
    free((char *)rec->reported);
    free((char *)rec->desired);
}

/* A notice decision stores the shadow's next version itself (ota_shadow_decision_rec):
 * setting it as stored writes nothing again, unless the shadow changed meanwhile or a flush
 * took it after the decision was made (then the next flush writes the state with desired). */
static void test_stored_decision_not_written_again(void **state)
{
    test_db *db = *state;
    ota_spool *spool;
    ota_plugin *p = plugin_with_writer(db, &spool);
    request(p, VIN, "shadow/update", UPDATE); /* version 1 */
    ota_shadows_flush(p);
    settle(p);
    assert_int_equal(load_store(db->s).version, 1);

    cJSON *notice = task_notice("T-1");
    ota_shadow_rec rec;
    assert_true(ota_shadow_decision_rec(p, VIN, notice, &rec));
    assert_int_equal(rec.version, 2);
    assert_non_null(strstr(rec.desired, "\"task\":\"T-1\""));
    rec_free(&rec);
    size_t before = g_n_sent;
    ota_shadow_set_desired_stored(p, VIN, notice, 2);
    expect_sent(before, VIN, DELTA_TOPIC, 2); /* the delta goes out as before */
    sleep_ms(60);
    ota_shadows_flush(p);
    settle(p);
    assert_int_equal(load_store(db->s).version, 1); /* the decision's write is the one */

    cJSON *next = task_notice("T-2");
    assert_true(ota_shadow_decision_rec(p, VIN, next, &rec)); /* version 3 */
    assert_int_equal(rec.version, 3);
    rec_free(&rec);
    request(p, VIN, "shadow/update", UPDATE); /* version 3 meanwhile */
    ota_shadow_set_desired_stored(p, VIN, next, 3);
    sleep_ms(60);
    ota_shadows_flush(p);
    settle(p);
    loaded l = load_store(db->s);
    assert_int_equal(l.version, 4);
    assert_non_null(strstr(l.desired, "\"task\":\"T-2\""));

    /* a flush submitted after the decision (the update's version 5, without T-3) lands
     * after the decision's version 6 in the store: the set rewrites 6 */
    request(p, VIN, "shadow/update", UPDATE); /* version 5, dirty */
    next = task_notice("T-3");
    assert_true(ota_shadow_decision_rec(p, VIN, next, &rec)); /* version 6 */
    rec_free(&rec);
    sleep_ms(60);
    ota_shadows_flush(p);
    settle(p);
    assert_int_equal(load_store(db->s).version, 5);
    ota_shadow_set_desired_stored(p, VIN, next, 6);
    sleep_ms(60);
    ota_shadows_flush(p);
    settle(p);
    l = load_store(db->s);
    assert_int_equal(l.version, 6);
    assert_non_null(strstr(l.desired, "\"task\":\"T-3\""));
    ota_writer_stop(p->writer);
    p->writer = NULL;
    ota_spool_close(spool);
    plugin_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desired_reaches_vehicle),
        cmocka_unit_test(test_seen_hook),
        cmocka_unit_test(test_client_id_follows_vehicle),
        cmocka_unit_test_setup_teardown(test_stored_decision_not_written_again, test_db_setup,
                                        test_db_teardown),
        cmocka_unit_test_setup_teardown(test_flush_batches_and_reloads, test_db_setup,
                                        test_db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
