/*
 * fleet_run.c — the single-threaded event loop of ota-fleet.
 *
 * One pass: refill the --rate token bucket, start queued connects (at most
 * FLEET_MAX_PENDING_CONNECTS awaiting CONNACK), service the vehicles on the ready ring,
 * run the housekeeping tick if due, then poll() every client socket and hand readable /
 * writable ones to mosquitto_loop_read / mosquitto_loop_write. The pollfd array is
 * indexed by vehicle id and kept current by fleet_refresh_pollfd after anything touches
 * a vehicle (fd -1 = no socket; poll ignores it), so a pass costs O(active work) plus
 * the poll itself.
 *
 * Housekeeping (every FLEET_TICK_S): flush the acked file, move due reconnects to the
 * connect queue, and in shadow mode write the ready line once every vehicle is up and
 * end the wait (--wait elapsed or --expect notices arrived: every vehicle is put on the
 * ready ring once, to disconnect); every second: mosquitto_loop_misc (keepalive) for every
 * connected client and the progress line.
 */
#include "fleet.h"

#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FLEET_TICK_S 0.05 /* acked file flushed at least every 100 ms */
#define FLEET_SLOW_TICK_S 1.0

typedef struct {
    double next_tick;
    double next_slow;
    double last_progress;
    uint64_t last_acked;
    bool tty;
    bool printed; /* a progress line is on the terminal */
} loop_clock;

double fleet_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t fleet_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- rings and pollfds ---- */

void fleet_ring_push(fleet_ring *r, uint32_t id)
{
    r->items[(r->head + r->len) % r->cap] = id;
    r->len++;
}

uint32_t fleet_ring_pop(fleet_ring *r)
{
    uint32_t id = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return id;
}

static uint32_t ring_peek(const fleet_ring *r)
{
    return r->items[r->head];
}

void fleet_mark_ready(fleet_vehicle *v)
{
    if (v->in_ready)
        return;
    v->in_ready = true;
    fleet_ring_push(&v->fleet->ready, v->id);
}

static void mark_connect(fleet_vehicle *v)
{
    if (v->in_connq)
        return;
    v->in_connq = true;
    fleet_ring_push(&v->fleet->connq, v->id);
}

void fleet_refresh_pollfd(fleet_vehicle *v)
{
    struct pollfd *p = &v->fleet->pfd[v->id];
    int fd = v->mosq ? mosquitto_socket(v->mosq) : -1;

    p->fd = fd;
    p->events = 0;
    if (fd >= 0)
        p->events = POLLIN | (mosquitto_want_write(v->mosq) ? POLLOUT : 0);
}

/* ---- one pass ---- */

static double *tokens_of(fleet *f)
{
    return f->cfg.rate > 0 ? &f->tokens : NULL;
}

static void refill_tokens(fleet *f, double now, double *last)
{
    double cap = fmax(1.0, f->cfg.rate * 0.1);

    if (f->cfg.rate <= 0)
        return;
    f->tokens = fmin(cap, f->tokens + (now - *last) * f->cfg.rate);
    *last = now;
}

static void start_connects(fleet *f)
{
    while (f->connq.len > 0 && f->pending_connects < FLEET_MAX_PENDING_CONNECTS) {
        fleet_vehicle *v = &f->v[fleet_ring_pop(&f->connq)];
        v->in_connq = false;
        fleet_vehicle_connect(v);
    }
}

static bool blocked_on_tokens(fleet *f, const fleet_vehicle *v)
{
    return f->cfg.rate > 0 && f->tokens < 1.0 && fleet_vehicle_wants_token(v);
}

/* Services the vehicles queued now; those queued meanwhile wait for the next pass. */
static void service_ready(fleet *f)
{
    uint32_t n = f->ready.len;

    for (uint32_t i = 0; i < n; i++) {
        fleet_vehicle *v = &f->v[ring_peek(&f->ready)];
        if (blocked_on_tokens(f, v))
            return;
        fleet_ring_pop(&f->ready);
        v->in_ready = false;
        fleet_vehicle_service(v, tokens_of(f));
    }
}

