"""The on-robot agent, run as its own process against a real model root (no SSH involved)."""
import json
import os
import shutil
import subprocess

import pytest
from fleet_testlib import current, run_agent

from pytools.fleet.agent import robot_agent
from pytools.fleet.sim.demo import make_demo_package

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def robot(tmp_path):
    """A robot root plus a writer for its agent.json."""
    class R:
        root = str(tmp_path / "model")
        config = str(tmp_path / "agent.json")
        busy_file = str(tmp_path / "mission-state")

        def configure(self, **cfg):
            base = {"root": self.root, "busy_file": self.busy_file, "health_timeout": 2}
            base.update(cfg)
            with open(self.config, "w") as f:
                json.dump(base, f)

        def agent(self, *args, **kw):
            return run_agent(self.config, *args, **kw)

        def give(self, package_dir, version):
            dest = os.path.join(self.root, "incoming", version)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(package_dir, dest)

        def deploy(self, package_dir, version, owner="r1"):
            self.give(package_dir, version)
            code, res = self.agent("stage", version, "--owner", owner)
            assert code == 0, res
            return self.agent("activate", version, "--owner", owner)

    r = R()
    r.configure()
    return r


def manifest_bytes(package_dir):
    with open(os.path.join(package_dir, "manifest.json"), "rb") as f:
        return f.read()


def test_stage_activate_rollback_keeps_current_link_and_audit(robot, packages):
    assert robot.deploy(packages.v1, "1.0.0")[0] == 0
    code, res = robot.deploy(packages.v2, "1.1.0")
    assert code == 0 and res["previous"] == "1.0.0"
    assert os.path.islink(os.path.join(robot.root, "current"))
    assert current(robot.root) == "1.1.0"
    code, res = robot.agent("rollback")
    assert code == 0 and res["version"] == "1.0.0"
    assert current(robot.root) == "1.0.0"
    with open(os.path.join(robot.root, "audit.log")) as f:
        actions = [json.loads(line)["action"] for line in f]
    assert actions == ["stage", "activate", "stage", "activate", "rollback"]
    code, status = robot.agent("status")
    assert status["current"] == "1.0.0" and status["releases"] == ["1.0.0", "1.1.0"]
    assert status["last_deployment"]["action"] == "rollback"


def test_gc_keeps_current_previous_and_retention(robot, packages, tmp_path):
    robot.configure(retention=1)
    versions = ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]
    for v in versions:
        pkg = str(tmp_path / v)
        make_demo_package(pkg, v)
        assert robot.deploy(pkg, v)[0] == 0
    # Every good activation already collected beyond the retention count.
    assert sorted(os.listdir(os.path.join(robot.root, "releases"))) == ["1.0.2", "1.0.3"]
    robot.give(packages.v2, "1.1.0")  # a stale partial download
    code, res = robot.agent("gc")
    assert code == 0
    assert sorted(os.listdir(os.path.join(robot.root, "releases"))) == ["1.0.2", "1.0.3"]
    assert "incoming/1.1.0" in res["removed"]
    assert current(robot.root) == "1.0.3"


def test_corrupted_file_fails_stage_and_is_dropped_for_resend(robot, packages):
    robot.give(packages.v2, "1.1.0")
    blob = os.path.join(robot.root, "incoming", "1.1.0", "weights.bin")
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 16)
    code, res = robot.agent("stage", "1.1.0", "--owner", "r1")
    assert code == 1 and res["status"] == "failed"
    assert res["bad_files"] == [{"path": "weights.bin", "problem": "sha256 mismatch"}]
    assert not os.path.exists(blob), "a corrupt file must not be resumed from"
    assert not os.path.exists(os.path.join(robot.root, "releases", "1.1.0"))


