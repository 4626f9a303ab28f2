"""The engine stage where TensorRT is missing, and the platform facts it records where it is not."""
import json
import os

from pytools.build import engine


def test_engine_skipped_without_tensorrt(cli, crop_weed):
    res = cli("engine", "build", crop_weed["config"], "--workdir", crop_weed["workdir"], "--force", "--json")
    assert res.code == 0, res.err
    assert res.json["status"] == "skipped"
    assert res.json["summary"]["reason"] == "TensorRT is not available on this machine"
    human = cli("engine", "build", crop_weed["config"], "--workdir", crop_weed["workdir"], "--force")
    assert "skipped" in human.out and "TensorRT is not available on this machine" in human.out
    assert "Traceback" not in human.err


def test_l4t_release_parsing(tmp_path):
    f = tmp_path / "nv_tegra_release"
    f.write_text("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64\n")
    assert engine.l4t_release(str(f)) == "35.3.1"
    assert engine.l4t_release(str(tmp_path / "absent")) is None


def test_platform_name():
    jetson = {"tensorrt_version": "8.5.2.2", "compute_capability": "7.2", "l4t_release": "35.3.1"}
    assert engine.platform_name(jetson) == "trt8.5-sm72-l4t35.3.1"
    x86 = {"tensorrt_version": "10.3.0", "compute_capability": "8.6", "l4t_release": None}
    assert engine.platform_name(x86) == "trt10.3-sm86-x86"


def test_skipped_engine_is_in_the_summary(crop_weed_done):
    state = json.load(open(os.path.join(crop_weed_done["workdir"], "state", "engine.json")))
    assert state["status"] == "skipped" and state["outputs"] == {}
