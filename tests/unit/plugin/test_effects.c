/*
 * test_effects.c — cmocka tests of plugin/effects.c outside the broker: for each
 * downstream event (ops_alert, work_order, log_replay, compensation, push) the condition
 * true and false clause by clause, the payload fields, compensation counting against
 * max_resend, the plugin_opt_log_replay_errors list (default, custom, "none", bad values:
 * plugin/config.c is compiled in too), statuses that are not failures, and a vehicle that
 * is not in the catalog.
 *
 * The broker functions effects.c calls (publish, properties, log) are replaced by fakes that
 * record every publish: client id, topic, QoS, retain, content type and the parsed JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <mqtt_protocol.h>

#include "effects.h"
#include "ota_plugin.h"

/* ---------------------------------------------------------------- fakes */

/* mosquitto_property is opaque to plugins; the fake gives it a body. */
struct mqtt5__property {
    int identifier;
    char *value;
};

#define MAX_SENT 16

typedef struct {
    bool client_null;
    char topic[128];
    int qos;
    bool retain;
    char content_type[64];
    char payload[1024];
    cJSON *json;
} sent_msg;

static sent_msg g_sent[MAX_SENT];
static size_t g_n_sent;
static int g_publish_rc; /* what the fake publish returns */
static int g_n_logs;

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties)
{
    if (g_publish_rc != MOSQ_ERR_SUCCESS) {
        return g_publish_rc; /* the caller keeps the properties */
    }
    assert_true(g_n_sent < MAX_SENT);
    sent_msg *m = &g_sent[g_n_sent++];
    m->client_null = clientid == NULL;
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->qos = qos;
    m->retain = retain;
    m->content_type[0] = '\0';
    if (properties && properties->identifier == MQTT_PROP_CONTENT_TYPE) {
        snprintf(m->content_type, sizeof m->content_type, "%s", properties->value);
    }
    assert_true((size_t)payloadlen < sizeof m->payload);
    memcpy(m->payload, payload, (size_t)payloadlen);
    m->payload[payloadlen] = '\0';
    m->json = cJSON_ParseWithLength(payload, (size_t)payloadlen);
    assert_non_null(m->json);
    mosquitto_property_free_all(&properties); /* the broker owns them now */
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_property_add_string(mosquitto_property **proplist, int identifier, const char *value)
{
    assert_null(*proplist); /* effects.c adds exactly one property */
    mosquitto_property *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->identifier = identifier;
    p->value = strdup(value);
    *proplist = p;
    return MOSQ_ERR_SUCCESS;
}

void mosquitto_property_free_all(mosquitto_property **properties)
{
    if (*properties) {
        free((*properties)->value);
        free(*properties);
    }
    *properties = NULL;
}

void mosquitto_log_printf(int level, const char *fmt, ...)
{
    (void)level, (void)fmt;
    g_n_logs++;
}

/* ---------------------------------------------------------------- helpers */

#define VIN "LSVTA000000000001"
#define TASK "task-1"
#define TS 1700000000000LL

static ota_plugin g_p;

static void sent_clear(void)
{
    for (size_t i = 0; i < g_n_sent; i++) {
        cJSON_Delete(g_sent[i].json);
    }
    g_n_sent = 0;
    g_publish_rc = MOSQ_ERR_SUCCESS;
    g_n_logs = 0;
}

static void config_with(const char *log_replay_errors)
{
    ota_config_free(&g_p.cfg);
    char err[256];
    struct mosquitto_opt opt = {.key = "log_replay_errors", .value = (char *)log_replay_errors};
    assert_int_equal(ota_config_parse(&g_p.cfg, &opt, log_replay_errors ? 1 : 0, err, sizeof err),
                     0);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_p, 0, sizeof g_p);
    config_with(NULL); /* defaults */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sent_clear();
    ota_config_free(&g_p.cfg);
    return 0;
}

