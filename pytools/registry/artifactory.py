"""The Artifactory backend, through the dohq-artifactory client.

Layout `<repo>/<model>/<version>/<platform>/...`, one repository per channel. Each file is first
offered by checksum (`X-Checksum-Deploy`: no body is sent when the server already holds the
sha256); otherwise it is streamed from disk (memory stays flat) with its sha256 in
`X-Checksum-Sha256`, `-Sha1` and `-Md5` (from the manifest, or computed for small files), which
the server checks. The
manifest goes last, so a version is never visible half-published; on a failure the partial
folder is deleted. Properties on every file make
packages searchable with AQL; promotion is a server-side copy (or move) plus a promotion record
in properties; a build-info record ties the version to the Jenkins build and git commit.
"""
import datetime
import hashlib
import io
import json
import os

import requests
from requests.adapters import HTTPAdapter
from artifactory import ArtifactoryBuildManager, ArtifactoryPath
from dohq_artifactory.exception import ArtifactoryException, raise_for_status

from pytools import __version__

from pytools.core import semver
from pytools.core.console import Progress
from pytools.core.errors import CheckError
from pytools.core.hashing import CHUNK, sha256_file
from pytools.core.package import MANIFEST, SIGNATURE
from pytools.registry.base import ALIAS_DIR, Registry, RegistryError
from pytools.registry.retry import http_status, with_retries
from pytools.registry.settings import artifactory_credentials

# Like the JFrog CLI: smaller files are cheaper to send than to look up first.
CHECKSUM_DEPLOY_MIN = 10 * 1024
# Below this, a file is read into memory and md5/sha1 are computed on the spot. Above it they come
# from the manifest (written when the package was built): hashing a multi-GB engine again here
# would cost more CPU than the upload itself on a 2-core agent.
SMALL_FILE = 1 << 20


class ProgressReader(object):
    """A file wrapper for a streamed PUT that advances a progress bar (drawn only on a terminal)."""

    def __init__(self, f, size, progress):
        self.f, self.size, self.progress = f, size, progress

    def read(self, n=-1):
        block = self.f.read(n if n and n > 0 else CHUNK)
        self.progress.update(len(block))
        return block

    def __len__(self):  # requests takes Content-Length from it, so the body is not chunked
        return self.size


