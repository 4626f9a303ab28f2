"""Stage `parity`: golden inputs at every shape group through every backend, compared with PyTorch eager."""
from pytools.build.stage import Stage
from pytools.core.errors import CheckError
from pytools.core.workdir import PARITY_MD


class ParityStage(Stage):
    name = "parity"
    commands = ((("parity",), "compare every backend with PyTorch eager on golden inputs at every shape "
                 "group (each dynamic dimension at min, opt, max and a seeded point between); "
                 "writes reports/parity.{json,xml,md}", {}),)

    def inputs(self, pipe, options):
        from pytools.build import golden

        return dict(pipe.section("parity", "outputs", "model"), artifacts=pipe.artifact_hashes(),
                    model_source=pipe.model_source_sha(), golden=golden.fingerprint(pipe.config),
                    engine_status=(pipe.wd.state("engine") or {}).get("status"))

    def run(self, pipe, options, inputs):
        from pytools.build import parity, reports

        report = parity.run(pipe.config, pipe.wd, pipe.model())
        written = reports.write_parity(report, pipe.wd)
        return "ran" if report["passed"] else "failed", parity.summary(report), written

    def verdict(self, pipe, result):
        if result.status == "failed":
            failures = result.summary["failures"] or ["no backend could be compared (all skipped)"]
            raise CheckError("parity failed: %s (%d failing; report: %s)"
                             % (failures[0], len(failures), pipe.wd.path(PARITY_MD)))

    def describe(self, s):
        compared = [n for n, b in s.get("backends", {}).items() if b["status"] != "skipped"]
        worst = max((o["max_abs_error"] for b in s.get("backends", {}).values()
                     for o in b.get("outputs", {}).values()), default=None)
        text = "%s: %s on %d samples" % ("PASSED" if s.get("passed") else "FAILED",
                                         ", ".join(compared) or "nothing", s.get("samples", 0))
        if s.get("shape_groups"):
            text += " in %d shape groups" % len(s["shape_groups"])
        return text + (", max abs error %.2g" % worst if worst is not None else "")


STAGE = ParityStage()
