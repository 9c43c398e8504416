/*
 * mongo_json.c — the catalog's JSON documents as native BSON in the MongoDB backend, and
 * back (mongo_impl.h).
 *
 * The store's interface hands over JSON text (the operator API's form, printed by cJSON
 * in codec/catalog_json.c) and must give the same text back. MongoDB users want real
 * fields ({state: "running"}, {"reported.fw": "2.0.9"}), so a JSON object is stored as a
 * BSON document whenever that is exact, and as the text otherwise:
 * - JSON -> BSON is libbson's parser (integers become int32 / int64, other numbers
 *   doubles, strings stay strings: versions are never numbers);
 * - BSON -> JSON goes through cJSON, the printer the codec uses: integers as their exact
 *   decimal text, doubles as cJSON prints them, strings escaped as cJSON escapes them;
 * - "exact" is checked, not assumed: the document is printed back and compared with the
 *   given text byte for byte. Only when both agree is the native form stored. Anything
 *   else (white space, 1.50, 1e3, keys starting with '$' or holding '.', an "_id" member,
 *   a non-object, nesting deeper than MG_JSON_DEPTH) keeps the text form {json: "..."},
 *   which every reader still reads (it is also the form stored before this change).
 */
#include "mongo_impl.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MG_JSON_DEPTH 64 /* MongoDB allows 100 levels; the catalog uses fewer than 5 */

/* ---- BSON -> cJSON ---- */

static cJSON *value_to_cjson(bson_iter_t *it, int depth);

/* The members of a document or array (it recursed into) into a new object / array. */
static cJSON *container_to_cjson(bson_iter_t *in, bool array, int depth)
{
    cJSON *out = array ? cJSON_CreateArray() : cJSON_CreateObject();
    while (out != NULL && bson_iter_next(in)) {
        cJSON *v = value_to_cjson(in, depth + 1);
        bool ok = v != NULL && (array ? cJSON_AddItemToArray(out, v)
                                      : cJSON_AddItemToObject(out, bson_iter_key(in), v));
        if (!ok) {
            cJSON_Delete(v);
            cJSON_Delete(out);
            return NULL;
        }
    }
    return out;
}

static cJSON *int_to_cjson(int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    return cJSON_CreateRaw(num);
}

/* NULL for a BSON type JSON has no form for (binary, dates, ObjectIds...). */
static cJSON *value_to_cjson(bson_iter_t *it, int depth)
{
    bson_iter_t in;
    if (depth > MG_JSON_DEPTH)
        return NULL;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        if (!bson_iter_recurse(it, &in))
            return NULL;
        return container_to_cjson(&in, BSON_ITER_HOLDS_ARRAY(it), depth);
    case BSON_TYPE_UTF8:
        return cJSON_CreateString(bson_iter_utf8(it, NULL));
    case BSON_TYPE_INT32:
        return int_to_cjson(bson_iter_int32(it));
    case BSON_TYPE_INT64:
        return int_to_cjson(bson_iter_int64(it));
    case BSON_TYPE_DOUBLE:
        return cJSON_CreateNumber(bson_iter_double(it));
    case BSON_TYPE_BOOL:
        return cJSON_CreateBool(bson_iter_bool(it));
    case BSON_TYPE_NULL:
        return cJSON_CreateNull();
    default:
        return NULL;
    }
}

/* The JSON text (malloc) of a cJSON tree, consumed. */
static char *print_consume(cJSON *j)
{
    char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return text;
}

char *ota_store_mg_json_of(const bson_iter_t *field)
{
    bson_iter_t it = *field;
    if (BSON_ITER_HOLDS_UTF8(&it))
        return strdup(bson_iter_utf8(&it, NULL));
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) && !BSON_ITER_HOLDS_ARRAY(&it))
        return NULL;
    return print_consume(value_to_cjson(&it, 0));
}

/* A stored top-level document in the text form: {_id, json: "..."} and nothing else. */
static const char *text_form(const bson_t *doc)
{
    const char *json = ota_store_mg_text(doc, "json");
    return json != NULL && bson_count_keys(doc) == 2 ? json : NULL;
}

char *ota_store_mg_doc_json(const bson_t *doc)
{
    const char *json = text_form(doc);
    if (json != NULL)
        return strdup(json);
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return NULL;
    cJSON *out = cJSON_CreateObject();
    while (out != NULL && bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "_id") == 0)
            continue;
        cJSON *v = value_to_cjson(&it, 1);
        if (v == NULL || !cJSON_AddItemToObject(out, bson_iter_key(&it), v)) {
            cJSON_Delete(v);
            cJSON_Delete(out);
            return NULL;
        }
    }
    return print_consume(out);
}

/* ---- JSON -> BSON, kept only when it prints back to the same text ---- */

/* Keys MongoDB stores but its query language cannot address (or refuses in updates). */
static bool keys_plain(bson_iter_t *it, int depth)
{
    if (depth > MG_JSON_DEPTH)
        return false;
    while (bson_iter_next(it)) {
        const char *k = bson_iter_key(it);
        if (!BSON_ITER_HOLDS_ARRAY(it) && (k[0] == '\0' || k[0] == '$' || strchr(k, '.') != NULL))
            return false;
        bson_iter_t in;
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
            (!bson_iter_recurse(it, &in) || !keys_plain(&in, depth + 1)))
            return false;
    }
    return true;
}

/* The parsed object when it is exact (see the file's comment), else NULL. */
static bson_t *exact_doc(const char *json)
{
    if (json == NULL || json[0] != '{')
        return NULL;
    bson_error_t error;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_iter_t it;
    bool ok = b != NULL && bson_iter_init(&it, b) && keys_plain(&it, 0);
    if (ok) {
        ok = !bson_has_field(b, "_id");
        char *back = ok ? ota_store_mg_doc_json(b) : NULL;
        ok = back != NULL && strcmp(back, json) == 0;
        free(back);
    }
    if (!ok && b != NULL) {
        bson_destroy(b);
        b = NULL;
    }
    return b;
}

bool ota_store_mg_append_json(bson_t *parent, const char *key, const char *json)
{
    bson_t *b = exact_doc(json);
    if (b == NULL) {
        BSON_APPEND_UTF8(parent, key, json);
        return false;
    }
    BSON_APPEND_DOCUMENT(parent, key, b);
    bson_destroy(b);
    return true;
}

bool ota_store_mg_append_doc_fields(bson_t *doc, const char *json)
{
    bson_t *b = exact_doc(json);
    /* {"json": "..."} alone would read back as the text form: keep it as text */
    bool native = b != NULL && text_form(b) == NULL &&
                  !(bson_count_keys(b) == 1 && ota_store_mg_text(b, "json") != NULL);
    if (native)
        bson_concat(doc, b);
    else
        BSON_APPEND_UTF8(doc, "json", json);
    if (b != NULL)
        bson_destroy(b);
    return native;
}
