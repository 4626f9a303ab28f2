"""What every transport does the same way: call the robot agent over one SSH session per step.

Each step opens its own connection, so a step after a cut link or a restarted sshd starts clean.
`deliver_with_retries` is the retry loop of the transports that deliver robot by robot.
"""
import json
import time

from pytools.fleet.transports.base import Transport
from pytools.fleet.transports.ssh_session import HostKeyError, RobotSession, TransportError


def link_failure(exc):
    """The answer for a step the link or the host key stopped."""
    status = "hostkey" if isinstance(exc, HostKeyError) else "unreachable"
    return {"ok": False, "status": status, "error": str(exc)}


PREFLIGHT_HEALTH_TIMEOUT = 5.0


def preflight_args(owner, signature, supersede):
    """The agent's preflight command line; the manifest goes on stdin."""
    args = ["preflight", "--manifest", "-", "--health-timeout", str(PREFLIGHT_HEALTH_TIMEOUT)]
    for flag, value in (("--owner", owner), ("--signature", signature),
                        ("--supersede", ",".join(supersede))):
        if value:
            args += [flag, value]
    return args


def retryable(answer):
    """A failed stage that found bad or missing bytes is worth another attempt; a refusal
    (signature, manifest) is final."""
    return answer.get("status") == "failed" and bool(
        answer.get("bad_files") or answer.get("downloaded_bytes") is not None)


class AgentOverSSH(Transport):
    def __init__(self, connect_timeout=10.0, io_timeout=20.0, retries=3, backoff=1.0,
                 activate_timeout=120.0):
        self.connect_timeout, self.io_timeout = connect_timeout, io_timeout
        self.retries, self.backoff = retries, backoff
        self.activate_timeout = activate_timeout

    def session(self, robot):
        return RobotSession(robot, self.connect_timeout, self.io_timeout)

    def call(self, robot, args, stdin=None, timeout=None):
        """One agent call; transport failures come back as an answer. Any call may first
        finish or revert an interrupted activation on the robot (a health check or two), so
        the channel may stay silent up to activate_timeout; a dead link is still found within
        io_timeout by the TCP and SSH keepalives."""
        try:
            with self.session(robot) as s:
                return s.agent(args, stdin=stdin, timeout=timeout or self.activate_timeout)
        except (HostKeyError, TransportError) as exc:
            return link_failure(exc)

    def status(self, robot):
        return self.call(robot, ["status"], timeout=self.io_timeout)

    def preflight(self, robot, manifest_bytes, owner=None, signature=None, supersede=()):
        return self.call(robot, preflight_args(owner, signature, supersede),
                         stdin=manifest_bytes)

    def activate(self, robot, version, owner):
        return self.call(robot, ["activate", version, "--owner", owner])

    def rollback(self, robot, owner, to=None):
        return self.call(robot, ["rollback", "--owner", owner] + (["--to", to] if to else []))

    def acquire(self, robot, owner, supersede=()):
        # The lease of a superseded rollout is taken over by preflight's rule; a plain
        # acquire refuses it, so a rollback asks for it through the same check.
        if supersede:
            return self.call(robot, ["lease", "acquire", "--owner", owner, "--supersede",
                                     ",".join(supersede)])
        return self.call(robot, ["lease", "acquire", "--owner", owner])

    def release(self, robot, owner):
        return self.call(robot, ["lease", "release", "--owner", owner])

    def fleet_lock(self, robot, action, owner, ttl, info=None, by=None, reason=None):
        args = ["fleet-lock", action, "--ttl", str(ttl)]
        for flag, value in (("--owner", owner), ("--by", by), ("--reason", reason),
                            ("--info", json.dumps(info, sort_keys=True) if info else None)):
            if value:
                args += [flag, value]
        return self.call(robot, args)

    def deliver_with_retries(self, robot, attempt):
        """Run attempt(session) -> answer until the package is staged; return (answer,
        attempts). Link failures and retryable answers are tried again with backoff (the
        robot keeps partial files, so an attempt resumes); a host key problem never is."""
        last = None
        for n in range(1, self.retries + 2):
            if n > 1:
                time.sleep(self.backoff * 2 ** (n - 2))
            try:
                with self.session(robot) as s:
                    answer = attempt(s)
            except HostKeyError as exc:
                return link_failure(exc), n
            except TransportError as exc:
                last = link_failure(exc)
                continue
            if answer.get("ok") or not retryable(answer):
                return answer, n
            last = answer
        return last, self.retries + 1
