/*
 * otactl_args.c — otactl's option parser and small helpers (input files, VIN lists, the
 * monotonic clock).
 *
 * Every subcommand declares its long options (--name, --name VALUE or --name=VALUE, a
 * repeatable option keeps every value); anything else starting with '-' is tried as a
 * global option (-h/--host, -p/--port, ...), so global options may come before or after
 * the subcommand. A subcommand's own option wins over a global one of the same name
 * (`package add --json FILE` reads FILE; `otactl --json package add ...` prints JSON).
 * "--" ends the options; "-" alone is a positional (stdin where a file is expected).
 */
#include "otactl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char global_help_text[] =
    "Global options (before or after the subcommand):\n"
    "  -h, --host HOST      broker address (default 127.0.0.1)\n"
    "  -p, --port PORT      broker port (default 1883, 8883 with TLS)\n"
    "  -u, --user NAME      MQTT username (an operator listed in plugin_opt_admin_users)\n"
    "  -P, --password PW    MQTT password (shows in ps: prefer the two below)\n"
    "      --password-file FILE  read the password from the first line of FILE\n"
    "                       (environment: OTACTL_PASSWORD; OTACTL_USER, OTACTL_HOST and\n"
    "                       OTACTL_PORT for --user, --host and --port)\n"
    "      --tls            use TLS (implied by --cafile/--cert/--key; without --cafile\n"
    "                       the system's CA certificates are used)\n"
    "      --cafile FILE    CA certificate(s) to verify the broker with (PEM)\n"
    "      --cert FILE      client certificate (PEM)\n"
    "      --key FILE       client private key (PEM)\n"
    "      --insecure       do not check the broker certificate's host name\n"
    "      --json           print each response's data object as one line of JSON\n"
    "      --timeout SEC    wait at most SEC seconds to connect and for each response\n"
    "                       (default 10)\n"
    "      --dry-run        print the request JSON (one line per request) instead of\n"
    "                       sending it; no connection is made\n"
    "  -q, --quiet          no progress output\n"
    "      --help           help (also after any subcommand)\n";

void otactl_global_help(void)
{
    fputs(global_help_text, stdout);
}

int otactl_usage_err(const otactl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    if (ctx && ctx->cmd_name) {
        fprintf(stderr, "%s: ", ctx->cmd_name);
    }
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return OTACTL_EUSAGE;
}

int otactl_parse_u64(const char *s, uint64_t *v)
{
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) {
        return -1;
    }
    *v = x;
    return 0;
}

/* Splits "--name=value" / "--name" / "-x" into the name (without dashes) and value. */
static void split_opt(const char *arg, char *name, size_t cap, const char **value)
{
    const char *n = arg[1] == '-' ? arg + 2 : arg + 1;
    const char *eq = arg[1] == '-' ? strchr(n, '=') : NULL;
    size_t len = eq ? (size_t)(eq - n) : strlen(n);
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(name, n, len);
    name[len] = '\0';
    *value = eq ? eq + 1 : NULL;
}

static const struct {
    char shrt;
    const char *name;
    bool has_arg;
} global_opts[] = {
    {'h', "host", true},        {'p', "port", true},     {'u', "user", true},
    {0, "username", true},      {'P', "password", true}, {0, "tls", false},
    {0, "cafile", true},        {0, "cert", true},       {0, "key", true},
    {0, "insecure", false},     {0, "json", false},      {0, "timeout", true},
    {0, "dry-run", false},      {'q', "quiet", false},   {0, "help", false},
    {0, "password-file", true},
};

static int find_global(const char *arg, const char *name)
{
    for (size_t k = 0; k < sizeof(global_opts) / sizeof(global_opts[0]); k++) {
        if (arg[1] == '-' ? strcmp(name, global_opts[k].name) == 0
                          : (name[0] == global_opts[k].shrt && name[0] && !name[1])) {
            return (int)k;
        }
    }
    return -1;
}

static int parse_int_opt(const char *what, const char *v, uint64_t lo, uint64_t hi, int *out)
{
    uint64_t x;
    if (otactl_parse_u64(v, &x) != 0 || x < lo || x > hi) {
        return otactl_usage_err(NULL, "%s: expected an integer %llu..%llu, got \"%s\"", what,
                                (unsigned long long)lo, (unsigned long long)hi, v);
    }
    *out = (int)x;
    return OTACTL_OK;
}

