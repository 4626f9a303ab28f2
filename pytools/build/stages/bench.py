"""Stage `bench`: latency and throughput per backend and shape, with a p99 gate."""
import os

from pytools.build.stage import Stage, opt
from pytools.core.errors import CheckError


class BenchStage(Stage):
    name = "bench"
    commands = ((("bench",), "time every backend at the configured batch sizes; writes "
                 "reports/bench.{json,md}", {}),)

    def add_arguments(self, parser, run=False):
        parser.add_argument("--baseline", metavar="BENCH_JSON",
                            help="a previous bench.json: fail when p99 regresses more than "
                                 "bench.max_p99_regression_pct" if not run else
                                 "benchmark gate against a previous bench.json")
        parser.add_argument("--shape-groups", action="store_true",
                            help="time each shape group parity uses (every dynamic dimension at min, opt, "
                                 "max and a seeded point between) instead of bench.batch_sizes")

    def inputs(self, pipe, options):
        from pytools.core.hashing import sha256_file

        baseline = opt(options, "baseline")
        return dict(pipe.section("bench", "dims", "inputs"), artifacts=pipe.artifact_hashes(),
                    model_source=pipe.model_source_sha(),
                    baseline=sha256_file(baseline) if baseline and os.path.exists(baseline) else baseline,
                    shape_groups=bool(opt(options, "shape_groups")), seed=pipe.config["parity"]["inputs"]["seed"])

    def run(self, pipe, options, inputs):
        from pytools.build import bench, reports

        result = bench.run(pipe.config, pipe.wd, pipe.model(), opt(options, "baseline"), inputs["shape_groups"])
        written = reports.write_bench(result, pipe.wd)
        summary = {"results": bench.summary(result), "gate_failures": result["gate_failures"]}
        return "failed" if result["gate_failures"] else "ran", summary, written

    def verdict(self, pipe, result):
        if result.status == "failed":
            raise CheckError("benchmark gate failed: %s" % result.summary["gate_failures"][0])

    def describe(self, s):
        for backend in ("tensorrt", "onnxruntime", "torch"):
            per_batch = s.get("results", {}).get(backend, {})
            if per_batch and "skipped" not in per_batch:
                label, r = min(per_batch.items(), key=lambda kv: int(kv[1].get("batch_size", kv[0])))
                return "%s %s: p50 %.2f ms, p99 %.2f ms" % (
                    backend, label if "=" in label else "batch " + label, r["p50_ms"], r["p99_ms"])
        return ""


STAGE = BenchStage()
