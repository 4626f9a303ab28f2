"""`pytools rollout` / `pytools fleet status` over real SSH against the simulated fleet."""
import fcntl
import json
import re
import os
import shutil
import subprocess

import pytest
from fleet_testlib import current, needs_root, read_record

from pytools.fleet.sim.demo import make_demo_package
from pytools.fleet.sim.simulate import keygen

pytestmark = [needs_root, pytest.mark.timeout(180)]


def rollout(cli, fleet, package, version, workdir, *extra):
    return cli("rollout", "demo", version, "--fleet", fleet.inventory, "--package", package,
               "--workdir", str(workdir), "--io-timeout", "5", *extra)


def package_bytes(package):
    return sum(os.path.getsize(os.path.join(package, n)) for n in os.listdir(package))


def test_rollout_all_waves_then_status(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(3)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes",
                             "--waves", "canary,50%,100%")
    assert code == 0, err
    assert rec["state"] == "completed"
    assert [w["robots"] for w in rec["waves"]] == [["robot-001"], ["robot-002"], ["robot-003"]]
    assert [w["approver"] for w in rec["waves"]] == [None, "--yes", "--yes"]
    for name, r in rec["robots"].items():
        assert r["outcome"] == "activated" and r["previous"] == "1.0.0"
        assert r["bytes_sent"] == package_bytes(packages.v2)
        assert r["health"]["ok"] and r["health"]["detail"]["version"] == "1.1.0"
        assert current(fleet.robot(name)) == "1.1.0"
    assert read_record(str(tmp_path), "demo", "1.1.0")["state"] == "completed"
    code, status, err = cli("fleet", "status", fleet.inventory)
    assert code == 0, err
    assert [(r["robot"], r["version"], r["healthy"]) for r in status["robots"]] == [
        ("robot-001", "1.1.0", True), ("robot-002", "1.1.0", True), ("robot-003", "1.1.0", True)]
    assert status["robots"][0]["last_deployment"]["action"] == "activate"


def test_external_approval_pauses_then_resumes(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--approval", "external",
                           "--waves", "canary,100%")
    assert code == 4 and rec["state"] == "awaiting_approval"
    assert current(fleet.robot("robot-001")) == "1.1.0"
    assert current(fleet.robot("robot-002")) == "1.0.0"
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--approval",
                             "external", "--waves", "canary,100%")
    assert code != 0 and "--resume" in err
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--resume",
                             "--approved-by", "alice")
    assert code == 0, err
    assert rec["state"] == "completed" and rec["waves"][1]["approver"] == "alice"
    assert current(fleet.robot("robot-002")) == "1.1.0"


def test_failing_health_rolls_back_and_halts_later_waves_untouched(make_fleet, packages, cli,
                                                                   tmp_path):
    fleet = make_fleet(3)
    code, rec, _ = rollout(cli, fleet, packages.broken, "1.2.0", tmp_path, "--yes",
                           "--waves", "canary,100%")
    assert code == 3 and rec["state"] == "halted" and "canary" in rec["halt_reason"]
    canary = rec["robots"]["robot-001"]
    assert canary["outcome"] == "rolled-back" and canary["rolled_back_to"] == "1.0.0"
    assert "health check failed" in canary["error"]
    assert [r["outcome"] for n, r in sorted(rec["robots"].items())][1:] == ["pending", "pending"]
    for robot in fleet.robots:
        assert current(robot) == "1.0.0"
        status = robot.agent("status")
        assert status["health"]["ok"] and status["health"]["detail"]["version"] == "1.0.0"
    for robot in fleet.robots[1:]:
        assert os.listdir(os.path.join(robot.model_root, "incoming")) == []


def test_busy_robot_deferred_then_resumed(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    fleet.robot("robot-002").set_busy(True)
    code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes",
                           "--waves", "canary,100%")
    assert code == 5 and rec["state"] == "completed-with-deferred"  # not every robot is on it
    assert rec["robots"]["robot-002"]["outcome"] == "deferred"
    assert "busy" in rec["robots"]["robot-002"]["error"]
    assert rec["robots"]["robot-002"]["bytes_sent"] == 0
    assert current(fleet.robot("robot-002")) == "1.0.0"
    fleet.robot("robot-002").set_busy(False)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--resume", "--yes")
    assert code == 0, err
    assert rec["state"] == "completed" and rec["robots"]["robot-002"]["outcome"] == "activated"
    assert current(fleet.robot("robot-002")) == "1.1.0"