static int apply_global(otactl_ctx *ctx, const char *name, const char *v)
{
    if (!strcmp(name, "host")) {
        ctx->host = v;
    } else if (!strcmp(name, "port")) {
        return parse_int_opt("--port", v, 1, 65535, &ctx->port);
    } else if (!strcmp(name, "user") || !strcmp(name, "username")) {
        ctx->user = v;
    } else if (!strcmp(name, "password")) {
        ctx->password = v;
    } else if (!strcmp(name, "password-file")) {
        ctx->password_file = v;
    } else if (!strcmp(name, "tls")) {
        ctx->tls = true;
    } else if (!strcmp(name, "cafile")) {
        ctx->cafile = v, ctx->tls = true;
    } else if (!strcmp(name, "cert")) {
        ctx->cert = v, ctx->tls = true;
    } else if (!strcmp(name, "key")) {
        ctx->key = v, ctx->tls = true;
    } else if (!strcmp(name, "insecure")) {
        ctx->insecure = true;
    } else if (!strcmp(name, "json")) {
        ctx->json = true;
    } else if (!strcmp(name, "timeout")) {
        return parse_int_opt("--timeout", v, 1, 86400, &ctx->timeout_s);
    } else if (!strcmp(name, "dry-run")) {
        ctx->dry_run = true;
    } else if (!strcmp(name, "quiet")) {
        ctx->quiet = true;
    }
    return OTACTL_OK;
}

int otactl_env_defaults(otactl_ctx *ctx)
{
    const char *host = getenv("OTACTL_HOST"), *port = getenv("OTACTL_PORT");
    if (host && *host) {
        ctx->host = host;
    }
    return port && *port ? parse_int_opt("OTACTL_PORT", port, 1, 65535, &ctx->port) : OTACTL_OK;
}

int otactl_global_opt(otactl_ctx *ctx, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    char name[64];
    const char *value;
    if (arg[0] != '-' || !arg[1]) {
        return 0;
    }
    split_opt(arg, name, sizeof(name), &value);
    int k = find_global(arg, name);
    if (k < 0) {
        return 0;
    }
    if (!strcmp(global_opts[k].name, "help")) {
        return OTACTL_HELP;
    }
    if (global_opts[k].has_arg && !value) {
        if (*i + 1 >= argc) {
            return otactl_usage_err(NULL, "option %s needs a value", arg);
        }
        value = argv[++*i];
    } else if (!global_opts[k].has_arg && value) {
        return otactl_usage_err(NULL, "option --%s takes no value", name);
    }
    int rc = apply_global(ctx, global_opts[k].name, value);
    return rc == OTACTL_OK ? 1 : rc;
}

static int find_spec(const otactl_opt *spec, const char *arg, const char *name)
{
    if (!spec || arg[1] != '-') {
        return -1;
    }
    for (int k = 0; spec[k].name; k++) {
        if (!strcmp(spec[k].name, name)) {
            return k;
        }
    }
    return -1;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--help")) {
            return true;
        }
    }
    return false;
}

/* One option of the subcommand at argv[*i]. */
static int take_spec_opt(otactl_ctx *ctx, int argc, char **argv, int *i, int k, const char *value,
                         otactl_args *out)
{
    const otactl_opt *o = &out->spec[k];
    if (o->arg && !value) {
        if (*i + 1 >= argc) {
            return otactl_usage_err(ctx, "option --%s needs %s", o->name, o->arg);
        }
        value = argv[++*i];
    } else if (!o->arg && value) {
        return otactl_usage_err(ctx, "option --%s takes no value", o->name);
    }
    out->which[out->n] = k;
    out->vals[out->n++] = (char *)value;
    return OTACTL_OK;
}

int otactl_args_parse(otactl_ctx *ctx, int argc, char **argv, const otactl_opt *spec,
                      otactl_args *out)
{
    memset(out, 0, sizeof(*out));
    out->spec = spec;
    out->which = calloc((size_t)argc + 1, sizeof(int));
    out->vals = calloc((size_t)argc + 1, sizeof(char *));
    out->pos = calloc((size_t)argc + 1, sizeof(char *));
    if (wants_help(argc, argv)) {
        return OTACTL_HELP;
    }
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        if (opts_done || arg[0] != '-' || !arg[1]) {
            out->pos[out->npos++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            opts_done = true;
            continue;
        }
        char name[64];
        const char *value;
        split_opt(arg, name, sizeof(name), &value);
        int k = find_spec(spec, arg, name);
        int rc = k >= 0 ? take_spec_opt(ctx, argc, argv, &i, k, value, out)
                        : otactl_global_opt(ctx, argc, argv, &i);
        if (k < 0 && rc == 0) {
            return otactl_usage_err(ctx, "unknown option %s (see --help)", arg);
        }
        if (rc != OTACTL_OK && rc != 1) {
            return rc;
        }
    }
    return OTACTL_OK;
}

