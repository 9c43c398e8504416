/*
 * test_uds_codec.c — the DoIP and UDS wire formats of tools/ota-agent/uds.c (shared with
 * ota-ecu-sim): DoIP headers (version / inverse version, type, length, the payload
 * limit), the RequestDownload request and response, positive / negative responses, the
 * RoutineControl request, the documented test key function (values worked out by hand
 * in Python), and a DoIP exchange over a socket pair (a message split across writes, a
 * closed peer, a timeout).
 */
#include "uds.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_doip_header(void **state)
{
    uint8_t h[DOIP_HDR_LEN];
    doip_hdr d;
    (void)state;

    doip_put_hdr(h, DOIP_DIAG, 0x0102);
    static const uint8_t want[] = {0x02, 0xFD, 0x80, 0x01, 0x00, 0x00, 0x01, 0x02};
    assert_memory_equal(h, want, sizeof want);
    assert_int_equal(doip_parse_hdr(h, &d), 0);
    assert_int_equal(d.type, DOIP_DIAG);
    assert_int_equal(d.len, 0x0102);
    h[1] = 0xFE; /* inverse version wrong */
    assert_int_equal(doip_parse_hdr(h, &d), -1);
    doip_put_hdr(h, DOIP_DIAG, DOIP_MAX_PAYLOAD + 1);
    assert_int_equal(doip_parse_hdr(h, &d), -1);
    h[0] = 0x03;
    assert_int_equal(doip_parse_hdr(h, &d), -1);
}

static void test_request_download(void **state)
{
    uint8_t req[16];
    uint32_t addr, size, max;
    (void)state;

    assert_int_equal(uds_put_request_download(req, 0x10, 70000), 11);
    static const uint8_t want[] = {0x34, 0x00, 0x44, 0, 0, 0, 0x10, 0, 0x01, 0x11, 0x70};
    assert_memory_equal(req, want, sizeof want);
    assert_int_equal(uds_parse_request_download(req, 11, &addr, &size), 0);
    assert_int_equal(addr, 0x10);
    assert_int_equal(size, 70000);
    assert_int_equal(uds_parse_request_download(req, 10, &addr, &size), -1);
    static const uint8_t r2[] = {0x74, 0x20, 0x04, 0x02};
    assert_int_equal(uds_parse_download_resp(r2, sizeof r2, &max), 0);
    assert_int_equal(max, 0x0402);
    static const uint8_t r4[] = {0x74, 0x40, 0x00, 0x01, 0x00, 0x02};
    assert_int_equal(uds_parse_download_resp(r4, sizeof r4, &max), 0);
    assert_int_equal(max, 0x10002);
    static const uint8_t bad_len[] = {0x74, 0x40, 0x00, 0x01};
    assert_int_equal(uds_parse_download_resp(bad_len, sizeof bad_len, &max), -1);
    static const uint8_t too_small[] = {0x74, 0x10, 0x02};
    assert_int_equal(uds_parse_download_resp(too_small, sizeof too_small, &max), -1);
    static const uint8_t neg[] = {0x7F, 0x34, 0x70};
    assert_int_equal(uds_parse_download_resp(neg, sizeof neg, &max), -1);
}

static void test_responses(void **state)
{
    uint8_t nrc = 0;
    (void)state;

    static const uint8_t pending[] = {0x7F, 0x36, 0x78};
    assert_true(uds_is_negative(pending, 3, UDS_TD, &nrc));
    assert_int_equal(nrc, UDS_NRC_RCRRP);
    assert_false(uds_is_negative(pending, 3, UDS_RD, &nrc));
    assert_false(uds_is_negative(pending, 2, UDS_TD, &nrc));
    static const uint8_t pos[] = {0x76, 0x05};
    assert_true(uds_is_positive(pos, 2, UDS_TD, 2));
    assert_false(uds_is_positive(pos, 2, UDS_TD, 3));
    assert_false(uds_is_positive(pos, 2, UDS_RTE, 1));
    assert_string_equal(uds_nrc_name(UDS_NRC_WBSC), "wrongBlockSequenceCounter");
    assert_string_equal(uds_nrc_name(0x99), "NRC");
}

static void test_routine_and_key(void **state)
{
    uint8_t req[40], key[8], sha[32];
    size_t klen = 0;
    (void)state;

    assert_int_equal(uds_put_routine(req, UDS_RID_PRE_PROGRAMMING, NULL, 0), 4);
    static const uint8_t want[] = {0x31, 0x01, 0x02, 0x02};
    assert_memory_equal(req, want, 4);
    memset(sha, 0xAB, sizeof sha);
    assert_int_equal(uds_put_routine(req, UDS_RID_CHECK_IMAGE, sha, 32), 36);
    assert_int_equal(req[3], 0x01);
    assert_memory_equal(req + 4, sha, 32);
    /* rotl32(seed ^ 0x4F544131, 7): 0x11223344 -> 0x3B393AAF, 0 -> 0xAA2098A7 */
    static const uint8_t seed[] = {0x11, 0x22, 0x33, 0x44}, k1[] = {0x3B, 0x39, 0x3A, 0xAF};
    uds_test_key(seed, 4, key, &klen);
    assert_int_equal(klen, 4);
    assert_memory_equal(key, k1, 4);
    static const uint8_t zero[4] = {0}, k0[] = {0xAA, 0x20, 0x98, 0xA7};
    uds_test_key(zero, 4, key, &klen);
    assert_memory_equal(key, k0, 4);
}

static void test_doip_socket(void **state)
{
    int sv[2];
    uint8_t buf[64], uds[] = {0x22, 0xF1, 0x89};
    doip_hdr h;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(doip_send_diag(sv[0], 0x0E80, 0x0701, uds, sizeof uds), 0);
    assert_int_equal(doip_recv(sv[1], &h, buf, sizeof buf, 1000), 7);
    assert_int_equal(h.type, DOIP_DIAG);
    static const uint8_t want[] = {0x0E, 0x80, 0x07, 0x01, 0x22, 0xF1, 0x89};
    assert_memory_equal(buf, want, sizeof want);
    /* a message in two writes */
    uint8_t msg[DOIP_HDR_LEN + 2];
    doip_put_hdr(msg, DOIP_ALIVE_RESP, 2);
    msg[8] = 0x0E;
    msg[9] = 0x80;
    assert_int_equal(write(sv[0], msg, 5), 5);
    assert_int_equal(write(sv[0], msg + 5, sizeof msg - 5), (ssize_t)(sizeof msg - 5));
    assert_int_equal(doip_recv(sv[1], &h, buf, sizeof buf, 1000), 2);
    assert_int_equal(h.type, DOIP_ALIVE_RESP);
    /* nothing: timeout; a payload over the buffer: error; the peer gone: error */
    assert_int_equal(doip_recv(sv[1], &h, buf, sizeof buf, 50), -2);
    assert_int_equal(doip_send(sv[0], DOIP_DIAG, (uint8_t[40]){0}, 40), 0);
    assert_int_equal(doip_recv(sv[1], &h, buf, 16, 1000), -1);
    close(sv[0]);
    assert_int_equal(doip_recv(sv[1], &h, buf, sizeof buf, 1000), -1);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doip_header), cmocka_unit_test(test_request_download),
        cmocka_unit_test(test_responses),   cmocka_unit_test(test_routine_and_key),
        cmocka_unit_test(test_doip_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
