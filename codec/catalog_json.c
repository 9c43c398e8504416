/*
 * catalog_json.c — the catalog records to and from the operator API's JSON, with cJSON
 * (ota_catalog_json.h, docs/operator-api.md).
 *
 * Design: three layers.
 *  - value checks (word_value, vin_value, uint_value, ...) judge one cJSON item and name it
 *    "<path>.<key>" in their error;
 *  - the public ota_json_get_* helpers find an object's member and apply a value check;
 *    command handlers use them too, so every error of the operator API reads alike;
 *  - record parsers check the object's fields, then fill the record member by member with
 *    the helpers, building the path of nested objects ("package.ecus[2].file"). A record
 *    is filled in place and freed on the first error, so a caller never holds half of one.
 * Emitters write the stored form; they leave out what the parsers take as absent, so a
 * record survives a round trip unchanged.
 */
#include "ota_catalog_json.h"
#include "ota_cose.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota_codec.h"
#include "ota_errf.h"

#define SUBPATH_LEN 256 /* a nested object's path, e.g. "package.ecus[255].file" */
#define SHOWN_MAX 64    /* longest user value quoted in an error text */
#define EXACT_NUMBER_MAX 1000000000000000ULL /* 10^15: cJSON prints smaller integers exactly */

static const char *const pkg_kind_names[] = {"full", "delta"};
static const char *const ecu_type_names[] = {"ecu", "component"};
static const char *const kind_pref_names[] = {"full", "delta", "auto"};
static const char *const compare_names[] = {"always", "never", "auto"};

/* ---- error texts and paths ---- */

cJSON *ota_json_parse_exact(const void *payload, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(payload, len, &end, false);
    const char *stop = (const char *)payload + len;
    while (j && end < stop && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (j && end != stop) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int ota_json_errf(char *err, size_t errlen, const char *path, const char *key, const char *fmt, ...)
{
    bool p = path != NULL && *path, k = key != NULL && *key;
    ota_errf(err, errlen, "%s%s%s%s", p ? path : "", p && k ? "." : "", k ? key : "",
             p || k ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    ota_verrf_append(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int out_of_memory(char *err, size_t errlen, const char *path, const char *key)
{
    return ota_json_errf(err, errlen, path, key, "out of memory");
}

/* True when a user's value can be quoted in an error text. */
static bool showable(const char *s)
{
    size_t n = strlen(s);
    return n <= SHOWN_MAX && ota_text_valid(s, n);
}

/* A path only names a field in an error text: cutting a long one is intended, and done
 * like an error text's (at a whole UTF-8 character). */

/* "<path>.<key>" into buf. */
static const char *join(char *buf, size_t len, const char *path, const char *key)
{
    bool p = path != NULL && *path;
    ota_errf(buf, len, "%s%s%s", p ? path : "", p ? "." : "", key);
    return buf;
}

/* "<path>.<key>[i]" into buf. */
static const char *join_index(char *buf, size_t len, const char *path, const char *key, size_t i)
{
    bool p = path != NULL && *path;
    ota_errf(buf, len, "%s%s%s[%zu]", p ? path : "", p ? "." : "", key, i);
    return buf;
}

/* ---- field lists ---- */

static int field_index(const char *const *allowed, const char *name, bool command)
{
    int i = 0;
    for (; name != NULL && allowed[i] != NULL; i++) {
        if (strcmp(allowed[i], name) == 0)
            return i;
    }
    if (command && name != NULL && strcmp(name, "command") == 0)
        return i;
    if (command && name != NULL && strcmp(name, "correlationData") == 0)
        return i + 1;
    return -1;
}

static int check_fields(const cJSON *obj, const char *path, const char *const *allowed,
                        bool command, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj))
        return ota_json_errf(err, errlen, path, NULL, "expected an object");
    uint64_t seen = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        int i = field_index(allowed, m->string, command);
        if (i < 0 && !showable(m->string ? m->string : ""))
            return ota_json_errf(err, errlen, path, NULL,
                                 "unknown field (its name is not short valid text)");
        if (i < 0)
            return ota_json_errf(err, errlen, path, m->string, "unknown field");
        if (seen >> i & 1)
            return ota_json_errf(err, errlen, path, m->string, "duplicate field");
        seen |= (uint64_t)1 << i;
    }
    return 0;
}

int ota_json_check_fields(const cJSON *obj, const char *path, const char *const *allowed, char *err,
                          size_t errlen)
{
    return check_fields(obj, path, allowed, false, err, errlen);
}

int ota_json_check_command_fields(const cJSON *obj, const char *path, const char *const *allowed,
                                  char *err, size_t errlen)
{
    return check_fields(obj, path, allowed, true, err, errlen);
}

/* ---- value checks: one item, named "<path>.<key>" in errors ---- */

/* A string of min..max bytes of valid text; multiline also allows tabs and line breaks. */
static int text_value(const cJSON *it, const char *path, const char *key, size_t min, size_t max,
                      bool multiline, const char **out, char *err, size_t errlen)
{
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return ota_json_errf(err, errlen, path, key, "expected a string");
    const char *s = it->valuestring;
    size_t n = strlen(s);
    if (n < min || n > max)
        return ota_json_errf(err, errlen, path, key, "expected a string of %zu..%zu bytes, not %zu",
                             min, max, n);
    for (size_t start = 0, i = 0; i <= n; i++) {
        bool brk = multiline && (s[i] == '\t' || s[i] == '\n' || s[i] == '\r');
        if (i < n && !brk)
            continue;
        if (!ota_text_valid(s + start, i - start))
            return ota_json_errf(err, errlen, path, key,
                                 "not valid text (UTF-8 without control characters)");
        start = i + 1;
    }
    *out = s;
    return 0;
}

static int word_value(const cJSON *it, const char *path, const char *key, const char **out,
                      char *err, size_t errlen)
{
    return text_value(it, path, key, 1, OTA_ID_MAX, false, out, err, errlen);
}

static int vin_value(const cJSON *it, const char *path, const char *key, const char **out,
                     char *err, size_t errlen)
{
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return ota_json_errf(err, errlen, path, key, "expected a string");
    const char *s = it->valuestring;
    if (ota_vin_valid(s)) {
        *out = s;
        return 0;
    }
    if (showable(s))
        return ota_json_errf(err, errlen, path, key, "\"%s\" is not a valid VIN", s);
    return ota_json_errf(err, errlen, path, key, "not a valid VIN");
}

/* The value of a raw item holding decimal digits (as add_uint writes them), else -1. */
static double raw_number(const cJSON *it)
{
    const char *s = cJSON_IsRaw(it) ? it->valuestring : NULL;
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 16 || strspn(s, "0123456789") != n)
        return -1.0;
    return (double)strtoull(s, NULL, 10);
}

static int uint_value(const cJSON *it, const char *path, const char *key, uint64_t min,
                      uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    if (max > OTA_JSON_UINT_MAX)
        max = OTA_JSON_UINT_MAX;
    double d = cJSON_IsNumber(it) ? it->valuedouble : raw_number(it);
    /* the conversion runs only on a value already known to be in range */
    if (!(d >= (double)min && d <= (double)max) || (double)(uint64_t)d != d)
        return ota_json_errf(err, errlen, path, key, "expected an integer in %" PRIu64 "..%" PRIu64,
                             min, max);
    *out = (uint64_t)d;
    return 0;
}

static int hex_digit(char c, bool lower_only)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (!lower_only && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly 2n hex characters of s into buf (NULL: only checks). */
static bool hex_decode(const char *s, uint8_t *buf, size_t n, bool lower_only)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i], lower_only), lo = hex_digit(s[2 * i + 1], lower_only);
        if (hi < 0 || lo < 0)
            return false;
        if (buf != NULL)
            buf[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static char *hex_encode(const uint8_t *b, size_t n, char *out)
{
    ota_codec_hex(b, n, out);
    return out;
}

/* ---- member helpers ---- */

/* Finds obj's member key: 1 found, 0 absent and optional, -1 absent and required. */
static int lookup(const cJSON *obj, const char *path, const char *key, bool required,
                  const cJSON **it, char *err, size_t errlen)
{
    *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*it != NULL)
        return 1;
    return required ? ota_json_errf(err, errlen, path, key, "missing") : 0;
}

