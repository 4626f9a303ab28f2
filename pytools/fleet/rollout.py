"""Staged rollout of one package version to a fleet.

For each wave: preflight every robot of the wave (this takes each robot's deployment lease) and
stop before any transfer if too many refuse; then transfer + verify + activate in parallel
(bounded); count failures against the wave's threshold; halt (optionally rolling the whole wave
back) when it is crossed. Between waves an approval gate asks a person (prompt), takes `--yes`,
or pauses the rollout for an external approver (the Jenkins step) to `--resume --approved-by`.

Everything is written to a rollout record (JSON, replaced atomically after every change) under
`<workdir>/rollouts/`, which is also what `--resume` continues from.
"""
import fcntl
import getpass
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pytools.core.console import Progress
from pytools.core.errors import CheckError, PytoolsError
from pytools.core.files import atomic_write_json
from pytools.core.package import MANIFEST, utc_now, verify_package
from pytools.core.workdir import ROLLOUTS_DIR
from pytools.fleet.inventory import load_inventory
from pytools.fleet.transports.ssh import SSHTransport
from pytools.fleet.waves import DEFAULT_WAVES, crossed, parse_threshold, plan_waves

DONE = ("activated", "already-current")
FAILED = ("failed", "rolled-back", "refused", "locked", "unreachable", "hostkey")
EXIT_AWAITING_APPROVAL = 4


class Options:
    def __init__(self, waves=DEFAULT_WAVES, max_failures="0", rollback_wave=False,
                 approval="prompt", approver=None, concurrency=8, dry_run=False, resume=False,
                 transport=None, prompt=None):
        self.waves, self.max_failures = waves, parse_threshold(max_failures)
        self.rollback_wave, self.approval, self.approver = rollback_wave, approval, approver
        self.concurrency, self.dry_run, self.resume = max(int(concurrency), 1), dry_run, resume
        self.transport = transport or SSHTransport()
        self.prompt = prompt


def record_path(workdir, name, version):
    return os.path.join(workdir, ROLLOUTS_DIR, "%s-%s.json" % (name, version))


