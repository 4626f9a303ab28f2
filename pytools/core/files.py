"""Reading and writing the JSON and other small files every area keeps (state, records, reports).

Writes go through a temporary file and a rename, so a reader never sees half a file.
"""
import json
import os

from pytools.core.errors import PytoolsError


def atomic_write_bytes(path, data):
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path, value):
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path, default=None, strict=False):
    """The JSON value in `path`; `default` when it is missing. A file that is not JSON is
    `default` too (readers of records stay tolerant), or an error with `strict`."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        if strict:
            raise PytoolsError("%s is not valid JSON: %s" % (path, exc))
        return default