int ota_json_get_word(const cJSON *obj, const char *path, const char *key, bool required,
                      const char **out, char *err, size_t errlen)
{
    const cJSON *it;
    *out = NULL;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    return r <= 0 ? r : word_value(it, path, key, out, err, errlen);
}

int ota_json_get_text(const cJSON *obj, const char *path, const char *key, bool required,
                      const char **out, char *err, size_t errlen)
{
    const cJSON *it;
    *out = NULL;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    return r <= 0 ? r : text_value(it, path, key, 0, OTA_FREE_TEXT_MAX, true, out, err, errlen);
}

int ota_json_get_vin(const cJSON *obj, const char *path, const char *key, bool required,
                     const char **out, char *err, size_t errlen)
{
    const cJSON *it;
    *out = NULL;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    return r <= 0 ? r : vin_value(it, path, key, out, err, errlen);
}

int ota_json_get_sha256(const cJSON *obj, const char *path, const char *key,
                        char out[OTA_SHA256_HEX + 1], char *err, size_t errlen)
{
    const cJSON *it;
    if (lookup(obj, path, key, true, &it, err, errlen) < 0)
        return -1;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        !hex_decode(it->valuestring, NULL, OTA_SHA256_HEX / 2, true))
        return ota_json_errf(err, errlen, path, key, "expected 64 lowercase hex characters");
    memcpy(out, it->valuestring, OTA_SHA256_HEX + 1);
    return 0;
}

int ota_json_get_bool(const cJSON *obj, const char *path, const char *key, bool required, bool def,
                      bool *out, char *err, size_t errlen)
{
    const cJSON *it;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    if (r <= 0) {
        *out = def;
        return r;
    }
    if (!cJSON_IsBool(it))
        return ota_json_errf(err, errlen, path, key, "expected true or false");
    *out = cJSON_IsTrue(it);
    return 0;
}

int ota_json_get_uint(const cJSON *obj, const char *path, const char *key, bool required,
                      uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    const cJSON *it;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    return r <= 0 ? r : uint_value(it, path, key, min, max, out, err, errlen);
}

