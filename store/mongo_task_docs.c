/*
 * mongo_task_docs.c — a task document's conditional write in the MongoDB backend (issue 16;
 * ota_store.h "a task's rollout across brokers"): one replaceOne of ota_task with {_id, rev}
 * as filter (a document without "rev": {rev: {$exists: false}}), so of two brokers racing
 * from one revision exactly one matches; then its change log entry (one transaction on a
 * replica set). A task document kept as text ({_id, json}, mongo_json.c) is matched by its
 * exact stored text instead, once its "rev" was read from that text.
 */
#include "mongo_impl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mongo_store *st;
    const char *id, *json;
    uint64_t expect_rev;
    int result;
    char err[640];
} put_if;

static void rev_filter(bson_t *sel, uint64_t rev)
{
    if (rev > 0) {
        BSON_APPEND_INT64(sel, "rev", (int64_t)rev);
        return;
    }
    bson_t ex;
    BSON_APPEND_DOCUMENT_BEGIN(sel, "rev", &ex);
    BSON_APPEND_BOOL(&ex, "$exists", false);
    bson_append_document_end(sel, &ex);
}

/* replaceOne(sel, the new document): 1 matched, 0 not, -1. */
static int replace_if(put_if *p, mongoc_client_session_t *cs, const bson_t *sel)
{
    bson_t doc = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
    BSON_APPEND_UTF8(&doc, "_id", p->id);
    ota_store_mg_append_doc_fields(&doc, p->json);
    if (cs != NULL)
        mongoc_client_session_append(cs, &opts, NULL);
    mongoc_collection_t *c = ota_store_mg_coll(p->st, ota_store_doc_table(OTA_DOC_TASK));
    bson_error_t error;
    bool ok = mongoc_collection_replace_one(c, sel, &doc, &opts, &reply, &error);
    int rc = ok ? ota_store_mg_int(&reply, "matchedCount", 0) > 0 : -1;
    if (!ok)
        snprintf(p->err, sizeof p->err, "task document %.64s: %.500s", p->id, error.message);
    mongoc_collection_destroy(c);
    bson_destroy(&doc);
    bson_destroy(&opts);
    bson_destroy(&reply);
    return rc;
}

typedef struct {
    char *text; /* the stored text of a document kept as text */
} text_form;

static int keep_text(const bson_t *doc, void *arg)
{
    text_form *t = arg;
    const char *json = ota_store_mg_text(doc, "json");
    if (json != NULL && t->text == NULL)
        t->text = strdup(json);
    return 0;
}

static uint64_t text_rev(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "rev");
    uint64_t rev = cJSON_IsNumber(r) && r->valuedouble > 0 ? (uint64_t)r->valuedouble : 0;
    cJSON_Delete(j);
    return rev;
}

/* The stored document is kept as text: matched by that text when its rev is expected. */
static int replace_text_form(put_if *p, mongoc_client_session_t *cs)
{
    text_form t = {NULL};
    bson_t sel = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", p->id);
    if (cs != NULL)
        mongoc_client_session_append(cs, &opts, NULL);
    int rc =
        ota_store_mg_find(p->st, ota_store_doc_table(OTA_DOC_TASK), &sel, &opts, keep_text, &t);
    if (rc != 0) {
        snprintf(p->err, sizeof p->err, "task document %.64s: reading it failed", p->id);
        rc = -1;
    } else if (t.text != NULL && text_rev(t.text) == p->expect_rev) {
        BSON_APPEND_UTF8(&sel, "json", t.text);
        rc = replace_if(p, cs, &sel);
    }
    free(t.text);
    bson_destroy(&sel);
    bson_destroy(&opts);
    return rc;
}

static void put_in(put_if *p, mongoc_client_session_t *cs)
{
    bson_t sel = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", p->id);
    rev_filter(&sel, p->expect_rev);
    p->result = replace_if(p, cs, &sel);
    bson_destroy(&sel);
    if (p->result == 0)
        p->result = replace_text_form(p, cs);
    if (p->result == 1) {
        ota_store_doc doc = {OTA_DOC_TASK, p->id, p->json};
        ota_catalog_change c = {.docs = &doc, .n_docs = 1};
        if (ota_store_mg_changes_append(p->st, &c, cs, p->err, sizeof p->err) != 0)
            p->result = -1;
    }
}

/* The conditional replace as one step (ota_store_mg_in_transaction): 1, 0 or -1. */
static int put_step(mongo_store *st, mongoc_client_session_t *cs, void *arg, char *err,
                    size_t errlen)
{
    put_if *p = arg;
    put_in(p, cs);
    if (p->result < 0)
        ota_store_mg_err(st, err, errlen, "%s", p->err);
    return p->result;
}

int ota_store_mg_put_task_doc_if(ota_store *s, const char *id, const char *json,
                                 uint64_t expect_rev, char *err, size_t errlen)
{
    mongo_store *st = (mongo_store *)s;
    put_if p = {st, id, json, expect_rev, -1, ""};
    return ota_store_mg_in_transaction(st, "task document", put_step, &p, err, errlen);
}
