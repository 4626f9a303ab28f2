"""The chain of stages for one model config: checkpoint, export, engine, parity, bench, package.

Each stage declares its inputs (config sections and the hashes of upstream outputs) without
importing torch, so a re-run with nothing changed only hashes and returns. Stages read and write
files in the work directory, so a Jenkins pipeline can run them on different agents.
"""
import os

from pytools import model as model_mod
from pytools.errors import CheckError, PytoolsError
from pytools.stages import Workdir, run_stage

CHECKPOINT_FILE = "checkpoint/checkpoint.pt"
REPORTS = "reports"
PACKAGE_DIR = "package"
STAGES = ["checkpoint", "export", "engine", "parity", "bench", "package", "publish", "rollout"]


def default_workdir(config):
    return os.path.join("work", config["name"])


class Pipeline:
    def __init__(self, config, workdir=None, force=False):
        self.config = config
        self.wd = Workdir(workdir or default_workdir(config))
        self.force = force
        self._model = None
        self._model_source = None
        self._tracker = None

    @property
    def tracker(self):
        """W&B tracking (offline by default); a tracking failure warns and never fails a stage."""
        if self._tracker is None:
            from pytools.tracking import Tracker

            self._tracker = Tracker(self.config, self.wd.root, self.config.get("tracking"))
        return self._tracker

    def _run(self, name, inputs, action):
        result = run_stage(self.wd, name, inputs, action, self.force)
        if result.status != "up to date":
            self.tracker.log_result(result)
        return result

    # -- shared pieces ---------------------------------------------------------------------------

    def model_source_sha(self):
        if self._model_source is None:
            from pytools.hashing import sha256_file

            path = model_mod.source_file(self.config)
            self._model_source = sha256_file(path) if path else "unknown"
        return self._model_source

    def checkpoint_sha(self):
        self.wd.require("checkpoint", "run `pytools checkpoint fetch` or `pytools train` first")
        return self.wd.output_sha("checkpoint", CHECKPOINT_FILE)

    def model(self):
        """The eager model with the checkpoint loaded (built once, only when a stage needs it)."""
        if self._model is None:
            from pytools import checkpoint

            self.checkpoint_sha()
            self._model = checkpoint.load_into(model_mod.build(self.config), self.wd.path(CHECKPOINT_FILE))
        return self._model

    def artifact_hashes(self):
        from pytools import engine, export

        self.wd.require("export", "run `pytools export` first")
        return {"checkpoint": self.checkpoint_sha(),
                "torchscript": self.wd.output_sha("export", export.TS_FILE),
                "onnx": self.wd.output_sha("export", export.ONNX_FILE),
                "onnx_simplified": self.wd.output_sha("export", export.SIM_FILE),
                "engine": self.wd.output_sha("engine", engine.PLAN_FILE)}

    def _section(self, *keys):
        return {k: self.config[k] for k in keys}

    # -- stages ----------------------------------------------------------------------------------

    def checkpoint(self, mode=None):
        """`fetch` (checkpoint.path / checkpoint.url) or `train` (train.dataset)."""
        cfg = self.config
        mode = mode or ("fetch" if ("path" in cfg["checkpoint"] or "url" in cfg["checkpoint"]) else "train")
        if mode == "fetch" and not ("path" in cfg["checkpoint"] or "url" in cfg["checkpoint"]):
            raise PytoolsError("%s: checkpoint: nothing to fetch (no checkpoint.path or checkpoint.url); "
                               "use `pytools train`" % cfg.path)
        if mode == "train" and not cfg["train"].get("dataset"):
            raise PytoolsError("%s: train.dataset: not set, so there is nothing to train on" % cfg.path)
        inputs = {"mode": mode, "checkpoint": cfg["checkpoint"]}
        if mode == "fetch" and "path" in cfg["checkpoint"]:
            source = cfg.resolve(cfg["checkpoint"]["path"])
            st = os.stat(source) if os.path.exists(source) else None
            inputs["source"] = [st.st_size, st.st_mtime_ns] if st else None
        if mode == "train":
            inputs.update(self._section("train", "model", "inputs", "outputs"), model_source=self.model_source_sha())

        def action():
            from pytools import checkpoint, train

            os.makedirs(self.wd.path("checkpoint"), exist_ok=True)
            dest = self.wd.path(CHECKPOINT_FILE)
            if mode == "fetch":
                digest = checkpoint.fetch(cfg, dest)
                summary = {"source": cfg["checkpoint"].get("path") or cfg["checkpoint"]["url"],
                           "sha256": digest, "verified": "sha256" in cfg["checkpoint"]}
            else:
                summary = train.train(cfg, lambda: model_mod.build(cfg), dest)
            return "ran", summary, [CHECKPOINT_FILE]

        return self._run("checkpoint", inputs, action)

    def export(self):
        from pytools import export

        sha = self.checkpoint_sha()
        inputs = dict(self._section("name", "version", "model", "inputs", "outputs", "dims", "export"),
                      checkpoint=sha, model_source=self.model_source_sha())

        def action():
            summary, outputs = export.export(self.config, self.model(), sha, self.wd)
            return "ran", summary, outputs

        return self._run("export", inputs, action)

    def engine(self):
        from pytools import engine, export, golden

        self.wd.require("export", "run `pytools export` first")
        onnx_file = export.SIM_FILE if self.config["export"]["simplify"] else export.ONNX_FILE
        inputs = dict(self._section("engine", "dims", "inputs"), onnx=self.wd.output_sha("export", onnx_file),
                      tensorrt=engine.tensorrt_version())
        if self.config["engine"]["precision"] == "int8":
            inputs["calibration"] = golden.fingerprint(self.config)

        def action():
            calibration = golden.GoldenInputs(self.config)
            limit = self.config["engine"]["calibration_batches"] * calibration.batch_size
            return engine.build(self.config, self.wd, (feed for _, feed in calibration.batches(limit=limit)))

        return self._run("engine", inputs, action)

    def parity(self):
        from pytools import golden

        inputs = dict(self._section("parity", "outputs", "model"), artifacts=self.artifact_hashes(),
                      model_source=self.model_source_sha(), golden=golden.fingerprint(self.config),
                      engine_status=(self.wd.state("engine") or {}).get("status"))

        def action():
            from pytools import parity, reports

            report = parity.run(self.config, self.wd, self.model())
            names = reports.write_parity(report, self.wd.path(REPORTS))
            status = "ran" if report["passed"] else "failed"
            return status, parity.summary(report), [os.path.join(REPORTS, n) for n in names]

        result = self._run("parity", inputs, action)
        if result.status == "failed":
            failures = result.summary["failures"] or ["no backend could be compared (all skipped)"]
            raise CheckError("parity failed: %s (%d failing; report: %s)"
                             % (failures[0], len(failures), self.wd.path(REPORTS, "parity.md")))
        return result

    def bench(self, baseline=None):
        from pytools.hashing import sha256_file

        inputs = dict(self._section("bench", "dims", "inputs"), artifacts=self.artifact_hashes(),
                      model_source=self.model_source_sha(),
                      baseline=sha256_file(baseline) if baseline and os.path.exists(baseline) else baseline)

        def action():
            from pytools import bench, reports

            result = bench.run(self.config, self.wd, self.model(), baseline)
            names = reports.write_bench(result, self.wd.path(REPORTS))
            status = "failed" if result["gate_failures"] else "ran"
            summary = {"results": bench.summary(result), "gate_failures": result["gate_failures"]}
            return status, summary, [os.path.join(REPORTS, n) for n in names]

        result = self._run("bench", inputs, action)
        if result.status == "failed":
            raise CheckError("benchmark gate failed: %s" % result.summary["gate_failures"][0])
        return result

    def package(self, prerelease=None, sign_key=None, allow_failed_parity=False):
        from pytools import packaging

        states = {s: (self.wd.state(s) or {}).get("inputs_hash") for s in STAGES[:STAGES.index("package")]}
        parity_state = self.wd.state("parity")
        if not parity_state:
            raise PytoolsError("stage 'parity' has not run in %s: run `pytools parity` first" % self.wd.root)
        if parity_state["status"] == "failed" and not allow_failed_parity:
            raise CheckError("refusing to package: parity failed (pass --allow-failed-parity to package "
                             "it anyway; the manifest will say so)")
        self.wd.require("bench", "run `pytools bench` first")
        commit = packaging.git_commit(self.config)
        version = packaging.full_version(self.config, prerelease, commit)
        inputs = {"stages": states, "version": version, "name": self.config["name"],
                  "sign_key": packaging.key_fingerprint(sign_key), "git": commit,
                  "build_url": os.environ.get("BUILD_URL"), "allow_failed_parity": allow_failed_parity}

        def action():
            manifest = packaging.assemble(self, version, commit, sign_key, self.tracker.runs())
            files = [PACKAGE_DIR + "/" + f["path"] for f in manifest["files"]] + [PACKAGE_DIR + "/manifest.json"]
            if sign_key:
                files.append(PACKAGE_DIR + "/manifest.json.sig")
            return "ran", {"version": version, "runtime": manifest["runtime"]["kind"],
                           "platform": manifest["platform"], "files": len(manifest["files"]),
                           "bytes": sum(f["size"] for f in manifest["files"]),
                           "signed": bool(sign_key), "path": self.wd.path(PACKAGE_DIR)}, files

        return self._run("package", inputs, action)

    def publish(self, channel=None):
        """Publish the package to the configured registry (`publish:`; local by default)."""
        from pytools.registry.settings import effective_settings

        self.wd.require("package", "run `pytools package` first")
        settings = effective_settings(self.config.get("publish"))
        if settings.get("path"):
            settings["path"] = os.path.abspath(settings["path"])
        inputs = {"manifest": self.wd.output_sha("package", PACKAGE_DIR + "/manifest.json"),
                  "settings": settings, "channel": channel}

        def action():
            from pytools.registry import open_registry

            result = open_registry(self.config.get("publish")).publish(self.wd.path(PACKAGE_DIR), channel)
            return "ran", result, []

        return self._run("publish", inputs, action)

    def rollout(self):
        """Roll the package out to a freshly simulated fleet (`rollout: {simulate: N}`): real sshd
        robots on loopback, approved automatically; the fleet is stopped afterwards."""
        spec = dict({"waves": "canary,100%", "max_failures": "0"}, **self.config["rollout"])
        self.wd.require("package", "run `pytools package` first")
        inputs = {"manifest": self.wd.output_sha("package", PACKAGE_DIR + "/manifest.json"), "rollout": spec}

        def action():
            import json

            from pytools.fleet import simulated_rollout

            result = simulated_rollout(self.wd.path(PACKAGE_DIR), self.wd.root, count=spec["simulate"],
                                       waves=spec["waves"], max_failures=str(spec["max_failures"]))
            with open(result["record"]) as f:
                record = json.load(f)
            self.tracker.log_deployment(self.config["name"], record.get("version"), sorted(record["robots"]),
                                        result["record"])
            status = "ran" if result["state"] == "completed" else "failed"
            return status, result, [os.path.relpath(result["record"], self.wd.root)]

        result = run_stage(self.wd, "rollout", inputs, action, self.force)
        if result.status == "failed":
            raise CheckError("rollout to the simulated fleet halted: %s (record: %s)"
                             % (result.summary["halt_reason"], result.summary["record"]))
        return result

    def report(self):
        """The HTML report page, rebuilt when the parity, bench or package results change."""
        inputs = {s: (self.wd.state(s) or {}).get("outputs") for s in ("parity", "bench", "package")}

        def action():
            from pytools import report_html

            path = report_html.write(self.config, self.wd.root)
            return "ran", {"path": path}, [os.path.relpath(path, self.wd.root)]

        return run_stage(self.wd, "report", inputs, action, self.force)
