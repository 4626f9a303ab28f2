"""The model's code, as the cache sees it: the sha256 of every project source file the model
module imports and the versions of the libraries that shape the artifacts.

Project files are the modules loaded from the config's folder or the model's own package (never
site-packages or the standard library). They are found by importing the model module once and
recorded in `<workdir>/state/model_code.json`; an up-to-date re-run only stats the recorded files
(hashing one whose size or mtime changed) and reads library versions from package metadata, so it
imports neither torch nor the model. A changed file, model section or library version triggers a
new discovery (an edit may have added an import). Modules imported lazily inside `forward` are not
seen: import helpers at module level.
"""
import ast
import os
import sys
import sysconfig

from pytools.build import model as model_mod
from pytools.core.files import atomic_write_json, read_json
from pytools.core.hashing import sha256_file, sha256_json
from pytools.core.workdir import STATE_DIR

RECORD = os.path.join(STATE_DIR, "model_code.json")
# Always part of the fingerprint: they turn the model into the artifacts and check them.
TOOL_LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxscript", "onnxsim", "polygraphy")
_PYTOOLS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fingerprint(config, wd):
    """{"files": {name: sha256}, "libraries": {distribution: version}} for the stage inputs."""
    path = wd.path(RECORD)
    record = read_json(path)
    fresh = _still_valid(config, record)
    if fresh is None:
        fresh = discover(config)
        if fresh.get("complete"):
            atomic_write_json(path, fresh)
    return {"files": {name: f["sha256"] for name, f in fresh["files"].items()},
            "libraries": fresh["libraries"]}


def _model_key(config):
    return sha256_json({"model": config["model"]})


def _name(config, path):
    """A file as the record names it: relative to the config's folder when inside it (a project
    copied or checked out elsewhere keeps its cache), else absolute."""
    base = os.path.realpath(config.base_dir)
    return os.path.relpath(path, base) if path.startswith(base + os.sep) else path


def _still_valid(config, record):
    """The record when nothing it covers changed, else None."""
    if not record or record.get("model_key") != _model_key(config):
        return None
    for name, entry in record["files"].items():
        now = _file_entry(os.path.join(os.path.realpath(config.base_dir), name), entry)
        if now is None or now["sha256"] != entry["sha256"]:
            return None
    if any(_version(d) != v for d, v in record["libraries"].items()):
        return None
    return record


def _file_entry(full, previous=None):
    try:
        st = os.stat(full)
    except OSError:
        return None
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        return previous
    return {"sha256": sha256_file(full), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def discover(config):
    """Import the model module and collect its project files and libraries. When the import fails
    the model file alone is hashed and nothing is recorded: the stage reports the import error."""
    import importlib

    source = model_mod.source_file(config)  # also puts the config's folder on sys.path
    module_name = config["model"]["import"].split(":")[0]
    complete = True
    try:
        module = importlib.import_module(module_name)
        roots = _project_roots(config, getattr(module, "__file__", None))
        files = sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values())
                        if isinstance(getattr(m, "__file__", None), str) and _is_project(m.__file__, roots)})
    except Exception:
        complete, files = False, [os.path.realpath(source)] if source else []
    entries = {_name(config, f): _file_entry(f) for f in files}
    return {"model_key": _model_key(config), "complete": complete,
            "files": {f: e for f, e in entries.items() if e is not None},
            "libraries": _libraries(files, module_name)}


def _project_roots(config, model_file):
    """The config's folder, and the model's own package: the folder of the top-level package
    holding the model module (`a.b.net` in a/b/net.py: a/), unless it is installed."""
    roots = [os.path.realpath(config.base_dir)]
    if model_file and not _is_installed(model_file):
        folder = os.path.dirname(os.path.realpath(model_file))
        for _ in range(config["model"]["import"].split(":")[0].count(".")):
            folder = os.path.dirname(folder)
        roots.append(folder)
    return roots


def _installed_dirs():
    paths = sysconfig.get_paths()
    return [os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]


def _is_installed(path):
    real = os.path.realpath(path)
    return ("site-packages" in real.split(os.sep) or "dist-packages" in real.split(os.sep)
            or any(real.startswith(d + os.sep) for d in _installed_dirs()))


def _is_project(path, roots):
    real = os.path.realpath(path)
    if not real.endswith(".py") or _is_installed(real) or real.startswith(_PYTOOLS_DIR + os.sep):
        return False
    return any(real.startswith(r + os.sep) for r in roots)


def _libraries(files, module_name):
    """Versions of the tool libraries and of every installed distribution a project file imports."""
    from importlib import metadata

    tops = {module_name.split(".")[0]}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                tops.add(node.module.split(".")[0])
    # packages_distributions is Python 3.10+; on the Jetson agent's 3.8 a module's distribution is
    # looked up by its own name (transformers, timm).
    by_top = getattr(metadata, "packages_distributions", dict)()
    dists = set(TOOL_LIBRARIES)
    for top in tops - set(getattr(sys, "stdlib_module_names", ())):
        dists.update(by_top.get(top, [top]))
    return {d: v for d, v in ((d, _version(d)) for d in sorted(dists)) if v is not None}
