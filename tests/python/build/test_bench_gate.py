"""Benchmark results and the p99 regression gate."""
import json
import os

from build_helpers import edit_config


def test_bench_results(crop_weed_done):
    data = json.load(open(os.path.join(crop_weed_done["workdir"], "reports", "bench.json")))
    by_name = {b["name"]: b for b in data["backends"]}
    assert by_name["tensorrt"]["status"] == "skipped"
    for name in ("torch", "torchscript", "onnxruntime"):
        results = by_name[name]["results"]
        assert [r["batch_size"] for r in results] == [1, 8]
        for r in results:
            assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
            assert r["throughput"] > 0
        assert [r["shapes"] for r in results] == [{"image": [1, 3, 64, 64]}, {"image": [8, 3, 64, 64]}]
    assert "| onnxruntime | batch=8 | image [8, 3, 64, 64] |" in open(os.path.join(crop_weed_done["workdir"], "reports", "bench.md")).read()


def _baseline(workdir, tmp_path, factor):
    data = json.load(open(os.path.join(workdir, "reports", "bench.json")))
    for b in data["backends"]:
        for r in b["results"]:
            r["p99_ms"] *= factor
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    return path


def test_gate_fails_on_p99_regression(cli, crop_weed, tmp_path):
    edit_config(crop_weed["config"], lambda c: c["bench"].update(backends=["onnxruntime"], max_p99_regression_pct=10))
    baseline = _baseline(crop_weed["workdir"], tmp_path, 0.01)  # a baseline 100x faster than reality
    res = cli("bench", crop_weed["config"], "--workdir", crop_weed["workdir"], "--baseline", baseline)
    assert res.code == 3
    assert "benchmark gate failed: backend onnxruntime, shape batch=1: p99" in res.error_line
    assert "slower than the baseline" in res.error_line


def test_gate_passes_within_limit(cli, crop_weed, tmp_path):
    edit_config(crop_weed["config"], lambda c: c["bench"].update(backends=["onnxruntime"]))
    baseline = _baseline(crop_weed["workdir"], tmp_path, 100.0)
    res = cli("bench", crop_weed["config"], "--workdir", crop_weed["workdir"], "--baseline", baseline, "--json")
    assert res.code == 0, res.err
    result = json.load(open(os.path.join(crop_weed["workdir"], "reports", "bench.json")))
    assert all(r["gate"] == "ok" and r["p99_change_pct"] < 0 for r in result["backends"][0]["results"])


def test_bad_baseline_file(cli, crop_weed, tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    res = cli("bench", crop_weed["config"], "--workdir", crop_weed["workdir"], "--baseline", tmp_path / "junk.json")
    assert res.code == 2 and "is not a bench.json result" in res.error_line


def test_bench_times_each_shape_group(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["bench"].update(backends=["onnxruntime"], iterations=2))
    res = cli("bench", crop_weed["config"], "--workdir", crop_weed["workdir"], "--shape-groups", "--json")
    assert res.code == 0, res.err
    results = json.load(open(os.path.join(crop_weed["workdir"], "reports", "bench.json")))["backends"][0]["results"]
    parity = json.load(open(os.path.join(crop_weed["workdir"], "reports", "parity.json")))
    assert [r["label"] for r in results] == [g["name"] for g in parity["inputs"]["shape_groups"]]
    assert results[2]["shapes"] == {"image": [32, 3, 64, 64]}  # the max of dims.batch
    summary = res.json["summary"]["results"]["onnxruntime"]
    assert set(summary) == {r["label"] for r in results}
    # The option is part of the stage's inputs: without it the batch sizes are timed again.
    again = cli("bench", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert again.json["status"] == "ran" and set(again.json["summary"]["results"]["onnxruntime"]) == {"1", "8"}
