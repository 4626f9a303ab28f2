"""Both examples through the whole chain as separate processes, the way the README runs them."""
import json
import os

import pytest

from pytools_testlib import copy_example, run_pytools


@pytest.mark.timeout(600)
def test_field_segmentation_end_to_end(tmp_path):
    folder = copy_example("field_segmentation", tmp_path)
    res = run_pytools("run", os.path.join(folder, "model.yaml"), cwd=str(tmp_path))
    assert res.code == 0, res.err
    for stage in ("checkpoint", "export", "engine", "parity", "bench", "package"):
        assert stage in res.out
    assert "skipped: TensorRT is not available" not in res.out  # the table shows the reason alone
    assert "TensorRT is not available on this machine" in res.out
    pkg = tmp_path / "work" / "field-segmenter" / "package"
    verify = run_pytools("package", "verify", pkg, "--json")
    assert verify.code == 0, verify.err
    manifest = json.load(open(pkg / "manifest.json"))
    assert [o["name"] for o in manifest["runtime"]["outputs"]] == ["logits", "mask"]
    assert manifest["runtime"]["outputs"][1]["shape"] == ["batch", 1, 64, 64]
    assert manifest["evidence"]["parity"]["backends"]["onnxruntime"]["outputs"]["mask"]["passed"]


def test_help_for_every_command():
    for args in (["--help"], ["run", "--help"], ["parity", "--help"], ["package", "verify", "--help"],
                 ["checkpoint", "fetch", "--help"], ["engine", "build", "--help"], ["config", "check", "--help"]):
        res = run_pytools(*args)
        assert res.code == 0 and "usage: pytools" in res.out, args
