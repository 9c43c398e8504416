/*
 * ota-fleet.c — command line of the fleet simulator / load generator of mosquitto-ota.
 *
 * Mode `report` (the default): N simulated vehicles connect to the broker (client id =
 * VIN) and each publishes M QoS 1 reports of K events on ota/v1/{VIN}/report, keeping at
 * most W unacked, then prints a summary (human, or one JSON object with --json). Exit
 * status: 0 everything acked with success and no error reply (E_REPLAY, the answer to a
 * re-sent report the broker had taken, is counted as "replays", not as an error); 1
 * otherwise; 2 usage
 * error; 3 the broker went away (a connection was lost or refused at the TCP level,
 * without --reconnect).
 *
 * Mode `shadow` (the dispatch benchmark's fleet): each vehicle connects, publishes one
 * QoS 1 shadow/update {reported:{fw:"1.0.0", state:"idle", ecus:{}}} and stays connected
 * (--wait, --expect), counting the task notices (shadow/delta with desired.task) it
 * receives. Exit status: 0 every vehicle was up, the expected notices arrived and there
 * was no error reply; otherwise as in report mode.
 *
 * Mode `campaign`: each vehicle behaves like a real one through an upgrade campaign
 * (fleet_campaign.c): shadow state on connect, the task notice, pkg/get and the signed
 * description checked (--pub), the content key unwrapped, blocks downloaded with resume
 * and checked, progress and a final status reported, with injected failures, lost links
 * and lost blocks. Exit status: 0 every vehicle finished its task and everything checked
 * was right; 1 otherwise. Mode `keys` prints "VIN,public_key" for the vehicles' X25519
 * keys (derived from --key-seed and the VIN), for registering them with upsertVehicles.
 *
 * This file parses options, sets up the fleet table and prints the result; the event
 * loop is fleet_run.c, a vehicle's life fleet_vehicle.c, payloads fleet_cbor.c and the
 * acked file fleet_acked.c.
 */
#include "fleet.h"
#include "fleet_crypto.h"

#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define EXIT_USAGE 2
#define EXIT_BROKER_GONE 3
#define FLEET_MAX_VEHICLES 1000000u
#define FLEET_VIN_SERIALS 1000000000000ULL /* 12 digits */
#define FLEET_FDS_PER_VEHICLE 1            /* the socket (fleet_vehicle.c: no socket pair) */

static volatile sig_atomic_t g_stop;

