/*
 * task_rules.c — the task rules of seed 000 / SPEC §6 (task_rules.h): may a task be
 * created, and which of its VINs may it reach.
 *
 * Design: both levels are tables run in order, the first failing entry giving the result.
 * A per-VIN rule is {code, applies, passes}: `applies` says whether the rule concerns this
 * task and VIN (NULL: always), `passes` is the check itself; each is a small function of a
 * vin_ctx that carries what the rules read (catalog, environment, task, the vehicle looked
 * up once). A task-level rule is {error, applies, passes} over a task_ctx.
 *
 * The scope of each rule (SPEC §6, the seed's wording where the SPEC is terse):
 *   - duplicate, unknown, model/series, factory status: every task;
 *   - blacklist: unless the task's source is diagnostic_tool;
 *   - usage, status, firmware 0, upgrade in progress ("screened"): unless the source is
 *     diagnostic_tool (seed: these sit under "非诊断仪来源的") or the VIN is on the forced
 *     whitelist;
 *   - same version: unless the task is a spot_check or a diagnostic task, or comes from
 *     a diagnostic tool (seed: "和当前版本相同的且不是诊断仪来源"); the same-version
 *     whitelist lets it through;
 *   - downgrade: every task, the downgrade whitelist lets it through;
 *   - config word: every task whose model/series supports config words.
 * Firmware "0": absent, empty, or every dot-separated part all zeros ("0", "00", "0.0.0").
 * Version rules compare only a known (non-empty) firmware version: a vehicle that passed
 * with no version (forced whitelist, diagnostic tool) has nothing to compare.
 *
 * Duplicates: ota_vin_set is a catalog map (map.h) of VIN copies (inline up to 17
 * characters, else malloc()ed), so callers may pass any string, any number of times.
 */
#include "task_rules.h"

#include "map.h"

#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names ---- */

static const char *const task_error_names[] = {"OK",
                                               "E_EMPTY_VINS",
                                               "E_NO_PACKAGE",
                                               "E_PACKAGE_NOT_RELEASED",
                                               "E_NO_BASELINE",
                                               "E_NO_DEFAULT_STRATEGY",
                                               "E_STRATEGY_ECU_ORDER"};

static const char *const reject_names[] = {
    "OK",
    "E_DUPLICATE_VIN",
    "E_UNKNOWN_VEHICLE",
    "E_MODEL_MISMATCH",
    "E_FACTORY_STATUS",
    "E_BLACKLISTED",
    "E_USAGE_MISMATCH",
    "E_STATUS_MISMATCH",
    "E_FIRMWARE_ZERO",
    "E_UPGRADE_IN_PROGRESS",
    "E_SAME_VERSION",
    "E_DOWNGRADE",
    "E_CONFIG_WORD_MISSING",
};

_Static_assert(COUNT(task_error_names) == OTA_TASK_E_STRATEGY_ECU_ORDER + 1, "task errors");
_Static_assert(COUNT(reject_names) == OTA_REJ_CONFIG_WORD_MISSING + 1, "reject codes");

const char *ota_task_error_name(ota_task_error e)
{
    return (unsigned)e < COUNT(task_error_names) ? task_error_names[e] : NULL;
}

const char *ota_reject_name(ota_reject_code r)
{
    return (unsigned)r < COUNT(reject_names) ? reject_names[r] : NULL;
}

/* ---- default type rules (SPEC §6) ---- */

/* Not const: ota_task_type_rules holds char **. Never written. */
static char *factory_statuses[] = {"assembly_offline", "ok_offline", "certificate_printed"};
static char *formal_statuses[] = {"in_stock", "sold"};
static char *formal_usages[] = {"retail", "fleet", "test"};
static char *spot_check_statuses[] = {"ok_offline", "certificate_printed", "in_stock"};

static const ota_task_type_rules default_rules[OTA_TASK_TYPE_COUNT] = {
    [OTA_TASK_NORMAL] = {.type = OTA_TASK_NORMAL,
                         .n_statuses = COUNT(formal_statuses),
                         .statuses = formal_statuses,
                         .n_usages = COUNT(formal_usages),
                         .usages = formal_usages},
    [OTA_TASK_FORCED] = {.type = OTA_TASK_FORCED,
                         .n_statuses = COUNT(formal_statuses),
                         .statuses = formal_statuses,
                         .n_usages = COUNT(formal_usages),
                         .usages = formal_usages},
    [OTA_TASK_FACTORY] = {.type = OTA_TASK_FACTORY,
                          .n_statuses = COUNT(factory_statuses),
                          .statuses = factory_statuses},
    [OTA_TASK_SPOT_CHECK] = {.type = OTA_TASK_SPOT_CHECK,
                             .n_statuses = COUNT(spot_check_statuses),
                             .statuses = spot_check_statuses},
    [OTA_TASK_DIAGNOSTIC] = {.type = OTA_TASK_DIAGNOSTIC},
};

