"""The registry interface and every rule that does not depend on where bytes live.

A backend implements a handful of private storage primitives (list complete packages, store a
verified package with its manifest last, read one file, copy/move a version between channels,
remove, read/write alias records). Everything users see: immutability of released versions,
semver ordering, alias and range resolution, the parity gate on promotion, verification of every
fetched byte, reading what is stored (copies, manifests), lives here once, so every backend obeys
the same contract. Callers outside pytools.registry use only the public methods.
"""
import contextlib
import getpass
import json
import os
import re
import shutil
import tempfile
import threading

from pytools.core import semver
from pytools.core.errors import CheckError, ConfigError, PytoolsError
from pytools.core.files import read_json
from pytools.core.package import (MANIFEST, SIGNATURE, check_relative_path, read_manifest, utc_now,
                                  verify_package, verify_signature)

NAME_RE = re.compile(semver.NAME_PATTERN)
# an alias is a name that starts with a letter, so it never reads as a version or a range
ALIAS_RE = re.compile(r"^[a-z][a-z0-9._-]*$")
# a spec starting like this is a version range, anything else alias-shaped is an alias name
RANGE_START_RE = re.compile(r"^(v?\d|[xX*](\.|$))")
ALIAS_DIR = "_aliases"
COMPUTED_ALIASES = ("latest",)


class RegistryError(PytoolsError):
    """The registry refused or failed an operation (the message says which and why)."""


def check_paths(package_dir, manifest):
    """Refuse manifest paths that are not plain relative names or lead out of the package."""
    root = os.path.realpath(package_dir)
    for entry in manifest["files"]:
        rel = check_relative_path(entry.get("path") if isinstance(entry, dict) else entry)
        if not os.path.realpath(os.path.join(root, rel)).startswith(root + os.sep):
            raise CheckError("package file %s leads outside the package (symlink)" % rel)


class Verification(object):
    """verify_package in a helper thread, so hashing a multi-GB package overlaps its upload."""

    def __init__(self, package_dir, manifest):
        self.manifest, self.error = manifest, None
        self.thread = threading.Thread(target=self._run, args=(package_dir,), daemon=True)
        self.thread.start()

    def _run(self, package_dir):
        try:
            if verify_package(package_dir) != self.manifest:
                raise CheckError("%s: the manifest changed while it was being published" % package_dir)
        except Exception as exc:  # handed to the publishing thread by wait()
            self.error = exc

    def wait(self):
        """Block until verification is done; raise its failure."""
        self.thread.join()
        if self.error is not None:
            raise self.error


def current_user(environ=None):
    """Who is acting: the Jenkins user who started the build, else the login name."""
    env = os.environ if environ is None else environ
    for var in ("BUILD_USER_ID", "PYTOOLS_USER", "USER", "LOGNAME"):
        if env.get(var):
            return env[var]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still record something
        return "unknown"


def package_properties(manifest, channel):
    """The searchable properties of a package (Artifactory properties; local sidecar)."""
    runtime = manifest.get("runtime") or {}
    lineage = manifest.get("lineage") or {}
    parity = (manifest.get("evidence") or {}).get("parity") or {}
    props = {
        "model.name": manifest["name"],
        "model.version": manifest["version"],
        "model.platform": manifest.get("platform") or "",
        "model.prerelease": str(semver.parse(manifest["version"]).is_prerelease).lower(),
        "runtime.kind": runtime.get("kind") or "",
        "runtime.precision": runtime.get("precision") or "",
        "parity.passed": _parity_word(parity),
        "git.commit": manifest.get("git_commit") or "",
        "build.url": manifest.get("build_url") or "",
        "channel": channel,
    }
    for key in ("checkpoint_sha256", "onnx_sha256", "torchscript_sha256"):
        if lineage.get(key):
            props["lineage." + key] = lineage[key]
    parent = lineage.get("parent")
    if isinstance(parent, dict) and parent.get("version"):
        props["lineage.parent"] = "%s@%s" % (parent.get("name"), parent.get("version"))
    return {k: v for k, v in props.items() if v != ""}


def _parity_word(parity):
    if "passed" not in parity:
        return "unknown"
    return "true" if parity["passed"] else "false"


