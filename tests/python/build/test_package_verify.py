"""The package: manifest contents, verification, tampering, path escapes, signatures."""
import json
import os
import shutil

import pytest

from pytools.core import package


def test_manifest_contents(crop_weed_done):
    pkg = os.path.join(crop_weed_done["workdir"], "package")
    manifest = package.verify_package(pkg)
    assert manifest["name"] == "crop-weed-classifier"
    assert manifest["version"].startswith("1.0.0")
    assert manifest["platform"] == "onnxruntime"
    rt = manifest["runtime"]
    assert rt["kind"] == "onnxruntime" and rt["entry"] == "model.onnx"
    assert rt["inputs"] == [{"name": "image", "dtype": "float32", "shape": ["batch", 3, 64, 64]}]
    assert rt["outputs"][0]["kind"] == "classifier" and rt["constraints"]["onnx_opset"] == 18
    assert {f["path"] for f in manifest["files"]} == {"model.onnx", "model.ts"}
    lineage = manifest["lineage"]
    state = json.load(open(os.path.join(crop_weed_done["workdir"], "state", "checkpoint.json")))
    assert lineage["checkpoint_sha256"] == state["outputs"]["checkpoint/checkpoint.pt"]["sha256"]
    assert all(len(lineage[k]) == 64 for k in ("torchscript_sha256", "onnx_sha256", "onnx_simplified_sha256"))
    assert manifest["evidence"]["parity"]["passed"] is True
    assert manifest["evidence"]["bench"]["onnxruntime"]["1"]["p99_ms"] > 0
    assert manifest["evidence"]["engine"]["reason"] == "TensorRT is not available on this machine"
    assert manifest["build_url"] is None


def test_build_metadata_and_prerelease(cli, crop_weed, monkeypatch):
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example/job/m/7/")
    monkeypatch.setenv("BUILD_NUMBER", "7")
    res = cli("package", crop_weed["config"], "--workdir", crop_weed["workdir"], "--prerelease", "mr.42", "--json")
    assert res.code == 0, res.err
    manifest = json.load(open(os.path.join(crop_weed["workdir"], "package", "manifest.json")))
    assert manifest["version"].startswith("1.0.0-mr.42+") and manifest["version"].endswith("build.7")
    assert manifest["build_url"] == "https://jenkins.example/job/m/7/"


@pytest.fixture
def pkg(crop_weed_done, tmp_path):
    dest = str(tmp_path / "pkg")
    shutil.copytree(os.path.join(crop_weed_done["workdir"], "package"), dest)
    return dest


def rewrite_manifest(pkg, change):
    path = os.path.join(pkg, "manifest.json")
    manifest = json.load(open(path))
    change(manifest)
    open(path, "w").write(json.dumps(manifest))


def test_verify_ok(cli, pkg):
    res = cli("package", "verify", pkg)
    assert res.code == 0 and res.out.startswith("ok: crop-weed-classifier")


def test_tampered_file(cli, pkg):
    with open(os.path.join(pkg, "model.onnx"), "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    res = cli("package", "verify", pkg)
    assert res.code == 3 and "model.onnx: sha256" in res.error_line and "does not match manifest" in res.error_line


def test_truncated_file(cli, pkg):
    with open(os.path.join(pkg, "model.ts"), "r+b") as f:
        f.truncate(10)
    res = cli("package", "verify", pkg)
    assert res.code == 3 and "model.ts has 10 bytes" in res.error_line


@pytest.mark.parametrize("bad_path, message", [
    ("../outside.onnx", "escapes"), ("/etc/passwd", "absolute"), ("a/./b", "escapes"),
    ("dir\\x", "absolute"), ("manifest.json", "reserved")])
def test_path_escapes_are_refused(cli, pkg, bad_path, message):
    rewrite_manifest(pkg, lambda m: m["files"].append({"path": bad_path, "size": 1, "sha256": "0" * 64}))
    res = cli("package", "verify", pkg)
    assert res.code == 3 and message in res.error_line and repr(bad_path) in res.error_line


def test_unlisted_file_is_refused(cli, pkg):
    open(os.path.join(pkg, "extra.bin"), "wb").write(b"x")
    res = cli("package", "verify", pkg)
    assert res.code == 3 and "does not list: extra.bin" in res.error_line


def test_symlink_is_refused(cli, pkg):
    os.symlink("/etc/hostname", os.path.join(pkg, "link"))
    res = cli("package", "verify", pkg)
    assert res.code == 3 and "symlink" in res.error_line


def test_signature(cli, crop_weed, tmp_path):
    priv, pub = tmp_path / "sign.pem", tmp_path / "sign.pub"
    assert cli("package", "keygen", priv, pub).code == 0
    assert oct(os.stat(priv).st_mode & 0o777) == "0o600"
    res = cli("package", crop_weed["config"], "--workdir", crop_weed["workdir"], "--sign-key", priv)
    assert res.code == 0, res.err
    pkg = os.path.join(crop_weed["workdir"], "package")
    assert cli("package", "verify", pkg, "--public-key", pub).code == 0
    other_priv, other_pub = tmp_path / "other.pem", tmp_path / "other.pub"
    cli("package", "keygen", other_priv, other_pub)
    wrong = cli("package", "verify", pkg, "--public-key", other_pub)
    assert wrong.code == 3 and "signature does not match" in wrong.error_line
    # Editing the manifest (say, to point at a new file hash) breaks the signature.
    rewrite_manifest(pkg, lambda m: m.update(version="9.9.9"))
    tampered = cli("package", "verify", pkg, "--public-key", pub)
    assert tampered.code == 3 and "signature does not match" in tampered.error_line


def test_unsigned_package_with_key_required(cli, pkg, tmp_path):
    cli("package", "keygen", tmp_path / "k.pem", tmp_path / "k.pub")
    res = cli("package", "verify", pkg, "--public-key", tmp_path / "k.pub")
    assert res.code == 3 and "not signed" in res.error_line


def test_failed_write_leaves_previous_package(crop_weed, tmp_path):
    """write_package assembles in DEST.partial: an error leaves the old package as it was."""
    dest = os.path.join(crop_weed["workdir"], "package")
    before = open(os.path.join(dest, "manifest.json")).read()
    with pytest.raises(OSError):
        package.write_package(dest, {"model.onnx": (str(tmp_path / "missing.onnx"), "onnx")}, {"name": "x"})
    assert open(os.path.join(dest, "manifest.json")).read() == before
    assert not os.path.exists(dest + ".partial")