def test_extra_and_traversal_files_refused(robot, packages, tmp_path):
    robot.give(packages.v1, "1.0.0")
    with open(os.path.join(robot.root, "incoming", "1.0.0", "extra.bin"), "wb") as f:
        f.write(b"x")
    code, res = robot.agent("stage", "1.0.0")
    assert code == 1 and "not in manifest" in res["error"]
    manifest = json.loads(manifest_bytes(packages.v1))
    manifest["files"][0]["path"] = "../escape.onnx"
    code, res = robot.agent("preflight", "--manifest", "-", stdin=json.dumps(manifest).encode())
    assert code == 1 and res["status"] == "refused" and "unsafe path" in res["error"]


def test_signature_required_tampered_and_unsigned_refused(robot, packages):
    robot.configure(public_key=packages.pub, require_signature=True)
    signed = packages.make("1.1.0", payload_bytes=1024, sign_key=packages.key)
    robot.give(signed, "1.1.0")
    code, res = robot.agent("stage", "1.1.0")
    assert code == 0, res
    shutil.rmtree(os.path.join(robot.root, "releases", "1.1.0"))
    # Tamper: a changed manifest with the old signature.
    robot.give(signed, "1.1.0")
    mpath = os.path.join(robot.root, "incoming", "1.1.0", "manifest.json")
    manifest = json.loads(open(mpath).read())
    manifest["evidence"] = {"parity": {"passed": True}}
    with open(mpath, "w") as f:
        json.dump(manifest, f)
    code, res = robot.agent("stage", "1.1.0")
    assert code == 1 and res["status"] == "refused" and "signature" in res["error"]
    robot.give(packages.v2, "1.1.0")  # unsigned
    code, res = robot.agent("stage", "1.1.0")
    assert code == 1 and "not signed" in res["error"]


def test_platform_mismatch_refused_at_preflight(robot, packages, tmp_path):
    trt = str(tmp_path / "trt")
    make_demo_package(trt, "2.0.0", platform="trt8.5-sm72-l4t35.3.1")
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 1 and res["status"] == "refused" and "tensorrt" in res["error"]
    robot.configure(facts={"runtimes": ["tensorrt"], "tensorrt_version": "8.6.1",
                           "compute_capability": "8.7", "l4t_release": "35.3.1"})
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 1
    assert "TensorRT 8.5.2 engine cannot run on TensorRT 8.6.1" in res["error"]
    assert "compute capability 7.2" in res["error"]
    jetson = {"runtimes": ["tensorrt"], "tensorrt_version": "8.5.3",
              "compute_capability": "7.2", "l4t_release": "35.3.1"}
    robot.configure(facts=jetson)  # no CUDA version known: refused, not assumed
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 1 and "engine built with CUDA 11.4 cannot run on CUDA None" in res["error"]
    robot.configure(facts=dict(jetson, cuda_version="12.2"))
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 1 and "engine built with CUDA 11.4 cannot run on CUDA 12.2" in res["error"]
    robot.configure(facts=dict(jetson, cuda_version="11.2"))
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 1 and "CUDA 11.2" in res["error"]
    robot.configure(facts=dict(jetson, cuda_version="11.4"))
    code, res = robot.agent("preflight", "--manifest", os.path.join(trt, "manifest.json"))
    assert code == 0, res


def test_busy_robot_is_deferred_not_interrupted(robot, packages):
    assert robot.deploy(packages.v1, "1.0.0")[0] == 0
    robot.give(packages.v2, "1.1.0")
    assert robot.agent("stage", "1.1.0")[0] == 0
    with open(robot.busy_file, "w") as f:
        f.write("spraying\n")
    code, res = robot.agent("preflight", "--manifest", os.path.join(packages.v2, "manifest.json"))
    assert code == 1 and res["status"] == "busy"
    code, res = robot.agent("activate", "1.1.0")
    assert code == 1 and res["status"] == "busy"
    assert current(robot.root) == "1.0.0"


