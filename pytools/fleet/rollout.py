"""Staged rollout of one package version to a fleet.

For each wave: preflight every robot of the wave (this takes each robot's deployment lease) and
stop before any transfer if too many refuse; then transfer + verify + activate in parallel
(bounded); count failures against the wave's threshold; halt (optionally rolling the whole wave
back) when it is crossed. Between waves an approval gate asks a person (prompt), takes `--yes`,
or pauses the rollout for an external approver (the Jenkins step) to `--resume --approved-by`.
The whole rollout, approval waits included, holds the fleet lock (fleet_lock.py).

Everything is written to a rollout record (JSON, replaced atomically after every change) under
`<workdir>/rollouts/`, which is also what `--resume` continues from. A robot counts as done only
after a passing health check of the version it is meant to run.
"""
import fcntl
import getpass
import hashlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pytools.core import semver
from pytools.core.console import Progress
from pytools.core.errors import CheckError, PytoolsError
from pytools.core.files import atomic_write_json
from pytools.core.package import MANIFEST, SIGNATURE, utc_now, verify_package
from pytools.core.workdir import ROLLOUTS_DIR
from pytools.fleet.fleet_lock import DEFAULT_APPROVAL_TTL, DEFAULT_TTL, FleetLock
from pytools.fleet.inventory import load_inventory
from pytools.fleet.transports.ssh import SSHTransport
from pytools.fleet.waves import DEFAULT_WAVES, crossed, parse_threshold, plan_waves

DONE = ("activated", "already-current")
# Outcomes that count against a wave's failure threshold.
FAILED = ("failed", "rolled-back", "rollback-failed", "refused", "locked", "unreachable",
          "hostkey", "disk-full")
# Not on the target version, but not this version's fault: the rollout ends incomplete.
NOT_DONE = ("deferred", "unhealthy-before", "not-on-target", "interrupted")
EXIT_HALTED = CheckError.exit_code
EXIT_AWAITING_APPROVAL = 4
EXIT_INCOMPLETE = 5
EXIT_INTERRUPTED = 130
EXIT_CODES = {"halted": EXIT_HALTED, "awaiting_approval": EXIT_AWAITING_APPROVAL,
              "completed-with-deferred": EXIT_INCOMPLETE, "incomplete": EXIT_INCOMPLETE,
              "interrupted": EXIT_INTERRUPTED}
AGENT_STATUS_OUTCOME = {"busy": "deferred", "unhealthy": "unhealthy-before"}


class Interrupted(Exception):
    """Raised inside a robot's transfer when the rollout is stopping (Ctrl-C, SIGTERM, lost lock)."""


class Options:
    def __init__(self, waves=DEFAULT_WAVES, max_failures="0", rollback_wave=False,
                 approval="prompt", approver=None, concurrency=8, dry_run=False, resume=False,
                 transport=None, prompt=None, allow_downgrade=False, lock_ttl=DEFAULT_TTL,
                 approval_ttl=DEFAULT_APPROVAL_TTL):
        self.waves, self.max_failures = waves, parse_threshold(max_failures)
        self.rollback_wave, self.approval, self.approver = rollback_wave, approval, approver
        self.concurrency, self.dry_run, self.resume = max(int(concurrency), 1), dry_run, resume
        self.transport = transport or SSHTransport()
        self.prompt = prompt
        self.allow_downgrade = allow_downgrade
        self.lock_ttl, self.approval_ttl = lock_ttl, approval_ttl


def record_path(workdir, name, version):
    return os.path.join(workdir, ROLLOUTS_DIR, "%s-%s.json" % (name, version))


def archive_path(path, record_id):
    """Where a finished record goes when the same NAME-VERSION starts again: kept, by its id."""
    return "%s.%s.json" % (path[:-len(".json")], record_id)


def is_downgrade(current, target):
    """True when `target` is an older semantic version than `current` (non-semver: False)."""
    try:
        return bool(current) and semver.parse(target) < semver.parse(current)
    except semver.SemverError:
        return False


