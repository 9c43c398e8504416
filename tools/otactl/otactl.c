/*
 * otactl.c — main of otactl, the operator command-line tool of mosquitto-ota.
 *
 *   otactl [global options] COMMAND [ACTION] [arguments and options]
 *
 * Each subcommand sends one operator API command (docs/operator-api.md) on
 * $CONTROL/ota/v1 and prints its answer: short human text by default, the response's
 * data object as JSON with --json, or, with --dry-run, the request instead of sending
 * it. Exit status: 0 ok, 1 a command was answered with an error (printed on stderr),
 * 2 usage error, 3 connection problem or timeout. docs/otactl.md is the manual.
 *
 * This file reads the global options that precede the command, prints the top-level help
 * and hands over to the command table (otactl_cmds.c).
 */
#include "otactl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: otactl [global options] COMMAND [ACTION] [arguments] [options]\n"
           "Operator tool of mosquitto-ota: talks to the plugin's operator API on "
           "$CONTROL/ota/v1.\n\n");
    otactl_commands_help();
    printf("\n");
    otactl_global_help();
    printf("\n'otactl COMMAND --help' and 'otactl COMMAND ACTION --help' describe a command.\n"
           "Exit status: 0 ok, 1 a command was answered with an error, 2 usage error,\n"
           "3 connection problem or timeout.\n");
}

int main(int argc, char **argv)
{
    otactl_ctx ctx = {.host = "127.0.0.1", .timeout_s = 10};
    int i = 1;
    int rc = otactl_env_defaults(&ctx);
    if (rc != OTACTL_OK) {
        return rc;
    }
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--"); i++) {
        int g = otactl_global_opt(&ctx, argc, argv, &i);
        if (g == OTACTL_HELP) {
            help();
            return 0;
        }
        if (g == 0) {
            rc = otactl_usage_err(NULL, "unknown option %s (see otactl --help)", argv[i]);
        }
        if (g != 1) {
            return rc ? rc : g;
        }
    }
    i += i < argc && !strcmp(argv[i], "--");
    if (i >= argc) {
        fprintf(stderr, "Error: no command given (usage: otactl [global options] COMMAND "
                        "[ACTION] ...; see otactl --help)\n");
        return OTACTL_EUSAGE;
    }
    rc = otactl_dispatch(&ctx, argc - i, argv + i);
    otactl_conn_close(&ctx);
    return rc == OTACTL_HELP ? 0 : rc;
}
