"""Parity: statistics, tolerances, reports (JSON, JUnit, Markdown), input sources, failures."""
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from build_helpers import edit_config
from pytools.build.parity import ErrorStat, OutputComparison


def test_streamed_statistics_match_numpy():
    rng = np.random.default_rng(0)
    values = np.abs(rng.standard_normal(100_000) * 1e-3).astype(np.float32)
    stat = ErrorStat()
    for chunk in np.array_split(values, 37):
        stat.update(chunk)
    s = stat.summary()
    assert s["max"] == pytest.approx(float(values.max()))
    assert s["mean"] == pytest.approx(float(values.mean(dtype=np.float64)), rel=1e-9)
    for q, key in ((0.5, "median"), (0.99, "p99")):
        exact = float(np.quantile(values, q))
        assert exact <= s[key] <= exact * 1.0235 + 1e-12  # the bin's upper edge: never below the truth


def test_elementwise_and_aggregate_verdicts():
    ref = np.zeros((4, 10), dtype=np.float32)
    out = ref.copy()
    out[2, 7] = 0.5
    strict = OutputComparison({"name": "y", "kind": "classifier", "topk": 3},
                              {"atol": 1e-3, "rtol": 1e-3, "statistic": "elementwise"})
    strict.update(ref, out, offset=8)
    passed, why = strict.verdict()
    assert not passed and "1 of 40 elements exceed atol" in why
    assert strict.worst["index"] == [10, 7]  # batch offset added
    mean = OutputComparison({"name": "y"}, {"atol": 0.02, "rtol": 0.0, "statistic": "mean"})
    mean.update(ref, out, 0)
    assert mean.verdict() == (True, None)  # mean abs error 0.0125 <= 0.02
    nan = OutputComparison({"name": "y"}, {"atol": 1.0, "rtol": 1.0, "statistic": "max"})
    out[0, 0] = np.nan
    nan.update(ref, out, 0)
    assert nan.verdict()[0] is False and "1 NaN" in nan.verdict()[1]


def test_reports_written(crop_weed_done):
    reports = os.path.join(crop_weed_done["workdir"], "reports")
    data = json.load(open(os.path.join(reports, "parity.json")))
    groups = data["inputs"]["shape_groups"]
    # 16 recorded images at every point of the batch axis (1..32, opt 8) and a seeded one between;
    # every batch is full (the last wraps around), so batch 32 sees each image twice.
    assert [g["tier"] for g in groups] == ["min", "opt", "max", "mid"]
    assert [g["batch_size"] for g in groups][:3] == [1, 8, 32] and 1 < groups[3]["batch_size"] < 32
    assert all(g["source"] == "images" and g["samples"] == 16 for g in groups)
    assert data["passed"] and data["inputs"]["source"] == "images" and not data["inputs"]["weak_evidence"]
    assert data["samples"] == sum(-(-16 // g["batch_size"]) * g["batch_size"] for g in groups)
    assert data["precision"]["reference"] == "fp32"
    by_name = {b["name"]: b for b in data["backends"]}
    assert by_name["tensorrt"]["status"] == "skipped"
    assert by_name["tensorrt"]["reason"] == "TensorRT is not available on this machine"
    ort_logits = by_name["onnxruntime"]["outputs"][0]
    for key in ("abs_error", "rel_error"):
        assert set(ort_logits[key]) == {"max", "mean", "median", "p99"}
    assert ort_logits["top1_agreement"] == 1.0 and ort_logits["topk"] == 2
    assert ort_logits["cosine_similarity"] > 0.9999
    hist = ort_logits["abs_error_histogram"]
    assert sum(hist["counts"]) == ort_logits["elements"] and hist["upper_edges"] == sorted(hist["upper_edges"])
    worst = np.load(os.path.join(reports, "parity_worst.npz"))
    assert worst["onnxruntime/logits/reference"].shape == (2,)
    suite = ET.parse(os.path.join(reports, "parity.xml")).getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("parity.%s" % b, "logits [%s]" % g["name"]) for g in groups for b in
                          ("exported-program", "torchscript", "onnxruntime", "onnxruntime-simplified",
                           "tensorrt")}
    assert cases[("parity.tensorrt", "logits [batch=32]")].find("skipped") is not None
    assert suite.get("tests") == "20" and suite.get("failures") == "0" and suite.get("skipped") == "4"
    by_group = {g["name"]: g for g in by_name["onnxruntime"]["shape_groups"]}
    assert by_group["batch=32"]["outputs"][0]["elements"] == 32 * 2
    md = open(os.path.join(reports, "parity.md")).read()
    assert "| onnxruntime | logits | batch=32 | fp32 |" in md and "skipped: TensorRT is not available" in md
    assert "Shape groups: batch=1 (min, 16 samples); batch=8 (opt, 16 samples); batch=32 (max" in md


def test_parity_failure_names_backend_output_statistic_and_index(cli, crop_weed):
    def strict(cfg):
        cfg["parity"]["tolerances"] = {"fp32": {"atol": 0.0, "rtol": 0.0, "statistic": "max"}}
        cfg["parity"]["backends"] = ["onnxruntime"]
    edit_config(crop_weed["config"], strict)
    res = cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"])
    assert res.code == 3
    line = res.error_line
    for text in ("parity failed:", "backend onnxruntime", "output logits", "statistic max",
                 "> atol 0", "worst element at index ["):
        assert text in line, line
    # The reports of the failed run are there for Jenkins; the stage is not taken as done.
    suite = ET.parse(os.path.join(crop_weed["workdir"], "reports", "parity.xml")).getroot()
    report = json.load(open(os.path.join(crop_weed["workdir"], "reports", "parity.json")))
    failing = [g for g in report["backends"][0]["shape_groups"] if not g["passed"]]
    assert failing and suite.get("failures") == str(len(failing)) == str(len(report["failures"]))
    state = json.load(open(os.path.join(crop_weed["workdir"], "state", "parity.json")))
    assert state["status"] == "failed"
    again = cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"])
    assert again.code == 3  # a failed stage is re-checked, never "up to date"
    pkg = cli("package", crop_weed["config"], "--workdir", crop_weed["workdir"])
    assert pkg.code != 0 and "refusing to package: parity failed" in pkg.error_line


def test_npz_inputs(cli, crop_weed, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(os.path.join(crop_weed["folder"], "golden.npz"),
             image=rng.standard_normal((20, 3, 64, 64)).astype(np.float32))
    edit_config(crop_weed["config"], lambda c: c["parity"].update(inputs={"source": "npz", "path": "golden.npz"}))
    res = cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    report = json.load(open(os.path.join(crop_weed["workdir"], "reports", "parity.json")))
    assert {g["samples"] for g in report["inputs"]["shape_groups"]} == {20}
    assert report["inputs"]["weak_evidence"] is False


def test_npz_with_wrong_shape(cli, crop_weed):
    np.savez(os.path.join(crop_weed["folder"], "bad.npz"), image=np.zeros((4, 3, 32, 32), np.float32))
    edit_config(crop_weed["config"], lambda c: c["parity"].update(inputs={"source": "npz", "path": "bad.npz"}))
    res = cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"])
    assert res.code == 2 and "array 'image' has shape [4, 3, 32, 32]" in res.error_line


def test_random_inputs_are_flagged_as_weak(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["parity"].update(inputs={"source": "random", "samples": 8}))
    assert cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"]).code == 0
    md = open(os.path.join(crop_weed["workdir"], "reports", "parity.md")).read()
    assert "Random inputs are weaker evidence" in md