static const char usage_text[] =
    "usage: ota-fleet [report|shadow|campaign|keys] [options]\n"
    "report (default): simulated vehicles publish QoS 1 reports {seq, events} on\n"
    "  ota/v1/{VIN}/report.\n"
    "shadow: each vehicle publishes one QoS 1 shadow/update and waits, counting the task\n"
    "  notices (shadow/delta with desired.task) it receives.\n"
    "\n"
    "  --host H          broker address (default 127.0.0.1)\n"
    "  --port P          broker port (default 1883)\n"
    "  --ports P1,P2,..  several brokers: vehicle i starts on the (i mod n)th, and moves to\n"
    "                    the next one each time its link is lost (with --reconnect)\n"
    "  --vehicles N      number of vehicles (default 1)\n"
    "  --reports M       reports per vehicle (default 10)\n"
    "  --events K        events per report (default 2)\n"
    "  --inflight W      unacked reports per vehicle (default 20)\n"
    "  --mqtt 5|311      protocol version (default 5)\n"
    "  --seq-start S     seq of each vehicle's first report (default 1)\n"
    "  --vin-prefix XXXXX  first 5 VIN characters (default LSVTA); VIN = prefix +\n"
    "                    12-digit vehicle number\n"
    "  --vin-offset O    number of the first vehicle (default 0)\n"
    "  --acked FILE      append \"VIN SEQ NEVENTS\" per report acked with success\n"
    "  --rate R          at most R reports/s over the fleet (default 0 = unlimited)\n"
    "  --reconnect       on a lost connection reconnect and re-send unacked reports\n"
    "                    (default: finish and exit 3)\n"
    "  --timeout SEC     give up after SEC seconds (default 0 = never)\n"
    "shadow mode:\n"
    "  --wait SEC        stay connected SEC seconds once every vehicle is up (default 0:\n"
    "                    leave at once, or wait for --expect)\n"
    "  --expect N        leave as soon as N notices arrived (over the whole fleet)\n"
    "  --ready-file F    write \"ready VEHICLES WALL_MS\" to F once every vehicle is\n"
    "                    connected and its shadow/update acked\n"
    "  --subscribe-delta subscribe to ota/v1/{VIN}/shadow/delta (for a plain broker)\n"
    "campaign mode (see docs/ota-fleet.md):\n"
    "  --pub FILE        the plugin's signing public key (<plugin_opt_signing_key>.pub);\n"
    "                    required\n"
    "  --key-seed S      vehicle X25519 keys derived from S and the VIN (default ota-fleet)\n"
    "  --fw V            firmware version before the upgrade (default 1.0)\n"
    "  --block-size B    file/get block size, 256..131072 (default 16384)\n"
    "  --window W        blocks per file/get, 1..64 (default 16)\n"
    "  --failure-rate P  share of upgrades that fail, 0..1 (default 0)\n"
    "  --disconnect-rate P  chance that a file/get window is cut by a lost link (default 0)\n"
    "  --drop-rate P     chance that a block is lost and asked again (default 0)\n"
    "  --install-step SEC  time per install step (default 0.05)\n"
    "  --request-timeout SEC  ask again after this long without an answer (default 5)\n"
    "  --seed N          seed of the injected faults (default 1)\n"
    "keys mode: prints VIN,public_key (hex) per vehicle (--vehicles, --vin-*, --key-seed)\n"
    "  --json            print the summary as one JSON object on stdout\n"
    "  --quiet           no progress line on stderr\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 all reports acked (campaign: every task finished, every check right) with "
    "success and no error reply, 1 otherwise,\n"
    "2 usage error, 3 the broker went away.\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_VEHICLES,
    OPT_REPORTS,
    OPT_EVENTS,
    OPT_INFLIGHT,
    OPT_MQTT,
    OPT_SEQ_START,
    OPT_VIN_PREFIX,
    OPT_VIN_OFFSET,
    OPT_ACKED,
    OPT_RATE,
    OPT_RECONNECT,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_QUIET,
    OPT_HELP,
    OPT_WAIT,
    OPT_EXPECT,
    OPT_READY_FILE,
    OPT_SUBSCRIBE_DELTA,
    OPT_PUB,
    OPT_KEY_SEED,
    OPT_FW,
    OPT_BLOCK_SIZE,
    OPT_WINDOW,
    OPT_FAILURE_RATE,
    OPT_DISCONNECT_RATE,
    OPT_DROP_RATE,
    OPT_INSTALL_STEP,
    OPT_REQUEST_TIMEOUT,
    OPT_SEED,
    OPT_PORTS,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"ports", required_argument, NULL, OPT_PORTS},
    {"vehicles", required_argument, NULL, OPT_VEHICLES},
    {"reports", required_argument, NULL, OPT_REPORTS},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"mqtt", required_argument, NULL, OPT_MQTT},
    {"seq-start", required_argument, NULL, OPT_SEQ_START},
    {"vin-prefix", required_argument, NULL, OPT_VIN_PREFIX},
    {"vin-offset", required_argument, NULL, OPT_VIN_OFFSET},
    {"acked", required_argument, NULL, OPT_ACKED},
    {"rate", required_argument, NULL, OPT_RATE},
    {"reconnect", no_argument, NULL, OPT_RECONNECT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"subscribe-delta", no_argument, NULL, OPT_SUBSCRIBE_DELTA},
    {"pub", required_argument, NULL, OPT_PUB},
    {"key-seed", required_argument, NULL, OPT_KEY_SEED},
    {"fw", required_argument, NULL, OPT_FW},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"failure-rate", required_argument, NULL, OPT_FAILURE_RATE},
    {"disconnect-rate", required_argument, NULL, OPT_DISCONNECT_RATE},
    {"drop-rate", required_argument, NULL, OPT_DROP_RATE},
    {"install-step", required_argument, NULL, OPT_INSTALL_STEP},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {NULL, 0, NULL, 0},
};

