/*
 * timers.c — the timer heap (timers.h).
 *
 * The heap is an array of slots {due, rec}, ordered by (due, id); rec points to the id's
 * record in the index (an ota_map of {id, pos}), whose records never move (map.h), so a
 * slot move updates its record's pos directly without a lookup. Cancelling moves the last
 * slot into the hole and sifts it up or down.
 */
#include "timers.h"

#include "map.h"

#include <stdlib.h>

typedef struct {
    uint64_t id;
    uint32_t pos; /* its slot in the heap */
} timer_rec;

typedef struct {
    int64_t due;
    timer_rec *rec;
} slot;

struct ota_timers {
    ota_map index; /* timer_rec, by id */
    slot *heap;
    size_t n, cap;
};

static ota_map_key rec_key(const void *rec)
{
    return (ota_map_key){&((const timer_rec *)rec)->id, sizeof(uint64_t)};
}

ota_timers *ota_timers_new(void)
{
    ota_timers *t = calloc(1, sizeof *t);
    if (t != NULL)
        ota_map_init(&t->index, sizeof(timer_rec), rec_key);
    return t;
}

void ota_timers_free(ota_timers *t)
{
    if (t == NULL)
        return;
    ota_map_destroy(&t->index, NULL);
    free(t->heap);
    free(t);
}

size_t ota_timers_count(const ota_timers *t)
{
    return t->n;
}

/* ---- heap order ---- */

static bool before(const slot *a, const slot *b)
{
    return a->due < b->due || (a->due == b->due && a->rec->id < b->rec->id);
}

static void place(ota_timers *t, size_t i, slot s)
{
    t->heap[i] = s;
    s.rec->pos = (uint32_t)i;
}

static void sift_up(ota_timers *t, size_t i)
{
    slot s = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&s, &t->heap[parent]))
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, s);
}

static void sift_down(ota_timers *t, size_t i)
{
    slot s = t->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->n)
            break;
        if (child + 1 < t->n && before(&t->heap[child + 1], &t->heap[child]))
            child++;
        if (!before(&t->heap[child], &s))
            break;
        place(t, i, t->heap[child]);
        i = child;
    }
    place(t, i, s);
}

/* After slot i changed its due time (or was filled from the end). */
static void fix(ota_timers *t, size_t i)
{
    if (i > 0 && before(&t->heap[i], &t->heap[(i - 1) / 2]))
        sift_up(t, i);
    else
        sift_down(t, i);
}

/* ---- operations ---- */

static int grow(ota_timers *t)
{
    if (t->n < t->cap)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 64;
    if (cap > UINT32_MAX)
        return -1;
    slot *h = realloc(t->heap, cap * sizeof *h);
    if (h == NULL)
        return -1;
    t->heap = h;
    t->cap = cap;
    return 0;
}

int ota_timers_set(ota_timers *t, uint64_t id, int64_t due_ms)
{
    timer_rec *r = ota_map_get(&t->index, &id, sizeof id);
    if (r != NULL) {
        t->heap[r->pos].due = due_ms;
        fix(t, r->pos);
        return 0;
    }
    if (grow(t) != 0)
        return -1;
    timer_rec init = {id, (uint32_t)t->n};
    if ((r = ota_map_put(&t->index, &init)) == NULL)
        return -1;
    t->heap[t->n] = (slot){due_ms, r};
    sift_up(t, t->n++);
    return 0;
}

/* Takes slot i out of the heap and its id out of the index. */
static void remove_at(ota_timers *t, size_t i)
{
    timer_rec *r = t->heap[i].rec;
    t->n--;
    if (i < t->n) {
        place(t, i, t->heap[t->n]);
        fix(t, i);
    }
    ota_map_remove(&t->index, r, NULL);
}

int ota_timers_cancel(ota_timers *t, uint64_t id)
{
    timer_rec *r = ota_map_get(&t->index, &id, sizeof id);
    if (r == NULL)
        return 0;
    remove_at(t, r->pos);
    return 1;
}

bool ota_timers_get(const ota_timers *t, uint64_t id, int64_t *due_ms)
{
    const timer_rec *r = ota_map_get(&t->index, &id, sizeof id);
    if (r != NULL && due_ms != NULL)
        *due_ms = t->heap[r->pos].due;
    return r != NULL;
}

int64_t ota_timers_next_due(const ota_timers *t)
{
    return t->n ? t->heap[0].due : INT64_MAX;
}

int ota_timers_pop_due(ota_timers *t, int64_t now_ms, uint64_t *id, int64_t *due_ms)
{
    if (t->n == 0 || t->heap[0].due > now_ms)
        return 0;
    if (id != NULL)
        *id = t->heap[0].rec->id;
    if (due_ms != NULL)
        *due_ms = t->heap[0].due;
    remove_at(t, 0);
    return 1;
}
