"""One rollout per fleet: a lock kept by the agent of the fleet's lock robot.

Every controller of a fleet (a laptop's `pytools rollout`, a Jenkins agent's) reaches the
robots over SSH, and nothing else is shared by all of them: the registry is optional and a
Jenkins lock is invisible to a terminal. So the lock lives on one robot of the fleet, the
inventory's `model_fleet_lock_host` or else the first robot by name, and its agent grants it
atomically (flock + atomic file replace). The holder renews it from a heartbeat thread; a lock
whose controller died expires `ttl` seconds after the last renewal. While a rollout waits for
an external approval no controller runs, so the lock is parked with the longer approval TTL.
"""
import getpass
import socket
import threading

from pytools.core.errors import PytoolsError

LOCK_HOST_VAR = "model_fleet_lock_host"
DEFAULT_TTL = 60.0
DEFAULT_APPROVAL_TTL = 24 * 3600.0


def lock_robot(robots):
    """The robot whose agent keeps the fleet lock; every controller of the fleet picks the same."""
    by_name = {r.name: r for r in robots}
    named = {str(r.vars[LOCK_HOST_VAR]) for r in robots if r.vars.get(LOCK_HOST_VAR)}
    if len(named) > 1:
        raise PytoolsError("inventory names more than one %s: %s"
                           % (LOCK_HOST_VAR, ", ".join(sorted(named))))
    if named:
        name = named.pop()
        if name not in by_name:
            raise PytoolsError("%s %r is not a host of the inventory" % (LOCK_HOST_VAR, name))
        return by_name[name]
    return by_name[min(by_name)]


def whoami():
    return "%s@%s" % (getpass.getuser(), socket.gethostname())


class FleetLockError(PytoolsError):
    """Another rollout holds the fleet, or the lock robot cannot be asked."""


class FleetLock:
    def __init__(self, transport, robots, owner, info, ttl=DEFAULT_TTL,
                 approval_ttl=DEFAULT_APPROVAL_TTL, on_lost=None):
        self.transport, self.robot = transport, lock_robot(robots)
        self.owner, self.info = owner, dict(info, who=whoami())
        self.ttl, self.approval_ttl = float(ttl), float(approval_ttl)
        self.superseded = []
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread = None

    def call(self, action, ttl=None, state="running"):
        return self.transport.fleet_lock(self.robot, action, self.owner, ttl or self.ttl,
                                         info=dict(self.info, state=state))

    def acquire(self):
        res = self.call("acquire")
        if not res.get("ok"):
            if res.get("status") == "locked":
                raise FleetLockError("refused: %s" % res.get("error"))
            raise FleetLockError("cannot take the fleet lock on %s (the fleet's lock robot, "
                                 "%s): %s: %s" % (self.robot.name, LOCK_HOST_VAR,
                                                  res.get("status"), res.get("error")))
        self.superseded = [o for o in res.get("superseded") or [] if o != self.owner]
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="fleet-lock", daemon=True)
        self._thread.start()
        return res["lock"]

    def _heartbeat(self):
        while not self._stop.wait(self.ttl / 4):
            res = self.call("renew")
            if not res.get("ok") and res.get("status") == "lost":
                if self.on_lost:
                    self.on_lost()
                return
            # An unreachable lock robot is tried again next beat; the lock lasts `ttl`.

    def _stop_heartbeat(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def park(self):
        """Keep the fleet through an external approval wait (no controller runs meanwhile)."""
        self._stop_heartbeat()
        res = self.call("renew", ttl=self.approval_ttl, state="awaiting_approval")
        if not res.get("ok"):
            raise FleetLockError("could not keep the fleet lock for the approval wait: %s"
                                 % res.get("error"))

    def release(self):
        self._stop_heartbeat()
        return self.transport.fleet_lock(self.robot, "release", self.owner, self.ttl)


def show(transport, robots):
    robot = lock_robot(robots)
    return robot.name, transport.fleet_lock(robot, "show", None, DEFAULT_TTL)


def unlock(transport, robots, reason):
    """Break the fleet lock (recorded in the lock robot's audit log with who and why)."""
    robot = lock_robot(robots)
    res = transport.fleet_lock(robot, "break", None, DEFAULT_TTL, by=whoami(), reason=reason)
    if not res.get("ok"):
        raise PytoolsError("cannot unlock the fleet on %s: %s: %s"
                           % (robot.name, res.get("status"), res.get("error")))
    return robot.name, res.get("broken")