void ota_task_default_type_rules(ota_task_type_rules rules[OTA_TASK_TYPE_COUNT])
{
    memcpy(rules, default_rules, sizeof default_rules);
}

/* ---- small helpers ---- */

static bool str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool str_in(const char *s, char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (str_eq(s, list[i]))
            return true;
    }
    return false;
}

/* A list of the type rules: NULL accepts anything, else s must be in it. */
static bool allowed(const char *s, char *const *list, size_t n)
{
    return list == NULL || str_in(s, list, n);
}

/* No firmware version, or one whose every dot-separated part is all zeros. */
static bool firmware_is_zero(const char *fw)
{
    if (fw == NULL || fw[0] == '\0')
        return true;
    for (const char *p = fw;; p++) {
        size_t zeros = strspn(p, "0");
        if (zeros == 0)
            return false; /* an empty part or one that starts with another character */
        p += zeros;
        if (*p == '\0')
            return true;
        if (*p != '.')
            return false;
    }
}

static bool has_version(const char *fw)
{
    return fw != NULL && fw[0] != '\0';
}

/* ---- the VIN set ---- */

typedef struct {
    char vin[18];   /* the VIN when it fits, else "" */
    char *long_vin; /* the VIN when it is longer than 17 characters */
} vin_entry;

struct ota_vin_set {
    ota_map map;
};

static ota_map_key vin_entry_key(const void *rec)
{
    const vin_entry *e = rec;
    return ota_map_key_str(e->long_vin ? e->long_vin : e->vin);
}

static void vin_entry_fini(void *rec)
{
    free(((vin_entry *)rec)->long_vin);
}

ota_vin_set *ota_vin_set_new(size_t expected)
{
    (void)expected; /* the map grows by doubling; it has no reserve */
    ota_vin_set *s = malloc(sizeof *s);
    if (s != NULL)
        ota_map_init(&s->map, sizeof(vin_entry), vin_entry_key);
    return s;
}

void ota_vin_set_free(ota_vin_set *s)
{
    if (s == NULL)
        return;
    ota_map_destroy(&s->map, vin_entry_fini);
    free(s);
}

/* Adds vin: 1 added, 0 already there, -1 out of memory. */
static int vin_set_add(ota_vin_set *s, const char *vin)
{
    if (ota_map_get_str(&s->map, vin) != NULL)
        return 0;
    vin_entry e = {{0}, NULL};
    size_t n = strlen(vin);
    if (n < sizeof e.vin)
        memcpy(e.vin, vin, n + 1);
    else if ((e.long_vin = strdup(vin)) == NULL)
        return -1;
    if (ota_map_put(&s->map, &e) == NULL) {
        free(e.long_vin);
        return -1;
    }
    return 1;
}

/* ---- per-VIN rules ---- */

typedef struct {
    const ota_catalog *c;
    const ota_rules_env *env;
    const ota_task_rec *t;
    const char *vin;
    const ota_vehicle *v; /* NULL when the catalog does not know the VIN */
    ota_vin_set *seen;    /* NULL: no duplicate check */
    int forced;           /* on the forced whitelist: -1 not looked up yet, 0, 1 */
} vin_ctx;

typedef bool (*vin_pred)(vin_ctx *x);

typedef struct {
    ota_reject_code code;
    vin_pred applies; /* NULL: every task and VIN */
    vin_pred passes;
} vin_rule;

static const ota_task_type_rules *type_rules(const vin_ctx *x)
{
    if ((unsigned)x->t->type >= OTA_TASK_TYPE_COUNT)
        return &default_rules[OTA_TASK_DIAGNOSTIC]; /* no such type: no lists */
    const ota_task_type_rules *r =
        x->env && x->env->type_rules ? x->env->type_rules : default_rules;
    return &r[x->t->type];
}

static bool on_forced_whitelist(vin_ctx *x)
{
    if (x->forced < 0)
        x->forced = ota_catalog_listed(x->c, OTA_LIST_FORCED_WHITELIST, x->vin);
    return x->forced;
}

/* -- when a rule applies -- */

