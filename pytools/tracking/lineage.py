"""Lineage without a server: where a model version came from, where it went, what runs where.

Sources, each optional (a missing one is reported, never fatal):
- package manifests: the registry's copy of every platform of the version, and the work
  directory's `package/` (identity, file hashes, lineage hashes, parity and bench evidence);
- the registry: channels, promotions (who, when, forced), aliases;
- rollout records (`<workdir>/rollouts/*.json`): waves, robot outcomes; replayed in time order
  they say which version each robot runs now (`--fleet` asks the robots themselves instead).

`gather()` returns a dict with `nodes` and `edges` as well, which `to_dot()` draws with Graphviz.
"""
import glob
import os
import shutil
import subprocess
import tempfile

from pytools.core import semver
from pytools.core.errors import PytoolsError
from pytools.core.package import MANIFEST
from pytools.core.files import read_json

RUNNING = ("activated", "already-current")


# -- sources -------------------------------------------------------------------------------------

def same_version(a, b):
    """Equal in SemVer precedence (build metadata ignored), as the registry compares them."""
    try:
        return semver.parse(a) == semver.parse(b)
    except PytoolsError:
        return a == b


def rollout_records(name, folders):
    """Rollout records of model `name` found in `folders`, oldest first."""
    out, seen = [], set()
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            record = read_json(path)
            if not isinstance(record, dict) or record.get("name") != name or "robots" not in record:
                continue
            key = record.get("id") or path
            if key in seen:
                continue
            seen.add(key)
            record["_path"] = os.path.abspath(path)
            out.append(record)
    return sorted(out, key=lambda r: (r.get("updated") or r.get("created") or "", r.get("id") or ""))


def robot_versions(records):
    """{robot: {version, since, rollout, outcome}} from rollout records replayed in time order.

    An activated (or already current) robot runs the record's version from the end of its wave; a
    rolled-back one runs the version it was rolled back to. Failures and refusals change nothing.
    """
    events = []
    for record in records:
        waves = record.get("waves") or []
        for robot, entry in (record.get("robots") or {}).items():
            outcome = entry.get("outcome")
            # A rollback record (`pytools rollback`) names per robot the version it went to.
            if outcome in RUNNING:
                version = entry.get("version") or record.get("version")
            elif outcome == "rolled-back":
                version = entry.get("version") or entry.get("rolled_back_to") or entry.get("previous")
            else:
                continue
            wave = waves[entry["wave"]] if isinstance(entry.get("wave"), int) and entry["wave"] < len(waves) else {}
            when = wave.get("finished") or record.get("updated") or record.get("created") or ""
            events.append((when, robot, {"version": version, "since": when, "rollout": record.get("id"),
                                         "outcome": outcome}))
    state = {}
    for _, robot, value in sorted(events, key=lambda e: e[0]):
        state[robot] = value
    return state


def live_versions(inventory):
    """{robot: {version, healthy, ...}} from the robots' own agents (`pytools fleet status`)."""
    from pytools.fleet.status import fleet_status

    data = fleet_status(inventory)
    return {r["robot"]: {"version": r["version"], "healthy": r["healthy"], "reachable": r["reachable"],
                         "error": r["error"]} for r in data["robots"]}


# -- the lineage of one version ------------------------------------------------------------------

