#!/usr/bin/env python3
"""The on-robot model agent: one stdlib-only file that runs on Python 3.6+.

It owns the model root on a robot:

    <root>/releases/<version>/   verified packages (manifest.json + model files)
    <root>/incoming/<version>/   packages being received; partial files are kept for resume
    <root>/current               symlink to releases/<version>, swapped by rename (never absent)
    <root>/state.json            current/previous version, last deployment
    <root>/audit.log             append-only JSON lines, one per action
    <root>/deploy.lease          the deployment lease: one rollout at a time per robot
    <root>/activation.json       the activation journal: written before `current` is switched,
                                 removed once the health check passed or the switch was reverted
    <root>/fleet.lock            the fleet-wide rollout lock, on the fleet's lock robot only
    <root>/.agent.lock           flock held for the short critical sections
    <root>/.activation.lock      flock held by the process that is activating

Every command first finishes or reverts an activation whose agent died (reboot, kill) between
switching `current` and its health check (`recover` does only that, for boot).

Every command prints one JSON object on stdout; exit status 0 means "ok", 1 a refusal or
failure (the JSON says why), 2 a usage error. The controller (SSH, Ansible or an operator)
never edits the root itself: it copies files into incoming/ and calls this agent.
"""
# Modules only some commands need are imported inside them: every `status` query pays for
# whatever is imported here, on every robot.
import argparse
import contextlib
import fcntl
import json
import os
import re
import sys
import time

SCHEMA = "model-cicd/package@1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
CHUNK = 1 << 20
DEFAULTS = {
    "root": "/var/lib/model-agent",
    "facts": {"runtimes": ["onnxruntime"], "onnx_opset_max": 21},
    "public_key": None,
    "require_signature": False,
    "busy_file": None,
    "busy_command": None,
    "restart_command": None,
    "health_url": None,
    "health_command": None,
    "health_timeout": 30,
    "retention": 3,
    "min_free_bytes": 0,
    "lease_ttl": 3600,
}
# Commands that change the robot: their refusals go to the audit log too.
AUDITED = ("preflight", "stage", "activate", "rollback", "discard", "lease", "fleet_lock")


class Refused(Exception):
    """An expected refusal: reported as JSON with `status` (busy, locked, refused, failed)."""

    def __init__(self, status, message, **extra):
        Exception.__init__(self, message)
        self.status, self.extra = status, extra


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- configuration and layout -------------------------------------------------------------------

