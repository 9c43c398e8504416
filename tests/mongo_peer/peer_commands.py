"""peer_commands — the database commands the test peer answers, with MongoDB's semantics.

Each handler takes (peer, db, cmd) — cmd is the command document with any OP_MSG
document sequences (kind 1 sections) merged in as arrays — and returns the reply
document, or raises PeerError (sent as {ok: 0, code, codeName, errmsg}). The caller holds
the peer's lock for the whole command, so each command is atomic.

Implemented (see COMMANDS.md and README.md): hello/isMaster, ping, buildInfo,
endSessions, insert, update, delete, find, getMore, killCursors, findAndModify, count,
aggregate ($match and $group: peer_aggregate), createIndexes, listIndexes,
listCollections, drop, dropDatabase. Anything else: {ok: 0, code: 59, codeName:
"CommandNotFound"}.
"""

import datetime
import random

import bson
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument

from peer_aggregate import run_pipeline
from peer_match import PeerError, compile_query, matches, project, sort_docs
from peer_update import apply_update, is_operator_update, upsert_document

MAX_BSON = 16 * 1024 * 1024
MAX_MESSAGE = 48_000_000
MAX_WRITE_BATCH = 100_000
MAX_WIRE_VERSION = 17  # MongoDB 6.0; libmongoc 1.23 speaks up to 17
DEFAULT_BATCH = 101
INDEX_FIELDS = {"key", "name", "unique", "v", "background", "ns"}
UNSUPPORTED_INDEX_FIELDS = {"sparse", "partialFilterExpression", "expireAfterSeconds",
                            "collation", "hidden", "weights", "default_language",
                            "2dsphereIndexVersion", "wildcardProjection"}


def _ns(db, cmd, name):
    coll = cmd[name]
    if not isinstance(coll, str) or not coll:
        raise PeerError(73, "InvalidNamespace", "collection name must be a nonempty string")
    return "%s.%s" % (db, coll)


def _refuse(cmd, fields, what):
    for f in fields:
        if f in cmd:
            raise PeerError(2, "BadValue", "%s: option '%s' is not supported by the test "
                            "peer" % (what, f))


# ---------------------------------------------------------------------------------------
# Handshake and administration


def cmd_hello(peer, db, cmd):
    reply = {"helloOk": True}
    legacy = "isMaster" in cmd or "ismaster" in cmd
    reply["ismaster" if legacy else "isWritablePrimary"] = True
    reply.update({
        "maxBsonObjectSize": MAX_BSON,
        "maxMessageSizeBytes": MAX_MESSAGE,
        "maxWriteBatchSize": MAX_WRITE_BATCH,
        "localTime": datetime.datetime.now(datetime.timezone.utc),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": peer.conn_id,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": False,
        "ok": 1.0,
    })
    return reply


def cmd_ping(peer, db, cmd):
    return {"ok": 1.0}


def cmd_build_info(peer, db, cmd):
    return {"version": "6.0.0", "gitVersion": "mongo-peer (a test double)",
            "versionArray": [6, 0, 0, 0], "bits": 64, "maxBsonObjectSize": MAX_BSON,
            "ok": 1.0}


def cmd_end_sessions(peer, db, cmd):
    return {"ok": 1.0}


# ---------------------------------------------------------------------------------------
# Writes


def _write_error(i, e):
    err = {"index": i, "code": e.code, "errmsg": e.msg}
    err.update(e.extra)
    return err


def _run_statements(cmd, items, one):
    """Runs one(i, item) for each statement; ordered stops at the first error. Returns
    the writeErrors list."""
    if not isinstance(items, list):
        raise PeerError(14, "TypeMismatch", "write statements must be an array")
    if len(items) > MAX_WRITE_BATCH:
        raise PeerError(16, "InvalidLength", "too many write statements")
    ordered = cmd.get("ordered", True)
    errors = []
    for i, item in enumerate(items):
        try:
            one(i, item)
        except PeerError as e:
            errors.append(_write_error(i, e))
            if ordered:
                break
    return errors


