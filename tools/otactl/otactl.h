/*
 * otactl.h — shared declarations of otactl, the operator command-line tool of mosquitto-ota
 * (a client of the operator API on $CONTROL/ota/v1, docs/operator-api.md).
 *
 * Pieces: otactl.c (main, global options, top-level help), otactl_args.c (option parser
 * and small input helpers), otactl_cmds.c (the command table: subcommands and their
 * handlers), otactl_build.c (flags -> request JSON), otactl_import.c (CSV / JSON vehicle
 * files), otactl_conn.c (MQTT 5 connection, request / response), otactl_print.c (human
 * output), otactl_upload.c (file upload in CBOR chunks) and otactl_tasks.c (the `task`
 * group: createTask, getTask, listTaskVehicles, the task type rules).
 */
#ifndef OTACTL_H
#define OTACTL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses (and the status every handler returns). */
#define OTACTL_OK 0
#define OTACTL_ECMD 1    /* a command was answered with an error */
#define OTACTL_EUSAGE 2  /* usage error */
#define OTACTL_ECONN 3   /* connection problem or timeout */
#define OTACTL_HELP (-1) /* help was printed: exit 0 */

#define OTACTL_TOPIC_REQUEST "$CONTROL/ota/v1"
#define OTACTL_TOPIC_RESPONSE "$CONTROL/ota/v1/response"
#define OTACTL_TOPIC_FILE "$CONTROL/ota/v1/file"

typedef struct otactl_conn otactl_conn;

/* Global options and the state shared by every subcommand. */
typedef struct {
    const char *host;
    int port; /* 0: 1883, or 8883 with TLS */
    const char *user;
    const char *password;
    const char *password_file; /* --password-file (read when connecting) */
    char *password_buf;        /* the password read from it */
    bool tls;
    bool insecure;
    const char *cafile;
    const char *cert;
    const char *key;
    bool json;    /* print the data objects as JSON */
    bool dry_run; /* print the requests instead of sending them */
    bool quiet;   /* no progress output */
    int timeout_s;
    unsigned long next_corr; /* correlationData counter */
    const char *cmd_name;    /* "vehicle upsert", for messages */
    otactl_conn *conn;       /* opened on the first request */
} otactl_ctx;

/* ---- options (otactl_args.c) ---- */

/* One option of a subcommand: --name [ARG]. arg NULL: a flag. */
typedef struct {
    const char *name;
    const char *arg;
    const char *help;
} otactl_opt;

typedef struct {
    const otactl_opt *spec;
    int n;       /* options seen */
    int *which;  /* spec index of each option seen */
    char **vals; /* its value (NULL for a flag) */
    int npos;    /* positional arguments */
    char **pos;
} otactl_args;

/* Parses argv: options of spec, global options (applied to ctx), positionals. Returns
 * OTACTL_OK, OTACTL_HELP (--help seen; nothing printed) or OTACTL_EUSAGE (printed). */
int otactl_args_parse(otactl_ctx *ctx, int argc, char **argv, const otactl_opt *spec,
                      otactl_args *out);
void otactl_args_free(otactl_args *a);
/* Parses one global option at argv[*i] (advancing *i past its value). Returns 1 when it
 * was one, 0 when not, OTACTL_EUSAGE on a bad value, OTACTL_HELP for --help. */
int otactl_global_opt(otactl_ctx *ctx, int argc, char **argv, int *i);
void otactl_global_help(void);
/* Defaults from the environment, before the options: OTACTL_HOST, OTACTL_PORT (the
 * options win; OTACTL_USER and OTACTL_PASSWORD are read when connecting). */
int otactl_env_defaults(otactl_ctx *ctx);

const char *otactl_arg(const otactl_args *a, const char *name); /* last value or NULL */
bool otactl_flag(const otactl_args *a, const char *name);
int otactl_arg_count(const otactl_args *a, const char *name);
const char *otactl_arg_nth(const otactl_args *a, const char *name, int k);

