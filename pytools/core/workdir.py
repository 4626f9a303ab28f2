"""The work directory: the stage table, where every stage's outputs live, the default location.

`STAGES` is the pipeline: each stage in order, the module that declares how it runs
(`pytools.build.stages.<name>`), the files it writes (each one a tracking artifact with a name
and a type) and the artifacts of earlier stages it consumes. The build chain, the CLI's stage
commands, `pytools run`, tracking, the HTML report and the summary table all read this table;
adding a stage is one module under `pytools/build/stages/` plus one entry here.

Modules are named by import path, not imported: the core imports nothing above it.
"""
import os

from pytools.core.errors import PytoolsError
from pytools.core.files import read_json

DEFAULT_ROOT = "work"
STATE_DIR = "state"

CHECKPOINT_FILE = "checkpoint/checkpoint.pt"
EP_FILE = "export/model.pt2"        # the torch.export ExportedProgram (torch.export.save)
TS_FILE = "export/model.ts"         # only when export.torchscript is trace or script
ONNX_FILE = "export/model.onnx"
SIM_FILE = "export/model.sim.onnx"
EXPORT_FILES = (EP_FILE, TS_FILE, ONNX_FILE, SIM_FILE)
PLAN_FILE = "engine/model.plan"
CALIB_FILE = "engine/calibration.cache"
TIMING_FILE = "engine/timing.cache"
REPORTS_DIR = "reports"
PARITY_JSON, PARITY_XML, PARITY_MD = "reports/parity.json", "reports/parity.xml", "reports/parity.md"
PARITY_WORST = "reports/parity_worst.npz"   # each backend x output's worst sample, for the plots
PARITY_REPORTS = (PARITY_JSON, PARITY_XML, PARITY_MD, PARITY_WORST)
BENCH_JSON, BENCH_MD = "reports/bench.json", "reports/bench.md"
BENCH_REPORTS = (BENCH_JSON, BENCH_MD)
REPORT_HTML = "reports/report.html"
PACKAGE_DIR = "package"
PACKAGE_MANIFEST = "package/manifest.json"
ROLLOUTS_DIR = "rollouts"
FLEET_DIR = "fleet"
FETCHED_PACKAGES_DIR = "packages"
TRACKING_DIR = "tracking"
TRACKING_RUNS = "tracking/runs.json"


class StageSpec:
    """One row of the stage table. `artifacts` maps an output path (a folder when it ends with
    "/") to its tracking artifact (name, type); `consumes` names earlier stages' artifacts."""

    def __init__(self, name, artifacts=None, consumes=(), tracked=True):
        self.name = name
        self.module = "pytools.build.stages." + name
        self.artifacts = dict(artifacts or {})
        self.consumes = frozenset(consumes)
        self.tracked = tracked  # logged as a tracking run of its own

    def artifact(self, rel):
        """(name, type) of one of this stage's output paths, or None."""
        for pattern, kind in self.artifacts.items():
            if rel == pattern or (pattern.endswith("/") and rel.startswith(pattern)):
                return kind
        return None


_MODEL_FILES = ("checkpoint", "exported-program", "torchscript", "onnx", "onnx-simplified", "engine")

STAGES = (
    StageSpec("checkpoint", {CHECKPOINT_FILE: ("checkpoint", "checkpoint")}),
    StageSpec("export", {EP_FILE: ("exported-program", "exported-program"), TS_FILE: ("torchscript", "torchscript"),
                         ONNX_FILE: ("onnx", "onnx"), SIM_FILE: ("onnx-simplified", "onnx")},
              consumes=["checkpoint"]),
    StageSpec("engine", {PLAN_FILE: ("engine", "engine"), CALIB_FILE: ("engine-calibration", "engine"),
                         TIMING_FILE: ("engine-timing", "engine")}, consumes=["onnx", "onnx-simplified"]),
    StageSpec("parity", {f: ("parity-report", "report") for f in PARITY_REPORTS}, consumes=_MODEL_FILES),
    StageSpec("bench", {f: ("bench-report", "report") for f in BENCH_REPORTS}, consumes=_MODEL_FILES),
    StageSpec("package", {PACKAGE_DIR + "/": ("package", "package")},
              consumes=["exported-program", "torchscript", "onnx", "onnx-simplified", "engine", "engine-calibration",
                        "parity-report", "bench-report"]),
    StageSpec("publish", consumes=["package"]),
    # The rollout logs its own `deploy` run (the robots it reached), not a stage run.
    StageSpec("rollout", {ROLLOUTS_DIR + "/": ("deployment", "deployment")}, tracked=False),
    StageSpec("report", {REPORT_HTML: ("report", "report")}, tracked=False),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_spec(name):
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def default_workdir(name):
    """`work/<model name>`, relative to where pytools runs."""
    return os.path.join(DEFAULT_ROOT, name)


class Workdir:
    """One model's work directory: paths of outputs and each stage's state record."""

    def __init__(self, root, create=True):
        self.root = os.path.abspath(root)
        if create:
            os.makedirs(os.path.join(self.root, STATE_DIR), exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def state_file(self, stage):
        return self.path(STATE_DIR, stage + ".json")

    def state(self, stage):
        return read_json(self.state_file(stage))

    def require(self, stage, hint):
        """The state of an upstream stage that must have run (possibly on another agent)."""
        record = self.state(stage)
        if not record or record["status"] not in ("ran", "skipped"):
            raise PytoolsError("stage %r has not run in %s: %s" % (stage, self.root, hint))
        return record

    def output_sha(self, stage, rel):
        record = self.state(stage) or {}
        entry = record.get("outputs", {}).get(rel)
        return entry["sha256"] if entry else None