def _reply_with_errors(reply, errors):
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


def cmd_insert(peer, db, cmd):
    ns = _ns(db, cmd, "insert")
    count = [0]

    def one(i, doc):
        if not isinstance(doc, dict):
            raise PeerError(14, "TypeMismatch", "documents must be documents")
        peer.store.insert(ns, doc)
        count[0] += 1
    errors = _run_statements(cmd, cmd.get("documents", []), one)
    return _reply_with_errors({"n": count[0]}, errors)


def _matching(peer, ns, query, sort=None, limit=0):
    """The documents of ns matching query (sorted when sort is given; only the first
    `limit` when limit > 0). Candidates come from the collection's indexes where the query
    allows (peer_store Collection.lookup), each still matched whole; a scan stops at
    `limit` once the candidates are in the sort's order already."""
    match = compile_query(query)
    c = peer.store.get(ns)
    if c is None:
        return []
    cands = c.lookup(query)
    in_order = not sort
    if sort and c.sorted_ids is not None and isinstance(sort, dict) and \
            list(sort.items()) in ([("_id", 1)], [("_id", -1)]):
        descending = sort["_id"] == -1
        if cands is None:  # every _id is a number: their sorted list is the order
            cands = c.in_id_order(descending)
        else:
            cands.sort(key=lambda d: d["_id"], reverse=descending)
        in_order = True
    docs = c.docs.values() if cands is None else cands
    if in_order and limit > 0:
        found = []
        for d in docs:
            if match(d):
                found.append(d)
                if len(found) == limit:
                    break
        return found
    found = [d for d in docs if match(d)]
    if sort:
        sort_docs(found, sort)
    return found[:limit] if limit > 0 else found


def _changed(old, new):
    """Whether the stored bytes change (MongoDB's nModified): documents unequal in Python
    surely differ; equal ones may still differ in a type (1 / 1.0 / Int64) or field order."""
    return old != new or bson.encode(old) != bson.encode(new)


def _update_one_statement(peer, ns, stmt, totals):
    _refuse(stmt, ("arrayFilters", "collation", "hint"), "update")
    q, u = stmt.get("q", {}), stmt.get("u")
    multi = bool(stmt.get("multi", False))
    if multi and not is_operator_update(u):
        raise PeerError(9, "FailedToParse", "multi update is not supported for "
                        "replacement-style update")
    found = _matching(peer, ns, q, limit=0 if multi else 1)
    for doc in found:
        new = apply_update(doc, u, inserting=False)
        totals["n"] += 1
        if _changed(doc, new):
            peer.store.replace(ns, doc, new)
            totals["nModified"] += 1
    if not found and stmt.get("upsert"):
        doc = peer.store.insert(ns, upsert_document(q, u))
        totals["n"] += 1
        return doc["_id"]
    return None


def cmd_update(peer, db, cmd):
    ns = _ns(db, cmd, "update")
    totals = {"n": 0, "nModified": 0}
    upserted = []

    def one(i, stmt):
        _id = _update_one_statement(peer, ns, stmt, totals)
        if _id is not None:
            upserted.append({"index": i, "_id": _id})
    errors = _run_statements(cmd, cmd.get("updates", []), one)
    reply = dict(totals)
    if upserted:
        reply["upserted"] = upserted
    return _reply_with_errors(reply, errors)


def cmd_delete(peer, db, cmd):
    ns = _ns(db, cmd, "delete")
    count = [0]

    def one(i, stmt):
        _refuse(stmt, ("collation", "hint"), "delete")
        limit = stmt.get("limit", 0)
        if limit not in (0, 1):
            raise PeerError(9, "FailedToParse", "delete limit must be 0 or 1")
        found = _matching(peer, ns, stmt.get("q", {}), limit=limit)
        for doc in found:
            peer.store.delete(ns, doc)
            count[0] += 1
    errors = _run_statements(cmd, cmd.get("deletes", []), one)
    return _reply_with_errors({"n": count[0]}, errors)


