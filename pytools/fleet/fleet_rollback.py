"""`pytools rollback`: a recorded fleet rollback to a named version, in waves.

It is a Rollout whose per-robot step is the agent's `rollback --to VERSION` (or, without a
version, what each robot ran before its last activation, which the agent knows from its own
history): health-checked by the agent, which goes back if the target is unhealthy. A robot
already on a healthy target is left alone, so running the same rollback twice changes nothing.
It takes the fleet lock and writes a record under `<workdir>/rollouts/` like a rollout, which
`pytools where` and lineage read.
"""
import os

from pytools.core.workdir import ROLLOUTS_DIR
from pytools.fleet.inventory import load_inventory
from pytools.fleet.rollout import FAILED, Rollout
from pytools.fleet.waves import plan_waves

PREVIOUS = "previous"  # the record's name for "what each robot ran before its last activation"


def rollback_record_path(workdir, name, to):
    return os.path.join(workdir, ROLLOUTS_DIR, "%s-rollback-%s.json" % (name, to or PREVIOUS))


class FleetRollback(Rollout):
    kind = "rollback"
    DONE = ("rolled-back", "already-current")
    FAILED = tuple(o for o in FAILED if o != "rolled-back")

    def __init__(self, name, to, inventory, workdir, options):
        # A rollback moves robots to older versions by definition.
        options.allow_downgrade = True
        self.name, self.version = name, to
        self.inventory = os.path.abspath(inventory)
        self.opts = options
        self.path = rollback_record_path(workdir, name, to)
        self.robots = {r.name: r for r in load_inventory(inventory)}
        self.package_dir = self.manifest_bytes = self.signature = None
        self.external_approver = options.approver
        self.plan = plan_waves(list(self.robots.values()), options.waves)
        self.init_run_state()

    def manifest_sha(self):
        return None

    def new_record(self):
        record = Rollout.new_record(self)
        record["id"] = "%s-rollback-%s-%s" % (self.name, self.version or PREVIOUS,
                                              record["id"].rsplit("-", 1)[1])
        return record

    def question(self, wave):
        return "Roll %s back to %s on wave %r (%d robots)?" % (
            self.name, self.version or "each robot's previous release", wave["name"],
            len(wave["robots"]))

    def target(self, name):
        return self.robot_entry(name).get("version") or self.version

    def prepare(self, robot):
        return self.opts.transport.acquire(robot, self.record["id"], self.fleet_lock.superseded)

    def apply(self, robot, pre, owner, on_bytes=None):
        t = self.opts.transport
        self.track(1)
        try:
            if self.stopping.is_set():
                self.set_robot(robot.name, outcome="interrupted", error=self.stop_reason)
                return "interrupted"
            self.set_robot(robot.name, outcome="activating")
            res = t.rollback(robot, owner, to=self.version)
            if res.get("ok"):
                outcome = "already-current" if res.get("already") else "rolled-back"
                self.set_robot(robot.name, outcome=outcome, version=res.get("version"),
                               error=None, health=res.get("health"))
                return outcome
            if res.get("status") == "busy":
                outcome = "deferred"
            elif res.get("status") in ("unreachable", "hostkey", "locked"):
                outcome = res["status"]
            else:  # the agent went back to what it ran, or could not even do that
                outcome = "rollback-failed"
            self.set_robot(robot.name, outcome=outcome, error=res.get("error"),
                           version=None, rolled_back_to=res.get("rolled_back_to"),
                           health=res.get("health"))
            return outcome
        finally:
            t.release(robot, owner)
            self.track(-1)

    def run_whole_wave(self, index, names):
        # The Ansible transport's waves are deploy plays; a rollback goes robot by robot
        # over the same agent (its SSH calls), which keeps one code path for the record.
        return self.run_robot_wave(index, names)