def test_second_rollout_to_same_robot_is_refused(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    assert robot.agent("lease", "acquire", "--owner", "other-controller-rollout")["ok"]
    code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
    assert code == 3 and rec["robots"]["robot-001"]["outcome"] == "locked"
    assert "other-controller-rollout" in rec["robots"]["robot-001"]["error"]
    assert current(robot) == "1.0.0"
    # The same rollout started twice from one controller: the second is refused at once.
    lock = tmp_path / "rollouts" / "demo-1.1.0.json.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--resume", "--yes")
    assert code == 1 and "another rollout of demo 1.1.0 is running" in err


def test_unknown_host_key_is_refused(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(3)
    impostor = str(tmp_path / "impostor_key")
    keygen(impostor)
    with open(impostor + ".pub") as f:
        fake = " ".join(f.read().split()[:2])
    lines = open(fleet.known_hosts).read().splitlines()
    r2, r3 = fleet.robot("robot-002"), fleet.robot("robot-003")
    # robot-002: a different key on record (changed host key); robot-003: no entry at all.
    lines[1] = "[%s]:%d %s" % (r2.address, r2.port, fake)
    del lines[2]
    with open(fleet.known_hosts, "w") as f:
        f.write("\n".join(lines) + "\n")
    code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes",
                           "--waves", "canary,100%", "--max-failures", "2")
    assert rec["robots"]["robot-001"]["outcome"] == "activated"
    for name in ("robot-002", "robot-003"):
        assert rec["robots"][name]["outcome"] == "hostkey"
        assert "refused" in rec["robots"][name]["error"]
        assert current(fleet.robot(name)) == "1.0.0"
    assert open(fleet.known_hosts).read().count("\n") == 2, "known_hosts must not be added to"


def test_tampered_package_is_refused_by_the_robot(make_fleet, packages, cli, tmp_path):
    signed_v1 = packages.make("1.0.0", sign_key=packages.key)
    fleet = make_fleet(1, public_key=packages.pub, install_package=signed_v1)
    signed = packages.make("1.1.0", payload_bytes=4096, sign_key=packages.key)
    tampered = str(tmp_path / "tampered")
    shutil.copytree(signed, tampered)
    mpath = os.path.join(tampered, "manifest.json")
    manifest = json.load(open(mpath))
    manifest["evidence"]["parity"] = {"passed": True, "forged": True}
    with open(mpath, "w") as f:
        json.dump(manifest, f)
    code, rec, _ = rollout(cli, fleet, tampered, "1.1.0", tmp_path, "--yes")
    assert code == 3
    robot = rec["robots"]["robot-001"]
    assert robot["outcome"] == "refused" and "signature" in robot["error"]
    assert current(fleet.robot("robot-001")) == "1.0.0"
    code, rec, err = rollout(cli, fleet, signed, "1.1.0", str(tmp_path / "w2"), "--yes")
    assert code == 0, err


def test_package_for_another_platform_refused_before_transfer(make_fleet, packages, cli,
                                                              tmp_path):
    fleet = make_fleet(2)
    trt = str(tmp_path / "trt")
    make_demo_package(trt, "2.0.0", platform="trt8.5-sm72-l4t35.3.1")
    code, rec, _ = rollout(cli, fleet, trt, "2.0.0", tmp_path, "--yes", "--waves", "canary,100%")
    assert code == 3 and rec["state"] == "halted"
    canary = rec["robots"]["robot-001"]
    assert canary["outcome"] == "refused" and "tensorrt" in canary["error"]
    assert all(r["bytes_sent"] == 0 for r in rec["robots"].values())
    assert rec["robots"]["robot-002"]["outcome"] == "pending"


def test_disk_too_small_refused_at_preflight(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1, install=False)
    robot = fleet.robot("robot-001")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", robot.model_root],
                   check=True)
    try:
        fleet.install(packages.v1, "1.0.0")
        code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
        assert code == 3
        r = rec["robots"]["robot-001"]
        assert r["outcome"] == "refused" and "not enough disk" in r["error"]
        assert r["bytes_sent"] == 0 and current(robot) == "1.0.0"
    finally:
        fleet.stop()
        subprocess.run(["umount", robot.model_root], check=True)


