/*
 * otactl_import.c — `otactl vehicle import FILE`: bulk vehicle upsert from CSV or JSON.
 *
 * CSV (RFC 4180: comma separated, "quoted" fields with "" for a quote, CRLF or LF): the
 * first row names the columns, which are vehicle fields (vin, model, series, platform,
 * status, usage, sold, activated, passenger, config_word, fw, public_key; case and
 * '-'/'_' do not matter). An empty cell leaves an optional field out; booleans are
 * true/false, yes/no, y/n or 1/0. Blank lines are skipped; unquoted cells are trimmed.
 * JSON: an array of vehicle objects, or {"vehicles": [...]}; objects are sent as they are.
 *
 * The vehicles go out in upsertVehicles commands of --batch (default 5000) each, one
 * request after the other; the first failing batch stops the import (each batch is all
 * or nothing in the plugin) and its error is traced back to the file's line.
 */
#include "otactl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_BATCH 5000
#define IMPORT_BATCH_MAX 10000

/* ---- CSV records ---- */

typedef struct {
    const char *p;
    unsigned line; /* line of the current position, 1-based */
    char **field;
    int n, cap;
} csv;

static void csv_clear(csv *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->field[i]);
    }
    c->n = 0;
}

static void csv_push(csv *c, const char *s, size_t len)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->field = realloc(c->field, (size_t)c->cap * sizeof(char *));
    }
    c->field[c->n++] = strndup(s, len);
}

/* A quoted field starting at c->p (the quote); NULL on an unterminated quote. */
static char *quoted_field(csv *c, size_t *len)
{
    const char *p = c->p + 1;
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    for (;; p++) {
        if (*p == '\0') {
            free(out);
            return NULL;
        }
        if (*p == '"' && p[1] == '"') {
            out[n++] = '"', p++;
        } else if (*p == '"') {
            break;
        } else {
            c->line += *p == '\n';
            out[n++] = *p;
        }
    }
    c->p = p + 1;
    *len = n;
    return out;
}

