"""The stage commands: checkpoint fetch, train, export, engine build, parity, bench, package."""
from pytools.commands import group, leaf
from pytools.commands._stage_text import line


def add_stage_options(parser):
    parser.add_argument("config", metavar="CONFIG", help="the model's YAML config")
    parser.add_argument("--workdir", help="work directory (default: work/<model name>)")
    parser.add_argument("--force", action="store_true", help="run even when the stage is up to date")


def pipeline(args):
    from pytools import config
    from pytools.pipeline import Pipeline

    return Pipeline(config.load(args.config), args.workdir, args.force)


def result_output(result):
    return result.as_dict(), line(result)


def register(subparsers):
    ck = group(subparsers, "checkpoint", "fetch the configured checkpoint (path or https URL, sha256-checked)")
    add_stage_options(leaf(ck, "fetch", lambda a: result_output(pipeline(a).checkpoint("fetch")),
                           "copy or download checkpoint.path / checkpoint.url into the work directory, "
                           "verifying checkpoint.sha256; written atomically"))
    add_stage_options(leaf(subparsers, "train", lambda a: result_output(pipeline(a).checkpoint("train")),
                           "train the model on the built-in synthetic dataset (seeded, reproducible)"))
    add_stage_options(leaf(subparsers, "export", lambda a: result_output(pipeline(a).export()),
                           "export TorchScript and ONNX, run onnx.checker and onnxsim"))
    eng = group(subparsers, "engine", "TensorRT engines")
    add_stage_options(leaf(eng, "build", lambda a: result_output(pipeline(a).engine()),
                           "build a TensorRT plan with Polygraphy (skipped where TensorRT is not installed)"))
    add_stage_options(leaf(subparsers, "parity", lambda a: result_output(pipeline(a).parity()),
                           "compare every backend with PyTorch eager on golden inputs; "
                           "writes reports/parity.{json,xml,md}"))
    bench = leaf(subparsers, "bench", lambda a: result_output(pipeline(a).bench(a.baseline)),
                 "time every backend at the configured batch sizes; writes reports/bench.{json,md}")
    add_stage_options(bench)
    bench.add_argument("--baseline", metavar="BENCH_JSON",
                       help="a previous bench.json: fail when p99 regresses more than bench.max_p99_regression_pct")
