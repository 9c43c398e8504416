/*
 * fleet_vehicle.c — one simulated vehicle of ota-fleet: its MQTT client, its window of
 * unacked reports, and its connection life.
 *
 * States (fleet.h): WAITING -> CONNECTING -> ACTIVE -> DRAINING -> CLOSING -> DONE, and
 * LOST -> BACKOFF -> WAITING (--reconnect) or LOST -> FAILED. libmosquitto callbacks
 * only record what happened and put the vehicle on the ready ring; all actions
 * (publishing, disconnecting, destroying a client) happen in fleet_vehicle_service,
 * called from the event loop, never from inside a callback.
 *
 * Window: `slots` holds up to cfg.inflight (mid, report) pairs; a PUBACK frees its slot
 * (linear search of the window, which is small). After a lost connection the client is
 * destroyed and its unacked reports go to `resend`; a new client (clean start, same
 * client id) sends them again with the same seq before any new report.
 *
 * DRAINING: after the last PUBACK the vehicle subscribes to its error topic once more
 * and waits for the SUBACK before disconnecting. The plugin's error replies are queued
 * behind the PUBACK of the report they answer, so the SUBACK barrier makes sure a late
 * error reply is counted instead of lost.
 *
 * Shadow mode: an ACTIVE vehicle (optionally subscribed to its shadow/delta first)
 * publishes one QoS 1 shadow/update; once it is acked (and the SUBACK came) the vehicle
 * is up and waits, counting the task notices that arrive on shadow/delta, until the run
 * loop sets fleet.closing and services it once more: then it disconnects.
 *
 * Campaign mode: the connection life stays here (connect as username = VIN, always
 * reconnect with backoff); what a vehicle does while connected is fleet_campaign.c, called
 * from the callbacks (on_connect, on_publish, on_message) and from fleet_vehicle_service.
 */
#include "fleet.h"

#include <fcntl.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FLEET_PRINT_MAX 5 /* print this many failures of each kind, then count only */

static fleet_vehicle *vehicle_of(void *obj)
{
    return (fleet_vehicle *)obj;
}

static void set_terminal(fleet_vehicle *v, fleet_vstate state)
{
    v->state = state;
    v->fleet->terminal++;
}

static bool has_work(const fleet_vehicle *v)
{
    return v->n_resend > 0 || v->next_report < v->fleet->cfg.reports;
}

static bool all_finished(const fleet_vehicle *v)
{
    return v->finished == v->fleet->cfg.reports;
}

static bool shadow_mode(const fleet_vehicle *v)
{
    return v->fleet->cfg.mode == FLEET_MODE_SHADOW;
}

static bool campaign_mode(const fleet_vehicle *v)
{
    return v->fleet->cfg.mode == FLEET_MODE_CAMPAIGN;
}

bool fleet_vehicle_wants_token(const fleet_vehicle *v)
{
    return v->fleet->cfg.mode == FLEET_MODE_REPORT && v->state == FV_ACTIVE &&
           v->inflight < v->fleet->cfg.inflight && has_work(v);
}

/* ---- callbacks ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    fleet_vehicle *v = vehicle_of(obj);
    fleet *f = v->fleet;
    (void)flags;
    (void)props;

    if (v->state != FV_CONNECTING)
        return;
    f->pending_connects--;
    if (rc != 0) {
        v->no_retry = true;
        if (f->st.connect_refused++ < FLEET_PRINT_MAX)
            fprintf(stderr, "ota-fleet: %s: connection refused: %s\n", v->vin,
                    f->cfg.mqtt == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
        v->state = FV_LOST; /* the library's own disconnect callback is then ignored */
        fleet_mark_ready(v);
        return;
    }
    v->state = FV_ACTIVE;
    v->attempts = 0;
    f->connected++;
    mosquitto_subscribe(mosq, NULL, v->error_topic, 1);
    v->update_sent = false;
    v->update_mid = v->sub_mid = 0;
    if (campaign_mode(v))
        fleet_campaign_on_connect(v);
    if (shadow_mode(v) && f->cfg.subscribe_delta &&
        mosquitto_subscribe(mosq, &v->sub_mid, v->delta_topic, 1) != MOSQ_ERR_SUCCESS)
        v->sub_mid = 0; /* the link is going: on_disconnect follows */
    fleet_mark_ready(v);
}

/* Shadow mode: the vehicle is up once its update is acked and its SUBSCRIBE answered. */
static void check_up(fleet_vehicle *v)
{
    if (v->up || !v->update_sent || v->update_mid != 0 || v->sub_mid != 0)
        return;
    v->up = true;
    v->fleet->up++;
}

