"""Fixtures shared by every area's tests."""
import os
import sys

import pytest

from pytools_testlib import CliResult

# The strict loopback servers (`tests.fakes.*`) are imported as packages from the repository root.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def private_registry(tmp_path, monkeypatch):
    """Every test publishes to its own local registry, never to ./work/registry of the checkout."""
    monkeypatch.setenv("PYTOOLS_REGISTRY", str(tmp_path / "registry"))
    # W&B tracking is tested in tests/python/tracking; elsewhere it would only cost time.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    # Debian's groovy needs JAVA_HOME; default it so `python3 -m pytest` works without .ci/run.
    jdk = "/usr/lib/jvm/java-17-openjdk-amd64"
    if not os.environ.get("JAVA_HOME") and os.path.isdir(jdk):
        monkeypatch.setenv("JAVA_HOME", jdk)


@pytest.fixture
def cli(capsys):
    """Run `pytools ARGS` in this process (torch is imported once per test session)."""
    from pytools.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
