"""The model config: one YAML file per model, validated against a schema.

Every error names the file, the key path, what was found and what was expected. Unknown keys are
errors (a typo must not silently fall back to a default). Defaults are embedded here, so a config
only says what differs; `pytools config check --json FILE` prints the effective config.
"""
import copy
import os

import yaml

from pytools.core.backends import COMPARED, REGISTRY_BACKENDS, RUNNERS
from pytools.core.errors import ConfigError
from pytools.core.semver import NAME_PATTERN as NAME_RE
from pytools.core.semver import SEMVER_PATTERN as SEMVER_RE

IMPORT_RE = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$"
DTYPES = ["float32", "float16", "int64", "int32", "uint8", "bool"]
PRECISIONS = ["fp32", "fp16", "int8"]
STATISTICS = ["elementwise", "max", "mean", "median", "p99"]

# The `publish:` section (read by pytools.registry.settings).
PUBLISH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "backend": {"enum": list(REGISTRY_BACKENDS),
                    "description": "local (default) unless an Artifactory URL is configured"},
        "path": {"type": "string", "minLength": 1,
                 "description": "local registry directory (default $PYTOOLS_REGISTRY or ./work/registry)"},
        "url": {"type": "string", "pattern": "^https?://",
                "description": "Artifactory base URL, e.g. https://host/artifactory"},
        "repo_prefix": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
                        "description": "channel repositories are <prefix>-<channel>"},
        "repositories": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                         "description": "explicit channel -> repository key map"},
        "channels": {"type": "array", "minItems": 1, "uniqueItems": True,
                     "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"}},
        "channel": {"type": "string", "description": "channel that `publish` deploys to (default: first)"},
        "promote_mode": {"enum": ["copy", "move"]},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10},
        "build_name": {"type": "string", "minLength": 1,
                       "description": "Artifactory build-info name (default $JOB_NAME or the model name)"},
        "public_key": {"type": "string", "minLength": 1,
                       "description": "PEM public key: promotion requires a valid manifest signature"},
    },
}

TRACKING_MODES = ["offline", "online", "disabled"]
# The `tracking:` section (read by pytools.tracking.wandb_tracker).
TRACKING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": TRACKING_MODES, "description": "offline (default) | online (needs WANDB_API_KEY) | disabled"},
        "project": {"type": "string", "minLength": 1, "description": "W&B project (default model-cicd)"},
        "entity": {"type": "string", "minLength": 1, "description": "W&B team or user"},
        "group": {"type": "string", "minLength": 1,
                  "description": "run group (default: one per pipeline run, shared by a Jenkins build)"},
        "dir": {"type": "string", "minLength": 1,
                "description": "where run files go (default <workdir>/tracking; WANDB_DIR wins)"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "base_url": {"type": "string", "pattern": "^https?://",
                     "description": "a self-hosted W&B server (WANDB_BASE_URL wins)"},
    },
}

DEFAULTS = {
    "description": "",
    "model": {"args": {}},
    "checkpoint": {},
    "train": {"dataset": None, "epochs": 3, "batch_size": 32, "samples": 512, "lr": 0.01, "seed": 0},
    "dims": {},
    # torch.export + the dynamo ONNX exporter at opset 18 (the first opset its output passes
    # onnx.checker at); TorchScript stays on (trace) so packages keep their model.ts.
    "export": {"torchscript": "trace", "opset": 18, "exporter": "dynamo", "simplify": True},
    "engine": {"precision": "fp16", "workspace_mb": 1024, "calibration_batches": 4,
               "timing_cache": None},
    "parity": {
        "inputs": {"source": "random", "path": None, "samples": 64, "seed": 0},
        "backends": ["exported-program", "torchscript", "onnxruntime", "onnxruntime-simplified", "tensorrt"],
        "tolerances": {
            "fp32": {"atol": 1e-4, "rtol": 1e-3, "statistic": "elementwise"},
            "fp16": {"atol": 1e-2, "rtol": 1e-2, "statistic": "p99"},
            "int8": {"atol": 1e-1, "rtol": 1e-1, "statistic": "mean"},
        },
    },
    "bench": {"backends": ["torch", "torchscript", "onnxruntime", "tensorrt"],
              "batch_sizes": [1, 8], "warmup": 3, "iterations": 20,
              "max_p99_regression_pct": 10.0},
}

