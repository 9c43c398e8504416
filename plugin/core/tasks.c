/*
 * tasks.c — upgrade tasks and their executions in memory (tasks.h), on the broker thread;
 * broker-free (plugin/core/).
 *
 * Design
 * - Tasks: a map by id (map.h) of pointers to ota_task; a task keeps its definition (the
 *   ota_task_rec without its VINs), its state, and its executions as one array of compact
 *   records (ota_task_exec, 32 bytes: the VIN inline, state, code number, resends, notice
 *   time) sorted by VIN, so a VIN's execution is a binary search away and
 *   listTaskVehicles walks the array in order.
 * - Late joiners of a continuous task (issue 16) are appended, never inserted, so that the
 *   engine's (task, index) references stay valid; a sorted index of theirs (4 bytes
 *   each) keeps ota_task_find_exec two binary searches. A load sorts them in.
 * - Execution codes (rejection codes, later failure reasons) are numbers into a table of
 *   texts: the rejection codes keep their ota_reject_code number, other texts are added
 *   as they are met (at most 65535).
 * - The latest upgrade status per VIN: a map of {VIN, status, trigger, ts} where status
 *   and trigger are numbers into a small table of words (ota_status_valid /
 *   ota_trigger_valid allow only a few). Loaded with ota_store_load_latest_statuses and
 *   kept current by ota_tasks_on_status; an event older (by ts) than the one kept does not
 *   replace it, so a replayed report cannot bring back an old status. The rules read it
 *   through the `latest` callback of ota_rules_env.
 * - Task type rules: the defaults of SPEC §6 (static lists), replaced per type by the
 *   OTA_DOC_SETTING documents "task_type_rules:<type>" (owned lists).
 * - Ids: "T" and a number zero-padded to 6 digits; the next is the highest loaded + 1.
 */
#include "tasks.h"

#include "map.h"
#include "ota_catalog_json.h"
#include "waves.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS_MAX 255 /* distinct status / trigger words kept */
#define CODES_MAX 65535
#define TYPE_RULES_PREFIX "task_type_rules:"

static const char *const task_state_names[OTA_TASK_STATE_COUNT] = {"active", "canceled", "aborted",
                                                                   "finished"};

typedef struct {
    ota_task *task;
} task_slot;

typedef struct {
    char vin[OTA_VIN_LEN + 1];
    uint8_t status, trigger; /* numbers into words; 0: none */
    uint8_t conditions;      /* OTA_PRE_* bits of the event's failed pre-conditions */
    int64_t ts;
} latest_rec;

struct ota_tasks {
    ota_map tasks; /* task_slot by task id */
    uint64_t max_id_num;
    ota_task_type_rules rules[OTA_TASK_TYPE_COUNT];
    bool owned[OTA_TASK_TYPE_COUNT]; /* rules[i] was set (its lists are malloc'd) */
    char **codes;                    /* codes[0] unused */
    size_t n_codes;
    char *words[WORDS_MAX + 1]; /* words[0] unused */
    size_t n_words;
    ota_map latest;            /* latest_rec by VIN */
    ota_upgrade_state scratch; /* what the latest callback returns */
};

const char *ota_task_state_name(ota_task_state s)
{
    return (unsigned)s < OTA_TASK_STATE_COUNT ? task_state_names[s] : NULL;
}

