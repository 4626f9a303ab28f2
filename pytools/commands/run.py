"""`pytools run CONFIG`: the whole chain, with a line per stage as it finishes and a summary table."""
import sys
import time

from pytools.commands import leaf
from pytools.commands.stages import add_stage_options, line, pipeline, status_text
from pytools.core.console import table


def run(args):
    started = time.monotonic()
    pipe = pipeline(args)

    def progress(stage, result):
        if stage.listed and not args.json:
            print(line(stage, result), file=sys.stderr, flush=True)

    done = pipe.chain(args, progress)
    listed = [(s, r) for s, r in done if s.listed]
    report = next(r for s, r in done if s.name == "report").summary["path"]
    total = time.monotonic() - started
    rows = [[r.name, status_text(r), "%.2fs" % r.seconds, s.describe(r.summary or {})] for s, r in listed]
    human = table(["stage", "status", "time", "key numbers"], rows)
    human += "\n\npackage: %s\nreport:  %s\ntotal: %.2fs" % (pipe.wd.path("package"), report, total)
    data = {"config": args.config, "workdir": pipe.wd.root, "seconds": round(total, 3),
            "stages": [r.as_dict() for _, r in listed], "report": report,
            "tracking_runs": pipe.tracker.runs()}
    return data, human


def register(subparsers):
    from pytools.build.stages import all_stages

    p = leaf(subparsers, "run", run, "run the whole chain: checkpoint (fetch or train), export, engine, "
             "parity, bench, package, publish (to the local registry unless `publish:` or "
             "$PYTOOLS_REGISTRY says otherwise), and a rollout to a simulated fleet when the config "
             "has `rollout: {simulate: N}`; unchanged stages are skipped as up to date")
    add_stage_options(p)
    for stage in all_stages():
        stage.add_arguments(p, run=True)
