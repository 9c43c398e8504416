/*
 * config.c — reads the plugin_opt_* lines of mosquitto.conf into an ota_config.
 *
 * One table describes every option: its key (without "plugin_opt_"), its kind and where
 * it goes. Values are trimmed (Mosquitto keeps trailing spaces). Relative paths stay
 * relative to the broker's working directory, as SPEC §7 says. Unknown keys are an
 * error, so a typo does not silently fall back to a default.
 */
#include "ota_plugin.h"
#include "opt_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { OPT_STRING, OPT_UNSIGNED, OPT_SIZE, OPT_LIST, OPT_WORDS } opt_kind;

typedef struct {
    const char *key;
    opt_kind kind;
    size_t offset; /* into ota_config */
    unsigned long long min, max;
} opt_def;

#define CFG_OFF(field) offsetof(ota_config, field)

static const opt_def opt_defs[] = {
    {"store", OPT_STRING, CFG_OFF(store_uri), 0, 0},
    {"spool_dir", OPT_STRING, CFG_OFF(spool_dir), 0, 0},
    {"file_dir", OPT_STRING, CFG_OFF(file_dir), 0, 0},
    {"admin_users", OPT_LIST, CFG_OFF(admin_users), 0, 0},
    {"spool_sync_ms", OPT_UNSIGNED, CFG_OFF(spool_sync_ms), 1, 10000},
    {"max_report_bytes", OPT_SIZE, CFG_OFF(limits.max_payload), 64, 16u * 1024 * 1024},
    {"max_report_events", OPT_SIZE, CFG_OFF(limits.max_events), 1, 65536},
    {"writer_batch", OPT_SIZE, CFG_OFF(writer_batch), 1, 100000},
    {"writer_nice", OPT_UNSIGNED, CFG_OFF(writer_nice), 0, 19},
    {"log_replay_errors", OPT_WORDS, CFG_OFF(log_replay_errors), 0, 0},
    {"file_pass_bytes", OPT_SIZE, CFG_OFF(file_pass_bytes), 1024, 64u * 1024 * 1024},
    {"file_queue_blocks", OPT_UNSIGNED, CFG_OFF(file_queue_blocks), 1, 65536},
    {"signing_key", OPT_STRING, CFG_OFF(signing_key), 0, 0},
    {"content_kek", OPT_STRING, CFG_OFF(content_kek), 0, 0},
    {"description_ttl_s", OPT_UNSIGNED, CFG_OFF(description_ttl_s), 60, 31536000},
    {"sign_threads", OPT_UNSIGNED, CFG_OFF(sign_threads), 1, 16},
    {"wake", OPT_UNSIGNED, CFG_OFF(wake), 0, 1},
    {"vehicle_rate", OPT_UNSIGNED, CFG_OFF(rate.rate), 0, 1000000},
    {"vehicle_burst", OPT_UNSIGNED, CFG_OFF(rate.burst), 1, 1000000},
    {"vehicle_kick_after", OPT_UNSIGNED, CFG_OFF(rate.kick_after), 0, 1000000},
    {"max_shadow_bytes", OPT_SIZE, CFG_OFF(max_shadow_bytes), 64, OTA_SHADOW_MAX_PAYLOAD},
    {"max_request_bytes", OPT_SIZE, CFG_OFF(max_request_bytes), 64, 65536},
    {"max_task_vins", OPT_SIZE, CFG_OFF(max_task_vins), 1, 1000000},
    {"broker_id", OPT_STRING, CFG_OFF(broker_id), 0, 0},
    {"task_minute_ms", OPT_UNSIGNED, CFG_OFF(task_minute_ms), 1, 60000},
    {"test_time_scale", OPT_UNSIGNED, CFG_OFF(test_time_scale), 1, 100000},
    {"sign_delay_ms", OPT_UNSIGNED, CFG_OFF(sign_delay_ms), 0, 10000},
    /* issue 13: who authenticates usernames; file/data bytes per vehicle per second and at
     * once (0: no byte pacing) */
    {"auth", OPT_STRING, CFG_OFF(auth), 0, 0},
    {"file_vehicle_rate", OPT_SIZE, CFG_OFF(file_vehicle_rate), 0, 1024u * 1024 * 1024},
    {"file_vehicle_burst", OPT_SIZE, CFG_OFF(file_vehicle_burst), 131072, 1024u * 1024 * 1024},
    {"signing_alg", OPT_STRING, CFG_OFF(signing_alg), 0, 0},
    {"presign_max", OPT_SIZE, CFG_OFF(presign_max), 0, 10000000},
    {"snapshot_period_ms", OPT_UNSIGNED, CFG_OFF(snapshot_period_ms), 1000, 86400000},
    {"accept_unknown_vins", OPT_UNSIGNED, CFG_OFF(accept_unknown_vins), 0, 1},
};

