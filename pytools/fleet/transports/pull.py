"""Pull transport: each robot downloads the package itself from `url` (HTTP Range, resumable).

The controller only tells the agent where to download from, over SSH; the bytes come from the
registry's URL or from a PackageServer on the controller (package_server.py).
"""
from pytools.fleet.transports.agent_ssh import AgentOverSSH


class PullTransport(AgentOverSSH):
    name = "pull"

    def __init__(self, url, stage_timeout=3600.0, **settings):
        AgentOverSSH.__init__(self, **settings)
        self.url = url
        # A pulling robot is silent on the SSH channel while it downloads; its own HTTP
        # timeout (io_timeout) detects a dead link, this only bounds the whole download.
        self.stage_timeout = stage_timeout

    def deliver(self, robot, package_dir, manifest, owner, pre, on_bytes=None):
        pulled = [0]  # what the robot downloaded, over all attempts

        def attempt(session):
            answer = session.agent(["stage", manifest["version"], "--owner", owner, "--url",
                                    self.url, "--timeout", str(self.io_timeout)],
                                   timeout=self.stage_timeout)
            pulled[0] += int(answer.get("downloaded_bytes") or 0)
            return answer

        answer, attempts = self.deliver_with_retries(robot, attempt)
        return answer, pulled[0], attempts
