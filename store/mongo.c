/*
 * mongo.c — the MongoDB store backend ("mongodb://..." / "mongodb+srv://..."): opening
 * the connection, the indexes made at open, and the helpers the other store/mongo*.c
 * files share (mongo_impl.h). Documentation: docs/mongodb.md.
 *
 * Design
 * - One mongoc_client_t per store handle (single-threaded client: the handle is used by
 *   one thread, the writer's, as ota_store.h says). libmongoc is initialised once per
 *   process (pthread_once) and cleaned up at exit.
 * - The URI is the user's; when it does not say, short timeouts are added so that an
 *   unreachable server fails an operation in about 2 s instead of 30 s (the writer then
 *   retries with backoff, the broker thread never waits): serverSelectionTimeoutMS=2000,
 *   connectTimeoutMS=2000, socketTimeoutMS=30000. The database is the URI's path, default
 *   "ota".
 * - open pings the server (so a wrong URI is reported at start), creates the indexes
 *   (createIndexes is idempotent) and notes whether the server is a replica set member:
 *   then ota_store_apply runs in a transaction (mongo_catalog.c).
 * - Only the commands listed in tests/mongo_peer/COMMANDS.md are sent: no aggregate.
 */
#include "mongo_impl.h"
#include "ota_errf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DB "ota"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_driver(void)
{
    mongoc_init();
    atexit(mongoc_cleanup);
}

/* ---- helpers (mongo_impl.h) ---- */

void ota_store_mg_err(const mongo_store *st, char *err, size_t errlen, const char *fmt, ...)
{
    ota_errf(err, errlen, "MongoDB %s: ", st->dbname != NULL ? st->dbname : "?");
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(err, errlen, fmt, ap);
    va_end(ap);
}

mongoc_collection_t *ota_store_mg_coll(mongo_store *st, const char *name)
{
    return mongoc_database_get_collection(st->db, name);
}

int ota_store_mg_find(mongo_store *st, const char *coll, const bson_t *filter, const bson_t *opts,
                      ota_store_mg_doc_fn fn, void *arg)
{
    bson_t empty = BSON_INITIALIZER;
    mongoc_collection_t *c = ota_store_mg_coll(st, coll);
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter != NULL ? filter : &empty, opts, NULL);
    const bson_t *doc;
    int stop = 0;
    while (stop == 0 && mongoc_cursor_next(cur, &doc))
        stop = fn(doc, arg);
    bson_error_t error;
    bool failed = mongoc_cursor_error(cur, &error);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&empty);
    return stop == 0 && !failed ? 0 : -1;
}

const char *ota_store_mg_text(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, field) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

int64_t ota_store_mg_int(const bson_t *doc, const char *field, int64_t dflt)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, field) || !BSON_ITER_HOLDS_NUMBER(&it))
        return dflt;
    return bson_iter_as_int64(&it);
}

bool ota_store_mg_bool(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, field) && bson_iter_as_bool(&it);
}

const uint8_t *ota_store_mg_binary(const bson_t *doc, const char *field, uint32_t *len)
{
    bson_iter_t it;
    const uint8_t *data = NULL;
    bson_subtype_t sub;
    *len = 0;
    if (bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_BINARY(&it))
        bson_iter_binary(&it, &sub, len, &data);
    return data;
}

/* ---- transactions ---- */

typedef struct {
    mongo_store *st;
    ota_store_mg_step_fn step;
    void *arg;
    int result;
    char err[256];
} txn_ctx;

/* mongoc's callback: true commits (the step wrote); 0 and -1 end it without a commit. */
static bool txn_run(mongoc_client_session_t *cs, void *arg, bson_t **reply, bson_error_t *error)
{
    (void)reply;
    txn_ctx *x = arg;
    x->err[0] = '\0';
    x->result = x->step(x->st, cs, x->arg, x->err, sizeof x->err);
    if (x->result == 1)
        return true;
    bson_set_error(error, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, "%s",
                   x->result == 0 ? "nothing to commit" : x->err);
    return false;
}

int ota_store_mg_in_transaction(mongo_store *st, const char *what, ota_store_mg_step_fn step,
                                void *arg, char *err, size_t errlen)
{
    txn_ctx x = {st, step, arg, -1, ""};
    if (!st->replset) {
        x.result = step(st, NULL, arg, x.err, sizeof x.err);
    } else {
        bson_error_t error;
        mongoc_client_session_t *cs = mongoc_client_start_session(st->client, NULL, &error);
        if (cs == NULL) {
            ota_store_mg_err(st, err, errlen, "%s: cannot start a session: %s", what,
                             error.message);
            return -1;
        }
        bool ok = mongoc_client_session_with_transaction(cs, txn_run, NULL, &x, NULL, &error);
        mongoc_client_session_destroy(cs);
        /* the commit failed, or the transaction did not start */
        if (!ok && (x.result == 1 || (x.result < 0 && x.err[0] == '\0'))) {
            ota_store_mg_err(st, err, errlen, "%s: transaction: %s", what, error.message);
            return -1;
        }
    }
    if (x.result < 0 && err != NULL)
        snprintf(err, errlen, "%s", x.err);
    return x.result;
}

