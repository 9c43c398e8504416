"""peer_match — MongoDB value ordering, query matching and projection for the test peer.

A TEST DOUBLE's query engine, not a database's: it implements the subset of MongoDB's
documented semantics that mosquitto-ota's backend uses (see COMMANDS.md) and refuses
every other operator with MongoDB's error (BadValue, code 2) rather than guessing.

Values are what pymongo's bson module decodes: dict, list, str, int / bson.int64.Int64,
float, bool, None, datetime, ObjectId, bytes / Binary. Ordering follows MongoDB's BSON
comparison order (MinKey < null < numbers < strings < objects < arrays < binData <
ObjectId < bool < date < timestamp < regex < MaxKey); numbers of any BSON type compare by
value. Comparison operators ($gt, ...) match only values of the same type bracket, as
MongoDB does. A query on a field whose value is an array matches when the array itself or
any of its elements matches (one level, as MongoDB's implicit element matching).
"""

import datetime
import functools

from bson.binary import Binary
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp


class PeerError(Exception):
    """A command error as MongoDB reports it: {ok: 0, code, codeName, errmsg}."""

    def __init__(self, code, code_name, msg, extra=None):
        super().__init__(msg)
        self.code = code
        self.code_name = code_name
        self.msg = msg
        self.extra = extra or {}


def bad_value(msg):
    return PeerError(2, "BadValue", msg)


MISSING = object()  # a field that is not there (distinct from null)


def type_rank(v):
    """MongoDB's canonical type order (the ranks are only compared with each other)."""
    r = _RANK_OF_TYPE.get(type(v))  # the usual types at once, subclasses below
    if r is not None:
        return r
    if isinstance(v, MinKey):
        return 1
    if v is None or v is MISSING:
        return 2
    if isinstance(v, bool):
        return 40
    if isinstance(v, (int, float)):
        return 10
    if isinstance(v, str):
        return 15
    if isinstance(v, dict):
        return 20
    if isinstance(v, (list, tuple)):
        return 25
    if isinstance(v, (bytes, Binary)):
        return 30
    if isinstance(v, ObjectId):
        return 35
    if isinstance(v, datetime.datetime):
        return 45
    if isinstance(v, Timestamp):
        return 47
    if isinstance(v, Regex):
        return 50
    if isinstance(v, MaxKey):
        return 127
    raise bad_value("unsupported BSON value %r" % type(v).__name__)


_RANK_OF_TYPE = {str: 15, int: 10, Int64: 10, float: 10, bool: 40, dict: 20, list: 25,
                 type(None): 2, ObjectId: 35, datetime.datetime: 45, bytes: 30}


def compare(a, b):
    """-1, 0 or 1 in MongoDB's order."""
    ra, rb = type_rank(a), type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 20:
        return _compare_docs(a, b)
    if ra == 25:
        return _compare_seqs(list(a), list(b))
    if ra in (1, 2, 127):
        return 0
    if ra == 30:
        a, b = (len(a), bytes(a)), (len(b), bytes(b))
    elif ra == 47:
        a, b = (a.time, a.inc), (b.time, b.inc)
    elif ra == 50:
        a, b = (a.pattern, a.flags), (b.pattern, b.flags)
    return (a > b) - (a < b)


def _compare_docs(a, b):
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        c = compare(va, vb) or ((ka > kb) - (ka < kb))
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def _compare_seqs(a, b):
    for x, y in zip(a, b):
        c = compare(x, y)
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def hashable(v):
    """A hashable form of a value such that equal values (in MongoDB's sense: 1 == 1.0 ==
    NumberLong(1), but true != 1) give equal forms. Used for unique index keys. (An
    ObjectId's form holds its bytes, whose hash is C's and cached.)"""
    t = type(v)
    if t is str:
        return (15, v)
    if t is int or t is Int64:
        return (10, int(v))
    if t is ObjectId:
        return (35, v.binary)
    r = type_rank(v)
    if r == 20:
        return (r, tuple((k, hashable(x)) for k, x in v.items()))
    if r == 25:
        return (r, tuple(hashable(x) for x in v))
    if r in (1, 2, 127):
        return (r,)
    if r == 30:
        return (r, bytes(v))
    if r == 10:
        return (r, float(v) if isinstance(v, float) else int(v))
    if r == 35:
        return (r, v.binary)
    return (r, v)