class LargeBlockAdapter(HTTPAdapter):
    """urllib3 sends a streamed body in 16 KiB blocks by default; 1 MiB cuts per-block overhead."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["blocksize"] = CHUNK
        super(LargeBlockAdapter, self).init_poolmanager(*args, **kwargs)


class ArtifactoryRegistry(Registry):
    kind = "artifactory"

    def __init__(self, settings, environ=None):
        super(ArtifactoryRegistry, self).__init__(settings, environ)
        self.url = settings["url"].rstrip("/")
        self.repos = settings["repositories"]
        self.retries = int(settings.get("retries", 4))
        self.build_name = settings.get("build_name")
        creds = artifactory_credentials(self.env)
        self.has_credentials = bool(creds)
        timeout = float(settings.get("timeout", 300))
        self.root = ArtifactoryPath(self.url, timeout=(min(timeout, 30.0), timeout), **creds)
        for prefix in ("http://", "https://"):
            self.root.session.mount(prefix, LargeBlockAdapter())
        self._checked_repos = set()

    # -- plumbing -------------------------------------------------------------------------------

    def _path(self, *parts):
        return self.root.joinpath(*parts)

    def location(self, name, version, channel, platform=None):
        parts = [self.url, self.repos[channel], name, version] + ([platform] if platform else [])
        return "/".join(parts)

    def _call(self, what, action):
        """Run a client call with retries; turn what remains into one clear error line."""
        try:
            return with_retries(action, self.retries)
        except (ArtifactoryException, requests.RequestException) as exc:
            raise self._explain(what, exc)

    def _explain(self, what, exc):
        status = http_status(exc)
        if status == 401 and not self.has_credentials:
            return RegistryError("Artifactory at %s requires credentials to %s: set ARTIFACTORY_TOKEN, "
                                 "ARTIFACTORY_API_KEY or ARTIFACTORY_USER+ARTIFACTORY_PASSWORD (or *_FILE)"
                                 % (self.url, what))
        if status == 401:
            return RegistryError("Artifactory at %s rejected the credentials while trying to %s "
                                 "(HTTP 401: %s); check ARTIFACTORY_TOKEN / ARTIFACTORY_API_KEY / "
                                 "ARTIFACTORY_USER+ARTIFACTORY_PASSWORD" % (self.url, what, _message(exc)))
        if status == 403:
            return RegistryError("Artifactory refused to %s: permission denied (HTTP 403: %s)"
                                 % (what, _message(exc)))
        if status is not None:
            return RegistryError("Artifactory failed to %s (HTTP %d: %s)" % (what, status, _message(exc)))
        if isinstance(exc, requests.ConnectionError):
            return RegistryError("cannot reach Artifactory at %s to %s (connection failed after %d retries)"
                                 % (self.url, what, self.retries))
        return RegistryError("Artifactory failed to %s: %s" % (what, _message(exc)))

    def _check_repo(self, channel):
        repo = self.repos[channel]
        if repo in self._checked_repos:
            return repo
        exists = self._call("look up repository %s" % repo, lambda: self._path(repo).exists())
        if not exists:
            raise RegistryError("Artifactory repository %r (channel %s) does not exist at %s, or this "
                                "user cannot see it" % (repo, channel, self.url))
        self._checked_repos.add(repo)
        return repo

    def _aql(self, query):
        return self._call("search (AQL)", lambda: self.root.aql(*query))

    # -- primitives -----------------------------------------------------------------------------

    def _channel_of_repo(self):
        return {repo: channel for channel, repo in self.repos.items() if channel in self.channels}

    def _catalog(self, name):
        return [e for e in self._query({"path": {"$match": name + "/*"}}) if e["name"] == name]

    def _query(self, criteria):
        """Complete packages (their manifests) matching AQL criteria, as catalog entries."""
        repo_channel = self._channel_of_repo()
        query = {"$or": [{"repo": r} for r in repo_channel], "name": MANIFEST}
        query.update(criteria)
        found = self._aql(["items.find", query, ".include", ["repo", "path", "name", "property"]])
        out = []
        for item in found:
            parts = item.get("path", "").split("/")
            if len(parts) != 3 or item.get("repo") not in repo_channel:
                continue
            props = {p["key"]: p.get("value", "") for p in item.get("properties", [])}
            out.append({"name": parts[0], "version": parts[1], "platform": parts[2],
                        "channel": repo_channel[item["repo"]], "props": props})
        return out

    def find(self, name=None, **props):
        """Search by properties with AQL (`@key` criteria), e.g. find(parity_passed="true")."""
        criteria = {"@" + k.replace("_", "."): str(v) for k, v in props.items()}
        if name:
            criteria["@model.name"] = name
        return sorted(self._query(criteria), key=lambda e: (e["name"], semver.parse(e["version"]), e["channel"]))

    def models(self):
        found = self._aql(["items.find", {"$or": [{"repo": r} for r in self._channel_of_repo()],
                                          "name": MANIFEST}, ".include", ["repo", "path"]])
        return sorted({item["path"].split("/")[0] for item in found})

    def _store(self, package_dir, manifest, channel, props, replace, verification):
        repo = self._check_repo(channel)
        name, version, platform = manifest["name"], manifest["version"], manifest["platform"]
        folder = self._path(repo, name, version, platform)
        props = dict(props, **self._build_id(manifest))
        if replace:  # a pre-release being re-published: hide the old one first
            self._call("delete the previous %s %s" % (name, version), lambda: folder.unlink(missing_ok=True))
        sent = 0
        try:
            for item in manifest["files"]:
                sent += self._deploy_file(folder / item["path"], os.path.join(package_dir, item["path"]),
                                          item["size"], item["sha256"], props, item.get("md5"), item.get("sha1"))
            verification.wait()  # hashing overlapped the uploads; nothing is visible yet
            build = self._record_build(manifest, channel, props)
            extra = [SIGNATURE] if os.path.exists(os.path.join(package_dir, SIGNATURE)) else []
            for rel in extra + [MANIFEST]:  # the manifest last: it makes the version visible
                path = os.path.join(package_dir, rel)
                sent += self._deploy_file(folder / rel, path, os.path.getsize(path), sha256_file(path), props)
        except BaseException:
            self._cleanup(folder)
            raise
        return {"location": str(folder), "url": str(folder / MANIFEST), "bytes_sent": sent,
                "repo": repo, "build_info": build}

    def _cleanup(self, folder):
        try:
            with_retries(lambda: folder.unlink(missing_ok=True), self.retries)
        except Exception:  # the original failure is what the user must see
            pass

    def _deploy_file(self, target, path, size, sha256, props, md5=None, sha1=None):
        """Deploy one file; return how many body bytes were sent (0 for a checksum deploy)."""
        what = "deploy %s" % target.path_in_repo
        if size >= CHECKSUM_DEPLOY_MIN:
            try:
                with_retries(lambda: target.deploy_by_checksum(sha256=sha256, parameters=props,
                                                               quote_parameters=True), self.retries)
                return 0
            except ArtifactoryException as exc:
                if http_status(exc) != 404:  # 404: the server needs the bytes
                    raise self._explain(what, exc)
            except requests.RequestException as exc:
                raise self._explain(what, exc)
        return self._call(what, lambda: self._upload(target, path, size, sha256, props, md5, sha1))

    def _upload(self, target, path, size, sha256, props, md5=None, sha1=None):
        with open(path, "rb") as f:
            if size < SMALL_FILE:
                data = f.read()
                target.deploy(io.BytesIO(data), md5=hashlib.md5(data).hexdigest(),
                              sha1=hashlib.sha1(data).hexdigest(), sha256=sha256,
                              parameters=props, quote_parameters=True)
                return len(data)
            # streamed from disk; the server checks the body against every X-Checksum-* header
            # (md5/sha1 come from the manifest, computed once when the package was built)
            with Progress(target.name[:10], size) as bar:
                target.deploy(ProgressReader(f, size, bar), md5=md5, sha1=sha1, sha256=sha256,
                              parameters=props, quote_parameters=True)
        stored = target.stat()
        if (stored.sha256, stored.size) != (sha256, size):
            target.unlink(missing_ok=True)
            raise CheckError("Artifactory stored %s as %s bytes with sha256 %s; expected %d bytes, %s"
                             % (target.path_in_repo, stored.size, stored.sha256, size, sha256))
        return size

    def _build_id(self, manifest):
        name = self.build_name or self.env.get("JOB_NAME") or manifest["name"]
        number = self.env.get("BUILD_NUMBER") or manifest["version"]
        return {"build.name": name, "build.number": "%s-%s" % (number, manifest["platform"])}

    def _record_build(self, manifest, channel, props):
        """Record an Artifactory build-info tying the version to its CI build and git commit."""
        build = {"name": props["build.name"], "number": props["build.number"]}
        base = "%s/%s/%s" % (manifest["name"], manifest["version"], manifest["platform"])
        info = {
            "version": "1.0.1", "name": build["name"], "number": build["number"],
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "type": "GENERIC",
            "agent": {"name": "Jenkins" if self.env.get("JENKINS_URL") else "pytools"},
            "buildAgent": {"name": "pytools", "version": __version__},
            "url": manifest.get("build_url") or self.env.get("BUILD_URL") or "",
            "vcs": [{"revision": manifest.get("git_commit") or "", "url": self.env.get("GIT_URL", "")}],
            "modules": [{"id": "%s:%s:%s" % (manifest["name"], manifest["version"], manifest["platform"]),
                         "artifacts": [{"type": os.path.splitext(f["path"])[1].lstrip(".") or "file",
                                        "name": f["path"], "path": "%s/%s" % (base, f["path"]),
                                        "sha256": f["sha256"]} for f in manifest["files"]]}],
            "properties": {"buildInfo.env.MODEL_NAME": manifest["name"],
                           "buildInfo.env.MODEL_VERSION": manifest["version"],
                           "buildInfo.env.CHANNEL": channel},
        }
        url = "%s/api/build" % self.url

        def put():
            response = self.root.session.put(url, data=json.dumps(info), timeout=self.root.timeout,
                                             headers={"Content-Type": "application/json"})
            raise_for_status(response)
        self._call("record build-info %s #%s" % (build["name"], build["number"]), put)
        return build

    def build_info(self, build_name, build_number):
        manager = ArtifactoryBuildManager(self.url, session=self.root.session, timeout=self.root.timeout)
        return self._call("read build-info", lambda: manager.get_build_info(build_name, build_number))

    def _read_file(self, entry, rel, dest_path):
        source = self._path(self.repos[entry["channel"]], entry["name"], entry["version"], entry["platform"], rel)
        try:
            with_retries(lambda: source.writeto(dest_path, chunk_size=CHUNK, progress_func=None), self.retries)
        except (ArtifactoryException, requests.RequestException) as exc:
            if http_status(exc) == 404:
                raise FileNotFoundError(str(source))
            raise self._explain("download %s" % source.path_in_repo, exc)

    def _transfer(self, name, version, src, dst, move, record):
        src_path = self._path(self._check_repo(src), name, version)
        dst_path = self._path(self._check_repo(dst), name, version)
        verb = "move" if move else "copy"
        action = (lambda: src_path.move(dst_path, suppress_layouts=True, fail_fast=True)) if move else \
            (lambda: src_path.copy(dst_path, suppress_layouts=True, fail_fast=True))
        self._call("%s %s %s from %s to %s" % (verb, name, version, src, dst), action)
        self._call("record the promotion of %s %s" % (name, version),
                   lambda: dst_path.update_properties(record, recursive=True))

    def _remove(self, name, version, channel):
        path = self._path(self.repos[channel], name, version)
        self._call("delete %s %s from %s" % (name, version, channel), lambda: path.unlink(missing_ok=True))

    def _alias_folder(self, name):
        return self._path(self.repos[self.channels[0]], name, ALIAS_DIR)

    def _aliases(self, name):
        folder = self._alias_folder(name)

        def read_all():
            try:
                children = list(folder.iterdir())
            except OSError:  # no alias set yet
                return {}
            return {c.name[:-5]: json.loads(c.read_text()) for c in children if c.name.endswith(".json")}
        return self._call("read aliases of %s" % name, read_all)

    def _write_alias(self, name, alias, record):
        self._check_repo(self.channels[0])
        data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        target = self._alias_folder(name) / (alias + ".json")
        self._call("set alias %s of %s" % (alias, name), lambda: target.deploy(
            io.BytesIO(data), md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest()))


def _message(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