/* "a|b|c" into buf. */
static const char *names_list(char *buf, size_t len, const char *const *names, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? "|" : "", names[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

int ota_json_get_enum(const cJSON *obj, const char *path, const char *key, bool required,
                      const char *const *names, size_t n, int *out, char *err, size_t errlen)
{
    const char *s;
    if (ota_json_get_word(obj, path, key, required, &s, err, errlen) < 0)
        return -1;
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    if (s == NULL)
        return 0;
    char list[128];
    return ota_json_errf(err, errlen, path, key, "expected %s",
                         names_list(list, sizeof list, names, n));
}

int ota_json_get_array(const cJSON *obj, const char *path, const char *key, bool required,
                       size_t min, size_t max, const cJSON **arr, size_t *n, char *err,
                       size_t errlen)
{
    const cJSON *it;
    *arr = NULL;
    *n = 0;
    int r = lookup(obj, path, key, required, &it, err, errlen);
    if (r <= 0)
        return r;
    if (!cJSON_IsArray(it))
        return ota_json_errf(err, errlen, path, key, "expected an array");
    size_t count = (size_t)cJSON_GetArraySize(it);
    if (count < min || count > max)
        return ota_json_errf(err, errlen, path, key, "expected %zu..%zu items, not %zu", min, max,
                             count);
    *arr = it;
    *n = count;
    return 0;
}

/* ---- string arrays and uniqueness ---- */

void ota_json_strings_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static int copy_string(char **dst, const char *s, const char *path, const char *key, char *err,
                       size_t errlen)
{
    if (s == NULL)
        return 0;
    *dst = strdup(s);
    return *dst != NULL ? 0 : out_of_memory(err, errlen, path, key);
}

static int cmp_index(const void *a, const void *b, void *ctx)
{
    const char *const *v = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(v[i], v[j]);
    return c != 0 ? c : (i > j) - (i < j);
}

/* Refuses two equal names among v[0..n-1], the items of <path>.<key>[] (or, with field,
 * their member <field>). The error names the first repeat: "<key>[j].<field>: duplicate". */
static int check_unique(const char *const *v, size_t n, const char *path, const char *key,
                        const char *field, char *err, size_t errlen)
{
    if (n < 2)
        return 0;
    size_t *idx = malloc(n * sizeof *idx);
    if (idx == NULL)
        return out_of_memory(err, errlen, path, key);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_index, (void *)v);
    size_t dup = n, first = 0;
    for (size_t k = 1; k < n; k++) {
        if (idx[k] < dup && strcmp(v[idx[k - 1]], v[idx[k]]) == 0) {
            dup = idx[k];
            first = idx[k - 1];
        }
    }
    free(idx);
    if (dup == n)
        return 0;
    char item[SUBPATH_LEN], where[SUBPATH_LEN];
    join_index(item, sizeof item, path, key, dup);
    if (field != NULL)
        join(where, sizeof where, item, field);
    return ota_json_errf(err, errlen, field ? where : item, NULL,
                         "duplicate \"%s\" (also at [%zu])", v[dup], first);
}

/* Item i of array key: a VIN (OTA_JSON_VINS) or a word. Its path ("key[i]") is formatted
 * only for an error message: createTask checks up to 100,000 VINs. */
static int array_item(const cJSON *e, unsigned flags, const char *path, const char *key, size_t i,
                      const char **out, char *err, size_t errlen)
{
    bool vin = (flags & OTA_JSON_VINS) != 0;
    if (vin ? cJSON_IsString(e) && e->valuestring && ota_vin_valid(e->valuestring)
            : text_value(e, path, key, 1, OTA_ID_MAX, false, out, NULL, 0) == 0) {
        *out = e->valuestring;
        return 0;
    }
    char item[SUBPATH_LEN];
    join_index(item, sizeof item, NULL, key, i);
    return vin ? vin_value(e, path, item, out, err, errlen)
               : word_value(e, path, item, out, err, errlen);
}

int ota_json_get_string_array(const cJSON *obj, const char *path, const char *key, bool required,
                              size_t min, size_t max, unsigned flags, char ***out, size_t *n,
                              char *err, size_t errlen)
{
    const cJSON *arr, *e;
    size_t count, i = 0;
    *out = NULL;
    *n = 0;
    if (ota_json_get_array(obj, path, key, required, min, max, &arr, &count, err, errlen) < 0)
        return -1;
    if (arr == NULL)
        return 0;
    char **v = calloc(count ? count : 1, sizeof *v);
    if (v == NULL)
        return out_of_memory(err, errlen, path, key);
    cJSON_ArrayForEach(e, arr)
    {
        const char *s;
        if (array_item(e, flags, path, key, i, &s, err, errlen) < 0 ||
            copy_string(&v[i], s, path, key, err, errlen) < 0)
            goto fail;
        i++;
    }
    if ((flags & OTA_JSON_UNIQUE) &&
        check_unique((const char *const *)v, count, path, key, NULL, err, errlen) < 0)
        goto fail;
    *out = v;
    *n = count;
    return 0;
fail:
    ota_json_strings_free(v, count);
    return -1;
}

/* A word member copied into *dst (left NULL when absent and optional). */
static int copy_word(const cJSON *obj, const char *path, const char *key, bool required, char **dst,
                     char *err, size_t errlen)
{
    const char *s;
    return ota_json_get_word(obj, path, key, required, &s, err, errlen) < 0
               ? -1
               : copy_string(dst, s, path, key, err, errlen);
}

static int copy_text(const cJSON *obj, const char *path, const char *key, char **dst, char *err,
                     size_t errlen)
{
    const char *s;
    return ota_json_get_text(obj, path, key, false, &s, err, errlen) < 0
               ? -1
               : copy_string(dst, s, path, key, err, errlen);
}

/* The member key, which must be an object with only the allowed fields: *it, or NULL
 * with err. */
static const cJSON *sub_object(const cJSON *obj, const char *path, const char *key,
                               const char *const *allowed, char *sub, size_t sublen, char *err,
                               size_t errlen)
{
    const cJSON *it;
    if (lookup(obj, path, key, true, &it, err, errlen) < 0)
        return NULL;
    join(sub, sublen, path, key);
    return ota_json_check_fields(it, sub, allowed, err, errlen) < 0 ? NULL : it;
}

/* ---- vehicles ---- */

static const char *const vehicle_fields[] = {
    "vin",       "model",     "series",      "platform", "status",     "usage",  "sold",
    "activated", "passenger", "config_word", "fw",       "public_key", "rxswin", NULL};

static int vehicle_public_key(const cJSON *j, const char *path, ota_vehicle_rec *out, char *err,
                              size_t errlen)
{
    const cJSON *it;
    int r = lookup(j, path, "public_key", false, &it, err, errlen);
    if (r <= 0)
        return r;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        !hex_decode(it->valuestring, out->public_key, OTA_PUBKEY_LEN, false))
        return ota_json_errf(err, errlen, path, "public_key", "expected %d hex characters",
                             2 * OTA_PUBKEY_LEN);
    out->has_public_key = true;
    return 0;
}

static int vehicle_fill(const cJSON *j, const char *path, ota_vehicle_rec *out, char *err,
                        size_t errlen)
{
    const char *vin;
    if (ota_json_get_vin(j, path, "vin", true, &vin, err, errlen) < 0 ||
        copy_string(&out->vin, vin, path, "vin", err, errlen) < 0)
        return -1;
    if (copy_word(j, path, "model", true, &out->model, err, errlen) ||
        copy_word(j, path, "series", true, &out->series, err, errlen) ||
        copy_word(j, path, "platform", false, &out->platform, err, errlen) ||
        copy_word(j, path, "status", true, &out->status, err, errlen) ||
        copy_word(j, path, "usage", true, &out->usage, err, errlen))
        return -1;
    if (ota_json_get_bool(j, path, "sold", false, false, &out->sold, err, errlen) ||
        ota_json_get_bool(j, path, "activated", false, false, &out->activated, err, errlen) ||
        ota_json_get_bool(j, path, "passenger", false, true, &out->passenger, err, errlen))
        return -1;
    if (copy_word(j, path, "config_word", false, &out->config_word, err, errlen) ||
        copy_word(j, path, "fw", false, &out->fw, err, errlen) ||
        ota_json_get_rxswin(j, path, "rxswin", &out->rxswin, err, errlen))
        return -1;
    return vehicle_public_key(j, path, out, err, errlen);
}

int ota_json_vehicle(const cJSON *j, const char *path, ota_vehicle_rec *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, vehicle_fields, err, errlen) < 0 ||
        vehicle_fill(j, path, out, err, errlen) < 0) {
        ota_vehicle_rec_free(out);
        return -1;
    }
    return 0;
}

/* ---- models ---- */

static const char *const model_fields[] = {"model", "series", "supports_config_word",
                                           "ecus",  "ignore", NULL};
static const char *const ignore_fields[] = {"bit", "ecus", NULL};

static bool model_has_ecu(const ota_model_rec *m, const char *ecu)
{
    for (size_t i = 0; i < m->n_ecus; i++) {
        if (strcmp(m->ecus[i], ecu) == 0)
            return true;
    }
    return false;
}

/* ignore[i] at path sub: {bit, ecus}, the bit not used by an earlier rule, the ECUs the
 * model's. */
static int ignore_rule(const cJSON *e, const char *sub, ota_model_rec *m, size_t i, char *err,
                       size_t errlen)
{
    ota_ignore_rule *rule = &m->ignore[i];
    uint64_t bit;
    if (ota_json_check_fields(e, sub, ignore_fields, err, errlen) < 0 ||
        ota_json_get_uint(e, sub, "bit", true, 0, 63, &bit, err, errlen) < 0)
        return -1;
    rule->bit = (uint32_t)bit;
    for (size_t k = 0; k < i; k++) {
        if (m->ignore[k].bit == rule->bit)
            return ota_json_errf(err, errlen, sub, "bit", "bit %u is already in ignore[%zu]",
                                 rule->bit, k);
    }
    if (ota_json_get_string_array(e, sub, "ecus", true, 1, OTA_JSON_ECUS_MAX, OTA_JSON_UNIQUE,
                                  &rule->ecus, &rule->n_ecus, err, errlen) < 0)
        return -1;
    for (size_t k = 0; k < rule->n_ecus; k++) {
        char item[SUBPATH_LEN];
        if (!model_has_ecu(m, rule->ecus[k]))
            return ota_json_errf(err, errlen, sub, join_index(item, sizeof item, NULL, "ecus", k),
                                 "\"%s\" is not one of the model's ecus", rule->ecus[k]);
    }
    return 0;
}

