"""Benchmark: per backend and batch size, warm-up then timed iterations; p50/p90/p99 latency and
throughput. An optional gate fails when p99 regresses by more than a set percentage against a
previous result. Benchmarks time shapes, not data, so inputs are seeded random tensors. Keep this module Python 3.8 compatible: it runs on the Jetson agent.
"""
import time

import numpy as np

from pytools.backends import BackendUnavailable, open_runner
from pytools.build.golden import random_feed
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


def run(config, wd, model, baseline=None):
    spec = config["bench"]
    sizes = batch_sizes(config)
    if not sizes:
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
            for batch in sizes:
                ms = time_runner(runner, random_feed(config, batch, 0), spec["warmup"], spec["iterations"])
                entry["results"].append({
                    "batch_size": batch, "iterations": spec["iterations"],
                    "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                    "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
                    "throughput": batch * 1000.0 / float(ms.mean()),
                    "latencies_ms": [round(float(v), 4) for v in ms]})
        backends.append(entry)
    result = {"model": {"name": config["name"], "version": config["version"]}, "backends": backends,
              "gate_failures": []}
    if baseline:
        apply_gate(result, load_baseline(baseline), spec["max_p99_regression_pct"])
    return result


def load_baseline(path):
    try:
        data = read_json(path, strict=True)
        if data is None:
            raise PytoolsError("no such file")
        return {(b["name"], r["batch_size"]): r["p99_ms"] for b in data["backends"] for r in b["results"]}
    except (PytoolsError, KeyError, TypeError) as exc:
        raise ConfigError("bench baseline %s is not a bench.json result: %s" % (path, exc))


def apply_gate(result, baseline, max_pct):
    for b in result["backends"]:
        for r in b["results"]:
            before = baseline.get((b["name"], r["batch_size"]))
            if before is None:
                continue
            change = (r["p99_ms"] - before) / before * 100.0
            r["p99_change_pct"] = round(change, 2)
            r["gate"] = "ok" if change <= max_pct else "REGRESSED"
            if change > max_pct:
                result["gate_failures"].append(
                    "backend %s, batch %d: p99 %.3f ms is %.1f%% slower than the baseline %.3f ms (limit %g%%)"
                    % (b["name"], r["batch_size"], r["p99_ms"], change, before, max_pct))


def summary(result):
    return {b["name"]: ({"skipped": b["reason"]} if b["status"] == "skipped" else
                        {str(r["batch_size"]): {"p50_ms": round(r["p50_ms"], 3), "p99_ms": round(r["p99_ms"], 3),
                                                "throughput": round(r["throughput"], 1)} for r in b["results"]})
            for b in result["backends"]}
