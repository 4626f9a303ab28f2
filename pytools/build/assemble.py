"""Assemble the package of a work directory: version, identity, runtime, constraints, lineage and
evidence, in the manifest format of docs/package.md (written by pytools.core.package)."""
import os
import re
import subprocess

from pytools.core import package
from pytools.core.hashing import sha256_file, sha256_json
from pytools.core.workdir import CALIB_FILE, EP_FILE, ONNX_FILE, PACKAGE_DIR, PLAN_FILE, SIM_FILE, TS_FILE


def git_output(args, cwd):
    try:
        return subprocess.run(["git"] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(config):
    """The commit of the checkout holding the config (the model repo), or None outside git."""
    return git_output(["rev-parse", "HEAD"], config.base_dir)


def full_version(config, prerelease, commit):
    """`1.4.0` + `-mr.42` (merge-request builds) + `+git.<sha7>.build.<n>` build metadata."""
    version = config["version"]
    if prerelease:
        if not re.match(r"^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$", prerelease):
            from pytools.core.errors import PytoolsError
            raise PytoolsError("--prerelease %r: expected dot-separated [0-9A-Za-z-] identifiers, e.g. mr.42"
                               % prerelease)
        base, plus, meta = version.partition("+")
        version = "%s%s%s%s%s" % (base, "." if "-" in base else "-", prerelease, plus, meta)
    if "+" not in version:
        meta = []
        if commit:
            meta.append("git." + commit[:7])
        if os.environ.get("BUILD_NUMBER", "").isdigit():
            meta.append("build." + os.environ["BUILD_NUMBER"])
        if meta:
            version += "+" + ".".join(meta)
    return version


def key_fingerprint(path):
    return sha256_file(path) if path and os.path.exists(path) else path


def io_spec(export_summary, config):
    """The runtime's inputs and outputs as the export stage read them back from the ONNX graph
    (names, dtypes, shapes with dynamic axes named), plus each output's kind from the config."""
    kinds = {o["name"]: o.get("kind", "tensor") for o in config["outputs"]}
    io = export_summary["io"]
    return io["inputs"], [dict(o, kind=kinds[o["name"]]) for o in io["outputs"]]


def assemble(pipeline, version, commit, sign_key=None, tracking_runs=()):
    cfg, wd = pipeline.config, pipeline.wd
    export_state, engine_state = wd.state("export"), wd.state("engine") or {}
    onnx_file = SIM_FILE if cfg["export"]["simplify"] else ONNX_FILE
    files = {"model.onnx": (wd.path(onnx_file), "onnx")}
    if TS_FILE in export_state["outputs"]:
        files["model.ts"] = (wd.path(TS_FILE), "torchscript")
    opset = export_state["summary"]["opset"]
    if engine_state.get("status") == "ran":
        files["model.plan"] = (wd.path(PLAN_FILE), "engine")
        if os.path.exists(wd.path(CALIB_FILE)):
            files["calibration.cache"] = (wd.path(CALIB_FILE), "calibration-cache")
        summary = engine_state["summary"]
        runtime = {"kind": "tensorrt", "entry": "model.plan", "precision": summary["precision"],
                   "constraints": dict(summary["constraints"], onnx_opset=opset)}
        platform = summary["platform"]
    else:
        precision = ((wd.state("parity") or {}).get("summary") or {}).get("precision", "fp32")  # the model's
        runtime = {"kind": "onnxruntime", "entry": "model.onnx", "precision": precision,
                   "constraints": {"onnx_opset": opset}}
        platform = "onnxruntime"
    inputs, outputs = io_spec(export_state["summary"], cfg)
    runtime.update(inputs=inputs, outputs=outputs, dims=cfg["dims"])
    hashes = pipeline.artifact_hashes()
    parity_state, bench_state = wd.state("parity"), wd.state("bench")
    fields = {
        "name": cfg["name"], "version": version, "description": cfg.get("description", ""),
        "git_commit": commit, "build_url": os.environ.get("BUILD_URL"),
        "platform": platform, "runtime": runtime,
        "lineage": {"checkpoint_sha256": hashes["checkpoint"], "torchscript_sha256": hashes["torchscript"],
                    "exported_program_sha256": wd.output_sha("export", EP_FILE),
                    "onnx_sha256": hashes["onnx"], "onnx_simplified_sha256": hashes["onnx_simplified"],
                    "config_sha256": sha256_json(dict(cfg)), "parent": None,
                    "tracking_runs": list(tracking_runs)},
        "evidence": {"parity": parity_state["summary"], "bench": bench_state["summary"]["results"],
                     "engine": engine_state.get("summary"), "export": export_state["summary"]},
    }
    return package.write_package(wd.path(PACKAGE_DIR), files, fields, signing_key_path=sign_key)