def test_file_corrupted_in_transit_is_detected_and_resent(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    # A partial file whose bytes went bad on the way: resuming after it gives a wrong sha256.
    incoming = os.path.join(robot.model_root, "incoming", "1.1.0")
    os.makedirs(incoming)
    with open(os.path.join(incoming, "weights.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
    assert code == 0, err
    r = rec["robots"]["robot-001"]
    assert r["outcome"] == "activated" and r["attempts"] == 2
    blob = os.path.getsize(os.path.join(packages.v2, "weights.bin"))
    assert r["bytes_sent"] > blob, "the corrupt file must be sent again in full"
    assert current(robot) == "1.1.0"


def test_dry_run_changes_nothing(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    fleet.robot("robot-002").set_busy(True)
    code, plan, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--dry-run")
    assert code == 0, err
    assert plan["dry_run"] and [w["robots"] for w in plan["waves"]] == [["robot-001"],
                                                                         ["robot-002"]]
    assert plan["preflight"]["robot-001"]["ok"]
    assert plan["preflight"]["robot-002"]["status"] == "busy"
    assert not (tmp_path / "rollouts").exists()
    for robot in fleet.robots:
        assert current(robot) == "1.0.0"
        assert not os.path.exists(os.path.join(robot.model_root, "deploy.lease"))


def test_halted_wave_rolls_back_whole_wave(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    r2 = fleet.robot("robot-002")
    # robot-002 runs 1.0.0 healthily, but its service can no longer be restarted: activating
    # 1.1.0 fails, and so does the restart of its own rollback (it needs attention).
    config = json.load(open(r2.agent_config))
    config["restart_command"] = "exit 1"
    json.dump(config, open(r2.agent_config, "w"))
    code, rec, _ = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes",
                           "--waves", "100%", "--rollback-wave")
    assert code == 3
    r2_entry = rec["robots"]["robot-002"]
    assert r2_entry["outcome"] == "rollback-failed" and r2_entry["rolled_back_to"] == "1.0.0"
    assert "unhealthy too" in r2_entry["error"]
    r1_entry = rec["robots"]["robot-001"]
    assert r1_entry["outcome"] == "rolled-back" and r1_entry["rolled_back_to"] == "1.0.0"
    assert "with its wave" in r1_entry["error"]  # a reason on every outcome
    assert [h["outcome"] for h in r1_entry["history"]] == ["activated", "rolled-back"]
    assert current(fleet.robot("robot-001")) == "1.0.0"
    assert current(r2) == "1.0.0"


@pytest.mark.parametrize("extra,message", [
    (["--approved-by", "bob"], "use it with --resume"),
    (["--max-failures", "many"], "--max-failures"),
    (["--concurrency", "0"], "--concurrency must be >= 1"),
    (["--resume"], "nothing to resume"),
    (["--waves", "canary,abc"], "wave 'abc'"),
])
def test_rollout_bad_input(packages, cli, tmp_path, extra, message):
    inv = tmp_path / "inv.yml"
    inv.write_text("all: {hosts: {r1: {ansible_host: 127.0.1.250}}}\n")
    code, _, err = cli("rollout", "demo", "1.1.0", "--fleet", str(inv), "--package",
                       packages.v2, "--workdir", str(tmp_path), *extra)
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "rollouts" / "demo-1.1.0.json").exists()


def test_rollout_package_mismatch_and_missing(packages, cli, tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all: {hosts: {r1: {ansible_host: 127.0.1.250}}}\n")
    code, _, err = cli("rollout", "demo", "9.9.9", "--fleet", str(inv), "--package",
                       packages.v2, "--workdir", str(tmp_path))
    assert code == 3 and "is demo 1.1.0, not demo 9.9.9" in err
    code, _, err = cli("rollout", "demo", "1.1.0", "--fleet", str(inv), "--package",
                       str(tmp_path / "nothing"), "--workdir", str(tmp_path))
    assert code == 3 and "not a package directory" in err


def test_prompt_refusal_halts_before_the_next_wave(make_fleet, packages, tmp_path):
    from pytools.fleet.rollout import Options, Rollout
    fleet = make_fleet(2)
    asked = []
    opts = Options(waves="canary,100%", prompt=lambda q: asked.append(q) or False)
    rec = Rollout("demo", "1.1.0", fleet.inventory, packages.v2, str(tmp_path), opts).run()
    assert asked == ["Roll out demo 1.1.0 to wave '100%' (1 robots)?"]
    assert rec["state"] == "halted" and "not approved" in rec["halt_reason"]
    assert current(fleet.robot("robot-001")) == "1.1.0"
    assert current(fleet.robot("robot-002")) == "1.0.0"


def test_simulated_rollout_summary_for_pytools_run(packages, tmp_path):
    from pytools.fleet import simulated_rollout
    summary = simulated_rollout(packages.v2, str(tmp_path), count=2, services=False)
    assert summary["state"] == "completed" and summary["outcomes"] == {"activated": 2}
    assert summary["bytes_sent"] == 2 * package_bytes(packages.v2)
    assert os.path.exists(summary["record"])


def test_fleet_simulate_command_serves_until_terminated(packages, tmp_path):
    import signal
    import sys
    import time
    base = tmp_path / "sim"
    proc = subprocess.Popen([sys.executable, "-m", "pytools", "fleet", "simulate", "2", "--dir",
                             str(base), "--install", packages.v1, "--no-services"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        line = proc.stdout.readline().decode()  # printed once the robots are up
        assert "2 robots running" in line, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        status = subprocess.run([sys.executable, "-m", "pytools", "fleet", "status",
                                 str(base / "inventory.yml")], stdout=subprocess.PIPE,
                                timeout=60)
        assert status.returncode == 0
        text = status.stdout.decode()
        assert "robot-001" in text and "robot-002" in text and "1.0.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if str(base).encode() in f.read():
                    left.append(pid)
        except OSError:
            pass
    assert left == [], "the fleet left processes running"


def test_rollout_fetches_the_package_from_the_registry(make_fleet, packages, cli, tmp_path,
                                                       monkeypatch):
    from pytools.registry import open_registry
    monkeypatch.setenv("PYTOOLS_REGISTRY", str(tmp_path / "registry"))
    for var in ("PYTOOLS_REGISTRY_BACKEND", "ARTIFACTORY_URL"):
        monkeypatch.delenv(var, raising=False)
    open_registry().publish(packages.v2)
    fleet = make_fleet(1)
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--workdir",
                         str(tmp_path / "w"), "--yes")
    assert code == 0, err
    assert rec["package"] == str(tmp_path / "w" / "packages" / "demo-1.1.0")
    assert current(fleet.robot("robot-001")) == "1.1.0"
    code, _, err = cli("rollout", "demo", "7.0.0", "--fleet", fleet.inventory, "--workdir",
                       str(tmp_path / "w"), "--yes")
    assert code != 0 and "7.0.0" in err and "Traceback" not in err


def test_two_rollouts_at_once_second_is_refused(make_fleet, packages, cli, tmp_path):
    import threading
    import time
    from pytools.fleet.rollout import Options, Rollout
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    lease = os.path.join(robot.model_root, "deploy.lease")
    # Rollout A activates a model that never becomes healthy: it holds the robot for the
    # whole health timeout, long enough for rollout B to arrive.
    first = {}
    thread = threading.Thread(target=lambda: first.update(rec=Rollout(
        "demo", "1.2.0", fleet.inventory, packages.broken, str(tmp_path / "a"),
        Options(approval="yes")).run()))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(robot.model_root, "releases", "1.2.0")):
            assert time.monotonic() < deadline, "rollout A never staged"
            time.sleep(0.05)
        assert os.path.exists(lease)
        code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "b", "--yes")
    finally:
        thread.join(60)
    # One rollout per fleet: B is refused before it touches any robot, naming A.
    # --json prints the error object, not a record
    assert code == 1 and rec["code"] == 1 and "fleet is locked by rollout" in rec["error"]
    assert "fleet is locked by rollout demo-1.2.0-" in err and "demo 1.2.0" in err
    assert not (tmp_path / "b" / "rollouts" / "demo-1.1.0.json").exists()
    assert first["rec"]["robots"]["robot-001"]["outcome"] == "rolled-back"
    assert current(robot) == "1.0.0" and robot.agent("status")["health"]["ok"]
    assert not os.path.exists(lease)


def test_human_output_tells_how_to_continue(make_fleet, packages, tmp_path, capsys):
    from pytools.cli import main
    fleet = make_fleet(2)
    code = main(["rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--package",
                 packages.v2, "--workdir", str(tmp_path), "--approval", "external",
                 "--waves", "canary,100%"])
    out = capsys.readouterr().out
    assert code == 4
    assert "awaiting_approval - waiting for approval of wave '100%'" in out
    assert re.search(r"robot-001\s+canary\s+activated", out), out
    assert ("continue with: pytools rollout demo 1.1.0 --fleet %s --package %s --workdir %s "
            "--resume --approved-by USER" % (fleet.inventory, packages.v2, tmp_path)) in out
    code = main(["fleet", "status", fleet.inventory])
    out = capsys.readouterr().out
    assert code == 0 and "2 robots, 0 unreachable, 0 unhealthy" in out
    r2 = fleet.robot("robot-002")
    assert re.search(r"robot-002\s+%s:%d\s+1\.0\.0\s+ok\s+idle" % (re.escape(r2.address), r2.port),
                     out), out
