"""A Jenkins-REST-compatible server on loopback, for tests of `pytools release` (python-jenkins)."""
from tests.fakes.jenkins.server import FakeJenkins

__all__ = ["FakeJenkins"]
