"""Weights & Biases tracking: one W&B run per pipeline stage, artifacts by reference.

    tracker = Tracker(config, workdir_root, settings=config.get("tracking"))
    tracker.log_stage("export", "ran", summary, inputs, outputs)   # after each stage that ran
    tracker.log_result(stage_result)    # the same for a pipeline StageResult (inputs from state files)
    tracker.runs()          # [{"stage", "id", "url"}] -> manifest lineage.tracking_runs
    tracker.log_deployment(name, version, robots, record_path)     # after a rollout

Each stage is a run (job_type = stage name) in one group per pipeline run. Inputs and outputs
are W&B artifacts named `<model>-<what>` (checkpoint, torchscript, onnx, onnx-simplified,
engine, parity-report, bench-report, package, registry (the published copy), deployment); model files are added by reference
(a `file://` path, or the registry URL when the item carries one), never uploaded, with their
sha256 in the metadata. An input artifact has the same entries as the output that made it,
so W&B gives it the same digest and its lineage graph links checkpoint -> ONNX -> engine ->
package -> deployment.

Offline by default: real run files under `<workdir>/tracking/wandb/` (`wandb sync` them later).
Online only when a key is configured (WANDB_API_KEY). Tracking never fails a build: any error
becomes one warning line on stderr and tracking is off for the rest of the process.
"""
import json
import os
import re
import sys
import time
import uuid

from pytools.core.config import TRACKING_MODES as MODES
from pytools.core.config import TRACKING_SCHEMA as SETTINGS_SCHEMA
from pytools.core.files import atomic_write_json, read_json
from pytools.core.hashing import sha256_file
from pytools.core.package import MANIFEST
from pytools.core.workdir import PACKAGE_DIR, STAGE_NAMES, STAGES, TRACKING_DIR, TRACKING_RUNS, Workdir, stage_spec

DEFAULT_PROJECT = "model-cicd"
# wandb's own spellings of the modes, accepted in WANDB_MODE
MODE_ALIASES = {"dryrun": "offline", "run": "online"}
REPORT_FILE_LIMIT = 10 << 20   # report files up to this size are uploaded, the rest referenced


# The environment wins over the config, as everywhere else in pytools.
ENV_KEYS = {"WANDB_MODE": "mode", "WANDB_PROJECT": "project", "WANDB_ENTITY": "entity",
            "WANDB_RUN_GROUP": "group", "WANDB_DIR": "dir", "WANDB_BASE_URL": "base_url"}


class TrackingError(Exception):
    """Tracking is misconfigured or W&B failed; reported as a warning, never fatal."""


def warn(message):
    print("warning: tracking: %s; the build goes on without tracking" % message, file=sys.stderr, flush=True)


def effective_settings(settings=None, workdir_root=".", environ=None):
    """Validate the `tracking:` section and merge the environment over it."""
    import jsonschema

    env = os.environ if environ is None else environ
    out = dict(settings or {})
    try:
        jsonschema.validate(out, SETTINGS_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(section)"
        raise TrackingError("tracking.%s: %s" % (where, exc.message))
    for var, key in ENV_KEYS.items():
        if env.get(var):
            out[key] = env[var]
    mode = MODE_ALIASES.get(out.get("mode", "offline"), out.get("mode", "offline"))
    if mode not in MODES:
        raise TrackingError("WANDB_MODE=%r is not one of %s" % (mode, ", ".join(MODES)))
    if mode == "online" and not env.get("WANDB_API_KEY"):
        print("warning: tracking: online mode needs WANDB_API_KEY; logging offline instead",
              file=sys.stderr, flush=True)
        mode = "offline"
    out["mode"] = mode
    out.setdefault("project", DEFAULT_PROJECT)
    out["dir"] = os.path.abspath(out.get("dir") or os.path.join(workdir_root, TRACKING_DIR))
    return out


def default_group(config, environ=None):
    """One group per pipeline run; a Jenkins build's stages (maybe on several agents) share it."""
    env = os.environ if environ is None else environ
    if env.get("JOB_NAME") and env.get("BUILD_NUMBER"):
        raw = "%s-%s-%s" % (config["name"], env["JOB_NAME"], env["BUILD_NUMBER"])
    else:
        raw = "%s-%s-%s" % (config["name"], time.strftime("%Y%m%d-%H%M%S", time.gmtime()), uuid.uuid4().hex[:6])
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)


