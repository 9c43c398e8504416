/*
 * otactl_print.c — otactl's human output: short, readable renderings of response data.
 *
 * Objects become "key: value" lines (nested members flattened as "a.b", arrays of
 * objects as "a[0].b", arrays of scalars joined with ", "); lists of things with the
 * same fields (packages, a package's or a strategy's ECUs) become aligned tables; VIN
 * lists are one VIN per line. With --json none of this is used: the data object is
 * printed as one line of JSON (otactl_print_json).
 */
#include "otactl.h"
#include "ota_catalog_json.h" /* ota_iso8601_format */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A scalar (or an array of scalars) as text, malloc'd; "" for NULL / objects. */
static char *scalar_text(const cJSON *v)
{
    char buf[64];
    if (cJSON_IsString(v)) {
        return strdup(v->valuestring);
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(long long)d) {
            snprintf(buf, sizeof(buf), "%lld", (long long)d);
        } else {
            snprintf(buf, sizeof(buf), "%.17g", d);
        }
        return strdup(buf);
    }
    if (cJSON_IsBool(v)) {
        return strdup(cJSON_IsTrue(v) ? "true" : "false");
    }
    if (cJSON_IsNull(v)) {
        return strdup("null");
    }
    if (cJSON_IsArray(v)) {
        size_t cap = 1, len = 0;
        char *out = calloc(1, 1);
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            char *t = scalar_text(e);
            cap = len + strlen(t) + 3;
            char *n = out ? realloc(out, cap) : NULL;
            if (n) {
                len += (size_t)sprintf(n + len, "%s%s", len ? ", " : "", t);
            }
            out = n;
            free(t);
        }
        return out;
    }
    return strdup("");
}

/* Members that hold a time in ms since the Unix epoch: printed as ISO 8601 UTC. */
static bool time_key(const char *key)
{
    static const char *const names[] = {
        "created_at", "updated_at", "notified_at", "received_at", "start", "end", "ts", "at", NULL};
    const char *dot = strrchr(key, '.');
    const char *last = dot ? dot + 1 : key;
    size_t len = strcspn(last, "[");
    for (int i = 0; names[i]; i++) {
        if (strlen(names[i]) == len && !strncmp(last, names[i], len)) {
            return true;
        }
    }
    return false;
}

char *otactl_value_text(const char *key, const cJSON *v)
{
    if (key && cJSON_IsNumber(v) && v->valuedouble >= 0 && time_key(key)) {
        char buf[40];
        ota_iso8601_format((int64_t)v->valuedouble, buf, sizeof(buf));
        return strdup(buf);
    }
    return scalar_text(v);
}

static bool all_scalars(const cJSON *arr)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (cJSON_IsObject(e) || cJSON_IsArray(e)) {
            return false;
        }
    }
    return true;
}

static void print_item(const char *key, const cJSON *v);

static void print_members(const char *prefix, const cJSON *obj)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        char *key = malloc(strlen(prefix) + strlen(m->string) + 2);
        sprintf(key, "%s%s%s", prefix, *prefix ? "." : "", m->string);
        print_item(key, m);
        free(key);
    }
}

static void print_item(const char *key, const cJSON *v)
{
    if (cJSON_IsObject(v)) {
        print_members(key, v);
    } else if (cJSON_IsArray(v) && !all_scalars(v)) {
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            char *k = malloc(strlen(key) + 24);
            sprintf(k, "%s[%d]", key, i++);
            print_item(k, e);
            free(k);
        }
    } else {
        char *t = otactl_value_text(key, v);
        printf("%s: %s\n", key, cJSON_IsArray(v) && !*t ? "(none)" : t);
        free(t);
    }
}

void otactl_print_kv(const cJSON *data)
{
    print_members("", data);
}

/* Members of obj except the ones named in skip (NULL-terminated). */
static void print_kv_except(const cJSON *obj, const char *const *skip)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        bool skipped = false;
        for (int i = 0; skip[i]; i++) {
            skipped |= !strcmp(skip[i], m->string);
        }
        if (!skipped) {
            print_item(m->string, m);
        }
    }
}

/* ---- tables ---- */

typedef struct {
    const char *title;
    const char *path; /* member, or "a.b" for a nested member */
} column;

static const cJSON *get_path(const cJSON *obj, const char *path)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        return cJSON_GetObjectItemCaseSensitive(obj, path);
    }
    char head[64];
    snprintf(head, sizeof(head), "%.*s", (int)(dot - path), path);
    return get_path(cJSON_GetObjectItemCaseSensitive(obj, head), dot + 1);
}

