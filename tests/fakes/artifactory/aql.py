"""The subset of Artifactory Query Language the registry (and common tooling) uses.

    items.find(<criteria JSON>)[.include("field", ...)][.sort({"$asc": [...]})][.offset(n)][.limit(n)]

Criteria: field comparisons (`"repo": "x"` or `{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte"|"$match"|
"$nmatch": value}`), properties as `"@key"`, `"$and"`/`"$or"` over lists (or objects), and
Artifactory's default of matching files only unless `"type"` says otherwise.
"""
import fnmatch
import json
import re

DEFAULT_FIELDS = ["repo", "path", "name", "type", "size", "created", "created_by", "modified",
                  "modified_by", "updated"]


class AqlError(ValueError):
    pass


def parse(text):
    """Return (criteria, include, sort, offset, limit) or raise AqlError."""
    text = text.strip()
    decoder = json.JSONDecoder()
    if not text.startswith("items.find("):
        raise AqlError("Failed to parse query: only the 'items' domain with find() is supported")
    pos = len("items.find(")
    criteria, pos = _value(decoder, text, pos, "{}")
    pos = _expect(text, pos, ")")
    include, sort, offset, limit = None, None, 0, None
    while pos < len(text):
        m = re.compile(r"\s*\.(include|sort|offset|limit)\(").match(text, pos)
        if not m:
            raise AqlError("Failed to parse query: unexpected text at %d: %r" % (pos, text[pos:pos + 20]))
        pos = m.end()
        if m.group(1) == "include":
            include = []
            while True:
                field, pos = _value(decoder, text, pos)
                include.append(field)
                pos = _skip(text, pos)
                if text[pos:pos + 1] == ",":
                    pos += 1
                    continue
                break
        else:
            value, pos = _value(decoder, text, pos)
            if m.group(1) == "sort":
                sort = value
            elif m.group(1) == "offset":
                offset = int(value)
            else:
                limit = int(value)
        pos = _expect(text, pos, ")")
    if not isinstance(criteria, dict):
        raise AqlError("Failed to parse query: find() takes a JSON object")
    return criteria, include, sort, offset, limit


def _skip(text, pos):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _value(decoder, text, pos, empty=None):
    pos = _skip(text, pos)
    if empty is not None and text[pos:pos + 1] == ")":
        return json.loads(empty), pos
    try:
        return decoder.raw_decode(text, pos)
    except ValueError as exc:
        raise AqlError("Failed to parse query: %s" % exc)


def _expect(text, pos, char):
    pos = _skip(text, pos)
    if text[pos:pos + 1] != char:
        raise AqlError("Failed to parse query: expected %r at %d" % (char, pos))
    return pos + 1


def _compare(op, actual, expected):
    if actual is None:
        return op in ("$ne", "$nmatch")
    if isinstance(actual, list):  # a multi-valued property matches if any value does
        return any(_compare(op, a, expected) for a in actual) if op not in ("$ne", "$nmatch") \
            else all(_compare(op, a, expected) for a in actual)
    if isinstance(expected, (int, float)) and not isinstance(actual, (int, float)):
        try:
            actual = float(actual)
        except ValueError:
            return False
    if op == "$eq":
        return actual == expected
    if op == "$ne":
        return actual != expected
    if op == "$match":
        return fnmatch.fnmatchcase(str(actual), str(expected))
    if op == "$nmatch":
        return not fnmatch.fnmatchcase(str(actual), str(expected))
    ops = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
           "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
    if op in ops:
        return ops[op](actual, expected)
    raise AqlError("Failed to parse query: unknown operator %s" % op)


def matches(row, criteria):
    """Does a row (AQL field dict plus 'properties' {key: [values]}) satisfy the criteria?"""
    for key, cond in criteria.items():
        if key in ("$and", "$or"):
            parts = cond if isinstance(cond, list) else [{k: v} for k, v in cond.items()]
            results = (matches(row, part) for part in parts)
            if not (all(results) if key == "$and" else any(results)):
                return False
            continue
        actual = row["properties"].get(key[1:]) if key.startswith("@") else row.get(key)
        if isinstance(cond, dict):
            if not all(_compare(op, actual, expected) for op, expected in cond.items()):
                return False
        elif not _compare("$eq", actual, cond):
            return False
    return True


def wants_type(criteria):
    """AQL returns files only unless the query names a type."""
    text = json.dumps(criteria)
    return None if '"type"' in text else "file"


def project(row, include):
    fields = DEFAULT_FIELDS if not include else [f for f in include if not f.startswith("property")]
    out = {f: row[f] for f in fields if f in row}
    if include and any(f.startswith("property") for f in include) and row["properties"]:
        out["properties"] = [{"key": k, "value": v} for k, values in sorted(row["properties"].items())
                             for v in values]
    return out


def sort_rows(rows, sort):
    if not sort:
        return rows
    for direction in ("$asc", "$desc"):
        if direction in sort:
            fields = sort[direction]
            return sorted(rows, key=lambda r: tuple(str(r.get(f, "")) for f in fields),
                          reverse=direction == "$desc")
    raise AqlError("Failed to parse query: sort takes $asc or $desc")
