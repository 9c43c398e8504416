/*
 * sim_main.c — ota-ecu-sim's entry point: options, the DoIP server on loopback (one tester
 * connection at a time: routing activation, then diagnostic messages routed by target
 * logical address to the ECUs of sim_ecu.c, each acknowledged with a DoIP diagnostic ACK
 * before the UDS response), and the fault injection around the handlers (0x78
 * response-pending delays; the connection cut that sim_ecu.c asks for in the middle of
 * TransferData). A power cut is a kill of the process: flash survives, RAM does not.
 */
#include "sim.h"
#include "uds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: ota-ecu-sim --dir DIR [--port N] --ecu ADDR:NAME:VERSION... [options]\n"
    "  --port N             DoIP TCP port on 127.0.0.1 (13400; 0 = any, printed)\n"
    "  --ecu ADDR:NAME:VER  an ECU at logical address ADDR (hex), its factory version\n"
    "  --vin VIN            what DID F190 reads (default LSVTA000000000001)\n"
    "  --block N            maxNumberOfBlockLength of RequestDownload (4098)\n"
    "  --nrc ADDR:SID:NRC[:N]  answer service SID (hex) with NRC (hex), N times (0 = always)\n"
    "  --pending ADDR:SID:N    N x 7F SID 78 (response pending) before the answer\n"
    "  --pending-ms MS      delay between response-pending messages (200)\n"
    "  --cut ADDR:BLOCK     close the connection after TransferData block BLOCK (once)\n"
    "  --wrong-key ADDR     this ECU expects another key than the test key function's\n"
    "  --port-file FILE     write the listening port there once listening\n"
    "  -v                   log every request\n";

void sim_log(const sim *s, const char *fmt, ...)
{
    va_list ap;
    (void)s;

    va_start(ap, fmt);
    fprintf(stderr, "ota-ecu-sim: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

sim_fault *sim_fault_find(sim *s, sim_fault_kind kind, uint16_t addr, uint8_t sid)
{
    for (uint32_t i = 0; i < s->n_faults; i++) {
        sim_fault *f = &s->faults[i];
        if (f->kind == kind && f->addr == addr && (kind == FAULT_CUT || f->sid == sid))
            return f;
    }
    return NULL;
}

static sim_ecu *find_ecu(sim *s, uint16_t addr)
{
    for (uint32_t i = 0; i < s->n_ecus; i++)
        if (s->ecus[i].addr == addr)
            return &s->ecus[i];
    return NULL;
}

/* ---- options ---- */

static int parse_ecu(sim *s, char *arg, const char **versions)
{
    char *name = strchr(arg, ':'), *ver = name ? strchr(name + 1, ':') : NULL;
    sim_ecu *e;

    if (ver == NULL || s->n_ecus == SIM_MAX_ECUS || ver - name - 1 >= SIM_NAME_MAX)
        return -1;
    e = &s->ecus[s->n_ecus];
    e->addr = (uint16_t)strtoul(arg, NULL, 16);
    snprintf(e->name, sizeof e->name, "%.*s", (int)(ver - name - 1), name + 1);
    versions[s->n_ecus++] = ver + 1;
    return 0;
}

static int parse_fault(sim *s, sim_fault_kind kind, const char *arg)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    int n = sscanf(arg, "%x:%x:%x:%u", &a, &b, &c, &d);
    sim_fault *f;

    if (s->n_faults == SIM_MAX_FAULTS || n < 1)
        return -1;
    f = &s->faults[s->n_faults++];
    f->kind = kind;
    f->addr = (uint16_t)a;
    if (kind == FAULT_NRC && n >= 3) {
        f->sid = (uint8_t)b;
        f->nrc = (uint8_t)c;
        f->n = n == 4 ? d : 0;
    } else if (kind == FAULT_PENDING && n >= 2) {
        f->sid = (uint8_t)b;
        f->n = n >= 3 ? (uint32_t)strtoul(strrchr(arg, ':') + 1, NULL, 10) : 1;
    } else if (kind == FAULT_CUT && n >= 2) {
        f->n = (uint32_t)strtoul(strchr(arg, ':') + 1, NULL, 10);
    } else if (kind != FAULT_WRONG_KEY) {
        return -1;
    }
    return 0;
}

static int parse_args(sim *s, int argc, char **argv, int *port, const char **port_file,
                      const char **versions)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(o, "-v") == 0) {
            s->verbose = true;
            continue;
        }
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(o, "--dir") == 0)
            s->dir = v;
        else if (strcmp(o, "--port") == 0)
            *port = atoi(v);
        else if (strcmp(o, "--port-file") == 0)
            *port_file = v;
        else if (strcmp(o, "--vin") == 0)
            s->vin = v;
        else if (strcmp(o, "--block") == 0)
            s->max_block = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(o, "--pending-ms") == 0)
            s->pending_ms = atoi(v);
        else if (strcmp(o, "--ecu") == 0)
            rc = parse_ecu(s, argv[i], versions);
        else if (strcmp(o, "--nrc") == 0)
            rc = parse_fault(s, FAULT_NRC, v);
        else if (strcmp(o, "--pending") == 0)
            rc = parse_fault(s, FAULT_PENDING, v);
        else if (strcmp(o, "--cut") == 0)
            rc = parse_fault(s, FAULT_CUT, v);
        else if (strcmp(o, "--wrong-key") == 0)
            rc = parse_fault(s, FAULT_WRONG_KEY, v);
        else
            rc = -1;
        if (rc != 0)
            return -1;
    }
    return s->dir && s->n_ecus > 0 && s->max_block >= 16 && s->max_block <= DOIP_MAX_PAYLOAD - 4
               ? 0
               : -1;
}

