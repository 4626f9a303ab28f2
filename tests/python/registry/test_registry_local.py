"""Local-registry specifics: two publishers at once, the content store, the layout."""
import os
import subprocess
import sys

import pytest

from registry_helpers import ROOT
from pytools.registry import open_registry

pytestmark = pytest.mark.timeout(120)


def publish_concurrently(registry_dir, packages):
    env = dict(os.environ, PYTOOLS_REGISTRY=registry_dir)
    env.pop("ARTIFACTORY_URL", None)
    procs = [subprocess.Popen([sys.executable, "-m", "pytools", "publish", pkg], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for pkg in packages]
    return [(p.wait(60), p.stderr.read().decode()) for p in procs]


def test_two_publishers_of_the_same_version_one_wins_whole(make_package, tmp_path):
    a = make_package(version="1.0.0", files={"model.onnx": os.urandom(4 << 20)})
    b = make_package(version="1.0.0", files={"model.onnx": os.urandom(4 << 20)})
    results = publish_concurrently(str(tmp_path / "reg"), [a, b])
    assert sorted(rc for rc, _ in results) == [0, 1]
    loser = [err for rc, err in results if rc][0]
    assert loser.startswith("error: ") and "immutable" in loser and len(loser.strip().splitlines()) == 1
    registry = open_registry({"path": str(tmp_path / "reg")}, environ={})
    out = str(tmp_path / "out")
    registry.fetch("weed-detector", "1.0.0", out)  # verifies: the files all come from one package
    winner = a if results[0][0] == 0 else b
    with open(os.path.join(out, "model.onnx"), "rb") as f1, open(os.path.join(winner, "model.onnx"), "rb") as f2:
        assert f1.read() == f2.read()


def test_two_publishers_of_different_versions_both_succeed(make_package, tmp_path):
    pkgs = [make_package(version=v, files={"model.onnx": os.urandom(1 << 20)}) for v in ("1.0.0", "1.1.0")]
    assert [rc for rc, _ in publish_concurrently(str(tmp_path / "reg"), pkgs)] == [0, 0]
    registry = open_registry({"path": str(tmp_path / "reg")}, environ={})
    assert [v["version"] for v in registry.versions("weed-detector")] == ["1.0.0", "1.1.0"]


def test_layout_and_content_store(make_package, tmp_path):
    registry = open_registry({"path": str(tmp_path / "reg")}, environ={})
    files = {"model.onnx": os.urandom(50000)}
    registry.publish(make_package(version="1.0.0", files=files))
    registry.publish(make_package(version="1.0.1", files=files))
    first = tmp_path / "reg" / "dev" / "weed-detector" / "1.0.0" / "onnxruntime" / "model.onnx"
    second = tmp_path / "reg" / "dev" / "weed-detector" / "1.0.1" / "onnxruntime" / "model.onnx"
    assert os.path.samefile(str(first), str(second))  # one copy of identical bytes
    assert not os.listdir(str(tmp_path / "reg" / ".tmp"))  # no staging left behind


def test_a_failed_publish_leaves_nothing_visible(make_package, tmp_path):
    registry = open_registry({"path": str(tmp_path / "reg")}, environ={})
    pkg = make_package(version="1.0.0")
    os.unlink(os.path.join(pkg, "model.ts"))
    with pytest.raises(Exception, match="missing"):
        registry.publish(pkg)
    assert registry.versions("weed-detector") == []
    assert not os.path.exists(str(tmp_path / "reg" / "dev"))


def test_a_rotted_blob_is_not_reused_for_a_new_version(make_package, tmp_path):
    registry = open_registry({"path": str(tmp_path / "reg")}, environ={})
    files = {"model.onnx": os.urandom(50000), "model.ts": b"ts"}
    first = registry.publish(make_package(version="1.0.0", files=files))
    blob = os.path.join(first["location"], "model.onnx")
    with open(blob, "r+b") as f:  # bit rot in the content store (same size, other bytes)
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 0xFF]))
    second = registry.publish(make_package(version="1.0.1", files=files))
    assert second["bytes_reused"] < 50000  # the rotted blob was not linked into the new version
    out = str(tmp_path / "out")
    registry.fetch("weed-detector", "1.0.1", out)  # verifies every byte
    with open(os.path.join(out, "model.onnx"), "rb") as f:
        assert f.read() == files["model.onnx"]