def get_path(doc, path):
    """The value at a dotted path, or MISSING."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


# ---------------------------------------------------------------------------------------
# Query matching


def matches(doc, query):
    """True when doc satisfies the query document."""
    return compile_query(query)(doc)


def compile_query(query):
    """The query as a predicate doc -> bool, parsed once for a whole scan (operators and
    their arguments are checked here, as MongoDB parses a filter before it runs it).
    Same semantics as matching field by field; an $in of many plain values is one set
    lookup per value instead of one comparison per argument."""
    if not isinstance(query, dict):
        raise PeerError(14, "TypeMismatch", "filter must be a document")
    tests = []
    for key, cond in query.items():
        if key.startswith("$"):
            tests.append(_compile_logical(key, cond))
        else:
            tests.append(_compile_field(key, cond))
    if len(tests) == 1:
        return tests[0]
    return lambda doc: all(t(doc) for t in tests)


def _compile_logical(op, clauses):
    if op not in ("$and", "$or", "$nor"):
        raise bad_value("unknown top level operator: %s" % op)
    if not isinstance(clauses, list) or not clauses:
        raise bad_value("%s must be a nonempty array" % op)
    preds = [compile_query(c) for c in clauses]
    if op == "$and":
        return lambda doc: all(p(doc) for p in preds)
    if op == "$or":
        return lambda doc: any(p(doc) for p in preds)
    return lambda doc: not any(p(doc) for p in preds)


def _is_operator_doc(cond):
    return isinstance(cond, dict) and cond and next(iter(cond)).startswith("$")


def _compile_field(path, cond):
    if "." in path:
        def value(doc):
            return get_path(doc, path)
    else:
        def value(doc):
            return doc.get(path, MISSING) if isinstance(doc, dict) else MISSING
    if not _is_operator_doc(cond):
        test = _compile_eq(cond)
    else:
        ops = [_compile_operator(op, arg) for op, arg in cond.items()]
        test = ops[0] if len(ops) == 1 else (lambda v: all(t(v) for t in ops))
    return lambda doc: test(value(doc))


def _candidates(value):
    """The value and, for an array, each of its elements (implicit element matching)."""
    if isinstance(value, list):
        return [value] + value
    return [value]


def _eq(value, arg):
    if arg is None:  # {f: null} matches null and missing fields
        return any(v is None or v is MISSING for v in _candidates(value))
    return any(v is not MISSING and compare(v, arg) == 0 for v in _candidates(value))


# Plain values whose equality in MongoDB's sense is equality of their hashable() forms
# (numbers across types by value, strings bytewise, ObjectIds, bools, dates).
_SET_RANKS = (10, 15, 35, 40, 45)


def _plain(v):
    return not isinstance(v, (dict, list, tuple)) and v is not None and v is not MISSING \
        and type_rank(v) in _SET_RANKS and v == v  # (NaN is left to compare())


def _compile_eq(arg):
    if isinstance(arg, str):  # the usual case: a key, a VIN, a state
        def eq_str(value):
            if isinstance(value, list):
                return any(isinstance(v, str) and v == arg for v in value)
            return isinstance(value, str) and value == arg
        return eq_str
    return lambda value: _eq(value, arg)


def _compile_in(arg):
    """$in's test: plain values through a set, the others (null, documents, arrays,
    binary...) one by one as _eq does."""
    plain = {hashable(a) for a in arg if _plain(a)}
    rest = [a for a in arg if not _plain(a)]

    def found(value):
        for v in _candidates(value):
            if _plain(v) and hashable(v) in plain:
                return True
        return any(_eq(value, a) for a in rest)
    return found


def _compile_operator(op, arg):
    if op == "$eq":
        return _compile_eq(arg)
    if op == "$ne":
        eq = _compile_eq(arg)
        return lambda v: not eq(v)
    if op in _COMPARISONS:
        ok = _COMPARISONS[op]
        type_rank(arg)  # an unsupported value is refused before any document is read
        return lambda v: _cmp(v, arg, ok)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise bad_value("%s needs an array" % op)
        found = _compile_in(arg)
        return found if op == "$in" else (lambda v: not found(v))
    if op == "$exists":
        return lambda v: (v is not MISSING) == bool(arg)
    raise bad_value("unknown operator: %s" % op)


def _cmp(value, arg, ok):
    """Comparison inside arg's type bracket (MongoDB never matches across types)."""
    rank = type_rank(arg)
    for v in _candidates(value):
        if v is MISSING:
            if arg is None and ok(0):  # $gte/$lte null match missing
                return True
            continue
        if type_rank(v) == rank and ok(compare(v, arg)):
            return True
    return False


