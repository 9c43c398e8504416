"""peer_store — the test peer's data: databases, collections, unique indexes, a journal.

Design: everything lives in memory under one lock held by the caller (peer_commands runs
each command under it, so every command, findAndModify included, is atomic, which is what
MongoDB guarantees for a single-document write). A collection keeps its documents in a
dict keyed by the hashable form of _id (insertion order = natural order) and, for every
unique index, a dict from the hashable key tuple to that _id key, so a duplicate is found
without a scan. Non-unique indexes are recorded (listIndexes shows them) but do nothing.

Persistence (--data FILE): an append-only journal of BSON records, one per change
({op: "put", ns, doc} / {op: "del", ns, id} / {op: "index", ns, spec} / {op: "drop", ns} /
{op: "dropdb", db}), written and flushed to the OS before the command's reply is sent, so
a peer killed with SIGKILL loses nothing it acknowledged. At start the journal is
replayed, then rewritten compactly (one put per live document).
"""

import os

import bson
from bson.codec_options import CodecOptions
from bson.objectid import ObjectId

from peer_match import MISSING, PeerError, get_path, hashable

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


class Collection:
    def __init__(self, ns):
        self.ns = ns
        self.docs = {}
        idx = Index("_id_", [("_id", 1)], True, {"v": 2, "key": {"_id": 1}, "name": "_id_"})
        self.indexes = {"_id_": idx}

    def unique_indexes(self):
        return [i for i in self.indexes.values() if i.unique]

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
            self._unindex(old)
        self.docs[key] = doc
        for index in self.unique_indexes():
            index.entries[index.key_of(doc)] = key

    def remove(self, doc):
        self._unindex(doc)
        del self.docs[hashable(doc["_id"])]

    def _unindex(self, doc):
        for index in self.unique_indexes():
            index.entries.pop(index.key_of(doc), None)

    def add_index(self, index):
        if index.unique:
            for key, doc in self.docs.items():
                k = index.key_of(doc)
                if k in index.entries:
                    raise dup_key_error(self.ns, index, doc)
                index.entries[k] = key
        self.indexes[index.name] = index

    def lookup(self, query):
        """The candidate documents (the caller still runs the full match): the one the
        query pins by every field of a unique index with a plain equality, those whose _id
        is in a plain {_id: {$in: [...]}} (natural order; a batch of notice claims looks
        1000 up at once), else None meaning "scan everything"."""
        ids = query.get("_id")
        if isinstance(ids, dict) and list(ids) == ["$in"] and isinstance(ids["$in"], list) \
                and all(isinstance(v, (str, int, ObjectId)) for v in ids["$in"]):
            want = {hashable(v) for v in ids["$in"]}
            return [d for k, d in self.docs.items() if k in want]
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