def cmd_find_and_modify(peer, db, cmd):
    name = "findAndModify" if "findAndModify" in cmd else "findandmodify"
    ns = _ns(db, cmd, name)
    _refuse(cmd, ("arrayFilters", "collation", "hint"), "findAndModify")
    query, update, remove = cmd.get("query", {}), cmd.get("update"), cmd.get("remove")
    if bool(remove) == (update is not None):
        raise PeerError(9, "FailedToParse", "Either an update or remove=true must be "
                        "specified")
    found = _matching(peer, ns, query, cmd.get("sort"), limit=1)
    fields = cmd.get("fields")
    if remove:
        for doc in found:
            peer.store.delete(ns, doc)
        return _fam_reply({"n": len(found)}, found[0] if found else None, fields)
    if found:
        old = found[0]
        new = apply_update(old, update, inserting=False)
        if _changed(old, new):
            peer.store.replace(ns, old, new)
        return _fam_reply({"n": 1, "updatedExisting": True},
                          new if cmd.get("new") else old, fields)
    if not cmd.get("upsert"):
        return _fam_reply({"n": 0, "updatedExisting": False}, None, fields)
    doc = peer.store.insert(ns, upsert_document(query, update))
    return _fam_reply({"n": 1, "updatedExisting": False, "upserted": doc["_id"]},
                      doc if cmd.get("new") else None, fields)


def _fam_reply(last_error, value, fields):
    return {"lastErrorObject": last_error,
            "value": project(value, fields) if value is not None else None, "ok": 1.0}


# ---------------------------------------------------------------------------------------
# Reads and cursors


class PendingCursor:
    """A reply's cursor whose batch is cut (up to batch_size documents, ~16 MB) and
    encoded by finish_reply after the peer's lock is released: a batch of 10,000
    documents takes a tenth of a second to encode, which every other command would wait
    for. Safe because stored documents are never changed in place (an update stores a new
    object): the list holds what matched when the command ran, as a snapshot."""

    def __init__(self, ns, docs, batch_size, single, field, cursor_id=0):
        self.ns, self.docs, self.batch_size = ns, docs, batch_size
        self.single, self.field, self.cursor_id = single, field, cursor_id

    def finish(self, keep):
        batch, rest = _take(self.docs, self.batch_size)
        cursor_id = 0
        if rest and not self.single:
            cursor_id = keep(self.cursor_id, self.ns, rest)
        return {"id": Int64(cursor_id), "ns": self.ns, self.field: batch}


def finish_reply(reply, keep):
    """The reply with its cursor's batch cut and encoded (see PendingCursor). keep(id,
    ns, rest) stores what is left under the lock (a new id when id is 0) and returns the
    id."""
    if isinstance(reply.get("cursor"), PendingCursor):
        reply["cursor"] = reply["cursor"].finish(keep)
    return reply


def keep_cursor(cursors, cursor_id, ns, rest):
    """Stores a cursor's remaining documents (caller holds the lock); returns its id."""
    cursor_id = cursor_id or random.randint(1, 2**62)
    cursors[cursor_id] = (ns, rest)
    return cursor_id


def _first_batch(peer, ns, docs, batch_size, single):
    """The cursor sub-document sending up to batch_size documents (at most ~16 MB) and
    keeping the rest, cut after the lock (PendingCursor)."""
    return PendingCursor(ns, docs, batch_size, single, "firstBatch")


def _take(docs, batch_size):
    """(batch, rest): up to batch_size documents and ~16 MB. The batch's documents are
    encoded here once, to measure them, and sent as those bytes (RawBSONDocument)."""
    n = len(docs) if not batch_size else min(batch_size, len(docs))
    size, batch = 0, []
    while len(batch) < n:
        raw = bson.encode(docs[len(batch)])
        size += len(raw)
        if size > MAX_BSON - 64 * 1024 and batch:
            break
        batch.append(RawBSONDocument(raw))
    return batch, docs[len(batch):]


def _int_opt(cmd, name, default=0):
    v = cmd.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
        raise PeerError(14, "TypeMismatch", "%s must be a number" % name)
    return int(v)


