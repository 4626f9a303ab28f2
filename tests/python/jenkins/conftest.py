import pytest

from tests.fakes.jenkins import FakeJenkins

USERS = {
    "alice": {"token": "11aa-alice-token", "groups": ["release-managers"]},
    "bob": {"token": "22bb-bob-token", "groups": ["developers"]},
}
WAVES = [("canary", ["robot-01", "robot-02"]), ("10%", ["robot-03", "robot-04", "robot-05"])]


@pytest.fixture
def jenkins_server():
    with FakeJenkins(USERS) as server:
        server.add_job("weed-detector", waves=WAVES)
        server.add_job("models/row-follower", waves=WAVES[:1])
        yield server


@pytest.fixture
def as_user(monkeypatch, tmp_path, jenkins_server):
    """Point the release CLI at the loopback Jenkins as one of USERS."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no stray ~/.config/pytools/jenkins.ini
    monkeypatch.delenv("JENKINS_TOKEN_FILE", raising=False)
    monkeypatch.delenv("PYTOOLS_JENKINS_CONFIG", raising=False)

    def login(name, token=None):
        monkeypatch.setenv("JENKINS_URL", jenkins_server.url)
        monkeypatch.setenv("JENKINS_USER", name)
        monkeypatch.setenv("JENKINS_TOKEN", token or USERS[name]["token"])
        return jenkins_server
    return login