class Rollout:
    def __init__(self, name, version, inventory, package_dir, workdir, options):
        self.name, self.version = name, version
        self.inventory = os.path.abspath(inventory)
        self.package_dir = os.path.abspath(package_dir)
        self.opts = options
        self.path = record_path(workdir, name, version)
        self.lock = threading.Lock()
        self.robots = {r.name: r for r in load_inventory(inventory)}
        self.manifest = verify_package(self.package_dir)
        if (self.manifest["name"], self.manifest["version"]) != (name, version):
            raise CheckError("package %s is %s %s, not %s %s"
                             % (package_dir, self.manifest["name"], self.manifest["version"],
                                name, version))
        with open(os.path.join(self.package_dir, MANIFEST), "rb") as f:
            self.manifest_bytes = f.read()
        self.external_approver = options.approver
        self.plan = plan_waves(list(self.robots.values()), options.waves)
        self.record = None

    # -- the record --
    def save(self):
        with self.lock:
            self.record["updated"] = utc_now()
            atomic_write_json(self.path, self.record)

    def robot_entry(self, name):
        return self.record["robots"][name]

    def set_robot(self, name, **fields):
        with self.lock:
            self.record["robots"][name].update(fields)
        self.save()

    def new_record(self):
        waves = [dict(w) for w in self.plan]
        robots = {}
        for i, wave in enumerate(waves):
            for n in wave["robots"]:
                robots[n] = {"wave": i, "outcome": "pending", "error": None, "bytes_sent": 0,
                             "timings": {}, "previous": None, "attempts": 0}
        for wave in waves:
            wave.update(state="pending", approver=None, approved_at=None, started=None,
                        finished=None, failures=0)
        return {"id": "%s-%s-%s" % (self.name, self.version, uuid.uuid4().hex[:8]),
                "name": self.name, "version": self.version, "inventory": self.inventory,
                "package": self.package_dir, "package_sha256": self.manifest_sha(),
                "workdir": os.path.dirname(os.path.dirname(os.path.abspath(self.path))),
                "created": utc_now(), "updated": None, "state": "running", "next_wave": 0,
                "options": {"waves": self.opts.waves, "max_failures": list(self.opts.max_failures),
                            "rollback_wave": self.opts.rollback_wave,
                            "transport": self.opts.transport.kind()},
                "waves": waves, "robots": robots, "halt_reason": None}

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
            self.record = self.load_or_create()
            self.save()
            return self.run_waves()
        finally:
            os.close(lock_fd)

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
            pending = [r["wave"] for r in existing["robots"].values() if r["outcome"] not in DONE]
            existing.update(state="running", halt_reason=None,
                            next_wave=min(pending) if pending else len(existing["waves"]))
            return existing
        if existing and existing.get("state") not in ("completed",):
            raise PytoolsError("rollout %s is %s; continue it with --resume (record: %s)"
                               % (existing.get("id"), existing.get("state"), self.path))
        return self.new_record()

    def run_waves(self):
        rec = self.record
        for index in range(rec["next_wave"], len(rec["waves"])):
            wave = rec["waves"][index]
            todo = [n for n in wave["robots"] if self.robot_entry(n)["outcome"] not in DONE]
            if index > 0 and wave["approver"] is None and todo:
                if not self.approve(index):
                    return rec
            rec["next_wave"] = index
            wave.update(state="running", started=wave["started"] or utc_now())
            self.save()
            failures = self.run_wave(index, todo)
            wave.update(finished=utc_now(), failures=failures)
            if crossed(self.opts.max_failures, failures, len(wave["robots"])):
                if self.opts.rollback_wave:
                    self.roll_back_wave(wave)
                wave["state"] = "halted"
                rec.update(state="halted", halt_reason="wave %r: %d of %d robots failed"
                           % (wave["name"], failures, len(wave["robots"])))
                self.save()
                return rec
            wave["state"] = "done"
            rec["next_wave"] = index + 1
            self.save()
        deferred = [n for n, r in rec["robots"].items() if r["outcome"] == "deferred"]
        rec["state"] = "completed" if not deferred else "completed-with-deferred"
        self.save()
        return rec

    def approve(self, index):
        wave = self.record["waves"][index]
        opts = self.opts
        question = "Roll out %s %s to wave %r (%d robots)?" % (
            self.name, self.version, wave["name"], len(wave["robots"]))
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

    # -- one wave --
    def run_wave(self, index, names):
        t = self.opts.transport
        if t.deploys_waves:
            return self.run_whole_wave(index, names)
        robots = [self.robots[n] for n in names]
        owner = self.record["id"]
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            checks = list(pool.map(lambda r: (r, self.timed(
                r, "preflight", lambda: t.preflight(r, self.manifest_bytes, owner))), robots))
        ready, failures = [], 0
        for robot, res in checks:
            if res.get("ok"):
                ready.append((robot, res))
                self.set_robot(robot.name, previous=res.get("current"))
            else:
                outcome = {"busy": "deferred"}.get(res.get("status"), res.get("status"))
                outcome = outcome if outcome in FAILED + ("deferred",) else "refused"
                failures += outcome != "deferred"
                self.set_robot(robot.name, outcome=outcome, error=res.get("error"))
        if crossed(self.opts.max_failures, failures, len(self.record["waves"][index]["robots"])):
            # Halt before any byte is sent: give the leases back untouched.
            with ThreadPoolExecutor(self.opts.concurrency) as pool:
                list(pool.map(lambda rr: t.release(rr[0], owner), ready))
            for robot, _ in ready:
                self.set_robot(robot.name, outcome="skipped",
                               error="wave halted at preflight")
            return failures
        wave_bytes = sum(int(rr[1].get("needed_bytes") or 0) for rr in ready)
        with Progress("wave %d" % index, wave_bytes) as progress, \
                ThreadPoolExecutor(self.opts.concurrency) as pool:
            progress_lock = threading.Lock()

            def on_bytes(n):
                with progress_lock:
                    progress.update(n)

            outcomes = list(pool.map(lambda rr: self.deploy_one(rr[0], rr[1], owner, on_bytes),
                                     ready))
        return failures + sum(1 for o in outcomes if o in FAILED)

    def run_whole_wave(self, index, names):
        """A transport that deploys whole waves (Ansible: one play) reports outcomes per robot."""
        size = len(self.record["waves"][index]["robots"])
        kind, value = self.opts.max_failures
        percent = value if kind == "percent" else 100.0 * value / max(size, 1)
        started = time.monotonic()
        results = self.opts.transport.deploy_wave(
            self.inventory, [self.robots[n] for n in names], self.package_dir, self.version,
            self.record["id"], percent)
        failures = 0
        for name, res in results.items():
            outcome = res.get("outcome")
            outcome = outcome if outcome in DONE + FAILED + ("deferred", "skipped") else "failed"
            failures += outcome in FAILED
            self.set_robot(name, outcome=outcome, error=None if res.get("ok") else
                           res.get("error"), previous=res.get("previous"),
                           health=res.get("health"), bytes_sent=None)
            self.timing(name, "wave", started)
        return failures

    def deploy_one(self, robot, pre, owner, on_bytes=None):
        t = self.opts.transport
        version = self.version
        try:
            if pre.get("current") == version:
                self.set_robot(robot.name, outcome="already-current", error=None)
                return "already-current"
            self.set_robot(robot.name, outcome="transferring")
            started = time.monotonic()
            res, sent, attempts = t.deliver(robot, self.package_dir, self.manifest, owner,
                                            pre.get("incoming"), on_bytes)
            self.set_robot(robot.name, bytes_sent=(self.robot_entry(robot.name)["bytes_sent"] or 0)
                           + sent, attempts=attempts)
            self.timing(robot.name, "transfer", started)
            if res.get("push_seconds") is not None:
                with self.lock:
                    self.robot_entry(robot.name)["timings"]["send"] = res["push_seconds"]
            if not res.get("ok"):
                outcome = res.get("status") if res.get("status") in FAILED else "failed"
                self.set_robot(robot.name, outcome=outcome, error=res.get("error"))
                return outcome
            started = time.monotonic()
            res = t.activate(robot, version, owner)
            self.timing(robot.name, "activate", started)
            if res.get("ok"):
                self.set_robot(robot.name, outcome="activated", error=None,
                               health=res.get("health"))
                return "activated"
            if res.get("status") == "busy":
                self.set_robot(robot.name, outcome="deferred", error=res.get("error"))
                return "deferred"
            outcome = "rolled-back" if res.get("rolled_back_to") else "failed"
            self.set_robot(robot.name, outcome=outcome, error=res.get("error"),
                           rolled_back_to=res.get("rolled_back_to"))
            return outcome
        finally:
            t.release(robot, owner)

    def roll_back_wave(self, wave):
        """Return the robots of a halted wave that did activate to their previous release."""
        t = self.opts.transport
        owner = self.record["id"]
        names = [n for n in wave["robots"] if self.robot_entry(n)["outcome"] == "activated"
                 and self.robot_entry(n).get("previous")]

        def back(name):
            res = t.rollback(self.robots[name], owner, to=self.robot_entry(name)["previous"])
            self.set_robot(name, outcome="rolled-back" if res.get("ok") else "failed",
                           error=None if res.get("ok") else res.get("error"),
                           rolled_back_to=self.robot_entry(name)["previous"])

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
        """Plan the waves and run a read-only preflight of every robot (no lease, no transfer)."""
        waves = self.plan
        t = self.opts.transport
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            checks = dict(pool.map(lambda r: (r.name, t.preflight(r, self.manifest_bytes)),
                                   self.robots.values()))
        return {"dry_run": True, "name": self.name, "version": self.version, "waves": waves,
                "preflight": {n: {"ok": c.get("ok"), "status": c.get("status"),
                                  "error": c.get("error"), "current": c.get("current")}
                              for n, c in checks.items()},
                "state": "planned"}


def tty_prompt(question):
    if not sys.stdin.isatty():
        return None
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