def artifact_item(name, path, type, sha256=None, url=None):
    """One input/output: a file or a package directory (sha256 of its manifest)."""
    item = {"name": name, "path": os.path.abspath(path), "type": type,
            "sha256": sha256 or (_dir_sha256(path) if os.path.isdir(path) else sha256_file(path))}
    if url:
        item["url"] = url
    return item


def _dir_sha256(path):
    manifest = os.path.join(path, MANIFEST)
    return sha256_file(manifest) if os.path.isfile(manifest) else None


# -- which files a stage consumed and produced: the stage table names them ----------------------

def stage_io(workdir_root, stage):
    """(inputs, outputs) item lists of `stage`, from `<workdir>/state/*.json` (what really ran),
    each output named as the stage table (`pytools.core.workdir.STAGES`) names it."""
    wd = Workdir(workdir_root, create=False)
    produced = {}
    for spec in STAGES:
        state = wd.state(spec.name) or {}
        outputs = state.get("outputs") or {}
        items, folders = [], {}
        for rel, entry in sorted(outputs.items()):
            what, kind = spec.artifact(rel) or (os.path.splitext(os.path.basename(rel))[0], "file")
            if kind == "package":  # a folder: one artifact, known by its manifest's sha256
                folders.setdefault(rel.split("/")[0], what)
                continue
            items.append({"name": what, "path": wd.path(rel), "type": kind, "sha256": entry.get("sha256")})
        for folder, what in folders.items():
            manifest = outputs.get(folder + "/" + MANIFEST) or {}
            items.append({"name": what, "path": wd.path(folder), "type": "package",
                          "sha256": manifest.get("sha256")})
        summary = state.get("summary") or {}
        if spec.name == "publish" and summary.get("url"):
            # the published copy, referenced at its registry URL (local file:// or Artifactory)
            package = wd.path(PACKAGE_DIR)
            # (files_url: the folder the package's files sit in; url names the manifest itself)
            items.append({"name": "registry", "path": package, "type": "package",
                          "url": summary.get("files_url") or summary["url"],
                          "sha256": _dir_sha256(package)})
        produced[spec.name] = items
    wanted = stage_spec(stage).consumes
    inputs = [i for s in STAGE_NAMES if s != stage for i in produced[s] if i["name"] in wanted]
    return inputs, produced.get(stage, [])


def _numbers(value, prefix=""):
    """Flatten the numbers (and booleans) of a nested summary into {"a/b": x}."""
    out = {}
    if isinstance(value, dict):
        for key, sub in value.items():
            out.update(_numbers(sub, "%s%s/" % (prefix, key)))
    elif isinstance(value, bool):
        out[prefix.rstrip("/")] = int(value)
    elif isinstance(value, (int, float)):
        out[prefix.rstrip("/")] = value
    return out


