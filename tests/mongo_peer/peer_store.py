"""peer_store — the test peer's data: databases, collections, unique indexes, a journal.

Design: everything lives in memory under one lock held by the caller (peer_commands runs
each command under it, so every command, findAndModify included, is atomic, which is what
MongoDB guarantees for a single-document write). A collection keeps its documents in a
dict keyed by the hashable form of _id (insertion order = natural order) and, for every
unique index, a dict from the hashable key tuple to that _id key, so a duplicate is found
without a scan.

Finding candidates without a scan (Collection.lookup; the caller still runs the whole
query on each, so an index only ever narrows, never decides): a query pinning every field
of a unique index; `_id` by equality or `$in`; a plain equality or `$in` on the first
field of any index, unique or not (a FieldIndex: value -> the _ids holding it, an array
under each element too, a missing field under null); a numeric `_id` range (`$gt`...,
the change log's reads) through the sorted numeric _ids, kept while every _id is a
number. Candidates come back in natural order (each document's insertion number), as a
scan would give them. What no index covers is a full scan, as before.

Persistence (--data FILE): an append-only journal of BSON records, one per change
({op: "put", ns, doc} / {op: "del", ns, id} / {op: "index", ns, spec} / {op: "drop", ns} /
{op: "dropdb", db}), written and flushed to the OS before the command's reply is sent, so
a peer killed with SIGKILL loses nothing it acknowledged. At start the journal is
replayed, then rewritten compactly (one put per live document).
"""

import bisect
import operator
import os

import bson
from bson.codec_options import CodecOptions
from bson.objectid import ObjectId

from peer_match import MISSING, PeerError, get_path, hashable, type_rank

CODEC = CodecOptions(document_class=dict, tz_aware=True)


def dup_key_error(ns, index, doc):
    """MongoDB's duplicate key write error for doc under index."""
    values = {path: _key_value(doc, path) for path, _ in index.key}
    shown = ", ".join("%s: %s" % (k, _shown(v)) for k, v in values.items())
    return PeerError(11000, "DuplicateKey",
                     "E11000 duplicate key error collection: %s index: %s dup key: { %s }"
                     % (ns, index.name, shown),
                     {"keyPattern": dict(index.key), "keyValue": values})


def _shown(v):
    return '"%s"' % v if isinstance(v, str) else "null" if v is None else str(v)


def _key_value(doc, path):
    v = get_path(doc, path)
    return None if v is MISSING else v


class Index:
    def __init__(self, name, key, unique, spec):
        self.name = name
        self.key = key  # [(path, direction)]
        self.unique = unique
        self.spec = spec  # as listIndexes reports it
        self.entries = {}  # unique only: hashable key tuple -> _id key

    def key_of(self, doc):
        return tuple(hashable(_key_value(doc, p)) for p, _ in self.key)


class FieldIndex:
    """The first field of an index: hashable value -> {_id key: (insertion number,
    document)} of the documents holding it (an array field under the array and under each
    element; a missing field under null), for equality and $in candidates."""

    def __init__(self, path):
        self.path = path
        self.buckets = {}

    def _values(self, doc):
        v = get_path(doc, self.path)
        if v is MISSING:
            v = None
        if isinstance(v, list):
            return [hashable(v)] + [hashable(x) for x in v]
        return [hashable(v)]

    def add(self, doc, key, order):
        for hv in self._values(doc):
            self.buckets.setdefault(hv, {})[key] = (order, doc)

    def discard(self, doc, key):
        for hv in self._values(doc):
            b = self.buckets.get(hv)
            if b is not None:
                b.pop(key, None)
                if not b:
                    del self.buckets[hv]

    def keys_for(self, value):
        return self.buckets.get(hashable(value), {})


_RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


