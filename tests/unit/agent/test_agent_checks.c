/*
 * test_agent_checks.c — what ota-agent checks and keeps, against vectors of an
 * independent implementation (agent_vectors.py: Python cryptography + cbor2):
 * ES256 (COSE alg -7) descriptions verified with a P-256 key read from PEM, `req` taken
 * from the payload or from the unprotected header of a pre-signed description and
 * checked by agent_desc_req_ok, an EdDSA description refused by a P-256 key (the
 * algorithm comes from the trusted key, never from the message), a whole encrypted file
 * decrypted (and a flipped bit refused); and the state file: report seqs that never come
 * back after a reopen, the download bitmap, the job and an ECU's resume blob; the user
 * texts of a description in the driver's language (vc_desc_user_text, issue 17).
 */
#include "agent_int.h"
#include "agent_vectors.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cbor.h>

#include <cmocka.h>

static const char *write_file(const char *dir, const char *name, const void *data, size_t n)
{
    static char path[700];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
    return path;
}

static void load_p256(vc_pub *pub)
{
    const char *dir = test_fresh_dir("p256");

    test_mkdir_p(dir);
    assert_int_equal(
        vc_load_pub(write_file(dir, "es256.pub", vec_p256_pem, strlen(vec_p256_pem)), pub), 0);
    test_remove_dir();
}

/* A COSE_Sign1 (signature not checked by vc_desc_user_text) around a description with
 * prompt "plain" and, when with_texts, texts {language: en, prompt: {de, en}}. */
static unsigned char *sign1_with_texts(bool with_texts, size_t *len)
{
    cbor_item_t *d = cbor_new_definite_map(2);
    cbor_map_add(d, (struct cbor_pair){cbor_move(cbor_build_string("prompt")),
                                       cbor_move(cbor_build_string("plain"))});
    if (with_texts) {
        cbor_item_t *t = cbor_new_definite_map(2), *p = cbor_new_definite_map(2);
        cbor_map_add(p, (struct cbor_pair){cbor_move(cbor_build_string("de")),
                                           cbor_move(cbor_build_string("Bitte parken"))});
        cbor_map_add(p, (struct cbor_pair){cbor_move(cbor_build_string("en")),
                                           cbor_move(cbor_build_string("Please park"))});
        cbor_map_add(t, (struct cbor_pair){cbor_move(cbor_build_string("language")),
                                           cbor_move(cbor_build_string("en"))});
        cbor_map_add(t, (struct cbor_pair){cbor_move(cbor_build_string("prompt")), cbor_move(p)});
        cbor_map_add(d, (struct cbor_pair){cbor_move(cbor_build_string("texts")), cbor_move(t)});
    }
    unsigned char *payload = NULL, *out = NULL;
    size_t plen = 0, cap = 0;
    plen = cbor_serialize_alloc(d, &payload, &cap);
    cbor_decref(&d);
    uint8_t sig[64] = {0};
    cbor_item_t *arr = cbor_new_definite_array(4);
    cbor_array_push(arr,
                    cbor_move(cbor_build_bytestring((const unsigned char *)"\xa1\x01\x27", 3)));
    cbor_array_push(arr, cbor_move(cbor_new_definite_map(0)));
    cbor_array_push(arr, cbor_move(cbor_build_bytestring(payload, plen)));
    cbor_array_push(arr, cbor_move(cbor_build_bytestring(sig, sizeof sig)));
    size_t n = cbor_serialize_alloc(arr, &out, &cap);
    cbor_decref(&arr);
    free(payload);
    unsigned char *msg = malloc(n + 1);
    msg[0] = 0xd2; /* tag 18 */
    memcpy(msg + 1, out, n);
    free(out);
    *len = n + 1;
    return msg;
}

