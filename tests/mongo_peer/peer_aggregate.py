"""peer_aggregate — the test peer's `aggregate` command: a pipeline of `$match` and `$group`
stages with MongoDB's semantics, what the store counts a task's executions with
(store/mongo_tasks.c, COMMANDS.md "Added by counts").

- `$match`: a query document, as `find`'s filter (the first stage takes its candidates from
  the collection's indexes, as `find` does).
- `$group`: `_id` an expression, and accumulator fields `{name: {$sum: expr}}`. An
  expression is a field path (`"$state"`), a document of expressions, or a constant; a path
  that is missing gives null as the whole `_id` and is left out of an `_id` document (so
  `{state: "$state", wave: "$wave"}` groups a document without `wave` under `{state}`,
  apart from one whose wave is null), as MongoDB does. `$sum` adds the numbers it sees
  (anything else counts 0): int32 while it fits, Int64 when a long is summed or it does not
  fit, double when a double is. Groups are equal by MongoDB's value equality (1 == 1.0).
Any other stage or accumulator is refused with MongoDB's error code, never guessed.
"""

from bson.int64 import Int64

from peer_match import MISSING, PeerError, compile_query, get_path, hashable

KNOWN_STAGES = {"$project", "$sort", "$limit", "$skip", "$unwind", "$lookup", "$count",
                "$facet", "$addFields", "$set", "$unset", "$replaceRoot", "$sortByCount",
                "$bucket", "$out", "$merge", "$sample", "$redact", "$geoNear"}
KNOWN_ACCUMULATORS = {"$avg", "$first", "$last", "$max", "$min", "$push", "$addToSet",
                      "$stdDevPop", "$stdDevSamp", "$count", "$mergeObjects"}


def _stage(spec):
    if not isinstance(spec, dict) or len(spec) != 1:
        raise PeerError(40323, "Location40323", "A pipeline stage specification object must "
                        "contain exactly one field.")
    name, arg = next(iter(spec.items()))
    if name in ("$match", "$group"):
        return name, arg
    if name in KNOWN_STAGES:
        raise PeerError(2, "BadValue", "aggregate: stage '%s' is not supported by the test "
                        "peer" % name)
    raise PeerError(40324, "Location40324", "Unrecognized pipeline stage name: '%s'" % name)


def _evaluate(doc, expr):
    """The value of expression expr on doc (MISSING for a missing path)."""
    if isinstance(expr, str) and expr.startswith("$"):
        return get_path(doc, expr[1:])
    if isinstance(expr, dict):
        if any(k.startswith("$") for k in expr):
            raise PeerError(2, "BadValue", "aggregate: expression operators are not "
                            "supported by the test peer")
        out = {}
        for k, e in expr.items():
            v = _evaluate(doc, e)
            if v is not MISSING:
                out[k] = v
        return out
    return expr


def _accumulators(spec):
    acc = {}
    for name, a in spec.items():
        if name == "_id":
            continue
        if "." in name:
            raise PeerError(40235, "Location40235", "The field name '%s' cannot contain '.'"
                            % name)
        if not isinstance(a, dict) or len(a) != 1:
            raise PeerError(40234, "Location40234", "The field '%s' must be an accumulator "
                            "object" % name)
        op, expr = next(iter(a.items()))
        if op in KNOWN_ACCUMULATORS:
            raise PeerError(2, "BadValue", "aggregate: accumulator '%s' is not supported by "
                            "the test peer" % op)
        if op != "$sum":
            raise PeerError(15952, "Location15952", "unknown group operator '%s'" % op)
        acc[name] = expr
    return acc


class _Sum:
    def __init__(self):
        self.total, self.long, self.double = 0, False, False

    def add(self, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return
        self.long |= isinstance(v, Int64)
        self.double |= isinstance(v, float)
        self.total += v

    def value(self):
        if self.double:
            return float(self.total)
        if self.long or not -2**31 <= self.total < 2**31:
            return Int64(self.total)
        return int(self.total)


def _group(docs, spec):
    if not isinstance(spec, dict) or "_id" not in spec:
        raise PeerError(15955, "Location15955", "a group specification must include an _id")
    acc = _accumulators(spec)
    groups = {}
    for d in docs:
        key = _evaluate(d, spec["_id"])
        key = None if key is MISSING else key
        g = groups.get(hashable(key))
        if g is None:
            g = groups[hashable(key)] = (key, {n: _Sum() for n in acc})
        for n, expr in acc.items():
            g[1][n].add(_evaluate(d, expr))
    out = []
    for key, sums in groups.values():
        row = {"_id": key}
        row.update((n, s.value()) for n, s in sums.items())
        out.append(row)
    return out


def run_pipeline(pipeline, first_match):
    """The documents the pipeline gives. first_match(query) -> the collection's documents
    matching query (index candidates), used for the leading $match (or {} without one)."""
    if not isinstance(pipeline, list):
        raise PeerError(14, "TypeMismatch", "'pipeline' option must be specified as an array")
    stages = [_stage(s) for s in pipeline]
    lead = 1 if stages and stages[0][0] == "$match" else 0
    docs = first_match(stages[0][1] if lead else {})
    for name, arg in stages[lead:]:
        if name == "$match":
            match = compile_query(arg)
            docs = [d for d in docs if match(d)]
        else:
            docs = _group(docs, arg)
    return docs


__all__ = ["run_pipeline"]
