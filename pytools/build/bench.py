"""Benchmark: per backend and shape, warm-up then timed iterations; p50/p90/p99 latency and
throughput. The shapes are the configured batch sizes (other dynamic dimensions at `opt`) or, with
`--shape-groups`, each shape group parity uses (min, opt, max, a seeded point between); every
result records the input shapes it timed. An optional gate fails when p99 regresses by more than a set percentage against a
previous result. Benchmarks time shapes, not data, so inputs are seeded random tensors. Keep this module Python 3.8 compatible: it runs on the Jetson agent.
"""
import time

import numpy as np

from pytools.backends import BackendUnavailable, open_runner
from pytools.build import golden
from pytools.core.errors import ConfigError, PytoolsError
from pytools.core.files import read_json


def batch_sizes(config):
    first = config["inputs"][0]["shape"][0]
    if isinstance(first, int):
        return [first]  # a static batch axis admits one size
    dim = config["dims"][first]
    return [b for b in config["bench"]["batch_sizes"] if dim["min"] <= b <= dim["max"]]


def time_runner(runner, feed, warmup, iterations):
    for _ in range(warmup):
        runner.infer(feed)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        runner.infer(feed)
        times.append(time.perf_counter() - started)
    return np.asarray(times) * 1000.0


def timed_shapes(config, shape_groups=False):
    """(label, batch size, dims) of every shape timed: the configured batch sizes with the other
    dynamic dimensions at `opt`, or (shape_groups) each random shape group parity uses."""
    if shape_groups:
        return [(g.name, g.batch, g.dims) for g in golden.random_groups(config, 1)]
    bdim = golden.batch_dim(config)
    out = []
    for batch in batch_sizes(config):
        dims = {n: config["dims"][n]["opt"] for n in golden.input_dims(config)}
        if bdim:
            dims[bdim] = batch
        out.append((",".join("%s=%d" % kv for kv in dims.items()) or "static", batch, dims))
    return out


def run(config, wd, model, baseline=None, shape_groups=False):
    spec = config["bench"]
    shapes = timed_shapes(config, shape_groups)
    if not shapes:
        raise ConfigError("%s: bench.batch_sizes: none of %s fits the batch dimension's min..max"
                          % (config.path, spec["batch_sizes"]))
    backends = []
    for name in spec["backends"]:
        entry = {"name": name, "status": "ran", "reason": None, "results": []}
        try:
            runner = open_runner(name, config, wd, model=model)
        except BackendUnavailable as exc:
            entry.update(status="skipped", reason=str(exc))
            backends.append(entry)
            continue
        with runner:
            for label, batch, dims in shapes:
                feed = golden.random_feed(config, batch, 0, dims=dims)
                ms = time_runner(runner, feed, spec["warmup"], spec["iterations"])
                entry["results"].append({
                    "label": label, "batch_size": batch, "dims": dims,
                    "shapes": {k: list(v.shape) for k, v in feed.items()}, "iterations": spec["iterations"],
                    "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                    "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
                    "throughput": batch * 1000.0 / float(ms.mean()),
                    "latencies_ms": [round(float(v), 4) for v in ms]})
        backends.append(entry)
    result = {"model": {"name": config["name"], "version": config["version"]}, "backends": backends,
              "shape_groups": bool(shape_groups), "gate_failures": []}
    if baseline:
        apply_gate(result, load_baseline(baseline), spec["max_p99_regression_pct"])
    return result


def load_baseline(path):
    try:
        data = read_json(path, strict=True)
        if data is None:
            raise PytoolsError("no such file")
        # Results are matched by shape label; a baseline from before labels by batch size.
        return {(b["name"], r.get("label", r["batch_size"])): r["p99_ms"] for b in data["backends"]
                for r in b["results"]}
    except (PytoolsError, KeyError, TypeError) as exc:
        raise ConfigError("bench baseline %s is not a bench.json result: %s" % (path, exc))


def apply_gate(result, baseline, max_pct):
    for b in result["backends"]:
        for r in b["results"]:
            before = baseline.get((b["name"], r["label"]), baseline.get((b["name"], r["batch_size"])))
            if before is None:
                continue
            change = (r["p99_ms"] - before) / before * 100.0
            r["p99_change_pct"] = round(change, 2)
            r["gate"] = "ok" if change <= max_pct else "REGRESSED"
            if change > max_pct:
                result["gate_failures"].append(
                    "backend %s, shape %s: p99 %.3f ms is %.1f%% slower than the baseline %.3f ms (limit %g%%)"
                    % (b["name"], r["label"], r["p99_ms"], change, before, max_pct))


def summary(result):
    """Per backend and batch size (the batch-size mode), or per shape label (shape groups)."""
    key = (lambda r: r["label"]) if result.get("shape_groups") else (lambda r: str(r["batch_size"]))
    return {b["name"]: ({"skipped": b["reason"]} if b["status"] == "skipped" else
                        {key(r): {"p50_ms": round(r["p50_ms"], 3), "p99_ms": round(r["p99_ms"], 3),
                                  "throughput": round(r["throughput"], 1), "batch_size": r["batch_size"],
                                  "shapes": r["shapes"]} for r in b["results"]})
            for b in result["backends"]}