/* ---- option parsing ---- */

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long x;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || x < min || x > max)
        return false;
    *out = x;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double x;

    errno = 0;
    x = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(x >= 0) || x > 1e9)
        return false;
    *out = x;
    return true;
}

static bool vin_prefix_valid(const char *s)
{
    if (strlen(s) != 5)
        return false;
    for (const char *p = s; *p; p++) {
        bool digit = *p >= '0' && *p <= '9', upper = *p >= 'A' && *p <= 'Z';
        if (!(digit || upper) || *p == 'I' || *p == 'O' || *p == 'Q')
            return false;
    }
    return true;
}

static void set_defaults(fleet_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 1883;
    c->vehicles = 1;
    c->reports = 10;
    c->events = 2;
    c->inflight = 20;
    c->mqtt = 5;
    c->seq_start = 1;
    strcpy(c->vin_prefix, "LSVTA");
    c->key_seed = "ota-fleet";
    c->fw = "1.0";
    c->block_size = 16384;
    c->window = 16;
    c->install_step_s = 0.05;
    c->request_timeout_s = 5;
    c->rng_seed = 1;
}

/* --ports P1,P2,...: 1 to FLEET_MAX_PORTS ports. */
static bool parse_ports(fleet_config *c, const char *arg)
{
    char buf[256];
    uint64_t x;
    if (strlen(arg) >= sizeof buf)
        return false;
    strcpy(buf, arg);
    c->n_ports = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (c->n_ports == FLEET_MAX_PORTS || !parse_u64(t, 1, 65535, &x))
            return false;
        c->ports[c->n_ports++] = (int)x;
    }
    return c->n_ports > 0;
}

static bool apply_number(fleet_config *c, int opt, const char *arg)
{
    uint64_t x;

    switch (opt) {
    case OPT_PORT:
        return parse_u64(arg, 1, 65535, &x) && (c->port = (int)x, true);
    case OPT_VEHICLES:
        return parse_u64(arg, 1, FLEET_MAX_VEHICLES, &x) && (c->vehicles = (uint32_t)x, true);
    case OPT_REPORTS:
        return parse_u64(arg, 1, 1ULL << 40, &c->reports);
    case OPT_EVENTS:
        return parse_u64(arg, 1, 65535, &x) && (c->events = (uint32_t)x, true);
    case OPT_INFLIGHT:
        return parse_u64(arg, 1, 65535, &x) && (c->inflight = (uint32_t)x, true);
    case OPT_MQTT:
        return parse_u64(arg, 5, 311, &x) && (x == 5 || x == 311) && (c->mqtt = (int)x, true);
    case OPT_SEQ_START:
        c->seq_given = true;
        return parse_u64(arg, 0, 1ULL << 62, &c->seq_start);
    case OPT_VIN_OFFSET:
        return parse_u64(arg, 0, FLEET_VIN_SERIALS - 1, &c->vin_offset);
    case OPT_EXPECT:
        return parse_u64(arg, 1, 1ULL << 53, &c->expect);
    case OPT_BLOCK_SIZE:
        return parse_u64(arg, 256, 131072, &x) && (c->block_size = (uint32_t)x, true);
    case OPT_WINDOW:
        return parse_u64(arg, 1, 64, &x) && (c->window = (uint32_t)x, true);
    case OPT_SEED:
        return parse_u64(arg, 0, UINT64_MAX, &c->rng_seed);
    default:
        return false;
    }
}

