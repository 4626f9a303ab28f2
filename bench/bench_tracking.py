"""Tracking benchmark: what W&B tracking costs a build.

    python bench/bench_tracking.py [--size-mb 512] [--rounds 3]

1. Logging a stage whose output is a large engine (referenced, not uploaded) against the baseline
   the stage already pays: one sha256 of the same file. W&B checksums a `file://` reference
   (md5) and writes the run files; required: ratio tracking/sha256 <= 3.
2. Logging six small stages (the crop/weed sizes) against 1 s: the fixed per-run cost
   (wandb.init offline + finish) must stay well under a second per stage.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from pytools.core.hashing import sha256_file  # noqa: E402
from pytools.tracking.wandb_tracker import Tracker, artifact_item  # noqa: E402


def best(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        os.environ.pop(var, None)
    tmp = tempfile.mkdtemp(prefix="bench-tracking-")
    try:
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            os.environ[var] = os.path.join(tmp, var.lower())
        engine = os.path.join(tmp, "model.plan")
        with open(engine, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        small = os.path.join(tmp, "model.onnx")
        with open(small, "wb") as f:
            f.write(os.urandom(100_000))
        config = {"name": "bench-model", "version": "1.0.0"}
        tracker = Tracker(config, os.path.join(tmp, "work"))
        tracker.log_stage("warmup", "ran", {}, [], [artifact_item("onnx", small, "onnx")])  # imports, service
        digest = sha256_file(engine)
        item = artifact_item("engine", engine, "engine", sha256=digest)

        base = best(lambda: sha256_file(engine), args.rounds)
        tracked = best(lambda: tracker.log_stage("engine", "ran", {"precision": "fp16"}, [], [item]), args.rounds)
        ratio = tracked / base
        print("sha256 of %d MiB engine: %.2fs; log_stage with it by reference: %.2fs"
              % (args.size_mb, base, tracked))
        print("ratio tracking/sha256 (large engine): %.2f (<= 3 required) %s"
              % (ratio, "PASS" if ratio <= 3 else "FAIL"))

        small_item = artifact_item("onnx", small, "onnx")

        def six_stages():
            for stage in ("checkpoint", "export", "engine", "parity", "bench", "package"):
                tracker.log_stage(stage, "ran", {"n": 1}, [small_item], [small_item])

        per_stage = best(six_stages, args.rounds) / 6
        print("ratio per-stage tracking time / 1 s: %.2f (<= 0.5 required) %s"
              % (per_stage, "PASS" if per_stage <= 0.5 else "FAIL"))
        assert tracker.failed is None, tracker.failed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
