"""Faults on the wire: robots in their own network namespaces behind a tbf-limited veth.

A link is cut (`ip link set ... down`) or sshd is killed while a transfer is half done; the
rollout must detect it within its io timeout, reconnect, resume the partial file (not start
over) and finish with every robot on a working release.
"""
import os
import threading
import time

import pytest
from fleet_testlib import current, needs_root

from pytools.fleet.rollout import Options, Rollout
from pytools.fleet.transports.ssh import SSHTransport

pytestmark = [needs_root, pytest.mark.timeout(240)]

PAYLOAD = 12 << 20
RATE = 32_000_000  # bits/s: the payload takes ~3 s, long enough to interrupt half-way


@pytest.fixture(scope="module")
def big_package(packages):
    return packages.make("1.3.0", payload_bytes=PAYLOAD)


@pytest.fixture
def netns_robot(make_fleet):
    fleet = make_fleet(1, netns=True)
    robot = fleet.robot("robot-001")
    robot.limit_bandwidth(RATE)
    return fleet, robot


def start_rollout(fleet, package, workdir, version="1.3.0"):
    opts = Options(approval="yes", transport=SSHTransport(connect_timeout=5, io_timeout=3,
                                                          retries=4, backoff=0.5))
    out = {}

    def go():
        try:
            out["record"] = Rollout("demo", version, fleet.inventory, package, workdir,
                                    opts).run()
        except Exception as exc:  # reported by the test thread below
            out["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    return thread, out


def wait_partial(robot, fraction, version="1.3.0", timeout=60):
    path = os.path.join(robot.model_root, "incoming", version, "weights.bin")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) >= fraction * PAYLOAD:
            return os.path.getsize(path)
        time.sleep(0.02)
    raise AssertionError("transfer never reached %d%%" % (fraction * 100))


def finish(thread, out):
    thread.join(200)
    assert not thread.is_alive(), "rollout did not finish"
    if "error" in out:
        raise out["error"]
    return out["record"]


def package_size(package):
    return sum(os.path.getsize(os.path.join(package, n)) for n in os.listdir(package))


def test_link_cut_mid_transfer_then_resumed(netns_robot, big_package, tmp_path):
    fleet, robot = netns_robot
    thread, out = start_rollout(fleet, big_package, str(tmp_path))
    wait_partial(robot, 0.5)
    robot.cut_link()
    time.sleep(4)  # longer than the io timeout: the controller must notice the dead link
    robot.restore_link()
    rec = finish(thread, out)
    r = rec["robots"]["robot-001"]
    assert r["outcome"] == "activated", r
    assert r["attempts"] >= 2
    extra = r["bytes_sent"] - package_size(big_package)
    assert 0 <= extra <= 0.25 * package_size(big_package), "resume must not start over: %d" % extra
    assert current(robot) == "1.3.0" and robot.agent("status")["health"]["ok"]


def test_sshd_killed_mid_transfer_then_resumed(netns_robot, big_package, tmp_path):
    fleet, robot = netns_robot
    thread, out = start_rollout(fleet, big_package, str(tmp_path))
    wait_partial(robot, 0.4)
    robot.stop_sshd(kill_sessions=True)
    time.sleep(1)
    robot.start_sshd()
    rec = finish(thread, out)
    r = rec["robots"]["robot-001"]
    assert r["outcome"] == "activated", r
    assert r["attempts"] >= 2
    assert r["bytes_sent"] - package_size(big_package) <= 0.25 * package_size(big_package)
    assert current(robot) == "1.3.0"


def test_bandwidth_limit_bounds_transfer_time(netns_robot, big_package, tmp_path):
    fleet, robot = netns_robot
    started = time.monotonic()
    rec = finish(*start_rollout(fleet, big_package, str(tmp_path)))
    transfer = rec["robots"]["robot-001"]["timings"]["transfer"]
    floor = PAYLOAD * 8 / RATE
    assert rec["robots"]["robot-001"]["outcome"] == "activated"
    assert floor * 0.9 <= transfer <= time.monotonic() - started
    assert transfer <= floor * 1.5, "transfer %.1fs vs %.1fs at the link rate" % (transfer, floor)
