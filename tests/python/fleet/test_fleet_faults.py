"""Fault drills on the simulated fleet: crashes mid-activation, two rollouts of one fleet, a dead
controller, downgrades, a recorded rollback run twice, a robot unhealthy before the rollout,
Ctrl-C mid-wave, a re-rolled staged release, a wrong-key signature and a disk filling up."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fleet_testlib import current, needs_root, read_record

from pytools.fleet.sim.demo import make_demo_package

pytestmark = [needs_root, pytest.mark.timeout(240)]


def rollout(cli, fleet, package, version, workdir, *extra):
    return cli("rollout", "demo", version, "--fleet", fleet.inventory, "--package", package,
               "--workdir", str(workdir), "--io-timeout", "5", *extra)


def rollout_process(fleet, package, version, workdir, *extra):
    """`pytools rollout` as its own controller process (to kill or interrupt it)."""
    return subprocess.Popen([sys.executable, "-m", "pytools", "rollout", "demo", version,
                             "--fleet", fleet.inventory, "--package", package, "--workdir",
                             str(workdir), "--io-timeout", "5", "--json"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate, what, timeout=30, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        if proc is not None and proc.poll() is not None:
            raise AssertionError("controller exited early: %s" % proc.stderr.read().decode())
        time.sleep(0.02)


def journal(robot):
    path = os.path.join(robot.model_root, "activation.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def audit(robot):
    with open(os.path.join(robot.model_root, "audit.log")) as f:
        return [json.loads(line) for line in f]


def leases(fleet):
    return [r.name for r in fleet.robots
            if os.path.exists(os.path.join(r.model_root, "deploy.lease"))]


def fleet_lock(fleet):
    return fleet.robots[0].agent("fleet-lock", "show")["lock"]


def test_agent_killed_between_switch_and_health_check_then_resume(make_fleet, packages, cli,
                                                                  tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    proc = rollout_process(fleet, packages.broken, "1.2.0", tmp_path, "--yes", "--waves", "100%")
    try:
        wait_for(lambda: (journal(robot) or {}).get("pid") and current(robot) == "1.2.0",
                 "the switch to 1.2.0", proc=proc)
        robot.power_off()  # before its health check ended: agent and sshd die together
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err.decode()
    rec = json.loads(out)
    assert rec["robots"]["robot-001"]["outcome"] == "unreachable"
    assert current(robot) == "1.2.0" and journal(robot) is not None  # left on the bad model
    robot.start_sshd()  # it boots again
    sent = rec["robots"]["robot-001"]["bytes_sent"]
    # --resume: the robot's next agent call reverts it, and the controller health-checks; it
    # never calls a robot that merely points at the version `already-current`.
    code, rec, err = rollout(cli, fleet, packages.broken, "1.2.0", tmp_path, "--resume")
    assert code == 3 and rec["state"] == "halted", err
    entry = rec["robots"]["robot-001"]
    assert entry["outcome"] == "rolled-back" and "health check failed" in entry["error"]
    assert [h["outcome"] for h in entry["history"]] == ["unreachable", "rolled-back"]
    assert entry["bytes_sent"] == sent, "a staged release is verified in place, not sent again"
    assert current(robot) == "1.0.0" and journal(robot) is None
    assert [e for e in audit(robot) if e["action"] == "recover"]
    assert robot.agent("status")["health"]["ok"]


def test_robot_on_target_but_unhealthy_is_not_counted_done(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "a", "--yes")
    assert code == 0, err
    robot.stop_service()  # 1.1.0 is current, and no longer serves
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "b", "--yes")
    assert code == 3, err
    entry = rec["robots"]["robot-001"]
    assert entry["outcome"] == "rollback-failed" and entry["outcome"] != "already-current"
    assert "restart command exited" in entry["error"]


def test_one_rollout_per_fleet_through_approval_wait_and_downgrade(make_fleet, packages, cli,
                                                                   tmp_path):
    fleet = make_fleet(2)
    v3 = packages.make("1.3.0")
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "a", "--approval",
                             "external", "--waves", "canary,100%")
    assert code == 4 and rec["state"] == "awaiting_approval"
    holder = rec["id"]
    assert fleet_lock(fleet)["owner"] == holder
    assert fleet_lock(fleet)["state"] == "awaiting_approval"
    # A newer version started while the first waits for approval: refused, naming the holder.
    code, rec, err = rollout(cli, fleet, v3, "1.3.0", tmp_path / "b", "--yes")
    # --json prints the error object, not a record
    assert code == 1 and rec["code"] == 1 and "fleet is locked by rollout" in rec["error"]
    assert "fleet is locked by rollout %s (demo 1.1.0, by " % holder in err
    assert "awaiting_approval" in err
    assert [current(r) for r in fleet.robots] == ["1.1.0", "1.0.0"]
    refusal = [e for e in audit(fleet.robots[0]) if e["action"] == "refused"][-1]
    assert refusal["command"] == "fleet_lock" and refusal["status"] == "locked"
    code, status, _ = cli("fleet", "status", fleet.inventory)
    assert status["fleet_lock"]["owner"] == holder
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "a", "--resume",
                             "--approved-by", "alice")
    assert code == 0 and rec["state"] == "completed", err
    assert fleet_lock(fleet) is None
    code, rec, err = rollout(cli, fleet, v3, "1.3.0", tmp_path / "b", "--yes")
    assert code == 0, err
    # The older version again: a downgrade, refused before any byte moves.
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "c", "--yes")
    assert code == 3 and rec["state"] == "halted"
    canary = rec["robots"]["robot-001"]
    assert canary["outcome"] == "refused" and "--allow-downgrade" in canary["error"]
    assert canary["bytes_sent"] == 0
    assert [current(r) for r in fleet.robots] == ["1.3.0", "1.3.0"]
    assert leases(fleet) == [] and fleet_lock(fleet) is None
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "d", "--yes",
                             "--allow-downgrade")
    assert code == 0, err
    assert [current(r) for r in fleet.robots] == ["1.1.0", "1.1.0"]


def test_dead_controllers_lock_expires_and_its_leases_are_taken_over(make_fleet, packages, cli,
                                                                     tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    proc = rollout_process(fleet, packages.broken, "1.2.0", tmp_path / "a", "--yes",
                           "--lock-ttl", "4")
    try:
        wait_for(lambda: journal(robot) is not None, "the activation", proc=proc)
        dead = fleet_lock(fleet)["owner"]
    finally:
        proc.kill()  # the controller dies holding the fleet and the robot's lease
        proc.communicate(timeout=30)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "b", "--yes")
    assert code == 1 and "fleet is locked by rollout %s" % dead in err
    wait_for(lambda: fleet_lock(fleet) is None, "the dead controller's lock to expire", 10)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path / "b", "--yes")
    assert code == 0 and rec["state"] == "completed", err
    assert current(robot) == "1.1.0"
    assert any(e["action"] == "lease-superseded" and e["superseded"] == dead for e in audit(robot))


def test_fleet_unlock_is_recorded(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--approval",
                             "external", "--waves", "canary,100%")
    assert code == 0, err  # one robot: one wave, nothing to approve
    assert fleet.robots[0].agent("fleet-lock", "acquire", "--owner", "stale-rollout",
                                 "--ttl", "3600")["ok"]
    code, _, err = cli("fleet", "unlock", fleet.inventory, "--reason", "")
    assert code == 2 and "--reason" in err
    code, data, err = cli("fleet", "unlock", fleet.inventory, "--reason", "controller lost")
    assert code == 0 and data["broken"]["owner"] == "stale-rollout", err
    entry = [e for e in audit(fleet.robots[0]) if e["action"] == "fleet-unlock"][-1]
    assert entry["reason"] == "controller lost" and entry["holder"]["owner"] == "stale-rollout"
    assert fleet_lock(fleet) is None


def test_rollback_twice_changes_nothing_and_where_shows_it(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
    assert code == 0, err
    code, rec, err = cli("rollback", "demo", "--fleet", fleet.inventory, "--workdir",
                         str(tmp_path), "--yes")
    assert code == 0 and rec["state"] == "completed" and rec["kind"] == "rollback", err
    assert {n: (r["outcome"], r["version"]) for n, r in rec["robots"].items()} == {
        "robot-001": ("rolled-back", "1.0.0"), "robot-002": ("rolled-back", "1.0.0")}
    assert [current(r) for r in fleet.robots] == ["1.0.0", "1.0.0"]
    first_id = rec["id"]
    before = [len(audit(r)) for r in fleet.robots]
    code, rec, err = cli("rollback", "demo", "--fleet", fleet.inventory, "--workdir",
                         str(tmp_path), "--yes")
    assert code == 0 and rec["state"] == "completed", err
    assert {r["outcome"] for r in rec["robots"].values()} == {"already-current"}
    assert [current(r) for r in fleet.robots] == ["1.0.0", "1.0.0"]
    for robot, n in zip(fleet.robots, before):
        new = [e for e in audit(robot)[n:] if e["action"] == "rollback"]
        assert [e.get("already") for e in new] == [True], "the second rollback restarted nothing"
    # The first rollback's record is kept under its id, not overwritten.
    assert os.path.exists(tmp_path / "rollouts" / ("demo-rollback-previous.%s.json" % first_id))
    code, where, err = cli("where", "demo", "--workdir", str(tmp_path))
    assert code == 0, err
    assert {r["robot"]: r["version"] for r in where["robots"]} == {"robot-001": "1.0.0",
                                                                   "robot-002": "1.0.0"}
    code, where, err = cli("where", "demo", "--workdir", str(tmp_path), "--fleet",
                           fleet.inventory)
    assert all(r["agrees"] and r["live_version"] == "1.0.0" for r in where["robots"]), where
    code, rec, err = cli("rollback", "demo", "--fleet", fleet.inventory, "--workdir",
                         str(tmp_path), "--yes", "--to", "0.0.1")
    assert code == 3 and rec["state"] == "halted"
    entry = rec["robots"]["robot-001"]
    assert entry["outcome"] == "rollback-failed" and "0.0.1 is not on this robot" in entry["error"]
    assert [current(r) for r in fleet.robots] == ["1.0.0", "1.0.0"]
    code, _, err = cli("rollback", "demo", "--fleet", fleet.inventory, "--to", "../x")
    assert code == 2 and "not a version" in err


def test_robot_unhealthy_before_the_rollout_is_reported_as_such(make_fleet, packages, cli,
                                                                tmp_path):
    fleet = make_fleet(2)
    r2 = fleet.robot("robot-002")
    r2.stop_service()
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes", "--waves",
                             "100%")
    assert code == 5 and rec["state"] == "incomplete", err
    assert rec["robots"]["robot-001"]["outcome"] == "activated"
    entry = rec["robots"]["robot-002"]
    assert entry["outcome"] == "unhealthy-before" and "before the rollout" in entry["error"]
    assert entry["bytes_sent"] == 0 and current(r2) == "1.0.0"
    assert audit(r2)[-1]["action"] == "refused" and audit(r2)[-1]["status"] == "unhealthy"


def test_ctrl_c_mid_wave_records_interrupted_and_releases_everything(make_fleet, packages,
                                                                     tmp_path):
    fleet = make_fleet(2)
    proc = rollout_process(fleet, packages.broken, "1.2.0", tmp_path, "--yes", "--waves", "100%")
    try:
        wait_for(lambda: any(journal(r) for r in fleet.robots), "an activation", proc=proc)
        proc.send_signal(signal.SIGINT)
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    rec = read_record(str(tmp_path), "demo", "1.2.0")
    assert rec["state"] == "interrupted" and "SIGINT" in rec["halt_reason"]
    assert rec["runs"][-1]["state"] == "interrupted"
    for name, entry in rec["robots"].items():
        assert entry["outcome"] in ("rolled-back", "interrupted"), entry
        assert entry["error"], "every outcome carries its reason"
    assert leases(fleet) == [] and fleet_lock(fleet) is None
    assert [current(r) for r in fleet.robots] == ["1.0.0", "1.0.0"]


def test_staged_release_rerolled_is_not_sent_again(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(1)
    robot = fleet.robot("robot-001")
    code, first, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
    assert code == 0, err
    code, rec, err = cli("rollback", "demo", "--fleet", fleet.inventory, "--workdir",
                         str(tmp_path), "--yes", "--to", "1.0.0")
    assert code == 0, err
    code, rec, err = rollout(cli, fleet, packages.v2, "1.1.0", tmp_path, "--yes")
    assert code == 0, err
    assert rec["robots"]["robot-001"]["outcome"] == "activated"
    assert rec["robots"]["robot-001"]["bytes_sent"] == 0
    assert os.listdir(os.path.join(robot.model_root, "incoming")) == []
    assert current(robot) == "1.1.0"
    archived = tmp_path / "rollouts" / ("demo-1.1.0.%s.json" % first["id"])
    assert json.load(open(archived))["id"] == first["id"], "records are never overwritten"


def test_wrong_key_signature_refused_at_preflight_and_shown_in_dry_run(make_fleet, packages,
                                                                        cli, tmp_path):
    from pytools.core.package import generate_keypair
    signed_v1 = packages.make("1.0.0", sign_key=packages.key)
    fleet = make_fleet(1, public_key=packages.pub, install_package=signed_v1)
    other = str(tmp_path / "other.pem")
    generate_keypair(other, str(tmp_path / "other.pub"))
    wrong = str(tmp_path / "wrong")
    make_demo_package(wrong, "1.1.0", payload_bytes=1 << 20, sign_key=other)
    code, plan, err = rollout(cli, fleet, wrong, "1.1.0", tmp_path, "--dry-run")
    assert code == 3 and plan["preflight"]["robot-001"]["status"] == "refused"
    assert "another key" in plan["preflight"]["robot-001"]["error"]
    code, rec, err = rollout(cli, fleet, wrong, "1.1.0", tmp_path, "--yes")
    assert code == 3
    entry = rec["robots"]["robot-001"]
    assert entry["outcome"] == "refused" and "signature" in entry["error"]
    assert entry["bytes_sent"] == 0
    assert os.listdir(os.path.join(fleet.robots[0].model_root, "incoming")) == []
    good = packages.make("1.1.0", payload_bytes=4096, sign_key=packages.key)
    code, plan, err = rollout(cli, fleet, good, "1.1.0", tmp_path / "w2", "--dry-run")
    assert code == 0 and plan["preflight"]["robot-001"]["signature"] == "verified", err


def test_disk_filling_mid_transfer_is_disk_full_not_retried(make_fleet, packages, tmp_path):
    from pytools.fleet.rollout import Options, Rollout
    from pytools.fleet.transports.ssh import SSHTransport
    fleet = make_fleet(1, install=False, services=False)
    robot = fleet.robot("robot-001")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", robot.model_root],
                   check=True)
    filler = os.path.join(robot.model_root, "filler")
    try:
        fleet.install(packages.v1, "1.0.0")

        class DiskFillsDuringTransfer(SSHTransport):
            """The real SSH transport; once bytes flow, another writer fills the robot's disk."""
            def deliver(self, robot_, package_dir, manifest, owner, pre, on_bytes=None):
                def fill(n):
                    if not os.path.exists(filler):
                        st = os.statvfs(robot.model_root)
                        with open(filler, "wb") as f:
                            f.write(b"\0" * (st.f_bavail * st.f_frsize - (64 << 10)))
                    on_bytes(n)
                return SSHTransport.deliver(self, robot_, package_dir, manifest, owner, pre,
                                            fill)

        opts = Options(waves="100%", approval="yes",
                       transport=DiskFillsDuringTransfer(io_timeout=5, retries=3))
        rec = Rollout("demo", "1.1.0", fleet.inventory, packages.v2, str(tmp_path), opts).run()
        entry = rec["robots"]["robot-001"]
        assert entry["outcome"] == "disk-full" and "disk filled" in entry["error"], entry
        assert entry["attempts"] == 1, "a full disk is not retried"
        assert "partial download was removed" in entry["error"]
        assert not os.path.exists(os.path.join(robot.model_root, "incoming", "1.1.0"))
        assert current(robot) == "1.0.0" and rec["state"] == "halted"
    finally:
        fleet.stop()
        subprocess.run(["umount", robot.model_root], check=True)


