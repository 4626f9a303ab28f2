"""One contract, both backends: every test runs against the local registry and against the real
dohq-artifactory client talking to the Artifactory-compatible server on loopback."""
import json
import os

import pytest

from registry_helpers import build_package, corrupt_stored
from pytools.core.errors import CheckError, ConfigError
from pytools.core.package import MANIFEST, SIGNATURE, generate_keypair, sign, verify_package
from pytools.registry import RegistryError

pytestmark = pytest.mark.timeout(60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_publish_then_fetch_gives_the_same_verified_bytes(registry, make_package, tmp_path):
    pkg = make_package(version="1.4.0")
    result = registry.publish(pkg, channel="dev")
    for key in ("name", "version", "platform", "channel", "url", "location", "bytes_sent"):
        assert key in result
    assert (result["name"], result["version"], result["platform"], result["channel"]) == \
        ("weed-detector", "1.4.0", "onnxruntime", "dev")
    assert result["bytes_sent"] >= os.path.getsize(os.path.join(pkg, "model.onnx"))
    out = registry.fetch("weed-detector", "1.4.0", str(tmp_path / "out"))
    assert out["verified"] and out["version"] == "1.4.0"
    for rel in ("model.onnx", "model.ts", MANIFEST):
        assert read(os.path.join(str(tmp_path / "out"), rel)) == read(os.path.join(pkg, rel))


def test_released_versions_are_immutable(registry, make_package, tmp_path):
    first = make_package(version="1.0.0")
    registry.publish(first)
    other = make_package(version="1.0.0", files={"model.onnx": b"different bytes"})
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish(other)
    registry.fetch("weed-detector", "1.0.0", str(tmp_path / "out"))
    assert read(str(tmp_path / "out" / "model.onnx")) == read(os.path.join(first, "model.onnx"))
    with pytest.raises(RegistryError, match="cannot be deleted"):
        registry.delete("weed-detector", "1.0.0")
    assert [v["version"] for v in registry.versions("weed-detector")] == ["1.0.0"]


def test_prereleases_can_be_republished_and_deleted(registry, make_package, tmp_path):
    registry.publish(make_package(version="1.1.0-mr.3"))
    replacement = make_package(version="1.1.0-mr.3", files={"model.onnx": b"rebuilt"})
    assert registry.publish(replacement)["replaced"] is True
    registry.fetch("weed-detector", "1.1.0-mr.3", str(tmp_path / "out"))
    assert read(str(tmp_path / "out" / "model.onnx")) == b"rebuilt"
    assert registry.delete("weed-detector", "1.1.0-mr.3")["deleted_from"] == ["dev"]
    assert registry.versions("weed-detector") == []


def test_versions_are_listed_in_semver_order(registry, make_package):
    for v in ["1.10.0", "1.2.0", "1.2.0-mr.10", "1.2.0-mr.9", "1.2.0-alpha", "0.9.0"]:
        registry.publish(make_package(version=v, files={"model.onnx": v.encode()}))
    assert [r["version"] for r in registry.versions("weed-detector")] == \
        ["0.9.0", "1.2.0-alpha", "1.2.0-mr.9", "1.2.0-mr.10", "1.2.0", "1.10.0"]
    assert [r["prerelease"] for r in registry.versions("weed-detector")][:3] == [False, True, True]


def test_resolve_versions_aliases_and_ranges(registry, make_package):
    for v in ["1.2.0", "1.3.1", "2.0.0", "2.1.0-mr.5"]:
        registry.publish(make_package(version=v, files={"model.onnx": v.encode()}))
    resolve = lambda spec, **kw: registry.resolve("weed-detector", spec, **kw)["version"]
    assert resolve("latest") == "2.0.0"  # pre-releases are never "latest"
    assert resolve("^1.2") == "1.3.1"
    assert resolve("~1.2.0") == "1.2.0"
    assert resolve(">=1.0 <2") == "1.3.1"
    assert resolve("2.1.0-mr.5") == "2.1.0-mr.5"
    registry.promote("weed-detector", "1.3.1", "staging")
    assert resolve("staging") == "1.3.1"
    assert registry.resolve("weed-detector", "1.3.1")["channel"] == "staging"
    registry.set_alias("weed-detector", "production", "1.2.0")
    assert resolve("production") == "1.2.0"
    assert registry.aliases("weed-detector")["production"]["kind"] == "explicit"
    with pytest.raises(RegistryError, match="no alias 'canary'"):
        resolve("canary")
    with pytest.raises(RegistryError, match="satisfies"):
        resolve("^3")
    with pytest.raises(RegistryError, match="no versions"):
        registry.resolve("no-such-model", "latest")
    with pytest.raises(RegistryError, match="not published"):
        registry.set_alias("weed-detector", "production", "9.9.9")
    with pytest.raises(ConfigError):
        registry.set_alias("weed-detector", "latest", "1.2.0")


def test_promotion_records_who_and_when(registry, make_package, monkeypatch):
    monkeypatch.setenv("BUILD_USER_ID", "release-manager-anna")
    registry.publish(make_package(version="1.4.0"))
    result = registry.promote("weed-detector", "1.4.0", "staging")
    assert (result["from"], result["to"], result["by"], result["forced"]) == \
        ("dev", "staging", "release-manager-anna", False)
    row = registry.versions("weed-detector")[0]
    assert row["channels"] == ["dev", "staging"]
    assert row["promotions"][0]["by"] == "release-manager-anna"
    assert row["promotions"][0]["at"] == result["at"]
    again = registry.promote("weed-detector", "1.4.0", "staging")  # a retry: success, nothing redone
    assert again["already"] is True and (again["by"], again["at"]) == ("release-manager-anna", result["at"])
    assert [(c["channel"], c["platform"]) for c in registry.copies("weed-detector", "1.4.0")] == \
        [("dev", "onnxruntime"), ("staging", "onnxruntime")]  # not nested, not duplicated
    registry.promote("weed-detector", "1.4.0", "release", move=True)
    assert registry.versions("weed-detector")[0]["channels"] == ["dev", "release"]
    with pytest.raises(RegistryError, match="not published"):
        registry.promote("weed-detector", "7.0.0", "staging")


def test_copies_list_every_stored_copy_and_read_its_manifest(registry, make_package, monkeypatch):
    monkeypatch.setenv("BUILD_USER_ID", "release-manager-anna")
    pkg = make_package(version="1.4.0")
    registry.publish(pkg)
    registry.publish(make_package(version="1.4.0", platform="trt8.5-sm72-l4t35.3.1"))
    registry.publish(make_package(version="1.5.0"))
    registry.promote("weed-detector", "1.4.0", "staging")
    copies = registry.copies("weed-detector", "1.4.0+build.7")   # build metadata is ignored
    assert [(c["channel"], c["platform"]) for c in copies] == [
        ("dev", "onnxruntime"), ("dev", "trt8.5-sm72-l4t35.3.1"),
        ("staging", "onnxruntime"), ("staging", "trt8.5-sm72-l4t35.3.1")]
    assert copies[0]["location"] == registry.location("weed-detector", "1.4.0", "dev", "onnxruntime")
    assert copies[0]["promotion"] is None and copies[0]["props"]["model.version"] == "1.4.0"
    assert (copies[2]["promotion"]["by"], copies[2]["promotion"]["to"]) == ("release-manager-anna", "staging")
    with open(os.path.join(pkg, MANIFEST)) as f:
        assert registry.manifest(copies[2]) == json.load(f)
    assert registry.copies("weed-detector", "9.9.9") == []


def test_promoting_a_parity_failure_is_refused_unless_forced(registry, make_package):
    registry.publish(make_package(version="1.5.0", parity=False))
    with pytest.raises(CheckError, match="failed parity"):
        registry.promote("weed-detector", "1.5.0", "staging")
    assert registry.versions("weed-detector")[0]["channels"] == ["dev"]
    result = registry.promote("weed-detector", "1.5.0", "staging", force=True)
    assert result["forced"] is True
    promo = registry.versions("weed-detector")[0]["promotions"][0]
    assert promo["forced"] == "true" and promo["to"] == "staging"


def test_a_package_whose_files_do_not_match_its_manifest_is_refused(registry, make_package):
    pkg = make_package(version="1.6.0")
    with open(os.path.join(pkg, "model.onnx"), "ab") as f:
        f.write(b"tampered")
    with pytest.raises(CheckError, match="model.onnx"):
        registry.publish(pkg)
    assert registry.versions("weed-detector") == []


def test_a_download_whose_bytes_do_not_match_is_refused(registry, make_package, tmp_path):
    registry.publish(make_package(version="1.7.0"))
    corrupt_stored(registry, "weed-detector", "1.7.0", "model.onnx")
    dest = str(tmp_path / "out")
    with pytest.raises(CheckError, match="failed verification"):
        registry.fetch("weed-detector", "1.7.0", dest)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".partial")