/* Usage error "Error: <cmd>: <msg>" on stderr; returns OTACTL_EUSAGE. */
int otactl_usage_err(const otactl_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parses an unsigned decimal integer (whole text); 0 on success, -1 otherwise. */
int otactl_parse_u64(const char *s, uint64_t *v);
/* Reads a whole file (NUL-terminated; "-" = stdin); NULL with errno set on failure. */
char *otactl_read_file(const char *path, size_t *len);
/* Reads a JSON file; NULL (message printed) on failure. */
cJSON *otactl_read_json(const otactl_ctx *ctx, const char *path);
/* Appends VINs of text (separated by white space or commas; '#' starts a comment to the
 * end of the line) to the cJSON string array vins. */
/* Execution states and codes (words with '_') are skipped, so `otactl task vehicles ID`
 * output can be piped into --vins-file -. */
void otactl_vins_from_text(const char *text, cJSON *vins);
/* Seconds on the monotonic clock (deadlines, progress rates). */
double otactl_now_s(void);
/* Appends the VINs of file path ("-": standard input) to vins. OTACTL_OK, or OTACTL_EUSAGE
 * (printed) when it cannot be read. */
int otactl_vins_from_file(otactl_ctx *ctx, const char *path, cJSON *vins);
/* Appends the VINs of every --vins and --vins-file option of a to vins. OTACTL_OK, or
 * OTACTL_EUSAGE (printed) when a file cannot be read. */
int otactl_vins_from_args(otactl_ctx *ctx, const otactl_args *a, cJSON *vins);

/* ---- connection (otactl_conn.c) ---- */

/* Sends one request {"commands": commands} (a correlationData is added to every command)
 * and waits for every command's response. *responses: a new array of the response
 * objects, in the order of the commands. With --dry-run prints the request, sets
 * *responses to NULL and returns OTACTL_OK. Returns OTACTL_OK or OTACTL_ECONN/ECMD
 * (printed). */
int otactl_request(otactl_ctx *ctx, cJSON *commands, cJSON **responses);
/* Sends one command object (consumed) as a request; *resp: its response object (NULL with
 * --dry-run). */
int otactl_request_one(otactl_ctx *ctx, cJSON *cmd, cJSON **resp);
/* Sends payload as it is and waits for the next response message; *text (malloc'd) is
 * its payload. */
int otactl_request_raw(otactl_ctx *ctx, const char *payload, char **text);
/* Publishes binary data (QoS 1) on topic. */
int otactl_publish(otactl_ctx *ctx, const char *topic, const void *data, size_t len);
/* Waits for the next response object whose command is name; *resp: detached object. */
int otactl_wait_response(otactl_ctx *ctx, const char *name, cJSON **resp);
void otactl_conn_close(otactl_ctx *ctx);

/* ---- running commands (otactl_cmds.c) ---- */

/* One action of a command group (`otactl GROUP ACTION ...`). */
typedef int (*otactl_action_fn)(otactl_ctx *ctx, otactl_args *a);
typedef struct {
    const char *name;     /* NULL: the group's only action (and the end of a table) */
    const char *synopsis; /* positionals and options */
    const char *summary;
    const otactl_opt *opts;
    int min_pos, max_pos; /* max_pos -1: no limit */
    otactl_action_fn fn;
} otactl_action;

/* The `task` group (otactl_tasks.c). */
extern const otactl_action otactl_task_actions[];
/* The `group` group (otactl_groups.c). */
extern const otactl_action otactl_group_actions[];
/* A JSON object given to --flag as text, or as @FILE (@- = stdin); NULL (printed) when
 * it does not parse or is not an object (otactl_groups.c). */
cJSON *otactl_json_value(const otactl_ctx *ctx, const char *flag, const char *value);

typedef void (*otactl_printer)(const cJSON *data);

/* Sends one command object (consumed) and prints its data with printer (or as JSON with
 * --json). An error response is printed on stderr and gives OTACTL_ECMD. */
int otactl_run(otactl_ctx *ctx, cJSON *cmd, otactl_printer printer);
/* Prints "Error: <command>: <text>" for an error response; returns OTACTL_ECMD, or
 * OTACTL_OK when resp has no error. */
int otactl_check_response(const otactl_ctx *ctx, const cJSON *resp);
/* The top-level dispatcher: argv after the global options. */
int otactl_dispatch(otactl_ctx *ctx, int argc, char **argv);
void otactl_commands_help(void);

/* ---- building requests (otactl_build.c) ---- */

cJSON *otactl_cmd_new(const char *name); /* {"command": name} */
int otactl_build_vehicle(otactl_ctx *ctx, const otactl_args *a, cJSON **vehicle);
int otactl_build_model(otactl_ctx *ctx, const otactl_args *a, cJSON **cmd);
int otactl_build_package(otactl_ctx *ctx, const otactl_args *a, cJSON **pkg);
int otactl_build_strategy(otactl_ctx *ctx, const otactl_args *a, cJSON **strategy);
/* Sends command name with its `vins` array in batches of at most batch VINs; extra
 * (may be NULL) is merged into the first batch only; sums data[count_field]. */
int otactl_run_batched(otactl_ctx *ctx, const char *name, cJSON *fields, cJSON *vins,
                       const cJSON *extra, size_t batch, const char *count_field);

/* ---- vehicle import (otactl_import.c) ---- */

/* `vehicle import FILE`: CSV with a header row, or JSON (array of vehicle objects, or
 * {"vehicles": [...]}), sent in upsertVehicles batches. */
int otactl_cmd_vehicle_import(otactl_ctx *ctx, otactl_args *a);

/* ---- file upload (otactl_upload.c) ---- */

int otactl_cmd_file_upload(otactl_ctx *ctx, otactl_args *a);

/* ---- human output (otactl_print.c) ---- */

void otactl_print_kv(const cJSON *data);      /* "key: value" lines, nested flattened */
void otactl_print_vehicle(const cJSON *data); /* data.vehicle as key: value */
void otactl_print_model(const cJSON *data);
void otactl_print_package(const cJSON *data);
void otactl_print_packages(const cJSON *data); /* a table */
void otactl_print_quarantine(const cJSON *data); /* a table, then `next: ID` */
void otactl_print_strategy(const cJSON *data);
void otactl_print_vins(const cJSON *data); /* one VIN per line */
void otactl_print_nothing(const cJSON *data);
void otactl_print_json(const cJSON *item); /* one line of JSON on stdout */
/* A value as text; a time member (created_at, start, ts, ...: by key) in ms as ISO 8601
 * UTC. malloc'd. */
char *otactl_value_text(const char *key, const cJSON *v);
/* rows (objects) as an aligned table: a column per title, its value at paths[i] ("a.b"). */
void otactl_print_table(const cJSON *rows, const char *const *titles, const char *const *paths,
                        int ncols);

/* ---- finding things (otactl_query.c, issue 18) ---- */

int otactl_cmd_task_list(otactl_ctx *ctx, otactl_args *a);
/* otactl_waves.c: task pause|resume|promote|approve ID (issue 16). */
int otactl_cmd_task_pause(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_task_resume(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_task_promote(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_task_approve(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_task_export(otactl_ctx *ctx, otactl_args *a);
/* Fails (exit 1, message) when task id is not active: nothing to cancel. */
int otactl_task_check_cancelable(otactl_ctx *ctx, const char *id);
extern const otactl_opt otactl_task_list_opts[];
extern const otactl_opt otactl_task_export_opts[];
extern const otactl_action otactl_fleet_actions[];
/* vehicle list / status / history; package update / deprecate / delete */
int otactl_cmd_vehicle_list(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_vehicle_status(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_vehicle_history(otactl_ctx *ctx, otactl_args *a);
extern const otactl_opt otactl_vehicle_list_opts[];
extern const otactl_opt otactl_vehicle_history_opts[];
int otactl_cmd_package_update(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_package_deprecate(otactl_ctx *ctx, otactl_args *a);
int otactl_cmd_package_delete(otactl_ctx *ctx, otactl_args *a);
extern const otactl_opt otactl_package_update_opts[];
/* otactl_r156.c (issue 17): --rxswin LIST as "rxswin": [...]; and a package's --language,
 * --prompt[-lang], --result-info[-lang], --install-mode and --rxswin. OTACTL_OK or a usage
 * error. */
int otactl_add_rxswin(const otactl_args *a, cJSON *obj);
int otactl_add_pkg_r156(otactl_ctx *ctx, const otactl_args *a, cJSON *obj);

#endif