class Collection:
    def __init__(self, ns):
        self.ns = ns
        self.docs = {}
        self.order = {}  # _id key -> insertion number (natural order across replacements)
        self.next_order = 0
        self.fields = {}  # path -> FieldIndex (first field of each non-_id index)
        self.sorted_ids = []  # the numeric _ids in order, or None once one is not a number
        idx = Index("_id_", [("_id", 1)], True, {"v": 2, "key": {"_id": 1}, "name": "_id_"})
        self.indexes = {"_id_": idx}
        self.uniques = [idx]

    def unique_indexes(self):
        return self.uniques

    def check_unique(self, doc, ignore_id=None):
        """Raises the duplicate key error of the first unique index doc collides on
        (ignoring the document whose _id key is ignore_id: the one being replaced)."""
        for index in self.unique_indexes():
            owner = index.entries.get(index.key_of(doc))
            if owner is not None and owner != ignore_id:
                raise dup_key_error(self.ns, index, doc)

    def put(self, doc):
        """Inserts or replaces (same _id) a document already checked for uniqueness."""
        key = hashable(doc["_id"])
        old = self.docs.get(key)
        if old is not None:
            self._unindex(old, key)
        else:
            self.order[key] = self.next_order
            self.next_order += 1
            self._add_sorted_id(doc["_id"])
        self.docs[key] = doc
        for index in self.unique_indexes():
            index.entries[index.key_of(doc)] = key
        order = self.order[key]
        for f in self.fields.values():
            f.add(doc, key, order)

    def remove(self, doc):
        key = hashable(doc["_id"])
        self._unindex(doc, key)
        del self.docs[key]
        del self.order[key]
        if self.sorted_ids is not None:
            i = bisect.bisect_left(self.sorted_ids, doc["_id"])
            if i < len(self.sorted_ids) and self.sorted_ids[i] == doc["_id"]:
                del self.sorted_ids[i]

    def _unindex(self, doc, key):
        for index in self.unique_indexes():
            index.entries.pop(index.key_of(doc), None)
        for f in self.fields.values():
            f.discard(doc, key)

    def _add_sorted_id(self, _id):
        if self.sorted_ids is None:
            return
        if not _number(_id):
            self.sorted_ids = None  # mixed types: ranges go back to scanning
        elif not self.sorted_ids or _id >= self.sorted_ids[-1]:
            self.sorted_ids.append(_id)  # the usual case: increasing numbers
        else:
            bisect.insort(self.sorted_ids, _id)

    def add_index(self, index):
        if index.unique:
            for key, doc in self.docs.items():
                k = index.key_of(doc)
                if k in index.entries:
                    raise dup_key_error(self.ns, index, doc)
                index.entries[k] = key
        self.indexes[index.name] = index
        self.uniques = [i for i in self.indexes.values() if i.unique]
        path = index.key[0][0]
        if path != "_id" and path not in self.fields:
            f = self.fields[path] = FieldIndex(path)
            for key, doc in self.docs.items():
                f.add(doc, key, self.order[key])

    def lookup(self, query):
        """The candidate documents in natural order (the caller still runs the full
        match), or None meaning "scan everything" (see the module's comment)."""
        hit = self._unique_hit(query)
        if hit is not None:
            return hit
        hit = self._field_hit(query)
        if hit is None:
            hit = self._id_range(query.get("_id"))
        if hit is None:
            return None
        hit.sort(key=_FIRST)
        return [doc for _, doc in hit]

    def _unique_hit(self, query):
        for index in self.unique_indexes():
            vals = []
            for path, _ in index.key:
                v = query.get(path, MISSING)
                if v is MISSING or isinstance(v, (dict, list)) or v is None:
                    break
                vals.append(hashable(v))
            else:
                key = index.entries.get(tuple(vals))
                return [self.docs[key]] if key is not None else []
        return None

    def _field_hit(self, query):
        """[(insertion number, document)] from a plain equality or $in of plain values on
        _id or an indexed first field (the smallest such set)."""
        best = None
        for path, cond in query.items():
            if path != "_id" and path not in self.fields:
                continue
            values = _plain_values(cond)
            if values is None:
                continue
            if path == "_id":
                keys = {}
                for v in values:
                    k = hashable(v)
                    if k in self.docs:
                        keys[k] = (self.order[k], self.docs[k])
            elif len(values) == 1:
                keys = self.fields[path].keys_for(values[0])  # no copy: read only
            else:
                keys = {}
                for v in values:
                    keys.update(self.fields[path].keys_for(v))
            if best is None or len(keys) < len(best):
                best = keys
        return None if best is None else list(best.values())

    def _id_range(self, cond):
        """_ids within a numeric {$gt/$gte/$lt/$lte: number} on _id, in order."""
        if self.sorted_ids is None or not isinstance(cond, dict) or not cond or \
                any(op not in _RANGE_OPS or not _number(v) for op, v in cond.items()):
            return None
        lo, hi = 0, len(self.sorted_ids)
        for op, v in cond.items():
            if op == "$gt":
                lo = max(lo, bisect.bisect_right(self.sorted_ids, v))
            elif op == "$gte":
                lo = max(lo, bisect.bisect_left(self.sorted_ids, v))
            elif op == "$lt":
                hi = min(hi, bisect.bisect_left(self.sorted_ids, v))
            else:
                hi = min(hi, bisect.bisect_right(self.sorted_ids, v))
        docs, order = self.docs, self.order
        return [(order[k], docs[k]) for k in map(hashable, self.sorted_ids[lo:hi])]

    def in_id_order(self, descending):
        """Every document in _id order (only while every _id is a number), lazily."""
        ids = reversed(self.sorted_ids) if descending else iter(self.sorted_ids)
        docs = self.docs
        return (docs[hashable(v)] for v in ids)


_FIRST = operator.itemgetter(0)