/* Issue 17: the driver's language, else the description's default, else the plain text. */
static void test_user_texts(void **state)
{
    (void)state;
    size_t n;
    char out[64], used[16];
    unsigned char *m = sign1_with_texts(true, &n);
    assert_int_equal(vc_desc_user_text(m, n, "prompt", "de", out, sizeof out, used, sizeof used),
                     0);
    assert_string_equal(out, "Bitte parken");
    assert_string_equal(used, "de");
    assert_int_equal(vc_desc_user_text(m, n, "prompt", "fr", out, sizeof out, used, sizeof used),
                     0);
    assert_string_equal(out, "Please park"); /* the default language's */
    assert_string_equal(used, "en");
    assert_int_equal(vc_desc_user_text(m, n, "prompt", NULL, out, 6, used, sizeof used), 0);
    assert_string_equal(out, "Pleas"); /* cut to the buffer */
    assert_int_equal(
        vc_desc_user_text(m, n, "result_info", "de", out, sizeof out, used, sizeof used), 0);
    assert_string_equal(out, ""); /* neither a map nor a plain text */
    free(m);
    m = sign1_with_texts(false, &n);
    assert_int_equal(vc_desc_user_text(m, n, "prompt", "de", out, sizeof out, used, sizeof used),
                     0);
    assert_string_equal(out, "plain");
    assert_string_equal(used, "");
    assert_int_equal(
        vc_desc_user_text(m + 1, n - 1, "prompt", "de", out, sizeof out, used, sizeof used),
        -1); /* no COSE tag */
    free(m);
}

static void test_es256(void **state)
{
    vc_pub pub;
    vc_desc d;
    uint8_t bad[sizeof vec_es256_desc];
    (void)state;

    load_p256(&pub);
    assert_int_equal(pub.alg, VC_ALG_ES256);
    assert_int_equal(pub.len, 65);
    assert_memory_equal(pub.raw, vec_p256_point, 65);
    assert_int_equal(vc_desc_verify(&pub, vec_es256_desc, sizeof vec_es256_desc, &d), VC_DESC_OK);
    assert_string_equal(d.vin, VEC_VIN);
    assert_string_equal(d.ecus[0].version, "VCU-2.0");
    assert_true(d.has_req);
    assert_int_equal(d.req, 41);
    assert_true(agent_desc_req_ok(&d, 41));
    assert_false(agent_desc_req_ok(&d, 40));
    memcpy(bad, vec_es256_desc, sizeof bad);
    bad[sizeof bad - 1] ^= 1; /* s */
    assert_int_equal(vc_desc_verify(&pub, bad, sizeof bad, &d), VC_DESC_BAD_SIGNATURE);
    /* the algorithm is the trusted key's: an EdDSA description is refused */
    assert_int_equal(vc_desc_verify(&pub, vec_eddsa_desc, sizeof vec_eddsa_desc, &d),
                     VC_DESC_BAD_ALG);
}

static void test_presigned_req(void **state)
{
    vc_pub pub;
    vc_desc d;
    (void)state;

    load_p256(&pub);
    assert_int_equal(vc_desc_verify(&pub, vec_es256_presigned, sizeof vec_es256_presigned, &d),
                     VC_DESC_OK);
    assert_true(d.has_req); /* from the unprotected header */
    assert_int_equal(d.req, 41);
    assert_true(agent_desc_req_ok(&d, 41));
    assert_false(agent_desc_req_ok(&d, 42));
    d.has_req = false; /* none at all: bound by vin, task, target and ctr instead */
    assert_true(agent_desc_req_ok(&d, 42));
}