def gather(name, version, registry=None, package_dirs=(), rollout_dirs=(), fleet=None):
    notes = []
    if registry is not None and not semver.is_valid(version):
        version = registry.resolve(name, version)["version"]   # an alias, channel or range
    platforms = {}
    channels = {}
    promotions = []
    if registry is None:
        notes.append("no registry found (set --registry or $PYTOOLS_REGISTRY)")
    else:
        for stored in registry.copies(name, version):
            entry = platforms.get(stored["platform"])
            if entry is None:  # every copy of a platform holds the same bytes: read one manifest
                entry = platforms[stored["platform"]] = {"manifest": registry.manifest(stored), "sources": []}
            entry["sources"].append(stored["location"])
            channels.setdefault(stored["platform"], []).append(stored["channel"])
            promo = stored["promotion"]
            if promo and promo not in promotions:
                promotions.append(promo)
        for row in registry.versions(name):
            if same_version(row["version"], version):
                version = row["version"]
    for folder in package_dirs:
        manifest = read_json(os.path.join(folder, MANIFEST))
        if manifest and manifest.get("name") == name and same_version(manifest.get("version", ""), version):
            entry = platforms.setdefault(manifest.get("platform") or "unknown", {"manifest": manifest, "sources": []})
            entry["sources"].append(os.path.abspath(folder))
            version = manifest["version"]
    if not platforms:
        raise PytoolsError("no package of %s %s found (looked in: %s)"
                           % (name, version, ", ".join(["the registry"] * (registry is not None)
                                                       + list(package_dirs)) or "nothing"))
    records = rollout_records(name, rollout_dirs)
    deployments = [_deployment(r) for r in records if same_version(r.get("version", ""), version)]
    now = robot_versions(records)
    running = {robot: dict(v, source="rollout records") for robot, v in now.items()
               if v["version"] and same_version(v["version"], version)}
    if fleet:
        live = live_versions(fleet)
        running = {robot: dict(v, source="fleet status") for robot, v in live.items()
                   if v["version"] and same_version(v["version"], version)}
    if not records:
        notes.append("no rollout records found (looked in: %s)" % ", ".join(rollout_dirs))
    data = {"name": name, "version": version, "platforms": {}, "promotions": promotions,
            "deployments": deployments, "running": running, "notes": notes}
    for platform, entry in sorted(platforms.items()):
        data["platforms"][platform] = _platform_view(entry["manifest"], sorted(set(channels.get(platform, []))),
                                                     entry["sources"])
    data["nodes"], data["edges"] = graph(data)
    return data


def _platform_view(manifest, channels, sources):
    runtime = manifest.get("runtime") or {}
    evidence = manifest.get("evidence") or {}
    files = {f.get("role"): f for f in manifest.get("files", []) if isinstance(f, dict)}
    parity = evidence.get("parity") or {}
    return {
        "runtime": runtime.get("kind"), "precision": runtime.get("precision"),
        "constraints": runtime.get("constraints") or {},
        "engine_sha256": (files.get("engine") or {}).get("sha256"),
        "entry_sha256": next((f["sha256"] for f in manifest.get("files", [])
                              if f.get("path") == runtime.get("entry")), None),
        "created": manifest.get("created"), "git_commit": manifest.get("git_commit"),
        "build_url": manifest.get("build_url"), "lineage": manifest.get("lineage") or {},
        "parity": {"passed": parity.get("passed"), "samples": parity.get("samples"),
                   "backends": {b: v.get("status") for b, v in (parity.get("backends") or {}).items()}},
        "bench": {b: v for b, v in (evidence.get("bench") or {}).items()},
        "channels": channels, "sources": sources,
    }


def _deployment(record):
    outcomes = {}
    for entry in record["robots"].values():
        outcomes[entry.get("outcome")] = outcomes.get(entry.get("outcome"), 0) + 1
    return {"id": record.get("id"), "state": record.get("state"), "created": record.get("created"),
            "updated": record.get("updated"), "record": record["_path"], "outcomes": outcomes,
            "waves": [{"name": w.get("name"), "state": w.get("state"), "approver": w.get("approver"),
                       "robots": len(w.get("robots") or [])} for w in record.get("waves") or []],
            "robots": {r: e.get("outcome") for r, e in sorted(record["robots"].items())}}


def _short(sha):
    return (sha or "?")[:12]


