"""W&B tracking: the offline run files of a whole pipeline, read back with wandb's own reader."""
import base64
import hashlib
import json
import os

import pytest

from pytools.core.hashing import sha256_file

from tracking_helpers import RunFile, entries, metadata, run_dir

pytestmark = pytest.mark.timeout(600)

STAGES = ["checkpoint", "export", "engine", "parity", "bench", "package", "publish", "deploy"]


def md5_b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(hashlib.md5(f.read()).digest()).decode()


@pytest.fixture(scope="module")
def runs(scenario):
    return {r["stage"]: RunFile(run_dir(r["url"])) for r in scenario["runs"]}


def test_one_run_per_stage_in_one_group(scenario, runs):
    assert [r["stage"] for r in scenario["runs"]] == STAGES
    groups = {runs[s].run["run_group"] for s in STAGES}
    assert len(groups) == 1 and groups.pop().startswith("crop-weed-classifier-")
    for stage in STAGES:
        run = runs[stage]
        assert run.run["job_type"] == stage
        assert run.run["run_id"] == [r["id"] for r in scenario["runs"] if r["stage"] == stage][0]
        assert run.run["telemetry"]["feature"]["offline"] is True
        assert run.config["model"]["name"] == "crop-weed-classifier"
        assert run.config["stage"] == stage
    assert runs["engine"].config["status"] == "skipped"   # no TensorRT here, and it says so
    assert all(r.exit_code == [0] for r in runs.values())


def test_runs_persist_for_later_processes(scenario, clean_wandb_env):
    """A stage run on another agent (another process) still finds earlier runs for the manifest."""
    from pytools.tracking.wandb_tracker import Tracker

    later = Tracker(scenario["cfg"], scenario["workdir"])
    assert later.runs() == scenario["runs"]


def test_parity_statistics_table_matches_report(scenario, runs):
    with open(os.path.join(scenario["workdir"], "reports", "parity.json")) as f:
        report = json.load(f)
    rows = runs["parity"].table("parity_table")
    by_key = {(r["backend"], r["output"]): r for r in rows}
    for backend in report["backends"]:
        if backend["status"] == "skipped":
            row = by_key[(backend["name"], None)]
            assert row["status"] == "skipped"
            continue
        for out in backend["outputs"]:
            row = by_key[(backend["name"], out["name"])]
            assert row["max_abs_error"] == pytest.approx(out["abs_error"]["max"])
            assert row["p99_abs_error"] == pytest.approx(out["abs_error"]["p99"])
            assert row["cosine_similarity"] == pytest.approx(out["cosine_similarity"])
            assert row["passed"] is out["passed"]
    metrics = runs["parity"].metrics()
    assert metrics["parity/passed"] == 1
    assert metrics["parity/backends/onnxruntime/outputs/logits/max_abs_error"] == pytest.approx(
        [b for b in report["backends"] if b["name"] == "onnxruntime"][0]["outputs"][0]["abs_error"]["max"])


def test_bench_numbers_logged(scenario, runs):
    with open(os.path.join(scenario["workdir"], "state", "bench.json")) as f:
        summary = json.load(f)["summary"]["results"]
    metrics = runs["bench"].metrics()
    for backend, per_batch in summary.items():
        if "skipped" in per_batch:
            continue
        for batch, numbers in per_batch.items():
            for key in ("p50_ms", "p99_ms", "throughput"):
                assert metrics["bench/results/%s/%s/%s" % (backend, batch, key)] == numbers[key]
    table = runs["bench"].table("bench_table")
    assert {(r["backend"], r["batch_size"]) for r in table if r["batch_size"]} == {
        (b, int(n)) for b, per in summary.items() if "skipped" not in per for n in per}
    assert [r["skipped"] for r in table if r["backend"] == "tensorrt"] == ["TensorRT is not available on this machine"]


def test_model_files_are_references_with_sha256(scenario, runs):
    wd = scenario["workdir"]
    for name, rel in (("onnx", "export/model.onnx"), ("onnx-simplified", "export/model.sim.onnx"),
                      ("torchscript", "export/model.ts")):
        art = runs["export"].artifact("crop-weed-classifier-" + name, used=False)
        path = os.path.join(wd, rel)
        entry = entries(art)[os.path.basename(rel)]
        assert entry["ref"] == "file://" + path      # referenced, not uploaded
        assert entry["digest"] == md5_b64(path)      # W&B's own checksum of the referenced bytes
        assert int(entry["size"]) == os.path.getsize(path)
        assert metadata(art)["sha256"] == sha256_file(path)
    ckpt = runs["checkpoint"].artifact("crop-weed-classifier-checkpoint", used=False)
    assert metadata(ckpt)["sha256"] == sha256_file(os.path.join(wd, "checkpoint", "checkpoint.pt"))