class Registry(object):
    """One interface over a local directory or Artifactory (see docs/registry.md).

    A backend subclasses this, sets `kind`, implements the storage primitives below (the private
    hooks, plus `location` and `models`) and is named in pytools.core.backends.REGISTRY_BACKENDS.
    """

    kind = None

    def __init__(self, settings, environ=None):
        self.settings = settings
        self.env = os.environ if environ is None else environ
        self.channels = list(settings["channels"])
        self.default_channel = settings["channel"]
        self.promote_mode = settings.get("promote_mode", "copy")

    # -- storage primitives each backend implements (never called from outside the registry) --

    def _catalog(self, name):
        """Complete packages of `name`: dicts {name, version, channel, platform, props}."""
        raise NotImplementedError

    def _store(self, package_dir, manifest, channel, props, replace, verification):
        """Store a package, manifest last and only after `verification.wait()` passed;
        return {location, url, bytes_sent, ...}."""
        raise NotImplementedError

    def _read_file(self, entry, rel, dest_path):
        """Copy one stored file of package `entry` to dest_path."""
        raise NotImplementedError

    def _transfer(self, name, version, src, dst, move, record):
        """Copy (or move) every platform of a version from channel src to dst with a record;
        repeatable (platforms already in dst with the same bytes are kept, a half-done earlier
        promotion is completed with the record it started with); return the record stored."""
        raise NotImplementedError

    def _remove(self, name, version, channel):
        raise NotImplementedError

    def _aliases(self, name):
        """{alias: record} as stored."""
        raise NotImplementedError

    def _write_alias(self, name, alias, record):
        raise NotImplementedError

    def location(self, name, version, channel, platform=None):
        """Where a stored version (or one platform of it) lives: a path or URL, for people."""
        raise NotImplementedError

    def models(self):
        """Names of every model with at least one complete package."""
        raise NotImplementedError

    def _lock(self, name):
        """Serialise mutations of one model (the local backend uses a file lock)."""
        return contextlib.nullcontext()

    # -- the contract ---------------------------------------------------------------------------

    def _channel(self, channel):
        channel = channel or self.default_channel
        if channel not in self.channels:
            raise ConfigError("unknown channel %r (channels: %s)" % (channel, ", ".join(self.channels)))
        return channel

    def publish(self, package_dir, channel=None):
        """Verify and publish a package directory; return what was published and where.

        Verification (every file hashed against the manifest) runs in a helper thread while the
        backend stores the files; the backend waits for it before the manifest, so an invalid
        package never becomes visible. Paths are checked up front, so nothing outside the package
        directory is ever read.
        """
        channel = self._channel(channel)
        manifest = read_manifest(package_dir)
        check_paths(package_dir, manifest)
        verification = Verification(package_dir, manifest)
        try:
            return self._publish(package_dir, manifest, channel, verification)
        except Exception:
            verification.wait()  # a bad package explains any later failure best: raise that
            raise

    def _publish(self, package_dir, manifest, channel, verification):
        name, version = manifest["name"], manifest["version"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise CheckError("package name %r is not a valid model name" % (name,))
        parsed = semver.parse(version)
        platform = manifest.get("platform")
        if not isinstance(platform, str) or not NAME_RE.match(platform):
            raise CheckError("package %s %s has no valid 'platform' in its manifest" % (name, version))
        props = package_properties(manifest, channel)
        with self._lock(name):
            existing = [e for e in self._catalog(name)
                        if semver.parse(e["version"]) == parsed and e["platform"] == platform]
            if existing and not parsed.is_prerelease:
                winner = existing[0]["props"]
                by = " by build %s #%s" % (winner["build.name"], winner.get("build.number", "?")) \
                    if winner.get("build.name") else ""
                raise RegistryError(
                    "%s %s (%s) is already published in %s%s; released versions are immutable, "
                    "publish a new version" % (name, version, platform, existing[0]["channel"], by))
            if any(e["channel"] != channel for e in existing):
                raise RegistryError("%s %s (%s) already exists in channel %s; delete it first"
                                    % (name, version, platform, existing[0]["channel"]))
            stored = self._store(package_dir, manifest, channel, props, bool(existing), verification)
        result = {"name": name, "version": version, "platform": platform, "channel": channel,
                  "backend": self.kind, "replaced": bool(existing),
                  "files": len(manifest["files"]) + 1}
        result.update(stored)
        return result

    def copies(self, name, version):
        """Every stored copy of a version (SemVer-equal: build metadata ignored), in channel order:
        [{name, version, channel, platform, props, location, promotion}]; `promotion` is the
        record {by, at, from, to, mode, forced} of a promoted copy, else None."""
        wanted = semver.parse(version)
        out = [dict(e, location=self.location(name, e["version"], e["channel"], e["platform"]),
                    promotion=_promotion_of(e["props"]))
               for e in self._catalog(name) if semver.parse(e["version"]) == wanted]
        return sorted(out, key=lambda e: (self.channels.index(e["channel"]), e["platform"]))

    def manifest(self, copy):
        """The stored manifest of one copy (an entry of copies() or resolve()), not verified;
        {} when it is not valid JSON, so a reader (lineage) reports what it can."""
        tmp = tempfile.mkdtemp(prefix="manifest-")
        try:
            path = os.path.join(tmp, MANIFEST)
            self._read_file(copy, MANIFEST, path)
            return read_json(path) or {}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def versions(self, name, channel=None):
        """All versions of a model, oldest first in SemVer precedence."""
        if channel:
            self._channel(channel)
        grouped = {}
        for e in self._catalog(name):
            if channel and e["channel"] != channel:
                continue
            row = grouped.setdefault(e["version"], {"version": e["version"], "channels": [],
                                                    "platforms": [], "promotions": [], "incomplete": []})
            if e["channel"] not in row["channels"]:
                row["channels"].append(e["channel"])
            if e["platform"] not in row["platforms"]:
                row["platforms"].append(e["platform"])
            promo = _promotion_of(e["props"])
            if promo and promo not in row["promotions"]:
                row["promotions"].append(promo)
            if e["props"].get("channel", e["channel"]) != e["channel"] and e["channel"] not in row["incomplete"]:
                row["incomplete"].append(e["channel"])  # copied, record not written: `promote` again
            row["parity"] = e["props"].get("parity.passed", "unknown")
        rows = [grouped[v] for v in sorted(grouped, key=lambda t: semver.parse(t))]
        for row in rows:
            row["prerelease"] = semver.parse(row["version"]).is_prerelease
            row["channels"].sort(key=self.channels.index)
            row["platforms"].sort()
        return rows

    def resolve(self, name, spec="latest", channel=None, platform=None):
        """Turn a version, alias or range into one stored package {name, version, channel, platform}."""
        if channel:
            self._channel(channel)
        catalog = self._catalog(name)
        if not catalog:
            raise RegistryError("no versions of %r in the %s registry" % (name, self.kind))
        candidates = [e for e in catalog if not channel or e["channel"] == channel]
        version = self._resolve_version(name, spec, candidates, channel)
        held = [e for e in candidates if semver.parse(e["version"]) == semver.parse(version)]
        if not held:
            raise RegistryError("%s %s is not in channel %s" % (name, version, channel))
        platforms = sorted({e["platform"] for e in held})
        if platform is None:
            if len(platforms) > 1:
                raise RegistryError("%s %s exists for several platforms (%s); choose one with --platform"
                                    % (name, version, ", ".join(platforms)))
            platform = platforms[0]
        elif platform not in platforms:
            raise RegistryError("%s %s has no %s package (platforms: %s)"
                                % (name, version, platform, ", ".join(platforms)))
        held = [e for e in held if e["platform"] == platform]
        # the most promoted copy is the one to hand out
        entry = max(held, key=lambda e: self.channels.index(e["channel"]))
        return {"name": name, "version": entry["version"], "channel": entry["channel"],
                "platform": platform, "spec": spec,
                "location": self.location(name, entry["version"], entry["channel"], platform),
                "props": entry["props"]}

    def _resolve_version(self, name, spec, candidates, channel):
        versions = sorted({e["version"] for e in candidates}, key=semver.parse)
        if semver.is_valid(spec):
            wanted = semver.parse(spec)
            for v in versions:
                if semver.parse(v) == wanted:
                    return v
            raise RegistryError("%s %s is not published%s" % (name, spec, _in(channel)))
        aliases = self._aliases(name)
        if spec in aliases:
            return aliases[spec]["version"]
        if spec == "latest" or spec in self.channels:
            pool = [e["version"] for e in candidates if spec == "latest" or e["channel"] == spec]
            best = semver.max_satisfying(pool, "*")
            if best is None:
                raise RegistryError("%s has no released version%s for %r"
                                    % (name, _in(channel if spec == "latest" else spec), spec))
            return str(best)
        if ALIAS_RE.match(spec) and not RANGE_START_RE.match(spec):
            raise RegistryError("%s has no alias %r (aliases: %s)"
                                % (name, spec, ", ".join(sorted(aliases)) or "none"))
        best = semver.max_satisfying(versions, spec)
        if best is None:
            raise RegistryError("no version of %s satisfies %r%s" % (name, spec, _in(channel)))
        return str(best)

    def fetch(self, name, spec, dest, channel=None, platform=None, replace=False):
        """Download a package into `dest`, verifying every file against the manifest first."""
        entry = self.resolve(name, spec, channel, platform)
        dest = os.path.abspath(dest)
        if os.path.exists(dest) and os.listdir(dest) and not replace:
            raise PytoolsError("%s exists and is not empty (use --force to replace it)" % dest)
        tmp = dest.rstrip("/") + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            try:
                self._read_file(entry, MANIFEST, os.path.join(tmp, MANIFEST))
            except FileNotFoundError:
                raise RegistryError("%s %s (%s): its manifest vanished from the registry"
                                    % (name, entry["version"], entry["platform"]))
            with open(os.path.join(tmp, MANIFEST), "rb") as f:
                manifest = json.loads(f.read().decode())
            if manifest.get("name") != name or manifest.get("version") != entry["version"]:
                raise CheckError("stored manifest of %s %s names %s %s"
                                 % (name, entry["version"], manifest.get("name"), manifest.get("version")))
            for item in manifest.get("files", []):
                target = os.path.join(tmp, item["path"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    self._read_file(entry, item["path"], target)
                except FileNotFoundError:
                    raise RegistryError("%s %s (%s, channel %s): file %s listed in its manifest is "
                                        "missing from the registry" % (name, entry["version"],
                                                                       entry["platform"], entry["channel"],
                                                                       item["path"]))
            self._read_optional(entry, SIGNATURE, os.path.join(tmp, SIGNATURE))
            try:
                verify_package(tmp)
            except CheckError as exc:
                raise CheckError("downloaded %s %s failed verification: %s" % (name, entry["version"], exc))
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out = dict(entry)
        out.update({"path": dest, "files": len(manifest["files"]), "verified": True})
        return out

    def _read_optional(self, entry, rel, dest_path):
        try:
            self._read_file(entry, rel, dest_path)
        except FileNotFoundError:
            pass

    def promote(self, name, version, to_channel, from_channel=None, force=False, move=None, who=None):
        """Copy (or move) a version to a later channel; refuse a parity failure unless forced.

        Idempotent: promoting again a version the target already holds whole is success (the
        stored record is returned, `already: true`); a half-done promotion (copied, record not
        yet on the copies) is completed. The parity gate reads the stored manifest of each copy
        (and checks its signature when `publish.public_key` is set), never editable properties.
        """
        to_channel = self._channel(to_channel)
        wanted = semver.parse(version)
        with self._lock(name):
            held = [e for e in self._catalog(name) if semver.parse(e["version"]) == wanted]
            if not held:
                raise RegistryError("%s %s is not published" % (name, version))
            version = held[0]["version"]
            in_target = [e for e in held if e["channel"] == to_channel]
            half_done = sorted({e["props"].get("channel") for e in in_target
                                if e["props"].get("channel") not in (None, to_channel)}, key=str)
            from_channel = self._promotion_source(name, version, held, to_channel, from_channel, half_done)
            src_entries = [e for e in held if e["channel"] == from_channel] or in_target
            if in_target and not half_done and \
                    {e["platform"] for e in src_entries} <= {e["platform"] for e in in_target}:
                return self._promotion_result(name, version, _promotion_of(in_target[0]["props"]) or {},
                                              [], already=True)
            failed = self._parity_failures(src_entries)
            if failed and not force:
                raise CheckError("%s %s failed parity (%s); promotion refused (use --force to override, "
                                 "the override is recorded)" % (name, version, ", ".join(failed)))
            move = (self.promote_mode == "move") if move is None else move
            record = {"promotion.by": who or current_user(), "promotion.at": utc_now(),
                      "promotion.from": from_channel, "promotion.to": to_channel,
                      "promotion.mode": "move" if move else "copy",
                      "promotion.forced": "true" if (force and failed) else "false",
                      "channel": to_channel}
            record = self._transfer(name, version, from_channel, to_channel, move, record)
        return self._promotion_result(name, version, _promotion_of(record), failed, already=False)

    def _promotion_source(self, name, version, held, to_channel, from_channel, half_done):
        channels = sorted({e["channel"] for e in held}, key=self.channels.index)
        if half_done:
            return half_done[0]  # the copies still carry their source channel: finish that one
        if from_channel:
            if self._channel(from_channel) not in channels:
                raise RegistryError("%s %s is not in channel %s" % (name, version, from_channel))
            return from_channel
        earlier = [c for c in channels if self.channels.index(c) < self.channels.index(to_channel)]
        if earlier:
            return earlier[-1]
        promoted = [e for e in held if e["channel"] == to_channel and _promotion_of(e["props"])]
        if promoted:
            return to_channel  # moved there by an earlier promotion: nothing left to do
        raise RegistryError("%s %s is only in %s; promotion goes forward (%s)"
                            % (name, version, ", ".join(channels), " -> ".join(self.channels)))

    def _parity_failures(self, entries):
        """Platforms whose stored manifest does not say parity passed (false, or unreadable)."""
        failed = []
        for entry in entries:
            manifest = self._gate_manifest(entry)
            parity = (manifest.get("evidence") or {}).get("parity") or {}
            if parity.get("passed") is False or not manifest:
                failed.append(entry["platform"])
        return failed

    def _gate_manifest(self, entry):
        """The stored manifest the gate decides on; with a public key configured, its signature
        must verify (no --force overrides a bad or missing signature)."""
        tmp = tempfile.mkdtemp(prefix="gate-")
        try:
            path = os.path.join(tmp, MANIFEST)
            self._read_file(entry, MANIFEST, path)
            key = self.settings.get("public_key")
            if key:
                try:
                    self._read_file(entry, SIGNATURE, os.path.join(tmp, SIGNATURE))
                except FileNotFoundError:
                    raise CheckError("%s %s (%s) has no signature; promotion refused (publish.public_key "
                                     "is set)" % (entry["name"], entry["version"], entry["platform"]))
                with open(path, "rb") as f, open(os.path.join(tmp, SIGNATURE), "rb") as sig:
                    try:
                        verify_signature(f.read(), sig.read(), key)
                    except CheckError as exc:
                        raise CheckError("%s %s (%s): stored manifest signature does not verify (%s); "
                                         "promotion refused" % (entry["name"], entry["version"],
                                                                entry["platform"], exc))
            return read_json(path) or {}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _promotion_result(self, name, version, promo, failed, already):
        return {"name": name, "version": version, "from": promo.get("from"), "to": promo.get("to"),
                "by": promo.get("by"), "at": promo.get("at"), "mode": promo.get("mode"),
                "forced": promo.get("forced") == "true", "parity_failed_platforms": failed,
                "already": already}

    def set_alias(self, name, alias, version, who=None):
        if not ALIAS_RE.match(alias) or semver.is_valid(alias) or alias in COMPUTED_ALIASES:
            raise ConfigError("%r cannot be an alias (lowercase name, not a version, not %s)"
                              % (alias, "/".join(COMPUTED_ALIASES)))
        wanted = semver.parse(version)
        with self._lock(name):
            held = [e["version"] for e in self._catalog(name) if semver.parse(e["version"]) == wanted]
            if not held:
                raise RegistryError("%s %s is not published; cannot point %r at it" % (name, version, alias))
            record = {"alias": alias, "version": held[0], "by": who or current_user(), "at": utc_now()}
            self._write_alias(name, alias, record)
        return record

    def aliases(self, name):
        """Explicit aliases plus the computed ones (`latest`, and each channel's newest)."""
        out = {a: dict(r, kind="explicit") for a, r in self._aliases(name).items()}
        catalog = self._catalog(name)
        for alias in list(COMPUTED_ALIASES) + self.channels:
            if alias in out:
                continue
            pool = [e["version"] for e in catalog if alias == "latest" or e["channel"] == alias]
            best = semver.max_satisfying(pool, "*")
            if best is not None:
                out[alias] = {"alias": alias, "version": str(best), "kind": "computed"}
        return out

    def delete(self, name, version, channel=None):
        """Delete a pre-release (released versions are immutable and cannot be deleted)."""
        parsed = semver.parse(version)
        if not parsed.is_prerelease:
            raise RegistryError("%s %s is a released version; released versions are immutable "
                                "and cannot be deleted" % (name, version))
        with self._lock(name):
            held = [e for e in self._catalog(name) if semver.parse(e["version"]) == parsed
                    and (channel is None or e["channel"] == channel)]
            if not held:
                raise RegistryError("%s %s is not published%s" % (name, version, _in(channel)))
            channels = sorted({e["channel"] for e in held}, key=self.channels.index)
            for ch in channels:
                self._remove(name, held[0]["version"], ch)
        return {"name": name, "version": held[0]["version"], "deleted_from": channels}

    def find(self, name=None, **props):
        """Packages whose properties equal every given value (e.g. parity.passed='true')."""
        wanted = {k.replace("_", "."): str(v) for k, v in props.items()}
        names = [name] if name else self.models()
        out = []
        for n in names:
            for e in self._catalog(n):
                if all(e["props"].get(k) == v for k, v in wanted.items()):
                    out.append(e)
        return sorted(out, key=lambda e: (e["name"], semver.parse(e["version"]), e["channel"]))


def _promotion_of(props):
    if "promotion.by" not in props:
        return None
    return {k.split(".", 1)[1]: v for k, v in props.items() if k.startswith("promotion.")}


def _in(channel):
    return " in channel %s" % channel if channel else ""
