"""Release-engineer faults against the loopback Artifactory, through the real dohq-artifactory
client: racing publishers, identities without admin rights, replies lost after the server acted,
stalls, SIGTERM, property values Artifactory's matrix parsing would mangle."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from artifactory import ArtifactoryPath

from registry_helpers import ROOT, artifactory_registry
from pytools.core.errors import CheckError
from pytools.registry import RegistryError

pytestmark = pytest.mark.timeout(120)
NAME = "weed-detector"
# a CI deploy identity as the design wants it on release repositories: no delete, so no overwrite
DEPLOYER = {"ARTIFACTORY_TOKEN": "deployer-token"}


@pytest.fixture
def server(artifactory):
    artifactory.add_user("deployer", token="deployer-token", actions=["read", "annotate", "deploy"])
    artifactory.add_user("maintainer", token="maintainer-token",
                         actions=["read", "annotate", "deploy", "delete"])
    return artifactory


def stored(server, path):
    return ArtifactoryPath(server.url + "/" + path, token="test-token")


def publish_concurrently(server, packages, token):
    env = dict(os.environ, PYTOOLS_REGISTRY=server.url, ARTIFACTORY_TOKEN=token, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-m", "pytools", "publish", pkg], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for pkg in packages]
    return [(p.wait(60), p.stderr.read().decode()) for p in procs]


@pytest.mark.parametrize("token", ["deployer-token", "test-token"], ids=["no-overwrite", "admin"])
@pytest.mark.parametrize("same_bytes", [False, True], ids=["different-bytes", "same-bytes"])
def test_concurrent_publishers_of_one_new_version_leave_one_complete_winner(
        server, make_package, tmp_path, token, same_bytes):
    for round_ in range(2):
        version = "2.%d.0" % round_
        payload = os.urandom(3 << 20)
        pkgs = [make_package(version=version, files={"model.onnx": payload if same_bytes else os.urandom(3 << 20),
                                                     "model.ts": b"ts"}) for _ in range(2)]
        start = len(server.log)
        results = publish_concurrently(server, pkgs, token)
        assert sorted(rc for rc, _ in results) == [0, 1], results
        loser = [err for rc, err in results if rc][0]
        assert loser.startswith("error: ") and version in loser and len(loser.strip().splitlines()) == 1
        assert "lost the race" in loser or "immutable" in loser
        assert "build %s #%s-onnxruntime" % (NAME, version) in loser  # the winner's build is named
        winner = pkgs[[rc for rc, _ in results].index(0)]
        out = str(tmp_path / ("out-%s" % version))
        registry = artifactory_registry(server)
        registry.fetch(NAME, version, out)  # verified against the stored manifest
        with open(os.path.join(out, "model.onnx"), "rb") as f1, open(os.path.join(winner, "model.onnx"), "rb") as f2:
            assert f1.read() == f2.read()
        # nobody deleted a package file: the only deletes are a loser removing its own claim
        deletes = [p for m, p, n, s in server.log[start:] if m == "DELETE"]
        assert all("/_claims/" in p for p in deletes), deletes


def test_a_publisher_that_finds_an_earlier_claim_stops_and_names_its_build(server, make_package):
    from pytools.registry.claims import Claim
    registry = artifactory_registry(server, environ=DEPLOYER)  # cannot delete: withdraws its claim
    rival = Claim(registry, "models-dev", NAME, "5.0.0", "onnxruntime", "new", "models/other #7-onnxruntime")
    rival.take()  # another pipeline is mid-publish
    start = len(server.log)
    with pytest.raises(RegistryError, match=r"5\.0\.0.*another publisher \(build models/other #7-onnxruntime"):
        artifactory_registry(server, environ=DEPLOYER).publish(make_package(version="5.0.0"))
    assert not [p for m, p, n, s in server.log[start:] if m == "PUT" and "/_claims/" not in p]  # no bytes sent
    rival.release()
    assert artifactory_registry(server).publish(make_package(version="5.0.0"))["version"] == "5.0.0"


@pytest.mark.parametrize("status", [0, 500], ids=["connection-closed", "http-500"])
def test_a_deploy_whose_reply_was_lost_is_not_an_overwrite(server, make_package, tmp_path, status):
    registry = artifactory_registry(server, environ=DEPLOYER)  # may not overwrite: a retry gets 403
    small = os.urandom(4000)  # below the checksum-deploy size: one plain PUT, whose reply is lost
    server.inject("lost_reply", method="PUT", path="model.ts$", status=status)
    result = registry.publish(make_package(version="3.0.0", files={"model.onnx": b"onnx", "model.ts": small}))
    assert result["version"] == "3.0.0"
    assert [s for m, p, n, s in server.log if m == "PUT" and "model.ts" in p][-1] == 403  # the retry
    registry.fetch(NAME, "3.0.0", str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.ts").read_bytes() == small


def test_overwrite_needs_delete_permission(server):
    path = ArtifactoryPath(server.url + "/models-dev/x/f.bin", token="deployer-token")
    path.deploy(io.BytesIO(b"one"))
    second = requests.put(str(path), data=b"two", headers={"Authorization": "Bearer deployer-token"}, timeout=10)
    assert second.status_code == 403
    assert "needs DELETE permission" in second.json()["errors"][0]["message"]
    assert stored(server, "models-dev/x/f.bin").read_bytes() == b"one"
    ArtifactoryPath(str(path), token="maintainer-token").deploy(io.BytesIO(b"two"))
    assert stored(server, "models-dev/x/f.bin").read_bytes() == b"two"
    reader = requests.put(server.url + "/models-dev/x/g.bin", data=b"x", timeout=10,
                          headers={"Authorization": "Bearer deployer-token"})
    assert reader.status_code == 201


def test_a_non_admin_identity_lists_every_model(server, make_package):
    registry = artifactory_registry(server, environ=DEPLOYER)
    registry.publish(make_package(version="1.0.0"))
    registry.publish(make_package(name="row-finder", version="0.1.0"))
    assert registry.models() == ["row-finder", NAME]
    assert [e["name"] for e in registry.find(parity_passed="true")] == ["row-finder", NAME]
    bare = requests.post(server.url + "/api/search/aql", data='items.find({"repo":"models-dev"})',
                         headers={"Authorization": "Bearer deployer-token"}, timeout=10)
    assert bare.status_code == 400 and "repo, path and name" in bare.json()["errors"][0]["message"]


@pytest.mark.parametrize("value", ["https://jenkins.example/job/team%2Fmodels/job/main/42/",
                                   "a;b=c,d\\e/f", "x=y", "one,two"])
def test_property_values_survive_artifactorys_matrix_parsing(server, make_package, value):
    registry = artifactory_registry(server)
    result = registry.publish(make_package(version="1.2.3", build_url=value))
    for rel in ("model.onnx", "model.ts", "manifest.json"):
        assert stored(server, result["location"][len(server.url) + 1:] + "/" + rel).properties["build.url"] == [value]
    assert [e["version"] for e in registry.find(build_url=value)] == ["1.2.3"]
    assert [v["version"] for v in registry.versions(NAME)] == ["1.2.3"]


def test_build_info_links_the_published_files(server, make_package):
    registry = artifactory_registry(server, environ={"ARTIFACTORY_TOKEN": "test-token", "JOB_NAME": "models/wd",
                                                     "BUILD_NUMBER": "9"})
    registry.publish(make_package(version="1.3.0"))
    linked = requests.post(server.url + "/api/search/buildArtifacts", timeout=10,
                           json={"buildName": "models/wd", "buildNumber": "9-onnxruntime"},
                           headers={"Authorization": "Bearer test-token"})
    assert linked.status_code == 200, linked.text
    names = sorted(r["downloadUri"].rsplit("/", 1)[1] for r in linked.json()["results"])
    assert names == ["model.onnx", "model.ts"]


def test_a_copy_into_an_existing_folder_nests_as_on_artifactory(server):
    ArtifactoryPath(server.url + "/models-dev/m/1.0/f.bin", token="test-token").deploy(io.BytesIO(b"x"))
    ArtifactoryPath(server.url + "/models-staging/m/1.0/other.bin", token="test-token").deploy(io.BytesIO(b"y"))
    ArtifactoryPath(server.url + "/models-dev/m/1.0", token="test-token").copy(
        ArtifactoryPath(server.url + "/models-staging/m/1.0", token="test-token"), suppress_layouts=True)
    assert "models-staging/m/1.0/1.0/f.bin" in server.store.files


@pytest.mark.parametrize("verb", ["copy", "move"])
def test_a_promotion_whose_reply_was_lost_is_not_redone_or_nested(server, make_package, verb):
    registry = artifactory_registry(server)
    registry.publish(make_package(version="4.0.0"))
    server.inject("lost_reply", method="POST", path="api/%s/" % verb, status=500)
    result = registry.promote(NAME, "4.0.0", "staging", move=verb == "move")
    assert result["to"] == "staging"
    staged = sorted(p for p in server.store.files if p.startswith("models-staging/%s/4.0.0/" % NAME))
    assert staged == ["models-staging/%s/4.0.0/onnxruntime/%s" % (NAME, f)
                      for f in ("manifest.json", "model.onnx", "model.ts")]
    assert [s for m, p, n, s in server.log if "api/%s/" % verb in p] == [500]  # done once, not twice
    assert registry.versions(NAME)[0]["channels"] == (["staging"] if verb == "move" else ["dev", "staging"])
    assert registry.promote(NAME, "4.0.0", "staging")["already"] is True


def test_a_record_that_fails_after_the_copy_is_visible_and_completed_by_promoting_again(
        server, make_package, monkeypatch):
    registry = artifactory_registry(server, retries=1)
    registry.publish(make_package(version="4.1.0"))
    monkeypatch.setenv("BUILD_USER_ID", "anna")
    server.inject("status", method="PATCH", path="api/metadata/", status=500, count=2)
    with pytest.raises(RegistryError, match="record the promotion"):
        registry.promote(NAME, "4.1.0", "staging")
    row = registry.versions(NAME)[0]
    assert row["channels"] == ["dev", "staging"] and row["incomplete"] == ["staging"]
    monkeypatch.setenv("BUILD_USER_ID", "bob")
    again = registry.promote(NAME, "4.1.0", "staging")
    assert (again["by"], again["from"], again["already"]) == ("anna", "dev", False)  # the record as started
    row = registry.versions(NAME)[0]
    assert row["incomplete"] == [] and row["promotions"][0]["by"] == "anna"


def test_a_failed_replacement_keeps_the_previous_prerelease(server, make_package, tmp_path):
    registry = artifactory_registry(server, retries=1)
    old = make_package(version="1.1.0-mr.3", files={"model.onnx": b"first build", "model.ts": b"ts"})
    registry.publish(old)
    server.inject("status", method="PUT", path="manifest.json$", status=500, count=2)
    with pytest.raises(RegistryError):
        registry.publish(make_package(version="1.1.0-mr.3", files={"model.onnx": b"rebuilt", "model.ts": b"ts"}))
    registry.fetch(NAME, "1.1.0-mr.3", str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "model.onnx").read_bytes() == b"first build"
    server.inject("lost_reply", method="POST", path="api/move/", status=500, count=2)  # both switch moves
    result = registry.publish(make_package(version="1.1.0-mr.3", files={"model.onnx": b"rebuilt", "model.ts": b"ts"}))
    assert result["replaced"] is True
    assert [s for m, p, n, s in server.log if "api/move/" in p] == [500, 500]  # each done once, reply lost
    registry.fetch(NAME, "1.1.0-mr.3", str(tmp_path / "new"))
    assert (tmp_path / "new" / "model.onnx").read_bytes() == b"rebuilt"
    assert not [p for p in server.store.files if "/_staging/" in p or "/_trash/" in p]


def test_a_stalled_search_times_out_with_an_error(server):
    registry = artifactory_registry(server, timeout=1, retries=1)
    server.inject("stall", method="POST", path="api/search/aql", count=5, seconds=10)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="did not answer within"):
        registry.versions(NAME)
    assert time.monotonic() - start < 8


def test_a_failed_alias_read_is_an_error_not_no_aliases(server, make_package):
    registry = artifactory_registry(server, retries=1)
    registry.publish(make_package(version="1.0.0"))
    registry.set_alias(NAME, "production", "1.0.0")
    server.inject("status", method="GET", path="_aliases", status=500, count=10)
    with pytest.raises(RegistryError, match="read aliases"):
        registry.resolve(NAME, "production")
    with pytest.raises(RegistryError, match="read aliases"):
        registry.aliases(NAME)


def test_sigterm_mid_upload_cleans_up_like_ctrl_c(server, make_package):
    pkg = make_package(version="6.0.0", files={"model.onnx": os.urandom(2 << 20), "model.ts": b"ts" * 100})
    server.inject("stall", method="PUT", path="model.ts$", seconds=30)  # after model.onnx has landed
    env = dict(os.environ, PYTOOLS_REGISTRY=server.url, ARTIFACTORY_TOKEN="test-token", PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "pytools", "publish", pkg], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any(m == "PUT" and "model.ts" in p for m, p, n, s in server.log) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the stalled request is being waited on
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 130
    assert proc.stderr.read().decode().strip() == "error: interrupted"
    left = ArtifactoryPath(server.url, token="test-token").aql(
        "items.find", {"@model.version": "6.0.0"}, ".include", ["repo", "path", "name"])
    assert left == []
    assert not [p for p in server.store.files if "/6.0.0/" in p and "/_claims/" not in p]
    assert not [p for p in server.store.files if "/_claims/" in p]


def test_a_base_url_without_the_context_path_is_refused_with_a_hint(server):
    from pytools.core.errors import ConfigError
    with pytest.raises(ConfigError, match=r"/artifactory context path \(try http://127\.0\.0\.1:\d+/artifactory\)"):
        artifactory_registry(server, url=server.url[:-len("/artifactory")])


def test_files_url_names_the_folder_of_the_files(server, make_package):
    result = artifactory_registry(server).publish(make_package(version="1.0.0"))
    got = requests.get(result["files_url"] + "/model.ts", headers={"Authorization": "Bearer test-token"}, timeout=10)
    assert got.status_code == 200 and got.content == b"torchscript " * 10
    assert json.loads(requests.get(result["url"], headers={"Authorization": "Bearer test-token"},
                                   timeout=10).content)["version"] == "1.0.0"


def test_promotion_needs_the_stored_evidence_not_a_property(server, make_package):
    registry = artifactory_registry(server, environ=DEPLOYER)
    registry.publish(make_package(version="7.0.0", parity=False))
    ArtifactoryPath(server.url + "/models-dev/%s/7.0.0" % NAME, token="deployer-token").update_properties(
        {"parity.passed": "true"}, recursive=True)  # Annotate permission is enough for this
    with pytest.raises(CheckError, match="failed parity"):
        registry.promote(NAME, "7.0.0", "staging")


def test_wandb_references_of_an_artifactory_publish_are_real_files(server, make_package, tmp_path):
    from pytools.core.workdir import PACKAGE_DIR
    from pytools.tracking.wandb_tracker import stage_io
    import shutil
    work = tmp_path / "work"
    shutil.copytree(make_package(version="1.0.0"), str(work / PACKAGE_DIR))
    result = artifactory_registry(server).publish(str(work / PACKAGE_DIR))
    (work / "state").mkdir()
    (work / "state" / "publish.json").write_text(json.dumps({"status": "ran", "summary": result, "outputs": {}}))
    [item] = [i for i in stage_io(str(work), "publish")[1] if i["name"] == "registry"]
    for rel in ("model.onnx", "model.ts", "manifest.json"):  # what the tracker references: url/<rel>
        got = requests.get(item["url"].rstrip("/") + "/" + rel, headers={"Authorization": "Bearer test-token"},
                           timeout=10)
        assert got.status_code == 200, (item["url"], rel)


def test_a_failed_publish_without_delete_permission_does_not_block_the_version(server, make_package):
    registry = artifactory_registry(server, environ=DEPLOYER, retries=1)
    pkg = make_package(version="8.0.0", files={"model.onnx": os.urandom(1 << 20), "model.ts": b"ts"})
    server.inject("status", method="PUT", path="manifest.json$", status=500, count=2)
    with pytest.raises(RegistryError, match="HTTP 500"):
        registry.publish(pkg)
    assert registry.versions(NAME) == []  # its files stay (it may not delete), never visible
    claims = [p for p in server.store.files if "/_claims/" in p]
    assert claims and all(server.store.files[p]["props"].get("claim.withdrawn") == ["true"] for p in claims)
    assert registry.publish(pkg)["version"] == "8.0.0"  # the leftovers hold the same bytes: reused
    registry.fetch(NAME, "8.0.0", str(server.store.root) + "-out")