/* A sold, activated passenger car: every vehicle clause holds. */
static ota_vehicle vehicle_all(void)
{
    ota_vehicle v = {.vin = VIN, .model = "M1", .series = "S1"};
    v.sold = v.activated = v.passenger = true;
    return v;
}

static ota_event status_ev(const char *status, const char *error, const char *trigger)
{
    ota_event ev = {
        .type = OTA_EV_UPGRADE_STATUS, .task = TASK, .ts = TS, .pct = -1, .bytes = -1, .at = -1};
    ev.status = status;
    ev.error = error;
    ev.trigger = trigger;
    ev.fw = "2.0.9";
    return ev;
}

static ota_effect_ctx ctx(const ota_vehicle *v, const ota_event *ev)
{
    ota_effect_ctx cx = {.vin = VIN,
                         .vehicle = v,
                         .ev = ev,
                         .task_id = TASK,
                         .task_type = OTA_TASK_NORMAL,
                         .resends = 0,
                         .max_resend = 3};
    return cx;
}

static bool run(const ota_vehicle *v, const char *status, const char *error, const char *trigger)
{
    sent_clear();
    ota_event ev = status_ev(status, error, trigger);
    ota_effect_ctx cx = ctx(v, &ev);
    return ota_effects_on_status(&g_p, &cx);
}

/* The message published on ota/v1/events/{kind}/VIN, or NULL. */
static const cJSON *sent_kind(const char *kind)
{
    char topic[128];
    snprintf(topic, sizeof topic, "ota/v1/events/%s/%s", kind, VIN);
    for (size_t i = 0; i < g_n_sent; i++) {
        if (strcmp(g_sent[i].topic, topic) == 0) {
            return g_sent[i].json;
        }
    }
    return NULL;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(f);
    assert_true(cJSON_IsString(f));
    return f->valuestring;
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(f);
    assert_true(cJSON_IsNumber(f));
    return f->valuedouble;
}

static bool has_field(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key) != NULL;
}

static void assert_common(const cJSON *o, const char *error)
{
    assert_string_equal(str_field(o, "vin"), VIN);
    assert_string_equal(str_field(o, "task"), TASK);
    if (error) {
        assert_string_equal(str_field(o, "error"), error);
    } else {
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "error")));
    }
    assert_true(num_field(o, "ts") == (double)TS);
}

/* ---------------------------------------------------------------- failure */

static void test_is_failure(void **state)
{
    (void)state;
    const char *errors[] = {"download_failed", "prepare_failed",     "upgrade_failed",
                            "rollback_failed", "rollback_succeeded", "peripheral_failed"};
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        ota_event ev = status_ev("upgrading", errors[i], "normal");
        assert_true(ota_effects_is_failure(&ev));
    }
    ota_event failed = status_ev("failed", NULL, "normal");
    assert_true(ota_effects_is_failure(&failed));
    ota_event other = status_ev("upgrading", "disk_full", "normal");
    assert_false(ota_effects_is_failure(&other));
    ota_event ok = status_ev("succeeded", NULL, "normal");
    assert_false(ota_effects_is_failure(&ok));
    ota_event upper = status_ev("waiting", "UPGRADE_FAILED", "normal"); /* exact words */
    assert_false(ota_effects_is_failure(&upper));
}

/* Every event goes to admins: client id NULL, QoS 1, not retained, JSON content type. */
static void test_publish_properties(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    run(&v, "failed", "upgrade_failed", "forced");
    assert_int_equal(g_n_sent, 4); /* ops_alert, work_order, log_replay, push */
    for (size_t i = 0; i < g_n_sent; i++) {
        assert_true(g_sent[i].client_null);
        assert_int_equal(g_sent[i].qos, 1);
        assert_false(g_sent[i].retain);
        assert_string_equal(g_sent[i].content_type, "application/json");
    }
}

