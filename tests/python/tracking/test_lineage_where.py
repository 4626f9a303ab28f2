"""`pytools lineage` and `pytools where` end to end on the crop/weed example: built, published,
promoted and rolled out to simulated robots (the session fixture)."""
import copy
import json
import os
import xml.etree.ElementTree as ET

import pytest

from pytools.core.hashing import sha256_file

pytestmark = pytest.mark.timeout(300)

NAME = "crop-weed-classifier"


def lineage_args(scenario, *extra):
    return ["lineage", NAME, scenario["version"], "--workdir", scenario["workdir"],
            "--registry", scenario["registry"]] + list(extra)


def test_lineage_text_shows_the_chain(cli, scenario):
    res = cli(*lineage_args(scenario))
    assert res.code == 0, res.err
    wd = scenario["workdir"]
    out = res.out
    assert out.startswith("%s %s" % (NAME, scenario["version"]))
    assert "checkpoint   %s" % sha256_file(os.path.join(wd, "checkpoint", "checkpoint.pt")) in out
    assert "TorchScript  %s" % sha256_file(os.path.join(wd, "export", "model.ts")) in out
    assert "ONNX         %s" % sha256_file(os.path.join(wd, "export", "model.onnx")) in out
    assert "simplified   %s" % sha256_file(os.path.join(wd, "export", "model.sim.onnx")) in out
    samples = json.load(open(os.path.join(wd, "state", "parity.json")))["summary"]["samples"]
    assert samples > 16  # 16 images at every shape group of the batch axis
    assert "parity       PASSED on %d samples" % samples in out and "tensorrt skipped" in out
    assert "bench p50    onnxruntime b1 " in out
    assert "channels     dev, staging" in out
    assert "promoted     dev -> staging by " in out
    assert "rollout      %s completed: 3 activated" % scenario["rollout"]["rollout"] in out
    assert "running on   robot-001 (since " in out and "robot-003" in out
    assert "note:" not in out


def reachable(edges, start):
    seen, todo = {start}, [start]
    while todo:
        cur = todo.pop()
        for e in edges:
            if e["from"] == cur and e["to"] not in seen:
                seen.add(e["to"])
                todo.append(e["to"])
    return seen


def test_lineage_json_graph_links_checkpoint_to_robots(cli, scenario):
    res = cli(*lineage_args(scenario, "--json"))
    assert res.code == 0, res.err
    data = res.json
    assert data["version"] == scenario["version"]
    [platform] = data["platforms"]
    view = data["platforms"][platform]
    assert view["channels"] == ["dev", "staging"]
    assert any(src.startswith(scenario["registry"]) for src in view["sources"])
    assert view["lineage"]["checkpoint_sha256"] == sha256_file(
        os.path.join(scenario["workdir"], "checkpoint", "checkpoint.pt"))
    assert sorted(data["running"]) == ["robot-001", "robot-002", "robot-003"]
    assert data["promotions"][0]["to"] == "staging"
    down = reachable(data["edges"], "checkpoint")
    assert {"torchscript", "onnx", "onnx-simplified", "package:" + platform, "channel:dev", "channel:staging",
            "rollout:" + scenario["rollout"]["rollout"], "robot:robot-001", "robot:robot-003"} <= down
    assert "parity:" + platform in {e["from"] for e in data["edges"] if e["to"] == "package:" + platform}


def test_lineage_by_channel_name(cli, scenario):
    res = cli("lineage", NAME, "staging", "--workdir", scenario["workdir"], "--registry", scenario["registry"],
              "--json")
    assert res.code == 0, res.err
    assert res.json["version"] == scenario["version"]


def test_lineage_pictures(cli, scenario, tmp_path):
    svg, png = tmp_path / "lineage.svg", tmp_path / "lineage.png"
    res = cli(*lineage_args(scenario, "--svg", svg, "--png", png))
    assert res.code == 0, res.err
    root = ET.parse(str(svg)).getroot()
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    for word in ("checkpoint", "TorchScript", "ONNX", "robot-001", "registry: staging", "parity PASSED"):
        assert word in texts
    from PIL import Image

    with Image.open(str(png)) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 100


