/*
 * test_util.h — fixtures shared by the unit tests (linked into each by
 * tests/unit/CMakeLists.txt): scratch files and directories under $OTA_TEST_TMP (/tmp
 * when unset), a fresh SQLite store per test, plain SQLite access to a store's file
 * behind its back, and the monotonic clock.
 *
 * Scratch names start with the test program's name and pid, so that programs running at
 * the same time never share one: <tmp>/<program>-<pid>-<n>.db for stores and
 * <tmp>/<program>-<pid>/<name> for directories. Failures fail the running test.
 */
#ifndef OTA_TEST_UTIL_H
#define OTA_TEST_UTIL_H

#include "ota_store.h"

#include <cbor.h>

#include <stdint.h>

/* ---- files and directories ---- */

/* $OTA_TEST_TMP, or /tmp when it is unset or empty; created if missing. */
/* strdup that fails the test when out of memory; NULL stays NULL. */
char *test_strdup(const char *s);

const char *test_tmp_dir(void);

/* mkdir -p dir. */
void test_mkdir_p(const char *dir);

/* rm -rf path (nothing happens if it does not exist). */
void test_rm_rf(const char *path);

/* Removes an SQLite database file and its -wal, -shm and -journal files. */
void test_remove_db(const char *path);

/* <tmp>/<program>-<pid>/<name>, removed if a previous run left it: it does not exist, its
 * parent does. The text stays valid until the next call. */
const char *test_fresh_dir(const char *name);

/* Removes the last test_fresh_dir() directory. */
void test_remove_dir(void);

/* A cmocka group teardown: removes <tmp>/<program>-<pid> with everything in it. */
int test_remove_dirs(void **state);

/* ---- a fresh store per test ---- */

typedef struct {
    char path[512]; /* the database file */
    char uri[600];  /* "sqlite:" path */
    ota_store *s;
} test_db;

/* ota_store_open(uri), failing the test with the error text when it fails. */
ota_store *test_store_open(const char *uri);

/* cmocka setup and teardown: *state is a test_db on a new, empty database file. */
int test_db_setup(void **state);
int test_db_teardown(void **state);

/* ---- plain SQLite on a database file (a connection of its own) ---- */

/* Runs sql, which must succeed (waiting up to 5 s for a lock). */
void test_sql_exec(const char *path, const char *sql);

/* The single number sql selects. */
int64_t test_sql_int(const char *path, const char *sql);
/* The text of the last column of the first row of sql (which must have one) into out,
 * "(null)" for NULL; the last column is EXPLAIN QUERY PLAN's detail. */
void test_sql_text(const char *path, const char *sql, char *out, size_t len);

/* Asserts got equals want, both texts, or both NULL. */
void test_assert_text(const char *got, const char *want);

/* Serializes item (and releases it); the buffer is malloc()ed. */
uint8_t *test_cbor_serialize(cbor_item_t *item, size_t *len);

/* ---- the monotonic clock ---- */

uint64_t test_now_ns(void);
uint64_t test_now_ms(void);
double test_now_s(void);

#endif
