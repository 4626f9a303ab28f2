"""Parity over the whole dynamic range: shape groups, multi-group golden files, zero-size outputs."""
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from build_helpers import edit_config
from evidence_helpers import model_config, seq_config
from pytools.build.golden import GoldenInputs, random_groups
from pytools.build.parity import OutputComparison
from pytools.core import config as cfg


def report(workdir):
    return json.load(open(os.path.join(str(workdir), "reports", "parity.json")))


def test_random_groups_cover_min_opt_max_and_a_seeded_point_between(tmp_path):
    c = cfg.load(seq_config(tmp_path))
    groups = random_groups(c, 4)
    assert [g.tier for g in groups] == ["min", "opt", "max", "mid"]
    assert [g.dims for g in groups[:3]] == [{"batch": 1, "seq": 2}, {"batch": 2, "seq": 8}, {"batch": 4, "seq": 16}]
    mid = groups[3].dims
    assert 1 < mid["batch"] < 4 and 2 < mid["seq"] < 16 and mid["seq"] != 8
    assert groups[2].shapes == {"x": [4, 16, 4]} and groups[2].name == "batch=4,seq=16"
    assert [g.dims for g in random_groups(c, 4)] == [g.dims for g in groups]  # seeded: the same every run
    golden = GoldenInputs(c)
    for g in golden.groups:
        batches = list(golden.batches(g))
        assert all(feed["x"].shape == tuple(g.shapes["x"]) for _, feed in batches)
        assert sum(len(feed["x"]) for _, feed in batches) >= 4


def test_model_wrong_only_at_max_fails_parity(cli, tmp_path):
    """The ONNX is right for short sequences only: parity at opt alone would pass it. (The model is
    swapped after export so the test does not depend on what the exporter makes of the branch.)"""
    path = seq_config(tmp_path)
    work = str(tmp_path / "work")
    for stage in (("checkpoint", "fetch"), ("export",)):
        assert cli(*stage, path, "--workdir", work).code == 0
    edit_config(path, lambda c: c["model"].update({"import": "range_models:LongSeqNet"}))
    res = cli("parity", path, "--workdir", work)
    assert res.code == 3, res.err
    assert "shape group batch=4,seq=16" in res.error_line and "output y" in res.error_line
    data = report(work)
    assert data["passed"] is False
    verdicts = {g["name"]: g["passed"] for g in data["backends"][0]["shape_groups"]}
    assert verdicts["batch=1,seq=2"] and verdicts["batch=2,seq=8"] and not verdicts["batch=4,seq=16"]
    mid = [g for g in data["inputs"]["shape_groups"] if g["tier"] == "mid"][0]
    assert verdicts[mid["name"]] == (mid["dims"]["seq"] <= 12)
    overall = data["backends"][0]["outputs"][0]
    assert overall["passed"] is False and "batch=4,seq=16" in overall["failure"]
    suite = ET.parse(os.path.join(work, "reports", "parity.xml")).getroot()
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "y [batch=4,seq=16]" in failed and "y [batch=2,seq=8]" not in failed


