"""The Ansible side: real ansible-playbook (through ansible-runner) against the simulated fleet."""
import os
import shutil
import subprocess

import pytest
from fleet_testlib import current, needs_root

from pytools.fleet.transports.ansible import ANSIBLE_DIR, run_playbook

pytestmark = [needs_root, pytest.mark.timeout(300)]


def test_rollout_with_ansible_transport_then_status_and_rollback(make_fleet, packages, cli,
                                                                  tmp_path):
    fleet = make_fleet(3)
    fleet.robot("robot-003").set_busy(True)
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--package",
                         packages.v2, "--workdir", str(tmp_path), "--yes", "--transport",
                         "ansible", "--waves", "canary,100%")
    assert code == 0, err
    assert rec["options"]["transport"] == "ansible"
    outcomes = {n: r["outcome"] for n, r in rec["robots"].items()}
    assert outcomes == {"robot-001": "activated", "robot-002": "activated",
                        "robot-003": "deferred"}
    assert rec["robots"]["robot-001"]["previous"] == "1.0.0"
    assert [current(r) for r in fleet.robots] == ["1.1.0", "1.1.0", "1.0.0"]
    for robot in fleet.robots:  # every lease was given back
        assert not os.path.exists(os.path.join(robot.model_root, "deploy.lease"))
    status = run_playbook("status", fleet.inventory, str(tmp_path))
    assert status["rc"] == 0
    assert {h: v["current"] for h, v in status["hosts"].items()} == {
        "robot-001": "1.1.0", "robot-002": "1.1.0", "robot-003": "1.0.0"}
    back = run_playbook("rollback", fleet.inventory, str(tmp_path),
                        extravars={"robot_model_owner": "ops"}, limit="robot-002")
    assert back["rc"] == 0 and back["hosts"]["robot-002"]["outcome"] == "rolled-back"
    assert current(fleet.robot("robot-002")) == "1.0.0"
    # Ansible kept its state in the work directory, not in the home directory.
    assert os.path.isdir(tmp_path / "ansible" / "runner" / "artifacts")


def test_ansible_halts_wave_on_platform_refusal(make_fleet, packages, cli, tmp_path):
    from pytools.fleet.sim.demo import make_demo_package
    fleet = make_fleet(2)
    trt = str(tmp_path / "trt")
    make_demo_package(trt, "2.0.0", platform="trt8.5-sm72-l4t35.3.1")
    code, rec, _ = cli("rollout", "demo", "2.0.0", "--fleet", fleet.inventory, "--package", trt,
                       "--workdir", str(tmp_path), "--yes", "--transport", "ansible",
                       "--waves", "100%")
    assert code == 3 and rec["state"] == "halted"
    canary = rec["robots"]["robot-001"]
    assert canary["outcome"] == "refused" and "tensorrt" in canary["error"]
    # The play deploys the wave's canary robots first: their refusal stops the rest.
    assert rec["robots"]["robot-002"]["outcome"] == "skipped"
    assert [current(r) for r in fleet.robots] == ["1.0.0", "1.0.0"]
    for robot in fleet.robots:
        assert os.listdir(os.path.join(robot.model_root, "incoming")) == []
        assert not os.path.exists(os.path.join(robot.model_root, "deploy.lease"))


@pytest.mark.skipif(not shutil.which("ansible-lint"), reason="ansible-lint is not installed")
def test_ansible_lint_clean(tmp_path):
    proc = subprocess.run(["ansible-lint", "--offline", "-q", "."], cwd=ANSIBLE_DIR,
                          env=dict(os.environ, ANSIBLE_HOME=str(tmp_path)),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]


def test_install_playbook_puts_agent_and_config_on_a_robot(make_fleet, tmp_path):
    fleet = make_fleet(1, install=False, services=False)
    place = tmp_path / "robot-os"
    extra = {"model_agent_path": str(place / "opt" / "robot_agent.py"),
             "model_agent_config": str(place / "etc" / "agent.json"),
             "robot_model_agent_settings": {"root": str(place / "var" / "models"),
                                            "facts": {"runtimes": ["onnxruntime"]}}}
    run = run_playbook("install", fleet.inventory, str(tmp_path), extravars=extra)
    assert run["rc"] == 0, run
    result = run["hosts"]["robot-001"]
    assert result["outcome"] == "installed" and result["current"] is None
    assert (place / "var" / "models" / "releases").is_dir()
    status = run_playbook("status", fleet.inventory, str(tmp_path), extravars=extra)
    assert status["hosts"]["robot-001"]["facts"] == {"runtimes": ["onnxruntime"]}