def test_several_platforms_need_a_choice(registry, make_package):
    registry.publish(make_package(version="1.8.0"))
    registry.publish(make_package(version="1.8.0", platform="trt8.5-sm72-l4t35.3.1"))
    with pytest.raises(RegistryError, match="several platforms"):
        registry.resolve("weed-detector", "1.8.0")
    entry = registry.resolve("weed-detector", "1.8.0", platform="trt8.5-sm72-l4t35.3.1")
    assert entry["platform"] == "trt8.5-sm72-l4t35.3.1"
    assert registry.versions("weed-detector")[0]["platforms"] == ["onnxruntime", "trt8.5-sm72-l4t35.3.1"]


def test_search_by_properties(registry, make_package):
    registry.publish(make_package(version="1.0.0", parity=True))
    registry.publish(make_package(version="1.1.0", parity=False))
    registry.publish(make_package(name="row-finder", version="0.1.0"))
    failed = registry.find(parity_passed="false")
    assert [(e["name"], e["version"]) for e in failed] == [("weed-detector", "1.1.0")]
    assert failed[0]["props"]["git.commit"] == "3f2a1bc0" * 5
    assert registry.models() == ["row-finder", "weed-detector"]


def test_identical_bytes_under_a_new_version_are_not_sent_again(registry, make_package):
    files = {"model.onnx": os.urandom(300 * 1024), "model.ts": os.urandom(20 * 1024)}
    first = registry.publish(make_package(version="2.0.0", files=files))
    assert first["bytes_sent"] >= 320 * 1024
    pkg = make_package(version="2.0.1", files=files)
    second = registry.publish(pkg)
    assert second["bytes_sent"] <= os.path.getsize(os.path.join(pkg, MANIFEST))