void otactl_args_free(otactl_args *a)
{
    free(a->which);
    free(a->vals);
    free(a->pos);
    memset(a, 0, sizeof(*a));
}

int otactl_arg_count(const otactl_args *a, const char *name)
{
    int c = 0;
    for (int i = 0; i < a->n; i++) {
        c += !strcmp(a->spec[a->which[i]].name, name);
    }
    return c;
}

const char *otactl_arg_nth(const otactl_args *a, const char *name, int k)
{
    for (int i = 0; i < a->n; i++) {
        if (!strcmp(a->spec[a->which[i]].name, name) && k-- == 0) {
            return a->vals[i];
        }
    }
    return NULL;
}

const char *otactl_arg(const otactl_args *a, const char *name)
{
    int c = otactl_arg_count(a, name);
    return c ? otactl_arg_nth(a, name, c - 1) : NULL;
}

bool otactl_flag(const otactl_args *a, const char *name)
{
    return otactl_arg_count(a, name) > 0;
}

char *otactl_read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }
            buf = nb, cap *= 2;
        }
    }
    int err = ferror(f) ? errno : 0;
    if (f != stdin) {
        fclose(f);
    }
    if (buf && err) {
        free(buf);
        errno = err;
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        if (len) {
            *len = n;
        }
    }
    return buf;
}

cJSON *otactl_read_json(const otactl_ctx *ctx, const char *path)
{
    size_t len;
    char *text = otactl_read_file(path, &len);
    if (!text) {
        otactl_usage_err(ctx, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len + 1, &end, true);
    if (!j) {
        size_t off = end ? (size_t)(end - text) : 0;
        otactl_usage_err(ctx, "%s is not valid JSON (near byte %zu)", path, off);
    }
    free(text);
    return j;
}

/* A word of `task vehicles` / `vehicle list` output that is not a VIN: an execution
 * state, a code (E_..., cancel_requested: a VIN has no '_') — so that such output can be
 * piped into --vins-file -. */
static bool listing_word(const char *w, size_t len)
{
    static const char *const states[] = {"queued",     "notified",  "downloading",
                                         "installing", "succeeded", "failed",
                                         "canceled",   "rejected",  NULL};
    if (memchr(w, '_', len)) {
        return true;
    }
    for (int i = 0; states[i]; i++) {
        if (strlen(states[i]) == len && !strncmp(w, states[i], len)) {
            return true;
        }
    }
    return false;
}

void otactl_vins_from_text(const char *text, cJSON *vins)
{
    const char *p = text;
    while (*p) {
        if (*p == '#') {
            p += strcspn(p, "\n");
            continue;
        }
        size_t skip = strspn(p, " \t\r\n,;");
        if (skip) {
            p += skip;
            continue;
        }
        size_t len = strcspn(p, " \t\r\n,;#");
        if (listing_word(p, len)) {
            p += len;
            continue;
        }
        char *v = strndup(p, len);
        cJSON_AddItemToArray(vins, cJSON_CreateString(v));
        free(v);
        p += len;
    }
}

double otactl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int otactl_vins_from_file(otactl_ctx *ctx, const char *path, cJSON *vins)
{
    char *text = otactl_read_file(path, NULL);
    if (!text) {
        return otactl_usage_err(ctx, "cannot read %s", path);
    }
    otactl_vins_from_text(text, vins);
    free(text);
    return OTACTL_OK;
}

int otactl_vins_from_args(otactl_ctx *ctx, const otactl_args *a, cJSON *vins)
{
    for (int i = 0; i < otactl_arg_count(a, "vins"); i++) {
        otactl_vins_from_text(otactl_arg_nth(a, "vins", i), vins);
    }
    int rc = OTACTL_OK;
    for (int i = 0; i < otactl_arg_count(a, "vins-file") && rc == OTACTL_OK; i++) {
        rc = otactl_vins_from_file(ctx, otactl_arg_nth(a, "vins-file", i), vins);
    }
    return rc;
}
