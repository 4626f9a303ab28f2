"""The chain for one model config: runs the stages of the stage table (`pytools.core.workdir`).

A stage declares its inputs (config sections and the hashes of upstream outputs) without
importing torch, so a re-run with nothing changed only hashes and returns. Stages read and write
files in the work directory, so a Jenkins pipeline can run them on different agents.
"""
from pytools.build import model as model_mod
from pytools.build.cache import run_stage
from pytools.build.stages import all_stages, load
from pytools.core.errors import CheckError, PytoolsError
from pytools.core.workdir import CHECKPOINT_FILE, ONNX_FILE, PLAN_FILE, SIM_FILE, TS_FILE, Workdir
from pytools.core.workdir import default_workdir, stage_spec


class Pipeline:
    def __init__(self, config, workdir=None, force=False):
        self.config = config
        self.wd = Workdir(workdir or default_workdir(config["name"]))
        self.force = force
        self._model = None
        self._model_source = None
        self._tracker = None

    @property
    def tracker(self):
        """W&B tracking (offline by default); a tracking failure warns and never fails a stage."""
        if self._tracker is None:
            from pytools.tracking.wandb_tracker import Tracker

            self._tracker = Tracker(self.config, self.wd.root, self.config.get("tracking"))
        return self._tracker

    def run(self, name, options=None):
        """Run stage `name` unless it is up to date; log it; raise its error if it failed."""
        stage = load(name)
        inputs = stage.inputs(self, options)
        result = run_stage(self.wd, name, inputs, lambda: stage.run(self, options, inputs), self.force)
        if stage_spec(name).tracked and result.status != "up to date":
            self.tracker.log_result(result)
        stage.verdict(self, result)
        return result

    def chain(self, options, on_result=None):
        """Every stage `pytools run` wants, in table order; [(stage, result)]."""
        done = []
        stages = list(all_stages())
        for i, stage in enumerate(stages):
            if stage.wanted(self, options):
                try:
                    result = self.run(stage.name, options)
                except CheckError as exc:
                    # A failed check is when the report is needed most: write it, then fail.
                    written = self._after_failure(stages[i + 1:], options)
                    if not written:
                        raise
                    raise type(exc)("%s; HTML report: %s" % (exc, ", ".join(written))) from exc
                done.append((stage, result))
                if on_result:
                    on_result(stage, result)
        return done

    def _after_failure(self, remaining, options):
        """Run the stages that still make sense after a failed check (the HTML report); their own
        failure never hides the first one. Returns the paths they wrote."""
        written = []
        for stage in remaining:
            if stage.after_failure and stage.wanted(self, options):
                try:
                    result = self.run(stage.name, options)
                except PytoolsError:
                    continue
                written += [self.wd.path(rel) for rel in result.outputs]
        return written

    # -- what several stages share ---------------------------------------------------------------

    def section(self, *keys):
        return {k: self.config[k] for k in keys}

    def model_source_sha(self):
        """The model's code for the cache: every project file it imports and the library versions
        (`pytools.build.model_code`); computed once per pipeline."""
        if self._model_source is None:
            from pytools.build import model_code

            self._model_source = model_code.fingerprint(self.config, self.wd)
        return self._model_source

    def checkpoint_sha(self):
        self.wd.require("checkpoint", "run `pytools checkpoint fetch` or `pytools train` first")
        return self.wd.output_sha("checkpoint", CHECKPOINT_FILE)

    def model(self):
        """The eager model with the checkpoint loaded (built once, only when a stage needs it)."""
        if self._model is None:
            from pytools.build import checkpoint

            self.checkpoint_sha()
            self._model = checkpoint.load_into(model_mod.build(self.config), self.wd.path(CHECKPOINT_FILE),
                                               shown_as=checkpoint.user_source(self.config))
        return self._model

    def artifact_hashes(self):
        self.wd.require("export", "run `pytools export` first")
        return {"checkpoint": self.checkpoint_sha(),
                "torchscript": self.wd.output_sha("export", TS_FILE),
                "onnx": self.wd.output_sha("export", ONNX_FILE),
                "onnx_simplified": self.wd.output_sha("export", SIM_FILE),
                "engine": self.wd.output_sha("engine", PLAN_FILE)}