def cmd_find(peer, db, cmd):
    ns = _ns(db, cmd, "find")
    _refuse(cmd, ("collation", "hint", "min", "max", "returnKey", "showRecordId",
                  "tailable", "awaitData"), "find")
    limit, skip = _int_opt(cmd, "limit"), _int_opt(cmd, "skip")
    batch = _int_opt(cmd, "batchSize", DEFAULT_BATCH)
    if skip < 0 or batch < 0:
        raise PeerError(2, "BadValue", "skip and batchSize must be >= 0")
    single = bool(cmd.get("singleBatch")) or limit < 0
    limit = abs(limit)
    docs = _matching(peer, ns, cmd.get("filter", {}), cmd.get("sort"),
                     limit=skip + limit if limit else 0)[skip:]
    if limit:
        docs = docs[:limit]
        batch = min(batch, limit) if batch else limit
    docs = [project(d, cmd.get("projection")) for d in docs]
    return {"cursor": _first_batch(peer, ns, docs, batch, single), "ok": 1.0}


def cmd_get_more(peer, db, cmd):
    cursor_id = int(cmd["getMore"])
    entry = peer.cursors.pop(cursor_id, None)
    if entry is None:
        raise PeerError(43, "CursorNotFound", "cursor id %d not found" % cursor_id)
    ns, docs = entry
    if ns != "%s.%s" % (db, cmd.get("collection")):
        peer.cursors[cursor_id] = entry
        raise PeerError(13, "Unauthorized", "cursor %d belongs to %s" % (cursor_id, ns))
    return {"cursor": PendingCursor(ns, docs, _int_opt(cmd, "batchSize"), False, "nextBatch",
                                    cursor_id), "ok": 1.0}


def cmd_kill_cursors(peer, db, cmd):
    killed, missing = [], []
    for cid in cmd.get("cursors", []):
        (killed if peer.cursors.pop(int(cid), None) else missing).append(Int64(cid))
    return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [],
            "cursorsUnknown": [], "ok": 1.0}


def cmd_count(peer, db, cmd):
    ns = _ns(db, cmd, "count")
    docs = _matching(peer, ns, cmd.get("query") or {})[_int_opt(cmd, "skip"):]
    limit = abs(_int_opt(cmd, "limit"))
    return {"n": min(len(docs), limit) if limit else len(docs), "ok": 1.0}


def cmd_aggregate(peer, db, cmd):
    ns = _ns(db, cmd, "aggregate")
    _refuse(cmd, ("collation", "hint", "let", "explain"), "aggregate")
    cursor = cmd.get("cursor")
    if cursor is None:
        raise PeerError(9, "FailedToParse", "The 'cursor' option is required, except for "
                        "aggregate with the explain argument")
    if not isinstance(cursor, dict):
        raise PeerError(14, "TypeMismatch", "cursor field must be missing or an object")
    batch = _int_opt(cursor, "batchSize", DEFAULT_BATCH)
    if batch < 0:
        raise PeerError(2, "BadValue", "batchSize must be >= 0")
    docs = run_pipeline(cmd.get("pipeline"), lambda q: _matching(peer, ns, q))
    return {"cursor": _first_batch(peer, ns, docs, batch, False), "ok": 1.0}


# ---------------------------------------------------------------------------------------
# Indexes and collections


def _index_spec(ix):
    if not isinstance(ix, dict) or not isinstance(ix.get("key"), dict) or not ix["key"]:
        raise PeerError(67, "CannotCreateIndex", "index spec needs a nonempty 'key'")
    if not isinstance(ix.get("name"), str):
        raise PeerError(9, "FailedToParse", "index spec needs a 'name'")
    for f in ix:
        if f in UNSUPPORTED_INDEX_FIELDS:
            raise PeerError(197, "InvalidIndexSpecificationOption", "index option '%s' is "
                            "not supported by the test peer" % f)
        if f not in INDEX_FIELDS:
            raise PeerError(197, "InvalidIndexSpecificationOption", "The field '%s' is "
                            "not valid for an index specification" % f)
    for path, direction in ix["key"].items():
        if direction not in (1, -1):
            raise PeerError(67, "CannotCreateIndex", "the test peer supports only "
                            "ascending/descending keys (%s: %r)" % (path, direction))
    spec = {"v": 2, "key": dict(ix["key"]), "name": ix["name"]}
    if ix.get("unique"):
        spec["unique"] = True
    return spec