#define OTA_PRESIGN_MAX_DEFAULT 200000
#define OTA_SNAPSHOT_PERIOD_MS_DEFAULT 60000 /* a whole local snapshot a minute (standby.c) */
#define OTA_FILE_PASS_BYTES_DEFAULT (1024 * 1024)
#define OTA_FILE_QUEUE_BLOCKS_DEFAULT 256
#define OTA_FILE_VEHICLE_RATE_DEFAULT (1024u * 1024)
#define OTA_FILE_VEHICLE_BURST_DEFAULT (4u * 1024 * 1024)
#define LOG_REPLAY_ERRORS_DEFAULT "upgrade_failed,rollback_failed,peripheral_failed"

static int set_string(ota_config *cfg, const opt_def *d, const char *value)
{
    char **slot = (char **)((char *)cfg + d->offset);
    free(*slot);
    *slot = ota_opt_trimmed(value);
    return *slot && **slot ? 0 : -1;
}

static int set_uint(ota_config *cfg, const opt_def *d, const char *value)
{
    unsigned long long v;
    if (ota_opt_uint(value, d->min, d->max, &v) != 0) {
        return -1;
    }
    void *slot = (char *)cfg + d->offset;
    if (d->kind == OPT_UNSIGNED) {
        *(unsigned *)slot = (unsigned)v;
    } else {
        *(size_t *)slot = (size_t)v;
    }
    return 0;
}

static int set_list(ota_config *cfg, const char *value)
{
    char *copy = strdup(value);
    if (!copy) {
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *name = ota_opt_trimmed(tok);
        char **grown = realloc(cfg->admin_users, (cfg->n_admin_users + 1) * sizeof(char *));
        if (!name || !grown || !*name) {
            free(name);
            if (grown) {
                cfg->admin_users = grown;
            }
            free(copy);
            return -1;
        }
        cfg->admin_users = grown;
        cfg->admin_users[cfg->n_admin_users++] = name;
    }
    free(copy);
    return 0;
}

/* Appends one trimmed word of a word list to out (sized for the whole value): -1 when it
 * is empty, longer than OTA_ID_MAX or holds a blank. */
static int append_word(char *out, const char *tok)
{
    char *word = ota_opt_trimmed(tok);
    size_t n = word ? strlen(word) : 0;
    int rc = n == 0 || n > OTA_ID_MAX || strpbrk(word, " \t") ? -1 : 0;
    if (rc == 0) {
        if (*out) {
            strcat(out, ",");
        }
        strcat(out, word);
    }
    free(word);
    return rc;
}

/* A comma-separated list of words, stored normalized as "w1,w2"; an empty word (",,", a
 * trailing comma) is an error. The value "none" alone stores "" (the empty list). */
static int set_words(ota_config *cfg, const opt_def *d, const char *value)
{
    char *copy = strdup(value);
    char *out = calloc(1, strlen(value) + 1);
    int rc = copy && out ? 0 : -1;
    char *rest = copy;
    while (rc == 0 && rest) {
        char *tok = strsep(&rest, ",");
        rc = append_word(out, tok);
    }
    free(copy);
    if (rc != 0) {
        free(out);
        return -1;
    }
    if (strcmp(out, "none") == 0) {
        *out = '\0';
    }
    char **slot = (char **)((char *)cfg + d->offset);
    free(*slot);
    *slot = out;
    return 0;
}

static const opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
        if (strcmp(opt_defs[i].key, key) == 0) {
            return &opt_defs[i];
        }
    }
    return NULL;
}

static int apply_opt(ota_config *cfg, const struct mosquitto_opt *o, char *err, size_t errlen)
{
    const opt_def *d = find_opt(o->key);
    if (!d) {
        snprintf(err, errlen, "unknown option plugin_opt_%s", o->key);
        return -1;
    }
    int rc = d->kind == OPT_STRING  ? set_string(cfg, d, o->value)
             : d->kind == OPT_LIST  ? set_list(cfg, o->value)
             : d->kind == OPT_WORDS ? set_words(cfg, d, o->value)
                                    : set_uint(cfg, d, o->value);
    if (rc != 0) {
        if (d->kind == OPT_UNSIGNED || d->kind == OPT_SIZE) {
            snprintf(err, errlen, "plugin_opt_%s: \"%s\" is not a whole number in %llu..%llu",
                     o->key, o->value, d->min, d->max);
        } else {
            snprintf(err, errlen, "plugin_opt_%s: bad value \"%s\"", o->key, o->value);
        }
    }
    return rc;
}