def test_lineage_picture_into_missing_folder_leaves_nothing(cli, scenario, tmp_path):
    res = cli(*lineage_args(scenario, "--svg", tmp_path / "nope" / "x.svg"))
    assert res.code != 0
    assert res.error_line.startswith("error: cannot write") and "does not exist" in res.error_line
    assert not (tmp_path / "nope").exists()


def test_lineage_unknown_version(cli, scenario):
    res = cli("lineage", NAME, "9.9.9", "--workdir", scenario["workdir"], "--registry", scenario["registry"])
    assert res.code != 0
    assert res.error_line.startswith("error: ") and "9.9.9" in res.error_line


def test_lineage_without_registry_reads_the_workdir(cli, scenario, tmp_path):
    """No registry: the work directory's package and records still tell the story, and no empty
    registry is created by looking."""
    missing = tmp_path / "no-registry"
    res = cli("lineage", NAME, scenario["version"], "--workdir", scenario["workdir"], "--registry", missing)
    assert res.code == 0, res.err
    assert "channels     not in the registry" in res.out
    assert "note: no registry found" in res.out
    assert not missing.exists()


def test_where_from_rollout_records(cli, scenario):
    res = cli("where", NAME, "--workdir", scenario["workdir"], "--json")
    assert res.code == 0, res.err
    rows = {r["robot"]: r for r in res.json["robots"]}
    assert sorted(rows) == ["robot-001", "robot-002", "robot-003"]
    assert all(r["version"] == scenario["version"] and r["outcome"] == "activated" for r in rows.values())
    assert res.json["versions"] == {scenario["version"]: 3}
    text = cli("where", NAME, "--workdir", scenario["workdir"]).out
    assert "robot-002" in text and "%s on 3" % scenario["version"] in text


def test_where_replays_records_in_time_order(cli, scenario, tmp_path):
    """A later rollout of 1.1.0: two robots activated, one rolled back to what it had before."""
    with open(scenario["rollout"]["record"]) as f:
        first = json.load(f)
    later = copy.deepcopy(first)
    later.update(id="%s-1.1.0-later" % NAME, version="1.1.0", created="2099-01-01T00:00:00Z",
                 updated="2099-01-01T00:05:00Z")
    for wave in later["waves"]:
        wave["finished"] = "2099-01-01T00:04:00Z"
    later["robots"]["robot-002"].update(outcome="rolled-back", previous=scenario["version"])
    later["robots"]["robot-003"].update(outcome="refused", error="platform mismatch")
    folder = tmp_path / "more-records"
    folder.mkdir()
    (folder / ("%s-1.1.0.json" % NAME)).write_text(json.dumps(later))
    res = cli("where", NAME, "--workdir", scenario["workdir"], "--rollouts", folder, "--json")
    assert res.code == 0, res.err
    rows = {r["robot"]: r for r in res.json["robots"]}
    assert rows["robot-001"]["version"] == "1.1.0"
    assert rows["robot-002"]["version"] == scenario["version"] and rows["robot-002"]["outcome"] == "rolled-back"
    assert rows["robot-003"]["version"] == scenario["version"]          # refused: unchanged
    assert rows["robot-003"]["rollout"] == scenario["rollout"]["rollout"]
    res = cli("lineage", NAME, scenario["version"], "--workdir", scenario["workdir"], "--rollouts", folder,
              "--registry", scenario["registry"], "--json")
    assert sorted(res.json["running"]) == ["robot-002", "robot-003"]


def test_where_asks_live_robots(cli, scenario, tmp_path):
    from pytools.fleet.sim.simulate import SimulatedFleet

    package = os.path.join(scenario["workdir"], "package")
    with SimulatedFleet(str(tmp_path / "fleet"), 2, services=False) as fleet:
        fleet.install(package, scenario["version"])
        res = cli("where", NAME, "--workdir", str(tmp_path / "nothing"), "--fleet", fleet.inventory, "--json")
    assert res.code == 0, res.err
    rows = res.json["robots"]
    assert len(rows) == 2
    assert all(r["live_version"] == scenario["version"] and r["reachable"] for r in rows)
    assert res.json["versions"] == {scenario["version"]: 2}


