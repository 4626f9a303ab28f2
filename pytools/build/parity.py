"""Parity: run golden inputs through every backend and compare each output to PyTorch eager.

Statistics are streamed batch by batch, so memory does not grow with the number of samples:
max and mean exactly, median and p99 from a log-spaced histogram (100 bins per decade; the value
reported is the bin's upper edge, so it never understates an error by more than 2.3%).

Every shape group of the golden inputs (min, opt, max and a seeded point between of every dynamic
dimension) is compared on its own and must pass; the per-output totals pool the groups.

Pass/fail follows Polygraphy's comparator: `elementwise` fails an element when its absolute error
exceeds atol AND its relative error exceeds rtol; an aggregate statistic (max, mean, median, p99)
fails when it exceeds atol on the absolute errors AND rtol on the relative errors. Any NaN/Inf in a
backend's output where the reference is finite fails the output.
Keep this module Python 3.8 compatible: it runs on the Jetson agent.
"""
import time

import numpy as np

from pytools.core import config as cfg
from pytools.backends import BackendUnavailable, open_runner
from pytools.core.backends import REFERENCE
from pytools.core.console import Progress
from pytools.core.errors import CheckError, ConfigError
from pytools.build.golden import GoldenInputs, describe_feed

LOG_MIN, DECADES, PER_DECADE = -12, 18, 100
NBINS = DECADES * PER_DECADE
EDGES = np.concatenate([[0.0], 10.0 ** (LOG_MIN + np.arange(1, NBINS + 1) / PER_DECADE)])
TINY = 1e-30


def _bins(values):
    """Histogram bin of each non-negative finite value: 0 for values below 1e-12."""
    idx = np.floor((np.log10(np.maximum(values, 1e-13)) - LOG_MIN) * PER_DECADE).astype(np.int64) + 1
    return np.clip(idx, 0, NBINS)


class ErrorStat:
    """Streaming max / sum / histogram of one error array (absolute or relative)."""

    def __init__(self):
        self.max, self.sum, self.count = 0.0, 0.0, 0
        self.hist = np.zeros(NBINS + 1, dtype=np.int64)

    def update(self, values):
        if values.size:
            self.max = max(self.max, float(values.max()))
            self.sum += float(values.sum(dtype=np.float64))
            self.count += values.size
            self.hist += np.bincount(_bins(values), minlength=NBINS + 1)

    def quantile(self, q):
        if not self.count:
            return 0.0
        rank = int(np.ceil(q * self.count))
        b = int(np.searchsorted(np.cumsum(self.hist), max(rank, 1)))
        return min(float(EDGES[b]), self.max)

    def summary(self):
        return {"max": self.max, "mean": self.sum / self.count if self.count else 0.0,
                "median": self.quantile(0.5), "p99": self.quantile(0.99)}

    def value(self, statistic):
        return self.summary()[statistic]

    def histogram(self, per_decade=10):
        """Counts per 1/per_decade decade (upper edges), trimmed to the occupied range; for plots."""
        factor = PER_DECADE // per_decade
        coarse = np.concatenate([self.hist[:1], self.hist[1:].reshape(-1, factor).sum(axis=1)])
        edges = np.concatenate([[0.0], EDGES[factor::factor]])
        used = np.nonzero(coarse)[0]
        if not used.size:
            return {"upper_edges": [], "counts": []}
        lo, hi = used[0], used[-1] + 1
        return {"upper_edges": [float(e) for e in edges[lo:hi]], "counts": [int(c) for c in coarse[lo:hi]]}