def graph(data):
    """Nodes {id, kind, label} and edges {from, to, label} of the chain."""
    nodes, edges = [], []

    def node(nid, kind, label):
        if all(n["id"] != nid for n in nodes):
            nodes.append({"id": nid, "kind": kind, "label": label})
        return nid

    for platform, view in sorted(data["platforms"].items()):
        lin = view["lineage"]
        ckpt = node("checkpoint", "checkpoint", "checkpoint\n%s" % _short(lin.get("checkpoint_sha256")))
        if lin.get("config_sha256"):
            cfg = node("config", "config", "config %s\ngit %s" % (_short(lin["config_sha256"]),
                                                                 (view.get("git_commit") or "-")[:7]))
            edges.append({"from": cfg, "to": ckpt, "label": ""})
        ts = node("torchscript", "torchscript", "TorchScript\n%s" % _short(lin.get("torchscript_sha256")))
        onnx = node("onnx", "onnx", "ONNX\n%s" % _short(lin.get("onnx_sha256")))
        edges += [{"from": ckpt, "to": ts, "label": "export"}, {"from": ts, "to": onnx, "label": "export"}]
        source = onnx
        if lin.get("onnx_simplified_sha256"):
            source = node("onnx-simplified", "onnx", "ONNX simplified\n%s" % _short(lin["onnx_simplified_sha256"]))
            edges.append({"from": onnx, "to": source, "label": "onnxsim"})
        if view["engine_sha256"]:
            eng = node("engine:" + platform, "engine", "TensorRT engine %s\n%s %s" % (
                platform, view["precision"], _short(view["engine_sha256"])))
            edges.append({"from": source, "to": eng, "label": "engine build"})
            source = eng
        pkg = node("package:" + platform, "package", "package %s\n%s (%s)" % (data["version"], platform, view["runtime"]))
        edges.append({"from": source, "to": pkg, "label": "package"})
        parity = view["parity"]
        passed = {True: "PASSED", False: "FAILED"}.get(parity["passed"], "unknown")
        ev = node("parity:" + platform, "evidence", "parity %s\n%s" % (passed, "\n".join(
            "%s %s" % (b, s) for b, s in sorted(parity["backends"].items()))))
        edges.append({"from": ev, "to": pkg, "label": "evidence"})
        if view["bench"]:
            bench = node("bench:" + platform, "evidence", "bench p50 ms\n%s" % _bench_line(view["bench"]))
            edges.append({"from": bench, "to": pkg, "label": "evidence"})
        previous = pkg
        for channel in view["channels"]:
            ch = node("channel:" + channel, "channel", "registry: %s" % channel)
            promo = [p for p in data["promotions"] if p.get("to") == channel]
            label = ("promoted by %s\n%s" % (promo[0].get("by"), promo[0].get("at"))) if promo else "publish"
            edges.append({"from": previous, "to": ch, "label": label})
            previous = ch
    for dep in data["deployments"]:
        rid = node("rollout:" + dep["id"], "rollout", "rollout %s\n%s: %s" % (
            dep["id"].rsplit("-", 1)[-1], dep["state"],
            ", ".join("%d %s" % (n, o) for o, n in sorted(dep["outcomes"].items()))))
        for platform in data["platforms"]:
            edges.append({"from": "package:" + platform, "to": rid, "label": "rollout"})
    for robot, info in sorted(data["running"].items()):
        rnode = node("robot:" + robot, "robot", "%s\nruns %s" % (robot, info["version"]))
        origin = "rollout:" + info["rollout"] if info.get("rollout") else None
        if origin and any(n["id"] == origin for n in nodes):
            edges.append({"from": origin, "to": rnode, "label": info.get("outcome") or ""})
        else:
            for platform in data["platforms"]:
                edges.append({"from": "package:" + platform, "to": rnode, "label": info["source"]})
    return nodes, edges


def _bench_line(bench):
    parts = []
    for backend, per_batch in sorted(bench.items()):
        if "skipped" in per_batch:
            continue
        batch = sorted(per_batch, key=lambda b: int(b))[0]
        parts.append("%s b%s %.3g" % (backend, batch, per_batch[batch]["p50_ms"]))
    return "\n".join(parts) or "no backend timed"


# -- output --------------------------------------------------------------------------------------

