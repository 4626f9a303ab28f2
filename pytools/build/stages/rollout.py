"""Stage `rollout`: the package to a freshly simulated fleet (`rollout: {simulate: N}`): real sshd
robots on loopback, approved automatically; the fleet is stopped afterwards. A real fleet is
`pytools rollout` (pytools.fleet)."""
import os

from pytools.build.stage import Stage, opt
from pytools.core.errors import CheckError
from pytools.core.workdir import PACKAGE_DIR, PACKAGE_MANIFEST


def _spec(config):
    return dict({"waves": "canary,100%", "max_failures": "0"}, **config["rollout"])


class RolloutStage(Stage):
    name = "rollout"

    def add_arguments(self, parser, run=False):
        parser.add_argument("--no-rollout", action="store_true",
                            help="skip the rollout to a simulated fleet that the config's `rollout:` asks for")

    def wanted(self, pipe, options):
        return "rollout" in pipe.config and not opt(options, "no_rollout")

    def inputs(self, pipe, options):
        pipe.wd.require("package", "run `pytools package` first")
        return {"manifest": pipe.wd.output_sha("package", PACKAGE_MANIFEST), "rollout": _spec(pipe.config)}

    def run(self, pipe, options, inputs):
        from pytools.core.files import read_json
        from pytools.fleet import simulated_rollout

        spec = inputs["rollout"]
        result = simulated_rollout(pipe.wd.path(PACKAGE_DIR), pipe.wd.root, count=spec["simulate"],
                                   waves=spec["waves"], max_failures=str(spec["max_failures"]))
        record = read_json(result["record"], strict=True)
        pipe.tracker.log_deployment(pipe.config["name"], record.get("version"), sorted(record["robots"]),
                                    result["record"])
        status = "ran" if result["state"] == "completed" else "failed"
        return status, result, [os.path.relpath(result["record"], pipe.wd.root)]

    def verdict(self, pipe, result):
        if result.status == "failed":
            raise CheckError("rollout to the simulated fleet halted: %s (record: %s)"
                             % (result.summary["halt_reason"], result.summary["record"]))

    def describe(self, s):
        done = ", ".join("%d %s" % (n, outcome) for outcome, n in sorted(s.get("outcomes", {}).items()))
        return "%s to %s simulated robots: %s" % (s.get("state"), s.get("robots"), done)


STAGE = RolloutStage()
