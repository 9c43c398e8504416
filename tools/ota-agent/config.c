/*
 * config.c — ota-agent's config file: one setting a line, "key value", # comments
 * (docs/ota-agent.md). ECU lines create the installers: `ecu NAME uds HOST:PORT ADDR`
 * (ECUs behind the same DoIP entity share one transport) or `ecu NAME exec COMMAND`.
 * Without `vin`, the VIN is the CN of the TLS client certificate.
 */
#include "agent.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTITIES 8

static struct {
    char key[300];
    agent_transport *t;
} entities[MAX_ENTITIES];

static agent_transport *entity(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    int i;

    for (i = 0; i < MAX_ENTITIES && entities[i].t; i++)
        if (strcmp(entities[i].key, hostport) == 0)
            return entities[i].t;
    if (i == MAX_ENTITIES || colon == NULL || colon - hostport >= (long)sizeof host)
        return NULL;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    snprintf(entities[i].key, sizeof entities[i].key, "%s", hostport);
    entities[i].t = agent_doip_new(host, atoi(colon + 1), 0x0E80);
    return entities[i].t;
}

static int cert_cn(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "r");
    X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
    int n =
        x ? X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap) : -1;

    X509_free(x);
    if (fp)
        fclose(fp);
    return n > 0 ? 0 : -1;
}

static int add_ecu(agent_config *c, char *rest, char *err, size_t cap)
{
    char name[65], kind[16], arg[512];
    unsigned addr = 0;
    agent_ecu *e;

    if (c->n_ecus == AGENT_MAX_ECUS || sscanf(rest, "%64s %15s %511[^\n]", name, kind, arg) != 3) {
        snprintf(err, cap, "ecu: expected NAME uds HOST:PORT ADDR | NAME exec COMMAND");
        return -1;
    }
    e = &c->ecus[c->n_ecus];
    snprintf(e->name, sizeof e->name, "%s", name);
    if (strcmp(kind, "exec") == 0) {
        e->installer = agent_exec_installer(arg);
    } else if (strcmp(kind, "uds") == 0) {
        char hostport[300];
        agent_transport *t;
        if (sscanf(arg, "%299s %x", hostport, &addr) != 2 || (t = entity(hostport)) == NULL) {
            snprintf(err, cap, "ecu %s: expected uds HOST:PORT ADDR(hex)", name);
            return -1;
        }
        e->installer = agent_uds_installer(t, (uint16_t)addr, agent_test_key, NULL);
    } else {
        snprintf(err, cap, "ecu %s: unknown installer %s", name, kind);
        return -1;
    }
    if (e->installer == NULL)
        return -1;
    c->n_ecus++;
    return 0;
}

static int set(agent_config *c, const char *k, char *v, char *err, size_t cap)
{
    struct {
        const char *key;
        const char **field;
    } texts[] = {{"broker_host", &c->host},        {"vin", &c->vin},
                 {"cafile", &c->cafile},           {"certfile", &c->certfile},
                 {"keyfile", &c->keyfile},         {"server_pub", &c->server_pub},
                 {"vehicle_key", &c->vehicle_key}, {"state_dir", &c->state_dir},
                 {"health_cmd", &c->health_cmd},   {"initial_fw", &c->initial_fw},
                 {"consent_cmd", &c->consent_cmd}, {"precondition_cmd", &c->precondition_cmd},
                 {"language", &c->language}};

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (strcmp(k, texts[i].key) == 0) {
            free((char *)*texts[i].field);
            return (*texts[i].field = strdup(v)) ? 0 : -1;
        }
    if (strcmp(k, "broker_port") == 0)
        c->port = atoi(v);
    else if (strcmp(k, "block_size") == 0)
        c->block_size = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "window") == 0)
        c->window = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "request_timeout_ms") == 0)
        c->request_timeout_ms = atoi(v);
    else if (strcmp(k, "ecu") == 0)
        return add_ecu(c, v, err, cap);
    else {
        snprintf(err, cap, "unknown setting %s", k);
        return -1;
    }
    return 0;
}

static int finish(agent_config *c, char *err, size_t cap)
{
    char cn[128];

    if (c->vin == NULL && c->certfile && cert_cn(c->certfile, cn, sizeof cn) == 0)
        c->vin = strdup(cn);
    if (c->vin == NULL || c->server_pub == NULL || c->state_dir == NULL || c->n_ecus == 0) {
        snprintf(err, cap, "vin (or certfile), server_pub, state_dir and ecu lines are needed");
        return -1;
    }
    if (c->block_size < 256 || c->block_size > 131072 || c->window < 1 || c->window > 64) {
        snprintf(err, cap, "block_size 256..131072, window 1..64");
        return -1;
    }
    return 0;
}

int agent_config_load(const char *path, agent_config *c, char *err, size_t cap)
{
    FILE *fp = fopen(path, "r");
    char line[1024];
    int lineno = 0;

    *c = (agent_config){.host = strdup("127.0.0.1"),
                        .port = 1883,
                        .block_size = 16384,
                        .window = 16,
                        .request_timeout_ms = 5000,
                        .initial_fw = strdup("1.0")};
    if (fp == NULL) {
        snprintf(err, cap, "cannot open %s", path);
        return -1;
    }
    while (fgets(line, sizeof line, fp)) {
        char *k = line + strspn(line, " \t"), *v;
        lineno++;
        k[strcspn(k, "\r\n")] = '\0';
        if (*k == '#' || *k == '\0')
            continue;
        v = k + strcspn(k, " \t");
        if (*v)
            *v++ = '\0';
        v += strspn(v, " \t");
        if (set(c, k, v, err, cap) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, cap - n, " (line %d)", lineno);
            fclose(fp);
            return -1;
        }
    }
    fclose(fp);
    return finish(c, err, cap);
}

void agent_config_free(agent_config *c)
{
    const char *texts[] = {c->host,       c->vin,        c->cafile,      c->certfile,
                           c->keyfile,    c->server_pub, c->vehicle_key, c->state_dir,
                           c->health_cmd, c->initial_fw, c->consent_cmd, c->precondition_cmd,
                           c->language};

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        free((char *)texts[i]);
    for (uint32_t i = 0; i < c->n_ecus; i++)
        c->ecus[i].installer->free(c->ecus[i].installer);
    for (int i = 0; i < MAX_ENTITIES && entities[i].t; i++) {
        entities[i].t->free(entities[i].t);
        entities[i].t = NULL;
    }
    memset(c, 0, sizeof *c);
}
