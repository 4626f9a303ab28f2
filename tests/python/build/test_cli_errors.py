"""Failures are one `error:` line, a JSON object with --json, and the documented exit codes."""
import json
import os

import pytest

from build_helpers import edit_config, write_config
from pytools.core.console import one_line
from pytools_testlib import run_pytools


def json_error(res):
    data = json.loads(res.out)
    assert set(data) == {"error", "code"} and data["code"] == res.code
    assert res.error_line == "error: " + data["error"]
    assert len([l for l in res.err.splitlines() if l.startswith("error:")]) == 1
    return data


@pytest.mark.parametrize("args, code, text", [
    (["run", "missing.yaml"], 2, "missing.yaml: cannot read config"),
    (["parity", "missing.yaml"], 2, "missing.yaml: cannot read config"),
    (["config", "check", "missing.yaml"], 2, "missing.yaml: cannot read config"),
    (["run"], 2, "pytools run: the following arguments are required: CONFIG"),
    (["parity", "x.yaml", "--no-such-option"], 2, "unrecognized arguments: --no-such-option"),
    (["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    (["package", "verify", "no-such-dir"], 3, "no-such-dir: no manifest.json"),
])
def test_json_error_object_and_exit_code(cli, args, code, text):
    res = cli(*(args + ["--json"]))
    assert res.code == code, res.err
    assert text in json_error(res)["error"]


def test_a_stage_run_out_of_order_is_exit_1(cli, tmp_path):
    path = write_config(tmp_path)
    res = cli("parity", path, "--workdir", str(tmp_path / "work"), "--json")
    assert res.code == 1 and "has not run" in json_error(res)["error"]


def test_config_error_names_file_and_key(cli, tmp_path):
    path = write_config(tmp_path, inputs=[{"name": "image", "shape": ["batch", 3, 64, 64]},
                                          {"name": "ids", "dtype": "int64", "shape": ["batch", 4]}])
    res = cli("run", path, "--json")
    assert res.code == 2
    assert json_error(res)["error"].startswith("%s: inputs[1].range: missing: integer input 'ids'" % path)


def test_failed_check_is_exit_3_with_json_and_the_html_report(cli, crop_weed):
    edit_config(crop_weed["config"], lambda c: c["parity"].update(
        tolerances={"fp32": {"atol": 0.0, "rtol": 0.0, "statistic": "max"}}, backends=["onnxruntime"]))
    html = os.path.join(crop_weed["workdir"], "reports", "report.html")
    os.unlink(html)
    res = cli("run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json", "--no-publish",
              "--no-rollout")
    assert res.code == 3
    error = json_error(res)["error"]
    assert error.startswith("parity failed: backend onnxruntime, shape group batch=") and "HTML report: " + html in error
    assert "FAILED" in open(html).read()  # written although parity failed: that is when it is needed


def test_messages_are_one_plain_line():
    assert one_line("\x1b[31mcorrupt\x1b[0m checkpoint:\n  line two") == "corrupt checkpoint: line two"


def test_no_onnxruntime_warnings_on_stderr(crop_weed):
    res = run_pytools("parity", crop_weed["config"], "--workdir", crop_weed["workdir"], "--force")
    assert res.code == 0, res.err
    assert "[W:onnxruntime" not in res.err and "onnxruntime" not in res.err.lower(), res.err


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    """A Jenkins abort sends SIGTERM: the run stops with the interrupted line and exit 130, and the
    stage it was in leaves no state behind (it re-runs next time)."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    shutil.copytree(os.path.join(root, "examples", "crop_weed"), tmp_path / "crop_weed")
    path = str(tmp_path / "crop_weed" / "model.yaml")
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "pytools", "run", path, "--workdir", str(work),
                             "--no-publish", "--no-rollout", "--debug"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (work / "export").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert not (work / "reports" / "parity.json").exists()
