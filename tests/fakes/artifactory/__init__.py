"""An Artifactory-compatible server on loopback, for tests of the real dohq-artifactory client."""
from tests.fakes.artifactory.server import ArtifactoryServer

__all__ = ["ArtifactoryServer"]