static bool apply_option(fleet_config *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_HOST:
        c->host = arg;
        return arg[0] != '\0';
    case OPT_PORTS:
        return parse_ports(c, arg);
    case OPT_VIN_PREFIX:
        if (!vin_prefix_valid(arg))
            return false;
        strcpy(c->vin_prefix, arg);
        return true;
    case OPT_ACKED:
        c->acked_path = arg;
        return arg[0] != '\0';
    case OPT_RATE:
        return parse_seconds(arg, &c->rate);
    case OPT_TIMEOUT:
        return parse_seconds(arg, &c->timeout_s);
    case OPT_WAIT:
        return parse_seconds(arg, &c->wait_s);
    case OPT_READY_FILE:
        c->ready_path = arg;
        return arg[0] != '\0';
    case OPT_PUB:
        c->pub_path = arg;
        return arg[0] != '\0';
    case OPT_KEY_SEED:
        c->key_seed = arg;
        return true;
    case OPT_FW:
        c->fw = arg;
        return arg[0] != '\0' && strlen(arg) <= 64;
    case OPT_FAILURE_RATE:
        return parse_seconds(arg, &c->failure_rate) && c->failure_rate <= 1;
    case OPT_DISCONNECT_RATE:
        return parse_seconds(arg, &c->disconnect_rate) && c->disconnect_rate <= 1;
    case OPT_DROP_RATE:
        return parse_seconds(arg, &c->drop_rate) && c->drop_rate < 1;
    case OPT_INSTALL_STEP:
        return parse_seconds(arg, &c->install_step_s);
    case OPT_REQUEST_TIMEOUT:
        return parse_seconds(arg, &c->request_timeout_s) && c->request_timeout_s > 0;
    case OPT_SUBSCRIBE_DELTA:
        c->subscribe_delta = true;
        return true;
    case OPT_RECONNECT:
        c->reconnect = true;
        return true;
    case OPT_JSON:
        c->json = true;
        return true;
    case OPT_QUIET:
        c->quiet = true;
        return true;
    default:
        return apply_number(c, opt, arg);
    }
}

static const char *check_config(const fleet_config *c)
{
    bool shadow_opts = c->wait_s > 0 || c->expect > 0 || c->ready_path || c->subscribe_delta;

    if (c->mode == FLEET_MODE_REPORT && shadow_opts)
        return "--wait, --expect, --ready-file and --subscribe-delta need mode shadow";
    if (c->mode != FLEET_MODE_REPORT && c->acked_path)
        return "--acked needs mode report";
    if (c->mode == FLEET_MODE_CAMPAIGN && c->pub_path == NULL)
        return "campaign mode needs --pub (the plugin's signing public key)";
    if (c->vin_offset + c->vehicles > FLEET_VIN_SERIALS)
        return "--vin-offset + --vehicles exceeds the 12-digit VIN serial";
    if (c->reports > (1ULL << 53) / c->events)
        return "--reports x --events is too large";
    if (c->seq_start + c->reports < c->seq_start)
        return "--seq-start + --reports overflows";
    return NULL;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error (message printed). */
static int parse_args(int argc, char **argv, fleet_config *c)
{
    int opt, idx = 0;

    set_defaults(c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (opt == '?' || opt == ':') {
            fprintf(stderr, "ota-fleet: unknown option or missing value: %s\n", argv[optind - 1]);
            return -1;
        }
        if (!apply_option(c, opt, optarg)) {
            fprintf(stderr, "ota-fleet: bad value for --%s: %s\n", long_opts[idx].name, optarg);
            return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind], "report") == 0) {
        optind++;
    } else if (optind < argc && strcmp(argv[optind], "shadow") == 0) {
        c->mode = FLEET_MODE_SHADOW;
        optind++;
    } else if (optind < argc && strcmp(argv[optind], "campaign") == 0) {
        c->mode = FLEET_MODE_CAMPAIGN;
        c->reconnect = true; /* real vehicles come back */
        if (!c->seq_given)   /* above any seq of an earlier run: the plugin's replay guard */
            c->seq_start = (uint64_t)fleet_wall_ms() * 1000;
        optind++;
    } else if (optind < argc && strcmp(argv[optind], "keys") == 0) {
        c->mode = FLEET_MODE_KEYS;
        optind++;
    }
    if (optind < argc) {
        fprintf(stderr, "ota-fleet: unknown mode or argument: %s\n", argv[optind]);
        return -1;
    }
    const char *problem = check_config(c);
    if (problem) {
        fprintf(stderr, "ota-fleet: %s\n", problem);
        return -1;
    }
    return 0;
}

