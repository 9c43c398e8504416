/*
 * test_util.c — fixtures shared by the unit tests (see test_util.h).
 */
#include "test_util.h"

#include <sqlite3.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define PATH_MAX_LEN 1024

static char g_dirs[PATH_MAX_LEN]; /* <tmp>/<program>-<pid>, once made */
static char g_dir[PATH_MAX_LEN];  /* the last test_fresh_dir() */

/* snprintf that fails the test rather than cut a path. */
__attribute__((format(printf, 3, 4))) static void path_printf(char *buf, size_t len,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        fail_msg("path too long: %s...", buf);
}

/* ---- files and directories ---- */

const char *test_tmp_dir(void)
{
    const char *dir = getenv("OTA_TEST_TMP");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    test_mkdir_p(dir);
    return dir;
}

void test_mkdir_p(const char *dir)
{
    char buf[PATH_MAX_LEN];
    path_printf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        fail_msg("cannot create %s: %s", buf, strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void test_remove_db(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[PATH_MAX_LEN];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        path_printf(buf, sizeof buf, "%s%s", path, suffixes[i]);
        unlink(buf);
    }
}

const char *test_fresh_dir(const char *name)
{
    path_printf(g_dirs, sizeof g_dirs, "%s/%s-%d", test_tmp_dir(), program_invocation_short_name,
                (int)getpid());
    path_printf(g_dir, sizeof g_dir, "%s/%s", g_dirs, name);
    test_rm_rf(g_dir);
    test_mkdir_p(g_dirs);
    return g_dir;
}

void test_remove_dir(void)
{
    test_rm_rf(g_dir);
}

int test_remove_dirs(void **state)
{
    (void)state;
    if (g_dirs[0] != '\0')
        test_rm_rf(g_dirs);
    return 0;
}

/* ---- a fresh store per test ---- */

ota_store *test_store_open(const char *uri)
{
    char err[512] = "";
    ota_store *s = ota_store_open(uri, err, sizeof err);
    if (s == NULL)
        fail_msg("ota_store_open(%s): %s", uri, err);
    return s;
}

int test_db_setup(void **state)
{
    static int counter;
    test_db *d = calloc(1, sizeof *d);
    assert_non_null(d);
    path_printf(d->path, sizeof d->path, "%s/%s-%d-%d.db", test_tmp_dir(),
                program_invocation_short_name, (int)getpid(), ++counter);
    test_remove_db(d->path);
    path_printf(d->uri, sizeof d->uri, "sqlite:%s", d->path);
    d->s = test_store_open(d->uri);
    *state = d;
    return 0;
}

int test_db_teardown(void **state)
{
    test_db *d = *state;
    ota_store_close(d->s);
    test_remove_db(d->path);
    free(d);
    return 0;
}

/* ---- plain SQLite on a database file ---- */

void test_sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* Opens path and steps sql to its first row (which must exist). */
static sqlite3_stmt *first_row(const char *path, const char *sql, sqlite3 **db)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, db), SQLITE_OK);
    if (sqlite3_prepare_v2(*db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(*db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    return st;
}

int64_t test_sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st = first_row(path, sql, &db);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

void test_sql_text(const char *path, const char *sql, char *out, size_t len)
{
    sqlite3 *db;
    sqlite3_stmt *st = first_row(path, sql, &db);
    const unsigned char *t = sqlite3_column_text(st, sqlite3_column_count(st) - 1);
    snprintf(out, len, "%s", t != NULL ? (const char *)t : "(null)");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

void test_assert_text(const char *got, const char *want)
{
    if (want == NULL)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

uint8_t *test_cbor_serialize(cbor_item_t *item, size_t *len)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    *len = cbor_serialize_alloc(item, &buf, &cap);
    assert_true(*len > 0);
    cbor_decref(&item);
    return buf;
}

/* ---- the monotonic clock ---- */

uint64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t test_now_ms(void)
{
    return test_now_ns() / 1000000u;
}

double test_now_s(void)
{
    return (double)test_now_ns() / 1e9;
}

char *test_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}
