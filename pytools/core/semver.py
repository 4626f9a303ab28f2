"""Semantic Versioning 2.0.0: parsing, precedence, and npm-style ranges.

Precedence follows semver.org section 11: major.minor.patch numerically, a pre-release sorts
before its release, pre-release identifiers compare numerically when both are numeric, else
lexically in ASCII, numeric identifiers sort before alphanumeric ones, a longer list of equal
identifiers wins. Build metadata (`+...`) is ignored for precedence.

Ranges follow npm/node-semver: `1.2.3`, `=1.2.3`, `>`, `>=`, `<`, `<=`, `~1.2.3`, `^1.2`, `1.x`,
`1.2.*`, `*`, hyphen ranges `1.2 - 1.4`, space for AND, `||` for OR. As in npm, a pre-release
version satisfies a range only if some comparator of the same set names a pre-release of the
same major.minor.patch (so `^1.2.0` does not pull in `1.3.0-mr.7`).
"""
import re

from pytools.core.errors import PytoolsError

_NUM = r"0|[1-9]\d*"
_IDENT = r"(?:%s|\d*[a-zA-Z-][0-9a-zA-Z-]*)" % _NUM
# The one spelling of a version and of a model (or platform) name, as pattern strings: the
# config schema (core.config) uses them as JSON-schema patterns, parse() and the registry compile them.
SEMVER_PATTERN = (r"^(%s)\.(%s)\.(%s)(?:-(%s(?:\.%s)*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
                  % (_NUM, _NUM, _NUM, _IDENT, _IDENT))
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_VERSION_RE = re.compile(SEMVER_PATTERN)


class SemverError(PytoolsError):
    pass


class Version(object):
    """An immutable, totally ordered semantic version."""

    __slots__ = ("major", "minor", "patch", "prerelease", "build", "text")

    def __init__(self, major, minor, patch, prerelease=(), build=(), text=None):
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease, self.build = tuple(prerelease), tuple(build)
        self.text = text or self._format()

    def _format(self):
        out = "%d.%d.%d" % (self.major, self.minor, self.patch)
        if self.prerelease:
            out += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            out += "+" + ".".join(self.build)
        return out

    @property
    def is_prerelease(self):
        return bool(self.prerelease)

    @property
    def release_tuple(self):
        return (self.major, self.minor, self.patch)

    def key(self):
        """Sort key implementing SemVer precedence (build metadata ignored)."""
        if not self.prerelease:
            pre = (1,)  # a release sorts after all of its pre-releases
        else:
            # numeric identifiers (0, n) sort before alphanumeric ones (1, s)
            pre = (0,) + tuple((0, p, "") if isinstance(p, int) else (1, 0, p)
                               for p in self.prerelease)
        return (self.major, self.minor, self.patch, pre)

    def __eq__(self, other):
        return isinstance(other, Version) and self.key() == other.key()

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        return self.key() < other.key()

    def __le__(self, other):
        return self.key() <= other.key()

    def __gt__(self, other):
        return self.key() > other.key()

    def __ge__(self, other):
        return self.key() >= other.key()

    def __hash__(self):
        return hash(self.key())

    def __str__(self):
        return self.text

    def __repr__(self):
        return "Version(%r)" % self.text


def parse(text):
    """Parse a full semantic version; raise SemverError with the reason otherwise."""
    if isinstance(text, Version):
        return text
    m = _VERSION_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise SemverError("%r is not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD])" % (text,))
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    build = tuple(m.group(5).split(".")) if m.group(5) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, build, text.strip())


def is_valid(text):
    try:
        parse(text)
        return True
    except SemverError:
        return False


def sort_versions(texts):
    """Sort version strings in precedence order, oldest first (invalid ones are dropped)."""
    return [str(v) for v in sorted(v for v in (_try(t) for t in texts) if v is not None)]


def _try(text):
    try:
        return parse(text)
    except SemverError:
        return None


# -- ranges -------------------------------------------------------------------------------------

_PARTIAL_RE = re.compile(
    r"^v?(\*|x|X|%s)(?:\.(\*|x|X|%s)(?:\.(\*|x|X|%s)(?:-([0-9A-Za-z.-]+))?)?)?(?:\+[0-9A-Za-z.-]+)?$"
    % (_NUM, _NUM, _NUM))
_OP_RE = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$")