static void unquoted_field(csv *c)
{
    const char *s = c->p;
    size_t len = strcspn(s, ",\r\n");
    c->p = s + len;
    while (len && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    while (len && isspace((unsigned char)*s)) {
        s++, len--;
    }
    csv_push(c, s, len);
}

/* Reads the next record into c->field. Returns 1, 0 at the end, -1 on a syntax error. */
static int csv_record(csv *c)
{
    csv_clear(c);
    if (!*c->p) {
        return 0;
    }
    for (;;) {
        const char *lead = c->p + strspn(c->p, " \t");
        if (*lead == '"') {
            size_t len;
            c->p = lead;
            char *q = quoted_field(c, &len);
            if (!q) {
                return -1;
            }
            csv_push(c, q, len);
            free(q);
            c->p += strspn(c->p, " \t");
            if (*c->p && !strchr(",\r\n", *c->p)) {
                return -1;
            }
        } else {
            unquoted_field(c);
        }
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        c->p += *c->p == '\r';
        c->p += *c->p == '\n';
        c->line++;
        return 1;
    }
}

static bool blank_record(const csv *c)
{
    return c->n == 1 && c->field[0][0] == '\0';
}

/* ---- columns ---- */

typedef enum { COL_TEXT, COL_BOOL, COL_LIST } col_kind; /* LIST: items split at ';' or ',' */

static const struct {
    const char *name;
    col_kind kind;
    bool required;
} columns[] = {
    {"vin", COL_TEXT, true},        {"model", COL_TEXT, true},
    {"series", COL_TEXT, true},     {"platform", COL_TEXT, false},
    {"status", COL_TEXT, true},     {"usage", COL_TEXT, true},
    {"sold", COL_BOOL, false},      {"activated", COL_BOOL, false},
    {"passenger", COL_BOOL, false}, {"config_word", COL_TEXT, false},
    {"fw", COL_TEXT, false},        {"public_key", COL_TEXT, false},
    {"rxswin", COL_LIST, false}, /* issue 17: "R10-EMC.1;R79-STEER.1"; empty: kept as stored */
};
#define NCOLUMNS ((int)(sizeof(columns) / sizeof(columns[0])))

static int column_of(const char *header)
{
    char norm[64];
    size_t n = 0;
    for (const char *s = header; *s && n + 1 < sizeof(norm); s++) {
        norm[n++] = *s == '-' || *s == ' ' ? '_' : (char)tolower((unsigned char)*s);
    }
    norm[n] = '\0';
    for (int k = 0; k < NCOLUMNS; k++) {
        if (!strcmp(columns[k].name, norm)) {
            return k;
        }
    }
    return -1;
}

/* Maps the header row to column indexes (map[i] = column of field i). */
static int read_header(const otactl_ctx *ctx, const char *path, csv *c, int **map)
{
    bool seen[NCOLUMNS] = {false};
    int *m = calloc((size_t)c->n + 1, sizeof(int));
    *map = m;
    for (int i = 0; i < c->n; i++) {
        const char *h = c->field[i];
        m[i] = column_of(h);
        if (m[i] < 0) {
            return otactl_usage_err(ctx,
                                    "%s line 1: unknown column \"%s\" (vehicle fields: vin, "
                                    "model, series, platform, status, usage, sold, activated, "
                                    "passenger, config_word, fw, public_key, rxswin)",
                                    path, h);
        }
        if (seen[m[i]]) {
            return otactl_usage_err(ctx, "%s line 1: column \"%s\" twice", path, h);
        }
        seen[m[i]] = true;
    }
    for (int k = 0; k < NCOLUMNS; k++) {
        if (columns[k].required && !seen[k]) {
            return otactl_usage_err(ctx, "%s line 1: no \"%s\" column", path, columns[k].name);
        }
    }
    return OTACTL_OK;
}

static int parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "y", "1", NULL};
    static const char *const no[] = {"false", "no", "n", "0", NULL};
    for (int i = 0; yes[i]; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *v = !strcasecmp(s, yes[i]);
            return 0;
        }
    }
    return -1;
}

/* A list cell: items split at ';' or ',', blanks around them dropped. */
static void add_list(cJSON *v, const char *name, const char *cell)
{
    cJSON *arr = cJSON_AddArrayToObject(v, name);
    for (const char *s = cell; *s;) {
        s += strspn(s, " \t;,");
        size_t k = strcspn(s, ";,");
        size_t end = k;
        while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
            end--;
        }
        if (end > 0) {
            char *item = strndup(s, end);
            cJSON_AddItemToArray(arr, cJSON_CreateString(item ? item : ""));
            free(item);
        }
        s += k;
    }
}

/* One data row -> a vehicle object. */
static int row_vehicle(const otactl_ctx *ctx, const char *path, unsigned line, const csv *c,
                       const int *map, int ncols, cJSON **out)
{
    if (c->n > ncols) {
        return otactl_usage_err(ctx, "%s line %u: %d cells, the header has %d", path, line, c->n,
                                ncols);
    }
    cJSON *v = cJSON_CreateObject();
    for (int i = 0; i < ncols; i++) {
        const char *cell = i < c->n ? c->field[i] : "";
        int k = map[i];
        bool b;
        if (!*cell && columns[k].required) {
            cJSON_Delete(v);
            return otactl_usage_err(ctx, "%s line %u: %s is empty", path, line, columns[k].name);
        } else if (!*cell) {
            continue;
        } else if (columns[k].kind == COL_TEXT) {
            cJSON_AddStringToObject(v, columns[k].name, cell);
        } else if (columns[k].kind == COL_LIST) {
            add_list(v, columns[k].name, cell);
        } else if (parse_bool(cell, &b) == 0) {
            cJSON_AddBoolToObject(v, columns[k].name, b);
        } else {
            cJSON_Delete(v);
            return otactl_usage_err(ctx, "%s line %u: %s: expected true or false, got \"%s\"", path,
                                    line, columns[k].name, cell);
        }
    }
    *out = v;
    return OTACTL_OK;
}

