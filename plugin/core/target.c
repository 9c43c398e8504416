/*
 * target.c — compiling and evaluating target queries over the catalog, and the rules
 * preview (target.h).
 *
 * Compiled form: the query's words are replaced by the catalog's interned pointers, found
 * with one lookup each in the interning table; a word the table lacks is a value no
 * vehicle has, so a condition on it makes the whole query match nothing (`never`), and a
 * value of a status/usage set that no vehicle has is simply dropped. The checks run
 * cheapest first: pointer compares, the VIN prefix, config word bits, firmware "below"
 * (ota_version_cmp), then hash lookups for lists and static groups, then dynamic groups
 * (their compiled queries, recursively). The compiled form points into the query (bits,
 * lists, texts): the query must outlive it.
 */
#include "target.h"

#include "catalog_impl.h"
#include "describe.h"
#include "groups.h"
#include "ota_catalog_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8 /* dynamic groups inside dynamic groups */

struct ota_target_match {
    const ota_catalog *c;
    const ota_target *q;
    bool never;                      /* a condition no vehicle can meet */
    const char *model, *series, *fw; /* interned; NULL: any */
    size_t prefix_len;
    const char **statuses; /* interned; n 0 and q has some: never */
    size_t n_statuses;
    const char **usages;
    size_t n_usages;
    const ota_group **statics;
    size_t n_statics;
    ota_target_match **dynamics;
    size_t n_dynamics;
};

void ota_target_match_free(ota_target_match *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_dynamics; i++)
        ota_target_match_free(m->dynamics[i]);
    free(m->dynamics);
    free(m->statics);
    free(m->statuses);
    free(m->usages);
    free(m);
}

/* ---- compiling ---- */

typedef struct {
    const ota_catalog *c;
    const char *self;
    const ota_target *self_query;
    char *err;
    size_t errlen;
} compile_ctx;

static int compile(compile_ctx *x, const ota_target *q, const char *path, int depth,
                   ota_target_match **out);

static const char *interned(const ota_catalog *c, const char *s)
{
    char *const *found = ota_map_get_str(&c->strings, s);
    return found ? *found : NULL;
}

/* A word condition: its interned pointer, or never when no vehicle has that text. */
static void intern_word(ota_target_match *m, const char *s, const char **out)
{
    if (s != NULL && (*out = interned(m->c, s)) == NULL)
        m->never = true;
}

/* A set of values: the interned ones (a value nobody has is dropped; none left: never). */
static int intern_set(ota_target_match *m, char *const *v, size_t n, const char ***out,
                      size_t *n_out)
{
    if (v == NULL)
        return 0;
    if ((*out = calloc(n, sizeof **out)) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = interned(m->c, v[i]);
        if (p != NULL)
            (*out)[(*n_out)++] = p;
    }
    if (*n_out == 0)
        m->never = true;
    return 0;
}

static int oom(compile_ctx *x)
{
    snprintf(x->err, x->errlen, "out of memory");
    return -1;
}

/* One group of the query: a static one is kept for membership, a dynamic one compiled. */
static int add_group(compile_ctx *x, ota_target_match *m, const char *path, size_t i, int depth)
{
    const char *name = m->q->groups[i];
    char item[320];
    snprintf(item, sizeof item, "%s%sgroups[%zu]", path, path[0] ? "." : "", i);
    const ota_target *sub = NULL;
    if (x->self != NULL && strcmp(name, x->self) == 0) {
        sub = x->self_query;
    } else {
        const ota_group *g = ota_catalog_group(x->c, name);
        if (g == NULL)
            return ota_json_errf(x->err, x->errlen, NULL, item, "unknown group \"%s\"", name);
        sub = ota_group_query(g);
        if (sub == NULL) {
            m->statics[m->n_statics++] = g;
            return 0;
        }
    }
    if (depth + 1 >= MAX_DEPTH)
        return ota_json_errf(x->err, x->errlen, NULL, item,
                             "group \"%s\": groups nest more than %d deep (a cycle?)", name,
                             MAX_DEPTH);
    char sub_path[320];
    snprintf(sub_path, sizeof sub_path, "group %s", name);
    ota_target_match *d = NULL;
    if (compile(x, sub, sub_path, depth + 1, &d) != 0)
        return -1;
    m->dynamics[m->n_dynamics++] = d;
    return 0;
}