static void due_reconnects(fleet *f, double now)
{
    if (f->n_backoff == 0)
        return;
    for (uint32_t i = 0; i < f->cfg.vehicles; i++) {
        fleet_vehicle *v = &f->v[i];
        if (v->state == FV_BACKOFF && v->retry_at <= now) {
            v->state = FV_WAITING;
            f->n_backoff--;
            mark_connect(v);
        }
    }
}

static void keepalive_all(fleet *f)
{
    for (uint32_t i = 0; i < f->cfg.vehicles; i++) {
        fleet_vehicle *v = &f->v[i];
        if (v->mosq && f->pfd[i].fd >= 0) {
            mosquitto_loop_misc(v->mosq);
            fleet_refresh_pollfd(v);
        }
    }
}

static void progress_shadow(fleet *f, loop_clock *c)
{
    c->printed = true;
    fprintf(stderr, "ota-fleet: %u connected, %u/%u up, %llu notices to %u vehicles%s",
            f->connected, f->up, f->cfg.vehicles, (unsigned long long)f->st.notices,
            f->st.vehicles_notified, c->tty ? "   \r" : "\n");
}

static void progress_campaign(fleet *f, loop_clock *c)
{
    const fleet_stats *s = &f->st;

    c->printed = true;
    fprintf(stderr,
            "ota-fleet: %u/%u connected, %u notified | downloading %u, installing %u | "
            "succeeded %u, failed %u | %.1f MB, %llu cut, %llu resumed, %llu wrong%s",
            f->connected, f->cfg.vehicles, s->vehicles_notified, s->in_download, s->in_install,
            s->succeeded, s->failed, (double)s->bytes / 1e6, (unsigned long long)s->links_cut,
            (unsigned long long)s->resumes,
            (unsigned long long)(s->verify_failures + s->error_replies), c->tty ? "   \r" : "\n");
}

static void progress(fleet *f, loop_clock *c, double now)
{
    uint64_t total = (uint64_t)f->cfg.vehicles * f->cfg.reports;
    double dt = now - c->last_progress;
    double rate = dt > 0 ? (double)(f->st.reports_acked - c->last_acked) / dt : 0;

    c->last_progress = now;
    c->last_acked = f->st.reports_acked;
    if (f->cfg.quiet)
        return;
    if (f->cfg.mode == FLEET_MODE_SHADOW) {
        progress_shadow(f, c);
        return;
    }
    if (f->cfg.mode == FLEET_MODE_CAMPAIGN) {
        progress_campaign(f, c);
        return;
    }
    c->printed = true;
    fprintf(stderr,
            "ota-fleet: %llu/%llu acked (%.1f%%), %.0f acks/s, %u connected, %llu failures, "
            "%llu error replies%s",
            (unsigned long long)f->st.reports_acked, (unsigned long long)total,
            total ? 100.0 * (double)f->st.reports_acked / (double)total : 0.0, rate, f->connected,
            (unsigned long long)f->st.puback_failures, (unsigned long long)f->st.error_replies,
            c->tty ? "   \r" : "\n");
}

/* Shadow mode: the ready line, written once when every vehicle is up. */
static void write_ready(fleet *f)
{
    FILE *fp;

    f->ready_ms = fleet_wall_ms();
    if (!f->cfg.quiet)
        fprintf(stderr, "ota-fleet: all %u vehicles up\n", f->cfg.vehicles);
    if (f->cfg.ready_path == NULL)
        return;
    fp = fopen(f->cfg.ready_path, "w");
    if (fp == NULL || fprintf(fp, "ready %u %lld\n", f->cfg.vehicles, (long long)f->ready_ms) < 0 ||
        fclose(fp) != 0)
        fprintf(stderr, "ota-fleet: cannot write %s\n", f->cfg.ready_path);
}

static bool wait_over(const fleet *f, double now)
{
    const fleet_config *cfg = &f->cfg;

    if (cfg->expect > 0 && f->st.notices >= cfg->expect)
        return true;
    if (cfg->wait_s > 0)
        return now >= f->all_up_at + cfg->wait_s;
    return cfg->expect == 0;
}

