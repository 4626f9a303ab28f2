"""SSH transport (push): the controller copies the package to each robot over SFTP.

Failed transfers are retried with backoff and resume from what already reached the robot.
"""
import os
import time

from pytools.core.package import MANIFEST, SIGNATURE
from pytools.fleet.transports.agent_ssh import AgentOverSSH


class SSHTransport(AgentOverSSH):
    name = "ssh"

    def deliver(self, robot, package_dir, manifest, owner, incoming, on_bytes=None):
        counted = [0]  # bytes put on the wire, including attempts that died part-way
        pushing = [0.0]  # seconds spent sending (without connecting and verifying)

        def count(n):
            counted[0] += n
            if on_bytes:
                on_bytes(n)

        def attempt(session):
            started = time.monotonic()
            self.push(session, package_dir, manifest, incoming, count)
            pushing[0] += time.monotonic() - started
            answer = session.agent(["stage", manifest["version"], "--owner", owner],
                                   timeout=max(self.io_timeout, 120))
            answer["push_seconds"] = round(pushing[0], 3)
            return answer

        answer, attempts = self.deliver_with_retries(robot, attempt)
        return answer, counted[0], attempts

    def push(self, session, package_dir, manifest, incoming, on_bytes):
        names = [MANIFEST] + ([SIGNATURE] if os.path.exists(os.path.join(package_dir, SIGNATURE))
                              else [])
        names += [e["path"] for e in manifest["files"]]
        for rel in names:
            local = os.path.join(package_dir, rel)
            # The manifest and signature are tiny and decide everything: always sent whole.
            session.upload(local, incoming + "/" + rel, os.path.getsize(local), on_bytes,
                           resume=rel not in (MANIFEST, SIGNATURE))
