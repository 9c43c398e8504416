/*
 * snapshot.c — a local snapshot of a store in a SQLite file, to start a broker while its
 * database is unreachable (issue 15; ota_store.h "a local snapshot").
 *
 * Design
 * - Made through the public interface: every loader of the source feeds the snapshot
 *   (a SQLite store in bulk mode: one transaction, no fsync until the end, no change log,
 *   sqlite_state.c), so it works from either backend and holds what the loaders return.
 * - Atomic and durable: written as path.tmp (a stale one is removed first), committed with
 *   a full checkpoint in rollback-journal mode, fsynced, then renamed over path and the
 *   directory fsynced. A crash leaves the previous snapshot or the new one, never half.
 * - Its position is the source's last change log seq taken BEFORE the copy: entries after
 *   it may already be in the copy, and applying them again is harmless (each carries the
 *   whole new state), so nothing is missed.
 * - Refresh applies the change log after the position to the catalog part (vehicles,
 *   documents, lists) and the operators' resets of replay guards in one transaction;
 *   executions, shadows and the rest have no log (they change per report) and are copied
 *   whole by a full save, at the caller's cadence. An entry the snapshot cannot apply (a
 *   vehicle the codec refuses to parse back) makes the refresh a full save, so a snapshot
 *   never stays stuck behind one entry.
 */
#include "sqlite_impl.h"

#include "ota_catalog_json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOLD_MS 2000 /* a change log gap younger than this may still fill */

/* ---- copying through the loaders ---- */

typedef struct {
    ota_store *to;
    char *err;
    size_t errlen;
    int t;       /* the document kind being copied */
    bool failed; /* a callback without a return value failed */
} copy;

static int put(copy *c, const ota_catalog_change *ch)
{
    return ota_store_apply(c->to, ch, c->err, c->errlen);
}

static int copy_vehicle(void *ctx, const ota_vehicle_rec *v)
{
    return put(ctx, &(ota_catalog_change){.put_vehicles = v, .n_put_vehicles = 1});
}

static int copy_doc(void *ctx, const char *key, const char *json)
{
    copy *c = ctx;
    ota_store_doc d = {(ota_doc_kind)c->t, key, json};
    return put(c, &(ota_catalog_change){.docs = &d, .n_docs = 1});
}

static int copy_list(void *ctx, ota_list_kind list, const char *vin)
{
    return put(ctx, &(ota_catalog_change){.list = list, .list_add = &vin, .n_list_add = 1});
}

static int copy_exec(void *ctx, const ota_exec_rec *e)
{
    return put(ctx, &(ota_catalog_change){.put_execs = e, .n_put_execs = 1});
}

static int copy_shadow(void *ctx, const ota_shadow_rec *s)
{
    return put(ctx, &(ota_catalog_change){.put_shadows = s, .n_put_shadows = 1});
}

static int copy_notice(void *ctx, const ota_notice_rec *n)
{
    return put(ctx, &(ota_catalog_change){.add_notices = n, .n_add_notices = 1});
}

static int copy_description(void *ctx, const ota_description_rec *d)
{
    return put(ctx, &(ota_catalog_change){.add_descriptions = d, .n_add_descriptions = 1});
}

/* Loader callbacks without a return value: failures are counted. */
static void copy_status(void *ctx, const ota_store_event *e)
{
    copy *c = ctx;
    if (!c->failed && ota_store_put_events(c->to, e, 1, NULL, c->err, c->errlen) != 0)
        c->failed = true;
}

static int copy_seq(void *ctx, const ota_report_seq_rec *r)
{
    return ota_store_sq_snapshot_seq(((copy *)ctx)->to, r);
}