def test_fleet_status_shows_unknown_for_what_it_cannot_read(make_fleet, cli, capsys):
    from pytools.cli import main
    fleet = make_fleet(2)
    fleet.robot("robot-002").stop_sshd()
    code = main(["fleet", "status", fleet.inventory, "--timeout", "3"])
    out = capsys.readouterr().out
    assert code == 1
    line = [l for l in out.splitlines() if l.startswith("robot-002")][0]
    assert line.split()[2] == "unknown" and "unknown (UNREACHABLE" in line, line
    assert "1.0.0" not in line
    code, status, _ = cli("fleet", "status", fleet.inventory, "--timeout", "3")
    r2 = status["robots"][1]
    assert code == 1 and r2["version"] is None and r2["healthy"] is None
    assert status["unknown"] == 1 and status["unhealthy"] == 0


def test_controller_error_frees_the_fleet_and_marks_the_record(make_fleet, packages, tmp_path):
    from pytools.fleet.rollout import Options, Rollout
    from pytools.fleet.transports.ssh import SSHTransport
    fleet = make_fleet(1, services=False)

    class Broken(SSHTransport):
        def deliver(self, *args, **kwargs):
            raise RuntimeError("a bug in the controller")

    opts = Options(waves="100%", approval="yes", transport=Broken(io_timeout=5))
    with pytest.raises(RuntimeError):
        Rollout("demo", "1.1.0", fleet.inventory, packages.v2, str(tmp_path), opts).run()
    rec = read_record(str(tmp_path), "demo", "1.1.0")
    assert rec["state"] == "interrupted" and "a bug in the controller" in rec["halt_reason"]
    assert fleet_lock(fleet) is None and leases(fleet) == []