def test_multi_group_npz_covers_the_range_without_random_inputs(cli, tmp_path):
    path = seq_config(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(str(tmp_path / "golden.npz"), **{
        "short/x": rng.standard_normal((3, 2, 4)).astype(np.float32),
        "long/x": rng.standard_normal((3, 16, 4)).astype(np.float32)})
    edit_config(path, lambda c: c["parity"].update(inputs={"source": "npz", "path": "golden.npz"}))
    work = str(tmp_path / "work")
    res = cli("run", path, "--workdir", work, "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    data = report(work)
    groups = data["inputs"]["shape_groups"]
    assert {g["recorded"] for g in groups} == {"long", "short"} and not data["inputs"]["weak_evidence"]
    assert {(g["dims"]["seq"], g["batch_size"]) for g in groups} >= {(2, 1), (2, 4), (16, 1), (16, 4)}
    assert "long:batch=4,seq=16" in [g["name"] for g in groups]


def test_single_group_npz_gets_random_groups_for_the_uncovered_range(cli, tmp_path):
    path = seq_config(tmp_path)
    np.save(str(tmp_path / "x.npy"), np.zeros((3, 8, 4), np.float32))
    edit_config(path, lambda c: c["parity"].update(inputs={"source": "npy", "path": "x.npy"}))
    golden = GoldenInputs(cfg.load(path))
    sources = {g.source for g in golden.groups}
    assert sources == {"npy", "random"} and golden.weak_evidence
    assert "do not reach a dimension's min or max (seq)" in golden.describe()["description"]
    assert {g.dims["seq"] for g in golden.groups if g.source == "npy"} == {8}
    assert {2, 16} <= {g.dims["seq"] for g in golden.groups if g.source == "random"}


def test_npy_folder_holds_one_group_per_file(tmp_path):
    path = seq_config(tmp_path)
    os.makedirs(str(tmp_path / "golden"))
    for name, seq in (("a", 2), ("b", 16)):
        np.save(str(tmp_path / "golden" / (name + ".npy")), np.ones((2, seq, 4), np.float32))
    edit_config(path, lambda c: c["parity"].update(inputs={"source": "npy", "path": "golden"}))
    golden = GoldenInputs(cfg.load(path))
    assert not golden.weak_evidence and {g.recorded for g in golden.groups} == {"a", "b"}


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((2, 20, 4), np.float32)}, "array 'x' axis 1 (seq) is 20, outside dims.seq 2..16"),
    ({"g/x": np.zeros((2, 8, 4), np.float32), "x": np.zeros((2, 8, 4), np.float32)},
     "mixes plain and <group>/<input> array names"),
    ({"g/y": np.zeros((2, 8, 4), np.float32)}, "has no array 'g/x'"),
])
def test_bad_golden_files(cli, tmp_path, arrays, message):
    path = seq_config(tmp_path)
    np.savez(str(tmp_path / "bad.npz"), **arrays)
    edit_config(path, lambda c: c["parity"].update(inputs={"source": "npz", "path": "bad.npz"}))
    work = str(tmp_path / "work")
    assert cli("checkpoint", "fetch", path, "--workdir", work).code == 0
    assert cli("export", path, "--workdir", work).code == 0
    res = cli("parity", path, "--workdir", work)
    assert res.code == 2 and message in res.error_line, res.err
    assert "parity.inputs.path" in res.error_line and not os.path.exists(os.path.join(work, "state", "parity.json"))


def test_zero_detections_compare_and_pass(cli, tmp_path):
    path = model_config(tmp_path, "DetectorNet", [{"name": "image", "shape": ["batch", 3, 8, 8]}],
                        [{"name": "boxes", "shape": ["detections"]}, {"name": "best"}],
                        dims={"batch": {"min": 1, "opt": 2, "max": 4}, "detections": {"min": 1, "opt": 1, "max": 256}})
    work = str(tmp_path / "work")
    res = cli("run", path, "--workdir", work, "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    boxes = report(work)["backends"][0]["outputs"][0]
    assert boxes["name"] == "boxes" and boxes["passed"] and boxes["elements"] == 0
    assert boxes["abs_error"]["max"] == 0.0 and boxes["cosine_similarity"] == 1.0


def test_zero_size_outputs_must_agree_in_shape():
    tol = {"atol": 1e-4, "rtol": 1e-3, "statistic": "p99"}
    same = OutputComparison({"name": "boxes"}, tol)
    same.update(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), 0)
    assert same.verdict() == (True, None) and same.report()["abs_error"]["p99"] == 0.0
    other = OutputComparison({"name": "boxes"}, tol)
    other.update(np.zeros((0, 4), np.float32), np.zeros((0, 5), np.float32), 0)
    assert other.verdict() == (False, "output boxes has shape [0, 5], reference [0, 4]")
    some = OutputComparison({"name": "boxes"}, tol)
    some.update(np.zeros((0, 4), np.float32), np.zeros((2, 4), np.float32), 0)
    assert some.verdict()[0] is False


def test_static_shapes_are_one_group(tmp_path):
    path = seq_config(tmp_path)
    edit_config(path, lambda c: c.update(dims={}, inputs=[{"name": "x", "shape": [2, 8, 4]}]))
    groups = random_groups(cfg.load(path), 3)
    assert [(g.tier, g.name, g.batch, g.shapes) for g in groups] == [("opt", "static", 2, {"x": [2, 8, 4]})]
    golden = GoldenInputs(cfg.load(path))
    assert [len(feed["x"]) for _, feed in golden.batches()] == [2, 2]  # 3 samples: the last batch wraps