/* Every loader of from into to; 0, or -1 (err set unless a loader failed silently). */
static int copy_all(ota_store *from, ota_store *to, char *err, size_t errlen)
{
    copy c = {to, err, errlen, 0, false};
    if (ota_store_load_vehicles(from, copy_vehicle, &c) != 0)
        return -1;
    for (c.t = 1; c.t <= OTA_DOC_KIND_COUNT; c.t++)
        if (ota_store_load_docs(from, (ota_doc_kind)c.t, copy_doc, &c) != 0)
            return -1;
    c.t = 0;
    if (ota_store_load_lists(from, copy_list, &c) != 0 ||
        ota_store_load_execs(from, copy_exec, &c) != 0 ||
        ota_store_load_shadows(from, copy_shadow, &c) != 0 ||
        ota_store_load_notices(from, NULL, copy_notice, &c) != 0 ||
        ota_store_load_descriptions(from, NULL, copy_description, &c) != 0 ||
        ota_store_load_latest_statuses(from, copy_status, &c) != 0 || c.failed)
        return -1;
    return ota_store_load_last_seqs(from, copy_seq, &c);
}

/* ---- files ---- */

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, len, ".");
    else
        snprintf(dir, len, "%.*s", (int)(slash == path ? 1 : slash - path), path);
}

/* Removes path and SQLite's files beside it. */
static void remove_db(const char *path)
{
    static const char *const SUFFIX[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof SUFFIX / sizeof SUFFIX[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, SUFFIX[i]);
        unlink(p);
    }
}

/* Renames tmp over path durably (the WAL of an older snapshot at path removed first, so
 * SQLite never replays it into the new file). */
static int install(const char *tmp, const char *path, char *err, size_t errlen)
{
    char p[PATH_MAX + 16], dir[PATH_MAX];
    if (fsync_path(tmp, O_RDONLY) != 0)
        goto fail;
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    if (rename(tmp, path) != 0)
        goto fail;
    dir_of(path, dir, sizeof dir);
    if (fsync_path(dir, O_RDONLY | O_DIRECTORY) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "snapshot %s: %s", path, strerror(errno));
    return -1;
}

/* ---- saving ---- */

int ota_store_snapshot_save(ota_store *from, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    uint64_t first, last;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "snapshot: path too long");
        return -1;
    }
    if (ota_store_change_bounds(from, &first, &last) != 0) {
        snprintf(err, errlen, "snapshot %s: reading the change log position failed", path);
        return -1;
    }
    remove_db(tmp);
    ota_store *to = ota_store_sqlite_open(tmp, err, errlen);
    if (to == NULL)
        return -1;
    err[0] = '\0';
    int rc = ota_store_sq_snapshot_begin(to, err, errlen);
    if (rc == 0 && copy_all(from, to, err, errlen) != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "snapshot %s: reading the store failed", path);
        ota_store_sq_snapshot_abort(to);
        rc = -1;
    }
    if (rc == 0)
        rc = ota_store_sq_snapshot_commit(to, last, err, errlen);
    ota_store_close(to);
    if (rc == 0)
        rc = install(tmp, path, err, errlen);
    if (rc != 0)
        remove_db(tmp);
    return rc;
}

/* ---- refreshing from the change log ---- */

typedef struct {
    ota_store *to;
    uint64_t last; /* the last entry applied */
    char *err;
    size_t errlen;
    bool failed;
} refresh;

static int apply_vehicle(refresh *r, const ota_store_change *c)
{
    if (c->deleted)
        return ota_store_apply(
            r->to, &(ota_catalog_change){.delete_vehicles = &c->id, .n_delete_vehicles = 1}, r->err,
            r->errlen);
    cJSON *j = c->json != NULL ? cJSON_Parse(c->json) : NULL;
    ota_vehicle_rec v;
    int rc = j != NULL ? ota_json_vehicle(j, "vehicle", &v, r->err, r->errlen) : -1;
    cJSON_Delete(j);
    if (rc != 0)
        return -1;
    rc = ota_store_apply(r->to, &(ota_catalog_change){.put_vehicles = &v, .n_put_vehicles = 1},
                         r->err, r->errlen);
    ota_vehicle_rec_free(&v);
    return rc;
}

/* An operator's reset on any broker: the VIN's guard row as the reset left it. Applied
 * again over a row of a later report of the same reset (the copy may hold it) it lowers seq
 * to -1: the next report after a start from the snapshot is then taken whatever its seq, as
 * right after the reset; its events are keyed, so stored once. */