def test_where_without_records(cli, tmp_path):
    res = cli("where", NAME, "--workdir", tmp_path)
    assert res.code == 0
    assert res.out.startswith("no robot runs %s" % NAME)


def test_lineage_shows_engines_per_platform(cli, scenario, tmp_path):
    """A TensorRT package of the same version (built on a Jetson agent) published beside the
    ONNX Runtime one: lineage shows both platforms and the engine with its sha256."""
    import shutil

    from pytools.core.package import read_manifest, write_package
    from pytools.registry import open_registry

    registry = str(tmp_path / "registry")
    shutil.copytree(scenario["registry"], registry)
    onnx_pkg = os.path.join(scenario["workdir"], "package")
    manifest = read_manifest(onnx_pkg)
    plan = tmp_path / "model.plan"
    plan.write_bytes(os.urandom(50000))     # stands in for the plan bytes; only hashes are read
    platform = "trt8.5-sm72-l4t35.3.1"
    fields = {k: v for k, v in manifest.items() if k not in ("schema", "files", "created")}
    fields["platform"] = platform
    fields["runtime"] = dict(manifest["runtime"], kind="tensorrt", entry="model.plan", precision="fp16",
                             constraints={"tensorrt_version": "8.5.2", "compute_capability": "7.2",
                                          "l4t_release": "35.3.1", "onnx_opset": 17})
    trt_pkg = str(tmp_path / "trt-package")
    write_package(trt_pkg, {"model.plan": (str(plan), "engine"),
                            "model.onnx": (os.path.join(onnx_pkg, "model.onnx"), "onnx")}, fields)
    open_registry({"path": registry}).publish(trt_pkg)

    res = cli("lineage", NAME, scenario["version"], "--workdir", scenario["workdir"], "--registry", registry,
              "--json")
    assert res.code == 0, res.err
    data = res.json
    assert sorted(data["platforms"]) == ["onnxruntime", platform]
    trt = data["platforms"][platform]
    assert trt["runtime"] == "tensorrt" and trt["engine_sha256"] == sha256_file(str(plan))
    assert trt["constraints"]["compute_capability"] == "7.2"
    assert trt["channels"] == ["dev"] and data["platforms"]["onnxruntime"]["channels"] == ["dev", "staging"]
    engine_node = "engine:" + platform
    assert engine_node in reachable(data["edges"], "checkpoint")
    assert {"from": engine_node, "to": "package:" + platform, "label": "package"} in data["edges"]
    text = cli("lineage", NAME, scenario["version"], "--workdir", scenario["workdir"], "--registry", registry).out
    assert "platform %s (tensorrt, fp16)" % platform in text
    assert "engine       %s" % sha256_file(str(plan)) in text


def test_lineage_from_artifactory(cli, scenario, tmp_path, monkeypatch):
    """The same lineage read over the Artifactory REST API (the loopback Artifactory-compatible
    server, real dohq-artifactory client): manifests, channels and the promotion record."""
    from pytools.registry import open_registry
    from tests.fakes.artifactory import ArtifactoryServer

    monkeypatch.setenv("ARTIFACTORY_TOKEN", "test-token")
    monkeypatch.delenv("PYTOOLS_REGISTRY", raising=False)
    with ArtifactoryServer(str(tmp_path / "artifactory")) as server:
        registry = open_registry({"backend": "artifactory", "url": server.url, "retries": 1})
        registry.publish(os.path.join(scenario["workdir"], "package"))
        registry.promote(NAME, scenario["version"], "staging", who="release-manager")
        res = cli("lineage", NAME, scenario["version"], "--registry", server.url,
                  "--workdir", str(tmp_path / "no-workdir"), "--json")
    assert res.code == 0, res.err
    data = res.json
    view = data["platforms"]["onnxruntime"]
    assert view["channels"] == ["dev", "staging"]
    assert all(src.startswith(server.url + "/models-") for src in view["sources"])
    assert view["lineage"]["onnx_sha256"] == sha256_file(os.path.join(scenario["workdir"], "export", "model.onnx"))
    assert [(p["to"], p["by"]) for p in data["promotions"]] == [("staging", "release-manager")]
    assert "ARTIFACTORY_TOKEN" not in res.out and "test-token" not in res.out