/* A refused publish frees the properties (ASan would see the leak) and is logged. */
/* Every effect of a status event carries the status event's id, first; without one none. */
static void test_effects_carry_the_status_event_id(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    sent_clear();
    ota_event ev = status_ev("failed", "upgrade_failed", "forced");
    ev.id = VIN ":42:0:0";
    ota_effect_ctx cx = ctx(&v, &ev);
    ota_effects_on_status(&g_p, &cx);
    assert_int_equal(g_n_sent, 4); /* ops_alert, work_order, log_replay, push */
    for (size_t i = 0; i < g_n_sent; i++) {
        const cJSON *first = g_sent[i].json->child;
        assert_string_equal(first->string, "id");
        assert_string_equal(first->valuestring, VIN ":42:0:0");
    }
    run(&v, "failed", "upgrade_failed", "forced");
    assert_null(cJSON_GetObjectItemCaseSensitive(sent_kind("push"), "id"));
}

static void test_publish_refused(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    sent_clear();
    g_publish_rc = MOSQ_ERR_NOMEM;
    ota_event ev = status_ev("failed", "upgrade_failed", "forced");
    ota_effect_ctx cx = ctx(&v, &ev);
    assert_false(ota_effects_on_status(&g_p, &cx));
    assert_int_equal(g_n_sent, 0);
    assert_int_equal(g_n_logs, 4);
}

/* ---------------------------------------------------------------- ops_alert */

static void test_ops_alert(void **state)
{
    (void)state;
    run(NULL, "failed", "download_failed", "normal");
    const cJSON *o = sent_kind("ops_alert");
    assert_non_null(o);
    assert_common(o, "download_failed");
    assert_string_equal(str_field(o, "status"), "failed");
    assert_string_equal(str_field(o, "trigger"), "normal");
    assert_string_equal(str_field(o, "fw"), "2.0.9");
    assert_string_equal(str_field(o, "recipient"), "ota_ops_assistant");

    run(NULL, "failed", NULL, "factory"); /* status failed, no error word */
    o = sent_kind("ops_alert");
    assert_non_null(o);
    assert_common(o, NULL);

    run(NULL, "rolling_back", "rollback_succeeded", "spot_check"); /* error word alone */
    assert_non_null(sent_kind("ops_alert"));

    run(NULL, "failed", "upgrade_failed", "diagnostic"); /* ADI: no alert */
    assert_null(sent_kind("ops_alert"));

    run(NULL, "upgrading", "disk_full", "normal"); /* not a failure */
    assert_null(sent_kind("ops_alert"));
}

/* ---------------------------------------------------------------- work_order */

static void test_work_order(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    run(&v, "failed", "peripheral_failed", "forced");
    const cJSON *o = sent_kind("work_order");
    assert_non_null(o);
    assert_common(o, "peripheral_failed");
    assert_string_equal(str_field(o, "group"), "ota_upgrade_failure");
    assert_string_equal(str_field(o, "status"), "failed");
    assert_string_equal(str_field(o, "trigger"), "forced");
    assert_string_equal(str_field(o, "model"), "M1");
    assert_string_equal(str_field(o, "series"), "S1");

    const char *errors[] = {"upgrade_failed", "rollback_failed", "rollback_succeeded",
                            "peripheral_failed"};
    for (size_t i = 0; i < 4; i++) {
        run(&v, "failed", errors[i], "normal");
        assert_non_null(sent_kind("work_order"));
    }
    /* error not in the list (the two compensation errors, another word, none) */
    run(&v, "failed", "download_failed", "normal");
    assert_null(sent_kind("work_order"));
    run(&v, "failed", "prepare_failed", "normal");
    assert_null(sent_kind("work_order"));
    run(&v, "failed", NULL, "normal");
    assert_null(sent_kind("work_order"));
    /* trigger not forced/normal */
    const char *triggers[] = {"factory", "spot_check", "diagnostic"};
    for (size_t i = 0; i < 3; i++) {
        run(&v, "failed", "upgrade_failed", triggers[i]);
        assert_null(sent_kind("work_order"));
    }
    /* not sold / not activated / not in the catalog */
    ota_vehicle unsold = vehicle_all();
    unsold.sold = false;
    run(&unsold, "failed", "upgrade_failed", "normal");
    assert_null(sent_kind("work_order"));
    ota_vehicle inactive = vehicle_all();
    inactive.activated = false;
    run(&inactive, "failed", "upgrade_failed", "normal");
    assert_null(sent_kind("work_order"));
    run(NULL, "failed", "upgrade_failed", "normal");
    assert_null(sent_kind("work_order"));
    /* a commercial vehicle still gets its work order */
    ota_vehicle truck = vehicle_all();
    truck.passenger = false;
    run(&truck, "failed", "upgrade_failed", "normal");
    assert_non_null(sent_kind("work_order"));
}