static void shadow_check(fleet *f, double now)
{
    if (!f->all_up && f->up == f->cfg.vehicles) {
        f->all_up = true;
        f->all_up_at = now;
        write_ready(f);
    }
    if (!f->all_up || f->closing || !wait_over(f, now))
        return;
    f->closing = true;
    f->end = now;
    for (uint32_t i = 0; i < f->cfg.vehicles; i++)
        fleet_mark_ready(&f->v[i]);
}

static void housekeeping(fleet *f, loop_clock *c, double now)
{
    if (now < c->next_tick)
        return;
    c->next_tick = now + FLEET_TICK_S;
    if (f->acked)
        fleet_acked_flush(f->acked);
    due_reconnects(f, now);
    if (f->cfg.mode == FLEET_MODE_SHADOW)
        shadow_check(f, now);
    if (f->cfg.mode == FLEET_MODE_CAMPAIGN)
        fleet_campaign_tick(f, now);
    if (now < c->next_slow)
        return;
    c->next_slow = now + FLEET_SLOW_TICK_S;
    keepalive_all(f);
    progress(f, c, now);
}

static int poll_timeout_ms(fleet *f, const loop_clock *c, double now)
{
    double wait = c->next_tick - now;

    if (f->ready.len > 0) {
        const fleet_vehicle *v = &f->v[ring_peek(&f->ready)];
        wait = blocked_on_tokens(f, v) ? (1.0 - f->tokens) / f->cfg.rate : 0.0;
    }
    if (f->connq.len > 0 && f->pending_connects < FLEET_MAX_PENDING_CONNECTS)
        wait = 0.0;
    if (f->cfg.timeout_s > 0)
        wait = fmin(wait, f->start + f->cfg.timeout_s - now);
    return wait <= 0 ? 0 : (int)ceil(wait * 1000.0);
}

static void dispatch(fleet *f, int ready)
{
    for (uint32_t i = 0; i < f->cfg.vehicles && ready > 0; i++) {
        struct pollfd *p = &f->pfd[i];
        fleet_vehicle *v = &f->v[i];
        if (p->revents == 0 || p->fd < 0)
            continue;
        ready--;
        if (p->revents & (POLLIN | POLLHUP | POLLERR))
            mosquitto_loop_read(v->mosq, 1);
        if ((p->revents & POLLOUT) && mosquitto_socket(v->mosq) >= 0)
            mosquitto_loop_write(v->mosq, 1);
        p->revents = 0;
        fleet_refresh_pollfd(v);
    }
}

static bool should_stop(fleet *f, volatile sig_atomic_t *stop, double now)
{
    if (*stop) {
        f->interrupted = true;
        return true;
    }
    if (f->cfg.timeout_s > 0 && now - f->start >= f->cfg.timeout_s) {
        f->timed_out = true;
        return true;
    }
    return false;
}

int fleet_run(fleet *f, volatile sig_atomic_t *stop)
{
    loop_clock c = {.tty = isatty(2) == 1};
    double last_refill;

    f->start = f->end = last_refill = c.last_progress = fleet_now();
    c.next_tick = f->start + FLEET_TICK_S;
    c.next_slow = f->start + FLEET_SLOW_TICK_S;
    f->tokens = f->cfg.rate > 0 ? 1.0 : 0.0;
    for (uint32_t i = 0; i < f->cfg.vehicles; i++)
        mark_connect(&f->v[i]);

    while (f->terminal < f->cfg.vehicles) {
        double now = fleet_now();
        if (should_stop(f, stop, now))
            break;
        refill_tokens(f, now, &last_refill);
        start_connects(f);
        service_ready(f);
        housekeeping(f, &c, now);
        if (f->terminal == f->cfg.vehicles)
            break;
        int n = poll(f->pfd, f->cfg.vehicles, poll_timeout_ms(f, &c, fleet_now()));
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "ota-fleet: poll: %s\n", strerror(errno));
            return -1;
        }
        if (n > 0)
            dispatch(f, n);
    }
    if ((f->st.reports_acked == 0 && !f->closing) || f->cfg.mode == FLEET_MODE_CAMPAIGN)
        f->end = fleet_now();
    if (c.printed && c.tty)
        fputc('\n', stderr);
    return 0;
}