def test_package_artifact_lists_every_file_with_manifest_sha256(scenario, runs):
    package = os.path.join(scenario["workdir"], "package")
    with open(os.path.join(package, "manifest.json")) as f:
        manifest = json.load(f)
    art = runs["package"].artifact("crop-weed-classifier-package", used=False)
    assert art["type"] == "package"
    found = entries(art)
    assert set(found) == {f["path"] for f in manifest["files"]} | {"manifest.json"}
    files = metadata(art)["files"]
    for f in manifest["files"]:
        assert files[f["path"]] == f["sha256"]
        assert found[f["path"]]["ref"] == "file://" + os.path.join(package, f["path"])


def test_reports_are_uploaded_files(runs, scenario):
    art = runs["parity"].artifact("crop-weed-classifier-parity-report", used=False)
    found = entries(art)
    assert {"parity.json", "parity.xml", "parity.md", "parity_worst.npz"} <= set(found)
    assert all(not e.get("ref") for e in found.values())
    path = os.path.join(scenario["workdir"], "reports", "parity.json")
    assert found["parity.json"]["digest"] == md5_b64(path)


@pytest.mark.parametrize("producer,consumer,name", [
    ("checkpoint", "export", "checkpoint"),
    ("export", "parity", "onnx"),
    ("export", "parity", "torchscript"),
    ("export", "engine", "onnx-simplified"),
    ("export", "package", "onnx-simplified"),
    ("parity", "package", "parity-report"),
    ("bench", "package", "bench-report"),
    ("package", "publish", "package"),
    ("package", "deploy", "package"),
])
def test_lineage_links_output_to_next_input(runs, producer, consumer, name):
    """W&B links artifacts by digest: the input a stage declares is the output an earlier made."""
    made = runs[producer].artifact("crop-weed-classifier-" + name, used=False)
    used = runs[consumer].artifact("crop-weed-classifier-" + name, used=True)
    assert used["digest"] == made["digest"]
    assert used["type"] == made["type"]


def test_deployment_run(scenario, runs):
    deploy = runs["deploy"]
    art = deploy.artifact("crop-weed-classifier-deployment", used=False)
    record = scenario["rollout"]["record"]
    assert entries(art)[os.path.basename(record)]["ref"] == "file://" + record
    meta = metadata(art)
    assert meta["version"] == scenario["version"]
    assert meta["robots"] == {"robot-001": "activated", "robot-002": "activated", "robot-003": "activated"}
    assert meta["sha256"] == sha256_file(record)
    assert deploy.metrics()["deploy/activated"] == 3
    rows = deploy.table("robots")
    assert sorted(r["robot"] for r in rows) == ["robot-001", "robot-002", "robot-003"]
    assert deploy.config["deployment"]["rollout"] == scenario["rollout"]["rollout"]


def test_published_package_referenced_at_registry_url(scenario, runs):
    art = runs["publish"].artifact("crop-weed-classifier-registry", used=False)
    with open(os.path.join(scenario["workdir"], "state", "publish.json")) as f:
        url = json.load(f)["summary"]["url"]
    assert url.startswith("file://" + scenario["registry"] + "/dev/crop-weed-classifier/")
    found = entries(art)
    assert found["model.onnx"]["ref"] == url + "/model.onnx"
    assert found["model.onnx"]["digest"] == md5_b64(url[len("file://"):] + "/model.onnx")
    with open(os.path.join(scenario["workdir"], "package", "manifest.json")) as f:
        manifest = json.load(f)
    assert metadata(art)["files"]["model.onnx"] == [x for x in manifest["files"] if x["path"] == "model.onnx"][0]["sha256"]


def test_log_result_of_a_pipeline_stage(scenario, clean_wandb_env, tmp_path):
    """What `pytools run` does after each stage: log what ran, not what was up to date."""
    import shutil

    from pytools.build.pipeline import Pipeline
    from pytools.tracking.wandb_tracker import Tracker

    workdir = str(tmp_path / "work")
    shutil.copytree(scenario["workdir"], workdir, ignore=shutil.ignore_patterns("tracking", "fleet"))
    tracker = Tracker(scenario["cfg"], workdir)
    pipe = Pipeline(scenario["cfg"], workdir, force=True)
    tracker.log_result(pipe.run("parity"))
    tracker.log_result(Pipeline(scenario["cfg"], workdir).run("bench"))      # up to date: not logged
    assert [r["stage"] for r in tracker.runs()] == ["parity"]
    run = RunFile(run_dir(tracker.runs()[0]["url"]))
    assert run.run["job_type"] == "parity"
    used = run.artifact("crop-weed-classifier-onnx", used=True)
    assert entries(used)["model.onnx"]["ref"] == "file://" + os.path.join(workdir, "export", "model.onnx")
    assert run.metrics()["parity/passed"] == 1