_COMPARISONS = {
    "$gt": lambda c: c > 0,
    "$gte": lambda c: c >= 0,
    "$lt": lambda c: c < 0,
    "$lte": lambda c: c <= 0,
}


def equality_fields(query):
    """{path: value} of the query's plain equalities (top level, $eq, and inside $and):
    what an upsert copies into the new document."""
    out = {}
    for key, cond in query.items():
        if key == "$and" and isinstance(cond, list):
            for c in cond:
                out.update(equality_fields(c))
        elif key.startswith("$"):
            continue
        elif not _is_operator_doc(cond):
            out[key] = cond
        elif "$eq" in cond:
            out[key] = cond["$eq"]
    return out


# ---------------------------------------------------------------------------------------
# Sort and projection


def sort_docs(docs, spec):
    """Sorts in place by a sort document {path: 1 | -1, ...}; stable, like MongoDB's
    order for equal keys is unspecified but deterministic here (natural order). One
    stable pass per key, the last key first (so the first key decides, ties keep the next
    key's order, then natural order)."""
    if not spec:
        return docs
    keys = list(spec.items())
    for path, direction in keys:
        if direction not in (1, -1):
            raise bad_value("bad sort direction for %s: %r" % (path, direction))
    for path, direction in reversed(keys):
        docs.sort(key=_pass_key(docs, path), reverse=direction == -1)
    return docs


_KEYED_RANKS = (2, 10, 15, 35, 40, 45)  # null / missing, numbers, strings, ObjectIds...


def _pass_key(docs, path):
    """A sort key for one path: (type rank, the value itself) when every value is one
    Python orders as MongoDB does (no NaN), else MongoDB's compare() for every value."""
    def value(d):
        return _sort_value(get_path(d, path))
    for d in docs:
        v = value(d)
        r = type_rank(v)
        if r not in _KEYED_RANKS or (r == 10 and v != v):
            by_compare = functools.cmp_to_key(compare)
            return lambda d: by_compare(value(d))

    def key(d):
        v = value(d)
        r = type_rank(v)
        return (r, 0 if r == 2 else v.binary if r == 35 else v)
    return key


def _sort_value(v):
    return None if v is MISSING else v


def project(doc, projection):
    """Inclusion ({a: 1, b: 1}, _id kept unless {_id: 0}) or exclusion ({a: 0}) of
    top-level and dotted fields."""
    if not projection:
        return doc
    flags = {k: bool(v) for k, v in projection.items()}
    inclusive = any(v for k, v in flags.items() if k != "_id")
    if inclusive and any(not v for k, v in flags.items() if k != "_id"):
        raise PeerError(31254, "Location31254", "cannot mix inclusion and exclusion")
    if inclusive:
        out = {}
        if flags.get("_id", True) and "_id" in doc:
            out["_id"] = doc["_id"]
        for path, keep in flags.items():
            if keep and path != "_id":
                _copy_path(doc, out, path)
        return out
    out = deep_copy(doc)
    for path, keep in flags.items():
        if not keep:
            _remove_path(out, path)
    return out


def _copy_path(src, dst, path):
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(src, dict) or not isinstance(src.get(part), dict):
            return
        src = src[part]
        dst = dst.setdefault(part, {})
    if isinstance(src, dict) and parts[-1] in src:
        dst[parts[-1]] = src[parts[-1]]


def _remove_path(doc, path):
    parts = path.split(".")
    for part in parts[:-1]:
        doc = doc.get(part) if isinstance(doc, dict) else None
    if isinstance(doc, dict):
        doc.pop(parts[-1], None)


def deep_copy(v):
    if isinstance(v, dict):
        return {k: deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deep_copy(x) for x in v]
    return v