static void test_decrypt_file(void **state)
{
    const char *dir = test_fresh_dir("decrypt");
    char enc[700], out[700];
    uint8_t sha[32], bad[sizeof vec_enc];
    (void)state;

    test_mkdir_p(dir);
    snprintf(enc, sizeof enc, "%s", write_file(dir, "f.enc", vec_enc, sizeof vec_enc));
    snprintf(out, sizeof out, "%s/f.img", dir);
    assert_int_equal(vc_decrypt_file(enc, out, vec_key), 0);
    assert_int_equal(vc_sha256_file(out, sha), 0);
    assert_memory_equal(sha, vec_plain_sha, 32);
    memcpy(bad, vec_enc, sizeof bad);
    bad[100] ^= 1;
    snprintf(enc, sizeof enc, "%s", write_file(dir, "bad.enc", bad, sizeof bad));
    assert_int_equal(vc_decrypt_file(enc, out, vec_key), -1);
    assert_int_equal(access(out, F_OK), -1); /* no half-decrypted image is left */
    snprintf(enc, sizeof enc, "%s", write_file(dir, "short.enc", vec_enc, 20));
    assert_int_equal(vc_decrypt_file(enc, out, vec_key), -1);
    test_remove_dir();
}

static void test_state_file(void **state)
{
    const char *dir = test_fresh_dir("state");
    sqlite3 *db;
    uint64_t seq = 0, got = 0;
    uint8_t *payload = NULL, map[3] = {0x05, 0x00, 0x80}, back[3];
    size_t n = 0;
    bool complete;
    agent_job j = {0}, k = {0};
    agent_ecu_row r = {0}, r2;
    (void)state;

    test_mkdir_p(dir);
    assert_int_equal(st_open(&db, dir), 0);
    assert_int_equal(st_report_add(db, (const uint8_t *)"a", 1, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(st_report_add(db, (const uint8_t *)"b", 1, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(st_report_del(db, 1), 0);
    assert_int_equal(st_report_del(db, 2), 0);
    assert_int_equal(st_file_save(db, "abc", map, 3, false), 0);
    snprintf(j.task, sizeof j.task, "T-1");
    snprintf(j.step, sizeof j.step, "install");
    j.req = 9;
    assert_int_equal(st_job_save(db, &j), 0);
    snprintf(r.state, sizeof r.state, "installing");
    memcpy(r.blob, "blob", 4);
    r.blob_len = 4;
    assert_int_equal(st_ecu_save(db, 1, &r), 0);
    sqlite3_close(db);

    /* reopened (a restart): the queue is empty, and the next seq is still new */
    assert_int_equal(st_open(&db, dir), 0);
    assert_int_equal(st_report_count(db), 0);
    assert_int_equal(st_report_add(db, (const uint8_t *)"c", 1, &seq), 0);
    assert_int_equal(seq, 3);
    assert_int_equal(st_report_next(db, 0, &got, &payload, &n), 1);
    assert_int_equal(got, 3);
    assert_int_equal(n, 1);
    assert_int_equal(payload[0], 'c');
    free(payload);
    assert_int_equal(st_report_next(db, 3, &got, &payload, &n), 0);
    assert_int_equal(st_file_load(db, "abc", back, 3, &complete), 0);
    assert_memory_equal(back, map, 3);
    assert_false(complete);
    assert_false(st_file_complete(db, "abc"));
    assert_int_equal(st_job_load(db, &k), 0);
    assert_true(k.active);
    assert_string_equal(k.step, "install");
    assert_int_equal(k.req, 9);
    assert_int_equal(st_ecu_load(db, 1, &r2), 0);
    assert_string_equal(r2.state, "installing");
    assert_int_equal(r2.blob_len, 4);
    assert_int_equal(st_ecu_load(db, 2, &r2), 0);
    assert_string_equal(r2.state, "pending");
    assert_int_equal(st_job_end(db, "T-1"), 0);
    assert_true(st_task_done(db, "T-1"));
    assert_int_equal(st_job_load(db, &k), 0);
    assert_false(k.active);
    free(k.cose);
    sqlite3_close(db);
    test_remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_texts),    cmocka_unit_test(test_es256),
        cmocka_unit_test(test_presigned_req), cmocka_unit_test(test_decrypt_file),
        cmocka_unit_test(test_state_file),
    };
    return cmocka_run_group_tests(tests, NULL, test_remove_dirs);
}
