"""Per-robot deployment steps over SSH: push (SFTP with resume) or pull (the robot downloads).

Each step opens its own connection, so a step after a cut link or a restarted sshd starts clean;
failed transfers are retried with backoff and resume from what already reached the robot.
"""
import os
import time

from pytools.fleet.ssh import HostKeyError, RobotSession, TransportError
from pytools.package import MANIFEST, SIGNATURE


class SSHTransport:
    def __init__(self, connect_timeout=10.0, io_timeout=20.0, retries=3, backoff=1.0,
                 pull_url=None, activate_timeout=120.0, stage_timeout=3600.0):
        self.connect_timeout, self.io_timeout = connect_timeout, io_timeout
        self.retries, self.backoff = retries, backoff
        self.pull_url = pull_url
        self.activate_timeout = activate_timeout
        # A pulling robot is silent on the SSH channel while it downloads; its own HTTP
        # timeout (io_timeout) detects a dead link, this only bounds the whole download.
        self.stage_timeout = stage_timeout

    def kind(self):
        return "pull" if self.pull_url else "ssh"

    def session(self, robot):
        return RobotSession(robot, self.connect_timeout, self.io_timeout)

    def call(self, robot, args, stdin=None, timeout=None):
        """One agent call; transport failures come back as an `unreachable` result."""
        try:
            with self.session(robot) as s:
                return s.agent(args, stdin=stdin, timeout=timeout)
        except HostKeyError as exc:
            return {"ok": False, "status": "hostkey", "error": str(exc)}
        except TransportError as exc:
            return {"ok": False, "status": "unreachable", "error": str(exc)}

    def status(self, robot):
        return self.call(robot, ["status"])

    def preflight(self, robot, manifest_bytes, owner=None):
        args = ["preflight", "--manifest", "-"] + (["--owner", owner] if owner else [])
        return self.call(robot, args, stdin=manifest_bytes)

    def activate(self, robot, version, owner):
        return self.call(robot, ["activate", version, "--owner", owner],
                         timeout=self.activate_timeout)

    def rollback(self, robot, owner, to=None):
        return self.call(robot, ["rollback", "--owner", owner] + (["--to", to] if to else []),
                         timeout=self.activate_timeout)

    def release(self, robot, owner):
        return self.call(robot, ["lease", "release", "--owner", owner])

    def deliver(self, robot, package_dir, manifest, owner, incoming, on_bytes=None):
        """Get the package verified into the robot's releases/; return (result, bytes_sent,
        attempts). Transport errors and files corrupted in transit are retried; a refusal
        (signature, manifest) is final."""
        counted = [0]  # bytes put on the wire, including attempts that died part-way
        pushing = [0.0]  # seconds spent sending (without connecting and verifying)

        def count(n):
            counted[0] += n
            if on_bytes:
                on_bytes(n)

        pulled, last = 0, None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            try:
                with self.session(robot) as s:
                    if self.pull_url:
                        args = ["stage", manifest["version"], "--owner", owner, "--url",
                                self.pull_url, "--timeout", str(self.io_timeout)]
                        result = s.agent(args, timeout=self.stage_timeout)
                        pulled += int(result.get("downloaded_bytes") or 0)
                    else:
                        started = time.monotonic()
                        self.push(s, package_dir, manifest, incoming, count)
                        pushing[0] += time.monotonic() - started
                        result = s.agent(["stage", manifest["version"], "--owner", owner],
                                         timeout=max(self.io_timeout, 120))
                        result["push_seconds"] = round(pushing[0], 3)
            except HostKeyError as exc:
                return {"ok": False, "status": "hostkey", "error": str(exc)}, counted[0], attempt
            except TransportError as exc:
                last = {"ok": False, "status": "unreachable", "error": str(exc)}
                continue
            sent = counted[0] + pulled
            if result.get("ok"):
                return result, sent, attempt
            last = result
            if result.get("status") != "failed" or not (result.get("bad_files")
                                                        or result.get("downloaded_bytes")
                                                        is not None):
                return result, sent, attempt
        return last, counted[0] + pulled, self.retries + 1

    def push(self, session, package_dir, manifest, incoming, on_bytes):
        names = [MANIFEST] + ([SIGNATURE] if os.path.exists(os.path.join(package_dir, SIGNATURE))
                              else [])
        names += [e["path"] for e in manifest["files"]]
        for rel in names:
            local = os.path.join(package_dir, rel)
            # The manifest and signature are tiny and decide everything: always sent whole.
            session.upload(local, incoming + "/" + rel, os.path.getsize(local), on_bytes,
                           resume=rel not in (MANIFEST, SIGNATURE))