static bool is_factory_task(vin_ctx *x)
{
    return x->t->type == OTA_TASK_FACTORY;
}

static bool not_from_diagnostic_tool(vin_ctx *x)
{
    return x->t->source != OTA_SOURCE_DIAGNOSTIC_TOOL;
}

/* Usage, status, firmware 0 and busy: not for diagnostic tools nor forced-whitelisted VINs. */
static bool vehicle_screened(vin_ctx *x)
{
    return not_from_diagnostic_tool(x) && !on_forced_whitelist(x);
}

static bool same_version_ruled(vin_ctx *x)
{
    return x->t->type != OTA_TASK_SPOT_CHECK && x->t->type != OTA_TASK_DIAGNOSTIC &&
           not_from_diagnostic_tool(x);
}

/* -- the checks -- */

static bool first_sighting(vin_ctx *x)
{
    /* Out of memory: the VIN is not remembered, the check cannot fail it. */
    return x->seen == NULL || vin_set_add(x->seen, x->vin) != 0;
}

static bool vehicle_known(vin_ctx *x)
{
    return x->v != NULL;
}

static bool model_matches(vin_ctx *x)
{
    return str_eq(x->v->model, x->t->model) && str_eq(x->v->series, x->t->series);
}

static bool factory_status_ok(vin_ctx *x)
{
    return str_in(x->v->status, factory_statuses, COUNT(factory_statuses));
}

static bool not_blacklisted(vin_ctx *x)
{
    return !ota_catalog_listed(x->c, OTA_LIST_BLACKLIST, x->vin);
}

static bool usage_allowed(vin_ctx *x)
{
    const ota_task_type_rules *r = type_rules(x);
    return allowed(x->v->usage, r->usages, r->n_usages);
}

static bool status_allowed(vin_ctx *x)
{
    const ota_task_type_rules *r = type_rules(x);
    return allowed(x->v->status, r->statuses, r->n_statuses);
}

static bool firmware_nonzero(vin_ctx *x)
{
    return !firmware_is_zero(x->v->fw);
}

/* No upgrade started by a normal task is still upgrading, waiting or rolling back. */
static bool not_busy(vin_ctx *x)
{
    static char *busy[] = {"upgrading", "waiting", "rolling_back"};
    if (x->env == NULL || x->env->latest == NULL)
        return true;
    const ota_upgrade_state *st = x->env->latest(x->env->latest_ctx, x->vin);
    return st == NULL || !str_eq(st->trigger, ota_task_type_name(OTA_TASK_NORMAL)) ||
           !str_in(st->status, busy, COUNT(busy));
}

/* target <=> current firmware; 1 (no verdict) when there is nothing to compare. */
static int target_vs_current(const vin_ctx *x)
{
    if (!has_version(x->v->fw) || x->t->version == NULL)
        return 1;
    return ota_version_cmp(x->t->version, x->v->fw);
}

static bool not_same_version(vin_ctx *x)
{
    return target_vs_current(x) != 0 ||
           ota_catalog_listed(x->c, OTA_LIST_SAME_VERSION_WHITELIST, x->vin);
}

static bool not_downgrade(vin_ctx *x)
{
    return target_vs_current(x) >= 0 ||
           ota_catalog_listed(x->c, OTA_LIST_DOWNGRADE_WHITELIST, x->vin);
}

static bool config_word_present(vin_ctx *x)
{
    const ota_model_rec *m = ota_catalog_model(x->c, x->v->model, x->v->series);
    return m == NULL || !m->supports_config_word ||
           (x->v->config_word != NULL && x->v->config_word[0] != '\0');
}

/* SPEC §6, in order: the first rule that applies and fails gives the VIN's code. */
static const vin_rule vin_rules[] = {
    {OTA_REJ_DUPLICATE_VIN, NULL, first_sighting},
    {OTA_REJ_UNKNOWN_VEHICLE, NULL, vehicle_known},
    {OTA_REJ_MODEL_MISMATCH, NULL, model_matches},
    {OTA_REJ_FACTORY_STATUS, is_factory_task, factory_status_ok},
    {OTA_REJ_BLACKLISTED, not_from_diagnostic_tool, not_blacklisted},
    {OTA_REJ_USAGE_MISMATCH, vehicle_screened, usage_allowed},
    {OTA_REJ_STATUS_MISMATCH, vehicle_screened, status_allowed},
    {OTA_REJ_FIRMWARE_ZERO, vehicle_screened, firmware_nonzero},
    {OTA_REJ_UPGRADE_IN_PROGRESS, vehicle_screened, not_busy},
    {OTA_REJ_SAME_VERSION, same_version_ruled, not_same_version},
    {OTA_REJ_DOWNGRADE, NULL, not_downgrade},
    {OTA_REJ_CONFIG_WORD_MISSING, NULL, config_word_present},
};