class OutputComparison:
    """Everything parity says about one output of one backend."""

    def __init__(self, spec, tolerance):
        self.name = spec["name"]
        self.kind = spec.get("kind", "tensor")
        self.topk = spec.get("topk", 5 if self.kind == "classifier" else None)
        self.tol = tolerance
        self.abs, self.rel = ErrorStat(), ErrorStat()
        self.elements = self.nan = self.inf = self.mismatches = 0
        self.dot = self.ref_sq = self.out_sq = 0.0
        self.worst = None
        self.worst_sample = None
        self.top1 = self.topk_same = self.rows = 0
        self.error = None   # a shape mismatch or the backend's own failure: the output fails

    def fail(self, text):
        self.error = self.error or text

    @classmethod
    def merged(cls, spec, tolerance, parts):
        """One comparison over several (the shape groups of one backend and output)."""
        total = cls(spec, tolerance)
        for p in parts:
            for stat, part in ((total.abs, p.abs), (total.rel, p.rel)):
                stat.max, stat.sum, stat.count = max(stat.max, part.max), stat.sum + part.sum, stat.count + part.count
                stat.hist += part.hist
            for field in ("elements", "nan", "inf", "mismatches", "dot", "ref_sq", "out_sq", "top1",
                          "topk_same", "rows"):
                setattr(total, field, getattr(total, field) + getattr(p, field))
            if p.worst is not None and (total.worst is None or p.worst["abs_error"] > total.worst["abs_error"]):
                total.worst, total.worst_sample = p.worst, p.worst_sample
            total.error = total.error or p.error
        return total

    def update(self, ref, out, offset, group=None, wrap=None):
        """Add one batch. `offset` is the batch's first sample; `wrap` the group's sample count
        (a wrapped last batch repeats the first samples); `group` names the shape group."""
        if ref.shape != out.shape:
            self.error = self.error or "shape %s, reference %s" % (list(out.shape), list(ref.shape))
            return
        if not out.size:
            return  # shapes agree and there is nothing to compare (e.g. no detections)
        out = out.astype(np.float32, copy=False)
        ref = ref.astype(np.float32, copy=False)
        finite = np.isfinite(out)
        self.nan += int(np.isnan(out).sum())
        self.inf += int(np.isinf(out).sum())
        diff = np.abs(out - ref)
        rel = diff / np.maximum(np.abs(ref), TINY)
        good = diff[finite]
        self.abs.update(good)
        self.rel.update(rel[finite])
        self.elements += out.size
        bad = ((diff > self.tol["atol"]) & (rel > self.tol["rtol"])) | ~finite
        self.mismatches += int(bad.sum())
        flat = int(np.argmax(np.where(finite, diff, np.inf)))
        worst = float(diff.flat[flat]) if finite.flat[flat] else float("inf")
        if self.worst is None or worst > self.worst["abs_error"]:
            index = [int(i) for i in np.unravel_index(flat, out.shape)]
            # Keep the worst sample itself (one row, not the batch) for the report's plots.
            self.worst_sample = (ref[index[0]].copy(), out[index[0]].copy())
            index[0] = (index[0] + offset) % wrap if wrap else index[0] + offset
            self.worst = {"index": index, "shape_group": group, "abs_error": worst,
                          "reference": float(ref.flat[flat]), "value": float(out.flat[flat])}
        r64, o64 = ref.ravel().astype(np.float64), np.where(finite, out, 0).ravel().astype(np.float64)
        self.dot += float(r64 @ o64)
        self.ref_sq += float(r64 @ r64)
        self.out_sq += float(o64 @ o64)
        if self.kind == "classifier" and out.ndim >= 2:
            self.rows += out.shape[0]
            self.top1 += int((out.argmax(1) == ref.argmax(1)).all(axis=tuple(range(1, out.ndim - 1))).sum())
            k = min(self.topk, out.shape[1])
            top_out = np.sort(np.argsort(-out, axis=1)[:, :k], axis=1)
            top_ref = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
            self.topk_same += int((top_out == top_ref).reshape(out.shape[0], -1).all(axis=1).sum())

    def verdict(self):
        """(passed, failure text or None)."""
        statistic = self.tol["statistic"]
        if self.error:
            return False, "output %s has %s" % (self.name, self.error)
        if self.nan or self.inf:
            return False, "statistic nan/inf: %d NaN and %d Inf values where the reference is finite" % (
                self.nan, self.inf)
        if statistic == "elementwise":
            if not self.mismatches:
                return True, None
            return False, ("statistic elementwise: %d of %d elements exceed atol %g and rtol %g "
                           "(max abs error %.4g)" % (self.mismatches, self.elements, self.tol["atol"],
                                                     self.tol["rtol"], self.abs.max))
        abs_v, rel_v = self.abs.value(statistic), self.rel.value(statistic)
        if abs_v <= self.tol["atol"] or rel_v <= self.tol["rtol"]:
            return True, None
        return False, ("statistic %s: abs error %.4g > atol %g and rel error %.4g > rtol %g"
                       % (statistic, abs_v, self.tol["atol"], rel_v, self.tol["rtol"]))

    def report(self):
        passed, failure = self.verdict()
        denom = np.sqrt(self.ref_sq) * np.sqrt(self.out_sq)
        out = {"name": self.name, "passed": passed, "failure": failure, "tolerance": self.tol,
               "elements": self.elements, "abs_error": self.abs.summary(), "rel_error": self.rel.summary(),
               "cosine_similarity": float(self.dot / denom) if denom else (1.0 if self.ref_sq == self.out_sq else 0.0),
               "nan": self.nan, "inf": self.inf, "mismatches": self.mismatches, "worst": self.worst,
               "abs_error_histogram": self.abs.histogram()}
        if self.kind == "classifier" and self.rows:
            out.update({"top1_agreement": self.top1 / self.rows, "topk": self.topk,
                        "topk_agreement": self.topk_same / self.rows})
        return out


