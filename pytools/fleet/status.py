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
    for robot, res in zip(robots, results):
        health = res.get("health") or {}
        last = res.get("last_deployment") or {}
        rows.append({"robot": robot.name, "address": "%s:%d" % (robot.host, robot.port),
                     "reachable": res.get("status") not in ("unreachable", "hostkey"),
                     "version": res.get("current"), "previous": res.get("previous"),
                     "healthy": bool(health.get("ok")) if res.get("ok") else None,
                     "health_error": health.get("error"), "busy": res.get("busy"),
                     "deploying": (res.get("lease") or {}).get("owner"),
                     "last_deployment": last or None,
                     "error": None if res.get("ok") else res.get("error")})
    return {"robots": rows, "count": len(rows), "seconds": round(time.monotonic() - started, 3),
            "unreachable": sum(1 for r in rows if not r["reachable"]),
            "unhealthy": sum(1 for r in rows if r["reachable"] and not r["healthy"])}


def status_table(data):
    def last(r):
        d = r["last_deployment"]
        return "%s %s %s (%s)" % (d["action"], d["version"], d["result"], d["at"]) if d else "-"

    def health(r):
        if not r["reachable"]:
            return "UNREACHABLE: %s" % r["error"]
        if r["error"]:
            return "ERROR: %s" % r["error"]
        return "ok" if r["healthy"] else "UNHEALTHY: %s" % r["health_error"]

    rows = [(r["robot"], r["address"], r["version"] or "-", health(r),
             "busy" if r["busy"] else "idle", r["deploying"] or "-", last(r))
            for r in data["robots"]]
    text = table(["robot", "address", "version", "health", "mission", "deploying",
                  "last deployment"], rows)
    return text + "\n%d robots, %d unreachable, %d unhealthy (%.1fs)" % (
        data["count"], data["unreachable"], data["unhealthy"], data["seconds"])
