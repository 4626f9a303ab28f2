"""What runs where: query every robot's agent in parallel."""
import time
from concurrent.futures import ThreadPoolExecutor

from pytools.core.console import table
from pytools.fleet.inventory import load_inventory
from pytools.fleet.transports.ssh import SSHTransport


def fleet_status(inventory, concurrency=64, transport=None):
    robots = load_inventory(inventory)
    transport = transport or SSHTransport(retries=0)
    started = time.monotonic()
    with ThreadPoolExecutor(max(int(concurrency), 1)) as pool:
        results = list(pool.map(transport.status, robots))
    rows = []
    lock = None
    for robot, res in zip(robots, results):
        health = res.get("health") or {}
        last = res.get("last_deployment") or {}
        fleet_lock = res.get("fleet_lock") or {}
        if fleet_lock.get("owner") and fleet_lock.get("expires", 0) >= time.time():
            lock = dict(fleet_lock, robot=robot.name)
        rows.append({"robot": robot.name, "address": "%s:%d" % (robot.host, robot.port),
                     "reachable": res.get("status") not in ("unreachable", "hostkey"),
                     "version": res.get("current"), "previous": res.get("previous"),
                     "healthy": bool(health.get("ok")) if res.get("ok") else None,
                     "health_error": health.get("error"), "busy": res.get("busy"),
                     "deploying": (res.get("lease") or {}).get("owner"),
                     "last_deployment": last or None,
                     "activation": (res.get("recovered") or {}).get("in_progress"),
                     "error": None if res.get("ok") else res.get("error")})
    return {"robots": rows, "count": len(rows), "seconds": round(time.monotonic() - started, 3),
            "fleet_lock": lock,
            "unreachable": sum(1 for r in rows if not r["reachable"]),
            "unhealthy": sum(1 for r in rows if r["reachable"] and r["healthy"] is False),
            "unknown": sum(1 for r in rows if r["healthy"] is None)}


def status_table(data):
    def last(r):
        d = r["last_deployment"]
        return "%s %s %s (%s)" % (d["action"], d["version"], d["result"], d["at"]) if d else "-"

    def health(r):
        if not r["reachable"]:
            return "unknown (UNREACHABLE: %s)" % r["error"]
        if r["error"]:
            return "unknown (ERROR: %s)" % r["error"]
        return "ok" if r["healthy"] else "UNHEALTHY: %s" % r["health_error"]

    def known(r, value):
        """What a robot that did not answer cannot tell is `unknown`, never a guess."""
        return value if r["reachable"] and not r["error"] else "unknown"

    rows = [(r["robot"], r["address"], known(r, r["version"] or "-"), health(r),
             known(r, "busy" if r["busy"] else "idle"), known(r, r["deploying"] or "-"),
             known(r, last(r)))
            for r in data["robots"]]
    text = table(["robot", "address", "version", "health", "mission", "deploying",
                  "last deployment"], rows)
    lock = data.get("fleet_lock")
    text += "\n%d robots, %d unreachable, %d unhealthy (%.1fs)" % (
        data["count"], data["unreachable"], data["unhealthy"], data["seconds"])
    if lock:
        text += "\nfleet lock (on %s): rollout %s (%s %s, by %s, %s)" % (
            lock["robot"], lock.get("owner"), lock.get("name"), lock.get("version"),
            lock.get("who"), lock.get("state") or "running")
    return text