static void set_down(fleet_vehicle *v)
{
    if (v->up) {
        v->up = false;
        v->fleet->up--;
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    fleet_vehicle *v = vehicle_of(obj);
    fleet *f = v->fleet;
    (void)mosq;
    (void)rc;
    (void)props;

    set_down(v);
    switch (v->state) {
    case FV_CONNECTING:
        f->pending_connects--;
        f->st.connect_failures++;
        break;
    case FV_ACTIVE:
    case FV_DRAINING:
        f->connected--;
        f->st.disconnects++;
        break;
    case FV_CLOSING:
        f->connected--;
        set_terminal(v, FV_DONE);
        fleet_mark_ready(v);
        return;
    default:
        return; /* already handled */
    }
    v->state = FV_LOST;
    fleet_mark_ready(v);
}

static void record_ack(fleet_vehicle *v, uint64_t report, int rc)
{
    fleet *f = v->fleet;
    uint64_t seq = f->cfg.seq_start + report;

    if (rc < FLEET_REPORT_FAIL_RC) {
        f->st.reports_acked++;
        f->st.events_acked += f->cfg.events;
        if (f->acked)
            fleet_acked_add(f->acked, v->vin, seq, f->cfg.events);
    } else if (f->st.puback_failures++ < FLEET_PRINT_MAX) {
        fprintf(stderr, "ota-fleet: %s seq %llu: PUBACK reason %d (%s)\n", v->vin,
                (unsigned long long)seq, rc, mosquitto_reason_string(rc));
    }
}

static void on_update_acked(fleet_vehicle *v, int mid, int rc)
{
    fleet *f = v->fleet;

    if (mid != v->update_mid || mid == 0)
        return;
    v->update_mid = 0;
    if (rc < FLEET_REPORT_FAIL_RC) {
        f->st.updates_acked++;
        check_up(v);
    } else if (f->st.puback_failures++ < FLEET_PRINT_MAX) {
        fprintf(stderr, "ota-fleet: %s shadow/update: PUBACK reason %d (%s)\n", v->vin, rc,
                mosquitto_reason_string(rc));
    }
}

/* The first message or PUBACK after a lost link: the vehicle is served again (by the
 * next broker with --ports). Records the delay for the summary's served_again figures. */
static void served_again(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    if (v->lost_at <= 0)
        return;
    double ms = (fleet_now() - v->lost_at) * 1000.0;
    v->lost_at = 0;
    if (f->n_again == f->cap_again) {
        size_t cap = f->cap_again ? 2 * f->cap_again : 256;
        uint32_t *a = realloc(f->again_ms, cap * sizeof *a);
        if (!a)
            return;
        f->again_ms = a;
        f->cap_again = cap;
    }
    f->again_ms[f->n_again++] = (uint32_t)(ms + 0.5);
    f->st.served_again_last_ms = fleet_wall_ms();
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int rc,
                       const mosquitto_property *props)
{
    fleet_vehicle *v = vehicle_of(obj);
    (void)mosq;
    (void)props;

    served_again(v);
    if (campaign_mode(v)) {
        fleet_campaign_on_publish(v, mid, rc);
        return;
    }
    if (shadow_mode(v)) {
        on_update_acked(v, mid, rc);
        return;
    }
    for (uint32_t i = 0; i < v->fleet->cfg.inflight; i++) {
        if (v->slots[i].mid != mid)
            continue;
        v->slots[i].mid = 0;
        v->inflight--;
        v->finished++;
        v->fleet->end = fleet_now();
        record_ack(v, v->slots[i].report, rc);
        fleet_mark_ready(v);
        return;
    }
}

static void on_delta(fleet_vehicle *v, const struct mosquitto_message *msg)
{
    fleet_stats *s = &v->fleet->st;
    int64_t now = fleet_wall_ms();

    if (!fleet_cbor_is_notice(msg->payload, msg->payloadlen))
        return;
    s->notices++;
    if (s->first_notice_ms == 0)
        s->first_notice_ms = now;
    s->last_notice_ms = now;
    if (v->first_notice_ms == 0) {
        v->first_notice_ms = now;
        s->vehicles_notified++;
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    fleet_vehicle *v = vehicle_of(obj);
    fleet *f = v->fleet;
    char text[512];
    (void)mosq;
    (void)props;

    served_again(v);
    if (campaign_mode(v)) {
        fleet_campaign_on_message(v, msg->topic, msg->payload, msg->payloadlen);
        return;
    }
    if (shadow_mode(v) && strcmp(msg->topic, v->delta_topic) == 0) {
        on_delta(v, msg);
        return;
    }
    if (strcmp(msg->topic, v->error_topic) != 0)
        return;
    fleet_cbor_describe_error(msg->payload, msg->payloadlen, text, sizeof text);
    if (fleet_error_is_replay(text)) {
        f->st.replays++;
        return;
    }
    if (f->st.error_replies++ < FLEET_PRINT_MAX)
        fprintf(stderr, "ota-fleet: %s: error reply: %s\n", v->vin, text);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    fleet_vehicle *v = vehicle_of(obj);
    static bool warned;
    (void)mosq;
    (void)props;

    if (count > 0 && granted[0] >= FLEET_REPORT_FAIL_RC && !warned) {
        warned = true;
        fprintf(stderr, "ota-fleet: %s: subscription to %s refused (reason %d)\n", v->vin,
                v->error_topic, granted[0]);
    }
    if (mid != 0 && mid == v->sub_mid) {
        v->sub_mid = 0;
        check_up(v);
        return;
    }
    if (v->state == FV_DRAINING && mid == v->barrier_mid) {
        v->barrier_mid = 0;
        fleet_mark_ready(v);
    }
}

/* ---- client life ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

int fleet_vehicle_init(fleet *f, fleet_vehicle *v, uint32_t id)
{
    memset(v, 0, sizeof *v);
    v->fleet = f;
    v->id = id;
    v->state = FV_WAITING;
    snprintf(v->vin, sizeof v->vin, "%s%012llu", f->cfg.vin_prefix,
             (unsigned long long)(f->cfg.vin_offset + id));
    snprintf(v->report_topic, sizeof v->report_topic, "ota/v1/%s/report", v->vin);
    snprintf(v->error_topic, sizeof v->error_topic, "ota/v1/%s/error", v->vin);
    snprintf(v->update_topic, sizeof v->update_topic, "ota/v1/%s/shadow/update", v->vin);
    snprintf(v->delta_topic, sizeof v->delta_topic, "ota/v1/%s/shadow/delta", v->vin);
    v->next_seq = f->cfg.seq_start;
    v->rng = splitmix64(f->cfg.rng_seed ^ splitmix64(id)) | 1; /* xorshift: never 0 */
    v->slots = calloc(f->cfg.inflight, sizeof *v->slots);
    v->resend = calloc(f->cfg.inflight, sizeof *v->resend);
    return v->slots && v->resend ? 0 : -1;
}

static void destroy_client(fleet_vehicle *v)
{
    if (v->mosq == NULL)
        return;
    mosquitto_destroy(v->mosq);
    v->mosq = NULL;
    fleet_refresh_pollfd(v);
}

void fleet_vehicle_free(fleet_vehicle *v)
{
    if (v->mosq) {
        mosquitto_destroy(v->mosq);
        v->mosq = NULL;
    }
    fleet_campaign_free(v);
    free(v->slots);
    free(v->resend);
    v->slots = NULL;
    v->resend = NULL;
}

/* libmosquitto 2.0's mosquitto_new opens a socket pair (2 descriptors) that only its own
 * loop functions use to wake up; ota-fleet drives every client from its poll loop and
 * never needs it. Created while no descriptor is free, the pair fails and libmosquitto
 * goes on without it, so a vehicle costs one descriptor (its socket) instead of three:
 * 10,000 vehicles fit in the usual hard limit of 20,000 without root. */
static struct mosquitto *new_client(const char *id, void *obj)
{
    struct rlimit rl, none;
    struct mosquitto *mosq;
    int lowest = open("/dev/null", O_RDONLY); /* the lowest free descriptor */

    if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        if (lowest >= 0)
            close(lowest);
        return mosquitto_new(id, true, obj);
    }
    close(lowest);
    none = rl;
    none.rlim_cur = (rlim_t)lowest; /* no new descriptor can be opened */
    bool tight = setrlimit(RLIMIT_NOFILE, &none) == 0;
    mosq = mosquitto_new(id, true, obj);
    if (tight)
        setrlimit(RLIMIT_NOFILE, &rl);
    return mosq;
}