PRECISION_OF_DTYPE = {"torch.float32": "fp32", "torch.float16": "fp16"}


def model_precision(config, model):
    """The reference precision: the dtype of the model's floating parameters and buffers (fp16
    when any is float16). Float inputs must have that dtype."""
    dtypes = {str(t.dtype) for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()}
    unknown = sorted(dtypes - set(PRECISION_OF_DTYPE))
    if unknown:
        raise ConfigError("%s: model: parameters of dtype %s; parity compares float32 or float16 models"
                          % (config.path, unknown[0].replace("torch.", "")))
    precision = "fp16" if "torch.float16" in dtypes else "fp32"
    want = {"fp16": "float16", "fp32": "float32"}[precision]
    for i, spec in enumerate(config["inputs"]):
        dtype = spec.get("dtype", "float32")
        if dtype in ("float16", "float32") and dtype != want:
            raise ConfigError("%s: inputs[%d].dtype: found %s, but the model's parameters are %s: set dtype: %s"
                              % (config.path, i, dtype, want, want))
    return precision


def backend_precision(name, config, wd, reference):
    if name == "tensorrt":
        return ((wd.state("engine") or {}).get("summary") or {}).get("precision", config["engine"]["precision"])
    return reference  # ONNX and TorchScript carry the model's own dtype


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, text[0] if text else "")


def _reference_outputs(reference, config, group, feed):
    try:
        outs = reference.infer(feed)
    except Exception as exc:
        raise CheckError("%s: PyTorch eager (the reference) fails on golden inputs of shape group %s: %s; "
                         "inputs: %s" % (config.path, group.name, _one_line(exc), describe_feed(config, feed)))
    for spec, arr in zip(config["outputs"], outs):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise CheckError("model output %r contains NaN/Inf in PyTorch eager (the reference) for shape "
                             "group %s; inputs: %s" % (spec["name"], group.name, describe_feed(config, feed)))
    return outs


