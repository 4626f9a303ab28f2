"""Helpers for the registry tests: packages, the loopback Artifactory, corrupting stored bytes."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if ROOT not in sys.path:  # `tests.fakes.artifactory` is imported as a package from the repo root
    sys.path.insert(0, ROOT)

from pytools.core.package import write_package  # noqa: E402
from pytools.registry import open_registry  # noqa: E402

TOKEN_ENV = {"ARTIFACTORY_TOKEN": "test-token"}


def build_package(dest, name="weed-detector", version="1.0.0", platform="onnxruntime",
                  files=None, parity=True, git_commit="3f2a1bc0" * 5,
                  build_url="https://jenkins.example/job/models/42/", sign_key=None):
    """A small but real package directory made with pytools.core.package.write_package."""
    src = dest + ".src"
    os.makedirs(src, exist_ok=True)
    files = files if files is not None else {"model.onnx": b"onnx-bytes " * 2000 + version.encode(),
                                             "model.ts": b"torchscript " * 10}
    entries = {}
    for rel, data in files.items():
        path = os.path.join(src, rel.replace("/", "_"))
        with open(path, "wb") as f:
            f.write(data)
        entries[rel] = (path, "onnx" if rel.endswith(".onnx") else "torchscript")
    write_package(dest, entries, {
        "name": name, "version": version, "platform": platform, "git_commit": git_commit,
        "build_url": build_url,
        "runtime": {"kind": "onnxruntime", "entry": "model.onnx", "precision": "fp32",
                    "inputs": [], "outputs": [], "constraints": {"onnx_opset": 17}},
        "lineage": {"checkpoint_sha256": "a" * 64, "onnx_sha256": "b" * 64, "parent": None,
                    "tracking_runs": []},
        "evidence": {"parity": {"passed": parity}, "bench": {}},
    }, signing_key_path=sign_key)
    return dest


def artifactory_registry(server, environ=None, **settings):
    base = {"backend": "artifactory", "url": server.url, "retries": 3}
    base.update(settings)
    return open_registry(base, environ=dict(TOKEN_ENV if environ is None else environ))


def corrupt_stored(registry, name, version, rel):
    """Flip one stored byte of a published file, in whichever backend holds it."""
    entry = registry.resolve(name, version)
    if registry.kind == "local":
        with open(os.path.join(entry["location"], rel), "r+b") as f:
            byte = f.read(1)
            f.seek(0)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        registry.server.corrupt("/".join([registry.repos[entry["channel"]], name, entry["version"],
                                          entry["platform"], rel]))


def remove_stored(registry, name, version, rel):
    """Delete one stored file of a published package behind the registry's back."""
    entry = registry.resolve(name, version)
    if registry.kind == "local":
        os.unlink(os.path.join(entry["location"], rel))
    else:
        registry.server.store.delete("/".join([registry.repos[entry["channel"]], name, entry["version"],
                                               entry["platform"], rel]))