static int model_ignore(const cJSON *j, const char *path, ota_model_rec *out, char *err,
                        size_t errlen)
{
    const cJSON *arr, *e;
    size_t n, i = 0;
    if (ota_json_get_array(j, path, "ignore", false, 0, 64, &arr, &n, err, errlen) < 0)
        return -1;
    if (n == 0)
        return 0;
    out->ignore = calloc(n, sizeof *out->ignore);
    if (out->ignore == NULL)
        return out_of_memory(err, errlen, path, "ignore");
    cJSON_ArrayForEach(e, arr)
    {
        char sub[SUBPATH_LEN];
        out->n_ignore = i + 1; /* so that a failure frees what this rule got */
        if (ignore_rule(e, join_index(sub, sizeof sub, path, "ignore", i), out, i, err, errlen))
            return -1;
        i++;
    }
    return 0;
}

static int model_fill(const cJSON *j, const char *path, ota_model_rec *out, char *err,
                      size_t errlen)
{
    if (copy_word(j, path, "model", true, &out->model, err, errlen) ||
        copy_word(j, path, "series", true, &out->series, err, errlen) ||
        ota_json_get_bool(j, path, "supports_config_word", true, false, &out->supports_config_word,
                          err, errlen))
        return -1;
    if (ota_json_get_string_array(j, path, "ecus", false, 0, OTA_JSON_ECUS_MAX, OTA_JSON_UNIQUE,
                                  &out->ecus, &out->n_ecus, err, errlen) < 0)
        return -1;
    return model_ignore(j, path, out, err, errlen);
}

int ota_json_model(const cJSON *j, const char *path, ota_model_rec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ota_json_check_command_fields(j, path, model_fields, err, errlen) < 0 ||
        model_fill(j, path, out, err, errlen) < 0) {
        ota_model_rec_free(out);
        return -1;
    }
    return 0;
}

/* ---- packages ---- */

/* The stored form's fields, and the addPackage form's (content_key instead of id, status
 * and sealed_key); the addPackage file has no size. */
static const char *const package_fields[] = {"id",           "status",      "sealed_key",
                                             "model",        "series",      "version",
                                             "kind",         "from",        "baseline_description",
                                             "prompt",       "result_info", "encrypted",
                                             "ecus",         "language",    "rxswin",
                                             "install_mode", NULL};
static const char *const package_request_fields[] = {
    "model",  "series",       "version",   "kind",        "from", "baseline_description",
    "prompt", "result_info",  "encrypted", "content_key", "ecus", "language",
    "rxswin", "install_mode", NULL};
static const char *const pkg_ecu_fields[] = {"ecu", "type", "version", "file", NULL};
static const char *const pkg_file_fields[] = {"size", "sha256", "name", NULL};
#define FILE_STORED_ONLY 1

static int pkg_file(const cJSON *e, const char *sub, bool stored, ota_pkg_ecu *ecu, char *err,
                    size_t errlen)
{
    char fpath[SUBPATH_LEN];
    const char *const *allowed = pkg_file_fields + (stored ? 0 : FILE_STORED_ONLY);
    const cJSON *f = sub_object(e, sub, "file", allowed, fpath, sizeof fpath, err, errlen);
    const cJSON *name;
    const char *s;
    if (f == NULL || ota_json_get_sha256(f, fpath, "sha256", ecu->sha256, err, errlen) < 0 ||
        lookup(f, fpath, "name", true, &name, err, errlen) < 0 ||
        text_value(name, fpath, "name", 1, OTA_JSON_NAME_MAX, false, &s, err, errlen) < 0 ||
        copy_string(&ecu->name, s, fpath, "name", err, errlen) < 0)
        return -1;
    return stored ? ota_json_get_uint(f, fpath, "size", false, 0, OTA_JSON_UINT_MAX, &ecu->size,
                                      err, errlen)
                  : 0;
}

static int pkg_ecu(const cJSON *e, const char *sub, bool stored, ota_pkg_ecu *ecu, char *err,
                   size_t errlen)
{
    int type = 0;
    if (ota_json_check_fields(e, sub, pkg_ecu_fields, err, errlen) ||
        copy_word(e, sub, "ecu", true, &ecu->ecu, err, errlen) ||
        ota_json_get_enum(e, sub, "type", true, ecu_type_names, 2, &type, err, errlen) ||
        copy_word(e, sub, "version", true, &ecu->version, err, errlen))
        return -1;
    ecu->type = (ota_ecu_type)type;
    return pkg_file(e, sub, stored, ecu, err, errlen);
}

static int package_ecus(const cJSON *j, const char *path, bool stored, ota_package_rec *out,
                        char *err, size_t errlen)
{
    const cJSON *arr, *e;
    size_t n, i = 0;
    const char *names[OTA_JSON_ECUS_MAX];
    if (ota_json_get_array(j, path, "ecus", true, 1, OTA_JSON_ECUS_MAX, &arr, &n, err, errlen))
        return -1;
    out->ecus = calloc(n, sizeof *out->ecus);
    if (out->ecus == NULL)
        return out_of_memory(err, errlen, path, "ecus");
    cJSON_ArrayForEach(e, arr)
    {
        char sub[SUBPATH_LEN];
        out->n_ecus = i + 1;
        if (pkg_ecu(e, join_index(sub, sizeof sub, path, "ecus", i), stored, &out->ecus[i], err,
                    errlen))
            return -1;
        names[i] = out->ecus[i].ecu;
        i++;
    }
    return check_unique(names, n, path, "ecus", "ecu", err, errlen);
}

static int package_stored(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                          size_t errlen)
{
    const char *names[] = {
        ota_pkg_status_name(OTA_PKG_DRAFT), ota_pkg_status_name(OTA_PKG_VERIFIED),
        ota_pkg_status_name(OTA_PKG_RELEASED), ota_pkg_status_name(OTA_PKG_DEPRECATED)};
    int status = OTA_PKG_DRAFT;
    if (ota_json_get_uint(j, path, "id", false, 1, OTA_JSON_UINT_MAX, &out->id, err, errlen) ||
        ota_json_get_enum(j, path, "status", false, names, 4, &status, err, errlen))
        return -1;
    out->status = (ota_pkg_status)status;
    return 0;
}

/* encrypted: the stored form has the sealed key, the addPackage form the clear one (64 hex
 * characters); an unencrypted package has neither. */