_tol = {"type": "object", "additionalProperties": False,
        "properties": {"atol": {"type": "number", "minimum": 0},
                       "rtol": {"type": "number", "minimum": 0},
                       "statistic": {"enum": STATISTICS}}}
_dim = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^[A-Za-z_]\w*$"}]}
_shape = {"type": "array", "minItems": 1, "items": _dim}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version", "model", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_RE},
        "version": {"type": "string", "pattern": SEMVER_RE},
        "description": {"type": "string"},
        "model": {
            "type": "object", "additionalProperties": False, "required": ["import"],
            "properties": {"import": {"type": "string", "pattern": IMPORT_RE},
                           "args": {"type": "object"}}},
        "checkpoint": {
            "type": "object", "additionalProperties": False,
            "properties": {"path": {"type": "string"}, "url": {"type": "string", "pattern": "^https?://"},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}},
        "train": {
            "type": "object", "additionalProperties": False,
            "properties": {"dataset": {"enum": [None, "crop-weed", "field-segmentation"]},
                           "epochs": {"type": "integer", "minimum": 1},
                           "batch_size": {"type": "integer", "minimum": 1},
                           "samples": {"type": "integer", "minimum": 1},
                           "lr": {"type": "number", "exclusiveMinimum": 0},
                           "seed": {"type": "integer"}}},
        "dims": {
            "type": "object",
            "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["min", "opt", "max"],
                "properties": {"min": {"type": "integer", "minimum": 1},
                               "opt": {"type": "integer", "minimum": 1},
                               "max": {"type": "integer", "minimum": 1}}}},
        "inputs": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "shape"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
                    "dtype": {"enum": DTYPES}, "shape": _shape,
                    "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                    "preprocessing": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"mean": {"type": "array", "items": {"type": "number"}},
                                       "std": {"type": "array", "items": {"type": "number"}},
                                       "scale": {"type": "number"}}}}}},
        "outputs": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
                    "dtype": {"enum": DTYPES}, "shape": _shape,
                    "kind": {"enum": ["tensor", "classifier", "mask"]},
                    "topk": {"type": "integer", "minimum": 1},
                    "tolerance": {"type": "object", "additionalProperties": False,
                                  "properties": {p: _tol for p in PRECISIONS}}}}},
        "export": {
            "type": "object", "additionalProperties": False,
            # YAML reads a bare `off` as false: both mean off.
            "properties": {"torchscript": {"enum": ["off", "trace", "script", False]},
                           "opset": {"type": "integer", "minimum": 9, "maximum": 23},
                           "exporter": {"enum": ["torchscript", "dynamo"]},
                           "simplify": {"type": "boolean"}}},
        "engine": {
            "type": "object", "additionalProperties": False,
            "properties": {"precision": {"enum": PRECISIONS},
                           "workspace_mb": {"type": "integer", "minimum": 16},
                           "calibration_batches": {"type": "integer", "minimum": 1},
                           "timing_cache": {"type": ["string", "null"]}}},
        "parity": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "inputs": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"source": {"enum": ["random", "npz", "npy", "images"]},
                                   "path": {"type": ["string", "null"]},
                                   "samples": {"type": "integer", "minimum": 1},
                                   "batch_size": {"type": "integer", "minimum": 1},
                                   "seed": {"type": "integer"}}},
                "backends": {"type": "array", "items": {"enum": COMPARED}, "uniqueItems": True},
                "tolerances": {"type": "object", "additionalProperties": False,
                               "properties": {p: _tol for p in PRECISIONS}}}},
        "bench": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "backends": {"type": "array", "uniqueItems": True,
                             "items": {"enum": list(RUNNERS)}},
                "batch_sizes": {"type": "array", "minItems": 1,
                                "items": {"type": "integer", "minimum": 1}},
                "warmup": {"type": "integer", "minimum": 0},
                "iterations": {"type": "integer", "minimum": 1},
                "max_p99_regression_pct": {"type": "number", "minimum": 0}}},
        "publish": PUBLISH_SCHEMA,
        "rollout": {
            "type": "object", "additionalProperties": False, "required": ["simulate"],
            "properties": {"simulate": {"type": "integer", "minimum": 1, "maximum": 50},
                           "waves": {"type": "string", "minLength": 1},
                           "max_failures": {"type": ["string", "integer"]}}},
        "tracking": TRACKING_SCHEMA,
    },
}