def test_unknown_channel_is_a_config_error(registry, make_package):
    with pytest.raises(ConfigError, match="unknown channel"):
        registry.publish(make_package(), channel="prod")


def test_a_signature_travels_with_the_package(registry, tmp_path):
    generate_keypair(str(tmp_path / "key.pem"), str(tmp_path / "key.pub"))
    pkg = str(tmp_path / "signed")
    build_package(pkg, version="3.1.0")
    with open(os.path.join(pkg, SIGNATURE), "wb") as f:
        f.write(sign(read(os.path.join(pkg, MANIFEST)), str(tmp_path / "key.pem")))
    registry.publish(pkg)
    out = str(tmp_path / "out")
    registry.fetch("weed-detector", "3.1.0", out)
    assert verify_package(out, public_key_path=str(tmp_path / "key.pub"))["version"] == "3.1.0"


def test_paths_leading_out_of_the_package_are_refused_before_anything_is_read(registry, make_package, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the registry")
    pkg = make_package(version="1.9.0", files={"model.onnx": b"x"})
    os.unlink(os.path.join(pkg, "model.onnx"))
    os.symlink(str(secret), os.path.join(pkg, "model.onnx"))
    with pytest.raises(CheckError, match="outside the package"):
        registry.publish(pkg)
    assert registry.versions("weed-detector") == []


def _claim_parity_passed(registry, name, version):
    """What anyone with Annotate permission (or write access to a local registry) can do."""
    entry = registry.resolve(name, version)
    if registry.kind == "local":
        sidecar = os.path.join(os.path.dirname(entry["location"]), ".props-%s.json" % entry["platform"])
        os.unlink(sidecar)  # no sidecar at all: nothing says it failed
    else:
        from artifactory import ArtifactoryPath
        ArtifactoryPath(entry["location"], token="test-token").update_properties(
            {"parity.passed": "true"}, recursive=True)


def test_a_tampered_parity_property_does_not_open_the_gate(registry, make_package):
    registry.publish(make_package(version="1.5.0", parity=False))
    _claim_parity_passed(registry, "weed-detector", "1.5.0")
    with pytest.raises(CheckError, match="failed parity"):
        registry.promote("weed-detector", "1.5.0", "staging")
    assert registry.versions("weed-detector")[0]["channels"] == ["dev"]


def test_the_gate_checks_the_stored_signature_when_a_key_is_configured(registry, tmp_path):
    from registry_helpers import open_registry as reopen
    generate_keypair(str(tmp_path / "key.pem"), str(tmp_path / "key.pub"))
    build_package(str(tmp_path / "signed"), version="3.2.0", sign_key=str(tmp_path / "key.pem"))
    build_package(str(tmp_path / "unsigned"), version="3.3.0")
    registry.publish(str(tmp_path / "signed"))
    registry.publish(str(tmp_path / "unsigned"))
    settings = dict(registry.settings, public_key=str(tmp_path / "key.pub"))
    checked = reopen(settings, environ=dict(registry.env))
    assert checked.promote("weed-detector", "3.2.0", "staging")["to"] == "staging"
    with pytest.raises(CheckError, match="no signature"):
        checked.promote("weed-detector", "3.3.0", "staging", force=True)  # --force is for parity only


def test_a_missing_stored_file_on_fetch_is_one_clear_error(registry, make_package, tmp_path):
    from registry_helpers import remove_stored
    registry.publish(make_package(version="1.7.1"))
    remove_stored(registry, "weed-detector", "1.7.1", "model.ts")
    dest = str(tmp_path / "out")
    with pytest.raises(RegistryError) as err:
        registry.fetch("weed-detector", "1.7.1", dest)
    assert "1.7.1" in str(err.value) and "model.ts" in str(err.value) and "missing" in str(err.value)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".partial")