def _plain_values(cond):
    """The values of a plain equality ({f: v}, {f: {$eq: v}}) or {f: {$in: [...]}} whose
    values are all plain scalars (no null, document, array: those match in other ways),
    else None."""
    if isinstance(cond, dict):
        if list(cond) == ["$eq"]:
            values = [cond["$eq"]]
        elif list(cond) == ["$in"] and isinstance(cond["$in"], list):
            values = cond["$in"]
        else:
            return None
    else:
        values = [cond]
    for v in values:
        if v is None or isinstance(v, (dict, list, tuple)) or \
                (isinstance(v, float) and v != v):
            return None
        try:
            type_rank(v)
        except PeerError:  # an unsupported value: no index, the scan refuses it
            return None
    return values


class Store:
    """All databases: {ns "db.coll": Collection}, plus the journal."""

    def __init__(self, data_path=None):
        self.colls = {}
        self.data_path = data_path
        self.journal = None
        if data_path:
            self._load(data_path)

    # -- collections

    def get(self, ns):
        return self.colls.get(ns)

    def get_or_create(self, ns):
        c = self.colls.get(ns)
        if c is None:
            c = self.colls[ns] = Collection(ns)
        return c

    def names(self, db):
        return [ns.split(".", 1)[1] for ns in self.colls if ns.split(".", 1)[0] == db]

    # -- changes (each also journaled)

    def insert(self, ns, doc):
        if "_id" not in doc:
            doc = dict([("_id", ObjectId())] + list(doc.items()))
        c = self.get_or_create(ns)
        c.check_unique(doc)
        c.put(doc)
        self._log({"op": "put", "ns": ns, "doc": doc})
        return doc

    def replace(self, ns, old, new):
        c = self.colls[ns]
        c.check_unique(new, ignore_id=hashable(old["_id"]))
        c.put(new)
        self._log({"op": "put", "ns": ns, "doc": new})

    def delete(self, ns, doc):
        self.colls[ns].remove(doc)
        self._log({"op": "del", "ns": ns, "id": doc["_id"]})

    def create_index(self, ns, spec):
        """Adds an index from its listIndexes spec; False when an equal one exists."""
        c = self.get_or_create(ns)
        key = list(spec["key"].items())
        same_name = c.indexes.get(spec["name"])
        same_key = [i for i in c.indexes.values() if i.key == key]
        if same_name is not None and same_name.key != key:
            raise PeerError(86, "IndexKeySpecsConflict", "An existing index has the same "
                            "name as the requested index but a different key: %s"
                            % spec["name"])
        if same_key:
            if bool(same_key[0].unique) != bool(spec.get("unique")) or \
                    same_key[0].name != spec["name"]:
                raise PeerError(85, "IndexOptionsConflict", "An equivalent index already "
                                "exists with a different name or options: %s"
                                % same_key[0].name)
            return False
        c.add_index(Index(spec["name"], key, bool(spec.get("unique")), spec))
        self._log({"op": "index", "ns": ns, "spec": spec})
        return True

    def drop(self, ns):
        if self.colls.pop(ns, None) is None:
            return False
        self._log({"op": "drop", "ns": ns})
        return True

    def drop_database(self, db):
        for ns in [n for n in self.colls if n.split(".", 1)[0] == db]:
            del self.colls[ns]
        self._log({"op": "dropdb", "db": db})

    # -- journal

    def _log(self, rec):
        if self.journal is not None:
            self.pending.append(bson.encode(rec, codec_options=CODEC))

    def flush(self):
        """Writes the records of the command just run (before its reply goes out)."""
        if self.journal is not None and self.pending:
            self.journal.write(b"".join(self.pending))
            self.journal.flush()
            self.pending = []

    def replay_file(self, path):
        """Loads a journal into this store (without journaling; also how tests read
        what a stopped peer holds)."""
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            for rec in _records(data):
                self._replay(rec)
        return self

    def _load(self, path):
        self.replay_file(path)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            for ns, c in self.colls.items():
                for index in c.indexes.values():
                    if index.name != "_id_":
                        f.write(bson.encode({"op": "index", "ns": ns, "spec": index.spec}))
                for doc in c.docs.values():
                    f.write(bson.encode({"op": "put", "ns": ns, "doc": doc},
                                        codec_options=CODEC))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.journal = open(path, "ab")
        self.pending = []

    def _replay(self, rec):
        op, ns = rec["op"], rec.get("ns")
        if op == "put":
            self.get_or_create(ns).put(rec["doc"])
        elif op == "del":
            c = self.colls[ns]
            c.remove(c.docs[hashable(rec["id"])])
        elif op == "index":
            self.create_index(ns, rec["spec"])
        elif op == "drop":
            self.colls.pop(ns, None)
        elif op == "dropdb":
            self.drop_database(rec["db"])


def _records(data):
    """The whole BSON records of a journal (a torn last record is dropped)."""
    i = 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i:i + 4], "little")
        if n < 5 or i + n > len(data):
            break
        yield bson.decode(data[i:i + n], codec_options=CODEC)
        i += n