/* ---------------------------------------------------------------- log_replay */

static void test_log_replay_default(void **state)
{
    (void)state;
    assert_string_equal(g_p.cfg.log_replay_errors,
                        "upgrade_failed,rollback_failed,peripheral_failed");
    run(NULL, "failed", "rollback_failed", "diagnostic"); /* any vehicle, any trigger */
    const cJSON *o = sent_kind("log_replay");
    assert_non_null(o);
    assert_common(o, "rollback_failed");
    assert_string_equal(str_field(o, "service"), "ssp-vds-service");
    assert_true(num_field(o, "to") == (double)TS);
    assert_true(num_field(o, "from") == (double)(TS - 30 * 60 * 1000));
    assert_true(num_field(o, "window_ms") == 30.0 * 60 * 1000);

    run(NULL, "failed", "upgrade_failed", "normal");
    assert_non_null(sent_kind("log_replay"));
    run(NULL, "failed", "peripheral_failed", "normal");
    assert_non_null(sent_kind("log_replay"));
    const char *not_listed[] = {"download_failed", "prepare_failed", "rollback_succeeded"};
    for (size_t i = 0; i < 3; i++) {
        run(NULL, "failed", not_listed[i], "normal");
        assert_null(sent_kind("log_replay"));
    }
    run(NULL, "failed", NULL, "normal");
    assert_null(sent_kind("log_replay"));
    run(NULL, "failed", "upgrade", "normal"); /* a prefix of a listed word */
    assert_null(sent_kind("log_replay"));
    run(NULL, "failed", "upgrade_failed_x", "normal");
    assert_null(sent_kind("log_replay"));
}

static void test_log_replay_configured(void **state)
{
    (void)state;
    config_with(" download_failed , disk_full ");
    assert_string_equal(g_p.cfg.log_replay_errors, "download_failed,disk_full");
    run(NULL, "failed", "download_failed", "normal");
    assert_non_null(sent_kind("log_replay"));
    run(NULL, "upgrading", "disk_full", "normal"); /* not a failure, still listed */
    assert_non_null(sent_kind("log_replay"));
    assert_int_equal(g_n_sent, 1);
    run(NULL, "failed", "upgrade_failed", "normal"); /* the default is replaced */
    assert_null(sent_kind("log_replay"));

    config_with("none");
    assert_string_equal(g_p.cfg.log_replay_errors, "");
    run(NULL, "failed", "upgrade_failed", "normal");
    assert_null(sent_kind("log_replay"));

    /* an early ts: the window starts at 0 */
    config_with("upgrade_failed");
    sent_clear();
    ota_event ev = status_ev("failed", "upgrade_failed", "normal");
    ev.ts = 1000;
    ota_effect_ctx cx = ctx(NULL, &ev);
    ota_effects_on_status(&g_p, &cx);
    const cJSON *o = sent_kind("log_replay");
    assert_non_null(o);
    assert_true(num_field(o, "from") == 0.0);
    assert_true(num_field(o, "window_ms") == 1000.0);
}