static void print_table(const cJSON *rows, const column *cols, int ncols, const char *indent)
{
    int nrows = cJSON_GetArraySize(rows);
    char **cells = calloc((size_t)(nrows * ncols) + 1, sizeof(char *));
    size_t width[16] = {0};
    for (int c = 0; c < ncols; c++) {
        width[c] = strlen(cols[c].title);
    }
    for (int r = 0; r < nrows; r++) {
        const cJSON *row = cJSON_GetArrayItem(rows, r);
        for (int c = 0; c < ncols; c++) {
            char *t = otactl_value_text(cols[c].path, get_path(row, cols[c].path));
            cells[r * ncols + c] = t;
            width[c] = t && strlen(t) > width[c] ? strlen(t) : width[c];
        }
    }
    printf("%s", indent);
    for (int c = 0; c < ncols; c++) {
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, cols[c].title,
               c + 1 < ncols ? "  " : "\n");
    }
    for (int r = 0; r < nrows; r++) {
        printf("%s", indent);
        for (int c = 0; c < ncols; c++) {
            const char *t = cells[r * ncols + c] ? cells[r * ncols + c] : "";
            printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, t, c + 1 < ncols ? "  " : "\n");
            free(cells[r * ncols + c]);
        }
    }
    free(cells);
}

/* ---- per response ---- */

void otactl_print_vehicle(const cJSON *data)
{
    otactl_print_kv(cJSON_GetObjectItemCaseSensitive(data, "vehicle"));
}

void otactl_print_model(const cJSON *data)
{
    otactl_print_kv(cJSON_GetObjectItemCaseSensitive(data, "model"));
}

static const column pkg_ecu_cols[] = {
    {"ECU", "ecu"},        {"TYPE", "type"},          {"VERSION", "version"},
    {"SIZE", "file.size"}, {"SHA256", "file.sha256"}, {"NAME", "file.name"},
};

void otactl_print_package(const cJSON *data)
{
    const cJSON *pkg = cJSON_GetObjectItemCaseSensitive(data, "package");
    static const char *const skip[] = {"ecus", NULL};
    print_kv_except(pkg, skip);
    const cJSON *ecus = cJSON_GetObjectItemCaseSensitive(pkg, "ecus");
    if (cJSON_IsArray(ecus)) {
        printf("ecus:\n");
        print_table(ecus, pkg_ecu_cols, 6, "  ");
    }
}

static const column pkg_cols[] = {
    {"ID", "id"},     {"MODEL", "model"}, {"SERIES", "series"}, {"VERSION", "version"},
    {"KIND", "kind"}, {"FROM", "from"},   {"STATUS", "status"},
};

void otactl_print_packages(const cJSON *data)
{
    const cJSON *pkgs = cJSON_GetObjectItemCaseSensitive(data, "packages");
    if (cJSON_GetArraySize(pkgs) == 0) {
        printf("(no packages)\n");
        return;
    }
    print_table(pkgs, pkg_cols, 7, "");
}

static const column quarantine_cols[] = {
    {"ID", "id"},   {"VIN", "vin"},     {"RECEIVED_AT", "received_at"}, {"CODE", "code"},
    {"SEQ", "seq"}, {"EPOCH", "epoch"}, {"SIZE", "size"},               {"MSG", "msg"},
};

void otactl_print_quarantine(const cJSON *data)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(data, "items");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(data, "next");
    if (cJSON_GetArraySize(items) == 0) {
        printf("(no refused reports)\n");
    } else {
        print_table(items, quarantine_cols, 8, "");
    }
    if (cJSON_IsNumber(next)) {
        printf("next: --before %.0f\n", next->valuedouble);
    }
}

static const column strategy_ecu_cols[] = {
    {"ECU", "ecu"},
    {"ORDER", "order"},
    {"UPGRADE", "upgrade"},
};

void otactl_print_strategy(const cJSON *data)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(data, "strategy");
    static const char *const skip[] = {"ecus", NULL};
    print_kv_except(s, skip);
    const cJSON *ecus = cJSON_GetObjectItemCaseSensitive(s, "ecus");
    if (cJSON_IsArray(ecus)) {
        printf("ecus:\n");
        print_table(ecus, strategy_ecu_cols, 3, "  ");
    }
    const cJSON *d;
    printf("defaults:%s",
           cJSON_GetArraySize(cJSON_GetObjectItem(data, "defaults")) ? "" : " (none)");
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(data, "defaults"))
    {
        char *m = scalar_text(cJSON_GetObjectItem(d, "model"));
        char *se = scalar_text(cJSON_GetObjectItem(d, "series"));
        printf(" %s/%s", m, se);
        free(m);
        free(se);
    }
    printf("\n");
    static const char *const rest[] = {"strategy", "defaults", NULL};
    print_kv_except(data, rest);
}

void otactl_print_vins(const cJSON *data)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(data, "vins"))
    {
        if (cJSON_IsString(v)) {
            puts(v->valuestring);
        }
    }
}

void otactl_print_nothing(const cJSON *data)
{
    (void)data;
}

void otactl_print_json(const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);
    if (text) {
        puts(text);
        free(text);
    }
}

void otactl_print_table(const cJSON *rows, const char *const *titles, const char *const *paths,
                        int ncols)
{
    column cols[16];
    for (int c = 0; c < ncols && c < 16; c++) {
        cols[c] = (column){titles[c], paths[c]};
    }
    print_table(rows, cols, ncols < 16 ? ncols : 16, "");
}
