/*
 * main.c — the ota-agent daemon: `ota-agent -c FILE [--once]` runs the agent of
 * agent.h with the config file; `ota-agent flash HOST:PORT ADDR FILE VERSION` flashes one
 * ECU over UDS/DoIP with the built-in flasher (bench use, the demo), and
 * `ota-agent version HOST:PORT ADDR` reads its version.
 */
#include "agent.h"
#include "vcrypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] = "usage: ota-agent -c CONFIG [--once]\n"
                            "       ota-agent flash HOST:PORT ADDR FILE VERSION\n"
                            "       ota-agent version HOST:PORT ADDR\n";

static void print_progress(void *arg, int pct, const char *step)
{
    (void)arg;
    printf("progress %d %s\n", pct, step ? step : "");
    fflush(stdout);
}

static void no_save(void *arg, const void *blob, size_t n)
{
    (void)arg;
    (void)blob;
    (void)n;
}

static agent_transport *direct_t; /* the installer does not own its transport */

static agent_installer *direct(const char *hostport, const char *addr)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    agent_transport *t;

    if (colon == NULL || colon - hostport >= (long)sizeof host)
        return NULL;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    t = direct_t = agent_doip_new(host, atoi(colon + 1), 0x0E80);
    return t ? agent_uds_installer(t, (uint16_t)strtoul(addr, NULL, 16), agent_test_key, NULL)
             : NULL;
}

static int flash_one(char **argv)
{
    agent_installer *in = direct(argv[2], argv[3]);
    agent_install_ctx c = {.ecu = argv[3],
                           .file = argv[4],
                           .to_version = argv[5],
                           .from_version = "",
                           .progress = print_progress,
                           .save = no_save};
    char err[AGENT_ERR_MAX];
    struct stat sb;
    int rc;

    if (in == NULL || stat(argv[4], &sb) != 0 || vc_sha256_file(argv[4], c.sha256) != 0) {
        fprintf(stderr, "ota-agent: cannot flash %s\n", argv[4]);
        return 1;
    }
    c.size = (uint64_t)sb.st_size;
    rc = in->install(in, &c, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "ota-agent: %s\n", err);
    in->free(in);
    direct_t->free(direct_t);
    return rc == 0 ? 0 : 1;
}

static int read_version(char **argv)
{
    agent_installer *in = direct(argv[2], argv[3]);
    char v[128];

    int rc = in && in->read_version(in, argv[3], v, sizeof v) == 0 ? 0 : 1;

    if (rc == 0)
        printf("%s\n", v);
    if (in)
        in->free(in);
    if (direct_t)
        direct_t->free(direct_t);
    return rc;
}

int main(int argc, char **argv)
{
    agent_config cfg;
    char err[512];
    int rc;

    if (argc == 6 && strcmp(argv[1], "flash") == 0)
        return flash_one(argv);
    if (argc == 4 && strcmp(argv[1], "version") == 0)
        return read_version(argv);
    if ((argc != 3 && argc != 4) || strcmp(argv[1], "-c") != 0 ||
        (argc == 4 && strcmp(argv[3], "--once") != 0)) {
        fputs(usage, stderr);
        return 2;
    }
    if (agent_config_load(argv[2], &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ota-agent: %s: %s\n", argv[2], err);
        agent_config_free(&cfg);
        return 2;
    }
    cfg.once = argc == 4;
    rc = agent_run(&cfg);
    agent_config_free(&cfg);
    return rc;
}