static int package_key(const cJSON *j, const char *path, bool stored, ota_package_rec *out,
                       char *err, size_t errlen)
{
    const char *name = stored ? "sealed_key" : "content_key";
    const cJSON *it;
    if (lookup(j, path, name, false, &it, err, errlen) < 0)
        return -1;
    if (it != NULL && !out->encrypted)
        return ota_json_errf(err, errlen, path, name, "only an encrypted package has one");
    if (it == NULL && out->encrypted && !stored) /* stored: documents of older versions */
        return ota_json_errf(err, errlen, path, name, "missing (an encrypted package needs it)");
    if (it == NULL)
        return 0;
    if (stored) {
        if (!cJSON_IsString(it) ||
            !hex_decode(it->valuestring, NULL, strlen(it->valuestring) / 2, true) ||
            strlen(it->valuestring) < 2)
            return ota_json_errf(err, errlen, path, name, "expected lowercase hex");
        return copy_string(&out->sealed_key, it->valuestring, path, name, err, errlen);
    }
    if (!cJSON_IsString(it) || !hex_decode(it->valuestring, out->content_key, 32, false))
        return ota_json_errf(err, errlen, path, name,
                             "expected 64 hex characters (an AES-256 key)");
    out->has_content_key = true;
    return 0;
}

static int package_fill(const cJSON *j, const char *path, bool stored, ota_package_rec *out,
                        char *err, size_t errlen)
{
    int kind = 0;
    if (stored && package_stored(j, path, out, err, errlen) < 0)
        return -1;
    if (copy_word(j, path, "model", true, &out->model, err, errlen) ||
        copy_word(j, path, "series", true, &out->series, err, errlen) ||
        copy_word(j, path, "version", true, &out->version, err, errlen) ||
        ota_json_get_enum(j, path, "kind", true, pkg_kind_names, 2, &kind, err, errlen) ||
        copy_word(j, path, "from", false, &out->from, err, errlen))
        return -1;
    out->delta = kind == 1;
    if (out->delta && out->from == NULL)
        return ota_json_errf(err, errlen, path, "from", "missing (a delta package needs it)");
    if (!out->delta && out->from != NULL)
        return ota_json_errf(err, errlen, path, "from", "only a delta package has one");
    if (copy_text(j, path, "baseline_description", &out->baseline_description, err, errlen) ||
        ota_json_pkg_texts(j, path, out, err, errlen) ||
        ota_json_get_rxswin(j, path, "rxswin", &out->rxswin, err, errlen) ||
        ota_json_pkg_install_mode(j, path, out, err, errlen) ||
        ota_json_get_bool(j, path, "encrypted", false, false, &out->encrypted, err, errlen) ||
        package_key(j, path, stored, out, err, errlen))
        return -1;
    return package_ecus(j, path, stored, out, err, errlen);
}

static int package_parse(const cJSON *j, const char *path, bool stored, ota_package_rec *out,
                         char *err, size_t errlen)
{
    const char *const *allowed = stored ? package_fields : package_request_fields;
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, allowed, err, errlen) < 0 ||
        package_fill(j, path, stored, out, err, errlen) < 0) {
        ota_package_rec_free(out);
        return -1;
    }
    return 0;
}

int ota_json_package(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                     size_t errlen)
{
    return package_parse(j, path, true, out, err, errlen);
}

int ota_json_package_request(const cJSON *j, const char *path, ota_package_rec *out, char *err,
                             size_t errlen)
{
    return package_parse(j, path, false, out, err, errlen);
}

/* ---- strategies ---- */

static const char *const strategy_fields[] = {"id",   "package_kind",  "compare_version",
                                              "ecus", "preconditions", NULL};
static const char *const precondition_fields[] = {"battery_min_pct", "parked", "ignition_off",
                                                  "not_charging", NULL};
static const char *const precondition_words[OTA_PRE_COUNT] = {"battery", "parked", "ignition_off",
                                                              "not_charging"};

const char *ota_precondition_name(unsigned bit_index)
{
    return bit_index < OTA_PRE_COUNT ? precondition_words[bit_index] : NULL;
}

/* preconditions? {battery_min_pct? 1..100, parked?, ignition_off?, not_charging? (bools)}. */
static int strategy_pre(const cJSON *j, const char *path, ota_strategy_rec *out, char *err,
                        size_t errlen)
{
    const cJSON *o;
    char sub[SUBPATH_LEN];
    int r = lookup(j, path, "preconditions", false, &o, err, errlen);
    if (r <= 0)
        return r;
    join(sub, sizeof sub, path, "preconditions");
    uint64_t pct = 0;
    bool flag[3] = {false, false, false};
    if (ota_json_check_fields(o, sub, precondition_fields, err, errlen) ||
        ota_json_get_uint(o, sub, "battery_min_pct", false, 1, 100, &pct, err, errlen))
        return -1;
    for (int i = 0; i < 3; i++) {
        if (ota_json_get_bool(o, sub, precondition_fields[i + 1], false, false, &flag[i], err,
                              errlen))
            return -1;
        out->pre_flags |= flag[i] ? (uint8_t)(OTA_PRE_PARKED << i) : 0;
    }
    out->battery_min_pct = (uint8_t)pct;
    out->pre_flags |= pct > 0 ? OTA_PRE_BATTERY : 0;
    return 0;
}
static const char *const strategy_ecu_fields[] = {"ecu", "order", "upgrade", NULL};

static int strategy_ecu(const cJSON *e, const char *sub, ota_strategy_ecu *ecu, char *err,
                        size_t errlen)
{
    uint64_t order = UINT64_MAX;
    if (ota_json_check_fields(e, sub, strategy_ecu_fields, err, errlen) ||
        copy_word(e, sub, "ecu", true, &ecu->ecu, err, errlen) ||
        ota_json_get_uint(e, sub, "order", false, 0, OTA_JSON_ORDER_MAX, &order, err, errlen) ||
        ota_json_get_bool(e, sub, "upgrade", false, true, &ecu->upgrade, err, errlen))
        return -1;
    ecu->order = order == UINT64_MAX ? -1 : (int32_t)order;
    return 0;
}

static int strategy_ecus(const cJSON *j, const char *path, ota_strategy_rec *out, char *err,
                         size_t errlen)
{
    const cJSON *arr, *e;
    size_t n, i = 0;
    const char *names[OTA_JSON_ECUS_MAX];
    if (ota_json_get_array(j, path, "ecus", true, 1, OTA_JSON_ECUS_MAX, &arr, &n, err, errlen))
        return -1;
    out->ecus = calloc(n, sizeof *out->ecus);
    if (out->ecus == NULL)
        return out_of_memory(err, errlen, path, "ecus");
    cJSON_ArrayForEach(e, arr)
    {
        char sub[SUBPATH_LEN];
        out->n_ecus = i + 1;
        if (strategy_ecu(e, join_index(sub, sizeof sub, path, "ecus", i), &out->ecus[i], err,
                         errlen))
            return -1;
        names[i] = out->ecus[i].ecu;
        i++;
    }
    return check_unique(names, n, path, "ecus", "ecu", err, errlen);
}