/* Counts the write errors of a bulk reply by kind. */
static void count_write_errors(const bson_t *reply, ota_store_mg_bulk_result *res)
{
    bson_iter_t it, arr;
    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            bson_iter_t e;
            bool dup = BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &e) &&
                       bson_iter_find(&e, "code") && bson_iter_as_int64(&e) == 11000;
            if (dup)
                res->dup_errors++;
            else
                res->other_errors++;
        }
    }
    if (bson_iter_init_find(&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            res->other_errors++;
}

int ota_store_mg_bulk_run(mongo_store *st, mongoc_bulk_operation_t *bulk, const char *what,
                          ota_store_mg_bulk_result *res, char *err, size_t errlen)
{
    bson_t reply;
    bson_error_t error;
    memset(res, 0, sizeof *res);
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &error);
    mongoc_bulk_operation_destroy(bulk);
    res->inserted = ota_store_mg_int(&reply, "nInserted", 0);
    res->upserted = ota_store_mg_int(&reply, "nUpserted", 0);
    res->matched = ota_store_mg_int(&reply, "nMatched", 0);
    count_write_errors(&reply, res);
    bson_destroy(&reply);
    if (ok == 0 && res->dup_errors + res->other_errors == 0) {
        ota_store_mg_err(st, err, errlen, "%s: %s", what, error.message);
        return -1;
    }
    if (ok == 0 && err != NULL)
        ota_store_mg_err(st, err, errlen, "%s: %s", what, error.message);
    return 0;
}

int ota_store_mg_bulk_finish(mongo_store *st, mongoc_collection_t *coll,
                             mongoc_bulk_operation_t *bulk, size_t n, const char *what,
                             bool dups_ok, char *err, size_t errlen)
{
    int rc = 0;
    if (n == 0) {
        mongoc_bulk_operation_destroy(bulk);
    } else {
        ota_store_mg_bulk_result b;
        rc = ota_store_mg_bulk_run(st, bulk, what, &b, err, errlen);
        if (rc == 0 && (b.other_errors > 0 || (!dups_ok && b.dup_errors > 0))) {
            ota_store_mg_err(st, err, errlen, "%s: write errors", what);
            rc = -1;
        }
    }
    mongoc_collection_destroy(coll);
    return rc;
}

mongoc_bulk_operation_t *ota_store_mg_bulk(mongo_store *st, mongoc_collection_t *coll, bool ordered,
                                           mongoc_client_session_t *cs)
{
    (void)st;
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", ordered);
    if (cs != NULL)
        mongoc_client_session_append(cs, &opts, NULL);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    bson_destroy(&opts);
    return bulk;
}

void ota_store_mg_append_fields(bson_t *parent, const char *key, const char *fields)
{
    bson_t doc;
    BSON_APPEND_DOCUMENT_BEGIN(parent, key, &doc);
    const char *p = fields;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        int dir = *p == '-' ? -1 : 1;
        const char *name = dir < 0 ? p + 1 : p;
        size_t len = dir < 0 ? n - 1 : n;
        if (len == 5 && strncmp(name, "rowid", 5) == 0)
            name = "_id", len = 3;
        bson_append_int32(&doc, name, (int)len, dir);
        p += n;
    }
    bson_append_document_end(parent, &doc);
}

int ota_store_mg_index(mongo_store *st, const char *coll, const char *name, const char *fields,
                       bool unique, char *err, size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, indexes, index;
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
    ota_store_mg_append_fields(&index, "key", fields);
    BSON_APPEND_UTF8(&index, "name", name);
    if (unique)
        BSON_APPEND_BOOL(&index, "unique", true);
    bson_append_document_end(&indexes, &index);
    bson_append_array_end(&cmd, &indexes);
    bson_error_t error;
    bool ok = mongoc_database_write_command_with_opts(st->db, &cmd, NULL, NULL, &error);
    bson_destroy(&cmd);
    if (!ok)
        ota_store_mg_err(st, err, errlen, "createIndexes %s on %s: %s", name, coll, error.message);
    return ok ? 0 : -1;
}

/* ---- open / close ---- */

static void mg_close(ota_store *s)
{
    mongo_store *st = (mongo_store *)s;
    if (st->db != NULL)
        mongoc_database_destroy(st->db);
    if (st->client != NULL)
        mongoc_client_destroy(st->client);
    free(st->dbname);
    free(st);
}

