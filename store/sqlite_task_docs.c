/*
 * sqlite_task_docs.c — a task document's conditional write in the SQLite backend (issue 16;
 * ota_store.h "a task's rollout across brokers"): UPDATE ... WHERE key AND the stored
 * document's "rev" is the one expected, and its change log entry, in one IMMEDIATE
 * transaction, so of two handles racing from one revision exactly one changes the row.
 */
#include "sqlite_impl.h"

#include <stdio.h>

static int update_if(sqlite_store *st, const char *id, const char *json, uint64_t expect_rev,
                     char *err, size_t errlen)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE %s SET doc = ?2 WHERE \"key\" = ?1 AND "
             "coalesce(json_extract(doc, '$.rev'), 0) = ?3",
             ota_store_doc_table(OTA_DOC_TASK));
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        ota_store_sq_db_err(st, err, errlen, "task document update");
        return -1;
    }
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)expect_rev);
    int rc = sqlite3_step(q) == SQLITE_DONE ? (sqlite3_changes(st->db) > 0 ? 1 : 0) : -1;
    if (rc < 0)
        ota_store_sq_db_err(st, err, errlen, "task document update");
    sqlite3_finalize(q);
    return rc;
}

int ota_store_sq_put_task_doc_if(ota_store *s, const char *id, const char *json,
                                 uint64_t expect_rev, char *err, size_t errlen)
{
    sqlite_store *st = (sqlite_store *)s;
    ota_store_doc doc = {OTA_DOC_TASK, id, json};
    ota_catalog_change c = {.docs = &doc, .n_docs = 1};
    if (ota_store_sq_step(st, st->begin, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    int rc = update_if(st, id, json, expect_rev, err, errlen);
    if (rc == 1 && (ota_store_sq_changes_append(st, &c, err, errlen) != 0 ||
                    ota_store_sq_step(st, st->commit, "COMMIT", err, errlen) != 0))
        rc = -1;
    if (rc != 1)
        ota_store_sq_rollback(st);
    return rc;
}
