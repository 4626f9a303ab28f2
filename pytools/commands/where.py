"""`pytools where NAME`: which version of a model each robot runs."""
from pytools.commands import leaf
from pytools.commands.lineage import add_source_options, rollout_dirs
from pytools.core.console import table


def handle(args):
    from pytools.tracking import lineage

    records = lineage.rollout_records(args.name, rollout_dirs(args))
    known = lineage.robot_versions(records)
    robots = sorted(set(known) | {r for rec in records for r in rec["robots"]})
    live = lineage.live_versions(args.fleet) if args.fleet else {}
    robots = sorted(set(robots) | set(live))
    rows = []
    for robot in robots:
        row = dict({"robot": robot, "version": None, "since": None, "rollout": None, "outcome": None},
                   **known.get(robot, {}))
        if args.fleet:
            now = live.get(robot) or {}
            row.update(live_version=now.get("version"), healthy=now.get("healthy"),
                       reachable=now.get("reachable", False),
                       agrees=robot in live and now.get("version") == row["version"])
        rows.append(row)
    data = {"name": args.name, "robots": rows, "records": [r["_path"] for r in records],
            "versions": _count(rows, "live_version" if args.fleet else "version")}
    if not rows:
        return data, "no robot runs %s (no rollout records in %s)" % (args.name, ", ".join(rollout_dirs(args)))
    headers = ["robot", "version", "since", "rollout", "outcome"]
    cells = [[r["robot"], r["version"] or "-", r["since"] or "-", r["rollout"] or "-", r["outcome"] or "-"]
             for r in rows]
    if args.fleet:
        headers += ["live version", "health"]
        for r, c in zip(rows, cells):
            c += [r["live_version"] or "-", "unreachable" if not r["reachable"] else
                  ("ok" if r["healthy"] else "UNHEALTHY")]
    summary = ", ".join("%s on %d" % (v, n) for v, n in sorted(data["versions"].items()))
    return data, table(headers, cells) + "\n" + summary


def _count(rows, key):
    out = {}
    for r in rows:
        version = r.get(key) or "unknown"
        out[version] = out.get(version, 0) + 1
    return out


def register(subparsers):
    p = leaf(subparsers, "where", handle, "show which version of a model each robot runs "
             "(from rollout records, or --fleet to ask the robots)")
    p.add_argument("name", metavar="NAME")
    add_source_options(p)
