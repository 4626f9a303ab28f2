"""The stage commands, one per entry of each stage's `commands` in the stage table
(`pytools checkpoint fetch`, `train`, `export`, `engine build`, `parity`, `bench`,
`package build`, `report`), and the lines that print a stage's result."""
import argparse

from pytools.commands import group, leaf

GROUP_HELP = {"checkpoint": "fetch the configured checkpoint (path or https URL, sha256-checked)",
              "engine": "TensorRT engines",
              "package": "write or verify a package (manifest.json + model files)"}


def add_stage_options(parser):
    parser.add_argument("config", metavar="CONFIG", help="the model's YAML config")
    parser.add_argument("--workdir", help="work directory (default: work/<model name>)")
    parser.add_argument("--force", action="store_true", help="run even when the stage is up to date")


def pipeline(args):
    from pytools.build.pipeline import Pipeline
    from pytools.core import config

    return Pipeline(config.load(args.config), args.workdir, args.force)


def status_text(result):
    if result.status == "up to date" and result.cached_status == "skipped":
        return "up to date (skipped)"
    return result.status


def line(stage, result):
    return "%-10s %-20s %6.2fs  %s" % (result.name, status_text(result), result.seconds,
                                       stage.describe(result.summary or {}))


def _handler(stage, fixed):
    def handle(args):
        options = argparse.Namespace(**dict(vars(args), **fixed))
        result = pipeline(args).run(stage.name, options)
        return result.as_dict(), line(stage, result)
    return handle


def register(subparsers):
    from pytools.build.stages import all_stages

    for stage in all_stages():
        for path, help, fixed in stage.commands:
            parent = subparsers
            for name in path[:-1]:
                parent = group(parent, name, GROUP_HELP[name])
            parser = leaf(parent, path[-1], _handler(stage, fixed), help)
            add_stage_options(parser)
            stage.add_arguments(parser)
