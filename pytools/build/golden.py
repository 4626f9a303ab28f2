"""Golden inputs for parity, calibration and benchmarks, yielded batch by batch (memory stays flat).

Sources: an `.npz` (one array per input name, samples on axis 0), an `.npy` (single input), a
folder of images (through the config's preprocessing), or seeded random tensors of the configured
shapes. Random inputs are weaker evidence than recorded data, and the parity report says so.
"""
import os

from pytools.core import config as cfg
from pytools.core.errors import ConfigError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _np():
    # Imported on first use: an up-to-date re-run only fingerprints inputs and must not pay for numpy.
    import numpy

    return numpy


def random_feed(config, n, seed, dims=None):
    """Seeded random tensors of the configured shapes and dtypes, batch size `n`; every other
    dynamic dimension at its value in `dims` ({name: value}, default its `opt`)."""
    np = _np()
    rng = np.random.default_rng(seed)
    feed = {}
    for s in config["inputs"]:
        shape = cfg.concrete_shape(s, config, batch=n)
        for axis, dim in enumerate(s["shape"]):
            if dims and dim in dims and not (n is not None and axis == 0):
                shape[axis] = dims[dim]
        dtype = s.get("dtype", "float32")
        low, high = s.get("range", [0, 2] if dtype == "bool" else [-1, 1])
        if dtype in ("float32", "float16"):
            arr = rng.uniform(low, high, size=shape).astype(dtype)
        else:
            arr = rng.integers(int(low), int(high), size=shape, endpoint=dtype != "bool").astype(dtype)
        feed[s["name"]] = arr
    return feed


def _where(config):
    return "%s: parity.inputs.path" % config.path


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
        names = list_images(config) if spec["source"] == "images" else [config.resolve(spec["path"])]
        for name in names:
            try:
                st = os.stat(name)
            except OSError as exc:
                raise ConfigError("%s: cannot read %s: %s" % (_where(config), name, exc.strerror))
            files.append([os.path.basename(name), st.st_size, st.st_mtime_ns])
    return {"spec": spec, "files": files, "inputs": config["inputs"], "dims": config["dims"]}


class GoldenInputs:
    def __init__(self, config):
        self.config = config
        self.spec = config["parity"]["inputs"]
        self.source = self.spec["source"]
        self.inputs = config["inputs"]
        batch_dim = self.inputs[0]["shape"][0]
        # A static batch axis fixes the batch size; a dynamic one takes the configured size.
        self.batch_size = batch_dim if isinstance(batch_dim, int) else self.spec["batch_size"]
        self._arrays = None
        self._images = None
        if self.source in ("npz", "npy"):
            self._arrays = self._load_arrays()
            self.samples = len(next(iter(self._arrays.values())))
        elif self.source == "images":
            self._images = list_images(config)
            self.samples = len(self._images)
        else:
            self.samples = self.spec["samples"]

    @property
    def weak_evidence(self):
        return self.source == "random"

    def describe(self):
        text = {"random": "seeded random tensors (weaker evidence than recorded data)",
                "npz": "arrays from %s" % self.spec.get("path"), "npy": "array from %s" % self.spec.get("path"),
                "images": "images from %s" % self.spec.get("path")}[self.source]
        return {"source": self.source, "path": self.spec.get("path"), "samples": self.samples,
                "batch_size": self.batch_size, "weak_evidence": self.weak_evidence, "description": text}

    def batches(self, limit=None):
        """Yield (offset, feed) with feed an {input name: array} dict in config order."""
        total = self.samples if limit is None else min(limit, self.samples)
        for offset in range(0, total, self.batch_size):
            n = min(self.batch_size, total - offset)
            if isinstance(self.inputs[0]["shape"][0], int) and n != self.batch_size:
                return  # a static batch axis cannot take a short final batch
            yield offset, self._batch(offset, n)

    def _batch(self, offset, n):
        np = _np()
        if self._arrays is not None:
            return {s["name"]: np.ascontiguousarray(self._arrays[s["name"]][offset:offset + n]) for s in self.inputs}
        if self._images is not None:
            return {self.inputs[0]["name"]: np.stack([self._image(p) for p in self._images[offset:offset + n]])}
        return random_feed(self.config, n, [self.spec["seed"], offset])

    def _where(self):
        return _where(self.config)

    def _load_arrays(self):
        np = _np()
        path = self.config.resolve(self.spec["path"])
        try:
            if self.source == "npy":
                if len(self.inputs) != 1:
                    raise ConfigError("%s: an .npy file feeds one input; use .npz for %d inputs"
                                      % (self._where(), len(self.inputs)))
                arrays = {self.inputs[0]["name"]: np.load(path, mmap_mode="r", allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as data:
                    missing = [s["name"] for s in self.inputs if s["name"] not in data.files]
                    if missing:
                        raise ConfigError("%s: %s has no array %r (found: %s)"
                                          % (self._where(), path, missing[0], ", ".join(data.files)))
                    arrays = {s["name"]: data[s["name"]] for s in self.inputs}
        except (OSError, ValueError) as exc:
            raise ConfigError("%s: cannot read %s: %s" % (self._where(), path, exc))
        for s in self.inputs:
            arr = arrays[s["name"]]
            want = [d if isinstance(d, int) else None for d in s["shape"]]
            if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want[1:], arr.shape[1:])):
                raise ConfigError("%s: array %r has shape %s, the config expects %s"
                                  % (self._where(), s["name"], list(arr.shape), s["shape"]))
            if arr.dtype != np.dtype(s.get("dtype", "float32")):
                raise ConfigError("%s: array %r is %s, the config expects %s"
                                  % (self._where(), s["name"], arr.dtype, s.get("dtype", "float32")))
        counts = {len(a) for a in arrays.values()}
        if len(counts) != 1 or 0 in counts:
            raise ConfigError("%s: arrays must hold the same, non-zero number of samples" % self._where())
        return arrays

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
