/*
 * transport_doip.c — the agent's transport to the ECUs over DoIP (ISO 13400-2) on TCP: a
 * lazy connect with routing activation, diagnostic messages out, the ECU's diagnostic
 * messages back (the entity's diagnostic ACKs skipped, a NACK an error). A broken link is
 * closed and reopened by the next open().
 */
#include "agent.h"
#include "uds.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    agent_transport ops;
    char host[256];
    int port;
    uint16_t tester;
    int fd;
    uint8_t buf[DOIP_MAX_PAYLOAD];
} doip_transport;

static int tcp_connect(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *a;
    char svc[16];
    int fd = -1, one = 1;

    snprintf(svc, sizeof svc, "%d", port);
    if (getaddrinfo(host, svc, &hints, &res) != 0)
        return -1;
    for (a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void d_close(agent_transport *t)
{
    doip_transport *d = (doip_transport *)t;

    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static int d_open(agent_transport *t)
{
    doip_transport *d = (doip_transport *)t;
    uint8_t req[7] = {(uint8_t)(d->tester >> 8), (uint8_t)d->tester, 0x00, 0, 0, 0, 0};
    doip_hdr h;
    long n;

    if (d->fd >= 0)
        return 0;
    if ((d->fd = tcp_connect(d->host, d->port)) < 0)
        return -1;
    if (doip_send(d->fd, DOIP_ROUTING_REQ, req, sizeof req) != 0 ||
        (n = doip_recv(d->fd, &h, d->buf, sizeof d->buf, 5000)) < 5 ||
        h.type != DOIP_ROUTING_RESP || d->buf[4] != DOIP_ROUTING_OK) {
        d_close(t);
        return -1;
    }
    return 0;
}

static int d_send(agent_transport *t, uint16_t ecu, const uint8_t *req, size_t n)
{
    doip_transport *d = (doip_transport *)t;

    if (d->fd < 0 || doip_send_diag(d->fd, d->tester, ecu, req, n) != 0) {
        d_close(t);
        return -1;
    }
    return 0;
}

static long d_recv(agent_transport *t, uint16_t ecu, uint8_t *buf, size_t cap, int timeout_ms)
{
    doip_transport *d = (doip_transport *)t;
    doip_hdr h;
    long n;

    while (d->fd >= 0) {
        n = doip_recv(d->fd, &h, d->buf, sizeof d->buf, timeout_ms);
        if (n == -2)
            return -2;
        if (n >= 0 && h.type == DOIP_DIAG_NACK)
            return -3; /* the entity refused the message (unknown target): no retry helps */
        if (n < 0 || h.type == DOIP_GENERIC_NACK)
            break;
        if (h.type != DOIP_DIAG || n < 4 || (uint16_t)(d->buf[0] << 8 | d->buf[1]) != ecu)
            continue; /* ACKs, alive checks, other ECUs */
        if ((size_t)(n - 4) > cap)
            break;
        memcpy(buf, d->buf + 4, (size_t)(n - 4));
        return n - 4;
    }
    d_close(t);
    return -1;
}

static void d_free(agent_transport *t)
{
    d_close(t);
    free(t);
}

agent_transport *agent_doip_new(const char *host, int port, uint16_t tester)
{
    doip_transport *d = calloc(1, sizeof *d);

    if (d == NULL)
        return NULL;
    d->ops = (agent_transport){d_open, d_send, d_recv, d_close, d_free};
    snprintf(d->host, sizeof d->host, "%s", host);
    d->port = port;
    d->tester = tester;
    d->fd = -1;
    return &d->ops;
}
