"""Artifactory-only behaviour, through the real dohq-artifactory client against the loopback server."""
import hashlib
import io
import os

import pytest
import requests
from artifactory import ArtifactoryPath
from dohq_artifactory.exception import ArtifactoryException

from registry_helpers import artifactory_registry
from tests.fakes.artifactory import ArtifactoryServer
from pytools.core.errors import ConfigError
from pytools.registry import RegistryError

pytestmark = pytest.mark.timeout(60)
BIG = 2 * 1024 * 1024


def big_package(make_package, version="3.0.0"):
    return make_package(version=version, files={"model.onnx": os.urandom(BIG), "model.ts": b"ts"})


@pytest.mark.parametrize("environ", [
    {"ARTIFACTORY_TOKEN": "wrong-token"},
    {"ARTIFACTORY_API_KEY": "wrong-key"},
    {"ARTIFACTORY_USER": "admin", "ARTIFACTORY_PASSWORD": "wrong-password"},
])
def test_wrong_credentials_give_a_clear_error_without_the_secret(artifactory, make_package, environ):
    registry = artifactory_registry(artifactory, environ=environ)
    with pytest.raises(RegistryError) as err:
        registry.publish(make_package())
    message = str(err.value)
    assert "rejected the credentials" in message and "401" in message
    for secret in environ.values():
        if secret != "admin":
            assert secret not in message
    assert artifactory.store.files == {}


def test_missing_credentials_say_what_to_set(artifactory, make_package):
    with pytest.raises(RegistryError, match="requires credentials.*ARTIFACTORY_TOKEN"):
        artifactory_registry(artifactory, environ={}).publish(make_package())


@pytest.mark.parametrize("environ", [
    {"ARTIFACTORY_TOKEN": "test-token"},
    {"ARTIFACTORY_API_KEY": "test-api-key"},
    {"ARTIFACTORY_USER": "admin", "ARTIFACTORY_PASSWORD": "password"},
])
def test_each_credential_kind_works(artifactory, make_package, environ):
    registry = artifactory_registry(artifactory, environ=environ)
    assert registry.publish(make_package())["version"] == "1.0.0"