static int csv_rows(const otactl_ctx *ctx, const char *path, csv *c, const int *map, int ncols,
                    cJSON *vehicles, unsigned **lines)
{
    size_t cap = 0;
    for (;;) {
        unsigned line = c->line;
        int r = csv_record(c);
        if (r < 0) {
            return otactl_usage_err(ctx, "%s line %u: bad quoting", path, line);
        }
        if (r == 0) {
            return OTACTL_OK;
        }
        if (blank_record(c)) {
            continue;
        }
        cJSON *v = NULL;
        int rc = row_vehicle(ctx, path, line, c, map, ncols, &v);
        if (rc != OTACTL_OK) {
            return rc;
        }
        size_t n = (size_t)cJSON_GetArraySize(vehicles);
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            unsigned *grown = realloc(*lines, cap * sizeof(unsigned));
            if (!grown) {
                cJSON_Delete(v);
                fprintf(stderr, "otactl: out of memory\n");
                return OTACTL_ECONN;
            }
            *lines = grown;
        }
        (*lines)[n] = line;
        cJSON_AddItemToArray(vehicles, v);
    }
}

static int import_csv(const otactl_ctx *ctx, const char *path, const char *text, cJSON *vehicles,
                      unsigned **lines)
{
    csv c = {.p = text, .line = 1};
    if (!strncmp(c.p, "\xef\xbb\xbf", 3)) { /* UTF-8 byte order mark */
        c.p += 3;
    }
    int *map = NULL;
    int r;
    while ((r = csv_record(&c)) > 0 && blank_record(&c)) {
    }
    int rc;
    if (r <= 0) {
        rc =
            otactl_usage_err(ctx, r < 0 ? "%s: bad quoting in the header" : "%s: empty file", path);
    } else {
        rc = read_header(ctx, path, &c, &map);
    }
    if (rc == OTACTL_OK) {
        rc = csv_rows(ctx, path, &c, map, c.n, vehicles, lines);
    }
    csv_clear(&c);
    free(c.field);
    free(map);
    return rc;
}

/* ---- JSON ---- */

static int import_json(const otactl_ctx *ctx, const char *path, const char *text, size_t len,
                       cJSON **vehicles)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len + 1, &end, true);
    if (!j) {
        return otactl_usage_err(ctx, "%s is not valid JSON (near byte %zu)", path,
                                end ? (size_t)(end - text) : 0);
    }
    if (cJSON_IsObject(j) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "vehicles"))) {
        cJSON *arr = cJSON_DetachItemFromObjectCaseSensitive(j, "vehicles");
        cJSON_Delete(j);
        j = arr;
    }
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return otactl_usage_err(ctx, "%s: expected an array of vehicle objects", path);
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        if (!cJSON_IsObject(v)) {
            cJSON_Delete(j);
            return otactl_usage_err(ctx, "%s: element %d is not an object", path, i);
        }
        i++;
    }
    *vehicles = j;
    return OTACTL_OK;
}

static bool looks_like_json(const char *path, const char *text)
{
    size_t n = strlen(path);
    if (n > 5 && !strcasecmp(path + n - 5, ".json")) {
        return true;
    }
    text += strspn(text, " \t\r\n");
    return *text == '[' || *text == '{';
}

/* Parses a vehicle file: *vehicles a new array, *lines the CSV line of each (NULL for
 * JSON). */
static int import_parse(const otactl_ctx *ctx, const char *path, cJSON **vehicles, unsigned **lines)
{
    size_t len;
    *vehicles = NULL;
    *lines = NULL;
    char *text = otactl_read_file(path, &len);
    if (!text) {
        return otactl_usage_err(ctx, "cannot read %s: %s", path, strerror(errno));
    }
    int rc;
    if (looks_like_json(path, text)) {
        rc = import_json(ctx, path, text, len, vehicles);
    } else {
        *vehicles = cJSON_CreateArray();
        rc = import_csv(ctx, path, text, *vehicles, lines);
    }
    free(text);
    if (rc == OTACTL_OK && cJSON_GetArraySize(*vehicles) == 0) {
        rc = otactl_usage_err(ctx, "%s: no vehicles", path);
    }
    if (rc != OTACTL_OK) {
        cJSON_Delete(*vehicles);
        free(*lines);
        *vehicles = NULL;
        *lines = NULL;
    }
    return rc;
}

