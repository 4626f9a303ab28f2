"""Golden inputs for parity, calibration and benchmarks, as shape groups, yielded batch by batch
(memory stays flat).

Sources: an `.npz` (one array per input name, samples on axis 0; or `<group>/<input>` names for
several shape groups), an `.npy` (single input; a folder of them for several groups), a folder of
images (through the config's preprocessing), or seeded random tensors of the configured shapes.
A shape group fixes every dynamic dimension: random inputs come at min, opt, max and a seeded point
between; recorded data is fed at each of those batch sizes. Random inputs are weaker evidence than
recorded data, and the parity report says so. Layout and rules: docs/package.md, "Golden inputs".
"""
import os
import zlib

from pytools.core import config as cfg
from pytools.core.errors import ConfigError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _np():
    # Imported on first use: an up-to-date re-run only fingerprints inputs and must not pay for numpy.
    import numpy

    return numpy


INT_DTYPES = ("int64", "int32", "uint8")


def value_range(spec):
    """[low, high) of an input's random values: the configured `range`, or [0, 2) for bool masks.
    Integer inputs have no default (token ids, class indices): the config schema requires one."""
    return spec.get("range") or ([0, 2] if spec.get("dtype") == "bool" else [-1, 1])


def random_feed(config, n, seed, dims=None):
    """Seeded random tensors of the configured shapes and dtypes: batch size `n`, every other
    dynamic dimension at its value in `dims` (default: its `opt`)."""
    np = _np()
    rng = np.random.default_rng(seed)
    feed = {}
    for s in config["inputs"]:
        shape = input_shape(s, config, dims, batch=n)
        dtype = s.get("dtype", "float32")
        low, high = value_range(s)
        if dtype in ("float32", "float16"):
            arr = rng.uniform(low, high, size=shape).astype(dtype)
        else:
            arr = rng.integers(int(low), int(high), size=shape).astype(dtype)
        feed[s["name"]] = arr
    return feed


def describe_feed(config, feed):
    """The inputs of one batch as an error names them: shape, dtype, the values' span and, for
    integers, the configured range they were drawn from (so a model rejecting a value says which)."""
    parts = []
    for i, spec in enumerate(config["inputs"]):
        arr = feed[spec["name"]]
        text = "%s %s %s" % (spec["name"], arr.dtype, list(arr.shape))
        if arr.size:
            integer = arr.dtype.kind in "iub"
            text += (" values %d..%d" % (arr.min(), arr.max())) if integer else \
                (" values %.3g..%.3g" % (arr.min(), arr.max()))
            if integer and config["parity"]["inputs"]["source"] == "random" or "range" in spec:
                low, high = value_range(spec)
                text += " (inputs[%d].range [%g, %g))" % (i, low, high)
        parts.append(text)
    return "; ".join(parts)


def input_shape(spec, config, dims=None, batch=None):
    """One input's shape at the dimension values `dims` ({dim name: value}, default each `opt`);
    `batch`, when given, sets axis 0."""
    shape = cfg.concrete_shape(spec, config, batch=batch)
    for axis, dim in enumerate(spec["shape"]):
        if isinstance(dim, str) and dims and dim in dims and not (batch is not None and axis == 0):
            shape[axis] = dims[dim]
    return shape


def _where(config):
    return "%s: parity.inputs.path" % config.path


def _rows(arrays):
    return len(next(iter(arrays.values())))


def _ceil(a, b):
    return -(-a // b)


def list_images(config):
    """The image files of an `images` source, sorted by name."""
    if len(config["inputs"]) != 1:
        raise ConfigError("%s: an image folder feeds exactly one input" % _where(config))
    folder = config.resolve(config["parity"]["inputs"]["path"])
    if not os.path.isdir(folder):
        raise ConfigError("%s: %s is not a folder" % (_where(config), folder))
    images = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))
    if not images:
        raise ConfigError("%s: no images (%s) in %s" % (_where(config), ", ".join(IMAGE_EXTS), folder))
    return images


def fingerprint(config):
    """What the cache hashes: the spec, plus name/size/mtime of the files it reads. It only stats
    the files: an up-to-date run must not load arrays it will not use."""
    spec = config["parity"]["inputs"]
    files = []
    if spec["source"] != "random":
        for name in _source_files(config):
            try:
                st = os.stat(name)
            except OSError as exc:
                raise ConfigError("%s: cannot read %s: %s" % (_where(config), name, exc.strerror))
            files.append([os.path.basename(name), st.st_size, st.st_mtime_ns])
    return {"spec": spec, "files": files, "inputs": config["inputs"], "dims": config["dims"]}


