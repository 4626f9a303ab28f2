"""Fleet rollout benchmark: every number is measured against a baseline in the same run.

    python bench/bench_fleet.py [--size-mb 100] [--robots 20] [--status-robots 100] [--quick]

1. A package of SIZE MB to ROBOTS simulated robots: `pytools rollout` (SSH, one wave) wall time
   against a plain `ansible-playbook` copy of the same file to the same robots (forks = ROBOTS).
   Expected ratio <= 1.0.
2. Links limited with tc tbf (robots in network namespaces): wave time against size/bandwidth.
   Required <= 1.3.
3. A transfer cut at 50% (link down, then up): extra bytes sent against the package size.
   Required <= 10%.
4. `fleet status` of STATUS_ROBOTS robots against the 3 s budget. Required < 1.0; also the
   controller's own CPU seconds per robot (on a real fleet only that side runs here).
5. The fleet lock's share of the rollout of (1): its SSH calls on the rollout's path (take and
   release; the heartbeat renews from its own thread) against the rest. Required < 5%.

Needs root (sshd, network namespaces). Everything it starts is stopped before it exits.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pytools.fleet.rollout import Options, Rollout  # noqa: E402
from pytools.fleet.sim.demo import PAYLOAD, make_demo_package  # noqa: E402
from pytools.fleet.sim.simulate import SimulatedFleet  # noqa: E402
from pytools.fleet.transports.ssh import SSHTransport  # noqa: E402

RESULTS = []


def report(label, ratio, limit, op):
    ok = ratio <= limit if op == "<=" else ratio < limit
    RESULTS.append(ok)
    print("ratio %s: %.3f (%s %g required) %s" % (label, ratio, op, limit,
                                                    "PASS" if ok else "FAIL"), flush=True)


def rollout(fleet, package, workdir, version, transport=None, concurrency=8):
    opts = Options(waves="100%", approval="yes", concurrency=concurrency,
                   transport=transport or SSHTransport(io_timeout=20))
    started = time.monotonic()
    rec = Rollout("demo", version, fleet.inventory, package, workdir, opts).run()
    elapsed = time.monotonic() - started
    bad = {n: r["outcome"] for n, r in rec["robots"].items() if r["outcome"] != "activated"}
    if bad:
        raise SystemExit("rollout failed: %s" % bad)
    return elapsed, rec


def package_size(package):
    return sum(os.path.getsize(os.path.join(package, n)) for n in os.listdir(package))


COPY_PLAY = """\
- name: Plain copy baseline
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy the file
      ansible.builtin.copy:
        src: {src}
        dest: "{{{{ model_agent_root }}}}/../baseline.bin"
        mode: "0644"