static struct mosquitto *create_client(fleet_vehicle *v)
{
    const fleet_config *cfg = &v->fleet->cfg;
    struct mosquitto *mosq = new_client(v->vin, v);

    if (mosq == NULL)
        return NULL;
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         cfg->mqtt == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    /* Our window is the limit; MQTT 5 brokers may lower it with Receive Maximum. */
    mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, (int)cfg->inflight);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (cfg->mode == FLEET_MODE_CAMPAIGN) /* the plugin's identity: username = VIN */
        mosquitto_username_pw_set(mosq, v->vin, NULL);
    mosquitto_connect_v5_callback_set(mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(mosq, on_publish);
    mosquitto_message_v5_callback_set(mosq, on_message);
    mosquitto_subscribe_v5_callback_set(mosq, on_subscribe);
    return mosq;
}

/* The broker port of v's next connection (--ports: spread, then the next one after a loss). */
static int vehicle_port(const fleet_vehicle *v)
{
    const fleet_config *c = &v->fleet->cfg;
    if (c->n_ports == 0)
        return c->port;
    return c->ports[(v->id + v->losses) % (unsigned)c->n_ports];
}

void fleet_vehicle_connect(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    int rc, port = vehicle_port(v);

    if (f->closing) { /* a reconnect due after the end of the wait: not needed any more */
        set_terminal(v, FV_FAILED);
        return;
    }
    v->mosq = create_client(v);
    if (v->mosq == NULL) {
        fprintf(stderr, "ota-fleet: %s: cannot create an MQTT client\n", v->vin);
        f->st.connect_failures++;
        v->no_retry = true; /* out of memory or descriptors: retrying will not help */
        v->state = FV_LOST;
        fleet_mark_ready(v);
        return;
    }
    v->state = FV_CONNECTING;
    f->pending_connects++;
    rc = mosquitto_connect_async(v->mosq, f->cfg.host, port, FLEET_KEEPALIVE);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (f->st.connect_failures < FLEET_PRINT_MAX)
            fprintf(stderr, "ota-fleet: %s: connect to %s:%d: %s\n", v->vin, f->cfg.host, port,
                    mosquitto_strerror(rc));
        f->pending_connects--;
        f->st.connect_failures++;
        v->state = FV_LOST;
        fleet_mark_ready(v);
    }
    fleet_refresh_pollfd(v);
}

