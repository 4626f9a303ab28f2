#!/usr/bin/env python3
"""The on-robot model agent: one stdlib-only file that runs on Python 3.6+.

It owns the model root on a robot:

    <root>/releases/<version>/   verified packages (manifest.json + model files)
    <root>/incoming/<version>/   packages being received; partial files are kept for resume
    <root>/current               symlink to releases/<version>, swapped by rename (never absent)
    <root>/state.json            current/previous version, last deployment
    <root>/audit.log             append-only JSON lines, one per action
    <root>/deploy.lease          the deployment lease: one rollout at a time per robot
    <root>/.agent.lock           flock held for the short critical sections

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
        # O_APPEND makes each record one write at the end, even with concurrent writers.
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

    def check_lease(self, owner):
        """Refuse when another deployment holds the lease; callers hold self.locked().
        The holder's own steps extend it, so a long transfer does not outlive its lease."""
        lease = self.read_lease()
        if lease and lease.get("owner") != owner:
            raise Refused("locked", "robot is locked by deployment %r since %s"
                          % (lease.get("owner"), lease.get("acquired")), lease=lease)
        if lease:
            lease["expires"] = time.time() + float(self.cfg["lease_ttl"])
            atomic_write(self.lease_path, json.dumps(lease).encode())
        return lease

    def acquire_lease(self, owner):
        self.check_lease(owner)
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
                "free_bytes": disk_free(self.root), "hostname": os.uname()[1]}

    def cmd_preflight(self, args):
        manifest = load_json_arg(args.manifest)
        version = manifest.get("version")
        check_version(version)
        with self.locked():
            if args.owner:
                self.check_lease(args.owner)
            self.refuse_if_busy()
            problems = self.platform_problems(manifest)
            if problems:
                raise Refused("refused", "; ".join(problems), problems=problems)
            needed = self.bytes_needed(manifest, version)
            free = disk_free(self.root)
            reserve = int(self.cfg.get("min_free_bytes") or 0)
            if needed + reserve > free:
                raise Refused("refused", "not enough disk: package needs %d bytes (+%d reserve), "
                              "%d free" % (needed, reserve, free), needed_bytes=needed,
                              free_bytes=free)
            lease = self.acquire_lease(args.owner) if args.owner else None
        self.audit("preflight", version=version, owner=args.owner, needed_bytes=needed)
        return {"ok": True, "status": "ok", "version": version, "needed_bytes": needed,
                "free_bytes": free, "lease": lease, "current": self.current_version(),
                "incoming": self.incoming_dir(version),
                "staged": os.path.isdir(self.release_dir(version))}

    def cmd_stage(self, args):
        version = args.version
        with self.locked():
            self.check_lease(args.owner)
            dest = self.release_dir(version)
            if os.path.isdir(dest):
                manifest = self.verify_dir(dest, version)
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
                self.audit("stage", version=version, owner=args.owner, result=exc.status,
                           error=str(exc))
                raise
            if not os.path.isdir(dest):
                os.rename(inc, dest)
            fsync_dir(self.releases)
        self.audit("stage", version=version, owner=args.owner, result="ok")
        return {"ok": True, "status": "ok", "version": version, "already": False,
                "files": len(manifest["files"]), "downloaded_bytes": downloaded}

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
        key = self.cfg.get("public_key")
        sig_path = os.path.join(d, SIGNATURE)
        if not key:
            if self.cfg.get("require_signature"):
                raise Refused("refused", "signatures are required but no public_key is configured")
            return
        if not os.path.isfile(sig_path):
            raise Refused("refused", "package is not signed (no %s)" % SIGNATURE)
        with open(sig_path, "rb") as f:
            import base64
            try:
                raw = base64.b64decode(f.read().strip())
            except (ValueError, TypeError):
                raise Refused("refused", "signature file is not base64")
        import tempfile
        tmp = tempfile.NamedTemporaryFile(prefix="sig-", dir=self.root, delete=False)
        try:
            tmp.write(raw)
            tmp.close()
            code, out = run_command(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", key,
                                     "-rawin", "-in", os.path.join(d, MANIFEST),
                                     "-sigfile", tmp.name], 60)
        finally:
            os.unlink(tmp.name)
        if code != 0:
            raise Refused("refused", "package signature does not match its manifest "
                          "(tampered or signed with another key)")

    def cmd_activate(self, args):
        version = args.version
        with self.locked():
            self.check_lease(args.owner)
            self.refuse_if_busy()
            target = self.release_dir(version)
            if not os.path.isdir(target):
                raise Refused("failed", "version %s is not staged" % version)
            old = self.current_version()
            self.switch(version)
        started = time.time()
        health = self.restart_and_check(version)
        result = {"version": version, "previous": old, "health": health,
                  "activate_seconds": round(time.time() - started, 3)}
        if health["ok"]:
            self.record(version, old, "activate", "ok", args.owner)
            # Keep the disk bounded after every good deployment; partial downloads of other
            # versions stay (another rollout of ours may resume them).
            with self.locked():
                removed = self.collect(keep_incoming=True)
            self.audit("activate", version=version, previous=old, owner=args.owner, result="ok",
                       removed=removed)
            result.update(ok=True, status="ok", removed=removed)
            return result
        # A robot must never stay on a model that does not work: go back to the previous one.
        reverted = None
        if old and old != version:
            with self.locked():
                self.switch(old)
            reverted = self.restart_and_check(old)
            self.record(old, None, "auto-rollback", "ok" if reverted["ok"] else "failed",
                        args.owner, failed_version=version)
        self.audit("activate", version=version, previous=old, owner=args.owner, result="failed",
                   error=health.get("error"), rolled_back_to=old if reverted else None)
        raise Refused("failed", "health check failed after activating %s: %s%s"
                      % (version, health.get("error"),
                         "; rolled back to %s" % old if reverted else ""),
                      health=health, rolled_back_to=old if reverted else None,
                      rollback_health=reverted)

    def cmd_rollback(self, args):
        with self.locked():
            self.check_lease(args.owner)
            state = self.read_state()
            current = self.current_version()
            target = args.to or state.get("previous")
            if not target:
                raise Refused("failed", "no previous release to roll back to")
            if not os.path.isdir(self.release_dir(target)):
                raise Refused("failed", "release %s is not on this robot" % target)
            self.switch(target)
        health = self.restart_and_check(target)
        self.record(target, current, "rollback", "ok" if health["ok"] else "failed", args.owner)
        self.audit("rollback", version=target, previous=current, owner=args.owner,
                   result="ok" if health["ok"] else "failed")
        if not health["ok"]:
            raise Refused("failed", "health check failed after rollback to %s: %s"
                          % (target, health.get("error")), health=health)
        return {"ok": True, "status": "ok", "version": target, "previous": current,
                "health": health}

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

    def cmd_lease(self, args):
        with self.locked():
            if args.action == "acquire":
                return {"ok": True, "status": "ok", "lease": self.acquire_lease(args.owner)}
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
                 "owner": owner}
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


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path, data):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


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


def load_json_arg(value):
    try:
        if value == "-":
            return json.loads(sys.stdin.read())
        with open(value) as f:
            return json.load(f)
    except (IOError, OSError, ValueError) as exc:
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
    s = sub.add_parser("gc")
    s.add_argument("--keep-incoming", action="store_true")
    s = sub.add_parser("lease")
    s.add_argument("action", choices=["acquire", "release"])
    s.add_argument("--owner", required=True)
    args = p.parse_args(argv)
    if not args.command:
        p.error("a command is required")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with open(args.config) as f:
            config = json.load(f)
        agent = Agent(config)
        result = getattr(agent, "cmd_" + args.command)(args)
        code = 0
    except Refused as exc:
        result = {"ok": False, "status": exc.status, "error": str(exc)}
        result.update(exc.extra)
        code = 1
    except (IOError, OSError, ValueError) as exc:
        result = {"ok": False, "status": "failed", "error": "%s: %s" % (type(exc).__name__, exc)}
        code = 1
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