ota_reject_code ota_task_check_vin(const ota_catalog *c, const ota_rules_env *env,
                                   const ota_task_rec *t, const char *vin, ota_vin_set *seen)
{
    if (vin == NULL)
        return OTA_REJ_UNKNOWN_VEHICLE;
    return ota_task_check_vehicle(c, env, t, vin, ota_catalog_vehicle(c, vin), seen);
}

ota_reject_code ota_task_check_vehicle(const ota_catalog *c, const ota_rules_env *env,
                                       const ota_task_rec *t, const char *vin,
                                       const ota_vehicle *v, ota_vin_set *seen)
{
    vin_ctx x = {c, env, t, vin, v, seen, -1};
    for (size_t i = 0; i < COUNT(vin_rules); i++) {
        const vin_rule *r = &vin_rules[i];
        if ((r->applies == NULL || r->applies(&x)) && !r->passes(&x))
            return r->code;
    }
    return OTA_REJ_NONE;
}

/* ---- task-level rules ---- */

typedef struct {
    const ota_catalog *c;
    const ota_task_rec *t;
    const ota_package_rec *pkg; /* the full package, once found */
} task_ctx;

typedef bool (*task_pred)(task_ctx *x);

typedef struct {
    ota_task_error error;
    task_pred applies; /* NULL: every task */
    task_pred passes;
} task_rule;

static bool is_formal_task(task_ctx *x)
{
    return x->t->type == OTA_TASK_NORMAL || x->t->type == OTA_TASK_FORCED ||
           x->t->type == OTA_TASK_FACTORY;
}

static bool has_vins(task_ctx *x)
{
    return x->t->n_vins > 0;
}

static bool package_exists(task_ctx *x)
{
    x->pkg = ota_catalog_package_full(x->c, x->t->model, x->t->series, x->t->version);
    return x->pkg != NULL;
}

static bool package_not_deprecated(task_ctx *x)
{
    return x->pkg->status != OTA_PKG_DEPRECATED;
}

static bool package_released(task_ctx *x)
{
    return x->pkg->status == OTA_PKG_RELEASED;
}

static bool has_baseline(task_ctx *x)
{
    return x->pkg->baseline_description != NULL && x->pkg->baseline_description[0] != '\0';
}

static bool has_default_strategy(task_ctx *x)
{
    return ota_catalog_default_strategy(x->c, x->t->model, x->t->series) != NULL;
}

static void note_unordered_ecu(void *ctx, const ota_strategy_rec *s)
{
    for (size_t i = 0; i < s->n_ecus; i++) {
        if (s->ecus[i].order < 0)
            *(bool *)ctx = true;
    }
}

static bool strategies_ordered(task_ctx *x)
{
    bool unordered = false;
    ota_catalog_strategies_of(x->c, x->t->model, x->t->series, note_unordered_ecu, &unordered);
    return !unordered;
}

/* SPEC §6, in order: the first rule that applies and fails fails the task. */
static const task_rule task_rules[] = {
    {OTA_TASK_E_EMPTY_VINS, NULL, has_vins},
    {OTA_TASK_E_NO_PACKAGE, NULL, package_exists},
    {OTA_TASK_E_PACKAGE_NOT_RELEASED, NULL, package_not_deprecated},
    {OTA_TASK_E_PACKAGE_NOT_RELEASED, is_formal_task, package_released},
    {OTA_TASK_E_NO_BASELINE, NULL, has_baseline},
    {OTA_TASK_E_NO_DEFAULT_STRATEGY, NULL, has_default_strategy},
    {OTA_TASK_E_STRATEGY_ECU_ORDER, NULL, strategies_ordered},
};

/* *package: the full package when the task got as far as finding it, else NULL. */
ota_task_error ota_task_check(const ota_catalog *c, const ota_task_rec *t,
                              const ota_package_rec **package)
{
    task_ctx x = {c, t, NULL};
    ota_task_error err = OTA_TASK_OK;
    for (size_t i = 0; i < COUNT(task_rules) && err == OTA_TASK_OK; i++) {
        const task_rule *r = &task_rules[i];
        if ((r->applies == NULL || r->applies(&x)) && !r->passes(&x))
            err = r->error;
    }
    if (package != NULL)
        *package = x.pkg;
    return err;
}