def _source_files(config):
    spec = config["parity"]["inputs"]
    if spec["source"] == "images":
        return list_images(config)
    path = config.resolve(spec["path"])
    if spec["source"] == "npy" and os.path.isdir(path):
        return _npy_files(config, path)
    return [path]


def _npy_files(config, folder):
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".npy"))
    if not files:
        raise ConfigError("%s: no .npy files in %s" % (_where(config), folder))
    return files


# -- shape groups ---------------------------------------------------------------------------------

TIERS = ("min", "opt", "max", "mid")


def batch_dim(config):
    """The name of the dynamic batch axis (axis 0 of the first input), or None when it is static."""
    first = config["inputs"][0]["shape"][0]
    return first if isinstance(first, str) else None


def input_dims(config):
    """The dynamic dimensions the inputs use, in the order they first appear."""
    names = []
    for s in config["inputs"]:
        names += [d for d in s["shape"] if isinstance(d, str) and d not in names]
    return names


def tier_values(config, name):
    """{min, opt, max, mid} of one dimension; `mid` is a seeded point strictly between min and max
    (not opt when there is another choice), None when the range has no inner point."""
    np = _np()
    dim = config["dims"][name]
    lo, opt, hi = dim["min"], dim["opt"], dim["max"]
    mid = None
    if hi - lo >= 2:
        rng = np.random.default_rng([config["parity"]["inputs"]["seed"], zlib.crc32(name.encode())])
        mid = int(rng.integers(lo + 1, hi))
        if mid == opt and hi - lo > 2:
            mid = mid + 1 if mid + 1 < hi else mid - 1
    return {"min": lo, "opt": opt, "max": hi, "mid": mid}


class ShapeGroup:
    """One shape the golden inputs are fed at: a value for every dynamic dimension of the inputs.
    `tier` says which point of the batch axis (or of every axis, for random groups) it is;
    `recorded` is the key of the recorded arrays it feeds (None: seeded random tensors)."""

    def __init__(self, config, tier, dims, samples, recorded=None, source="random"):
        self.tier, self.dims, self.samples = tier, dims, samples
        self.recorded, self.source = recorded, source
        bdim = batch_dim(config)
        self.batch = dims[bdim] if bdim else config["inputs"][0]["shape"][0]
        self.name = ",".join("%s=%d" % (d, dims[d]) for d in input_dims(config)) or "static"
        if recorded:
            self.name = "%s:%s" % (recorded, self.name)
        self.shapes = {s["name"]: input_shape(s, config, dims, batch=self.batch) for s in config["inputs"]}

    def describe(self):
        return {"name": self.name, "tier": self.tier, "dims": self.dims, "shapes": self.shapes,
                "source": self.source, "recorded": self.recorded, "samples": self.samples,
                "batch_size": self.batch}


def random_groups(config, samples):
    """Every dynamic input dimension at min, opt, max and a seeded point between (all together)."""
    names = input_dims(config)
    if not names:
        return [ShapeGroup(config, "opt", {}, samples)]  # static shapes: one group
    values = {n: tier_values(config, n) for n in names}
    groups, seen = [], set()
    for tier in TIERS:
        if tier == "mid" and not any(values[n]["mid"] for n in names):
            continue
        dims = {n: values[n][tier] or values[n]["opt"] for n in names}
        key = tuple(sorted(dims.items()))
        if key not in seen:
            seen.add(key)
            groups.append(ShapeGroup(config, tier, dims, samples))
    return groups


