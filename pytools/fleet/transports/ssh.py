"""SSH transport (push): the controller copies the package to each robot over SFTP.

Failed transfers are retried with backoff and resume from what already reached the robot. A
release the robot has staged already is verified in place, not sent again. A transfer that
stops because the robot's disk filled is `disk-full`: not retried, the partial removed.
"""
import os
import time

from pytools.core.package import MANIFEST, SIGNATURE
from pytools.fleet.transports.agent_ssh import AgentOverSSH, preflight_args
from pytools.fleet.transports.ssh_session import TransportError


def read_signature(package_dir):
    path = os.path.join(package_dir, SIGNATURE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


class SSHTransport(AgentOverSSH):
    name = "ssh"

    def deliver(self, robot, package_dir, manifest, owner, pre, on_bytes=None):
        counted = [0]  # bytes put on the wire, including attempts that died part-way
        pushing = [0.0]  # seconds spent sending (without connecting and verifying)

        def count(n):
            counted[0] += n
            if on_bytes:
                on_bytes(n)

        def attempt(session):
            if not pre.get("staged"):
                started = time.monotonic()
                try:
                    self.push(session, package_dir, manifest, pre["incoming"], count)
                except TransportError:
                    full = self.disk_full(session, package_dir, manifest["version"], owner)
                    if full:
                        return full
                    raise
                finally:
                    pushing[0] += time.monotonic() - started
            answer = session.agent(["stage", manifest["version"], "--owner", owner],
                                   timeout=max(self.io_timeout, self.activate_timeout))
            answer["push_seconds"] = round(pushing[0], 3)
            return answer

        answer, attempts = self.deliver_with_retries(robot, attempt)
        return answer, counted[0], attempts

    def disk_full(self, session, package_dir, version, owner):
        """After a failed upload: when the robot says the rest no longer fits (preflight's disk
        check, reserve included), remove the partial and answer `disk-full`; else None."""
        with open(os.path.join(package_dir, MANIFEST), "rb") as f:
            manifest_bytes = f.read()
        check = session.agent(preflight_args(owner, read_signature(package_dir), ()),
                              stdin=manifest_bytes, timeout=self.activate_timeout)
        if check.get("ok") or check.get("needed_bytes") is None:
            return None
        gone = session.agent(["discard", version, "--owner", owner], timeout=self.activate_timeout)
        return {"ok": False, "status": "disk-full",
                "error": "the robot's disk filled during the transfer (%s); the partial "
                "download was %s" % (check.get("error"), "removed" if gone.get("ok") else
                                     "not removed: %s" % gone.get("error")),
                "free_bytes": gone.get("free_bytes", check.get("free_bytes"))}

    def push(self, session, package_dir, manifest, incoming, on_bytes):
        names = [MANIFEST] + ([SIGNATURE] if os.path.exists(os.path.join(package_dir, SIGNATURE))
                              else [])
        names += [e["path"] for e in manifest["files"]]
        for rel in names:
            local = os.path.join(package_dir, rel)
            # The manifest and signature are tiny and decide everything: always sent whole.
            session.upload(local, incoming + "/" + rel, os.path.getsize(local), on_bytes,
                           resume=rel not in (MANIFEST, SIGNATURE))