def cmd_create_indexes(peer, db, cmd):
    ns = _ns(db, cmd, "createIndexes")
    specs = [_index_spec(ix) for ix in cmd.get("indexes") or []]
    if not specs:
        raise PeerError(2, "BadValue", "Must specify at least one index to create")
    created_coll = peer.store.get(ns) is None
    before = len(peer.store.get_or_create(ns).indexes)
    for spec in specs:
        peer.store.create_index(ns, spec)
    after = len(peer.store.get(ns).indexes)
    reply = {"createdCollectionAutomatically": created_coll, "numIndexesBefore": before,
             "numIndexesAfter": after, "ok": 1.0}
    if before == after:
        reply["note"] = "all indexes already exist"
    return reply


def cmd_list_indexes(peer, db, cmd):
    ns = _ns(db, cmd, "listIndexes")
    c = peer.store.get(ns)
    if c is None:
        raise PeerError(26, "NamespaceNotFound", "ns does not exist: %s" % ns)
    specs = [dict(i.spec) for i in c.indexes.values()]
    return {"cursor": _first_batch(peer, ns, specs, 0, True), "ok": 1.0}


def cmd_list_collections(peer, db, cmd):
    out = [{"name": n, "type": "collection", "options": {}, "info": {"readOnly": False},
            "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}
           for n in peer.store.names(db)]
    out = [d for d in out if matches(d, cmd.get("filter") or {})]
    return {"cursor": _first_batch(peer, "%s.$cmd.listCollections" % db, out, 0, True),
            "ok": 1.0}


def cmd_drop(peer, db, cmd):
    ns = _ns(db, cmd, "drop")
    c = peer.store.get(ns)
    if c is None:
        raise PeerError(26, "NamespaceNotFound", "ns not found")
    n = len(c.indexes)
    peer.store.drop(ns)
    return {"nIndexesWas": n, "ns": ns, "ok": 1.0}


def cmd_drop_database(peer, db, cmd):
    peer.store.drop_database(db)
    return {"dropped": db, "ok": 1.0}


COMMANDS = {
    "hello": cmd_hello, "isMaster": cmd_hello, "ismaster": cmd_hello,
    "ping": cmd_ping, "buildInfo": cmd_build_info, "buildinfo": cmd_build_info,
    "endSessions": cmd_end_sessions,
    "insert": cmd_insert, "update": cmd_update, "delete": cmd_delete,
    "findAndModify": cmd_find_and_modify, "findandmodify": cmd_find_and_modify,
    "find": cmd_find, "getMore": cmd_get_more, "killCursors": cmd_kill_cursors,
    "count": cmd_count, "aggregate": cmd_aggregate, "createIndexes": cmd_create_indexes,
    "listIndexes": cmd_list_indexes, "listCollections": cmd_list_collections,
    "drop": cmd_drop, "dropDatabase": cmd_drop_database,
}


def run_command(peer, db, cmd):
    """The reply document to one command (errors included)."""
    name = next(iter(cmd), None)
    handler = COMMANDS.get(name)
    if handler is None:
        return {"ok": 0.0, "errmsg": "no such command: '%s'" % name, "code": 59,
                "codeName": "CommandNotFound"}
    try:
        return handler(peer, db, cmd)
    except PeerError as e:
        reply = {"ok": 0.0, "errmsg": e.msg, "code": e.code, "codeName": e.code_name}
        reply.update(e.extra)
        return reply
    except (KeyError, TypeError, ValueError) as e:
        return {"ok": 0.0, "errmsg": "bad command %s: %r" % (name, e), "code": 9,
                "codeName": "FailedToParse"}


__all__ = ["run_command", "finish_reply", "keep_cursor", "ObjectId"]