static int strategy_fill(const cJSON *j, const char *path, ota_strategy_rec *out, char *err,
                         size_t errlen)
{
    int kind = 0, cmp = 0;
    if (copy_word(j, path, "id", true, &out->id, err, errlen) ||
        ota_json_get_enum(j, path, "package_kind", true, kind_pref_names, 3, &kind, err, errlen) ||
        ota_json_get_enum(j, path, "compare_version", true, compare_names, 3, &cmp, err, errlen))
        return -1;
    out->package_kind = (ota_pkg_kind_pref)kind;
    out->compare_version = (ota_compare_pref)cmp;
    if (strategy_pre(j, path, out, err, errlen))
        return -1;
    return strategy_ecus(j, path, out, err, errlen);
}

int ota_json_strategy(const cJSON *j, const char *path, ota_strategy_rec *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, strategy_fields, err, errlen) < 0 ||
        strategy_fill(j, path, out, err, errlen) < 0) {
        ota_strategy_rec_free(out);
        return -1;
    }
    return 0;
}

/* ---- files ---- */

static const char *const file_fields[] = {"sha256", "size", NULL};

int ota_json_file(const cJSON *j, const char *path, ota_file_rec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ota_json_check_fields(j, path, file_fields, err, errlen) ||
        ota_json_get_sha256(j, path, "sha256", out->sha256, err, errlen) ||
        ota_json_get_uint(j, path, "size", true, 0, OTA_JSON_UINT_MAX, &out->size, err, errlen)) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ---- tasks ---- */

/* The stored form's fields; createTask's are the same list without the first (id). */
static const char *const task_fields[] = {
    "id",          "name",   "type",         "source",
    "model",       "series", "version",      "vins",
    "start",       "end",    "max_resend",   "rate",
    "timeout_min", "abort",  "install_mode", "install_deadline",
    NULL};
#define TASK_STORED_ONLY 1
static const char *const task_abort_fields[] = {"min_executed", "failure_pct", NULL};
static const char *const task_type_names[] = {"normal", "forced", "factory", "spot_check",
                                              "diagnostic"};
static const char *const task_source_names[] = {"console", "diagnostic_tool"};
static const char *const install_mode_names[] = {"forced", "soft", "download_only", "time_forced"};

const char *ota_install_mode_name(ota_install_mode m)
{
    return (unsigned)m < OTA_INSTALL_MODE_COUNT ? install_mode_names[m] : NULL;
}

