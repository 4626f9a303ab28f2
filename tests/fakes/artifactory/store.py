"""Repositories, items, properties and a checksum-addressed filestore, like Artifactory's.

Binaries live once in `<root>/filestore/<sha256>`; items (files) and folders are metadata that
point at them, so a deploy by checksum or a copy never duplicates bytes. All mutations hold one
lock; bodies are streamed to a temporary file before the lock is taken.
"""
import datetime
import os
import posixpath
import threading
import uuid


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class NotFound(Exception):
    pass


class Store(object):
    def __init__(self, root, repos):
        self.root = root
        self.filestore = os.path.join(root, "filestore")
        self.incoming = os.path.join(root, "incoming")
        os.makedirs(self.filestore, exist_ok=True)
        os.makedirs(self.incoming, exist_ok=True)
        self.lock = threading.RLock()
        self.repos = {}
        self.files = {}      # "repo/a/b/f" -> item dict
        self.folders = {}    # "repo/a/b"   -> folder dict ("repo" itself is the repository root)
        self.blobs = {}      # sha256 -> {"sha1", "md5", "size"}
        self.by_sha1 = {}    # sha1 -> sha256
        self.builds = {}     # name -> {number: build info}
        for key in repos:
            self.add_repo(key)

    def add_repo(self, key, user="_system_"):
        with self.lock:
            self.repos[key] = {"key": key, "type": "LOCAL", "packageType": "generic"}
            self.folders.setdefault(key, _folder(user))

    def incoming_path(self):
        return os.path.join(self.incoming, uuid.uuid4().hex)

    def blob_path(self, sha256):
        return os.path.join(self.filestore, sha256)

    def add_blob(self, tmp_path, sha256, sha1, md5, size):
        with self.lock:
            if sha256 in self.blobs and os.path.exists(self.blob_path(sha256)):
                os.unlink(tmp_path)
            else:
                os.replace(tmp_path, self.blob_path(sha256))
                self.blobs[sha256] = {"sha1": sha1, "md5": md5, "size": size}
                self.by_sha1[sha1] = sha256

    def find_blob(self, sha256=None, sha1=None):
        with self.lock:
            if sha1 and not sha256:
                sha256 = self.by_sha1.get(sha1)
            if sha256 in self.blobs and os.path.exists(self.blob_path(sha256)):
                return sha256
            return None

    # -- items ------------------------------------------------------------------------------

    def put_file(self, path, sha256, user, props, only_new=False):
        """Create or overwrite the item at `path` pointing at blob `sha256`; with `only_new`
        (a user without delete permission) an existing item raises FileExistsError instead,
        decided under the lock: of two racing deploys exactly one creates the item."""
        with self.lock:
            if path in self.folders:
                raise ValueError("a folder exists at %s" % path)
            if only_new and path in self.files:
                raise FileExistsError(path)
            self._ensure_parents(path, user)
            blob = self.blobs[sha256]
            stamp = now_iso()
            old = self.files.get(path)
            item = {"sha256": sha256, "sha1": blob["sha1"], "md5": blob["md5"], "size": blob["size"],
                    "created": old["created"] if old else stamp,
                    "createdBy": old["createdBy"] if old else user,
                    "lastModified": stamp, "modifiedBy": user, "lastUpdated": stamp,
                    "props": {k: list(v) for k, v in props.items()}}
            self.files[path] = item
            return item

    def make_folder(self, path, user):
        with self.lock:
            self._ensure_parents(path + "/x", user)

    def _ensure_parents(self, path, user):
        parent = posixpath.dirname(path)
        chain = []
        while parent and parent not in self.folders:
            if parent in self.files:
                raise ValueError("a file exists at %s" % parent)
            chain.append(parent)
            parent = posixpath.dirname(parent)
        for p in chain:
            self.folders[p] = _folder(user)

    def get(self, path):
        """('file', item) or ('folder', folder); raise NotFound."""
        with self.lock:
            if path in self.files:
                return "file", self.files[path]
            if path in self.folders:
                return "folder", self.folders[path]
        raise NotFound(path)

    def children(self, path):
        prefix = path + "/"
        with self.lock:
            names = {}
            for p in list(self.files) + list(self.folders):
                if p.startswith(prefix) and "/" not in p[len(prefix):]:
                    names[p[len(prefix):]] = p in self.folders
        return sorted(names.items())

    def subtree(self, path):
        """Paths of files and folders at or under `path`."""
        prefix = path + "/"
        with self.lock:
            files = [p for p in self.files if p == path or p.startswith(prefix)]
            folders = [p for p in self.folders if p == path or p.startswith(prefix)]
        return files, folders

    def delete(self, path):
        with self.lock:
            files, folders = self.subtree(path)
            if not files and not folders:
                raise NotFound(path)
            if path in self.repos:
                raise ValueError("cannot delete a repository root")
            for p in files:
                del self.files[p]
            for p in folders:
                del self.folders[p]
            return len(files), len(folders)

    def copy(self, src, dst, user, move=False, dry=False, may_overwrite=True):
        """Copy or move a file or folder tree; return (files, folders) counts.

        As Artifactory does: a target that is an existing folder receives the source *inside*
        it (`copy a/1.0 -> b/1.0` with b/1.0 present gives b/1.0/1.0/...); files already at the
        target are overwritten, which needs delete permission (`may_overwrite`), else
        FileExistsError names the first one and nothing is copied."""
        with self.lock:
            self.get(src)
            if dst in self.folders:
                dst = dst + "/" + posixpath.basename(src)
            files, folders = self.subtree(src)
            clash = [dst + p[len(src):] for p in sorted(files) if dst + p[len(src):] in self.files]
            if clash and not may_overwrite:
                raise FileExistsError(clash[0])
            if dry:
                return len(files), len(folders)
            for p in sorted(folders):
                target = dst + p[len(src):]
                if target not in self.folders:
                    self._ensure_parents(target + "/x", user)
                self.folders[target]["props"].update(
                    {k: list(v) for k, v in self.folders[p]["props"].items()})
            for p in sorted(files):
                item = self.files[p]
                self.put_file(dst + p[len(src):], item["sha256"], user, item["props"])
            if move:
                for p in files:
                    del self.files[p]
                for p in folders:
                    if p not in self.repos:
                        del self.folders[p]
            return len(files), len(folders)

    def node(self, path):
        kind, node = self.get(path)
        return node

    def set_props(self, path, props, recursive):
        """props: {key: [values]} to set, {key: None} to delete."""
        with self.lock:
            targets = [path]
            if recursive:
                files, folders = self.subtree(path)
                targets = files + folders
            nodes = [self.node(p) for p in targets]
            for node in nodes:
                for k, v in props.items():
                    if v is None:
                        node["props"].pop(k, None)
                    else:
                        node["props"][k] = list(v)


def _folder(user):
    stamp = now_iso()
    return {"created": stamp, "createdBy": user, "lastModified": stamp, "modifiedBy": user,
            "lastUpdated": stamp, "props": {}}