/* ---- sending ---- */

static uint64_t take_report(fleet_vehicle *v, bool *resend)
{
    *resend = v->n_resend > 0;
    if (*resend)
        return v->resend[--v->n_resend]; /* kept descending: the smallest is last */
    return v->next_report++;
}

static void give_back(fleet_vehicle *v, uint64_t report, bool resend)
{
    if (resend)
        v->resend[v->n_resend++] = report;
    else
        v->next_report--;
}

static fleet_slot *free_slot(fleet_vehicle *v)
{
    for (uint32_t i = 0; i < v->fleet->cfg.inflight; i++)
        if (v->slots[i].mid == 0)
            return &v->slots[i];
    return NULL; /* cannot happen while inflight < cfg.inflight */
}

static bool is_link_error(int rc)
{
    return rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO;
}

/* A local error that a retry would repeat: drop the connection and fail the vehicle. */
static void give_up(fleet_vehicle *v)
{
    v->fleet->connected--;
    v->no_retry = true;
    v->state = FV_LOST;
    fleet_mark_ready(v);
}

/* Publishes one report; returns false when the vehicle cannot send now. */
static bool send_one(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    bool resend;
    uint64_t report = take_report(v, &resend);
    size_t len = fleet_cbor_report(&f->cfg, f->t0_ms, report, f->buf, f->buf_cap);
    fleet_slot *slot = free_slot(v);
    int mid = 0, rc;

    if (len == 0 || slot == NULL) {
        give_back(v, report, resend);
        fprintf(stderr, "ota-fleet: %s: cannot encode report %llu\n", v->vin,
                (unsigned long long)report);
        give_up(v);
        return false;
    }
    rc = mosquitto_publish(v->mosq, &mid, v->report_topic, (int)len, f->buf, 1, false);
    if (mid == 0) { /* the library did not take it */
        give_back(v, report, resend);
        if (!is_link_error(rc)) { /* e.g. over the broker's maximum packet size */
            fprintf(stderr, "ota-fleet: %s: publish: %s\n", v->vin, mosquitto_strerror(rc));
            give_up(v);
        }
        return false;
    }
    /* Taken (even if the write failed: the loss of the link will re-send it). */
    slot->mid = mid;
    slot->report = report;
    v->inflight++;
    f->st.reports_sent++;
    f->st.resent += resend;
    return rc == MOSQ_ERR_SUCCESS;
}

static void pump(fleet_vehicle *v, double *tokens)
{
    while (fleet_vehicle_wants_token(v)) {
        if (tokens && *tokens < 1.0)
            return;
        if (!send_one(v))
            return;
        if (tokens) {
            *tokens -= 1.0; /* one report per turn: fair across vehicles */
            fleet_mark_ready(v);
            return;
        }
    }
}