"""


def ansible_copy(fleet, src, tmp, forks):
    play = os.path.join(tmp, "copy.yml")
    with open(play, "w") as f:
        f.write(COPY_PLAY.format(src=src))
    env = dict(os.environ, ANSIBLE_HOME=os.path.join(tmp, "ansible-home"),
               ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-tmp"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(tmp, "ansible-cp"),
               ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_FORKS=str(forks),
               ANSIBLE_PIPELINING="True", ANSIBLE_GATHERING="explicit")
    env.pop("ANSIBLE_CONFIG", None)
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", fleet.inventory, play], env=env, cwd=tmp,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("ansible-playbook baseline failed:\n" + proc.stdout.decode()[-2000:])
    return elapsed


def bench_throughput(tmp, size_mb, robots):
    pkg = os.path.join(tmp, "pkg-big")
    make_demo_package(pkg, "2.0.0", payload_bytes=size_mb << 20)
    with SimulatedFleet(os.path.join(tmp, "fleet-big"), robots, services=False) as fleet:
        base = ansible_copy(fleet, os.path.join(pkg, PAYLOAD), tmp, robots)
        ours, rec = rollout(fleet, pkg, os.path.join(tmp, "w-big"), "2.0.0",
                            concurrency=robots)
    total = package_size(pkg) * robots / 1e6
    print("rollout of %d MB to %d robots: pytools %.1fs (%.0f MB/s), ansible-playbook copy "
          "%.1fs (%.0f MB/s)" % (size_mb, robots, ours, total / ours, base, total / base))
    report("rollout/ansible-copy wall time", ours / base, 1.0, "<=")
    lock = rec["runs"][-1]["lock_seconds"]
    print("fleet lock: %.3fs of the %.1fs rollout" % (lock, ours))
    report("fleet lock/rest of the rollout", lock / (ours - lock), 0.05, "<")


def bench_bandwidth(tmp, robots=4, size_mb=24, rate=40_000_000):
    pkg = os.path.join(tmp, "pkg-tbf")
    make_demo_package(pkg, "3.0.0", payload_bytes=size_mb << 20)
    with SimulatedFleet(os.path.join(tmp, "fleet-tbf"), robots, services=False,
                        netns=True) as fleet:
        for robot in fleet.robots:
            robot.limit_bandwidth(rate)
        _, rec = rollout(fleet, pkg, os.path.join(tmp, "w-tbf"), "3.0.0", concurrency=robots)
    send = max(r["timings"]["send"] for r in rec["robots"].values())
    whole = max(r["timings"]["transfer"] for r in rec["robots"].values())
    floor = package_size(pkg) * 8 / rate
    print("tbf %d Mbit/s per robot, %d robots, %d MB: wave sending %.1fs (with connect + "
          "sha256 verify on the robot %.1fs), size/bandwidth %.1fs"
          % (rate // 1_000_000, robots, size_mb, send, whole, floor))
    report("wave send time/(size/bandwidth)", send / floor, 1.3, "<=")


def bench_resume(tmp, size_mb=60, rate=200_000_000):
    pkg = os.path.join(tmp, "pkg-cut")
    make_demo_package(pkg, "4.0.0", payload_bytes=size_mb << 20)
    with SimulatedFleet(os.path.join(tmp, "fleet-cut"), 1, services=False, netns=True) as fleet:
        robot = fleet.robots[0]
        robot.limit_bandwidth(rate)
        partial = os.path.join(robot.model_root, "incoming", "4.0.0", PAYLOAD)

        def cut_at_half():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if os.path.exists(partial) and os.path.getsize(partial) >= (size_mb << 20) // 2:
                    robot.cut_link()
                    time.sleep(4)
                    robot.restore_link()
                    return
                time.sleep(0.01)

        cutter = threading.Thread(target=cut_at_half)
        cutter.start()
        _, rec = rollout(fleet, pkg, os.path.join(tmp, "w-cut"), "4.0.0",
                         transport=SSHTransport(connect_timeout=5, io_timeout=3, retries=4,
                                                backoff=0.5))
        cutter.join()
    r = rec["robots"]["robot-001"]
    extra = r["bytes_sent"] - package_size(pkg)
    print("cut at 50%% of %d MB: %d attempts, %d bytes sent, %d extra"
          % (size_mb, r["attempts"], r["bytes_sent"], extra))
    if r["attempts"] < 2:
        raise SystemExit("the link cut did not interrupt the transfer")
    report("resume extra bytes/package size", extra / package_size(pkg), 0.10, "<=")


def status_process(inventory):
    """(wall seconds, CPU seconds of the controller process) of one `pytools fleet status`."""
    before = os.times()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytools", "fleet", "status", "--json",
                           inventory], stdout=subprocess.PIPE, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    elapsed = time.monotonic() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit("fleet status found broken robots: %s" % proc.stdout.decode()[-2000:])
    # children_* = the status process only: the simulated robots are not waited for yet.
    return elapsed, (after.children_user - before.children_user
                     + after.children_system - before.children_system)


def bench_status(tmp, robots):
    pkg = os.path.join(tmp, "pkg-small")
    make_demo_package(pkg, "1.0.0")
    with SimulatedFleet(os.path.join(tmp, "fleet-status"), robots, services=False) as fleet:
        fleet.install(pkg, "1.0.0")
        # As `pytools fleet status` runs it: a fresh process each time. The first parses the
        # inventory with ansible-core; later ones read the parse cache (what an operator's
        # repeated queries and a dashboard get).
        runs = [status_process(fleet.inventory) for _ in range(2)]
    for label, (elapsed, cpu) in zip(("first (inventory parsed)", "again (parse cached)"), runs):
        print("fleet status of %d robots, %s: %.2fs wall, controller CPU %.2fs (%.1f ms per "
              "robot)" % (robots, label, elapsed, cpu, 1000 * cpu / robots))
    elapsed = runs[1][0]
    report("fleet status time/3s budget", elapsed / 3.0, 1.0, "<")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--robots", type=int, default=20)
    p.add_argument("--status-robots", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="20 MB to 5 robots, status of 20")
    args = p.parse_args()
    if args.quick:
        args.size_mb, args.robots, args.status_robots = 20, 5, 20
    if os.geteuid() != 0:
        raise SystemExit("bench_fleet needs root (sshd, network namespaces)")
    # Robots and controller share this machine's cores: other work running at the same time
    # slows the simulated robots too, so the load is printed with the numbers.
    print("load average before: %.1f %.1f %.1f on %d cores" % (os.getloadavg() + (os.cpu_count(),)))
    tmp = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        bench_throughput(tmp, args.size_mb, args.robots)
        bench_bandwidth(tmp)
        bench_resume(tmp)
        bench_status(tmp, args.status_robots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("load average after: %.1f %.1f %.1f" % os.getloadavg())
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
