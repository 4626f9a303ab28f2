"""`pytools run CONFIG`: the whole chain, with a line per stage as it finishes and a summary table."""
import os
import sys
import time

from pytools.commands import leaf
from pytools.commands._stage_text import key_numbers, line, status_text
from pytools.commands.package import SIGN_ENV
from pytools.commands.stages import add_stage_options
from pytools.console import table


def run(args):
    from pytools import config
    from pytools.pipeline import Pipeline

    started = time.monotonic()
    pipe = Pipeline(config.load(args.config), args.workdir, args.force)
    sign_key = args.sign_key or os.environ.get(SIGN_ENV) or None
    steps = [pipe.checkpoint, pipe.export, pipe.engine, pipe.parity, lambda: pipe.bench(args.baseline),
             lambda: pipe.package(args.prerelease, sign_key)]
    if not args.no_publish:
        steps.append(lambda: pipe.publish(args.channel))
    if "rollout" in pipe.config and not args.no_rollout:
        steps.append(pipe.rollout)
    results = []
    for step in steps:
        result = step()
        results.append(result)
        if not args.json:
            print(line(result), file=sys.stderr, flush=True)
    report = pipe.report().summary["path"]
    total = time.monotonic() - started
    rows = [[r.name, status_text(r), "%.2fs" % r.seconds, key_numbers(r.name, r.summary)] for r in results]
    human = table(["stage", "status", "time", "key numbers"], rows)
    human += "\n\npackage: %s\nreport:  %s\ntotal: %.2fs" % (pipe.wd.path("package"), report, total)
    data = {"config": args.config, "workdir": pipe.wd.root, "seconds": round(total, 3),
            "stages": [r.as_dict() for r in results], "report": report,
            "tracking_runs": pipe.tracker.runs()}
    return data, human


def register(subparsers):
    p = leaf(subparsers, "run", run, "run the whole chain: checkpoint (fetch or train), export, engine, "
             "parity, bench, package, publish (to the local registry unless `publish:` or "
             "$PYTOOLS_REGISTRY says otherwise), and a rollout to a simulated fleet when the config "
             "has `rollout: {simulate: N}`; unchanged stages are skipped as up to date")
    add_stage_options(p)
    p.add_argument("--prerelease", metavar="TAG", help="pre-release identifiers for the package version")
    p.add_argument("--sign-key", metavar="PEM", help="Ed25519 private key to sign the manifest "
                   "(default: $%s)" % SIGN_ENV)
    p.add_argument("--baseline", metavar="BENCH_JSON", help="benchmark gate against a previous bench.json")
    p.add_argument("--channel", help="registry channel to publish to (default: publish.channel, else dev)")
    p.add_argument("--no-publish", action="store_true", help="stop after the package; publish nothing")
    p.add_argument("--no-rollout", action="store_true",
                   help="skip the rollout to a simulated fleet that the config's `rollout:` asks for")