def _merge(defaults, override):
    out = copy.deepcopy(defaults)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _describe(value):
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "list", dict: "mapping"}.get(type(value), type(value).__name__)
    text = repr(value) if not isinstance(value, (dict, list)) else ""
    text = text if len(text) <= 40 else text[:37] + "..."
    return ("%s %s" % (kind, text)).strip()


def _key_path(path):
    out = ""
    for part in path:
        out += "[%d]" % part if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _error_text(err):
    """Turn a jsonschema error into 'key: found X, expected Y'."""
    where = _key_path(list(err.absolute_path))
    v, found = err.validator, err.instance
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(found) - set(allowed))
        prefix = where + "." if err.absolute_path else ""
        return "%s%s: unknown key (expected one of: %s)" % (prefix, extra[0], ", ".join(allowed))
    if v == "required":
        missing = [k for k in err.validator_value if k not in found]
        prefix = where + "." if err.absolute_path else ""
        return "%s%s: missing required key" % (prefix, missing[0])
    if v == "enum":
        return "%s: found %s, expected one of: %s" % (
            where, _describe(found), ", ".join("null" if e is None else str(e) for e in err.validator_value))
    if v == "type":
        expected = err.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return "%s: found %s, expected %s" % (where, _describe(found), expected)
    if v == "pattern":
        what = {NAME_RE: "a lower-case name ([a-z0-9._-])", SEMVER_RE: "a semantic version like 1.2.0",
                IMPORT_RE: "an import path like package.module:Class",
                "^[0-9a-f]{64}$": "64 lower-case hex digits (sha256)",
                "^https?://": "an http(s) URL"}.get(err.validator_value, "to match " + err.validator_value)
        return "%s: found %s, expected %s" % (where, _describe(found), what)
    if v in ("minimum", "maximum", "exclusiveMinimum", "minItems", "maxItems"):
        return "%s: found %s, expected %s %s" % (where, _describe(found), v, err.validator_value)
    if v == "anyOf":
        return "%s: found %s, expected a positive integer or a dimension name" % (where, _describe(found))
    return "%s: %s" % (where, err.message)


class Config(dict):
    """The effective config (defaults merged) plus where it came from."""

    path = ""
    base_dir = ""

    def resolve(self, rel):
        """A path from the config, relative to the config file's folder."""
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(self.base_dir, rel))


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError("%s: cannot read config: %s" % (path, exc.strerror))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("%s: malformed YAML%s: %s" % (path, where, problem))
    if not isinstance(raw, dict):
        raise ConfigError("%s: (top level): found %s, expected a mapping of keys" % (path, _describe(raw)))
    return validate(raw, path)


def validate(raw, path="<config>"):
    import jsonschema

    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError("%s: %s" % (path, _error_text(_most_specific(errors[0]))))
    config = Config(_merge(DEFAULTS, raw))
    config.path = path
    config.base_dir = os.path.dirname(os.path.abspath(path))
    _check_semantics(config, path)
    return config