/* Adds the short timeouts the URI does not set itself. */
static void uri_defaults(mongoc_uri_t *uri)
{
    static const struct {
        const char *option;
        int32_t value;
    } DEFAULTS[] = {
        {MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000},
        {MONGOC_URI_CONNECTTIMEOUTMS, 2000},
        {MONGOC_URI_SOCKETTIMEOUTMS, 30000},
    };
    const bson_t *opts = mongoc_uri_get_options(uri);
    for (size_t i = 0; i < sizeof DEFAULTS / sizeof DEFAULTS[0]; i++) {
        bson_iter_t it;
        if (!bson_iter_init_find_case(&it, opts, DEFAULTS[i].option))
            mongoc_uri_set_option_as_int32(uri, DEFAULTS[i].option, DEFAULTS[i].value);
    }
}

/* Pings the server and notes whether it is a replica set member. */
static int probe(mongo_store *st, char *err, size_t errlen)
{
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    bson_error_t error;
    bool ok = mongoc_client_command_simple(st->client, "admin", &ping, NULL, NULL, &error);
    bson_destroy(&ping);
    if (!ok) {
        ota_store_mg_err(st, err, errlen, "cannot reach the server: %s", error.message);
        return -1;
    }
    mongoc_server_description_t *sd = mongoc_client_select_server(st->client, true, NULL, &error);
    if (sd == NULL) {
        ota_store_mg_err(st, err, errlen, "no writable server: %s", error.message);
        return -1;
    }
    st->replset = strcmp(mongoc_server_description_type(sd), "RSPrimary") == 0;
    mongoc_server_description_destroy(sd);
    return 0;
}

static int create_indexes(mongo_store *st, char *err, size_t errlen)
{
    if (ota_store_mg_events_indexes(st, err, errlen) != 0 ||
        ota_store_mg_reports_indexes(st, err, errlen) != 0 ||
        ota_store_mg_tasks_indexes(st, err, errlen) != 0)
        return -1;
    return ota_store_mg_state_open(st, err, errlen);
}

static int connect_to(mongo_store *st, const char *uri_text, char *err, size_t errlen)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &error);
    if (uri == NULL) {
        snprintf(err, errlen, "MongoDB store: bad URI: %s", error.message);
        return -1;
    }
    uri_defaults(uri);
    mongoc_uri_set_appname(uri, "mosquitto-ota");
    const char *db = mongoc_uri_get_database(uri);
    st->dbname = strdup(db != NULL && db[0] != '\0' ? db : DEFAULT_DB);
    st->client = mongoc_client_new_from_uri_with_error(uri, &error);
    mongoc_uri_destroy(uri);
    if (st->dbname == NULL || st->client == NULL) {
        snprintf(err, errlen, "MongoDB store: cannot create the client: %s",
                 st->client == NULL ? error.message : "out of memory");
        return -1;
    }
    mongoc_client_set_error_api(st->client, MONGOC_ERROR_API_VERSION_2);
    st->db = mongoc_client_get_database(st->client, st->dbname);
    return probe(st, err, errlen) != 0 ? -1 : create_indexes(st, err, errlen);
}

static const ota_store_ops MONGO_OPS;

ota_store *ota_store_mongo_open(const char *uri, char *err, size_t errlen)
{
    pthread_once(&init_once, init_driver);
    mongo_store *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, errlen, "MongoDB store: out of memory");
        return NULL;
    }
    st->base.ops = &MONGO_OPS;
    if (connect_to(st, uri, err, errlen) != 0) {
        mg_close(&st->base);
        return NULL;
    }
    return &st->base;
}

static const ota_store_ops MONGO_OPS = {
    .name = "mongo",
    .close = mg_close,
    .put_events = ota_store_mg_put_events,
    .put_batch = ota_store_mg_put_batch,
    .list_quarantine = ota_store_mg_list_quarantine,
    .latest_status = ota_store_mg_latest_status,
    .count_events = ota_store_mg_count_events,
    .history = ota_store_mg_history,
    .apply = ota_store_mg_apply,
    .load_vehicles = ota_store_mg_load_vehicles,
    .load_docs = ota_store_mg_load_docs,
    .load_lists = ota_store_mg_load_lists,
    .load_execs = ota_store_mg_load_execs,
    .load_shadows = ota_store_mg_load_shadows,
    .load_notices = ota_store_mg_load_notices,
    .load_descriptions = ota_store_mg_load_descriptions,
    .load_latest_statuses = ota_store_mg_load_latest_statuses,
    .load_last_seqs = ota_store_mg_load_last_seqs,
    .claim_notice = ota_store_mg_claim_notice,
    .claim_notices = ota_store_mg_claim_notices,
    .transition_exec = ota_store_mg_transition_exec,
    .notice_decisions = ota_store_mg_notice_decisions,
    .read_changes = ota_store_mg_read_changes,
    .change_bounds = ota_store_mg_change_bounds,
    .trim_changes = ota_store_mg_trim_changes,
    .load_exec = ota_store_mg_load_exec,
    .put_task_doc_if = ota_store_mg_put_task_doc_if,
    .load_task_execs = ota_store_mg_load_task_execs,
    .count_task_execs = ota_store_mg_count_task_execs,
    .put_group = ota_store_mg_put_group,
    .delete_group = ota_store_mg_delete_group,
    .load_groups = ota_store_mg_load_groups,
};