static int apply_reset(refresh *r, const ota_store_change *c)
{
    char epoch[OTA_STORE_EPOCH_KEY_MAX];
    ota_report_seq_rec row;
    if (ota_store_change_vehicle_state(c, &row, epoch, sizeof epoch) != 0) {
        snprintf(r->err, r->errlen, "change %llu: not a guard row", (unsigned long long)c->seq);
        return -1;
    }
    return ota_store_sq_snapshot_seq(r->to, &row);
}

static int apply_entry(void *ctx, const ota_store_change *c)
{
    refresh *r = ctx;
    int rc;
    if (c->what == OTA_CHANGE_VEHICLE) {
        rc = apply_vehicle(r, c);
    } else if (c->what == OTA_CHANGE_GROUP) {
        rc = -1; /* groups have no apply: the refresh copies everything instead */
    } else if (c->what == OTA_CHANGE_VEHICLE_STATE) {
        rc = apply_reset(r, c);
    } else if (c->what == OTA_CHANGE_DOC) {
        ota_store_doc d = {c->doc_kind, c->id, c->deleted ? NULL : c->json};
        rc = ota_store_apply(r->to, &(ota_catalog_change){.docs = &d, .n_docs = 1}, r->err,
                             r->errlen);
    } else {
        ota_catalog_change ch = {.list = c->list};
        if (c->deleted)
            ch.list_remove = &c->id, ch.n_list_remove = 1;
        else
            ch.list_add = &c->id, ch.n_list_add = 1;
        rc = ota_store_apply(r->to, &ch, r->err, r->errlen);
    }
    if (rc == 0)
        r->last = c->seq;
    r->failed |= rc != 0;
    return rc != 0;
}

int ota_store_snapshot_refresh(ota_store *from, const char *path, bool full, char *err,
                               size_t errlen)
{
    uint64_t pos = 0, first, last;
    if (full || ota_store_snapshot_position(path, &pos) != 0 ||
        ota_store_change_bounds(from, &first, &last) != 0 || pos + 1 < first)
        return ota_store_snapshot_save(from, path, err, errlen) == 0 ? 0 : -1;
    ota_store *to = ota_store_sqlite_open(path, err, errlen);
    if (to == NULL)
        return -1;
    err[0] = '\0';
    refresh r = {to, pos, err, errlen, false};
    if (ota_store_sq_snapshot_begin(to, err, errlen) != 0) {
        ota_store_close(to);
        return -1;
    }
    int n = ota_store_read_changes(from, pos, 0, ota_store_wall_ms(), HOLD_MS, apply_entry, &r);
    if (n < 0 && !r.failed) {
        snprintf(err, errlen, "snapshot %s: reading the change log failed", path);
        ota_store_sq_snapshot_abort(to);
    } else if (r.failed) { /* an entry the snapshot refuses: copy everything instead */
        ota_store_sq_snapshot_abort(to);
        ota_store_close(to);
        return ota_store_snapshot_save(from, path, err, errlen) == 0 ? 0 : -1;
    } else if (ota_store_sq_snapshot_commit(to, r.last, err, errlen) != 0) {
        n = -1;
    }
    ota_store_close(to);
    return n;
}

int ota_store_snapshot_position(const char *path, uint64_t *seq)
{
    char err[256];
    if (access(path, R_OK) != 0)
        return -1;
    ota_store *s = ota_store_sqlite_open(path, err, sizeof err);
    if (s == NULL)
        return -1;
    int rc = ota_store_sq_snapshot_position(s, seq);
    ota_store_close(s);
    return rc == 1 ? 0 : -1;
}

ota_store *ota_store_open_or_snapshot(const char *uri, const char *snapshot, bool *from_snapshot,
                                      char *err, size_t errlen)
{
    *from_snapshot = false;
    ota_store *s = ota_store_open(uri, err, errlen);
    uint64_t pos;
    if (s != NULL || snapshot == NULL || ota_store_snapshot_position(snapshot, &pos) != 0)
        return s;
    char why[256];
    s = ota_store_sqlite_open(snapshot, why, sizeof why);
    *from_snapshot = s != NULL;
    return s;
}
