"""Caching: unchanged stages are up to date; a change re-runs exactly the stages that depend on it."""
import json
import time

from foundation_helpers import edit_config
from pytools_testlib import run_pytools


def statuses(res):
    return {s["stage"]: s["status"] for s in res.json["stages"]}


def test_rerun_is_up_to_date_and_fast(crop_weed):
    started = time.monotonic()
    res = run_pytools("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    assert set(statuses(res).values()) == {"up to date"}
    # Functional check, not a benchmark: a no-op run must not import torch or re-run work.
    assert res.json["seconds"] < 5, res.json["seconds"]
    assert time.monotonic() - started < 30


def test_tolerance_change_reruns_parity_and_package_only(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["parity"].update(
        tolerances={"fp32": {"atol": 1e-3, "rtol": 1e-2, "statistic": "max"}}))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    assert statuses(res) == {"checkpoint": "up to date", "export": "up to date", "engine": "up to date",
                             "parity": "ran", "bench": "up to date", "package": "ran"}


def test_bench_change_reruns_bench_and_package_only(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["bench"].update(iterations=5))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert statuses(res) == {"checkpoint": "up to date", "export": "up to date", "engine": "up to date",
                             "parity": "up to date", "bench": "ran", "package": "ran"}


def test_checkpoint_change_reruns_everything(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["train"].update(seed=7))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    assert statuses(res) == {"checkpoint": "ran", "export": "ran", "engine": "skipped",
                             "parity": "ran", "bench": "ran", "package": "ran"}


def test_export_change_reruns_engine(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c.update(export={"opset": 18}))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    st = statuses(res)
    assert st["checkpoint"] == "up to date" and st["export"] == "ran" and st["engine"] == "skipped"


def test_force_reruns(cli, crop_weed):
    res = cli("export", crop_weed["config"], "--workdir", crop_weed["workdir"], "--force", "--json")
    assert res.json["status"] == "ran"


def test_edited_output_is_noticed(cli, crop_weed):
    import os

    onnx_path = os.path.join(crop_weed["workdir"], "export", "model.sim.onnx")
    with open(onnx_path, "ab") as f:
        f.write(b"\0")
    res = cli("export", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.json["status"] == "ran"


def test_json_output_is_clean(cli, crop_weed):
    res = cli("parity", crop_weed["config"], "--workdir", crop_weed["workdir"], "--force", "--json")
    assert res.code == 0
    assert json.loads(res.out)["summary"]["passed"] is True