class Tracker:
    """Logs pipeline stages and deployments to W&B; see the module docstring."""

    def __init__(self, config, workdir_root, settings=None):
        self.config = config
        self.root = os.path.abspath(workdir_root)
        self.failed = None
        self._runs = []
        try:
            self.settings = effective_settings(settings, self.root)
            self.settings.setdefault("group", default_group(config))
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a build
            self._fail(exc)
            self.settings = {"mode": "disabled"}

    @property
    def enabled(self):
        return self.failed is None and self.settings.get("mode") != "disabled"

    @property
    def runs_file(self):
        return os.path.join(self.root, TRACKING_RUNS)

    def _fail(self, exc):
        self.failed = "%s: %s" % (type(exc).__name__, exc) if not isinstance(exc, TrackingError) else str(exc)
        warn(self.failed)

    # -- public API (every method swallows its own failures) -----------------------------------

    def log_stage(self, name, status, summary, inputs, outputs):
        """Log one run for a stage that ran; inputs/outputs are artifact_item() dicts."""
        self._guarded(self._log_stage, name, status, summary or {}, inputs or [], outputs or [])

    def log_result(self, result):
        """Log a pipeline StageResult (what `pytools run` has after each stage); a stage that was
        up to date did not run and is not logged again."""
        if result.status != "up to date":
            self._guarded(lambda: self._log_stage(result.name, result.status, result.summary or {},
                                                  *stage_io(self.root, result.name)))

    def log_deployment(self, name, version, robots, record_path):
        """Log a rollout as a `deploy` run: the package in, a deployment artifact out."""
        self._guarded(self._log_deployment, name, version, robots, record_path)

    def runs(self):
        """The latest tracked run of each stage in this work directory: [{stage, id, url}]."""
        if self.settings.get("mode") == "disabled":
            return []
        latest = {}
        for entry in read_json(self.runs_file) or []:
            latest[entry["stage"]] = {"stage": entry["stage"], "id": entry["id"], "url": entry["url"]}
        for entry in self._runs:
            latest[entry["stage"]] = entry
        order = {s: i for i, s in enumerate(STAGE_NAMES)}  # a `deploy` run comes last
        return sorted(latest.values(), key=lambda e: (order.get(e["stage"], len(order)), e["stage"]))

    def _guarded(self, fn, *args):
        if not self.enabled:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a build
            self._fail(exc)
            return None

    # -- W&B --------------------------------------------------------------------------------------

    def _init(self, job_type, config):
        import wandb

        run_dir = self.settings["dir"]
        os.makedirs(run_dir, exist_ok=True)
        # wandb silently falls back to a temp dir when its dir is unwritable; refuse instead, so
        # the run files are where lineage and `wandb sync` look for them.
        probe = os.path.join(run_dir, ".write-test-%d" % os.getpid())
        with open(probe, "w"):
            pass
        os.unlink(probe)
        kwargs = {k: self.settings[k] for k in ("project", "entity", "group", "tags") if self.settings.get(k)}
        wb_settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                     init_timeout=60, **({"base_url": self.settings["base_url"]}
                                                         if self.settings.get("base_url") else {}))
        return wandb.init(job_type=job_type, name="%s-%s" % (self.config["name"], job_type),
                          config=config, mode=self.settings["mode"], dir=run_dir,
                          reinit="create_new", settings=wb_settings, **kwargs)

    def _run_config(self, stage, status):
        return {"stage": stage, "status": status, "model": json.loads(json.dumps(dict(self.config), default=str)),
                "config_path": getattr(self.config, "path", None)}

    def _log_stage(self, name, status, summary, inputs, outputs):
        import wandb

        run = self._init(name, self._run_config(name, status))
        try:
            metrics = _numbers(summary, name + "/")
            if name == "parity":
                metrics.update(self._parity_metrics(wandb, run, summary))
            elif name == "bench":
                metrics.update(self._bench_metrics(wandb, run, summary))
            if metrics:
                run.log(metrics)
            run.summary["status"] = status
            self._log_artifacts(run, inputs, outputs, name)
        finally:
            run.finish(exit_code=1 if status == "failed" else 0)
        self._remember(name, run)

    def _parity_metrics(self, wandb, run, summary):
        columns = ["backend", "output", "precision", "status", "max_abs_error", "p99_abs_error",
                   "cosine_similarity", "passed"]
        rows, metrics = [], {}
        for backend, b in sorted((summary.get("backends") or {}).items()):
            if not b.get("outputs"):
                rows.append([backend, None, b.get("precision"), b.get("status"), None, None, None, None])
            for output, o in sorted((b.get("outputs") or {}).items()):
                rows.append([backend, output, b.get("precision"), b.get("status"), o.get("max_abs_error"),
                             o.get("p99_abs_error"), o.get("cosine_similarity"), o.get("passed")])
        run.log({"parity_table": wandb.Table(columns=columns, data=rows)})
        metrics["parity/passed"] = int(bool(summary.get("passed")))
        return metrics

    def _bench_metrics(self, wandb, run, summary):
        columns = ["backend", "batch_size", "p50_ms", "p99_ms", "throughput", "skipped"]
        rows = []
        for backend, per_batch in sorted((summary.get("results") or {}).items()):
            if "skipped" in per_batch:
                rows.append([backend, None, None, None, None, per_batch["skipped"]])
                continue
            for batch, r in sorted(per_batch.items(), key=lambda kv: int(kv[1].get("batch_size", kv[0]))):
                rows.append([backend, int(r.get("batch_size", batch)), r.get("p50_ms"), r.get("p99_ms"),
                             r.get("throughput"), None])
        run.log({"bench_table": wandb.Table(columns=columns, data=rows)})
        return {"bench/gate_failures": len(summary.get("gate_failures") or [])}

    def _log_artifacts(self, run, inputs, outputs, stage):
        for artifact in self._artifacts(inputs, stage):
            if self.settings["mode"] == "online":
                run.use_artifact(artifact)
            else:
                # wandb refuses use_artifact() offline; this is what it does online for a new
                # artifact: log it with "use after commit", which `wandb sync` replays as an input.
                run._log_artifact(artifact, use_after_commit=True)
        for artifact in self._artifacts(outputs, stage):
            run.log_artifact(artifact)

    def _artifacts(self, items, stage):
        import wandb

        grouped = {}
        for item in items:
            grouped.setdefault((item["name"], item["type"]), []).append(item)
        out = []
        for (name, kind), group in sorted(grouped.items()):
            meta = {"model": self.config["name"], "version": self.config.get("version"), "stage": stage,
                    "files": {}}
            artifact = wandb.Artifact(_artifact_name(self.config["name"], name), type=kind, metadata=None)
            for item in group:
                self._add(artifact, item, meta)
            if len(group) == 1:
                meta["sha256"] = group[0].get("sha256")
            artifact.metadata = meta
            out.append(artifact)
        return out

    def _add(self, artifact, item, meta):
        """Add a file, or every file of a package directory, with its sha256 in the metadata."""
        path, url, upload = item["path"], item.get("url"), item["type"] == "report"
        if not os.path.isdir(path):
            sha = item.get("sha256") or sha256_file(path)
            _add_file(artifact, path, os.path.basename(path), url, upload)
            meta["files"][os.path.basename(path)] = sha
            return
        manifest = read_json(os.path.join(path, MANIFEST)) or {}
        known = {f["path"]: f.get("sha256") for f in manifest.get("files", []) if isinstance(f, dict)}
        for dirpath, _, filenames in os.walk(path):
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                _add_file(artifact, full, rel, url and url.rstrip("/") + "/" + rel, upload)
                meta["files"][rel] = known.get(rel) or sha256_file(full)

    def _log_deployment(self, name, version, robots, record_path):
        import wandb

        record = read_json(record_path) or {}
        rows = _robot_rows(robots, record)
        outcomes = {}
        for row in rows:
            outcomes[row[2]] = outcomes.get(row[2], 0) + 1
        config = self._run_config("deploy", record.get("state") or "unknown")
        config.update(deployment={"name": name, "version": version, "rollout": record.get("id"),
                                  "waves": [w.get("name") for w in record.get("waves", [])],
                                  "inventory": record.get("inventory")})
        run = self._init("deploy", config)
        try:
            run.log({"robots": wandb.Table(columns=["robot", "wave", "outcome", "error", "bytes_sent"], data=rows)})
            run.log(dict({"deploy/robots": len(rows)}, **{"deploy/" + k: v for k, v in outcomes.items()}))
            run.summary["state"] = record.get("state")
            package = record.get("package")
            inputs = [artifact_item("package", package, "package", record.get("package_sha256"))] \
                if package and os.path.isdir(package) else []
            outputs = [artifact_item("deployment", record_path, "deployment")]
            self._log_artifacts(run, inputs, [], "deploy")
            for artifact in self._artifacts(outputs, "deploy"):
                artifact.metadata = dict(artifact.metadata, version=version, rollout=record.get("id"),
                                         state=record.get("state"), outcomes=outcomes,
                                         robots={r[0]: r[2] for r in rows})
                run.log_artifact(artifact)
        finally:
            run.finish(exit_code=0 if record.get("state") in (None, "completed") else 1)
        self._remember("deploy", run)

    def _remember(self, stage, run):
        url = run.url if self.settings["mode"] == "online" else "file://" + os.path.dirname(run.dir)
        entry = {"stage": stage, "id": run.id, "url": url}
        self._runs.append(entry)
        history = read_json(self.runs_file) or []
        history.append(dict(entry, group=self.settings.get("group"), mode=self.settings["mode"],
                            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        os.makedirs(os.path.dirname(self.runs_file), exist_ok=True)
        atomic_write_json(self.runs_file, history)


def _add_file(artifact, path, rel, url, upload):
    if upload and os.path.getsize(path) <= REPORT_FILE_LIMIT:
        artifact.add_file(path, name=rel)
    elif url and url.startswith(("http://", "https://")):
        # a registry URL: W&B would download it to checksum it; the sha256 is in the metadata
        artifact.add_reference(url, name=rel, checksum=False)
    else:
        artifact.add_reference(url or "file://" + os.path.abspath(path), name=rel)


def _artifact_name(model, what):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "%s-%s" % (model, what))


def _robot_rows(robots, record):
    """[robot, wave, outcome, error, bytes_sent] from the record, for the robots given."""
    entries = record.get("robots") or {}
    if isinstance(robots, dict):
        names = list(robots)
    else:
        names = list(robots or entries)
    rows = []
    for robot in names:
        e = entries.get(robot) or {}
        outcome = e.get("outcome") or (robots.get(robot) if isinstance(robots, dict) else None) or "unknown"
        rows.append([robot, e.get("wave"), outcome, e.get("error"), e.get("bytes_sent")])
    return rows
