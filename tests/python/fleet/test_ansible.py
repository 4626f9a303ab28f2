"""The Ansible side: real ansible-playbook (through ansible-runner) against the simulated fleet."""
import json
import os
import shutil
import subprocess
import sys

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
    assert code == 5, err  # a robot deferred: not every robot is on 1.1.0
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
                                            "facts": {"runtimes": ["onnxruntime"]}},
             # no systemd in this container: the unit is written, not enabled
             "robot_model_recover_unit_dir": str(place), "robot_model_recover_unit_enable": False}
    run = run_playbook("install", fleet.inventory, str(tmp_path), extravars=extra)
    assert run["rc"] == 0, run
    result = run["hosts"]["robot-001"]
    assert result["outcome"] == "installed" and result["current"] is None
    assert (place / "var" / "models" / "releases").is_dir()
    unit = (place / "model-agent-recover.service").read_text()
    assert "Before=inference.service" in unit and "WantedBy=multi-user.target" in unit
    exec_start = [l for l in unit.splitlines() if l.startswith("ExecStart=")][0]
    boot = subprocess.run(exec_start[len("ExecStart="):], shell=True, stdout=subprocess.PIPE,
                          timeout=60)  # what systemd runs at boot
    assert boot.returncode == 0 and json.loads(boot.stdout)["recovered"] is None
    status = run_playbook("status", fleet.inventory, str(tmp_path), extravars=extra)
    assert status["hosts"]["robot-001"]["facts"] == {"runtimes": ["onnxruntime"]}


def ini_inventory(fleet, base):
    """The fleet as an operations team writes it: INI groups, group_vars/ and host_vars/."""
    import yaml
    os.makedirs(base / "group_vars")
    os.makedirs(base / "host_vars")
    r1, r2, r3 = fleet.robots
    (base / "hosts.ini").write_text(
        "[canary]\n%s\n\n[field_east]\n%s\n%s\n\n[field:children]\nfield_east\n"
        % (r1.name, r2.name, r3.name))
    common = {"ansible_user": "root", "ansible_ssh_private_key_file": fleet.client_key,
              "ansible_python_interpreter": sys.executable, "model_agent_python": sys.executable,
              "model_agent_known_hosts": fleet.known_hosts,
              "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes"
              % fleet.known_hosts}
    (base / "group_vars" / "all.yml").write_text(yaml.safe_dump(common))
    for r in fleet.robots:  # only in host_vars: a reader that ignores them cannot reach a robot
        (base / "host_vars" / (r.name + ".yml")).write_text(yaml.safe_dump(r.hostvars()))
    return str(base / "hosts.ini")


def test_ini_inventory_with_group_vars_and_host_vars_on_both_transports(make_fleet, packages,
                                                                       cli, tmp_path):
    fleet = make_fleet(3)
    inventory = ini_inventory(fleet, tmp_path / "inv")
    waves = "group:canary,group:field_east"
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", inventory, "--package",
                         packages.v2, "--workdir", str(tmp_path / "ssh"), "--yes", "--waves",
                         waves)
    assert code == 0 and rec["state"] == "completed", err
    assert [w["robots"] for w in rec["waves"]] == [["robot-001"], ["robot-002", "robot-003"]]
    code, status, err = cli("fleet", "status", inventory)
    assert code == 0 and [r["version"] for r in status["robots"]] == ["1.1.0"] * 3, err
    code, where, err = cli("where", "demo", "--workdir", str(tmp_path / "ssh"), "--fleet",
                           inventory)
    assert code == 0 and all(r["agrees"] for r in where["robots"]), err
    # The Ansible transport, from a work directory deep enough that ControlPath sockets under
    # it would pass the 108-byte limit; paused for approval, resumed without --transport.
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "work"
    v3 = packages.make("1.3.0")
    code, rec, err = cli("rollout", "demo", "1.3.0", "--fleet", inventory, "--package", v3,
                         "--workdir", str(deep), "--transport", "ansible", "--approval",
                         "external", "--waves", waves)
    assert code == 4, err
    assert rec["robots"]["robot-001"]["outcome"] == "activated", rec["robots"]
    code, _, err = cli("rollout", "demo", "1.3.0", "--fleet", inventory, "--package", v3,
                       "--workdir", str(deep), "--resume", "--approved-by", "bob",
                       "--transport", "ssh")
    assert code == 2 and "keeps it" in err
    code, rec, err = cli("rollout", "demo", "1.3.0", "--fleet", inventory, "--package", v3,
                         "--workdir", str(deep), "--resume", "--approved-by", "bob")
    assert code == 0 and rec["state"] == "completed", err
    assert rec["options"]["transport"] == "ansible"
    assert [current(r) for r in fleet.robots] == ["1.3.0"] * 3


def test_ansible_host_key_change_with_threshold_zero_stops_the_wave(make_fleet, packages, cli,
                                                                    tmp_path):
    from pytools.fleet.sim.simulate import keygen
    fleet = make_fleet(3)
    impostor = str(tmp_path / "impostor")
    keygen(impostor)
    fake = " ".join(open(impostor + ".pub").read().split()[:2])
    lines = open(fleet.known_hosts).read().splitlines()
    r2 = fleet.robot("robot-002")
    lines[1] = "[%s]:%d %s" % (r2.address, r2.port, fake)
    with open(fleet.known_hosts, "w") as f:
        f.write("\n".join(lines) + "\n")
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--package",
                         packages.v2, "--workdir", str(tmp_path), "--yes", "--transport",
                         "ansible", "--waves", "canary,100%", "--max-failures", "0")
    assert code == 3 and rec["state"] == "halted", err
    assert rec["robots"]["robot-001"]["outcome"] == "activated"
    entry = rec["robots"]["robot-002"]
    assert entry["outcome"] == "hostkey" and "Host key verification failed" in entry["error"]
    # Threshold 0: the host-key failure stops the wave before robot-003 is deployed.
    assert rec["robots"]["robot-003"]["outcome"] == "skipped", rec["robots"]["robot-003"]
    assert [current(r) for r in fleet.robots] == ["1.1.0", "1.0.0", "1.0.0"]


def test_ansible_rollback_playbook_twice_does_not_toggle(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--package",
                         packages.v2, "--workdir", str(tmp_path), "--yes")
    assert code == 0, err
    for expected in ("rolled-back", "already-current"):
        back = run_playbook("rollback", fleet.inventory, str(tmp_path),
                            extravars={"robot_model_owner": "ops"})
        assert back["rc"] == 0 and back["hosts"]["robot-001"]["outcome"] == expected
        assert current(fleet.robot("robot-001")) == "1.0.0"
