"""peer_update — MongoDB update documents for the test peer: operators and replacements.

Supported (as MongoDB documents them): $set, $unset, $inc, $min, $max, $setOnInsert (only
applied when an upsert inserts), and whole-document replacement (which keeps _id).
Dotted paths create the embedded documents they need. Errors carry MongoDB's codes:
ConflictingUpdateOperators (40), ImmutableField (66), TypeMismatch (14), PathNotViable
(28), FailedToParse (9) for an unknown modifier or a mix of operators and fields.
Update pipelines (an array) are not supported and are refused.
"""

from bson.int64 import Int64

from peer_match import MISSING, PeerError, compare, deep_copy, equality_fields, get_path

OPERATORS = ("$set", "$unset", "$inc", "$min", "$max", "$setOnInsert")
INT32_MAX = 2**31 - 1


def is_operator_update(update):
    """True for {$op: {...}} updates, False for a replacement; refuses mixes."""
    if isinstance(update, list):
        raise PeerError(9, "FailedToParse", "update pipelines are not supported by the peer")
    if not isinstance(update, dict):
        raise PeerError(9, "FailedToParse", "update must be a document")
    ops = [k.startswith("$") for k in update]
    if ops and all(ops):
        return True
    if any(ops):
        raise PeerError(9, "FailedToParse", "update mixes operators and fields")
    return False


def apply_update(doc, update, inserting):
    """A new document: doc with the update applied (doc itself is left unchanged)."""
    if not is_operator_update(update):
        return _replace(doc, update)
    out = deep_copy(doc)
    _check_conflicts(update)
    for op, fields in update.items():
        if op not in OPERATORS:
            raise PeerError(9, "FailedToParse", "Unknown modifier: %s" % op)
        if not isinstance(fields, dict):
            raise PeerError(9, "FailedToParse", "Modifiers operate on fields: %s" % op)
        if op == "$setOnInsert" and not inserting:
            continue
        for path, arg in fields.items():
            _apply_one(out, op, path, arg, doc)
    return out


def _replace(doc, repl):
    if "_id" in repl and "_id" in doc and compare(repl["_id"], doc["_id"]) != 0:
        raise PeerError(66, "ImmutableField", "the (immutable) field '_id' was found to "
                        "have been altered")
    out = {"_id": doc["_id"]} if "_id" in doc else {}
    out.update((k, v) for k, v in deep_copy(repl).items() if k != "_id" or not out)
    return out


def _check_conflicts(update):
    seen = []
    for fields in update.values():
        for path in (fields if isinstance(fields, dict) else ()):
            for other in seen:
                if path == other or path.startswith(other + ".") or \
                        other.startswith(path + "."):
                    raise PeerError(40, "ConflictingUpdateOperators",
                                    "Updating the path '%s' would create a conflict at '%s'"
                                    % (path, other))
            seen.append(path)


def _apply_one(doc, op, path, arg, original):
    if path == "_id" or path.startswith("_id."):
        old = get_path(original, path)
        if op not in ("$set", "$setOnInsert") or \
                (old is not MISSING and compare(old, arg) != 0):
            raise PeerError(66, "ImmutableField", "Performing an update on the path "
                            "'_id' would modify the immutable field '_id'")
    parent, last = _parent(doc, path, create=op != "$unset")
    if parent is None:
        return
    cur = parent.get(last, MISSING)
    if op in ("$set", "$setOnInsert"):
        parent[last] = deep_copy(arg)
    elif op == "$unset":
        parent.pop(last, None)
    elif op == "$inc":
        parent[last] = _inc(cur, arg, path)
    elif cur is MISSING or (compare(arg, cur) < 0) == (op == "$min") and compare(arg, cur):
        parent[last] = deep_copy(arg)


def _parent(doc, path, create):
    parts = path.split(".")
    cur = doc
    for part in parts[:-1]:
        nxt = cur.get(part, MISSING)
        if nxt is MISSING:
            if not create:
                return None, None
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise PeerError(28, "PathNotViable", "Cannot create field '%s' in element "
                            "{%s: %r}" % (parts[-1], part, nxt))
        cur = nxt
    return cur, parts[-1]


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _inc(cur, arg, path):
    if not _is_number(arg):
        raise PeerError(14, "TypeMismatch", "Cannot increment with non-numeric argument")
    if cur is MISSING:
        return arg
    if not _is_number(cur):
        raise PeerError(14, "TypeMismatch", "Cannot apply $inc to a value of non-numeric "
                        "type at '%s'" % path)
    total = cur + arg
    if isinstance(cur, float) or isinstance(arg, float):
        return float(total)
    if isinstance(cur, Int64) or isinstance(arg, Int64) or abs(total) > INT32_MAX:
        return Int64(total)
    return int(total)


def upsert_document(query, update):
    """The document an upsert inserts: the query's equality fields, then the update
    ($setOnInsert included); a replacement instead takes the query's _id only."""
    if not is_operator_update(update):
        seed = {}
        eq = equality_fields(query)
        if "_id" in eq:
            seed["_id"] = eq["_id"]
        return apply_update(seed, update, inserting=True)
    seed = {}
    for path, value in equality_fields(query).items():
        parent, last = _parent(seed, path, create=True)
        parent[last] = deep_copy(value)
    return apply_update(seed, update, inserting=True)
