"""Caching: unchanged stages are up to date; a change re-runs exactly the stages that depend on it."""
import json
import time

from build_helpers import edit_config
from pytools_testlib import run_pytools


def statuses(res):
    return {s["stage"]: s["status"] for s in res.json["stages"]}


def test_rerun_is_up_to_date_and_fast(crop_weed):
    started = time.monotonic()
    res = run_pytools("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    assert set(statuses(res).values()) == {"up to date"}
    # Functional check, not a benchmark: a no-op run must not import torch or re-run work.
    assert res.json["seconds"] < 5, res.json["seconds"]
    assert time.monotonic() - started < 30


def test_tolerance_change_reruns_parity_and_package_only(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["parity"].update(
        tolerances={"fp32": {"atol": 1e-3, "rtol": 1e-2, "statistic": "max"}}))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    assert statuses(res) == {"checkpoint": "up to date", "export": "up to date", "engine": "up to date",
                             "parity": "ran", "bench": "up to date", "package": "ran"}


def test_bench_change_reruns_bench_and_package_only(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["bench"].update(iterations=5))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish", "--no-rollout")
    assert statuses(res) == {"checkpoint": "up to date", "export": "up to date", "engine": "up to date",
                             "parity": "up to date", "bench": "ran", "package": "ran"}


def test_checkpoint_change_reruns_everything(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["train"].update(seed=7))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    assert statuses(res) == {"checkpoint": "ran", "export": "ran", "engine": "skipped",
                             "parity": "ran", "bench": "ran", "package": "ran"}


def test_export_change_reruns_engine(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c.update(export={"opset": 19}))
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish", "--no-rollout")
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


def test_run_publishes_to_the_local_registry(cli, crop_weed, tmp_path):
    from pytools.registry import open_registry

    registry = str(tmp_path / "registry")  # PYTOOLS_REGISTRY (conftest)
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert res.code == 0, res.err
    assert statuses(res)["publish"] == "ran"
    published = res.json["stages"][-2]["summary"]
    assert published["channel"] == "dev" and published["backend"] == "local"
    versions = open_registry({"path": registry}).versions("crop-weed-classifier")
    assert [v["version"].split("+")[0] for v in versions] == ["1.0.0"]
    again = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert statuses(again)["publish"] == "up to date" and statuses(again)["rollout"] == "up to date"
    # Same released version, different bytes: the registry refuses, and says what to do.
    edit_config(crop_weed["config"], lambda c: c["bench"].update(iterations=4))
    changed = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"])
    assert changed.code != 0
    assert "already published" in changed.error_line and "immutable" in changed.error_line
    # A pre-release of the change publishes fine.
    pre = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--prerelease", "mr.1", "--json")
    assert pre.code == 0, pre.err
    assert pre.json["stages"][-2]["summary"]["version"].startswith("1.0.0-mr.1")
    # The new package went to a fresh simulated fleet (three real sshd robots).
    assert statuses(pre)["rollout"] == "ran"
    rollout = pre.json["stages"][-1]["summary"]
    assert rollout["state"] == "completed" and rollout["outcomes"] == {"activated": 3}