class Rollout:
    kind = "rollout"
    DONE, FAILED = DONE, FAILED

    def __init__(self, name, version, inventory, package_dir, workdir, options):
        self.name, self.version = name, version
        self.inventory = os.path.abspath(inventory)
        self.opts = options
        self.path = record_path(workdir, name, version)
        self.robots = {r.name: r for r in load_inventory(inventory)}
        self.load_package(package_dir)
        self.external_approver = options.approver
        self.plan = plan_waves(list(self.robots.values()), options.waves)
        self.init_run_state()

    def init_run_state(self):
        self.lock = threading.Lock()
        self.record = None
        self.fleet_lock = None
        self.stopping = threading.Event()
        self.stop_reason = None
        self._inflight = 0

    def load_package(self, package_dir):
        self.package_dir = os.path.abspath(package_dir)
        self.manifest = verify_package(self.package_dir)
        if (self.manifest["name"], self.manifest["version"]) != (self.name, self.version):
            raise CheckError("package %s is %s %s, not %s %s"
                             % (package_dir, self.manifest["name"], self.manifest["version"],
                                self.name, self.version))
        with open(os.path.join(self.package_dir, MANIFEST), "rb") as f:
            self.manifest_bytes = f.read()
        sig = os.path.join(self.package_dir, SIGNATURE)
        self.signature = open(sig).read().strip() if os.path.exists(sig) else None

    # -- the record --
    def save(self):
        with self.lock:
            self.record["updated"] = utc_now()
            atomic_write_json(self.path, self.record)

    def robot_entry(self, name):
        return self.record["robots"][name]

    def set_robot(self, name, **fields):
        """Update a robot; every outcome it reaches is appended to its history (kept across
        resumes), with its reason."""
        with self.lock:
            entry = self.record["robots"][name]
            entry.update(fields)
            outcome = fields.get("outcome")
            if outcome and outcome not in ("pending", "transferring", "activating"):
                entry.setdefault("history", []).append({
                    "at": utc_now(), "run": len(self.record["runs"]), "outcome": outcome,
                    "error": entry.get("error")})
        self.save()

    def new_robot(self, wave):
        return {"wave": wave, "outcome": "pending", "error": None, "bytes_sent": 0,
                "timings": {}, "previous": None, "attempts": 0, "history": []}

    def new_record(self):
        waves = [dict(w) for w in self.plan]
        robots = {}
        for i, wave in enumerate(waves):
            for n in wave["robots"]:
                robots[n] = self.new_robot(i)
        for wave in waves:
            wave.update(state="pending", approver=None, approved_at=None, started=None,
                        finished=None, failures=0)
        return {"id": "%s-%s-%s" % (self.name, self.version, uuid.uuid4().hex[:8]),
                "kind": self.kind, "name": self.name, "version": self.version,
                "inventory": self.inventory, "package": self.package_dir,
                "package_sha256": self.manifest_sha(),
                "workdir": os.path.dirname(os.path.dirname(os.path.abspath(self.path))),
                "created": utc_now(), "updated": None, "state": "running", "next_wave": 0,
                "options": {"waves": self.opts.waves, "max_failures": list(self.opts.max_failures),
                            "rollback_wave": self.opts.rollback_wave,
                            "allow_downgrade": self.opts.allow_downgrade,
                            "transport": self.opts.transport.kind()},
                "waves": waves, "robots": robots, "halt_reason": None, "runs": []}

    def manifest_sha(self):
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    # -- entry point --
    def run(self):
        if self.opts.dry_run:
            return self.dry_run()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PytoolsError("another rollout of %s %s is running from this work directory"
                                   % (self.name, self.version))
            record = self.load_or_create()
            started = time.monotonic()
            self.take_fleet(record)  # refused: nothing written, the old record untouched
            lock_seconds = time.monotonic() - started
            if not self.opts.resume and os.path.exists(self.path):
                # A finished rollout of the same NAME-VERSION: kept, under its id.
                with open(self.path) as f:
                    os.replace(self.path, archive_path(self.path, json.load(f)["id"]))
            self.record = record
            record["runs"].append({"started": utc_now(), "by": getpass.getuser(),
                                   "resume": bool(self.opts.resume), "finished": None,
                                   "lock_seconds": lock_seconds})
            self.save()
            with self.signals_interrupt():
                try:
                    self.run_waves()
                    if self.stopping.is_set():
                        raise Interrupted()
                except (KeyboardInterrupt, Interrupted):
                    self.interrupted()
                except Exception as exc:
                    # A controller bug must not keep the fleet locked, nor the record "running".
                    self.record.update(state="interrupted", halt_reason="controller error: %s: %s"
                                       % (type(exc).__name__, exc))
                    self.finish()
                    raise
            return self.finish()
        finally:
            os.close(lock_fd)

    def take_fleet(self, record):
        self.fleet_lock = FleetLock(self.opts.transport, list(self.robots.values()), record["id"],
                                    {"name": self.name, "version": self.version,
                                     "kind": self.kind}, self.opts.lock_ttl,
                                    self.opts.approval_ttl, on_lost=self.lock_lost)
        self.fleet_lock.acquire()

    def lock_lost(self):
        """A lost lock (expired while the controller was stalled, or broken by `fleet
        unlock`) stops the rollout at the next step: another rollout may own the fleet now."""
        self.stop("the fleet lock was lost (expired, or broken with `pytools fleet unlock`)")

    def stop(self, reason):
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def finish(self):
        """Give the fleet back unless the rollout waits for approval; close this run."""
        rec = self.record
        started = time.monotonic()
        if rec["state"] == "awaiting_approval":
            self.fleet_lock.park()
        else:
            self.fleet_lock.release()
        run = rec["runs"][-1]
        # What the fleet lock cost this run: its SSH calls on the main path (the heartbeat
        # renews from its own thread).
        run.update(finished=utc_now(), state=rec["state"], lock_seconds=round(
            run["lock_seconds"] + time.monotonic() - started, 3))
        self.save()
        return rec

    def signals_interrupt(self):
        """Ctrl-C and SIGTERM (a CI job aborted) stop the rollout: the flag first, so the
        wave's workers end their steps, then KeyboardInterrupt in the main thread. Only the
        main thread receives signals; elsewhere this changes nothing."""
        rollout = self

        class Handler:
            def __enter__(self):
                self.old = {}
                if threading.current_thread() is threading.main_thread():
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        self.old[sig] = signal.signal(sig, self.on_signal)

            def on_signal(self, signum, frame):
                rollout.stop("interrupted by %s" % signal.Signals(signum).name)
                raise KeyboardInterrupt

            def __exit__(self, *exc):
                for sig, old in self.old.items():
                    signal.signal(sig, old)

        return Handler()

    def interrupted(self):
        """Stop: let in-flight steps end (transfers stop at their next block), release every
        lease of the running wave, mark what did not finish `interrupted`."""
        self.stop(self.stop_reason or "interrupted (Ctrl-C)")
        while self.inflight():  # workers of the wave end their current step
            time.sleep(0.1)
        rec = self.record
        wave = rec["waves"][rec["next_wave"]] if rec["next_wave"] < len(rec["waves"]) else None
        if wave:
            owner = rec["id"]
            with ThreadPoolExecutor(self.opts.concurrency) as pool:
                list(pool.map(lambda n: self.opts.transport.release(self.robots[n], owner),
                              wave["robots"]))
            if wave["state"] == "running":
                wave["state"] = "interrupted"
        for name, entry in rec["robots"].items():
            if entry["outcome"] in ("transferring", "activating") or (
                    wave and name in wave["robots"] and entry["outcome"] == "pending"):
                self.set_robot(name, outcome="interrupted", error=self.stop_reason)
        rec.update(state="interrupted", halt_reason=self.stop_reason)
        self.save()

    def inflight(self):
        with self.lock:
            return self._inflight

    def track(self, delta):
        with self.lock:
            self._inflight += delta

    def load_or_create(self):
        existing = None
        if os.path.exists(self.path):
            with open(self.path) as f:
                existing = json.load(f)
        if self.opts.resume:
            if not existing:
                raise PytoolsError("nothing to resume: no rollout record at %s" % self.path)
            if existing.get("package_sha256") != self.manifest_sha():
                raise CheckError("the package differs from the one this rollout started with")
            missing = sorted(set(existing["robots"]) - set(self.robots))
            if missing:
                raise PytoolsError("robots of this rollout are no longer in %s: %s"
                                   % (self.inventory, ", ".join(missing)))
            # Same thresholds as when it started; continue from the first wave that still has
            # robots to do (deferred ones included); waves approved before keep their approval.
            self.opts.max_failures = tuple(existing["options"]["max_failures"])
            self.opts.rollback_wave = existing["options"]["rollback_wave"]
            self.opts.allow_downgrade = (self.opts.allow_downgrade or
                                         existing["options"].get("allow_downgrade", False))
            existing.setdefault("runs", [])
            pending = [r["wave"] for r in existing["robots"].values() if r["outcome"] not in self.DONE]
            existing.update(state="running", halt_reason=None,
                            next_wave=min(pending) if pending else len(existing["waves"]))
            return existing
        if existing and existing.get("state") not in ("completed",):
            raise PytoolsError("rollout %s is %s; continue it with --resume (record: %s)"
                               % (existing.get("id"), existing.get("state"), self.path))
        return self.new_record()

    def run_waves(self):
        rec = self.record
        if self.opts.resume:
            self.confirm_done()
        for index in range(rec["next_wave"], len(rec["waves"])):
            wave = rec["waves"][index]
            todo = [n for n in wave["robots"] if self.robot_entry(n)["outcome"] not in self.DONE]
            if index > 0 and wave["approver"] is None and todo:
                if not self.approve(index):
                    return rec
            if self.stopping.is_set():
                return rec
            rec["next_wave"] = index
            wave.update(state="running", started=wave["started"] or utc_now())
            self.save()
            failures = self.run_wave(index, todo)
            if self.stopping.is_set():
                return rec
            wave.update(finished=utc_now(), failures=failures)
            if crossed(self.opts.max_failures, failures, len(wave["robots"])):
                reason = "wave %r: %d of %d robots failed" % (wave["name"], failures,
                                                               len(wave["robots"]))
                if self.opts.rollback_wave:
                    self.roll_back_wave(wave, reason)
                wave["state"] = "halted"
                rec.update(state="halted", halt_reason=reason)
                self.save()
                return rec
            wave["state"] = "done"
            rec["next_wave"] = index + 1
            self.save()
        left = {n: r["outcome"] for n, r in rec["robots"].items() if r["outcome"] not in self.DONE}
        if not left:
            rec.update(state="completed", halt_reason=None)
        elif set(left.values()) == {"deferred"}:
            rec.update(state="completed-with-deferred", halt_reason="%d robots deferred (busy): "
                       "%s" % (len(left), ", ".join(sorted(left))))
        else:
            rec.update(state="incomplete", halt_reason="%d robots not on %s: %s" % (
                len(left), self.version, ", ".join("%s (%s)" % i for i in sorted(left.items()))))
        self.save()
        return rec

    def confirm_done(self):
        """On resume, robots done in an earlier run must still run the target, healthy."""
        t = self.opts.transport
        done = [n for n, r in self.record["robots"].items() if r["outcome"] in self.DONE]
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            answers = list(pool.map(lambda n: t.status(self.robots[n]), done))
        for name, res in zip(done, answers):
            health = res.get("health") or {}
            if res.get("current") != self.target(name) or not health.get("ok"):
                self.set_robot(name, outcome="not-on-target", error=(
                    "was %s, now runs %s (health: %s)" % (
                        self.robot_entry(name)["outcome"], res.get("current"),
                        health.get("error") or ("ok" if health.get("ok") else res.get("error"))))
                    if res.get("ok") else "cannot confirm: %s" % res.get("error"))
        if any(self.robot_entry(n)["outcome"] == "not-on-target" for n in done):
            waves = [self.robot_entry(n)["wave"] for n in done
                     if self.robot_entry(n)["outcome"] == "not-on-target"]
            self.record["next_wave"] = min([self.record["next_wave"]] + waves)

    def target(self, name):
        return self.version

    def approve(self, index):
        wave = self.record["waves"][index]
        opts = self.opts
        question = self.question(wave)
        who = None
        if opts.approval == "yes":
            who = opts.approver or "--yes"
        elif self.external_approver:
            # --approved-by approves the one wave that was waiting; later waves wait again.
            who, self.external_approver = self.external_approver, None
        elif opts.approval == "prompt" and opts.prompt is not None:
            answer = opts.prompt(question)  # None: nobody at a terminal, so wait externally
            if answer:
                who = opts.approver or getpass.getuser()
            elif answer is not None:
                self.record.update(state="halted", halt_reason="wave %r not approved"
                                   % wave["name"])
                self.save()
                return False
        if who is None:  # external: the Jenkins step (or a person) resumes with --approved-by
            self.record.update(state="awaiting_approval", next_wave=index,
                               halt_reason="waiting for approval of wave %r" % wave["name"])
            self.save()
            return False
        wave.update(approver=who, approved_at=utc_now())
        self.save()
        return True

    def question(self, wave):
        return "Roll out %s %s to wave %r (%d robots)?" % (
            self.name, self.version, wave["name"], len(wave["robots"]))

    # -- one wave --
    def run_wave(self, index, names):
        if self.opts.transport.deploys_waves:
            return self.run_whole_wave(index, names)
        return self.run_robot_wave(index, names)

    def run_robot_wave(self, index, names):
        t = self.opts.transport
        robots = [self.robots[n] for n in names]
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            checks = list(pool.map(lambda r: (r, self.timed(r, "preflight", lambda: self.prepare(r))),
                                   robots))
        ready, failures = [], 0
        for robot, res in checks:
            if res.get("ok"):
                ready.append((robot, res))
                self.set_robot(robot.name, previous=res.get("current"))
            else:
                outcome = self.refusal_outcome(res)
                failures += outcome in self.FAILED
                self.set_robot(robot.name, outcome=outcome, error=res.get("error"),
                               previous=res.get("current"))
        owner = self.record["id"]
        if crossed(self.opts.max_failures, failures, len(self.record["waves"][index]["robots"])):
            # Halt before any byte is sent: give the leases back untouched.
            with ThreadPoolExecutor(self.opts.concurrency) as pool:
                list(pool.map(lambda rr: t.release(rr[0], owner), ready))
            for robot, _ in ready:
                self.set_robot(robot.name, outcome="skipped",
                               error="wave halted at preflight: %d robots refused" % failures)
            return failures
        wave_bytes = sum(int(rr[1].get("needed_bytes") or 0) for rr in ready)
        with Progress("wave %d" % index, wave_bytes) as progress, \
                ThreadPoolExecutor(self.opts.concurrency) as pool:
            progress_lock = threading.Lock()

            def on_bytes(n):
                if self.stopping.is_set():
                    raise Interrupted()
                with progress_lock:
                    progress.update(n)

            outcomes = list(pool.map(lambda rr: self.apply(rr[0], rr[1], owner, on_bytes),
                                     ready))
        return failures + sum(1 for o in outcomes if o in self.FAILED)

    def refusal_outcome(self, res):
        status = res.get("status")
        outcome = AGENT_STATUS_OUTCOME.get(status, status)
        return outcome if outcome in self.FAILED + NOT_DONE else "refused"

    def prepare(self, robot):
        """Preflight with the lease; a downgrade without --allow-downgrade is refused here."""
        res = self.opts.transport.preflight(robot, self.manifest_bytes, self.record["id"],
                                            self.signature, self.fleet_lock.superseded)
        if res.get("ok") and not self.opts.allow_downgrade and \
                is_downgrade(res.get("current"), self.version):
            self.opts.transport.release(robot, self.record["id"])
            return {"ok": False, "status": "refused", "current": res.get("current"),
                    "error": "robot runs %s, newer than %s: a downgrade needs "
                    "--allow-downgrade" % (res.get("current"), self.version)}
        return res

    def run_whole_wave(self, index, names):
        """A transport that deploys whole waves (Ansible: one play) reports outcomes per robot."""
        size = len(self.record["waves"][index]["robots"])
        kind, value = self.opts.max_failures
        percent = value if kind == "percent" else 100.0 * value / max(size, 1)
        started = time.monotonic()
        results = self.opts.transport.deploy_wave(
            self.inventory, [self.robots[n] for n in names], self.package_dir, self.version,
            self.record["id"], percent, allow_downgrade=self.opts.allow_downgrade,
            supersede=self.fleet_lock.superseded)
        failures = 0
        for name, res in results.items():
            outcome = res.get("outcome")
            outcome = outcome if outcome in self.DONE + self.FAILED + NOT_DONE + ("skipped",) else "failed"
            failures += outcome in self.FAILED
            self.set_robot(name, outcome=outcome, error=None if outcome in self.DONE else
                           res.get("error") or "no reason given by the play",
                           previous=res.get("previous"), health=res.get("health"),
                           bytes_sent=None, rolled_back_to=res.get("rolled_back_to"))
            self.timing(name, "wave", started)
        return failures

    def apply(self, robot, pre, owner, on_bytes=None):
        """Deliver (unless staged) and activate; never `done` without the target's health."""
        t = self.opts.transport
        version = self.version
        self.track(1)
        try:
            if pre.get("current") != version:
                self.set_robot(robot.name, outcome="transferring")
                started = time.monotonic()
                try:
                    res, sent, attempts = t.deliver(robot, self.package_dir, self.manifest, owner,
                                                    pre, on_bytes)
                except Interrupted:
                    self.set_robot(robot.name, outcome="interrupted",
                                   error="transfer stopped: %s" % self.stop_reason)
                    return "interrupted"
                self.set_robot(robot.name, bytes_sent=(self.robot_entry(robot.name)["bytes_sent"]
                                                       or 0) + sent, attempts=attempts)
                self.timing(robot.name, "transfer", started)
                if res.get("push_seconds") is not None:
                    with self.lock:
                        self.robot_entry(robot.name)["timings"]["send"] = res["push_seconds"]
                if not res.get("ok"):
                    outcome = res.get("status") if res.get("status") in self.FAILED else "failed"
                    self.set_robot(robot.name, outcome=outcome, error=res.get("error"))
                    return outcome
            if self.stopping.is_set():
                self.set_robot(robot.name, outcome="interrupted",
                               error="staged, not activated: %s" % self.stop_reason)
                return "interrupted"
            self.set_robot(robot.name, outcome="activating")
            started = time.monotonic()
            res = t.activate(robot, version, owner)
            self.timing(robot.name, "activate", started)
            return self.activation_outcome(robot.name, res, "activated")
        finally:
            t.release(robot, owner)
            self.track(-1)

    def activation_outcome(self, name, res, done):
        """Name what an activate/rollback answer left the robot on, with its reason."""
        if res.get("ok"):
            outcome = "already-current" if res.get("already") else done
            self.set_robot(name, outcome=outcome, error=None, health=res.get("health"))
            return outcome
        if res.get("status") == "busy":
            self.set_robot(name, outcome="deferred", error=res.get("error"))
            return "deferred"
        back = res.get("rolled_back_to")
        if back:
            ok = (res.get("rollback_health") or {}).get("ok")
            outcome = "rolled-back" if ok else "rollback-failed"
        else:
            outcome = res.get("status") if res.get("status") in self.FAILED else "failed"
        self.set_robot(name, outcome=outcome, error=res.get("error"), rolled_back_to=back,
                       health=res.get("health"))
        return outcome

    def roll_back_wave(self, wave, reason):
        """Return the robots of a halted wave that did activate to their previous release."""
        t = self.opts.transport
        owner = self.record["id"]
        names = [n for n in wave["robots"] if self.robot_entry(n)["outcome"] in self.DONE
                 and self.robot_entry(n).get("previous")
                 and self.robot_entry(n)["previous"] != self.version]

        def back(name):
            to = self.robot_entry(name)["previous"]
            lease = t.acquire(self.robots[name], owner)
            res = t.rollback(self.robots[name], owner, to=to) if lease.get("ok") else lease
            t.release(self.robots[name], owner)
            if res.get("ok"):
                self.set_robot(name, outcome="rolled-back", rolled_back_to=to,
                               error="rolled back to %s with its wave: %s" % (to, reason))
            else:
                self.set_robot(name, outcome="rollback-failed", rolled_back_to=to,
                               error="wave rollback to %s failed (%s): %s"
                               % (to, reason, res.get("error")))

        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            list(pool.map(back, names))

    def timed(self, robot, step, fn):
        started = time.monotonic()
        res = fn()
        if self.record:
            self.timing(robot.name, step, started)
        return res

    def timing(self, name, step, started):
        with self.lock:
            self.record["robots"][name]["timings"][step] = round(time.monotonic() - started, 3)

    def dry_run(self):
        """Plan the waves and run a read-only preflight of every robot (no lease, no transfer);
        shows the signature check and who holds the fleet lock."""
        from pytools.fleet.fleet_lock import show
        waves = self.plan
        t = self.opts.transport
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            checks = dict(pool.map(lambda r: (r.name, t.preflight(r, self.manifest_bytes, None,
                                                                  self.signature)),
                                   self.robots.values()))
        lock_host, lock = show(t, list(self.robots.values()))
        preflight = {}
        for n, c in checks.items():
            if c.get("ok") and not self.opts.allow_downgrade and \
                    is_downgrade(c.get("current"), self.version):
                c = dict(c, ok=False, status="refused", error="downgrade from %s needs "
                         "--allow-downgrade" % c.get("current"))
            preflight[n] = {"ok": c.get("ok"), "status": c.get("status"),
                            "error": c.get("error"), "current": c.get("current"),
                            "signature": c.get("signature"), "staged": c.get("staged"),
                            "needed_bytes": c.get("needed_bytes")}
        failed = [n for n, c in preflight.items() if not c["ok"] and c["status"] != "busy"]
        return {"dry_run": True, "name": self.name, "version": self.version, "waves": waves,
                "preflight": preflight, "state": "planned",
                "fleet_lock": {"robot": lock_host, "holder": lock.get("lock") if lock.get("ok")
                               else None, "error": None if lock.get("ok") else lock.get("error")},
                "exit_code": EXIT_HALTED if failed else 0}


def tty_prompt(question):
    if not sys.stdin.isatty():
        return None
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