static int set_defaults(ota_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->store_uri = strdup("sqlite:ota.db");
    cfg->spool_dir = strdup("ota-spool");
    cfg->file_dir = strdup("ota-files");
    cfg->spool_sync_ms = OTA_SPOOL_SYNC_MS_DEFAULT;
    cfg->limits.max_payload = OTA_REPORT_MAX_PAYLOAD_DEFAULT;
    cfg->limits.max_events = OTA_REPORT_MAX_EVENTS_DEFAULT;
    cfg->writer_batch = OTA_WRITER_BATCH_DEFAULT;
    cfg->writer_nice = OTA_WRITER_NICE_DEFAULT;
    cfg->log_replay_errors = strdup(LOG_REPLAY_ERRORS_DEFAULT);
    cfg->file_pass_bytes = OTA_FILE_PASS_BYTES_DEFAULT;
    cfg->file_queue_blocks = OTA_FILE_QUEUE_BLOCKS_DEFAULT;
    cfg->signing_key = strdup("ota-signing.pem");
    cfg->content_kek = strdup("ota-content.kek");
    cfg->description_ttl_s = 86400;
    cfg->sign_threads = 1;
    cfg->task_minute_ms = 60000;
    cfg->test_time_scale = 1;
    cfg->wake = 1;
    cfg->rate = (ota_rate_config){OTA_RATE_DEFAULT, OTA_RATE_BURST_DEFAULT, OTA_RATE_KICK_DEFAULT};
    cfg->max_shadow_bytes = OTA_SHADOW_MAX_PAYLOAD;
    cfg->max_request_bytes = OTA_REQUEST_MAX_PAYLOAD_DEFAULT;
    cfg->max_task_vins = OTA_TASK_VINS_DEFAULT;
    cfg->auth = strdup("broker");
    cfg->file_vehicle_rate = OTA_FILE_VEHICLE_RATE_DEFAULT;
    cfg->file_vehicle_burst = OTA_FILE_VEHICLE_BURST_DEFAULT;
    cfg->presign_max = OTA_PRESIGN_MAX_DEFAULT;
    cfg->snapshot_period_ms = OTA_SNAPSHOT_PERIOD_MS_DEFAULT;
    return cfg->store_uri && cfg->spool_dir && cfg->file_dir && cfg->log_replay_errors &&
                   cfg->signing_key && cfg->content_kek && cfg->auth
               ? 0
               : -1;
}

/* Without plugin_opt_broker_id: "<hostname>:<absolute spool dir>". Two brokers never share a
 * spool, and a broker keeps its spool across restarts, so the id is unique and stable. */
static int default_broker_id(ota_config *cfg)
{
    char host[256] = "localhost", cwd[4096] = "";
    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    bool relative = cfg->spool_dir[0] != '/';
    if (relative && !getcwd(cwd, sizeof(cwd))) {
        return -1;
    }
    size_t len = strlen(host) + strlen(cwd) + strlen(cfg->spool_dir) + 3;
    cfg->broker_id = malloc(len);
    if (!cfg->broker_id) {
        return -1;
    }
    snprintf(cfg->broker_id, len, "%s:%s%s%s", host, cwd, relative ? "/" : "", cfg->spool_dir);
    return 0;
}

int ota_config_parse(ota_config *cfg, const struct mosquitto_opt *opts, int n, char *err,
                     size_t errlen)
{
    if (set_defaults(cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (apply_opt(cfg, &opts[i], err, errlen) != 0) {
            ota_config_free(cfg);
            return -1;
        }
    }
    if (strcmp(cfg->auth, "broker") != 0 && strcmp(cfg->auth, "none") != 0) {
        snprintf(err, errlen, "plugin_opt_auth: \"%s\" is neither broker nor none", cfg->auth);
        ota_config_free(cfg);
        return -1;
    }
    if (!cfg->broker_id && default_broker_id(cfg) != 0) {
        snprintf(err, errlen, "plugin_opt_broker_id: no default (hostname or directory unknown)");
        ota_config_free(cfg);
        return -1;
    }
    return 0;
}

void ota_config_free(ota_config *cfg)
{
    free(cfg->store_uri);
    free(cfg->spool_dir);
    free(cfg->file_dir);
    free(cfg->log_replay_errors);
    free(cfg->signing_key);
    free(cfg->content_kek);
    free(cfg->broker_id);
    free(cfg->auth);
    free(cfg->signing_alg);
    for (size_t i = 0; i < cfg->n_admin_users; i++) {
        free(cfg->admin_users[i]);
    }
    free(cfg->admin_users);
    memset(cfg, 0, sizeof(*cfg));
}