int ota_task_state_from_name(const char *name)
{
    for (int i = 0; name && i < OTA_TASK_STATE_COUNT; i++) {
        if (strcmp(task_state_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- life cycle */

static ota_map_key slot_key(const void *rec)
{
    return ota_map_key_str(((const task_slot *)rec)->task->rec.id);
}

static ota_map_key latest_key(const void *rec)
{
    return ota_map_key_str(((const latest_rec *)rec)->vin);
}

static void task_free(ota_task *task)
{
    if (task) {
        ota_task_rec_free(&task->rec);
        ota_task_waves_free(task->waves);
        ota_task_window_free(task->mwindow);
        if (task->target) {
            ota_target_free(task->target);
            free(task->target);
        }
        free(task->late);
        free(task->execs);
        free(task);
    }
}

static void slot_fini(void *rec)
{
    task_free(((task_slot *)rec)->task);
}

/* The rejection codes, under their own numbers. */
static int codes_init(ota_tasks *t)
{
    t->codes = calloc(OTA_REJ_CONFIG_WORD_MISSING + 1, sizeof(*t->codes));
    if (!t->codes) {
        return -1;
    }
    t->n_codes = OTA_REJ_CONFIG_WORD_MISSING + 1;
    for (size_t i = 1; i < t->n_codes; i++) {
        if (!(t->codes[i] = strdup(ota_reject_name((ota_reject_code)i)))) {
            return -1;
        }
    }
    return 0;
}

ota_tasks *ota_tasks_new(void)
{
    ota_tasks *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    ota_map_init(&t->tasks, sizeof(task_slot), slot_key);
    ota_map_init(&t->latest, sizeof(latest_rec), latest_key);
    ota_task_default_type_rules(t->rules);
    t->n_words = 1;
    if (codes_init(t) != 0) {
        ota_tasks_free(t);
        return NULL;
    }
    return t;
}

void ota_tasks_free(ota_tasks *t)
{
    if (!t) {
        return;
    }
    ota_map_destroy(&t->tasks, slot_fini);
    ota_map_destroy(&t->latest, NULL);
    for (int i = 0; i < OTA_TASK_TYPE_COUNT; i++) {
        if (t->owned[i]) {
            ota_task_type_rules_free(&t->rules[i]);
        }
    }
    for (size_t i = 0; t->codes && i < t->n_codes; i++) {
        free(t->codes[i]);
    }
    free(t->codes);
    for (size_t i = 1; i < t->n_words; i++) {
        free(t->words[i]);
    }
    free(t);
}

/* ---------------------------------------------------------------- codes and words */

uint16_t ota_tasks_code(ota_tasks *t, const char *name)
{
    if (!name) {
        return 0;
    }
    for (size_t i = 1; i < t->n_codes; i++) {
        if (strcmp(t->codes[i], name) == 0) {
            return (uint16_t)i;
        }
    }
    if (t->n_codes > CODES_MAX) {
        return 0;
    }
    char **grown = realloc(t->codes, (t->n_codes + 1) * sizeof(*grown));
    if (!grown) {
        return 0;
    }
    t->codes = grown;
    if (!(t->codes[t->n_codes] = strdup(name))) {
        return 0;
    }
    return (uint16_t)t->n_codes++;
}

const char *ota_tasks_code_name(const ota_tasks *t, uint16_t code)
{
    return code > 0 && code < t->n_codes ? t->codes[code] : NULL;
}

/* The number of a status or trigger word (added when new); 0 when NULL or no room. */
static uint8_t word_num(ota_tasks *t, const char *w)
{
    if (!w) {
        return 0;
    }
    for (size_t i = 1; i < t->n_words; i++) {
        if (strcmp(t->words[i], w) == 0) {
            return (uint8_t)i;
        }
    }
    if (t->n_words > WORDS_MAX || !(t->words[t->n_words] = strdup(w))) {
        return 0;
    }
    return (uint8_t)t->n_words++;
}

/* ---------------------------------------------------------------- latest statuses */

/* The OTA_PRE_* bits of a "battery,parked" list (checked by the codec). */
static uint8_t condition_bits(const char *list)
{
    uint8_t bits = 0;
    while (list && *list) {
        size_t n = strcspn(list, ",");
        for (unsigned b = 0; b < OTA_PRE_COUNT; b++) {
            const char *w = ota_precondition_name(b);
            if (strlen(w) == n && memcmp(w, list, n) == 0) {
                bits |= (uint8_t)(1u << b);
            }
        }
        list += n + (list[n] == ',');
    }
    return bits;
}

/* Keeps ev as vin's latest status unless the one kept is newer. */
static void note_status(ota_tasks *t, const char *vin, const ota_event *ev)
{
    if (!vin || strlen(vin) != OTA_VIN_LEN) {
        return;
    }
    latest_rec *r = ota_map_get_str(&t->latest, vin);
    if (!r) {
        latest_rec fresh = {.ts = INT64_MIN};
        memcpy(fresh.vin, vin, OTA_VIN_LEN + 1);
        r = ota_map_put(&t->latest, &fresh);
    }
    if (r && ev->ts >= r->ts) {
        r->status = word_num(t, ev->status);
        r->trigger = word_num(t, ev->trigger);
        r->conditions = condition_bits(ev->conditions);
        r->ts = ev->ts;
    }
}

void ota_tasks_on_status(ota_tasks *t, const char *vin, const ota_event *ev)
{
    if (t && ev && ev->type == OTA_EV_UPGRADE_STATUS) {
        note_status(t, vin, ev);
    }
}

static const ota_upgrade_state *latest_of(void *ctx, const char *vin)
{
    ota_tasks *t = ctx;
    const latest_rec *r = ota_map_get_str(&t->latest, vin);
    if (!r) {
        return NULL;
    }
    t->scratch.status = r->status ? t->words[r->status] : NULL;
    t->scratch.trigger = r->trigger ? t->words[r->trigger] : NULL;
    t->scratch.conditions = r->conditions;
    return &t->scratch;
}

ota_rules_env ota_tasks_rules_env(ota_tasks *t)
{
    return (ota_rules_env){.type_rules = t->rules, .latest = latest_of, .latest_ctx = t};
}

/* ---------------------------------------------------------------- type rules */

const ota_task_type_rules *ota_tasks_type_rules(const ota_tasks *t)
{
    return t->rules;
}

void ota_tasks_set_type_rules(ota_tasks *t, ota_task_type_rules *r)
{
    unsigned i = (unsigned)r->type;
    if (i >= OTA_TASK_TYPE_COUNT) {
        ota_task_type_rules_free(r);
        return;
    }
    if (t->owned[i]) {
        ota_task_type_rules_free(&t->rules[i]);
    }
    t->rules[i] = *r;
    t->owned[i] = true;
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- tasks */

ota_task *ota_tasks_get(const ota_tasks *t, const char *id)
{
    const task_slot *s = id ? ota_map_get_str(&t->tasks, id) : NULL;
    return s ? s->task : NULL;
}

static int exec_cmp_vin(const void *a, const void *b)
{
    return memcmp(((const ota_task_exec *)a)->vin, ((const ota_task_exec *)b)->vin, OTA_VIN_LEN);
}

/* Where vin is, or would go, in the late joiners' index (the first not below it). */
static size_t late_pos(const ota_task *task, const char *vin)
{
    size_t lo = 0, hi = task->late_sorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(task->execs[task->late[mid]].vin, vin, OTA_VIN_LEN) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int64_t ota_task_exec_wave(const ota_task *task, const ota_task_exec *x)
{
    uint8_t w =
        task->waves ? ota_task_waves_of(task->waves, (size_t)(x - task->execs)) : OTA_WAVE_NONE;
    return w == OTA_WAVE_NONE ? -1 : w;
}

ota_task_exec *ota_task_find_exec(const ota_task *task, const char *vin)
{
    if (!vin || strlen(vin) != OTA_VIN_LEN) {
        return NULL;
    }
    ota_task_exec key;
    memcpy(key.vin, vin, OTA_VIN_LEN);
    ota_task_exec *x = bsearch(&key, task->execs, task->n_sorted, sizeof(key), exec_cmp_vin);
    if (x || task->n_execs == task->n_sorted) {
        return x;
    }
    size_t k = late_pos(task, vin);
    x = k < task->late_sorted ? &task->execs[task->late[k]] : NULL;
    return x && memcmp(x->vin, vin, OTA_VIN_LEN) == 0 ? x : NULL;
}

void ota_task_exec_vin(const ota_task_exec *x, char vin[OTA_VIN_LEN + 1])
{
    memcpy(vin, x->vin, OTA_VIN_LEN);
    vin[OTA_VIN_LEN] = '\0';
}

bool ota_vin_selected(char *const *vins, size_t n, const char *vin)
{
    for (size_t i = 0; vins && i < n; i++) {
        if (strcmp(vins[i], vin) == 0) {
            return true;
        }
    }
    return !vins;
}

/* ---------------------------------------------------------------- late joiners */

/* arr (of *cap elements of size bytes, n used) with room for one more: itself, or
 * reallocated to double (first when empty) with *cap updated; NULL out of memory (arr
 * unchanged). */
static void *room_for_one(void *arr, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap) {
        return arr;
    }
    size_t c = *cap ? 2 * *cap : first;
    void *grown = realloc(arr, c * size);
    if (grown) {
        *cap = c;
    }
    return grown;
}

/* Room for one more execution. 0, or -1 out of memory. */
static int grow_execs(ota_task *task)
{
    ota_task_exec *x = room_for_one(task->execs, task->n_execs, &task->cap_execs, sizeof(*x), 64);
    task->execs = x ? x : task->execs;
    return x ? 0 : -1;
}

/* Room for one more execution and one more late index. 0, or -1 out of memory. */
static int grow_for_join(ota_task *task)
{
    if (grow_execs(task) != 0) {
        return -1;
    }
    uint32_t *l =
        room_for_one(task->late, task->n_execs - task->n_sorted, &task->cap_late, sizeof(*l), 16);
    task->late = l ? l : task->late;
    return l ? 0 : -1;
}

/* The wave an execution in state goes to: the last for a queued one, none otherwise. */
static uint8_t join_wave(const ota_task *task, uint8_t state)
{
    return state == OTA_EXEC_QUEUED ? (uint8_t)task->waves->n_specs : OTA_WAVE_NONE;
}

ota_task_exec *ota_task_join(ota_task *task, const char *vin, uint8_t state, uint16_t code,
                             int64_t now)
{
    if (!vin || strlen(vin) != OTA_VIN_LEN || state >= OTA_EXEC_STATE_COUNT ||
        task->n_execs >= UINT32_MAX || ota_task_find_exec(task, vin) || grow_for_join(task)) {
        return NULL;
    }
    if (task->waves && ota_task_waves_append(task->waves, join_wave(task, state), state) != 0) {
        return NULL;
    }
    size_t idx = task->n_execs;
    ota_task_exec *x = &task->execs[idx];
    *x = (ota_task_exec){.state = state, .code = code, .notified_ms = -1, .changed_ms = now};
    memcpy(x->vin, vin, OTA_VIN_LEN);
    task->late[idx - task->n_sorted] = (uint32_t)idx; /* sorted in by ota_task_joins_done */
    task->n_execs++;
    task->count[state]++;
    task->doc_dirty |= task->waves != NULL; /* the plan has one more vehicle */
    return x;
}

static int late_cmp(const ota_task *task, uint32_t a, uint32_t b)
{
    return memcmp(task->execs[a].vin, task->execs[b].vin, OTA_VIN_LEN);
}

/* a[0..na) and b[0..nb), each sorted, merged into out. */
static void late_merge(const ota_task *task, const uint32_t *a, size_t na, const uint32_t *b,
                       size_t nb, uint32_t *out)
{
    size_t i = 0, k = 0;
    while (i < na && k < nb) {
        *out++ = late_cmp(task, a[i], b[k]) <= 0 ? a[i++] : b[k++];
    }
    memcpy(out, a + i, (na - i) * sizeof(*a));
    memcpy(out + (na - i), b + k, (nb - k) * sizeof(*b));
}

/* Sorts v[0..n) by VIN (merge sort; tmp holds n). */
static void late_sort(const ota_task *task, uint32_t *v, uint32_t *tmp, size_t n)
{
    if (n < 2) {
        return;
    }
    size_t h = n / 2;
    late_sort(task, v, tmp, h);
    late_sort(task, v + h, tmp, n - h);
    late_merge(task, v, h, v + h, n - h, tmp);
    memcpy(v, tmp, n * sizeof(*v));
}

void ota_task_joins_done(ota_task *task)
{
    size_t n = task->n_execs - task->n_sorted, s = task->late_sorted, k = n - s;
    uint32_t *tmp = k > 1 ? malloc(n * sizeof(*tmp)) : NULL;
    if (tmp) { /* a batch: O(k log k + n) */
        late_sort(task, task->late + s, tmp, k);
        late_merge(task, task->late, s, task->late + s, k, tmp);
        memcpy(task->late, tmp, n * sizeof(*tmp));
        free(tmp);
        task->late_sorted = n;
    }
    for (; task->late_sorted < n; task->late_sorted++) { /* one, or no memory: inserted */
        size_t i = task->late_sorted;
        uint32_t idx = task->late[i];
        size_t at = late_pos(task, task->execs[idx].vin);
        memmove(&task->late[at + 1], &task->late[at], (i - at) * sizeof(*task->late));
        task->late[at] = idx;
    }
}

bool ota_task_exec_rejoinable(const ota_task_exec *x, uint16_t left)
{
    return x->notified_ms < 0 && !x->flags &&
           (x->state == OTA_EXEC_QUEUED || x->state == OTA_EXEC_REJECTED ||
            (x->state == OTA_EXEC_CANCELED && left && x->code == left));
}

bool ota_task_exec_rejoin(ota_task *task, ota_task_exec *x, uint8_t state, uint16_t code,
                          uint16_t left, int64_t now)
{
    if (!ota_task_exec_rejoinable(x, left) ||
        (state != OTA_EXEC_QUEUED && state != OTA_EXEC_REJECTED)) {
        return false;
    }
    if (task->waves) {
        size_t idx = (size_t)(x - task->execs);
        uint8_t wave = join_wave(task, state);
        task->doc_dirty |= wave != ota_task_waves_of(task->waves, idx);
        ota_task_waves_set(task->waves, idx, wave, x->state, state);
    }
    task->count[x->state]--;
    task->count[state]++;
    x->state = state;
    x->code = code;
    x->changed_ms = now;
    return true;
}

ota_task_exec *ota_task_walk(const ota_task *task, ota_task_walk_pos *pos)
{
    size_t n_late = task->late_sorted;
    ota_task_exec *a = pos->sorted < task->n_sorted ? &task->execs[pos->sorted] : NULL;
    ota_task_exec *b = pos->late < n_late ? &task->execs[task->late[pos->late]] : NULL;
    if (a && (!b || memcmp(a->vin, b->vin, OTA_VIN_LEN) < 0)) {
        pos->sorted++;
        return a;
    }
    pos->late += b != NULL;
    return b;
}

int64_t ota_task_jitter(const ota_task *task, const char *vin)
{
    if (task->jitter_ms == 0) {
        return 0;
    }
    return (int64_t)(ota_waves_key(task->rec.id, vin) % ((uint64_t)task->jitter_ms + 1));
}

/* The number of an id "T<digits>", or 0. */
static uint64_t id_num(const char *id)
{
    size_t n = strlen(id);
    if (n < 2 || n > 20 || id[0] != 'T' || strspn(id + 1, "0123456789") != n - 1) {
        return 0;
    }
    return strtoull(id + 1, NULL, 10);
}

void ota_tasks_next_id(const ota_tasks *t, char *buf, size_t len)
{
    snprintf(buf, len, "T%06" PRIu64, t->max_id_num + 1);
}

/* Puts task (taken on success) in the map. */
static int put_task(ota_tasks *t, ota_task *task)
{
    if (ota_tasks_get(t, task->rec.id)) {
        return -1;
    }
    task_slot s = {task};
    if (!ota_map_put(&t->tasks, &s)) {
        return -1;
    }
    uint64_t num = id_num(task->rec.id);
    if (num > t->max_id_num) {
        t->max_id_num = num;
    }
    return 0;
}

static bool execs_sorted(const ota_task_exec *execs, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (memcmp(execs[i - 1].vin, execs[i].vin, OTA_VIN_LEN) > 0) {
            return false;
        }
    }
    return true;
}

int ota_tasks_add(ota_tasks *t, ota_task_rec *rec, ota_task_state state, int64_t created_ms,
                  uint64_t package, ota_task_exec *execs, size_t n)
{
    ota_task *task = calloc(1, sizeof(*task));
    if (!task) {
        return -1;
    }
    task->rec = *rec;
    task->state = task->announced = state;
    task->created_ms = created_ms;
    task->package = package;
    task->execs = execs;
    task->n_execs = task->cap_execs = task->n_sorted = n;
    if (put_task(t, task) != 0) {
        free(task);
        return -1;
    }
    memset(rec, 0, sizeof(*rec));
    if (!execs_sorted(execs, n)) { /* a target's come sorted: 1M saves ~0.15 s */
        qsort(execs, n, sizeof(*execs), exec_cmp_vin);
    }
    for (size_t i = 0; i < n; i++) {
        execs[i].dirty = 0;
        execs[i].changed_ms = created_ms;
    }
    ota_task_recount(task);
    return 0;
}

void ota_task_recount(ota_task *task)
{
    memset(task->count, 0, sizeof(task->count));
    for (size_t i = 0; i < task->n_execs; i++) {
        if (task->execs[i].state < OTA_EXEC_STATE_COUNT) {
            task->count[task->execs[i].state]++;
        }
    }
    if (task->waves) {
        ota_task_waves_reset(task->waves, task->n_execs);
        for (size_t i = 0; i < task->n_execs; i++) {
            ota_task_waves_add(task->waves, i, task->execs[i].state);
        }
    }
}

static int task_cmp_id(const void *a, const void *b)
{
    const ota_task *x = *(ota_task *const *)a, *y = *(ota_task *const *)b;
    uint64_t nx = id_num(x->rec.id), ny = id_num(y->rec.id);
    if (nx != ny) {
        return nx < ny ? -1 : 1;
    }
    return strcmp(x->rec.id, y->rec.id);
}

long ota_tasks_list(const ota_tasks *t, ota_task ***out)
{
    size_t n = ota_map_count(&t->tasks), k = 0, pos = 0;
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    ota_task **arr = malloc(n * sizeof(*arr));
    if (!arr) {
        return -1;
    }
    task_slot *s;
    while ((s = ota_map_next(&t->tasks, &pos)) && k < n) {
        arr[k++] = s->task;
    }
    qsort(arr, k, sizeof(*arr), task_cmp_id);
    *out = arr;
    return (long)k;
}

cJSON *ota_task_doc(const ota_task_rec *rec, ota_task_state state, int64_t created_ms,
                    uint64_t package)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *task = ota_json_from_task(rec);
    if (!doc || !task || !cJSON_AddItemToObject(doc, "task", task)) {
        cJSON_Delete(doc);
        cJSON_Delete(task);
        return NULL;
    }
    if (!cJSON_AddStringToObject(doc, "state", ota_task_state_name(state)) ||
        !cJSON_AddNumberToObject(doc, "created_at", (double)created_ms) ||
        !cJSON_AddNumberToObject(doc, "package", (double)package)) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* The "plan" of doc's waves (one character per execution, in index order) rewritten in
 * VIN order: late joiners sorted in, as the next load will have them. 0, or -1. */
static int plan_in_vin_order(const ota_task *task, cJSON *doc)
{
    cJSON *w = cJSON_GetObjectItemCaseSensitive(doc, "waves");
    const char *old = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "plan"));
    if (!old || strlen(old) != task->n_execs) {
        return -1;
    }
    char *plan = malloc(task->n_execs + 1);
    if (!plan) {
        return -1;
    }
    ota_task_walk_pos pos = {0};
    size_t k = 0;
    for (ota_task_exec *x; (x = ota_task_walk(task, &pos)) != NULL;) {
        plan[k++] = old[x - task->execs];
    }
    if (k != task->n_execs) { /* joiners not sorted in yet (ota_task_joins_done) */
        free(plan);
        return -1;
    }
    plan[k] = '\0';
    cJSON *s = cJSON_CreateString(plan);
    free(plan);
    return s && cJSON_ReplaceItemInObjectCaseSensitive(w, "plan", s) ? 0 : -1;
}

cJSON *ota_task_doc_of(const ota_task *task, ota_task_state state)
{
    cJSON *doc = ota_task_doc(&task->rec, state, task->created_ms, task->package);
    cJSON *w = doc && task->waves ? ota_task_waves_json(task->waves) : NULL;
    if (doc && task->waves && !cJSON_AddItemToObject(doc, "waves", w)) {
        cJSON_Delete(w);
        cJSON_Delete(doc);
        return NULL;
    }
    if (doc && task->paused) {
        cJSON_AddBoolToObject(doc, "paused", true);
    }
    if (doc && task->rev > 0) {
        cJSON_AddNumberToObject(doc, "rev", (double)task->rev);
    }
    if (doc && task->mwindow) {
        cJSON_AddItemToObject(doc, "maintenance_window", ota_task_window_json(task->mwindow));
    }
    if (doc && task->retry.on) {
        cJSON_AddItemToObject(doc, "retry", ota_task_retry_json(&task->retry));
    }
    if (doc && task->ramp.on) {
        cJSON_AddItemToObject(doc, "ramp", ota_task_ramp_json(&task->ramp));
    }
    if (doc && task->end_action != OTA_END_CANCEL_PENDING) {
        cJSON_AddStringToObject(doc, "end_action", ota_task_end_action_name(task->end_action));
    }
    if (doc && task->continuous) {
        cJSON_AddBoolToObject(doc, "continuous", true);
    }
    if (doc && task->jitter_ms) {
        cJSON_AddNumberToObject(doc, "jitter_ms", (double)task->jitter_ms);
    }
    if (doc && task->waves && task->n_execs > task->n_sorted && plan_in_vin_order(task, doc)) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* ---------------------------------------------------------------- state machine */

bool ota_exec_in_flight(uint8_t s)
{
    return s == OTA_EXEC_NOTIFIED || s == OTA_EXEC_DOWNLOADING || s == OTA_EXEC_INSTALLING ||
           s == OTA_EXEC_ACCEPTED || s == OTA_EXEC_POSTPONED;
}

#define BIT(s) (1u << (s))
/* The driver's answers: where an execution may go on a consent event. */
#define CONSENT (BIT(OTA_EXEC_ACCEPTED) | BIT(OTA_EXEC_POSTPONED) | BIT(OTA_EXEC_DECLINED))
/* Where an execution the vehicle works on may go (installing has no consent). */
#define WORKING                                                                                    \
    (BIT(OTA_EXEC_NOTIFIED) | BIT(OTA_EXEC_DOWNLOADING) | BIT(OTA_EXEC_INSTALLING) |               \
     BIT(OTA_EXEC_SUCCEEDED) | BIT(OTA_EXEC_FAILED) | BIT(OTA_EXEC_CANCELED))
/* The states each state may move to (tasks.h). */
static const unsigned next_allowed[OTA_EXEC_STATE_COUNT] = {
    [OTA_EXEC_QUEUED] = BIT(OTA_EXEC_NOTIFIED) | BIT(OTA_EXEC_CANCELED),
    [OTA_EXEC_NOTIFIED] = BIT(OTA_EXEC_NOTIFIED) | BIT(OTA_EXEC_DOWNLOADING) |
                          BIT(OTA_EXEC_INSTALLING) | BIT(OTA_EXEC_SUCCEEDED) |
                          BIT(OTA_EXEC_FAILED) | BIT(OTA_EXEC_CANCELED) | CONSENT,
    [OTA_EXEC_DOWNLOADING] = BIT(OTA_EXEC_NOTIFIED) | BIT(OTA_EXEC_INSTALLING) |
                             BIT(OTA_EXEC_SUCCEEDED) | BIT(OTA_EXEC_FAILED) |
                             BIT(OTA_EXEC_CANCELED) | CONSENT,
    [OTA_EXEC_INSTALLING] = BIT(OTA_EXEC_NOTIFIED) | BIT(OTA_EXEC_SUCCEEDED) |
                            BIT(OTA_EXEC_FAILED) | BIT(OTA_EXEC_CANCELED),
    [OTA_EXEC_ACCEPTED] = WORKING | BIT(OTA_EXEC_POSTPONED) | BIT(OTA_EXEC_DECLINED),
    [OTA_EXEC_POSTPONED] = BIT(OTA_EXEC_NOTIFIED) | CONSENT | BIT(OTA_EXEC_CANCELED),
};

bool ota_exec_transition_valid(uint8_t from, uint8_t to)
{
    return from < OTA_EXEC_STATE_COUNT && to < OTA_EXEC_STATE_COUNT &&
           (next_allowed[from] & BIT(to)) != 0;
}

bool ota_task_exec_set_state(ota_task *task, ota_task_exec *x, uint8_t state, int64_t now)
{
    if (!ota_exec_transition_valid(x->state, state)) {
        return false;
    }
    task->count[x->state]--;
    if (task->waves) {
        ota_task_waves_moved(task->waves, (size_t)(x - task->execs), x->state, state);
    }
    x->state = state;
    if (state != OTA_EXEC_QUEUED && !ota_exec_in_flight(state)) {
        x->flags &= (uint8_t)~OTA_EXEC_F_CLAIMING; /* finished: its pending notice is moot */
    }
    task->count[state]++;
    x->changed_ms = now;
    return true;
}

static uint8_t next_on_status(uint8_t state, const char *status, bool cancel_pending)
{
    if (!status) {
        return state;
    }
    if (strcmp(status, "succeeded") == 0) {
        return OTA_EXEC_SUCCEEDED;
    }
    if (strcmp(status, "failed") == 0) {
        return OTA_EXEC_FAILED;
    }
    if (strcmp(status, "canceled") == 0 || (strcmp(status, "idle") == 0 && cancel_pending)) {
        return OTA_EXEC_CANCELED;
    }
    return state;
}

static uint8_t next_on_consent(uint8_t state, const char *answer)
{
    if (state == OTA_EXEC_INSTALLING || !answer) {
        return state; /* too late to ask: the vehicle installs */
    }
    if (strcmp(answer, "accepted") == 0) {
        return OTA_EXEC_ACCEPTED;
    }
    if (strcmp(answer, "declined") == 0) {
        return OTA_EXEC_DECLINED;
    }
    return strcmp(answer, "postponed") == 0 ? OTA_EXEC_POSTPONED : state;
}

uint8_t ota_exec_next_state(uint8_t state, const ota_event *ev, bool cancel_pending)
{
    if (!ev || !ota_exec_in_flight(state)) {
        return state;
    }
    switch (ev->type) {
    case OTA_EV_DOWNLOAD_PROGRESS:
        return state == OTA_EXEC_NOTIFIED || state == OTA_EXEC_ACCEPTED ? OTA_EXEC_DOWNLOADING
                                                                        : state;
    case OTA_EV_UPGRADE_PROGRESS:
        return OTA_EXEC_INSTALLING;
    case OTA_EV_UPGRADE_STATUS:
        return next_on_status(state, ev->status, cancel_pending);
    case OTA_EV_CONSENT:
        return next_on_consent(state, ev->answer);
    default:
        return state;
    }
}

size_t ota_task_open_of(const size_t count[OTA_EXEC_STATE_COUNT])
{
    return count[OTA_EXEC_QUEUED] + count[OTA_EXEC_NOTIFIED] + count[OTA_EXEC_DOWNLOADING] +
           count[OTA_EXEC_INSTALLING] + count[OTA_EXEC_ACCEPTED] + count[OTA_EXEC_POSTPONED];
}

void ota_task_seen(const ota_task *task, size_t out[OTA_EXEC_STATE_COUNT])
{
    const size_t *st = task->stored.count;
    memcpy(out, task->count, sizeof task->count);
    if (!task->stored.counted) {
        return;
    }
    for (int s = OTA_EXEC_SUCCEEDED; s <= OTA_EXEC_FAILED; s++) {
        out[s] = st[s] > out[s] ? st[s] : out[s];
    }
    if (ota_task_open_of(st) < ota_task_open_of(task->count)) {
        static const int open[] = {OTA_EXEC_QUEUED,    OTA_EXEC_NOTIFIED, OTA_EXEC_DOWNLOADING,
                                   OTA_EXEC_INSTALLING, OTA_EXEC_ACCEPTED, OTA_EXEC_POSTPONED};
        for (size_t i = 0; i < sizeof open / sizeof *open; i++) {
            out[open[i]] = st[open[i]];
        }
    }
}

ota_task_state ota_task_next_state(const ota_task *task)
{
    size_t seen[OTA_EXEC_STATE_COUNT];
    const ota_task_rec *r = &task->rec;
    if (task->state != OTA_TASK_ACTIVE) {
        return task->state;
    }
    ota_task_seen(task, seen);
    size_t ok = seen[OTA_EXEC_SUCCEEDED], bad = seen[OTA_EXEC_FAILED];
    if (r->abort_min_executed > 0 && r->abort_failure_pct > 0 &&
        ok + bad >= r->abort_min_executed && bad * 100 >= (ok + bad) * r->abort_failure_pct) {
        return OTA_TASK_ABORTED;
    }
    if (task->continuous && !task->closed) {
        return OTA_TASK_ACTIVE; /* vehicles may still join */
    }
    return ota_task_open_of(seen) == 0 ? OTA_TASK_FINISHED : OTA_TASK_ACTIVE;
}

void ota_task_set_state(ota_task *task, ota_task_state s)
{
    if (task->state != s) {
        task->state = s;
        task->doc_dirty = true;
    }
}

bool ota_task_window_open(const ota_task *task, int64_t now)
{
    return (task->rec.start_ms < 0 || task->rec.start_ms <= now) &&
           (task->rec.end_ms < 0 || now < task->rec.end_ms);
}

bool ota_task_exec_wakes(const ota_task_exec *x, int64_t now)
{
    return x->state == OTA_EXEC_POSTPONED &&
           !(x->flags & (OTA_EXEC_F_ELSEWHERE | OTA_EXEC_F_CLAIMING)) && now >= x->changed_ms;
}

bool ota_task_exec_timed_out(const ota_task *task, const ota_task_exec *x, int64_t now,
                             int64_t minute_ms)
{
    return task->rec.timeout_min > 0 && ota_exec_in_flight(x->state) &&
           !(x->flags & OTA_EXEC_F_ELSEWHERE) &&
           now - x->changed_ms >= (int64_t)task->rec.timeout_min * minute_ms;
}

/* ---------------------------------------------------------------- load */

typedef struct {
    ota_tasks *t;
    ota_task *last; /* the task of the previous execution (they come by task) */
    char *err;
    size_t errlen;
    bool failed;
} load_ctx;

static int load_fail(load_ctx *lc, const char *what, const char *key, const char *msg)
{
    snprintf(lc->err, lc->errlen, "%s %s: %s", what, key, msg);
    lc->failed = true;
    return 1;
}

static const char *const doc_fields[] = {
    "task",       "state", "created_at", "package",    "waves",     "paused", "maintenance_window",
    "end_action", "ramp",  "retry",      "continuous", "jitter_ms", "rev",   NULL};

/* The document's members besides the task: state, created_at, package. */
static int parse_doc_state(const cJSON *j, ota_task *task, char *err, size_t errlen)
{
    static const char *const names[] = {"active", "canceled", "aborted", "finished"};
    int st = 0;
    uint64_t created = 0, pkg = 0, rev = 0;
    if (ota_json_check_fields(j, NULL, doc_fields, err, errlen) ||
        ota_json_get_uint(j, NULL, "rev", false, 0, OTA_JSON_UINT_MAX, &rev, err, errlen) ||
        ota_json_get_enum(j, NULL, "state", true, names, OTA_TASK_STATE_COUNT, &st, err, errlen) ||
        ota_json_get_uint(j, NULL, "created_at", true, 0, OTA_JSON_UINT_MAX, &created, err,
                          errlen) ||
        ota_json_get_uint(j, NULL, "package", true, 0, OTA_JSON_UINT_MAX, &pkg, err, errlen)) {
        return -1;
    }
    task->state = task->announced = (ota_task_state)st; /* events only for later moves */
    task->created_ms = (int64_t)created;
    task->package = pkg;
    task->rev = rev;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "waves");
    uint64_t jitter = 0;
    if (ota_json_get_bool(j, NULL, "continuous", false, false, &task->continuous, err, errlen) !=
            0 ||
        ota_json_get_uint(j, NULL, "jitter_ms", false, 0, OTA_TASK_JITTER_MAX, &jitter, err,
                          errlen) != 0) {
        return -1;
    }
    task->jitter_ms = (uint32_t)jitter;
    if (ota_json_get_bool(j, NULL, "paused", false, false, &task->paused, err, errlen) != 0 ||
        (w && ota_task_waves_from_json(w, &task->waves, err, errlen) != 0) ||
        ota_task_window_parse(j, NULL, &task->mwindow, err, errlen) != 0 ||
        ota_task_end_action_parse(j, NULL, &task->end_action, err, errlen) != 0 ||
        ota_task_ramp_parse(j, NULL, &task->ramp, err, errlen) != 0 ||
        ota_task_retry_parse(j, NULL, &task->retry, err, errlen) != 0) {
        return -1;
    }
    return 0;
}

static int parse_task_doc(const cJSON *j, ota_task *task, char *err, size_t errlen)
{
    if (parse_doc_state(j, task, err, errlen) != 0) {
        return -1;
    }
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(j, "task");
    if (!rec) {
        snprintf(err, errlen, "task: missing");
        return -1;
    }
    if (ota_json_task(rec, "task", &task->rec, err, errlen) != 0) {
        return -1;
    }
    if (task->rec.n_vins > 0) { /* not in stored documents; the executions hold them */
        ota_json_strings_free(task->rec.vins, task->rec.n_vins);
        task->rec.vins = NULL;
        task->rec.n_vins = 0;
    }
    return 0;
}

static int load_task_doc(void *ctx, const char *key, const char *json)
{
    load_ctx *lc = ctx;
    char perr[384];
    cJSON *j = cJSON_Parse(json);
    ota_task *task = calloc(1, sizeof(*task));
    int rc = 0;
    if (!j || !task) {
        rc = load_fail(lc, "task", key, !j ? "not JSON" : "out of memory");
    } else if (parse_task_doc(j, task, perr, sizeof(perr)) != 0) {
        rc = load_fail(lc, "task", key, perr);
    } else if (strcmp(task->rec.id, key) != 0) {
        rc = load_fail(lc, "task", key, "id does not match the key");
    } else if (put_task(lc->t, task) != 0) {
        rc = load_fail(lc, "task", key, "out of memory or loaded twice");
    } else {
        task = NULL; /* taken */
    }
    task_free(task);
    cJSON_Delete(j);
    return rc;
}

static int push_exec(ota_task *task, const ota_task_exec *x)
{
    if (grow_execs(task) != 0) {
        return -1;
    }
    task->execs[task->n_execs++] = *x;
    return 0;
}

static int load_exec(void *ctx, const ota_exec_rec *e)
{
    load_ctx *lc = ctx;
    if (!lc->last || strcmp(lc->last->rec.id, e->task) != 0) {
        lc->last = ota_tasks_get(lc->t, e->task);
    }
    if (!lc->last) {
        /* a createTask interrupted between its batches (control_tasks.c stores the
         * executions of a large task first, its document last): never created, skipped */
        return 0;
    }
    if (!e->vin || strlen(e->vin) != OTA_VIN_LEN) {
        return load_fail(lc, "execution of task", e->task, "bad VIN");
    }
    ota_task_exec x = {.state = (uint8_t)e->state,
                       .code = ota_tasks_code(lc->t, e->code),
                       .resends = e->resends > UINT16_MAX ? UINT16_MAX : (uint16_t)e->resends,
                       .notified_ms = e->notified_ms,
                       .changed_ms = e->updated_ms};
    memcpy(x.vin, e->vin, OTA_VIN_LEN);
    return push_exec(lc->last, &x) ? load_fail(lc, "execution of task", e->task, "out of memory")
                                   : 0;
}

/* A task's target: kept by a continuous task (the engine re-reads it as the catalog
 * changes); others never read it again. A target of an unknown task is left alone. */
static int load_target(load_ctx *lc, const char *key, const char *json)
{
    ota_task *task = ota_tasks_get(lc->t, key + strlen(OTA_TASK_TARGET_PREFIX));
    if (!task || !task->continuous || task->target) {
        return 0;
    }
    char perr[384];
    cJSON *j = cJSON_Parse(json);
    ota_target *q = calloc(1, sizeof(*q));
    int rc = 0;
    if (!j || !q) {
        rc = load_fail(lc, "setting", key, !j ? "not JSON" : "out of memory");
    } else if (ota_json_target(j, NULL, q, perr, sizeof(perr)) != 0) {
        rc = load_fail(lc, "setting", key, perr);
    } else {
        task->target = q;
        q = NULL;
    }
    free(q);
    cJSON_Delete(j);
    return rc;
}

static int load_setting(void *ctx, const char *key, const char *json)
{
    load_ctx *lc = ctx;
    if (strncmp(key, OTA_TASK_TARGET_PREFIX, strlen(OTA_TASK_TARGET_PREFIX)) == 0) {
        return load_target(lc, key, json);
    }
    if (strncmp(key, TYPE_RULES_PREFIX, strlen(TYPE_RULES_PREFIX)) != 0) {
        return 0; /* another setting */
    }
    char perr[384];
    ota_task_type_rules r;
    cJSON *j = cJSON_Parse(json);
    int rc = 0;
    if (!j) {
        rc = load_fail(lc, "setting", key, "not JSON");
    } else if (ota_json_task_type_rules(j, NULL, &r, perr, sizeof(perr)) != 0) {
        rc = load_fail(lc, "setting", key, perr);
    } else if (strcmp(key + strlen(TYPE_RULES_PREFIX), ota_task_type_name(r.type)) != 0) {
        ota_task_type_rules_free(&r);
        rc = load_fail(lc, "setting", key, "type does not match the key");
    } else {
        ota_tasks_set_type_rules(lc->t, &r);
    }
    cJSON_Delete(j);
    return rc;
}

static void load_status(void *ctx, const ota_store_event *ev)
{
    note_status(((load_ctx *)ctx)->t, ev->vin, ev->ev);
}

/* Executions come by (task, VIN) from the store; sorts a task whose are not in order. */
static void sort_execs(ota_tasks *t)
{
    size_t pos = 0;
    task_slot *s;
    while ((s = ota_map_next(&t->tasks, &pos))) {
        ota_task *task = s->task;
        for (size_t i = 1; i < task->n_execs; i++) {
            if (exec_cmp_vin(&task->execs[i - 1], &task->execs[i]) > 0) {
                qsort(task->execs, task->n_execs, sizeof(*task->execs), exec_cmp_vin);
                break;
            }
        }
        task->n_sorted = task->n_execs; /* late joiners of the last run are sorted in */
        task->late_sorted = 0;
        ota_task_recount(task); /* after the sort: the wave plan is in VIN order */
    }
}

int ota_tasks_load(ota_tasks *t, ota_store *store, char *err, size_t errlen)
{
    load_ctx lc = {t, NULL, err, errlen, false};
    const char *step = "task documents";
    int rc = ota_store_load_docs(store, OTA_DOC_TASK, load_task_doc, &lc);
    if (rc == 0) {
        step = "executions";
        rc = ota_store_load_execs(store, load_exec, &lc);
    }
    if (rc == 0) {
        step = "settings";
        rc = ota_store_load_docs(store, OTA_DOC_SETTING, load_setting, &lc);
    }
    if (rc == 0) {
        step = "latest upgrade statuses";
        rc = ota_store_load_latest_statuses(store, load_status, &lc);
    }
    if (rc != 0 && !lc.failed) {
        snprintf(err, errlen, "loading the %s failed", step);
    }
    sort_execs(t);
    return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- the change log's follower */

/* A newer document of a held task: its rollout replaces memory's (2), else 0. */
static int follow_rollout(ota_task *held, const ota_task *doc)
{
    if (doc->rev <= held->rev) {
        return 0;
    }
    held->rev = doc->rev;
    held->paused = doc->paused;
    if (held->waves && doc->waves) {
        held->waves->current = doc->waves->current;
        held->waves->approved = doc->waves->approved;
    }
    return 2;
}

int ota_tasks_follow_doc(ota_tasks *t, const char *key, const char *json, const ota_exec_rec *execs,
                         size_t n, ota_task_state *state, char *err, size_t errlen)
{
    load_ctx lc = {t, NULL, err, errlen, false};
    ota_task *held = ota_tasks_get(t, key);
    if (held) {
        ota_task doc = {0};
        cJSON *j = cJSON_Parse(json);
        int rc =
            j ? parse_doc_state(j, &doc, err, errlen) : load_fail(&lc, "task", key, "not JSON");
        cJSON_Delete(j);
        *state = doc.state;
        if (rc == 0) {
            rc = follow_rollout(held, &doc);
        }
        ota_task_waves_free(doc.waves); /* only the state and the rollout are read */
        ota_task_window_free(doc.mwindow);
        return rc;
    }
    if (load_task_doc(&lc, key, json) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(execs[i].task, key) == 0 && load_exec(&lc, &execs[i]) != 0) {
            return -1; /* the task stays, with the executions loaded so far */
        }
    }
    ota_task *task = ota_tasks_get(t, key);
    if (task->n_execs > 1) {
        qsort(task->execs, task->n_execs, sizeof(*task->execs), exec_cmp_vin);
    }
    task->n_sorted = task->n_execs;
    task->late_sorted = 0;
    ota_task_recount(task);
    *state = task->state;
    return 1;
}

int ota_tasks_follow_setting(ota_tasks *t, const char *key, const char *json, char *err,
                             size_t errlen)
{
    load_ctx lc = {t, NULL, err, errlen, false};
    return load_setting(&lc, key, json) == 0 ? 0 : -1;
}