class GoldenInputs:
    """The golden inputs of a config as shape groups (see docs/package.md, "Golden inputs").

    Recorded data (npz/npy/images) is fed at every point of the batch axis; a dimension other than
    the batch whose min or max the recorded arrays do not reach is covered by seeded random groups
    as well (and the report calls those weaker evidence). Every batch has exactly the group's batch
    size: the last one wraps around to the first samples."""

    def __init__(self, config):
        self.config = config
        self.spec = config["parity"]["inputs"]
        self.source = self.spec["source"]
        self.inputs = config["inputs"]
        self._sets = {}      # recorded key -> {input name: array}
        self._images = None
        if self.source in ("npz", "npy"):
            self._sets = self._load_sets()
        elif self.source == "images":
            self._images = list_images(config)
        self.groups = self._groups()

    def _groups(self):
        if self.source == "random":
            return random_groups(self.config, self.spec["samples"])
        bdim = batch_dim(self.config)
        tiers = {t: v for t, v in tier_values(self.config, bdim).items() if v} if bdim else {"opt": None}
        recorded = [(key, self._set_dims(key)) for key in self._sets] if self._sets else [(None, {})]
        groups, seen = [], set()
        for key, dims in recorded:
            samples = len(self._images) if self._images is not None else _rows(self._sets[key])
            for tier, value in tiers.items():
                group_dims = dict(dims, **({bdim: value} if bdim else {}))
                if tuple(sorted(group_dims.items())) + (key,) not in seen:
                    seen.add(tuple(sorted(group_dims.items())) + (key,))
                    groups.append(ShapeGroup(self.config, tier, group_dims, samples,
                                             recorded=key if len(recorded) > 1 else None, source=self.source))
        if self._uncovered([d for _, d in recorded]):
            groups += random_groups(self.config, self.spec["samples"])
        return groups

    def _uncovered(self, recorded_dims):
        """The non-batch dimensions whose min or max no recorded array reaches."""
        out = []
        for name in input_dims(self.config):
            if name == batch_dim(self.config):
                continue
            seen = {d[name] for d in recorded_dims}
            dim = self.config["dims"][name]
            if dim["min"] not in seen or dim["max"] not in seen:
                out.append(name)
        return out

    @property
    def weak_evidence(self):
        return any(g.source == "random" for g in self.groups)

    @property
    def samples(self):
        """Samples fed over all groups (a wrapped batch counts its repeated rows)."""
        return sum(_ceil(g.samples, g.batch) * g.batch for g in self.groups)

    @property
    def batch_size(self):
        return self.default_group().batch

    def default_group(self):
        """The first group at `opt` (calibration and other single-shape uses)."""
        return next((g for g in self.groups if g.tier == "opt"), self.groups[0])

    def describe(self):
        path = self.spec.get("path")
        text = {"random": "seeded random tensors (weaker evidence than recorded data)",
                "npz": "arrays from %s" % path, "npy": "arrays from %s" % path,
                "images": "images from %s" % path}[self.source]
        if self.source != "random" and self.weak_evidence:
            text += ", plus seeded random tensors where the recorded shapes do not reach a dimension's " \
                    "min or max (%s)" % ", ".join(self._uncovered([g.dims for g in self.groups
                                                                  if g.source != "random"]))
        return {"source": self.source, "path": path, "samples": self.samples,
                "weak_evidence": self.weak_evidence, "description": text,
                "shape_groups": [g.describe() for g in self.groups]}

    def batches(self, group=None, limit=None):
        """Yield (offset, feed) for one group (default: `default_group()`), feed an {input name:
        array} dict in config order, every batch exactly `group.batch` rows."""
        group = group or self.default_group()
        total = group.samples if limit is None else min(limit, group.samples)
        for offset in range(0, total, group.batch):
            yield offset, self._batch(group, offset)

    def _batch(self, group, offset):
        np = _np()
        rows = [(offset + i) % group.samples for i in range(group.batch)]
        if group.source == "random":
            return random_feed(self.config, group.batch, [self.spec["seed"], zlib.crc32(group.name.encode()), offset],
                               dims=group.dims)
        if self._images is not None:
            return {self.inputs[0]["name"]: np.stack([self._image(self._images[r]) for r in rows])}
        arrays = self._sets[group.recorded if group.recorded is not None else next(iter(self._sets))]
        return {s["name"]: np.ascontiguousarray(arrays[s["name"]][rows]) for s in self.inputs}

    def _where(self):
        return _where(self.config)

    def _load_sets(self):
        """{key: {input name: array}}: one set per recorded shape group (key None for a file that
        holds one)."""
        np = _np()
        sets = {}
        for path in _source_files(self.config):
            try:
                if self.source == "npy":
                    if len(self.inputs) != 1:
                        raise ConfigError("%s: an .npy file feeds one input; use .npz for %d inputs"
                                          % (self._where(), len(self.inputs)))
                    key = os.path.splitext(os.path.basename(path))[0] if os.path.isdir(
                        self.config.resolve(self.spec["path"])) else None
                    sets[key] = {self.inputs[0]["name"]: np.load(path, mmap_mode="r", allow_pickle=False)}
                else:
                    with np.load(path, allow_pickle=False) as data:
                        sets.update(self._npz_sets(path, data))
            except (OSError, ValueError) as exc:
                raise ConfigError("%s: cannot read %s: %s" % (self._where(), path, exc))
        for key, arrays in sets.items():
            self._check_set(key, arrays)
        if len(sets) > 1 and None in sets:
            raise ConfigError("%s: mixed single- and multi-group arrays" % self._where())
        return sets

    def _npz_sets(self, path, data):
        grouped = "/" in "".join(data.files)
        keys = sorted({n.split("/")[0] for n in data.files}) if grouped else [None]
        if grouped and not all(n.count("/") == 1 for n in data.files):
            raise ConfigError("%s: %s mixes plain and <group>/<input> array names (found: %s)"
                              % (self._where(), path, ", ".join(data.files)))
        sets = {}
        for key in keys:
            prefix = key + "/" if key else ""
            missing = [s["name"] for s in self.inputs if prefix + s["name"] not in data.files]
            if missing:
                raise ConfigError("%s: %s has no array %r (found: %s)"
                                  % (self._where(), path, prefix + missing[0], ", ".join(data.files)))
            sets[key] = {s["name"]: data[prefix + s["name"]] for s in self.inputs}
        return sets

    def _check_set(self, key, arrays):
        np = _np()
        label = "array %r" if key is None else "group %r array %%r" % key
        for s in self.inputs:
            arr = arrays[s["name"]]
            want = [d if isinstance(d, int) else None for d in s["shape"]]
            if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want[1:], arr.shape[1:])):
                raise ConfigError("%s: %s has shape %s, the config expects %s"
                                  % (self._where(), label % s["name"], list(arr.shape), s["shape"]))
            if arr.dtype != np.dtype(s.get("dtype", "float32")):
                raise ConfigError("%s: %s is %s, the config expects %s"
                                  % (self._where(), label % s["name"], arr.dtype, s.get("dtype", "float32")))
        counts = {len(a) for a in arrays.values()}
        if len(counts) != 1 or 0 in counts:
            raise ConfigError("%s: arrays must hold the same, non-zero number of samples" % self._where())
        self._set_dims(key, arrays)

    def _set_dims(self, key, arrays=None):
        """The non-batch dynamic dimensions one recorded set has, checked against `dims`."""
        arrays = arrays if arrays is not None else self._sets[key]
        dims = {}
        for s in self.inputs:
            for axis, dim in enumerate(s["shape"]):
                if not isinstance(dim, str) or axis == 0:
                    continue
                value = int(arrays[s["name"]].shape[axis])
                d = self.config["dims"][dim]
                where = "%s: %s%r axis %d (%s)" % (self._where(), "group %r array " % key if key else "array ",
                                                   s["name"], axis, dim)
                if dims.setdefault(dim, value) != value:
                    raise ConfigError("%s is %d, another input has %s = %d" % (where, value, dim, dims[dim]))
                if not d["min"] <= value <= d["max"]:
                    raise ConfigError("%s is %d, outside dims.%s %d..%d" % (where, value, dim, d["min"], d["max"]))
        return dims

    def _image(self, path):
        from PIL import Image

        np = _np()
        spec = self.inputs[0]
        channels, height, width = spec["shape"][1:]
        pre = spec.get("preprocessing") or {}
        try:
            with Image.open(path) as img:
                img = img.convert("RGB" if channels == 3 else "L").resize((width, height), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.float32)
        except OSError as exc:
            raise ConfigError("%s: cannot read image %s: %s" % (self._where(), path, exc))
        arr = arr.reshape(height, width, channels).transpose(2, 0, 1) / float(pre.get("scale", 255.0))
        if "mean" in pre:
            mean = np.asarray(pre["mean"], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(pre.get("std", [1.0] * len(pre["mean"])), dtype=np.float32).reshape(-1, 1, 1)
            arr = (arr - mean) / std
        return arr.astype(np.float32)
