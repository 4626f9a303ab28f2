"""Fixtures for the registry tests: packages, the loopback Artifactory, both backends."""
import pytest

from registry_helpers import artifactory_registry, build_package, open_registry
from tests.fakes.artifactory import ArtifactoryServer


@pytest.fixture
def make_package(tmp_path):
    counter = [0]

    def make(**kwargs):
        counter[0] += 1
        return build_package(str(tmp_path / ("pkg%d" % counter[0])), **kwargs)
    return make


@pytest.fixture
def artifactory(tmp_path):
    with ArtifactoryServer(str(tmp_path / "artifactory")) as server:
        yield server


@pytest.fixture(params=["local", "artifactory"])
def registry(request, tmp_path):
    if request.param == "local":
        yield open_registry({"path": str(tmp_path / "registry")}, environ={})
        return
    server = ArtifactoryServer(str(tmp_path / "artifactory")).start()
    try:
        reg = artifactory_registry(server)
        reg.server = server
        yield reg
    finally:
        server.stop()