def test_lease_refuses_second_deployment(robot, packages):
    mpath = os.path.join(packages.v2, "manifest.json")
    code, res = robot.agent("preflight", "--manifest", mpath, "--owner", "rollout-A")
    assert code == 0 and res["lease"]["owner"] == "rollout-A"
    code, res = robot.agent("preflight", "--manifest", mpath, "--owner", "rollout-B")
    assert code == 1 and res["status"] == "locked" and "rollout-A" in res["error"]
    robot.give(packages.v2, "1.1.0")
    code, res = robot.agent("stage", "1.1.0", "--owner", "rollout-B")
    assert code == 1 and res["status"] == "locked"
    assert robot.agent("lease", "release", "--owner", "rollout-A")[0] == 0
    assert robot.agent("stage", "1.1.0", "--owner", "rollout-B")[0] == 0


def test_disk_too_small_refused_at_preflight(robot, packages, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    os.makedirs(robot.root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", robot.root], check=True)
    try:
        code, res = robot.agent("preflight", "--manifest",
                                os.path.join(packages.v2, "manifest.json"), "--owner", "r")
        assert code == 1 and res["status"] == "refused" and "not enough disk" in res["error"]
        assert res["needed_bytes"] > res["free_bytes"]
        assert not os.path.exists(os.path.join(robot.root, "deploy.lease"))
    finally:
        subprocess.run(["umount", robot.root], check=True)


def test_failed_health_check_rolls_back_automatically(robot, packages):
    robot.configure(health_command="test -s %s/current/weights.bin" % robot.root,
                    health_timeout=1)
    assert robot.deploy(packages.v2, "1.1.0")[0] == 0  # has weights.bin: healthy
    code, res = robot.deploy(packages.v1, "1.0.0")    # no weights.bin: unhealthy
    assert code == 1 and res["status"] == "failed" and res["rolled_back_to"] == "1.1.0"
    assert current(robot.root) == "1.1.0"
    code, status = robot.agent("status")
    assert status["last_deployment"]["action"] == "auto-rollback"


def test_invalid_version_and_config_errors(robot):
    code, res = robot.agent("activate", "../../etc")
    assert code == 1 and res["status"] == "refused" and "invalid version" in res["error"]
    code, res = robot.agent("activate", "9.9.9")
    assert code == 1 and "not staged" in res["error"]


def test_agent_source_is_python36_compatible():
    vermin = shutil.which("vermin")
    if not vermin:
        pytest.skip("vermin is not installed")
    out = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", robot_agent.__file__],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert out.returncode == 0, out.stdout.decode()


def test_agent_imports_only_the_standard_library():
    import ast
    import sys
    tree = ast.parse(open(robot_agent.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)


def test_current_link_never_missing_while_switching(robot, packages):
    import threading
    assert robot.deploy(packages.v1, "1.0.0")[0] == 0
    assert robot.deploy(packages.v2, "1.1.0")[0] == 0
    link = os.path.join(robot.root, "current")
    seen, missing, stop = set(), [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                seen.add(os.path.basename(os.readlink(link)))
            except OSError as exc:
                missing.append(exc)

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        for target in ("1.0.0", "1.1.0", "1.0.0", "1.1.0"):
            assert robot.agent("rollback", "--to", target)[0] == 0
    finally:
        stop.set()
        reader.join(10)
    assert missing == [] and seen == {"1.0.0", "1.1.0"}


def audit_log(root):
    with open(os.path.join(root, "audit.log")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("healthy_target", [False, True])
def test_agent_killed_between_switch_and_health_check_is_recovered(robot, packages,
                                                                    healthy_target):
    import signal
    import sys
    import time
    # Healthy = the release has weights.bin (1.1.0 has, 1.0.0 has not); the check is slow, so
    # the agent can be killed after switching `current` and before the check ends.
    robot.configure(health_command="sleep 3; test -s %s/current/weights.bin" % robot.root,
                    health_timeout=1)
    first, second = (packages.v1, "1.0.0"), (packages.v2, "1.1.0")
    if not healthy_target:
        first, second = second, first
    # 1.0.0 fails this check, so as the first release it stays on, unhealthy, with no fallback.
    assert robot.deploy(*first)[0] == (1 if healthy_target else 0)
    robot.give(*second)
    assert robot.agent("stage", second[1], "--owner", "r1")[0] == 0
    proc = subprocess.Popen([sys.executable, robot_agent.__file__, "--config", robot.config,
                             "activate", second[1], "--owner", "r1"], stdout=subprocess.PIPE,
                            start_new_session=True)
    journal = os.path.join(robot.root, "activation.json")
    try:
        deadline = time.monotonic() + 20
        while not (os.path.exists(journal) and current(robot.root) == second[1]):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        # While that agent lives, another call leaves its activation alone.
        code, res = robot.agent("recover")
        assert code == 0 and res["recovered"]["in_progress"]["version"] == second[1]
        assert current(robot.root) == second[1]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the robot loses power: agent and check die
        proc.wait(10)
    assert os.path.exists(journal) and current(robot.root) == second[1]
    code, status = robot.agent("status")  # the next plain call finishes or reverts it
    assert code == 0 and not os.path.exists(journal)
    if healthy_target:
        assert status["recovered"]["result"] == "finished"
        assert current(robot.root) == "1.1.0"
        assert status["last_deployment"]["action"] == "activate"
        assert status["last_deployment"]["recovered"] is True
    else:
        assert status["recovered"]["result"] == "reverted"
        assert current(robot.root) == "1.1.0" and status["current"] == "1.1.0"
        assert status["last_deployment"]["action"] == "auto-rollback"
        assert status["last_deployment"]["failed_version"] == "1.0.0"
    actions = [(e["action"], e.get("result")) for e in audit_log(robot.root)]
    assert ("recover", None) in actions
    assert actions[-1] == ("activate", "ok" if healthy_target else "failed")
    assert robot.agent("recover")[1]["recovered"] is None  # nothing left to do


def test_recover_command_at_boot(robot, packages):
    assert robot.deploy(packages.v1, "1.0.0")[0] == 0
    robot.give(packages.v2, "1.1.0")
    assert robot.agent("stage", "1.1.0")[0] == 0
    # What a power cut leaves behind: the journal written and `current` switched.
    os.unlink(os.path.join(robot.root, "current"))
    os.symlink("releases/1.1.0", os.path.join(robot.root, "current"))
    with open(os.path.join(robot.root, "activation.json"), "w") as f:
        json.dump({"action": "activate", "version": "1.1.0", "fallback": "1.0.0",
                   "from": "1.0.0", "owner": "r1"}, f)
    code, res = robot.agent("recover")
    assert code == 0 and res["recovered"]["result"] == "finished" and res["current"] == "1.1.0"


def test_rollback_targets_a_named_version_and_twice_changes_nothing(robot, packages, tmp_path):
    v3 = str(tmp_path / "1.3.0")
    make_demo_package(v3, "1.3.0")
    for pkg, v in ((packages.v1, "1.0.0"), (packages.v2, "1.1.0"), (v3, "1.3.0")):
        assert robot.deploy(pkg, v)[0] == 0
    code, res = robot.agent("rollback", "--owner", "ops")
    assert code == 0 and res["version"] == "1.1.0" and current(robot.root) == "1.1.0"
    before = audit_log(robot.root)
    code, res = robot.agent("rollback", "--owner", "ops")  # again: still 1.1.0, no toggle
    assert code == 0 and res["version"] == "1.1.0" and res["already"] is True
    assert current(robot.root) == "1.1.0"
    assert audit_log(robot.root)[-1]["already"] is True and len(audit_log(robot.root)) == \
        len(before) + 1
    code, res = robot.agent("rollback", "--to", "1.0.0")
    assert code == 0 and current(robot.root) == "1.0.0"
    code, res = robot.agent("rollback", "--to", "0.9.0")
    assert code == 1 and "0.9.0 is not on this robot" in res["error"]


def test_refusals_reach_the_audit_log(robot, packages):
    with open(robot.busy_file, "w") as f:
        f.write("spraying\n")
    mpath = os.path.join(packages.v2, "manifest.json")
    code, res = robot.agent("preflight", "--manifest", mpath, "--owner", "rollout-A")
    assert code == 1 and res["status"] == "busy"
    last = audit_log(robot.root)[-1]
    assert last["action"] == "refused" and last["status"] == "busy"
    assert last["owner"] == "rollout-A" and last["command"] == "preflight"


def test_preflight_checks_signature_and_current_health(robot, packages, tmp_path):
    from pytools.core.package import generate_keypair
    robot.configure(public_key=packages.pub, require_signature=True)
    signed = packages.make("1.1.0", payload_bytes=1024, sign_key=packages.key)
    other_key, other_pub = str(tmp_path / "k.pem"), str(tmp_path / "k.pub")
    generate_keypair(other_key, other_pub)
    wrong = str(tmp_path / "wrong")
    make_demo_package(wrong, "1.1.0", payload_bytes=1024, sign_key=other_key)
    mpath = os.path.join(signed, "manifest.json")
    sig = open(os.path.join(signed, "manifest.json.sig")).read()
    code, res = robot.agent("preflight", "--manifest", mpath, "--signature", sig)
    assert code == 0 and res["signature"] == "verified"
    code, res = robot.agent("preflight", "--manifest", os.path.join(wrong, "manifest.json"),
                            "--signature", open(os.path.join(wrong, "manifest.json.sig")).read())
    assert code == 1 and res["status"] == "refused" and "another key" in res["error"]
    code, res = robot.agent("preflight", "--manifest", mpath)
    assert code == 1 and "not signed" in res["error"]
    # A robot whose running model already fails is reported as unhealthy, before any transfer.
    robot.configure(health_command="false", health_timeout=0.5)
    robot.give(packages.v1, "1.0.0")
    assert robot.agent("stage", "1.0.0")[0] == 0
    os.symlink("releases/1.0.0", os.path.join(robot.root, "current"))
    code, res = robot.agent("preflight", "--manifest", os.path.join(packages.v2, "manifest.json"),
                            "--health-timeout", "0.5")
    assert code == 1 and res["status"] == "unhealthy" and "before the rollout" in res["error"]


def test_fleet_lock_owner_expiry_break_and_supersede(robot, packages):
    import time
    info = json.dumps({"who": "alice@ci", "name": "demo", "version": "1.1.0"})
    code, res = robot.agent("fleet-lock", "acquire", "--owner", "A", "--ttl", "1.5",
                            "--info", info)
    assert code == 0 and res["lock"]["owner"] == "A"
    code, res = robot.agent("fleet-lock", "acquire", "--owner", "B", "--ttl", "30")
    assert code == 1 and res["status"] == "locked"
    assert "A (demo 1.1.0, by alice@ci" in res["error"]
    assert robot.agent("fleet-lock", "renew", "--owner", "A", "--ttl", "1.5")[0] == 0
    # A holds a robot lease too, then its controller dies: no more renewals.
    assert robot.agent("lease", "acquire", "--owner", "A")[0] == 0
    time.sleep(1.7)
    code, res = robot.agent("fleet-lock", "renew", "--owner", "A", "--ttl", "30")
    assert code == 1 and res["status"] == "lost"
    code, res = robot.agent("fleet-lock", "acquire", "--owner", "B", "--ttl", "30")
    assert code == 0 and res["superseded"] == ["A"]
    mpath = os.path.join(packages.v2, "manifest.json")
    code, res = robot.agent("preflight", "--manifest", mpath, "--owner", "B")
    assert code == 1 and res["status"] == "locked"  # A's lease is only taken when told
    code, res = robot.agent("preflight", "--manifest", mpath, "--owner", "B", "--supersede", "A")
    assert code == 0 and res["lease"]["owner"] == "B"
    code, res = robot.agent("fleet-lock", "break", "--by", "ops", "--reason", "stuck")
    assert code == 0 and res["broken"]["owner"] == "B"
    assert robot.agent("fleet-lock", "show")[1]["lock"] is None
    entry = [e for e in audit_log(robot.root) if e["action"] == "fleet-unlock"][-1]
    assert entry["by"] == "ops" and entry["reason"] == "stuck" and entry["holder"]["owner"] == "B"