/* ---- the DoIP connection ---- */

static int routing_activation(sim *s, int fd, const uint8_t *p, long n, uint16_t *tester)
{
    uint8_t out[9] = {0};

    if (n < 7)
        return -1;
    *tester = (uint16_t)(p[0] << 8 | p[1]);
    out[0] = p[0];
    out[1] = p[1];
    out[2] = (uint8_t)(s->entity_addr >> 8);
    out[3] = (uint8_t)s->entity_addr;
    out[4] = DOIP_ROUTING_OK;
    sim_log(s, "routing activation for tester %04X", *tester);
    return doip_send(fd, DOIP_ROUTING_RESP, out, sizeof out);
}

static int send_pending(sim *s, int fd, sim_ecu *e, uint16_t tester, uint8_t sid)
{
    sim_fault *f = sim_fault_find(s, FAULT_PENDING, e->addr, sid);
    const uint8_t rcrrp[3] = {UDS_NEGATIVE, sid, UDS_NRC_RCRRP};

    for (uint32_t i = 0; f && i < f->n; i++) {
        uds_sleep_ms(s->pending_ms);
        if (doip_send_diag(fd, e->addr, tester, rcrrp, sizeof rcrrp) != 0)
            return -1;
    }
    if (f && f->n)
        uds_sleep_ms(s->pending_ms);
    return 0;
}

static int diagnostic(sim *s, int fd, const uint8_t *p, long n, uint16_t tester)
{
    static uint8_t resp[DOIP_MAX_PAYLOAD];
    uint8_t ack[5];
    size_t rlen = 0;
    uint16_t ta;
    sim_ecu *e;

    if (n < 5)
        return -1;
    ta = (uint16_t)(p[2] << 8 | p[3]);
    e = find_ecu(s, ta);
    memcpy(ack, p + 2, 2);
    memcpy(ack + 2, p, 2);
    ack[4] = e ? 0x00 : DOIP_NACK_UNKNOWN_TA;
    if (doip_send(fd, e ? DOIP_DIAG_ACK : DOIP_DIAG_NACK, ack, sizeof ack) != 0 || e == NULL)
        return e ? -1 : 0;
    if (s->verbose)
        sim_log(s, "%s: request %02X %02X (%ld bytes)", e->name, p[4], n > 5 ? p[5] : 0, n - 4);
    sim_ecu_handle(s, e, p + 4, (size_t)(n - 4), resp, &rlen);
    if (s->cut_now)
        return -1;
    if (rlen && send_pending(s, fd, e, tester, p[4]) != 0)
        return -1;
    return rlen ? doip_send_diag(fd, e->addr, tester, resp, rlen) : 0;
}

static void serve(sim *s, int fd)
{
    static uint8_t buf[DOIP_MAX_PAYLOAD];
    uint16_t tester = 0;
    bool active = false;
    doip_hdr h;
    long n;

    s->cut_now = false;
    while ((n = doip_recv(fd, &h, buf, sizeof buf, -1)) >= 0) {
        int rc = 0;
        if (h.type == DOIP_ROUTING_REQ) {
            rc = routing_activation(s, fd, buf, n, &tester);
            active = rc == 0;
        } else if (h.type == DOIP_DIAG && active) {
            rc = diagnostic(s, fd, buf, n, tester);
        } else if (h.type == DOIP_ALIVE_REQ) {
            uint8_t sa[2] = {(uint8_t)(tester >> 8), (uint8_t)tester};
            rc = doip_send(fd, DOIP_ALIVE_RESP, sa, 2);
        } else {
            uint8_t code = 0x01; /* unknown payload type (or diagnostics before activation) */
            rc = doip_send(fd, DOIP_GENERIC_NACK, &code, 1);
        }
        if (rc != 0)
            break;
    }
    sim_log(s, "tester disconnected");
}

static int listen_on(int port, int *bound)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t alen = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("ota-ecu-sim: listen");
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

static void write_port_file(const char *file, int port)
{
    char tmp[600];
    FILE *fp;

    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    fp = fopen(tmp, "w");
    if (fp) {
        fprintf(fp, "%d\n", port);
        fclose(fp);
        rename(tmp, file);
    }
}

int main(int argc, char **argv)
{
    static sim s = {
        .vin = "LSVTA000000000001", .entity_addr = 0x1000, .max_block = 4098, .pending_ms = 200};
    const char *versions[SIM_MAX_ECUS], *port_file = NULL;
    int port = DOIP_PORT, bound, lfd, one = 1;

    signal(SIGPIPE, SIG_IGN);
    if (parse_args(&s, argc, argv, &port, &port_file, versions) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    mkdir(s.dir, 0755);
    for (uint32_t i = 0; i < s.n_ecus; i++) {
        s.ecus[i].wrong_key = sim_fault_find(&s, FAULT_WRONG_KEY, s.ecus[i].addr, 0) != NULL;
        if (sim_ecu_init(&s, &s.ecus[i], versions[i]) != 0) {
            fprintf(stderr, "ota-ecu-sim: cannot write the flash of %s in %s\n", s.ecus[i].name,
                    s.dir);
            return 1;
        }
    }
    if ((lfd = listen_on(port, &bound)) < 0)
        return 1;
    sim_log(&s, "listening on 127.0.0.1:%d with %u ECUs", bound, s.n_ecus);
    if (port_file)
        write_port_file(port_file, bound);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("ota-ecu-sim: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(&s, fd);
        close(fd);
    }
}
