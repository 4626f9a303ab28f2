"""The one interface a rollout drives robots through; ssh, pull and ansible implement it.

Every per-robot operation returns the robot agent's answer, a dict with `ok`, `status` and
`error` besides its own fields (docs/fleet.md lists the agent's commands). A broken link or a
refused host key is an answer too (`status` "unreachable" or "hostkey"), never an exception, so
one robot cannot stop a wave. `owner` is the rollout's id: the agent's deployment lease holder.

A transport delivers robot by robot (`deliver`, then `activate`) or, when `deploys_waves` is
true, a whole wave at once (`deploy_wave`); the rollout reads which from the attribute.
"""


class Transport:
    name = None  # the record's `options.transport`; also the key in TRANSPORTS
    deploys_waves = False

    def kind(self):
        return self.name

    def status(self, robot):
        """The agent's `status`: current and previous version, health, lease, last deployment."""
        raise NotImplementedError

    def preflight(self, robot, manifest_bytes, owner=None, signature=None, supersede=()):
        """Can the robot take this manifest (platform, signature, disk, busy, its current
        health)? With `owner` it also takes the robot's lease (over the leases of `supersede`
        rollouts, whose controllers are gone); without, it is a read-only check (dry run)."""
        raise NotImplementedError

    def deliver(self, robot, package_dir, manifest, owner, pre, on_bytes=None):
        """Get the package verified into the robot's releases/ (`pre` is the robot's preflight
        answer: its incoming/ directory, whether the release is staged already); call
        on_bytes(n) as bytes go out (it may raise to stop the transfer).
        Return (answer, bytes_sent, attempts)."""
        raise NotImplementedError

    def activate(self, robot, version, owner):
        """Switch to `version`, restart, health check (the agent reverts by itself on failure)."""
        raise NotImplementedError

    def rollback(self, robot, owner, to=None):
        """Back to release `to`, or to what the robot ran before its last activation."""
        raise NotImplementedError

    def acquire(self, robot, owner, supersede=()):
        """Take the robot's deployment lease (a rollback's first step)."""
        raise NotImplementedError

    def release(self, robot, owner):
        """Give the robot's deployment lease back."""
        raise NotImplementedError

    def fleet_lock(self, robot, action, owner, ttl, info=None, by=None, reason=None):
        """The agent's `fleet-lock ACTION` on the fleet's lock robot (fleet_lock.py)."""
        raise NotImplementedError

    def deploy_wave(self, inventory, robots, package_dir, version, owner, max_fail_percent,
                    allow_downgrade=False, supersede=()):
        """Preflight, deliver and activate every robot of a wave, halting once more than
        `max_fail_percent` fail; return {robot name: answer with `outcome`, `previous`,
        `health`}, robots not reached with outcome "skipped". Only when deploys_waves."""
        raise NotImplementedError