static void test_log_replay_bad_option(void **state)
{
    (void)state;
    const char *bad[] = {
        "",     " ",
        "a,,b", "a, ,b",
        "a b",  ",",
        "a,",   ",a",
        "a\tb", "x12345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ota_config cfg;
        char err[256] = "";
        struct mosquitto_opt opt = {.key = "log_replay_errors", .value = (char *)bad[i]};
        if (ota_config_parse(&cfg, &opt, 1, err, sizeof err) != -1) {
            fail_msg("plugin_opt_log_replay_errors \"%s\" accepted", bad[i]);
        }
        assert_non_null(strstr(err, "plugin_opt_log_replay_errors"));
    }
}

/* Times are printed as exact integers, also beyond 2^53 (no double rounding). */
static void test_exact_integers(void **state)
{
    (void)state;
    sent_clear();
    ota_event ev = status_ev("failed", "upgrade_failed", "normal");
    ev.ts = 9007199254740993LL; /* 2^53 + 1 */
    ota_effect_ctx cx = ctx(NULL, &ev);
    ota_effects_on_status(&g_p, &cx);
    assert_int_equal(g_n_sent, 2);
    for (size_t i = 0; i < g_n_sent; i++) {
        assert_non_null(strstr(g_sent[i].payload, "\"ts\":9007199254740993"));
    }
    assert_non_null(strstr(g_sent[1].payload, "\"from\":9007199252940993,"));
    assert_non_null(strstr(g_sent[1].payload, "\"window_ms\":1800000"));
}

/* ---------------------------------------------------------------- compensation */

static void test_compensation_resend(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    sent_clear();
    ota_event ev = status_ev("failed", "download_failed", "normal");
    ota_effect_ctx cx = ctx(&v, &ev);
    cx.max_resend = 2;
    for (uint32_t r = 0; r < 2; r++) { /* the engine counts each re-send */
        sent_clear();
        cx.resends = r;
        assert_true(ota_effects_on_status(&g_p, &cx));
        const cJSON *o = sent_kind("compensation");
        assert_non_null(o);
        assert_common(o, "download_failed");
        assert_string_equal(str_field(o, "action"), "resend");
        assert_true(num_field(o, "resend") == r + 1.0);
        assert_true(num_field(o, "max_resend") == 2.0);
        assert_false(has_field(o, "reason"));
    }
    sent_clear();
    cx.resends = 2;
    assert_false(ota_effects_on_status(&g_p, &cx));
    const cJSON *o = sent_kind("compensation");
    assert_non_null(o);
    assert_string_equal(str_field(o, "action"), "none");
    assert_string_equal(str_field(o, "reason"), "resend limit reached");
    assert_true(num_field(o, "resend") == 2.0);

    sent_clear();
    cx.resends = 0;
    cx.max_resend = 0; /* a task that allows no re-send */
    assert_false(ota_effects_on_status(&g_p, &cx));
    assert_string_equal(str_field(sent_kind("compensation"), "reason"), "resend limit reached");
}

static void test_compensation_no_task(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    sent_clear();
    ota_event ev = status_ev("failed", "prepare_failed", "forced");
    ota_effect_ctx cx = ctx(&v, &ev);
    cx.task_id = NULL;
    cx.task_type = -1;
    assert_false(ota_effects_on_status(&g_p, &cx));
    const cJSON *o = sent_kind("compensation");
    assert_non_null(o);
    assert_string_equal(str_field(o, "action"), "none");
    assert_string_equal(str_field(o, "reason"), "no task");
    assert_string_equal(str_field(o, "task"), TASK); /* the event's own task text */
}

static void test_compensation_conditions(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    assert_true(run(&v, "failed", "prepare_failed", "spot_check"));
    assert_non_null(sent_kind("compensation"));
    assert_true(run(&v, "downloading", "download_failed", "diagnostic")); /* any trigger */

    ota_vehicle unsold = vehicle_all(); /* sold is not a clause */
    unsold.sold = false;
    assert_true(run(&unsold, "failed", "download_failed", "normal"));

    ota_vehicle inactive = vehicle_all();
    inactive.activated = false;
    assert_false(run(&inactive, "failed", "download_failed", "normal"));
    assert_null(sent_kind("compensation"));
    ota_vehicle truck = vehicle_all();
    truck.passenger = false;
    assert_false(run(&truck, "failed", "download_failed", "normal"));
    assert_null(sent_kind("compensation"));
    assert_false(run(NULL, "failed", "download_failed", "normal"));
    assert_null(sent_kind("compensation"));
    const char *other[] = {"upgrade_failed", "rollback_failed", "rollback_succeeded",
                           "peripheral_failed", NULL};
    for (size_t i = 0; i < 5; i++) {
        assert_false(run(&v, "failed", other[i], "normal"));
        assert_null(sent_kind("compensation"));
    }
}