def test_credentials_from_files(artifactory, make_package, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("test-token\n")
    registry = artifactory_registry(artifactory, environ={"ARTIFACTORY_TOKEN_FILE": str(secret)})
    assert registry.publish(make_package())["channel"] == "dev"
    with pytest.raises(ConfigError, match="ARTIFACTORY_TOKEN_FILE"):
        artifactory_registry(artifactory, environ={"ARTIFACTORY_TOKEN_FILE": str(tmp_path / "missing")})


def test_a_missing_repository_is_named(artifactory, make_package):
    registry = artifactory_registry(artifactory, repositories={"dev": "no-such-repo"})
    with pytest.raises(RegistryError, match="'no-such-repo' .*does not exist"):
        registry.publish(make_package())
    assert artifactory.store.files == {}


def test_an_upload_cut_off_once_is_retried(artifactory, make_package):
    registry = artifactory_registry(artifactory)
    artifactory.inject("drop", method="PUT", path="model.onnx$", after_bytes=BIG // 2)
    result = registry.publish(big_package(make_package))
    assert result["version"] == "3.0.0"
    drops = [e for e in artifactory.log if e[0] == "PUT" and e[3] == 0]
    assert drops and drops[0][2] >= BIG // 2  # the server really saw half a body, then the cut


def test_an_upload_cut_off_for_good_leaves_no_visible_version(artifactory, make_package):
    registry = artifactory_registry(artifactory, retries=2)
    artifactory.inject("drop", method="PUT", path="model.onnx$", after_bytes=BIG // 2, count=10)
    with pytest.raises(RegistryError, match="cannot reach Artifactory|failed to deploy"):
        registry.publish(big_package(make_package))
    assert registry.versions("weed-detector") == []
    assert not [p for p in artifactory.store.files if "/3.0.0/" in p]  # partial files were removed


def test_server_errors_are_retried_with_backoff(artifactory, make_package):
    registry = artifactory_registry(artifactory)
    artifactory.inject("status", method="POST", path="api/search/aql", count=2, status=500)
    artifactory.inject("status", method="PUT", path="manifest.json", count=1, status=503)
    assert registry.publish(make_package())["version"] == "1.0.0"
    assert [s for m, p, n, s in artifactory.log if s in (500, 503)] == [500, 500, 503]


def test_a_persistent_server_error_is_reported(artifactory, make_package):
    registry = artifactory_registry(artifactory, retries=1)
    artifactory.inject("status", method="PUT", path="manifest.json", count=5, status=500)
    with pytest.raises(RegistryError, match="HTTP 500"):
        registry.publish(make_package())
    assert registry.versions("weed-detector") == []


def test_manifest_is_uploaded_last_and_checksum_deploy_sends_no_body(artifactory, make_package):
    registry = artifactory_registry(artifactory)
    registry.publish(big_package(make_package, "3.0.0"))
    puts = [p for m, p, n, s in artifactory.log if m == "PUT" and s == 201]
    assert puts[-1].split(";")[0].endswith("/3.0.0/onnxruntime/manifest.json")
    start = len(artifactory.log)
    registry.publish(_same_bytes(make_package, registry))
    onnx = [(p, n, s) for m, p, n, s in artifactory.log[start:] if m == "PUT" and "model.onnx" in p]
    assert onnx and all(n == 0 for p, n, s in onnx)  # deployed by checksum: no body


def _same_bytes(make_package, registry):
    entry = registry.resolve("weed-detector", "3.0.0")
    blob = ArtifactoryPath(entry["location"] + "/model.onnx", token="test-token").read_bytes()
    return make_package(version="3.0.1", files={"model.onnx": blob, "model.ts": b"ts"})


def test_properties_aql_and_build_info(artifactory, make_package, monkeypatch):
    monkeypatch.setenv("BUILD_NUMBER", "77")
    registry = artifactory_registry(artifactory, environ={"ARTIFACTORY_TOKEN": "test-token",
                                                          "JOB_NAME": "models/weed-detector",
                                                          "BUILD_NUMBER": "77"})
    result = registry.publish(make_package(version="1.2.3"))
    path = ArtifactoryPath(result["location"] + "/model.onnx", token="test-token")
    props = path.properties
    assert props["model.version"] == ["1.2.3"] and props["parity.passed"] == ["true"]
    assert props["build.url"] == ["https://jenkins.example/job/models/42/"]
    hits = path.aql("items.find", {"@model.name": "weed-detector", "@runtime.kind": "onnxruntime",
                                   "name": "manifest.json"})
    assert [(h["repo"], h["path"]) for h in hits] == [("models-dev", "weed-detector/1.2.3/onnxruntime")]
    info = registry.build_info("models/weed-detector", "77-onnxruntime")["buildInfo"]
    assert info["vcs"][0]["revision"] == "3f2a1bc0" * 5
    assert info["url"] == "https://jenkins.example/job/models/42/"
    assert {a["name"] for a in info["modules"][0]["artifacts"]} == {"model.onnx", "model.ts"}


def test_server_verifies_deploy_checksums(artifactory):
    path = ArtifactoryPath(artifactory.url + "/models-dev/x/file.bin", token="test-token")
    with pytest.raises(ArtifactoryException, match="Checksum error"):
        path.deploy(io.BytesIO(b"abc"), sha256=hashlib.sha256(b"xyz").hexdigest())
    assert not path.exists()
    with pytest.raises(ArtifactoryException) as err:
        path.deploy_by_checksum(sha256="0" * 64)
    assert err.value.__cause__.response.status_code == 404


def test_downloads_support_http_ranges(artifactory):
    data = os.urandom(100000)
    path = ArtifactoryPath(artifactory.url + "/models-dev/x/blob.bin", token="test-token")
    path.deploy(io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest())
    headers = {"Authorization": "Bearer test-token"}
    part = requests.get(str(path), headers=dict(headers, Range="bytes=1000-1999"), timeout=10)
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["Content-Range"] == "bytes 1000-1999/100000"
    tail = requests.get(str(path), headers=dict(headers, Range="bytes=99000-"), timeout=10)
    assert tail.content == data[99000:]
    assert tail.headers["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest()
    bad = requests.get(str(path), headers=dict(headers, Range="bytes=200000-"), timeout=10)
    assert bad.status_code == 416 and bad.headers["Content-Range"] == "bytes */100000"
    anonymous = requests.get(str(path), timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["status"] == 401


def test_a_build_info_failure_leaves_no_visible_version(artifactory, make_package):
    registry = artifactory_registry(artifactory, retries=1)
    artifactory.inject("status", method="PUT", path="api/build$", count=5, status=500)
    with pytest.raises(RegistryError, match="build-info"):
        registry.publish(make_package())
    assert registry.versions("weed-detector") == []
    assert artifactory.store.files == {}


def test_chunked_uploads_and_refused_bodies_on_a_kept_alive_connection(artifactory):
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = artifactory.url + "/models-dev/x/chunked.bin"
    session = requests.Session()
    refused = session.put(url, data=data, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert refused.status_code == 401 and refused.json()["errors"][0]["message"] == "Bad credentials"
    chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))  # a generator: chunked encoding
    deployed = session.put(url, data=chunks, timeout=10, headers={
        "Authorization": "Bearer test-token", "X-Checksum-Sha256": hashlib.sha256(data).hexdigest()})
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["checksums"]["md5"] == hashlib.md5(data).hexdigest()
    stat = ArtifactoryPath(url, token="test-token").stat()
    assert (stat.size, stat.sha1) == (len(data), hashlib.sha1(data).hexdigest())


def test_promotion_is_a_server_side_copy_or_move_with_a_metadata_record(artifactory, make_package):
    registry = artifactory_registry(artifactory)
    registry.publish(make_package(version="4.0.0"))
    start = len(artifactory.log)
    registry.promote("weed-detector", "4.0.0", "staging")
    registry.promote("weed-detector", "4.0.0", "release", move=True)
    calls = [(m, p.split("?")[0]) for m, p, n, s in artifactory.log[start:] if m in ("POST", "PATCH")]
    assert ("POST", "/artifactory/api/copy/models-dev/weed-detector/4.0.0/onnxruntime") in calls
    assert ("POST", "/artifactory/api/move/models-staging/weed-detector/4.0.0/onnxruntime") in calls
    assert ("PATCH", "/artifactory/api/metadata/models-release/weed-detector/4.0.0") in calls
    released = ArtifactoryPath(artifactory.url + "/models-release/weed-detector/4.0.0/onnxruntime/model.onnx",
                               token="test-token")
    assert released.properties["promotion.from"] == ["staging"]
    assert not ArtifactoryPath(artifactory.url + "/models-staging/weed-detector/4.0.0",
                               token="test-token").exists()


def test_aql_sort_limit_offset_and_comparisons(artifactory):
    root = ArtifactoryPath(artifactory.url, token="test-token")
    for i in range(5):
        (root / "models-dev" / "q" / ("f%d.bin" % i)).deploy(io.BytesIO(b"x" * (i + 1)),
                                                             parameters={"n": str(i)})
    found = root.aql("items.find", {"repo": "models-dev", "size": {"$gt": 1}, "name": {"$match": "f*.bin"}},
                     ".include", ["name", "size"], ".sort", {"$desc": ["name"]}, ".offset(1)", ".limit(2)")
    assert found == [{"name": "f3.bin", "size": 4}, {"name": "f2.bin", "size": 3}]
    either = root.aql("items.find", {"$or": [{"@n": "0"}, {"@n": "4"}]})
    assert sorted(r["name"] for r in either) == ["f0.bin", "f4.bin"]
    folders = root.aql("items.find", {"type": "folder", "repo": "models-dev"})
    assert [r["name"] for r in folders] == ["q"]
    with pytest.raises(ArtifactoryException):
        root.aql("builds.find()")


def test_anonymous_reads_when_allowed(tmp_path):
    with ArtifactoryServer(str(tmp_path / "anon"), anonymous_read=True) as server:
        ArtifactoryPath(server.url + "/models-dev/a.bin", token="test-token").deploy(io.BytesIO(b"abc"))
        assert requests.get(server.url + "/models-dev/a.bin", timeout=10).content == b"abc"
        refused = requests.put(server.url + "/models-dev/b.bin", data=b"x", timeout=10)
        assert refused.status_code == 401


def test_streamed_uploads_carry_md5_sha1_and_sha256(artifactory, make_package):
    """A large file is streamed, yet still carries all three checksum headers (from the manifest),
    and the server checks each against the bytes it received."""
    registry = artifactory_registry(artifactory)
    result = registry.publish(big_package(make_package, "4.0.0"))
    onnx = [p for p in artifactory.checksum_headers if p.endswith("/4.0.0/onnxruntime/model.onnx")]
    assert onnx, sorted(artifactory.checksum_headers)
    assert artifactory.checksum_headers[onnx[0]] == ["X-Checksum-Md5", "X-Checksum-Sha1", "X-Checksum-Sha256"]
    stat = ArtifactoryPath(result["location"] + "/model.onnx", token="test-token").stat()
    assert stat.size > (1 << 20)