def text(data):
    lines = ["%s %s" % (data["name"], data["version"])]
    for platform, v in sorted(data["platforms"].items()):
        lin = v["lineage"]
        lines += ["", "platform %s (%s, %s)" % (platform, v["runtime"], v["precision"]),
                  "  built        %s  git %s%s" % (v["created"], v["git_commit"] or "-",
                                                  ("  " + v["build_url"]) if v["build_url"] else ""),
                  "  config       %s" % (lin.get("config_sha256") or "-"),
                  "  checkpoint   %s" % (lin.get("checkpoint_sha256") or "-"),
                  "  TorchScript  %s" % (lin.get("torchscript_sha256") or "-"),
                  "  ONNX         %s" % (lin.get("onnx_sha256") or "-"),
                  "  simplified   %s" % (lin.get("onnx_simplified_sha256") or "-")]
        if v["engine_sha256"]:
            lines.append("  engine       %s" % v["engine_sha256"])
        parity = v["parity"]
        lines.append("  parity       %s on %s samples (%s)" % (
            {True: "PASSED", False: "FAILED"}.get(parity["passed"], "unknown"), parity["samples"],
            ", ".join("%s %s" % kv for kv in sorted(parity["backends"].items()))))
        lines.append("  bench p50    %s" % _bench_line(v["bench"]).replace("\n", "; "))
        lines.append("  channels     %s" % (", ".join(v["channels"]) or "not in the registry"))
        for run in lin.get("tracking_runs") or []:
            lines.append("  W&B run      %s %s %s" % (run.get("stage"), run.get("id"), run.get("url") or ""))
    for p in data["promotions"]:
        lines.append("promoted     %s -> %s by %s at %s%s" % (p.get("from"), p.get("to"), p.get("by"), p.get("at"),
                                                           " (FORCED)" if p.get("forced") == "true" else ""))
    for d in data["deployments"]:
        lines.append("rollout      %s %s: %s" % (d["id"], d["state"], ", ".join(
            "%d %s" % (n, o) for o, n in sorted(d["outcomes"].items()))))
    if data["running"]:
        lines.append("running on   %s" % ", ".join("%s (since %s)" % (r, i.get("since") or "?") if i.get("since")
                                                    else r for r, i in sorted(data["running"].items())))
    else:
        lines.append("running on   no robot")
    lines += ["note: " + n for n in data["notes"]]
    return "\n".join(lines)


COLOURS = {"checkpoint": "#fde68a", "config": "#e5e7eb", "torchscript": "#bfdbfe", "onnx": "#bfdbfe",
           "engine": "#c7d2fe", "package": "#bbf7d0", "evidence": "#fef3c7", "channel": "#d1fae5",
           "rollout": "#fbcfe8", "robot": "#fecaca"}


def to_dot(data):
    def q(s):
        return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    out = ["digraph lineage {", "  rankdir=LR;", '  label=%s; labelloc=t; fontname="DejaVu Sans";'
           % q("%s %s" % (data["name"], data["version"])),
           '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", fontsize=10];',
           '  edge [fontname="DejaVu Sans", fontsize=8];']
    for n in data["nodes"]:
        out.append("  %s [label=%s, fillcolor=%s];" % (q(n["id"]), q(n["label"]), q(COLOURS.get(n["kind"], "#ffffff"))))
    for e in data["edges"]:
        out.append("  %s -> %s [label=%s];" % (q(e["from"]), q(e["to"]), q(e["label"])))
    out.append("}")
    return "\n".join(out) + "\n"


def render(dot_text, dest, fmt):
    """Draw with Graphviz `dot` into `dest` (written whole or not at all)."""
    exe = shutil.which("dot")
    if not exe:
        raise PytoolsError("drawing the lineage needs Graphviz `dot` (apt-get install graphviz)")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise PytoolsError("cannot write %s: folder %s does not exist" % (dest, folder))
    fd, tmp = tempfile.mkstemp(prefix=".lineage-", suffix="." + fmt, dir=folder)
    os.close(fd)
    try:
        proc = subprocess.run([exe, "-T" + fmt, "-o", tmp], input=dot_text.encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120)
        if proc.returncode != 0:
            raise PytoolsError("dot failed: %s" % proc.stderr.decode(errors="replace").strip().splitlines()[-1:])
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return os.path.abspath(dest)