/* A uint32 member in min..max, into *out (left as it was when absent). */
static int get_u32(const cJSON *j, const char *path, const char *key, uint64_t min, uint64_t max,
                   uint32_t *out, char *err, size_t errlen)
{
    uint64_t v = *out;
    if (ota_json_get_uint(j, path, key, false, min, max, &v, err, errlen) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A time member, -1 when absent: in a request ms (not seconds) or ISO 8601 text
 * (ota_json_get_time); in a stored document any ms, as stored. */
static int get_time(const cJSON *j, const char *path, const char *key, bool stored, int64_t *out,
                    char *err, size_t errlen)
{
    *out = -1;
    if (!stored)
        return ota_json_get_time(j, path, key, false, out, err, errlen);
    uint64_t v = UINT64_MAX;
    if (ota_json_get_uint(j, path, key, false, 0, OTA_JSON_UINT_MAX, &v, err, errlen) < 0)
        return -1;
    *out = v == UINT64_MAX ? -1 : (int64_t)v;
    return 0;
}

/* install_mode (default forced) and install_deadline: required by time_forced, refused
 * by the others. */
static int task_install(const cJSON *j, const char *path, bool stored, ota_task_rec *out, char *err,
                        size_t errlen)
{
    int mode = OTA_INSTALL_FORCED;
    if (ota_json_get_enum(j, path, "install_mode", false, install_mode_names,
                          OTA_INSTALL_MODE_COUNT, &mode, err, errlen) ||
        get_time(j, path, "install_deadline", stored, &out->install_deadline_ms, err, errlen))
        return -1;
    out->install_mode = (ota_install_mode)mode;
    bool timed = mode == OTA_INSTALL_TIME_FORCED;
    if (timed && out->install_deadline_ms <= 0)
        return ota_json_errf(err, errlen, path, "install_deadline",
                             "missing (required when install_mode is time_forced)");
    if (!timed && out->install_deadline_ms >= 0)
        return ota_json_errf(err, errlen, path, "install_deadline",
                             "only with install_mode time_forced");
    return 0;
}

static int task_abort(const cJSON *j, const char *path, ota_task_rec *out, char *err, size_t errlen)
{
    const cJSON *a;
    char sub[SUBPATH_LEN];
    int r = lookup(j, path, "abort", false, &a, err, errlen);
    if (r <= 0)
        return r;
    join(sub, sizeof sub, path, "abort");
    uint64_t min_executed = 0, pct = 0;
    if (ota_json_check_fields(a, sub, task_abort_fields, err, errlen) ||
        ota_json_get_uint(a, sub, "min_executed", true, 1, UINT32_MAX, &min_executed, err,
                          errlen) ||
        ota_json_get_uint(a, sub, "failure_pct", true, 1, 100, &pct, err, errlen))
        return -1;
    out->abort_min_executed = (uint32_t)min_executed;
    out->abort_failure_pct = (uint32_t)pct;
    return 0;
}

static int task_kind(const cJSON *j, const char *path, ota_task_rec *out, char *err, size_t errlen)
{
    int type = 0, source = OTA_SOURCE_CONSOLE;
    if (ota_json_get_enum(j, path, "type", true, task_type_names, OTA_TASK_TYPE_COUNT, &type, err,
                          errlen) ||
        ota_json_get_enum(j, path, "source", false, task_source_names, 2, &source, err, errlen))
        return -1;
    out->type = (ota_task_type)type;
    out->source = (ota_task_source)source;
    return 0;
}

static int task_limits(const cJSON *j, const char *path, bool stored, ota_task_rec *out, char *err,
                       size_t errlen)
{
    if (get_time(j, path, "start", stored, &out->start_ms, err, errlen) ||
        get_time(j, path, "end", stored, &out->end_ms, err, errlen))
        return -1;
    if (out->start_ms >= 0 && out->end_ms >= 0 && out->end_ms <= out->start_ms)
        return ota_json_errf(err, errlen, path, "end", "must be after start");
    if (get_u32(j, path, "max_resend", 0, OTA_JSON_TASK_RESEND_MAX, &out->max_resend, err,
                errlen) ||
        get_u32(j, path, "rate", 0, UINT32_MAX, &out->rate, err, errlen) ||
        get_u32(j, path, "timeout_min", 0, OTA_JSON_TASK_TIMEOUT_MAX, &out->timeout_min, err,
                errlen))
        return -1;
    if (task_install(j, path, stored, out, err, errlen))
        return -1;
    return task_abort(j, path, out, err, errlen);
}

static int task_fill(const cJSON *j, const char *path, bool stored, ota_task_rec *out, char *err,
                     size_t errlen)
{
    if (stored && copy_word(j, path, "id", true, &out->id, err, errlen) < 0)
        return -1;
    if (copy_word(j, path, "name", true, &out->name, err, errlen) ||
        task_kind(j, path, out, err, errlen) ||
        copy_word(j, path, "model", true, &out->model, err, errlen) ||
        copy_word(j, path, "series", true, &out->series, err, errlen) ||
        copy_word(j, path, "version", true, &out->version, err, errlen))
        return -1;
    /* Repeated VINs are no error here: the task rules reject them one by one. */
    if (ota_json_get_string_array(j, path, "vins", !stored, 0, OTA_JSON_TASK_VINS_MAX,
                                  OTA_JSON_VINS, &out->vins, &out->n_vins, err, errlen) < 0)
        return -1;
    return task_limits(j, path, stored, out, err, errlen);
}

static int task_parse(const cJSON *j, const char *path, bool stored, ota_task_rec *out, char *err,
                      size_t errlen)
{
    const char *const *allowed = task_fields + (stored ? 0 : TASK_STORED_ONLY);
    memset(out, 0, sizeof *out);
    out->start_ms = out->end_ms = -1;
    if (ota_json_check_fields(j, path, allowed, err, errlen) < 0 ||
        task_fill(j, path, stored, out, err, errlen) < 0) {
        ota_task_rec_free(out);
        return -1;
    }
    return 0;
}

int ota_json_task(const cJSON *j, const char *path, ota_task_rec *out, char *err, size_t errlen)
{
    return task_parse(j, path, true, out, err, errlen);
}

int ota_json_task_request(const cJSON *j, const char *path, ota_task_rec *out, char *err,
                          size_t errlen)
{
    return task_parse(j, path, false, out, err, errlen);
}

/* ---- task type rules ---- */

static const char *const type_rules_fields[] = {"type", "statuses", "usages", NULL};

/* A list of the rules: [] (and absent) is NULL, which accepts anything. */
static int rules_list(const cJSON *j, const char *path, const char *key, char ***out, size_t *n,
                      char *err, size_t errlen)
{
    if (ota_json_get_string_array(j, path, key, true, 0, OTA_JSON_RULES_MAX, OTA_JSON_UNIQUE, out,
                                  n, err, errlen) < 0)
        return -1;
    if (*n == 0) {
        free(*out);
        *out = NULL;
    }
    return 0;
}

int ota_json_task_type_rules(const cJSON *j, const char *path, ota_task_type_rules *out, char *err,
                             size_t errlen)
{
    int type = 0;
    memset(out, 0, sizeof *out);
    if (ota_json_check_command_fields(j, path, type_rules_fields, err, errlen) ||
        ota_json_get_enum(j, path, "type", true, task_type_names, OTA_TASK_TYPE_COUNT, &type, err,
                          errlen) ||
        rules_list(j, path, "statuses", &out->statuses, &out->n_statuses, err, errlen) ||
        rules_list(j, path, "usages", &out->usages, &out->n_usages, err, errlen)) {
        ota_task_type_rules_free(out);
        return -1;
    }
    out->type = (ota_task_type)type;
    return 0;
}

/* ---- emitters ---- */

static bool add_str(cJSON *o, const char *key, const char *s)
{
    return s != NULL && cJSON_AddStringToObject(o, key, s) != NULL;
}

static bool add_opt_str(cJSON *o, const char *key, const char *s)
{
    return s == NULL || cJSON_AddStringToObject(o, key, s) != NULL;
}

static bool add_bool(cJSON *o, const char *key, bool b)
{
    return cJSON_AddBoolToObject(o, key, b) != NULL;
}

/* cJSON prints a number with 15 significant digits when that reads back within its
 * tolerance, which loses the last digits from 10^15 on: those are written as raw text
 * (which uint_value reads too, so an emitted tree also parses without printing). */
static bool add_uint(cJSON *o, const char *key, uint64_t v)
{
    if (v < EXACT_NUMBER_MAX)
        return cJSON_AddNumberToObject(o, key, (double)v) != NULL;
    return ota_json_add_u64(o, key, v);
}

bool ota_json_add_u64(cJSON *o, const char *key, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    return cJSON_AddRawToObject(o, key, num) != NULL;
}

bool ota_json_add_i64(cJSON *o, const char *key, int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    return cJSON_AddRawToObject(o, key, num) != NULL;
}

static bool add_strings(cJSON *o, const char *key, char *const *v, size_t n)
{
    cJSON *arr = n ? cJSON_CreateStringArray((const char *const *)v, (int)n) : cJSON_CreateArray();
    if (arr != NULL && cJSON_AddItemToObject(o, key, arr))
        return true;
    cJSON_Delete(arr);
    return false;
}

/* A new object appended to arr, or NULL. */
static cJSON *add_object(cJSON *arr)
{
    cJSON *e = cJSON_CreateObject();
    if (e != NULL && cJSON_AddItemToArray(arr, e))
        return e;
    cJSON_Delete(e);
    return NULL;
}

/* Fills e from items[i] of an array of records. */
typedef bool (*item_emit_fn)(cJSON *e, const void *items, size_t i);

/* key: an array of n objects, the i-th filled by emit(e, items, i). */
static bool add_objects(cJSON *o, const char *key, const void *items, size_t n, item_emit_fn emit)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; arr != NULL && i < n; i++) {
        cJSON *e = add_object(arr);
        if (e == NULL || !emit(e, items, i))
            return false;
    }
    return arr != NULL;
}

/* names[v], or NULL (which add_str refuses) for a value out of range. */
static const char *name_of(const char *const *names, size_t n, unsigned v)
{
    return v < n ? names[v] : NULL;
}

/* o when filling it succeeded; otherwise frees it. */
static cJSON *finish(cJSON *o, bool ok)
{
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}

static bool vehicle_emit(cJSON *o, const ota_vehicle_rec *r)
{
    char key[2 * OTA_PUBKEY_LEN + 1];
    return add_str(o, "vin", r->vin) && add_str(o, "model", r->model) &&
           add_str(o, "series", r->series) && add_opt_str(o, "platform", r->platform) &&
           add_str(o, "status", r->status) && add_str(o, "usage", r->usage) &&
           add_bool(o, "sold", r->sold) && add_bool(o, "activated", r->activated) &&
           add_bool(o, "passenger", r->passenger) &&
           add_opt_str(o, "config_word", r->config_word) && add_opt_str(o, "fw", r->fw) &&
           (!r->has_public_key ||
            add_str(o, "public_key", hex_encode(r->public_key, OTA_PUBKEY_LEN, key))) &&
           ota_json_add_rxswin(o, "rxswin", r->rxswin);
}

