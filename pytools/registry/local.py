"""The local registry: a directory with the Artifactory layout and the same rules.

    <root>/<channel>/<model>/<version>/<platform>/manifest.json + files   one package
    <root>/<channel>/<model>/<version>/.props-<platform>.json             its properties
    <root>/<first channel>/<model>/_aliases/<alias>.json                  alias records
    <root>/.blobs/<sha256>                                                content store
    <root>/.locks/<model>.lock, <root>/.tmp/                              concurrency, staging

A package is assembled under .tmp and renamed into place, so it appears whole or not at all;
mutations of one model hold an exclusive file lock, so two publishers at once are safe. Files
are hard links into a content store keyed by sha256: publishing identical bytes under a new
version copies nothing (the local analogue of Artifactory's checksum deploy).
"""
import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid

from pytools.core import semver
from pytools.core.errors import CheckError
from pytools.core.files import atomic_write_json, read_json
from pytools.core.hashing import CHUNK, sha256_file
from pytools.core.package import MANIFEST, SIGNATURE
from pytools.registry.base import ALIAS_DIR, Registry, RegistryError


class LocalRegistry(Registry):
    kind = "local"

    def __init__(self, settings, environ=None):
        super(LocalRegistry, self).__init__(settings, environ)
        self.root = os.path.abspath(settings["path"])

    def _internal(self, sub):
        """An internal directory, created on first write (reading never creates the registry)."""
        path = os.path.join(self.root, sub)
        os.makedirs(path, exist_ok=True)
        return path

    def location(self, name, version, channel, platform=None):
        parts = [self.root, channel, name, version] + ([platform] if platform else [])
        return os.path.join(*parts)

    @contextlib.contextmanager
    def _lock(self, name):
        with open(os.path.join(self._internal(".locks"), name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def models(self):
        names = set()
        for channel in self.channels:
            d = os.path.join(self.root, channel)
            if os.path.isdir(d):
                names.update(n for n in os.listdir(d) if not n.startswith("."))
        return sorted(names)

    def _catalog(self, name):
        out = []
        for channel in self.channels:
            model_dir = os.path.join(self.root, channel, name)
            if not os.path.isdir(model_dir):
                continue
            for vdir in os.scandir(model_dir):
                if not vdir.is_dir() or not semver.is_valid(vdir.name):
                    continue
                for pdir in os.scandir(vdir.path):
                    if pdir.is_dir() and os.path.isfile(os.path.join(pdir.path, MANIFEST)):
                        out.append({"name": name, "version": vdir.name, "channel": channel, "platform": pdir.name,
                                    "props": read_json(_props_path(vdir.path, pdir.name), {})})
        return out

    def _staging_dir(self):
        return tempfile.mkdtemp(prefix="stage-", dir=self._internal(".tmp"))

    def _store(self, package_dir, manifest, channel, props, replace, verification):
        verification.wait()  # a local copy is disk-bound: verify first, copy once
        stage = self._staging_dir()
        sent = reused = 0
        try:
            for item in manifest["files"]:
                target = os.path.join(stage, item["path"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if self._link_blob(item["sha256"], item["size"], target):
                    reused += item["size"]
                else:
                    self._add_blob(os.path.join(package_dir, item["path"]), item, target)
                    sent += item["size"]
            if os.path.exists(os.path.join(package_dir, SIGNATURE)):
                shutil.copyfile(os.path.join(package_dir, SIGNATURE), os.path.join(stage, SIGNATURE))
            # the manifest goes in last: it is what makes a package directory complete
            shutil.copyfile(os.path.join(package_dir, MANIFEST), os.path.join(stage, MANIFEST))
            final = self.location(manifest["name"], manifest["version"], channel, manifest["platform"])
            self._install(stage, final, props, replace)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return {"location": final, "url": "file://" + final, "files_url": "file://" + final,
                "bytes_sent": sent, "bytes_reused": reused}

    def _install(self, stage, final, props, replace):
        version_dir = os.path.dirname(final)
        os.makedirs(version_dir, exist_ok=True)
        atomic_write_json(_props_path(version_dir, os.path.basename(final)), props)
        trash = None
        if replace and os.path.exists(final):
            trash = os.path.join(self._internal(".tmp"), "trash-" + uuid.uuid4().hex)
            os.rename(final, trash)
        try:
            os.rename(stage, final)
        except OSError as exc:
            raise RegistryError("cannot install %s: %s" % (final, exc.strerror))
        finally:
            if trash:
                shutil.rmtree(trash, ignore_errors=True)

    def _link_blob(self, sha256, size, target):
        """Reuse a stored blob only if its bytes still hash to its name (a rotted blob is
        replaced by the publisher's copy instead of being handed to a new version)."""
        blob = os.path.join(self.root, ".blobs", sha256)
        try:
            if os.path.getsize(blob) != size or sha256_file(blob) != sha256:
                return False
            os.link(blob, target)
            return True
        except OSError:
            return False

    def _add_blob(self, source, item, target):
        """Copy a file into the content store, checking its bytes on the way in."""
        blob = os.path.join(self._internal(".blobs"), item["sha256"])
        tmp = "%s.tmp-%s" % (blob, uuid.uuid4().hex)
        h = hashlib.sha256()
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                for block in iter(lambda: src.read(CHUNK), b""):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != item["sha256"]:
                raise CheckError("package file %s changed while publishing (sha256 mismatch)" % item["path"])
            os.replace(tmp, blob)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        try:
            os.link(blob, target)
        except OSError:  # a filesystem without hard links: keep a plain copy
            shutil.copyfile(blob, target)

    def _read_file(self, entry, rel, dest_path):
        src = os.path.join(self.location(entry["name"], entry["version"], entry["channel"],
                                         entry["platform"]), rel)
        if not os.path.isfile(src):
            raise FileNotFoundError(src)
        shutil.copyfile(src, dest_path)

    def _transfer(self, name, version, src, dst, move, record):
        src_dir = self.location(name, version, src)
        for pdir in sorted(os.listdir(src_dir)) if os.path.isdir(src_dir) else []:
            src_pkg = os.path.join(src_dir, pdir)
            if not os.path.isfile(os.path.join(src_pkg, MANIFEST)):
                continue
            if os.path.isfile(os.path.join(self.location(name, version, dst, pdir), MANIFEST)):
                continue  # promoted by an earlier, interrupted run (each platform lands whole)
            stage = self._staging_dir()
            try:
                shutil.rmtree(stage)
                shutil.copytree(src_pkg, stage, copy_function=_link_or_copy)
                props = read_json(_props_path(src_dir, pdir), {})
                props.update(record)
                self._install(stage, self.location(name, version, dst, pdir), props, replace=False)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        if move and os.path.isdir(src_dir):
            self._remove(name, version, src)
        return record

    def _remove(self, name, version, channel):
        trash = os.path.join(self._internal(".tmp"), "trash-" + uuid.uuid4().hex)
        os.rename(self.location(name, version, channel), trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _alias_dir(self, name):
        return os.path.join(self.root, self.channels[0], name, ALIAS_DIR)

    def _aliases(self, name):
        d = self._alias_dir(name)
        if not os.path.isdir(d):
            return {}
        return {f[:-5]: read_json(os.path.join(d, f), {}) for f in sorted(os.listdir(d)) if f.endswith(".json")}

    def _write_alias(self, name, alias, record):
        os.makedirs(self._alias_dir(name), exist_ok=True)
        atomic_write_json(os.path.join(self._alias_dir(name), alias + ".json"), record)


def _props_path(version_dir, platform):
    return os.path.join(version_dir, ".props-%s.json" % platform)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