class Agent(object):
    def __init__(self, config):
        self.cfg = dict(DEFAULTS)
        self.cfg.update(config)
        self.root = os.path.abspath(self.cfg["root"])
        self.releases = os.path.join(self.root, "releases")
        self.incoming = os.path.join(self.root, "incoming")
        self.current = os.path.join(self.root, "current")
        self.state_path = os.path.join(self.root, "state.json")
        self.audit_path = os.path.join(self.root, "audit.log")
        self.lease_path = os.path.join(self.root, "deploy.lease")
        self.journal_path = os.path.join(self.root, "activation.json")
        self.fleet_lock_path = os.path.join(self.root, "fleet.lock")
        for d in (self.releases, self.incoming):
            if not os.path.isdir(d):
                os.makedirs(d)

    @contextlib.contextmanager
    def locked(self):
        """Serialise state changes between concurrent agent processes on this robot."""
        fd = os.open(os.path.join(self.root, ".agent.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- state and audit --
    def read_state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return {"current": self.current_version(), "previous": None, "last_deployment": None}

    def write_state(self, state):
        atomic_write(self.state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    def audit(self, action, **fields):
        record = {"at": now_iso(), "action": action}
        record.update(fields)
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        # O_APPEND makes each record one write at the end, even with concurrent writers. On a
        # full disk the entry is lost but the command (freeing space, say) still runs.
        with tolerate_full_disk():
            fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def current_version(self):
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None

    def release_dir(self, version):
        check_version(version)
        return os.path.join(self.releases, version)

    def incoming_dir(self, version):
        check_version(version)
        return os.path.join(self.incoming, version)

    # -- the deployment lease --
    def read_lease(self):
        try:
            with open(self.lease_path) as f:
                lease = json.load(f)
        except (IOError, OSError, ValueError):
            return None
        if lease.get("expires", 0) < time.time():
            return None
        return lease

    def check_lease(self, owner, supersede=()):
        """Refuse when another deployment holds the lease; callers hold self.locked().
        The holder's own steps extend it, so a long transfer does not outlive its lease. A lease
        of a rollout in `supersede` (one whose fleet lock expired or was broken: its controller
        is gone) is taken over."""
        lease = self.read_lease()
        if lease and lease.get("owner") != owner and lease.get("owner") in supersede:
            self.audit("lease-superseded", owner=owner, superseded=lease.get("owner"))
            os.unlink(self.lease_path)
            lease = None
        if lease and lease.get("owner") != owner:
            raise Refused("locked", "robot is locked by deployment %r since %s"
                          % (lease.get("owner"), lease.get("acquired")), lease=lease)
        if lease:
            lease["expires"] = time.time() + float(self.cfg["lease_ttl"])
            with tolerate_full_disk():  # the lease stands until its old expiry
                atomic_write(self.lease_path, json.dumps(lease).encode())
        return lease

    def acquire_lease(self, owner, supersede=()):
        self.check_lease(owner, supersede)
        lease = {"owner": owner, "acquired": now_iso(), "pid": os.getpid(),
                 "expires": time.time() + float(self.cfg["lease_ttl"])}
        atomic_write(self.lease_path, json.dumps(lease).encode())
        return lease

    def release_lease(self, owner):
        lease = self.read_lease()
        if lease and lease.get("owner") != owner:
            raise Refused("locked", "lease is held by %r, not %r" % (lease.get("owner"), owner))
        if os.path.exists(self.lease_path):
            os.unlink(self.lease_path)

    # -- checks --
    def busy(self):
        """True when the robot is at work; a deployment then waits (it is never interrupted)."""
        path = self.cfg.get("busy_file")
        if path and os.path.exists(path):
            with open(path) as f:
                if f.read().strip().lower() not in ("", "idle"):
                    return True
        cmd = self.cfg.get("busy_command")
        if cmd:
            return run_command(cmd, 30)[0] == 0
        return False

    def refuse_if_busy(self):
        if self.busy():
            raise Refused("busy", "robot is busy (mission in progress); deployment deferred")

    def platform_problems(self, manifest):
        facts = self.cfg.get("facts") or {}
        runtime = manifest.get("runtime") or {}
        kind = runtime.get("kind")
        cons = runtime.get("constraints") or {}
        problems = []
        if kind not in (facts.get("runtimes") or []):
            problems.append("runtime %r is not available on this robot (has %s)"
                            % (kind, ", ".join(facts.get("runtimes") or []) or "none"))
            return problems
        if kind == "tensorrt":
            want, have = cons.get("tensorrt_version"), facts.get("tensorrt_version")
            if want and (not have or major_minor(want) != major_minor(have)):
                problems.append("TensorRT %s engine cannot run on TensorRT %s" % (want, have))
            want, have = cons.get("compute_capability"), facts.get("compute_capability")
            if want and str(want) != str(have):
                problems.append("engine built for compute capability %s, robot GPU is %s"
                                % (want, have))
            want, have = cons.get("l4t_release"), facts.get("l4t_release")
            if want and str(want) != str(have):
                problems.append("engine built for L4T %s, robot runs L4T %s" % (want, have))
            # A CUDA runtime runs code built with an older minor of its major, not a newer one.
            want, have = cons.get("cuda_version"), facts.get("cuda_version")
            if want and (not have or not cuda_compatible(want, have)):
                problems.append("engine built with CUDA %s cannot run on CUDA %s" % (want, have))
        elif kind == "onnxruntime":
            opset, limit = cons.get("onnx_opset"), facts.get("onnx_opset_max")
            if opset and limit and int(opset) > int(limit):
                problems.append("model needs ONNX opset %s, robot runtime supports <= %s"
                                % (opset, limit))
        return problems

    def bytes_needed(self, manifest, version):
        """Bytes still to be written for `version`, counting partial files kept for resume."""
        have_dir = self.release_dir(version)
        if os.path.isdir(have_dir):
            return 0
        inc = self.incoming_dir(version)
        needed = 0
        for entry in manifest.get("files") or []:
            size = int(entry.get("size") or 0)
            part = os.path.join(inc, safe_relpath(entry.get("path")))
            have = os.path.getsize(part) if os.path.isfile(part) else 0
            needed += max(size - have, 0)
        return needed

    # -- commands --
    def cmd_status(self, args):
        state = self.read_state()
        current = self.current_version()
        releases = sorted(os.listdir(self.releases))
        staging = sorted(os.listdir(self.incoming))
        health = self.health(current, timeout=args.health_timeout) if current else None
        return {"ok": True, "status": "ok", "current": current, "previous": state.get("previous"),
                "releases": releases, "incoming": staging, "busy": self.busy(),
                "lease": self.read_lease(), "health": health,
                "last_deployment": state.get("last_deployment"), "facts": self.cfg.get("facts"),
                "free_bytes": disk_free(self.root), "hostname": os.uname()[1],
                "recovered": self.recovered,
                "fleet_lock": self.read_fleet_lock() if os.path.exists(self.fleet_lock_path)
                else None}

    def cmd_preflight(self, args):
        manifest_data = load_arg_bytes(args.manifest)
        try:
            manifest = json.loads(manifest_data.decode())
        except ValueError as exc:
            raise Refused("refused", "manifest is not JSON: %s" % exc)
        version = manifest.get("version")
        check_version(version)
        supersede = [o for o in (args.supersede or "").split(",") if o]
        if (self.recovered or {}).get("in_progress"):
            # Another activation is running (its controller may be gone): judge the robot once
            # it has ended, and finish or revert it if its process died meanwhile.
            with self.activation_flock(blocking=True):
                pass
            self.recovered = self.recover()
        current = self.current_version()
        # A robot already failing is reported as such, not blamed on the new version (polled
        # outside the lock: it may take the health timeout).
        health = self.health(current, timeout=float(args.health_timeout)) if current else None
        with self.locked():
            if args.owner:
                self.check_lease(args.owner, supersede)
            self.refuse_if_busy()
            problems = self.platform_problems(manifest)
            if problems:
                raise Refused("refused", "; ".join(problems), problems=problems)
            # Only the manifest and its signature (a few KB) have moved so far.
            signature = self.check_signature_bytes(manifest_data, args.signature)
            needed = self.bytes_needed(manifest, version)
            free = disk_free(self.root)
            reserve = int(self.cfg.get("min_free_bytes") or 0)
            if needed + reserve > free:
                raise Refused("refused", "not enough disk: package needs %d bytes (+%d reserve),"
                              " %d free" % (needed, reserve, free), needed_bytes=needed,
                              free_bytes=free)
            if health is not None and not health["ok"] and current != version:
                raise Refused("unhealthy", "robot was unhealthy before the rollout (on %s): %s"
                              % (current, health.get("error")), current=current, health=health)
            lease = self.acquire_lease(args.owner, supersede) if args.owner else None
        if args.owner:
            self.audit("preflight", version=version, owner=args.owner, needed_bytes=needed)
        return {"ok": True, "status": "ok", "version": version, "needed_bytes": needed,
                "free_bytes": free, "lease": lease, "current": current,
                "current_health": health, "signature": signature,
                "incoming": self.incoming_dir(version),
                "staged": os.path.isdir(self.release_dir(version))}

    def cmd_stage(self, args):
        version = args.version
        with self.locked():
            self.check_lease(args.owner)
            dest = self.release_dir(version)
            if os.path.isdir(dest):
                # Staged before (a deferral, a rollback): verified in place, never sent again.
                manifest = self.verify_dir(dest, version)
                self.drop_incoming(version)
                return {"ok": True, "status": "ok", "version": version, "already": True,
                        "files": len(manifest["files"]), "downloaded_bytes": 0}
        inc = self.incoming_dir(version)
        if not os.path.isdir(inc):
            os.makedirs(inc)
        downloaded = 0
        if args.url:
            downloaded = download_package(args.url, inc, self.cfg, args.timeout)
        with self.locked():
            self.check_lease(args.owner)
            try:
                manifest = self.verify_dir(inc, version, drop_bad=True)
            except Refused as exc:
                if exc.status == "refused":  # a package this robot never takes: no resume
                    self.drop_incoming(version)
                raise
            if not os.path.isdir(dest):
                os.rename(inc, dest)
            fsync_dir(self.releases)
        self.audit("stage", version=version, owner=args.owner, result="ok")
        return {"ok": True, "status": "ok", "version": version, "already": False,
                "files": len(manifest["files"]), "downloaded_bytes": downloaded}

    def cmd_discard(self, args):
        """Remove the partial download of VERSION (after a full disk)."""
        with self.locked():
            self.check_lease(args.owner)
            removed = self.drop_incoming(args.version)
        self.audit("discard", version=args.version, owner=args.owner, removed=removed)
        return {"ok": True, "status": "ok", "removed": removed, "free_bytes": disk_free(self.root)}

    def drop_incoming(self, version):
        import shutil
        inc = self.incoming_dir(version)
        if os.path.isdir(inc):
            shutil.rmtree(inc)
            return True
        return False

    def verify_dir(self, d, version, drop_bad=False):
        """Check manifest, signature and every file; with drop_bad, delete corrupt files so the
        next transfer starts them again instead of resuming after a bad prefix."""
        mpath = os.path.join(d, MANIFEST)
        try:
            with open(mpath, "rb") as f:
                data = f.read()
            manifest = json.loads(data.decode())
        except (IOError, OSError, ValueError) as exc:
            raise Refused("failed", "package manifest missing or unreadable: %s" % exc)
        if manifest.get("schema") != SCHEMA or manifest.get("version") != version:
            raise Refused("refused", "manifest is not a %s manifest for version %s"
                          % (SCHEMA, version))
        self.check_signature(d, data)
        listed, bad = set(), []
        for entry in manifest.get("files") or []:
            rel = safe_relpath(entry.get("path"))
            listed.add(rel)
            full = os.path.join(d, rel)
            if os.path.islink(full) or not os.path.isfile(full):
                bad.append({"path": rel, "problem": "missing"})
                continue
            size = os.path.getsize(full)
            if size != entry.get("size"):
                bad.append({"path": rel, "problem": "size %d != %s" % (size, entry.get("size"))})
                if drop_bad and size > entry.get("size", 0):
                    os.unlink(full)
                continue
            if sha256_file(full) != entry.get("sha256"):
                bad.append({"path": rel, "problem": "sha256 mismatch"})
                if drop_bad:
                    os.unlink(full)
        for dirpath, dirnames, filenames in os.walk(d):
            for name in filenames + dirnames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, d).replace(os.sep, "/")
                if os.path.islink(full):
                    raise Refused("refused", "package contains a symlink: %s" % rel)
                if os.path.isfile(full) and rel not in listed and rel not in (MANIFEST, SIGNATURE):
                    bad.append({"path": rel, "problem": "not in manifest"})
                    if drop_bad:
                        os.unlink(full)
        if bad:
            raise Refused("failed", "package verification failed: %s" % ", ".join(
                "%s (%s)" % (b["path"], b["problem"]) for b in bad), bad_files=bad)
        return manifest

    def check_signature(self, d, data):
        sig_path = os.path.join(d, SIGNATURE)
        sig = None
        if os.path.isfile(sig_path):
            with open(sig_path, "rb") as f:
                sig = f.read().decode("ascii", "replace")
        self.check_signature_bytes(data, sig)

    def check_signature_bytes(self, manifest_data, sig_text):
        """Check the detached signature (base64 text or None) of the manifest bytes; returns
        what was checked: "verified" or "not required"."""
        key = self.cfg.get("public_key")
        if not key:
            if self.cfg.get("require_signature"):
                raise Refused("refused", "signatures are required but no public_key is configured")
            return "not required"
        if not sig_text:
            raise Refused("refused", "package is not signed (no %s)" % SIGNATURE)
        import base64
        import binascii
        import tempfile
        try:
            raw = base64.b64decode(sig_text.strip(), validate=True)
        except (ValueError, TypeError, binascii.Error):
            raise Refused("refused", "signature is not base64")
        paths = []
        try:
            for blob in (raw, manifest_data):
                tmp = tempfile.NamedTemporaryFile(prefix="sig-", delete=False)
                paths.append(tmp.name)
                tmp.write(blob)
                tmp.close()
            code, out = run_command(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", key,
                                     "-rawin", "-in", paths[1], "-sigfile", paths[0]], 60)
        finally:
            for path in paths:
                os.unlink(path)
        if code != 0:
            raise Refused("refused", "package signature does not match its manifest "
                          "(tampered or signed with another key)")
        return "verified"

    # -- activation: journaled, so a crash between switch and health check is finished or
    #    reverted by the next agent call --
    def cmd_activate(self, args):
        version = args.version
        with self.locked():
            self.check_lease(args.owner)
            self.refuse_if_busy()
            if not os.path.isdir(self.release_dir(version)):
                raise Refused("failed", "version %s is not staged" % version)
            old = self.current_version()
        fallback = old if old != version else self.read_state().get("previous")
        result = self.transition(version, fallback, "activate", args.owner)
        if result["ok"]:
            # Keep the disk bounded after every good deployment; partial downloads of other
            # versions stay (another rollout of ours may resume them).
            with self.locked():
                result["removed"] = self.collect(keep_incoming=True)
            return result
        raise Refused("failed", "health check failed after activating %s: %s%s"
                      % (version, result["health"].get("error"), revert_note(result)),
                      **details(result))

    def cmd_rollback(self, args):
        with self.locked():
            self.check_lease(args.owner)
            self.refuse_if_busy()
            state = self.read_state()
            current = self.current_version()
            target = args.to or self.before_last_activation(state)
            if not target:
                raise Refused("failed", "no earlier release to roll back to (give --to VERSION)")
            if not os.path.isdir(self.release_dir(target)):
                raise Refused("failed", "release %s is not on this robot" % target)
        result = self.transition(target, current, "rollback", args.owner)
        if not result["ok"]:
            raise Refused("failed", "health check failed after rollback to %s: %s%s"
                          % (target, result["health"].get("error"), revert_note(result)),
                          **details(result))
        return result

    def before_last_activation(self, state):
        """What the robot ran before its last good activation: a rollback's default target.
        Asked again after that rollback it names the same version, so nothing toggles."""
        for entry in reversed(state.get("history") or []):
            if entry.get("action") == "activate" and entry.get("result") == "ok":
                return entry.get("previous")
        return state.get("previous")

    def transition(self, target, fallback, action, owner):
        """Run `target` (switch, restart, health) under the activation journal; if it is
        unhealthy, go back to `fallback`. A robot already on a healthy `target` is left alone."""
        with self.activation_flock(blocking=True):
            old = self.current_version()
            if old == target and self.health_once(target)[0]:
                self.audit(action, version=target, owner=owner, result="ok", already=True)
                return {"ok": True, "status": "ok", "version": target, "previous": old,
                        "already": True, "health": {"ok": True, "error": None}}
            self.write_journal({"action": action, "version": target, "fallback": fallback,
                                "from": old, "owner": owner, "started": now_iso(),
                                "pid": os.getpid()})
            result = self.run_journaled(target, fallback, action, owner, old)
            self.clear_journal()
        return result

    def run_journaled(self, target, fallback, action, owner, old, recovered=False):
        """Switch to `target` and check it; on failure revert to `fallback`. The journal is
        on disk for the whole call; callers hold the activation flock and clear it after."""
        started = time.time()
        if self.current_version() != target:
            with self.locked():
                self.switch(target)
        health = self.restart_and_check(target)
        result = {"version": target, "previous": old, "health": health, "recovered": recovered,
                  "activate_seconds": round(time.time() - started, 3)}
        if health["ok"]:
            self.record(target, old if old != target else fallback, action, "ok", owner,
                        recovered=recovered)
            self.audit(action, version=target, previous=old, owner=owner, result="ok",
                       recovered=recovered)
            result.update(ok=True, status="ok")
            return result
        reverted = None
        if fallback and fallback != target and os.path.isdir(self.release_dir(fallback)):
            with self.locked():
                self.switch(fallback)
            reverted = self.restart_and_check(fallback)
            self.record(fallback, None, "auto-rollback", "ok" if reverted["ok"] else "failed",
                        owner, failed_version=target, recovered=recovered)
        self.audit(action, version=target, previous=old, owner=owner, result="failed",
                   error=health.get("error"), rolled_back_to=fallback if reverted else None,
                   rollback_ok=reverted["ok"] if reverted else None, recovered=recovered)
        result.update(ok=False, status="failed", rolled_back_to=fallback if reverted else None,
                      rollback_health=reverted)
        return result

    @contextlib.contextmanager
    def activation_flock(self, blocking):
        """Held by the process that activates; a free flock with a journal on disk means that
        process died mid-activation. Yields False when not blocking and another holds it."""
        fd = os.open(os.path.join(self.root, ".activation.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except (IOError, OSError):
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def read_journal(self):
        try:
            with open(self.journal_path) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return None

    def write_journal(self, entry):
        atomic_write(self.journal_path, json.dumps(entry, sort_keys=True).encode())
        fsync_dir(self.root)

    def clear_journal(self):
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)
            fsync_dir(self.root)

    def recover(self):
        """Finish or revert an activation whose process died; None when there was none."""
        if not os.path.exists(self.journal_path):
            return None
        with self.activation_flock(blocking=False) as mine:
            if not mine:  # an activation is running right now: not ours to touch
                return {"in_progress": self.read_journal()}
            entry = self.read_journal()
            if entry is None:
                self.clear_journal()
                return None
            self.audit("recover", pending=entry)
            result = self.run_journaled(entry.get("version"), entry.get("fallback"),
                                        entry.get("action") or "activate", entry.get("owner"),
                                        entry.get("from"), recovered=True)
            self.clear_journal()
            return {"journal": entry, "result": "finished" if result["ok"] else (
                "reverted" if (result.get("rollback_health") or {}).get("ok") else
                "revert-failed"), "current": self.current_version()}

    def cmd_recover(self, args):
        return {"ok": True, "status": "ok", "recovered": self.recovered,
                "current": self.current_version()}

    def cmd_gc(self, args):
        with self.locked():
            if self.read_lease():
                raise Refused("locked", "a deployment is in progress; not collecting")
            removed = self.collect(keep_incoming=args.keep_incoming)
        self.audit("gc", removed=removed)
        return {"ok": True, "status": "ok", "removed": removed}

    def collect(self, keep_incoming):
        """Delete releases beyond the retention count (never current or previous) and, unless
        told to keep them, partial downloads. Callers hold self.locked()."""
        import shutil
        removed = []
        state = self.read_state()
        keep = {self.current_version(), state.get("previous")}
        by_recent = []
        for h in reversed(state.get("history") or []):
            if h.get("version") not in by_recent:
                by_recent.append(h.get("version"))
        keep.update(by_recent[:max(int(self.cfg.get("retention") or 1), 1)])
        for v in sorted(os.listdir(self.releases)):
            if v not in keep:
                shutil.rmtree(os.path.join(self.releases, v))
                removed.append("releases/" + v)
        if not keep_incoming:
            for v in sorted(os.listdir(self.incoming)):
                shutil.rmtree(os.path.join(self.incoming, v))
                removed.append("incoming/" + v)
        return removed

    # -- the fleet lock: one rollout per fleet, kept by the fleet's lock robot --
    def read_fleet_lock(self):
        try:
            with open(self.fleet_lock_path) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return {}

    def cmd_fleet_lock(self, args):
        """acquire (or renew as holder), renew (refused unless held), release, break, show.
        Callers are controllers; the lock expires `--ttl` seconds after its last renewal."""
        with self.locked():
            lock = self.read_fleet_lock()
            live = lock.get("owner") and lock.get("expires", 0) >= time.time()
            held = bool(live) and lock.get("owner") == args.owner
            if args.action == "show":
                return {"ok": True, "status": "ok", "lock": lock if live else None}
            if args.action == "break":
                if not live:
                    return {"ok": True, "status": "ok", "broken": None}
                self.write_fleet_lock(superseded(lock), None)
                self.audit("fleet-unlock", by=args.by, reason=args.reason, holder=lock)
                return {"ok": True, "status": "ok", "broken": lock}
            if args.action == "release":
                if held:
                    self.write_fleet_lock(lock.get("superseded") or [], None)
                    self.audit("fleet-lock-release", owner=args.owner)
                return {"ok": True, "status": "ok", "released": held}
            if live and not held:
                raise Refused("locked", "fleet is locked by rollout %s (%s %s, by %s on %s, "
                              "since %s, %s)" % (lock.get("owner"), lock.get("name"),
                                                 lock.get("version"), lock.get("who"),
                                                 lock.get("host"), lock.get("acquired"),
                                                 lock.get("state") or "running"), lock=lock)
            if args.action == "renew" and not held:
                raise Refused("lost", "fleet lock of %s is gone (expired or broken)"
                              % args.owner, lock=lock if live else None)
            info = json.loads(args.info) if args.info else {}
            entry = dict(lock if held else {}, **info)
            entry.update(owner=args.owner, renewed=now_iso(),
                         expires=time.time() + float(args.ttl))
            entry.setdefault("acquired", now_iso())
            was = lock.get("superseded") or []
            self.write_fleet_lock(was if held or not lock.get("owner") else superseded(lock),
                                  entry)
            if not held:
                self.audit("fleet-lock", owner=args.owner, info=info,
                           superseded=lock.get("owner"))
        return {"ok": True, "status": "ok", "lock": entry,
                "superseded": self.read_fleet_lock().get("superseded") or []}

    def write_fleet_lock(self, superseded_owners, entry):
        """The lock file always keeps the owners whose locks expired or were broken (last 20):
        the next holder may take over the robot leases they left behind."""
        data = dict(entry or {}, superseded=superseded_owners[-20:])
        atomic_write(self.fleet_lock_path, json.dumps(data, sort_keys=True).encode())

    def cmd_lease(self, args):
        with self.locked():
            if args.action == "acquire":
                supersede = [o for o in (args.supersede or "").split(",") if o]
                return {"ok": True, "status": "ok", "current": self.current_version(),
                        "lease": self.acquire_lease(args.owner, supersede)}
            self.release_lease(args.owner)
        return {"ok": True, "status": "ok", "lease": None}

    # -- helpers that change the robot --
    def switch(self, version):
        """Point `current` at releases/<version> by renaming a new link over it: at every moment
        `current` exists and names a complete release."""
        tmp = self.current + ".new-%d" % os.getpid()
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.join("releases", version), tmp)
        os.rename(tmp, self.current)
        fsync_dir(self.root)

    def record(self, version, previous, action, result, owner, **extra):
        state = self.read_state()
        if previous and previous != version:
            state["previous"] = previous
        state["current"] = self.current_version()
        entry = {"version": version, "action": action, "result": result, "at": now_iso(),
                 "owner": owner, "previous": previous}
        entry.update(extra)
        state["last_deployment"] = entry
        state["history"] = (state.get("history") or [])[-49:] + [entry]
        self.write_state(state)

    def restart_and_check(self, version):
        cmd = self.cfg.get("restart_command")
        if cmd:
            code, out = run_command(cmd, float(self.cfg["health_timeout"]))
            if code != 0:
                return {"ok": False, "error": "restart command exited %s: %s" % (code, out[-300:])}
        return self.health(version, timeout=float(self.cfg["health_timeout"]))

    def health(self, version, timeout):
        """Poll the configured health check until it passes for `version` or time runs out."""
        deadline = time.time() + timeout
        last = "no health check ran"
        while True:
            ok, last, detail = self.health_once(version)
            if ok or time.time() >= deadline:
                return {"ok": ok, "error": None if ok else last, "detail": detail}
            time.sleep(0.2)

    def health_once(self, version):
        url, cmd = self.cfg.get("health_url"), self.cfg.get("health_command")
        if url:
            # urllib is imported only when used: it is most of a `status` call's start-up time.
            from urllib.error import HTTPError, URLError
            from urllib.request import urlopen
            try:
                resp = urlopen(url, timeout=5)
                body = json.loads(resp.read().decode() or "{}")
            except HTTPError as exc:
                try:
                    body = json.loads(exc.read().decode() or "{}")
                except ValueError:
                    body = {}
                return False, "health probe HTTP %s: %s" % (exc.code, body.get("error")), body
            except (URLError, OSError, ValueError) as exc:
                return False, "health probe failed: %s" % exc, None
            if not body.get("ok"):
                return False, "service unhealthy: %s" % body.get("error"), body
            if version and body.get("version") not in (None, version):
                return False, "service runs %s, expected %s" % (body.get("version"), version), body
            return True, None, body
        if cmd:
            code, out = run_command(cmd, 60)
            return code == 0, None if code == 0 else "health command exited %s" % code, out[-300:]
        # No service configured: the release is healthy when all its files are there with
        # their sizes (their sha256 was verified when it was staged; hashing a large engine on
        # every status query would load the robot).
        d = self.release_dir(version)
        try:
            with open(os.path.join(d, MANIFEST)) as f:
                files = json.load(f).get("files") or []
            for entry in files:
                full = os.path.join(d, safe_relpath(entry.get("path")))
                if os.path.getsize(full) != entry.get("size"):
                    return False, "%s has the wrong size" % entry.get("path"), None
        except (IOError, OSError, ValueError, Refused) as exc:
            return False, "release %s is incomplete: %s" % (version, exc), None
        return True, None, {"files": len(files)}


# -- pull mode ------------------------------------------------------------------------------------

def download_package(base_url, dest, cfg, timeout):
    """Download manifest (+signature) and every file into `dest`, resuming partial files with
    HTTP Range requests; returns the bytes transferred. Verification happens afterwards."""
    from urllib.error import HTTPError
    base = base_url.rstrip("/") + "/"
    total = 0
    data = http_get(base + MANIFEST, timeout)
    atomic_write(os.path.join(dest, MANIFEST), data)
    total += len(data)
    try:
        sig = http_get(base + SIGNATURE, timeout)
        atomic_write(os.path.join(dest, SIGNATURE), sig)
        total += len(sig)
    except HTTPError as exc:
        if exc.code != 404:
            raise Refused("failed", "signature download failed: HTTP %s" % exc.code)
    manifest = json.loads(data.decode())
    for entry in manifest.get("files") or []:
        rel = safe_relpath(entry.get("path"))
        total += fetch_resumable(base + rel, os.path.join(dest, rel), int(entry["size"]), timeout)
    return total


def http_get(url, timeout):
    from urllib.error import HTTPError, URLError
    from urllib.request import urlopen
    try:
        return urlopen(url, timeout=timeout).read()
    except HTTPError:
        raise
    except (URLError, OSError) as exc:
        raise Refused("failed", "download of %s failed: %s" % (url, exc))


def fetch_resumable(url, path, size, timeout):
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    have = os.path.getsize(path) if os.path.exists(path) else 0
    if have > size:
        os.unlink(path)
        have = 0
    if have == size:
        return 0
    req = Request(url, headers={"Range": "bytes=%d-" % have} if have else {})
    got = 0
    try:
        resp = urlopen(req, timeout=timeout)
        if have and resp.getcode() != 206:  # server ignored the range: start again
            have = 0
        with open(path, "ab" if have else "wb") as f:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                got += len(block)
    except HTTPError as exc:
        raise Refused("failed", "download of %s failed: HTTP %s" % (url, exc.code))
    except (URLError, OSError) as exc:
        raise Refused("failed", "download of %s interrupted after %d bytes (kept for resume): %s"
                      % (url, got, exc), downloaded_bytes=got)
    return got


# -- small utilities ------------------------------------------------------------------------------

@contextlib.contextmanager
def tolerate_full_disk():
    import errno
    try:
        yield
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOSPC:
            raise


def check_version(version):
    if not isinstance(version, str) or not VERSION_RE.match(version) or ".." in version:
        raise Refused("refused", "invalid version %r" % (version,))
    return version


def safe_relpath(path):
    if (not isinstance(path, str) or not path or path.startswith("/") or "\\" in path
            or any(p in ("", ".", "..") for p in path.split("/"))
            or path in (MANIFEST, SIGNATURE)):
        raise Refused("refused", "manifest lists an unsafe path %r" % (path,))
    return path


def major_minor(v):
    return ".".join(str(v).split(".")[:2])


def cuda_compatible(built, runtime):
    """Same CUDA major, and the robot's minor is at least the one the engine was built with."""
    try:
        b = [int(x) for x in str(built).split(".")[:2]]
        r = [int(x) for x in str(runtime).split(".")[:2]]
    except ValueError:
        return str(built) == str(runtime)
    return b[0] == r[0] and r[1:] >= b[1:]


def details(result):
    """A failed transition's fields, for its Refused answer."""
    return dict((k, v) for k, v in result.items() if k not in ("ok", "status"))


def superseded(lock):
    return (lock.get("superseded") or []) + [lock.get("owner")]


def revert_note(result):
    back = result.get("rolled_back_to")
    if not back:
        return "; nothing to go back to"
    if (result.get("rollback_health") or {}).get("ok"):
        return "; rolled back to %s" % back
    return "; rolled back to %s, which is unhealthy too: %s" % (
        back, (result.get("rollback_health") or {}).get("error"))


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path, data):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except (IOError, OSError):
        if os.path.exists(tmp):  # a full disk must not also keep the half-written copy
            os.unlink(tmp)
        raise


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run_command(cmd, timeout):
    """Run a configured command (a list, or a string for the shell); return (code, output)."""
    import subprocess  # imported when used: keeps `status` quick on a busy robot
    shell = isinstance(cmd, str)
    try:
        proc = subprocess.Popen(cmd, shell=shell, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return 127, str(exc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return 124, "timed out after %ss" % timeout
    return proc.returncode, out.decode("utf-8", "replace")


def load_arg_bytes(value):
    try:
        if value == "-":
            return sys.stdin.buffer.read()
        with open(value, "rb") as f:
            return f.read()
    except (IOError, OSError) as exc:
        raise Refused("refused", "cannot read manifest %s: %s" % (value, exc))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="robot_agent", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="JSON configuration file")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("status")
    s.add_argument("--health-timeout", type=float, default=2.0)
    s = sub.add_parser("preflight")
    s.add_argument("--manifest", required=True, help="manifest.json path, or - for stdin")
    s.add_argument("--owner", help="take the deployment lease for this rollout id")
    s.add_argument("--signature", help="the manifest's detached signature (base64)")
    s.add_argument("--supersede", help="rollout ids whose leases may be taken over (their "
                   "fleet lock expired or was broken)")
    s.add_argument("--health-timeout", type=float, default=5.0)
    s = sub.add_parser("stage")
    s.add_argument("version")
    s.add_argument("--owner")
    s.add_argument("--url", help="pull mode: download the package from this base URL")
    s.add_argument("--timeout", type=float, default=30.0)
    s = sub.add_parser("activate")
    s.add_argument("version")
    s.add_argument("--owner")
    s = sub.add_parser("rollback")
    s.add_argument("--to")
    s.add_argument("--owner")
    s = sub.add_parser("discard")
    s.add_argument("version")
    s.add_argument("--owner")
    sub.add_parser("recover", help="finish or revert an interrupted activation (run at boot)")
    s = sub.add_parser("fleet-lock")
    s.add_argument("action", choices=["acquire", "renew", "release", "break", "show"])
    s.add_argument("--owner")
    s.add_argument("--ttl", type=float, default=60.0)
    s.add_argument("--info", help="JSON: who, name, version, host, state")
    s.add_argument("--by")
    s.add_argument("--reason")
    s = sub.add_parser("gc")
    s.add_argument("--keep-incoming", action="store_true")
    s = sub.add_parser("lease")
    s.add_argument("action", choices=["acquire", "release"])
    s.add_argument("--owner", required=True)
    s.add_argument("--supersede")
    args = p.parse_args(argv)
    if not args.command:
        p.error("a command is required")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command.replace("-", "_")
    agent = None
    try:
        with open(args.config) as f:
            config = json.load(f)
        agent = Agent(config)
        agent.recovered = agent.recover()
        result = getattr(agent, "cmd_" + command)(args)
        code = 0
    except Refused as exc:
        result = {"ok": False, "status": exc.status, "error": str(exc)}
        result.update(exc.extra)
        code = 1
        if agent is not None and command in AUDITED and getattr(args, "owner", None):
            agent.audit("refused", command=command, status=exc.status, error=str(exc),
                        owner=getattr(args, "owner", None),
                        version=getattr(args, "version", None))
    except (IOError, OSError, ValueError) as exc:
        result = {"ok": False, "status": "failed", "error": "%s: %s" % (type(exc).__name__, exc)}
        code = 1
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