def _partial(text, spec):
    """Return (major, minor, patch, prerelease) with None for wildcard/missing parts."""
    m = _PARTIAL_RE.match(text)
    if not m:
        raise SemverError("bad version %r in range %r" % (text, spec))
    parts = [None if (p is None or p in "*xX") else int(p) for p in m.group(1, 2, 3)]
    # a wildcard makes every later part a wildcard too (`1.x.3` means `1.x`)
    for i in range(1, 3):
        if parts[i - 1] is None:
            parts[i] = None
    pre = m.group(4) if parts[2] is not None else None
    if pre is not None:
        parse("0.0.0-" + pre)  # validates the identifiers
    return parts[0], parts[1], parts[2], pre


def _v(major, minor, patch, pre=None):
    return parse("%d.%d.%d%s" % (major, minor, patch, "-" + pre if pre else ""))


def _lowest(major, minor, patch, pre):
    return _v(major, minor or 0, patch or 0, pre)


def _expand(op, text, spec):
    """One range token -> list of (operator, Version) comparators, all of which must hold."""
    major, minor, patch, pre = _partial(text, spec)
    if major is None:
        return [] if op in ("", "=", ">=", "<=", "~", "~>", "^") else [("<", _v(0, 0, 0, "0"))]
    lo = _lowest(major, minor, patch, pre)
    if op in ("", "="):
        if patch is not None:
            return [("=", lo)]
        return [(">=", lo), ("<", _v(major + 1, 0, 0, "0") if minor is None
                             else _v(major, minor + 1, 0, "0"))]
    if op in ("~", "~>"):
        hi = _v(major + 1, 0, 0, "0") if minor is None else _v(major, minor + 1, 0, "0")
        return [(">=", lo), ("<", hi)]
    if op == "^":
        if major > 0 or minor is None:
            hi = _v(major + 1, 0, 0, "0")
        elif minor > 0 or patch is None:
            hi = _v(0, minor + 1, 0, "0")
        else:
            hi = _v(0, 0, patch + 1, "0")
        return [(">=", lo), ("<", hi)]
    if op == ">":
        if patch is not None:
            return [(">", lo)]
        return [(">=", _v(major + 1, 0, 0, "0") if minor is None else _v(major, minor + 1, 0, "0"))]
    if op == "<":
        return [("<", _v(major, minor or 0, patch or 0, pre or ("0" if patch is None else None)))]
    if op == ">=":
        return [(">=", lo)]
    if op == "<=":
        if patch is not None:
            return [("<=", lo)]
        return [("<", _v(major + 1, 0, 0, "0") if minor is None else _v(major, minor + 1, 0, "0"))]
    raise SemverError("bad operator %r in range %r" % (op, spec))


_CMP = {
    "=": lambda a, b: a == b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


class Range(object):
    """A parsed range: a list of comparator sets (OR of ANDs)."""

    def __init__(self, spec):
        self.spec = spec
        self.sets = [self._parse_set(part.strip(), spec) for part in spec.split("||")]

    @staticmethod
    def _parse_set(text, spec):
        if not text:
            return []
        hyphen = re.match(r"^(\S+)\s+-\s+(\S+)$", text)
        if hyphen:
            lo = _partial(hyphen.group(1), spec)
            hi = _partial(hyphen.group(2), spec)
            comps = [] if lo[0] is None else [(">=", _lowest(*lo))]
            return comps + _expand("<=", hyphen.group(2), spec) if hi[0] is not None else comps
        # glue an operator separated from its version by spaces (`>= 1.0`)
        tokens = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", text).split()
        comps = []
        for token in tokens:
            m = _OP_RE.match(token)
            comps.extend(_expand(m.group(1) or "", m.group(2), spec))
        return comps

    def matches(self, version, include_prerelease=False):
        v = parse(version)
        for comps in self.sets:
            if not all(_CMP[op](v, bound) for op, bound in comps):
                continue
            if not v.is_prerelease or include_prerelease:
                return True
            # npm rule: a pre-release only matches a comparator naming a pre-release of the
            # same major.minor.patch (the "0" sentinel pre-releases we add don't count)
            if any(b.is_prerelease and b.prerelease != ("0",) and b.release_tuple == v.release_tuple
                   for _, b in comps):
                return True
        return False


def parse_range(spec):
    if not isinstance(spec, str) or not spec.strip():
        raise SemverError("empty version range")
    try:
        return Range(spec.strip())
    except SemverError:
        raise
    except (ValueError, AttributeError):
        raise SemverError("cannot parse version range %r" % spec)


def max_satisfying(versions, spec, include_prerelease=False):
    """The highest version in `versions` that satisfies range `spec`, or None."""
    rng = parse_range(spec)
    best = None
    for text in versions:
        v = _try(text)
        if v is not None and rng.matches(v, include_prerelease) and (best is None or v > best):
            best = v
    return best
