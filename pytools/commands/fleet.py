"""`pytools fleet status|simulate`: what runs where, and a simulated fleet to try it on."""
import os
import signal
import threading

from pytools.commands import group, leaf
from pytools.core.errors import ConfigError


def register(subparsers):
    sub = group(subparsers, "fleet", help="robot fleet: status, unlock and a simulated fleet")
    p = leaf(sub, "status", handle_status, help="version, health and last deployment of every "
             "robot, queried in parallel")
    p.add_argument("inventory", help="Ansible inventory of the robots (INI, YAML or a directory)")
    p.add_argument("--concurrency", type=int, default=64, help="robots queried at once (64)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-robot timeout, seconds (10)")
    p = leaf(sub, "unlock", handle_unlock, help="break the fleet's rollout lock (a stale one: its "
             "controller is gone); recorded with who and why in the lock robot's audit log")
    p.add_argument("inventory", help="Ansible inventory of the robots (INI, YAML or a directory)")
    p.add_argument("--reason", required=True, help="why the lock is broken (recorded)")
    p.add_argument("--timeout", type=float, default=10.0, help="SSH timeout, seconds (10)")
    p = leaf(sub, "simulate", handle_simulate,
             help="run N simulated robots (real sshd + inference service) until interrupted")
    p.add_argument("count", type=int)
    p.add_argument("--dir", default=os.path.join("work", "fleet"),
                   help="where robots, keys and inventory.yml go (default work/fleet)")
    p.add_argument("--install", metavar="PACKAGE_DIR",
                   help="put this package on every robot as its first release")
    p.add_argument("--netns", action="store_true",
                   help="one network namespace per robot (198.51.100.0/24) instead of loopback")
    p.add_argument("--no-services", action="store_true",
                   help="no inference services (health = files verified); for large fleets")
    p.add_argument("--public-key", help="robots require packages signed by this Ed25519 key")
    p.add_argument("--canaries", type=int, default=1, help="robots in the canary group (1)")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C / SIGTERM)")


def handle_status(args):
    if args.concurrency < 1 or args.timeout <= 0:
        raise ConfigError("--concurrency must be >= 1 and --timeout > 0")
    # paramiko is imported only when a fleet command runs, so every other command starts fast.
    from pytools.fleet.status import fleet_status, status_table
    from pytools.fleet.transports.ssh import SSHTransport

    data = fleet_status(args.inventory, args.concurrency,
                        SSHTransport(connect_timeout=args.timeout, io_timeout=args.timeout,
                                     retries=0))
    data["exit_code"] = 1 if data["unknown"] or data["unhealthy"] else 0
    return data, status_table(data)


def handle_unlock(args):
    if not args.reason.strip():
        raise ConfigError("--reason must say why the lock is broken")
    from pytools.fleet.fleet_lock import unlock
    from pytools.fleet.inventory import load_inventory
    from pytools.fleet.transports.ssh import SSHTransport

    robot, broken = unlock(SSHTransport(connect_timeout=args.timeout, io_timeout=args.timeout,
                                        retries=0), load_inventory(args.inventory), args.reason)
    data = {"lock_robot": robot, "broken": broken, "reason": args.reason}
    if not broken:
        return data, "the fleet lock (on %s) was not held" % robot
    return data, "broke the fleet lock on %s held by rollout %s (%s %s, by %s since %s)" % (
        robot, broken.get("owner"), broken.get("name"), broken.get("version"), broken.get("who"),
        broken.get("acquired"))


def handle_simulate(args):
    from pytools.fleet.sim.simulate import SimulatedFleet
    from pytools.core.package import read_manifest
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: stop.set())
    with SimulatedFleet(args.dir, args.count, services=not args.no_services, netns=args.netns,
                        public_key=args.public_key, canaries=args.canaries) as fleet:
        if args.install:
            fleet.install(args.install, read_manifest(args.install)["version"])
        summary = fleet.summary()
        if not args.json:
            print("%d robots running; inventory: %s\n"
                  "try: pytools fleet status %s\n(Ctrl-C stops the fleet)"
                  % (args.count, fleet.inventory, fleet.inventory), flush=True)
        stop.wait(args.duration)
    summary["stopped"] = True
    return summary, "fleet stopped"