/* ---------------------------------------------------------------- push */

static void test_push(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    run(&v, "succeeded", NULL, "normal");
    assert_int_equal(g_n_sent, 1); /* a success sets off nothing else */
    const cJSON *o = sent_kind("push");
    assert_non_null(o);
    assert_common(o, NULL);
    assert_string_equal(str_field(o, "kind"), "upgrade_succeeded");
    assert_string_equal(str_field(o, "fw"), "2.0.9");

    run(&v, "failed", "upgrade_failed", "diagnostic");
    o = sent_kind("push");
    assert_non_null(o);
    assert_common(o, "upgrade_failed");
    assert_string_equal(str_field(o, "kind"), "upgrade_failed");

    /* a failure word wins over a succeeded status */
    run(&v, "succeeded", "rollback_succeeded", "normal");
    assert_string_equal(str_field(sent_kind("push"), "kind"), "upgrade_failed");

    /* sold is the only vehicle clause (an owner exists) */
    ota_vehicle only_sold = {.vin = VIN, .sold = true};
    run(&only_sold, "succeeded", NULL, "factory");
    assert_non_null(sent_kind("push"));
    ota_vehicle unsold = vehicle_all();
    unsold.sold = false;
    run(&unsold, "succeeded", NULL, "normal");
    assert_int_equal(g_n_sent, 0);
    run(&unsold, "failed", "upgrade_failed", "normal");
    assert_null(sent_kind("push"));
    run(NULL, "succeeded", NULL, "normal");
    assert_int_equal(g_n_sent, 0);
}

/* ---------------------------------------------------------------- the rest */

static void test_non_failure_statuses(void **state)
{
    (void)state;
    ota_vehicle v = vehicle_all();
    const char *statuses[] = {"idle",      "downloading",  "downloaded", "waiting",
                              "upgrading", "rolling_back", "canceled"};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        assert_false(run(&v, statuses[i], NULL, "forced"));
        assert_int_equal(g_n_sent, 0);
        assert_false(run(&v, statuses[i], "some_warning", "forced"));
        assert_int_equal(g_n_sent, 0);
    }
}

/* Not in the catalog: only what needs no vehicle (ops_alert, log_replay). */
static void test_unknown_vehicle(void **state)
{
    (void)state;
    assert_false(run(NULL, "failed", "upgrade_failed", "forced"));
    assert_int_equal(g_n_sent, 2);
    assert_non_null(sent_kind("ops_alert"));
    assert_non_null(sent_kind("log_replay"));
    assert_false(run(NULL, "failed", "download_failed", "forced"));
    assert_int_equal(g_n_sent, 1);
    assert_non_null(sent_kind("ops_alert"));
}

/* Everything at once: a sold, activated passenger car failing to download. */
static void test_all_for_one_event(void **state)
{
    (void)state;
    config_with("download_failed");
    ota_vehicle v = vehicle_all();
    assert_true(run(&v, "failed", "download_failed", "normal"));
    assert_int_equal(g_n_sent, 4);
    assert_non_null(sent_kind("ops_alert"));
    assert_non_null(sent_kind("log_replay"));
    assert_non_null(sent_kind("compensation"));
    assert_non_null(sent_kind("push"));
    assert_null(sent_kind("work_order"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_effects_carry_the_status_event_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_replay_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_replay_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_replay_bad_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_resend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_no_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_failure_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_vehicle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_for_one_event, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
