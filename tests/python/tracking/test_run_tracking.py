"""`pytools run` itself tracks: one offline W&B run per stage that ran, their ids in the manifest."""
import json
import os

from tracking_helpers import RunFile, run_dir


def test_run_leaves_a_wandb_run_per_stage(scenario):
    workdir = scenario["workdir"]
    manifest = json.load(open(os.path.join(workdir, "package", "manifest.json")))
    runs = manifest["lineage"]["tracking_runs"]
    assert [r["stage"] for r in runs] == ["checkpoint", "export", "engine", "parity", "bench"]
    parity = RunFile(run_dir(runs[3]["url"]))
    assert parity.run["run_id"] == runs[3]["id"]
    assert parity.metrics()  # parity statistics were logged
    recorded = json.load(open(os.path.join(workdir, "tracking", "runs.json")))
    by_id = {r["id"]: r["stage"] for r in recorded}
    assert all(by_id[r["id"]] == r["stage"] for r in runs)  # the manifest names runs `pytools run` logged
    assert {"package", "publish"} <= set(by_id.values())  # logged after the manifest was written


def test_report_page_written_by_run(scenario):
    page = open(os.path.join(scenario["workdir"], "reports", "report.html")).read()
    assert "crop-weed-classifier" in page and "error histogram of onnxruntime/logits" in page