/* ---- setup and teardown ---- */

static int raise_fd_limit(uint32_t vehicles)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)vehicles * FLEET_FDS_PER_VEHICLE + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < need) {
        struct rlimit want = {.rlim_cur = need,
                              .rlim_max = rl.rlim_max < need ? need : rl.rlim_max};
        /* Raising the hard limit needs CAP_SYS_RESOURCE; else go as far as it allows. */
        if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr,
                "ota-fleet: %u vehicles need %llu file descriptors; the limit is %llu "
                "(raise ulimit -n)\n",
                vehicles, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

static void fleet_free(fleet *f)
{
    if (f->v) {
        for (uint32_t i = 0; i < f->cfg.vehicles; i++)
            fleet_vehicle_free(&f->v[i]);
    }
    free(f->again_ms);
    free(f->v);
    free(f->pfd);
    free(f->ready.items);
    free(f->connq.items);
    free(f->buf);
    fleet_acked_close(f->acked);
}

static int fleet_init(fleet *f)
{
    uint32_t n = f->cfg.vehicles;

    f->v = calloc(n, sizeof *f->v);
    f->pfd = calloc(n, sizeof *f->pfd);
    f->ready = (fleet_ring){.items = calloc(n, sizeof(uint32_t)), .cap = n};
    f->connq = (fleet_ring){.items = calloc(n, sizeof(uint32_t)), .cap = n};
    f->buf_cap = fleet_cbor_report_bound(f->cfg.events);
    f->buf = malloc(f->buf_cap);
    f->t0_ms = fleet_wall_ms();
    if (!f->v || !f->pfd || !f->ready.items || !f->connq.items || !f->buf) {
        fprintf(stderr, "ota-fleet: out of memory\n");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        f->pfd[i].fd = -1;
        if (fleet_vehicle_init(f, &f->v[i], i) != 0) {
            fprintf(stderr, "ota-fleet: out of memory\n");
            return -1;
        }
    }
    if (f->cfg.acked_path && (f->acked = fleet_acked_open(f->cfg.acked_path)) == NULL)
        return -1;
    if (f->cfg.mode == FLEET_MODE_CAMPAIGN && vc_load_pub(f->cfg.pub_path, &f->pub) != 0) {
        fprintf(stderr, "ota-fleet: %s: not an Ed25519 public key (PEM)\n", f->cfg.pub_path);
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* ---- result ---- */

static uint64_t expected_reports(const fleet *f)
{
    return (uint64_t)f->cfg.vehicles * f->cfg.reports;
}

/* True when every vehicle ended in FV_DONE (none gave up). */
static bool all_vehicles_done(const fleet *f)
{
    bool done = f->terminal == f->cfg.vehicles;

    for (uint32_t i = 0; done && i < f->cfg.vehicles; i++)
        done = f->v[i].state == FV_DONE;
    return done;
}

static int exit_code_shadow(const fleet *f)
{
    bool all_done = all_vehicles_done(f);
    if (f->broker_gone)
        return EXIT_BROKER_GONE;
    if (all_done && f->all_up && f->st.notices >= f->cfg.expect && f->st.puback_failures == 0 &&
        f->st.error_replies == 0)
        return 0;
    return 1;
}

static int exit_code_campaign(const fleet *f)
{
    const fleet_stats *s = &f->st;
    bool all_done = all_vehicles_done(f);
    return all_done && s->verify_failures == 0 && s->error_replies == 0 &&
                   s->puback_failures == 0 && !f->timed_out && !f->interrupted
               ? 0
               : 1;
}

static int exit_code(const fleet *f)
{
    if (f->cfg.mode == FLEET_MODE_SHADOW)
        return exit_code_shadow(f);
    if (f->cfg.mode == FLEET_MODE_CAMPAIGN)
        return exit_code_campaign(f);

    bool all_done = all_vehicles_done(f);
    if (f->broker_gone)
        return EXIT_BROKER_GONE;
    if (all_done && f->st.reports_acked == expected_reports(f) && f->st.puback_failures == 0 &&
        f->st.error_replies == 0)
        return 0;
    return 1;
}

static const char *outcome(const fleet *f, int code)
{
    if (code == 0)
        return "ok";
    if (code == EXIT_BROKER_GONE)
        return "broker went away";
    if (f->interrupted)
        return "interrupted";
    if (f->timed_out)
        return "timed out";
    return "failed";
}

static void print_json(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;

    printf("{\"vehicles\": %u, \"reports_expected\": %llu, \"reports_sent\": %llu, "
           "\"reports_acked\": %llu, \"events_acked\": %llu, \"puback_failures\": %llu, "
           "\"error_replies\": %llu, \"replays\": %llu, \"seconds\": %.3f, \"acks_per_s\": %.1f, "
           "\"events_per_s\": %.1f, \"disconnects\": %llu, \"connect_failures\": %llu, "
           "\"connect_refused\": %llu, \"resent\": %llu, \"outcome\": \"%s\", \"exit\": %d}\n",
           f->cfg.vehicles, (unsigned long long)expected_reports(f),
           (unsigned long long)s->reports_sent, (unsigned long long)s->reports_acked,
           (unsigned long long)s->events_acked, (unsigned long long)s->puback_failures,
           (unsigned long long)s->error_replies, (unsigned long long)s->replays, secs,
           (double)s->reports_acked / secs, (double)s->events_acked / secs,
           (unsigned long long)s->disconnects, (unsigned long long)s->connect_failures,
           (unsigned long long)s->connect_refused, (unsigned long long)s->resent, outcome(f, code),
           code);
}

static void print_json_shadow(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;

    printf("{\"mode\": \"shadow\", \"vehicles\": %u, \"all_up\": %s, \"ready_ms\": %lld, "
           "\"updates_acked\": %llu, \"notices\": %llu, \"vehicles_notified\": %u, "
           "\"first_notice_ms\": %lld, \"last_notice_ms\": %lld, \"puback_failures\": %llu, "
           "\"error_replies\": %llu, \"seconds\": %.3f, \"disconnects\": %llu, "
           "\"connect_failures\": %llu, \"connect_refused\": %llu, \"outcome\": \"%s\", "
           "\"exit\": %d}\n",
           f->cfg.vehicles, f->all_up ? "true" : "false", (long long)f->ready_ms,
           (unsigned long long)s->updates_acked, (unsigned long long)s->notices,
           s->vehicles_notified, (long long)s->first_notice_ms, (long long)s->last_notice_ms,
           (unsigned long long)s->puback_failures, (unsigned long long)s->error_replies, secs,
           (unsigned long long)s->disconnects, (unsigned long long)s->connect_failures,
           (unsigned long long)s->connect_refused, outcome(f, code), code);
}

static void print_human_shadow(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;
    double span = (double)(s->last_notice_ms - s->first_notice_ms) / 1000.0;

    printf("ota-fleet: %u vehicles, %llu shadow updates acked, %s, in %.3f s\n", f->cfg.vehicles,
           (unsigned long long)s->updates_acked, f->all_up ? "all up at once" : "never all up",
           secs);
    printf("  %llu notices to %u vehicles", (unsigned long long)s->notices, s->vehicles_notified);
    if (s->notices > 1 && span > 0)
        printf(" over %.3f s (%.1f notices/s)", span, (double)(s->notices - 1) / span);
    printf("\n  PUBACK failures %llu, error replies %llu, disconnects %llu, connect failures "
           "%llu, refused %llu\n",
           (unsigned long long)s->puback_failures, (unsigned long long)s->error_replies,
           (unsigned long long)s->disconnects, (unsigned long long)s->connect_failures,
           (unsigned long long)s->connect_refused);
    printf("  result: %s (exit %d)\n", outcome(f, code), code);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of the served-again delays (sorted at the end), 0 without any. */
static unsigned again_quantile(const fleet *f, double q)
{
    if (f->n_again == 0)
        return 0;
    size_t i = (size_t)(q * (double)(f->n_again - 1) + 0.5);
    return f->again_ms[i];
}

static void print_json_campaign(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;
    typedef unsigned long long ull;

    printf("{\"mode\": \"campaign\", \"vehicles\": %u, \"notices\": %llu, "
           "\"vehicles_notified\": %u, \"descriptions_verified\": %llu, "
           "\"keys_unwrapped\": %llu, \"files_verified\": %llu, \"bytes\": %llu, "
           "\"blocks\": %llu, \"blocks_dropped\": %llu, \"bitmap_requests\": %llu, "
           "\"resumes\": %llu, \"links_cut\": %llu, \"disconnects\": %llu, "
           "\"succeeded\": %u, \"failed\": %u, \"canceled\": %u, \"reports_acked\": %llu, "
           "\"verify_failures\": %llu, \"error_replies\": %llu, \"puback_failures\": %llu, "
           "\"first_notice_ms\": %lld, \"last_notice_ms\": %lld, \"served_again\": {\"n\": %zu, "
           "\"p50_ms\": %u, \"p99_ms\": %u, \"max_ms\": %u, "
           "\"last_ms\": %lld}, \"seconds\": %.3f, \"outcome\": \"%s\", \"exit\": %d}\n",
           f->cfg.vehicles, (ull)s->notices, s->vehicles_notified, (ull)s->descs_verified,
           (ull)s->keys_unwrapped, (ull)s->files_verified, (ull)s->bytes, (ull)s->blocks,
           (ull)s->blocks_dropped, (ull)s->bitmap_requests, (ull)s->resumes, (ull)s->links_cut,
           (ull)s->disconnects, s->succeeded, s->failed, s->canceled, (ull)s->reports_acked,
           (ull)s->verify_failures, (ull)s->error_replies, (ull)s->puback_failures,
           (long long)s->first_notice_ms, (long long)s->last_notice_ms, f->n_again,
           again_quantile(f, 0.5), again_quantile(f, 0.99), again_quantile(f, 1.0),
           (long long)s->served_again_last_ms, secs, outcome(f, code), code);
}

static void print_human_campaign(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;
    typedef unsigned long long ull;

    printf("ota-fleet: %u vehicles, %u notified, %u succeeded, %u failed, %u canceled in "
           "%.1f s\n",
           f->cfg.vehicles, s->vehicles_notified, s->succeeded, s->failed, s->canceled, secs);
    printf("  verified: %llu signed descriptions, %llu content keys, %llu files (%.1f MB, %llu "
           "blocks)\n",
           (ull)s->descs_verified, (ull)s->keys_unwrapped, (ull)s->files_verified,
           (double)s->bytes / 1e6, (ull)s->blocks);
    printf("  faults: %llu links cut, %llu disconnects, %llu resumed requests, %llu blocks "
           "lost, %llu bitmap requests\n",
           (ull)s->links_cut, (ull)s->disconnects, (ull)s->resumes, (ull)s->blocks_dropped,
           (ull)s->bitmap_requests);
    printf("  wrong: %llu failed checks, %llu error replies, %llu PUBACK failures\n",
           (ull)s->verify_failures, (ull)s->error_replies, (ull)s->puback_failures);
    printf("  result: %s (exit %d)\n", outcome(f, code), code);
}

static void print_human(const fleet *f, double secs, int code)
{
    const fleet_stats *s = &f->st;

    printf("ota-fleet: %u vehicles, %llu/%llu reports acked (%llu events) in %.3f s\n",
           f->cfg.vehicles, (unsigned long long)s->reports_acked,
           (unsigned long long)expected_reports(f), (unsigned long long)s->events_acked, secs);
    printf("  %.1f acks/s, %.1f events/s\n", (double)s->reports_acked / secs,
           (double)s->events_acked / secs);
    printf("  sent %llu (re-sent %llu), PUBACK failures %llu, error replies %llu\n",
           (unsigned long long)s->reports_sent, (unsigned long long)s->resent,
           (unsigned long long)s->puback_failures, (unsigned long long)s->error_replies);
    printf("  disconnects %llu, connect failures %llu, refused %llu\n",
           (unsigned long long)s->disconnects, (unsigned long long)s->connect_failures,
           (unsigned long long)s->connect_refused);
    printf("  result: %s (exit %d)\n", outcome(f, code), code);
}

static void print_summary(const fleet *f, double secs, int code)
{
    bool json = f->cfg.json;

    if (f->cfg.mode == FLEET_MODE_CAMPAIGN)
        (json ? print_json_campaign : print_human_campaign)(f, secs, code);
    else if (f->cfg.mode == FLEET_MODE_SHADOW)
        (json ? print_json_shadow : print_human_shadow)(f, secs, code);
    else
        (json ? print_json : print_human)(f, secs, code);
}

/* Mode keys: "VIN,public_key" per vehicle. */
static int print_keys(const fleet_config *c)
{
    uint8_t priv[32], pub[32];
    char vin[FLEET_VIN_LEN + 1], hex[65];

    for (uint32_t i = 0; i < c->vehicles; i++) {
        snprintf(vin, sizeof vin, "%s%012llu", c->vin_prefix,
                 (unsigned long long)(c->vin_offset + i));
        if (vc_seed_vehicle_key(c->key_seed, vin, priv, pub) != 0)
            return 1;
        vc_hex(pub, 32, hex);
        printf("%s,%s\n", vin, hex);
    }
    return 0;
}

int main(int argc, char **argv)
{
    fleet f;
    int rc;

    memset(&f, 0, sizeof f);
    rc = parse_args(argc, argv, &f.cfg);
    if (rc != 0) {
        if (rc < 0)
            fputs(usage_text, stderr);
        return rc < 0 ? EXIT_USAGE : 0;
    }
    if (f.cfg.mode == FLEET_MODE_KEYS)
        return print_keys(&f.cfg);
    if (raise_fd_limit(f.cfg.vehicles) != 0)
        return EXIT_USAGE;
    install_signals();
    mosquitto_lib_init();
    rc = fleet_init(&f) == 0 ? fleet_run(&f, &g_stop) : -1;
    if (rc == 0) {
        double secs = f.end - f.start > 1e-6 ? f.end - f.start : 1e-6;
        rc = exit_code(&f);
        if (f.acked)
            fleet_acked_flush(f.acked);
        if (f.n_again > 1) /* for the served-again quantiles */
            qsort(f.again_ms, f.n_again, sizeof *f.again_ms, cmp_u32);
        print_summary(&f, secs, rc);
    } else {
        rc = 1;
    }
    fleet_free(&f);
    mosquitto_lib_cleanup();
    return rc;
}