def run(config, wd, model):
    """Compare every configured backend to PyTorch eager at every shape group; return the report."""
    golden = GoldenInputs(config)
    precision = model_precision(config, model)
    reference = open_runner(REFERENCE, config, wd, model=model)
    backends = []
    for name in config["parity"]["backends"]:
        p = backend_precision(name, config, wd, precision)
        tols = [(o, cfg.tolerance(config, o["name"], p)) for o in config["outputs"]]
        entry = {"name": name, "precision": p, "status": "skipped", "reason": None, "seconds": 0.0,
                 "runner": None, "tolerances": tols,
                 "groups": [[OutputComparison(o, t) for o, t in tols] for _ in golden.groups]}
        try:
            entry["runner"] = open_runner(name, config, wd)
        except BackendUnavailable as exc:
            entry["reason"] = str(exc)
        backends.append(entry)
    active = [b for b in backends if b["runner"] is not None]
    progress = Progress("parity", golden.samples)
    try:
        for gi, group in enumerate(golden.groups):
            failed = set()  # backends that raised on this group: one failure, not one per batch
            for offset, feed in golden.batches(group):
                ref = _reference_outputs(reference, config, group, feed)
                for b in active:
                    if b["name"] in failed:
                        continue
                    started = time.perf_counter()
                    try:
                        outs = b["runner"].infer(feed)
                    except Exception as exc:
                        failed.add(b["name"])
                        for comparison in b["groups"][gi]:
                            comparison.fail("no result: the backend raised %s on inputs %s"
                                            % (_one_line(exc), describe_feed(config, feed)))
                        continue
                    for comparison, r, o in zip(b["groups"][gi], ref, outs):
                        comparison.update(r, o, offset, group.name, group.samples)
                    b["seconds"] += time.perf_counter() - started
                progress.update(group.batch)
    finally:
        progress.close()
        for b in active:
            b["runner"].close()
    report = _report(config, golden, backends, precision)
    report["worst_samples"] = {"%s/%s" % (b["name"], c.name): c.worst_sample for b in active
                               for c in b["outputs"] if c.worst_sample is not None}
    return report


def _report(config, golden, backends, precision):
    out_backends, failures = [], []
    samples = golden.samples
    for b in backends:
        entry = {"name": b["name"], "precision": b["precision"], "reason": b["reason"]}
        b["outputs"] = [OutputComparison.merged(o, t, [g[i] for g in b["groups"]])
                        for i, (o, t) in enumerate(b["tolerances"])]
        if b["runner"] is None:
            entry.update(status="skipped", outputs=[], shape_groups=[])
        else:
            groups = []
            for group, comparisons in zip(golden.groups, b["groups"]):
                outputs = [c.report() for c in comparisons]
                groups.append({"name": group.name, "passed": all(o["passed"] for o in outputs),
                               "outputs": outputs})
                for o in outputs:
                    if not o["passed"]:
                        failures.append("backend %s, shape group %s, output %s: %s; worst element at index %s"
                                        % (b["name"], group.name, o["name"], o["failure"],
                                           (o["worst"] or {}).get("index")))
            outputs = []
            for i, c in enumerate(b["outputs"]):
                o = c.report()
                failing = [g["name"] for g in groups if not g["outputs"][i]["passed"]]
                # The verdict is the shape groups': a pooled statistic could hide one failing group.
                o["passed"] = not failing
                o["failure"] = "fails at shape group %s" % ", ".join(failing) if failing else None
                outputs.append(o)
            ok = all(g["passed"] for g in groups)
            entry.update(status="passed" if ok else "failed", outputs=outputs, shape_groups=groups,
                         seconds=round(b["seconds"], 4),
                         samples_per_second=round(samples / b["seconds"], 2) if b["seconds"] else None)
        out_backends.append(entry)
    compared = [b for b in out_backends if b["status"] != "skipped"]
    return {"passed": not failures and bool(compared), "reference": REFERENCE, "samples": samples,
            "precision": {"reference": precision, "rule": "the dtype of the model's parameters"},
            "inputs": golden.describe(), "backends": out_backends, "failures": failures,
            "model": {"name": config["name"], "version": config["version"]}}


def summary(report):
    """The short form that goes into the manifest's evidence and the run table."""
    return {"passed": report["passed"], "samples": report["samples"],
            "precision": report["precision"]["reference"],
            "shape_groups": [g["name"] for g in report["inputs"]["shape_groups"]],
            "inputs": report["inputs"]["source"], "weak_evidence": report["inputs"]["weak_evidence"],
            "backends": {b["name"]: {"status": b["status"], "precision": b["precision"], "reason": b["reason"],
                                     "outputs": {o["name"]: {"passed": o["passed"],
                                                             "max_abs_error": o["abs_error"]["max"],
                                                             "p99_abs_error": o["abs_error"]["p99"],
                                                             "cosine_similarity": o["cosine_similarity"]}
                                                 for o in b["outputs"]}}
                         for b in report["backends"]},
            "failures": report["failures"]}