void fleet_vehicle_close(fleet_vehicle *v)
{
    v->state = FV_CLOSING;
    /* Outside a callback the DISCONNECT is written at once and on_disconnect runs here. */
    if (mosquitto_disconnect(v->mosq) != MOSQ_ERR_SUCCESS && v->state == FV_CLOSING) {
        v->fleet->connected--;
        set_terminal(v, FV_DONE);
    }
}

static void start_drain(fleet_vehicle *v)
{
    int mid = 0;

    if (mosquitto_subscribe(v->mosq, &mid, v->error_topic, 1) == MOSQ_ERR_SUCCESS) {
        v->barrier_mid = mid;
        v->state = FV_DRAINING;
    } else {
        fleet_vehicle_close(v); /* no barrier possible: finish without it */
    }
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Moves the unacked window to the resend list (descending, so the smallest is last). */
static void window_to_resend(fleet_vehicle *v)
{
    for (uint32_t i = 0; i < v->fleet->cfg.inflight; i++) {
        if (v->slots[i].mid == 0)
            continue;
        v->resend[v->n_resend++] = v->slots[i].report;
        v->slots[i].mid = 0;
    }
    v->inflight = 0;
    qsort(v->resend, v->n_resend, sizeof *v->resend, cmp_desc);
}

static double backoff_s(const fleet_vehicle *v)
{
    double d = 0.1 * (double)(1u << (v->attempts < 5 ? v->attempts : 5));
    if (d > 2.0)
        d = 2.0;
    return d + 0.1 * (double)(v->id % 97) / 97.0; /* spread a fleet's reconnects */
}

static void handle_lost(fleet_vehicle *v)
{
    fleet *f = v->fleet;

    destroy_client(v);
    v->losses++; /* --ports: the next connection goes to the next broker */
    if (v->lost_at <= 0)
        v->lost_at = fleet_now(); /* served again: the first answer after a reconnection */
    window_to_resend(v);
    if (campaign_mode(v))
        fleet_campaign_on_lost(v);
    if (shadow_mode(v) && f->closing) {
        set_terminal(v, FV_FAILED); /* lost while closing: no reconnect any more */
        if (!f->cfg.reconnect)
            f->broker_gone = true;
    } else if (f->cfg.mode == FLEET_MODE_REPORT && all_finished(v)) {
        set_terminal(v, FV_DONE); /* lost during the final barrier: nothing to re-send */
    } else if (v->no_retry) {
        set_terminal(v, FV_FAILED);
    } else if (f->cfg.reconnect) {
        v->state = FV_BACKOFF;
        v->retry_at = fleet_now() + backoff_s(v);
        v->attempts++;
        f->n_backoff++;
    } else {
        set_terminal(v, FV_FAILED);
        f->broker_gone = true;
    }
}

/* Shadow mode: publishes the update once per connection; disconnects when closing. */
static void shadow_service(fleet_vehicle *v)
{
    fleet *f = v->fleet;
    size_t len;
    int rc;

    if (f->closing) {
        fleet_vehicle_close(v);
        return;
    }
    if (v->update_sent)
        return;
    len = fleet_cbor_shadow_update(f->buf, f->buf_cap);
    rc = mosquitto_publish(v->mosq, &v->update_mid, v->update_topic, (int)len, f->buf, 1, false);
    if (v->update_mid == 0) { /* not taken */
        if (!is_link_error(rc)) {
            fprintf(stderr, "ota-fleet: %s: publish: %s\n", v->vin, mosquitto_strerror(rc));
            give_up(v);
        }
        return;
    }
    v->update_sent = true;
}

void fleet_vehicle_service(fleet_vehicle *v, double *tokens)
{
    if (v->state == FV_BACKOFF && v->fleet->closing) {
        v->fleet->n_backoff--;
        set_terminal(v, FV_FAILED);
        return;
    }
    switch (v->state) {
    case FV_ACTIVE:
        if (campaign_mode(v)) {
            fleet_campaign_service(v);
            break;
        }
        if (shadow_mode(v)) {
            shadow_service(v);
            break;
        }
        pump(v, tokens);
        if (all_finished(v) && !has_work(v))
            start_drain(v);
        break;
    case FV_DRAINING:
        if (v->barrier_mid == 0)
            fleet_vehicle_close(v);
        break;
    case FV_LOST:
        handle_lost(v);
        break;
    default:
        break;
    }
    if (v->state == FV_DONE || v->state == FV_FAILED)
        destroy_client(v);
    else
        fleet_refresh_pollfd(v);
}