/* ---- sending ---- */

typedef struct {
    const char *path;
    const unsigned *lines; /* NULL for JSON */
    int from, to, n;       /* the batch: vehicles [from, to) of n */
    double done;           /* upserted by the earlier batches */
} batch_info;

static int batch_error(const batch_info *b, const cJSON *resp)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
    const char *text = cJSON_IsString(err) ? err->valuestring : "(error without text)";
    unsigned long k;
    char *end;
    if (!strncmp(text, "vehicles[", 9) && (k = strtoul(text + 9, &end, 10), *end == ']') &&
        b->from + (long)k < b->to) {
        int rec = b->from + (int)k;
        if (b->lines) {
            fprintf(stderr, "Error: upsertVehicles: %s line %u: %s\n", b->path, b->lines[rec],
                    text);
        } else {
            fprintf(stderr, "Error: upsertVehicles: %s element %d: %s\n", b->path, rec, text);
        }
    } else {
        fprintf(stderr, "Error: upsertVehicles (vehicles %d-%d of %s): %s\n", b->from + 1, b->to,
                b->path, text);
    }
    if (b->from > 0) {
        fprintf(stderr, "upserted: %.0f by the earlier batches\n", b->done);
    }
    return OTACTL_ECMD;
}

/* Sends vehicles [b->from, b->to), moving them out of vehicles (always its head). */
static int send_batch(otactl_ctx *ctx, cJSON *vehicles, batch_info *b)
{
    cJSON *cmd = otactl_cmd_new("upsertVehicles");
    cJSON *arr = cJSON_AddArrayToObject(cmd, "vehicles");
    for (int i = b->from; i < b->to; i++) {
        cJSON_AddItemToArray(arr, cJSON_DetachItemFromArray(vehicles, 0));
    }
    cJSON *resp = NULL;
    int rc = otactl_request_one(ctx, cmd, &resp);
    if (rc == OTACTL_OK && resp) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(data, "upserted");
        if (cJSON_GetObjectItemCaseSensitive(resp, "error") || !cJSON_IsObject(data)) {
            rc = batch_error(b, resp);
        }
        b->done += cJSON_IsNumber(up) ? up->valuedouble : 0;
    }
    cJSON_Delete(resp);
    return rc;
}

int otactl_cmd_vehicle_import(otactl_ctx *ctx, otactl_args *a)
{
    const char *s = otactl_arg(a, "batch");
    uint64_t batch = IMPORT_BATCH;
    if (s && (otactl_parse_u64(s, &batch) != 0 || batch < 1 || batch > IMPORT_BATCH_MAX)) {
        return otactl_usage_err(ctx, "--batch: expected 1..%d, got \"%s\"", IMPORT_BATCH_MAX, s);
    }
    cJSON *vehicles;
    unsigned *lines;
    int rc = import_parse(ctx, a->pos[0], &vehicles, &lines);
    if (rc != OTACTL_OK) {
        return rc;
    }
    batch_info b = {.path = a->pos[0], .lines = lines, .n = cJSON_GetArraySize(vehicles)};
    for (b.from = 0; b.from < b.n && rc == OTACTL_OK; b.from = b.to) {
        b.to = b.from + (int)batch < b.n ? b.from + (int)batch : b.n;
        rc = send_batch(ctx, vehicles, &b);
    }
    if (rc == OTACTL_OK && !ctx->dry_run) {
        cJSON *sum = cJSON_CreateObject();
        cJSON_AddNumberToObject(sum, "upserted", b.done);
        ctx->json ? otactl_print_json(sum) : otactl_print_kv(sum);
        cJSON_Delete(sum);
    }
    cJSON_Delete(vehicles);
    free(lines);
    return rc;
}