cJSON *ota_json_from_vehicle(const ota_vehicle_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && vehicle_emit(o, r));
}

static bool ignore_emit(cJSON *e, const void *items, size_t i)
{
    const ota_ignore_rule *rule = (const ota_ignore_rule *)items + i;
    return add_uint(e, "bit", rule->bit) && add_strings(e, "ecus", rule->ecus, rule->n_ecus);
}

static bool model_emit(cJSON *o, const ota_model_rec *r)
{
    return add_str(o, "model", r->model) && add_str(o, "series", r->series) &&
           add_bool(o, "supports_config_word", r->supports_config_word) &&
           add_strings(o, "ecus", r->ecus, r->n_ecus) &&
           add_objects(o, "ignore", r->ignore, r->n_ignore, ignore_emit);
}

cJSON *ota_json_from_model(const ota_model_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && model_emit(o, r));
}

static bool pkg_ecu_emit(cJSON *e, const void *items, size_t i)
{
    const ota_pkg_ecu *ecu = (const ota_pkg_ecu *)items + i;
    if (!add_str(e, "ecu", ecu->ecu) ||
        !add_str(e, "type", name_of(ecu_type_names, 2, ecu->type)) ||
        !add_str(e, "version", ecu->version))
        return false;
    cJSON *f = cJSON_AddObjectToObject(e, "file");
    return f != NULL && add_str(f, "sha256", ecu->sha256) && add_str(f, "name", ecu->name) &&
           add_uint(f, "size", ecu->size);
}

static bool package_emit(cJSON *o, const ota_package_rec *r)
{
    return (r->id == 0 || add_uint(o, "id", r->id)) &&
           add_str(o, "status", ota_pkg_status_name(r->status)) && add_str(o, "model", r->model) &&
           add_str(o, "series", r->series) && add_str(o, "version", r->version) &&
           add_str(o, "kind", pkg_kind_names[r->delta ? 1 : 0]) &&
           add_opt_str(o, "from", r->delta ? r->from : NULL) &&
           add_opt_str(o, "baseline_description", r->baseline_description) &&
           ota_json_add_pkg_texts(o, r) && ota_json_add_rxswin(o, "rxswin", r->rxswin) &&
           ota_json_add_pkg_install_mode(o, r) && add_bool(o, "encrypted", r->encrypted) &&
           add_objects(o, "ecus", r->ecus, r->n_ecus, pkg_ecu_emit);
}

cJSON *ota_json_from_package(const ota_package_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && package_emit(o, r));
}

cJSON *ota_json_from_package_stored(const ota_package_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && package_emit(o, r) &&
                         add_opt_str(o, "sealed_key", r->encrypted ? r->sealed_key : NULL));
}

static bool strategy_ecu_emit(cJSON *e, const void *items, size_t i)
{
    const ota_strategy_ecu *ecu = (const ota_strategy_ecu *)items + i;
    return add_str(e, "ecu", ecu->ecu) &&
           (ecu->order < 0 || add_uint(e, "order", (uint64_t)ecu->order)) &&
           add_bool(e, "upgrade", ecu->upgrade);
}

static bool strategy_pre_emit(cJSON *o, const ota_strategy_rec *r)
{
    cJSON *p = cJSON_AddObjectToObject(o, "preconditions");
    bool ok = p != NULL && (!(r->pre_flags & OTA_PRE_BATTERY) ||
                            add_uint(p, "battery_min_pct", r->battery_min_pct));
    for (int i = 0; ok && i < 3; i++) {
        if (r->pre_flags & (OTA_PRE_PARKED << i))
            ok = add_bool(p, precondition_fields[i + 1], true);
    }
    return ok;
}

static bool strategy_emit(cJSON *o, const ota_strategy_rec *r)
{
    return add_str(o, "id", r->id) &&
           add_str(o, "package_kind", name_of(kind_pref_names, 3, r->package_kind)) &&
           add_str(o, "compare_version", name_of(compare_names, 3, r->compare_version)) &&
           add_objects(o, "ecus", r->ecus, r->n_ecus, strategy_ecu_emit) &&
           (r->pre_flags == 0 || strategy_pre_emit(o, r));
}

cJSON *ota_json_from_strategy(const ota_strategy_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && strategy_emit(o, r));
}

cJSON *ota_json_from_file(const ota_file_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && add_str(o, "sha256", r->sha256) && add_uint(o, "size", r->size));
}

static bool task_abort_emit(cJSON *o, const ota_task_rec *r)
{
    if (r->abort_failure_pct == 0)
        return true;
    cJSON *a = cJSON_AddObjectToObject(o, "abort");
    return a != NULL && add_uint(a, "min_executed", r->abort_min_executed) &&
           add_uint(a, "failure_pct", r->abort_failure_pct);
}

static bool task_emit(cJSON *o, const ota_task_rec *r)
{
    return add_opt_str(o, "id", r->id) && add_str(o, "name", r->name) &&
           add_str(o, "type", name_of(task_type_names, OTA_TASK_TYPE_COUNT, r->type)) &&
           add_str(o, "source", name_of(task_source_names, 2, r->source)) &&
           add_str(o, "model", r->model) && add_str(o, "series", r->series) &&
           add_str(o, "version", r->version) &&
           (r->n_vins == 0 || add_strings(o, "vins", r->vins, r->n_vins)) &&
           (r->start_ms < 0 || add_uint(o, "start", (uint64_t)r->start_ms)) &&
           (r->end_ms < 0 || add_uint(o, "end", (uint64_t)r->end_ms)) &&
           add_uint(o, "max_resend", r->max_resend) && add_uint(o, "rate", r->rate) &&
           add_uint(o, "timeout_min", r->timeout_min) && task_abort_emit(o, r) &&
           (r->install_mode == OTA_INSTALL_FORCED ||
            add_str(o, "install_mode",
                    name_of(install_mode_names, OTA_INSTALL_MODE_COUNT, r->install_mode))) &&
           (r->install_deadline_ms <= 0 ||
            add_uint(o, "install_deadline", (uint64_t)r->install_deadline_ms));
}

cJSON *ota_json_from_task(const ota_task_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o, o != NULL && task_emit(o, r));
}

cJSON *ota_json_from_task_type_rules(const ota_task_type_rules *r)
{
    cJSON *o = cJSON_CreateObject();
    return finish(o,
                  o != NULL &&
                      add_str(o, "type", name_of(task_type_names, OTA_TASK_TYPE_COUNT, r->type)) &&
                      add_strings(o, "statuses", r->statuses, r->n_statuses) &&
                      add_strings(o, "usages", r->usages, r->n_usages));
}