def _most_specific(err):
    # For anyOf/oneOf, jsonschema nests the per-branch errors; the deepest one reads best.
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def _check_semantics(config, path):
    def fail(key, msg):
        raise ConfigError("%s: %s: %s" % (path, key, msg))

    if config["export"]["torchscript"] is False:
        config["export"]["torchscript"] = "off"
    ck = config["checkpoint"]
    sources = [k for k in ("path", "url") if k in ck]
    if len(sources) > 1:
        fail("checkpoint", "found both 'path' and 'url', expected one of them")
    if not sources and not config["train"].get("dataset"):
        fail("checkpoint", "no checkpoint source: expected checkpoint.path, checkpoint.url or train.dataset")
    if "url" in ck and "sha256" not in ck:
        fail("checkpoint.sha256", "missing: a downloaded checkpoint must have an expected sha256")
    names = [io["name"] for io in config["inputs"] + config["outputs"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        fail("inputs/outputs", "name %r is used twice" % dup[0])
    for i, spec in enumerate(config["inputs"]):
        for dim in spec["shape"]:
            if isinstance(dim, str) and dim not in config["dims"]:
                fail("inputs[%d].shape" % i, "dynamic dimension %r is not defined under 'dims'" % dim)
        _check_range(fail, i, spec)
        pre = spec.get("preprocessing")
        if pre and len(pre.get("mean", [])) != len(pre.get("std", pre.get("mean", []))):
            fail("inputs[%d].preprocessing" % i, "mean and std must have the same length")
    for name, dim in config["dims"].items():
        if not dim["min"] <= dim["opt"] <= dim["max"]:
            fail("dims.%s" % name, "found min %(min)d, opt %(opt)d, max %(max)d, expected min <= opt <= max" % dim)
    src = config["parity"]["inputs"]
    if "batch_size" in src:
        fail("parity.inputs.batch_size", "no longer used: parity feeds every shape group, with the batch axis "
             "at its dims min, opt, max and a seeded point between; remove the key")
    if src["source"] != "random" and not src.get("path"):
        fail("parity.inputs.path", "missing: source %r needs a path" % src["source"])
    for i, spec in enumerate(config["outputs"]):
        if spec.get("topk") and spec.get("kind") != "classifier":
            fail("outputs[%d].topk" % i, "only classifier outputs have top-k agreement")


INT_BOUNDS = {"int64": (-2 ** 63, 2 ** 63), "int32": (-2 ** 31, 2 ** 31), "uint8": (0, 256)}


def _check_range(fail, i, spec):
    """Integer inputs (token ids, class indices) have no safe default range: the config says it.
    A range is [low, high): for integers `high` itself is never drawn. Bool masks default to [0, 2)."""
    dtype = spec.get("dtype", "float32")
    key = "inputs[%d].range" % i
    if "range" not in spec:
        if dtype in INT_BOUNDS:
            fail(key, "missing: integer input %r needs the range [low, high) its values are drawn from, "
                      "e.g. [0, 30522] for token ids of a 30522-word vocabulary" % spec["name"])
        return
    low, high = spec["range"]
    if not low < high:
        fail(key, "found [%g, %g], expected low < high" % (low, high))
    if dtype in INT_BOUNDS:
        lo, hi = INT_BOUNDS[dtype]
        if low != int(low) or high != int(high) or low < lo or high > hi:
            fail(key, "found [%g, %g], expected whole numbers within %s [%d, %d)" % (low, high, dtype, lo, hi))
    if dtype == "bool" and [low, high] != [0, 2]:
        fail(key, "found [%g, %g]: a bool input draws from [0, 2); leave the range out" % (low, high))


def tolerance(config, output_name, precision):
    """Tolerance for one output at one precision: per-output override over the parity default."""
    tol = dict(config["parity"]["tolerances"][precision])
    for spec in config["outputs"]:
        if spec["name"] == output_name:
            tol.update(spec.get("tolerance", {}).get(precision, {}))
    return tol


def concrete_shape(spec, config, which="opt", batch=None):
    """A shape with every dynamic dimension replaced by a number (its opt value by default)."""
    shape = []
    for axis, dim in enumerate(spec["shape"]):
        if isinstance(dim, str):
            shape.append(batch if (batch is not None and axis == 0) else config["dims"][dim][which])
        else:
            shape.append(dim)
    return shape