static int compile(compile_ctx *x, const ota_target *q, const char *path, int depth,
                   ota_target_match **out)
{
    ota_target_match *m = calloc(1, sizeof *m);
    if (m == NULL)
        return oom(x);
    m->c = x->c;
    m->q = q;
    m->prefix_len = q->vin_prefix ? strlen(q->vin_prefix) : 0;
    intern_word(m, q->model, &m->model);
    intern_word(m, q->series, &m->series);
    intern_word(m, q->fw, &m->fw);
    if (intern_set(m, q->statuses, q->n_statuses, &m->statuses, &m->n_statuses) != 0 ||
        intern_set(m, q->usages, q->n_usages, &m->usages, &m->n_usages) != 0 ||
        (q->n_groups && ((m->statics = calloc(q->n_groups, sizeof *m->statics)) == NULL ||
                         (m->dynamics = calloc(q->n_groups, sizeof *m->dynamics)) == NULL))) {
        ota_target_match_free(m);
        return oom(x);
    }
    for (size_t i = 0; i < q->n_groups; i++) {
        if (add_group(x, m, path, i, depth) != 0) {
            ota_target_match_free(m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

int ota_target_compile(const ota_catalog *c, const ota_target *q, const char *self,
                       const ota_target *self_query, const char *path, ota_target_match **out,
                       char *err, size_t errlen)
{
    compile_ctx x = {c, self, self_query, err, errlen};
    *out = NULL;
    return compile(&x, q, path ? path : "", 0, out);
}

/* ---- matching ---- */

static bool in_set(const char *p, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i] == p)
            return true;
    }
    return false;
}

static bool words_match(const ota_target_match *m, const ota_vehicle *v)
{
    const ota_target *q = m->q;
    return (m->model == NULL || v->model == m->model) &&
           (m->series == NULL || v->series == m->series) && (m->fw == NULL || v->fw == m->fw) &&
           (q->statuses == NULL || in_set(v->status, m->statuses, m->n_statuses)) &&
           (q->usages == NULL || in_set(v->usage, m->usages, m->n_usages)) &&
           (m->prefix_len == 0 || memcmp(v->vin, q->vin_prefix, m->prefix_len) == 0);
}

static bool bits_match(const ota_target *q, const ota_vehicle *v)
{
    for (size_t i = 0; i < q->n_bits_set; i++) {
        if (!ota_config_word_bit(v->config_word, q->bits_set[i]))
            return false;
    }
    for (size_t i = 0; i < q->n_bits_clear; i++) {
        if (ota_config_word_bit(v->config_word, q->bits_clear[i]))
            return false;
    }
    return true;
}

static bool fw_below(const ota_target *q, const ota_vehicle *v)
{
    return q->fw_below == NULL ||
           (v->fw != NULL && v->fw[0] != '\0' && ota_version_cmp(v->fw, q->fw_below) < 0);
}

static bool sets_match(const ota_target_match *m, const ota_vehicle *v)
{
    const ota_target *q = m->q;
    for (size_t i = 0; i < q->n_lists; i++) {
        if (!ota_catalog_listed(m->c, q->lists[i], v->vin))
            return false;
    }
    for (size_t i = 0; i < q->n_not_lists; i++) {
        if (ota_catalog_listed(m->c, q->not_lists[i], v->vin))
            return false;
    }
    for (size_t i = 0; i < m->n_statics; i++) {
        if (!ota_group_has(m->statics[i], v->vin))
            return false;
    }
    for (size_t i = 0; i < m->n_dynamics; i++) {
        if (!ota_target_matches(m->dynamics[i], v))
            return false;
    }
    return true;
}

bool ota_target_matches(const ota_target_match *m, const ota_vehicle *v)
{
    return !m->never && words_match(m, v) && bits_match(m->q, v) && fw_below(m->q, v) &&
           sets_match(m, v);
}

size_t ota_target_each(const ota_catalog *c, const ota_target_match *m,
                       void (*fn)(void *ctx, const ota_vehicle *v), void *ctx)
{
    size_t n = 0, pos = 0;
    if (m->never)
        return 0;
    for (const ota_vehicle *v; (v = ota_map_next(&c->vehicles, &pos)) != NULL;) {
        if (ota_target_matches(m, v)) {
            n++;
            if (fn != NULL)
                fn(ctx, v);
        }
    }
    return n;
}

size_t ota_target_count(const ota_catalog *c, const ota_target_match *m)
{
    return ota_target_each(c, m, NULL, NULL);
}

/* ---- resolving to VINs ---- */

typedef struct {
    const char **vins; /* the vehicles' own VIN texts */
    size_t n;
} collect_ctx;

static void collect(void *ctx, const ota_vehicle *v)
{
    collect_ctx *x = ctx;
    x->vins[x->n++] = v->vin;
}

static int vin_ptr_cmp(const void *a, const void *b)
{
    return memcmp(*(const char *const *)a, *(const char *const *)b, OTA_VIN_LEN + 1);
}

static int copy_vins(const collect_ctx *x, char ***out)
{
    char **v = calloc(x->n ? x->n : 1, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < x->n; i++) {
        if ((v[i] = strdup(x->vins[i])) == NULL) {
            ota_json_strings_free(v, i);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int ota_target_vins(const ota_catalog *c, const ota_target_match *m, size_t max, char ***vins,
                    size_t *n)
{
    *vins = NULL;
    *n = ota_target_count(c, m);
    if (*n > max)
        return 1;
    collect_ctx x = {malloc((*n ? *n : 1) * sizeof(char *)), 0};
    if (x.vins == NULL)
        return -1;
    ota_target_each(c, m, collect, &x);
    qsort(x.vins, x.n, sizeof *x.vins, vin_ptr_cmp);
    int rc = copy_vins(&x, vins);
    free(x.vins);
    return rc;
}

/* ---- resolving to vehicles (issue 16: createTask at 1,000,000) ---- */

typedef struct {
    const ota_vehicle **v;
    size_t n;
} vehicle_list;

static void keep_vehicle(void *ctx, const ota_vehicle *v)
{
    vehicle_list *l = ctx;
    l->v[l->n++] = v;
}

static int vehicle_cmp(const void *a, const void *b)
{
    return memcmp((*(const ota_vehicle *const *)a)->vin, (*(const ota_vehicle *const *)b)->vin,
                  OTA_VIN_LEN);
}

int ota_target_vehicles(const ota_catalog *c, const ota_target_match *m, size_t max,
                        const ota_vehicle ***out, size_t *n)
{
    size_t all = ota_catalog_vehicle_count(c);
    bool one_pass = all <= 4 * max;
    *out = NULL;
    *n = one_pass ? all : ota_target_count(c, m);
    if (!one_pass && *n > max)
        return 1;
    vehicle_list l = {malloc((*n ? *n : 1) * sizeof *l.v), 0};
    if (l.v == NULL)
        return -1;
    ota_target_each(c, m, keep_vehicle, &l);
    *n = l.n;
    if (l.n > max) {
        free(l.v);
        return 1;
    }
    qsort(l.v, l.n, sizeof *l.v, vehicle_cmp);
    *out = l.v;
    return 0;
}

/* ---- the rules preview ---- */

typedef struct {
    const ota_catalog *c;
    const ota_rules_env *env;
    const ota_task_rec *t;
    ota_target_preview *out;
} preview_ctx;

static void preview_one(void *ctx, const ota_vehicle *v)
{
    preview_ctx *x = ctx;
    /* A query names each vehicle once: no duplicate check (seen NULL). */
    ota_reject_code r = ota_task_check_vehicle(x->c, x->env, x->t, v->vin, v, NULL);
    if ((unsigned)r < OTA_REJ_SLOTS)
        x->out->by_code[r]++;
}

void ota_target_preview_run(const ota_catalog *c, const ota_target_match *m,
                            const ota_rules_env *env, const ota_task_rec *t,
                            ota_target_preview *out)
{
    memset(out, 0, sizeof *out);
    preview_ctx x = {c, env, t, out};
    out->matched = ota_target_each(c, m, preview_one, &x);
}
