"""The Artifactory backend, through the dohq-artifactory client.

Layout `<repo>/<model>/<version>/<platform>/...`, one repository per channel. A publisher first
wins a claim (claims.py: one winner among concurrent publishers). Each file is then offered by
checksum (`X-Checksum-Deploy`: no body is sent when the server already holds the sha256);
otherwise it is streamed from disk (memory stays flat) with its sha256 in `X-Checksum-Sha256`,
`-Sha1` and `-Md5` (from the manifest, or computed for small files), which the server checks.
The manifest goes last, so a version is never visible half-published, and is read back after it
landed; on a failure the publisher deletes the files it stored itself, nothing else. A
pre-release replacement is uploaded to `_staging` and switched in by server-side moves. Properties
(percent-encoded matrix parameters) make packages searchable with AQL; promotion copies (or
moves) each platform folder to a path that does not exist yet, after storing its record, and is
safe to repeat; a build-info record ties the version to the Jenkins build and git commit.
"""
import datetime
import hashlib
import io
import json
import os
import urllib.parse

import requests
from requests.adapters import HTTPAdapter
from artifactory import ArtifactoryBuildManager, ArtifactoryPath, quote_url
from dohq_artifactory.exception import ArtifactoryException, raise_for_status

from pytools import __version__

from pytools.core import semver
from pytools.core.console import Progress
from pytools.core.errors import CheckError
from pytools.core.hashing import CHUNK, sha256_file
from pytools.core.package import MANIFEST, SIGNATURE
from pytools.registry.base import ALIAS_DIR, Registry, RegistryError
from pytools.registry.claims import CLAIM_DIR, Claim
from pytools.registry.retry import http_status, with_retries
from pytools.registry.settings import artifactory_credentials

# Like the JFrog CLI: smaller files are cheaper to send than to look up first.
CHECKSUM_DEPLOY_MIN = 10 * 1024
# Below this, a file is read into memory and md5/sha1 are computed on the spot. Above it they come
# from the manifest (written when the package was built): hashing a multi-GB engine again here
# would cost more CPU than the upload itself on a 2-core agent.
SMALL_FILE = 1 << 20
# beside the versions of a model: replacements being uploaded, and old copies being switched out
STAGING, TRASH = "_staging", "_trash"
PROMOTIONS = "_promotions"  # promotion records, written before the copy they describe


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
    """urllib3 sends a streamed body in 16 KiB blocks by default; 1 MiB cuts per-block overhead.
    It also gives every request a timeout: some client calls (AQL, listings) pass none, and a
    server that accepts and never answers must not hang a pipeline."""

    def __init__(self, timeout):
        self.default_timeout = timeout
        super(LargeBlockAdapter, self).__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["blocksize"] = CHUNK
        super(LargeBlockAdapter, self).init_poolmanager(*args, **kwargs)

    def send(self, request, timeout=None, **kwargs):
        return super(LargeBlockAdapter, self).send(request, timeout=timeout or self.default_timeout, **kwargs)


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
            self.root.session.mount(prefix, LargeBlockAdapter(self.root.timeout))
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
            return RegistryError("Artifactory at %s requires credentials to %s: set ARTIFACTORY_TOKEN "
                                 "(an access token) or ARTIFACTORY_USER+ARTIFACTORY_PASSWORD (or *_FILE)"
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
        if isinstance(exc, requests.Timeout):
            return RegistryError("Artifactory at %s did not answer within %s s while trying to %s "
                                 "(after %d retries)" % (self.url, self.root.timeout[1], what, self.retries))
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
        found = self._aql(["items.find", query, ".include", ["repo", "path", "name", "property.*"]])
        out = []
        for item in found:
            parts = item.get("path", "").split("/")
            if len(parts) != 3 or item.get("repo") not in repo_channel or not semver.is_valid(parts[1]):
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
                                          "name": MANIFEST}, ".include", ["repo", "path", "name"]])
        return sorted({item["path"].split("/")[0] for item in found})

    def _store(self, package_dir, manifest, channel, props, replace, verification):
        repo = self._check_repo(channel)
        name, version, platform = manifest["name"], manifest["version"], manifest["platform"]
        final = self._path(repo, name, version, platform)
        props = dict(props, **self._build_id(manifest))
        generation = self._stored_sha256(final / MANIFEST) if replace else "new"
        claim = Claim(self, repo, name, version, platform, generation or "new",
                      "%s #%s" % (props["build.name"], props["build.number"]))
        claim.take()
        # a replacement is uploaded beside the old copy and switched in only once it is complete
        folder = self._path(repo, name, STAGING, version, "%s-%s" % (platform, claim.id)) if replace else final
        aside = self._path(repo, name, TRASH, version, "%s-%s" % (platform, claim.id))
        uploaded = []
        try:
            sent = 0
            for item in manifest["files"]:
                target = folder / item["path"]
                n, created = self._deploy_file(target, os.path.join(package_dir, item["path"]),
                                               item["size"], item["sha256"], props, item.get("md5"), item.get("sha1"))
                sent += n
                if created:
                    uploaded.append((target, item["sha256"]))
            verification.wait()  # hashing overlapped the uploads; nothing is visible yet
            build = self._record_build(manifest, channel, props)
            claim.check()  # a claim that showed up late still wins: stop before becoming visible
            extra = [SIGNATURE] if os.path.exists(os.path.join(package_dir, SIGNATURE)) else []
            for rel in extra + [MANIFEST]:  # the manifest last: it makes the version visible
                path = os.path.join(package_dir, rel)
                digest = sha256_file(path)
                n, created = self._deploy_file(folder / rel, path, os.path.getsize(path), digest, props)
                sent += n
                if created:
                    uploaded.append((folder / rel, digest))
            if replace:
                self._switch(folder, final, aside)
            self._verify_visible(final, uploaded[-1][1] if uploaded else sha256_file(
                os.path.join(package_dir, MANIFEST)), name, version, platform)
        except BaseException:
            self._cleanup(uploaded)
            claim.release()
            raise
        return {"location": str(final), "url": str(final / MANIFEST), "files_url": str(final),
                "bytes_sent": sent, "repo": repo, "build_info": build}

    def _verify_visible(self, final, manifest_sha256, name, version, platform):
        """Verify after write: "published" is only said when the stored manifest is ours."""
        stored = self._stored_sha256(final / MANIFEST)
        if stored != manifest_sha256:
            raise RegistryError("%s %s (%s): the stored manifest is not the one this publish uploaded "
                                "(sha256 %s); another publisher wrote it" % (name, version, platform, stored))

    def _stored_sha256(self, path):
        """sha256 of a stored file, None when there is none (any other failure is an error)."""
        return self._call("look up %s" % path.path_in_repo, lambda: _stat_or_none(path))

    def _switch(self, staged, final, aside):
        """Put a verified staged copy in place of the old one: old aside, new in, old removed;
        if the new one cannot be moved in, the old one goes back."""
        self._server_move(final, aside, "move the previous copy aside")
        try:
            self._server_move(staged, final, "move the new copy into place")
        except BaseException:
            self._server_move(aside, final, "restore the previous copy")
            raise
        self._try_delete(aside)

    def _server_move(self, src, dst, what):
        """A server-side move that survives a lost reply: before each retry, look whether the
        first attempt already happened (destination there, source gone)."""
        def attempt():
            if not _exists(src) and _exists(dst):
                return
            src.move(dst, suppress_layouts=True, fail_fast=True)
        self._call("%s (%s)" % (what, _rel(dst)), attempt)

    def _try_delete(self, path):
        """Delete if possible; True when it is gone (best effort: the failure being reported,
        or the result already achieved, matters more than a leftover)."""
        try:
            with_retries(lambda: self._unlink(path), self.retries)
            return True
        except Exception:
            return False

    def _unlink(self, path):
        """DELETE a file or folder; gone already is fine. (The client's unlink() swallows every
        status but 404, a refused delete included, so it cannot be trusted to report one.)"""
        response = self.root.session.delete(quote_url(str(path)), timeout=self.root.timeout)
        if response.status_code != 404:
            raise_for_status(response)

    def _cleanup(self, uploaded):
        """Delete only files this publisher deployed, and only while they still hold its bytes."""
        for path, sha256 in uploaded:
            try:
                if _stat_or_none(path) == sha256:
                    self._try_delete(path)
            except Exception:  # best effort: the original failure is what the user must see
                pass

    def _deploy_file(self, target, path, size, sha256, props, md5=None, sha1=None):
        """Deploy one file; return (body bytes sent: 0 for a checksum deploy, whether this call
        stored it). A write refused as an overwrite (403) of exactly these bytes is taken as done,
        but not as ours: a clean-up never deletes a file someone else may have put there."""
        what = "deploy %s" % target.path_in_repo
        params = _matrix(props)
        if size >= CHECKSUM_DEPLOY_MIN:
            try:
                with_retries(lambda: target.deploy_by_checksum(sha256=sha256, parameters=params,
                                                               quote_parameters=False), self.retries)
                return 0, True
            except ArtifactoryException as exc:
                if http_status(exc) == 403 and _stat_or_none(target) == sha256:
                    return 0, False  # e.g. a retry after a lost reply: the server holds exactly this
                if http_status(exc) != 404:  # 404: the server needs the bytes
                    raise self._explain(what, exc)
            except requests.RequestException as exc:
                raise self._explain(what, exc)
        try:
            return with_retries(lambda: self._upload(target, path, size, sha256, params, md5, sha1),
                                self.retries), True
        except (ArtifactoryException, requests.RequestException) as exc:
            if http_status(exc) == 403 and _stat_or_none(target) == sha256:
                return 0, False  # an earlier attempt landed and its reply was lost
            raise self._explain(what, exc)

    def _upload(self, target, path, size, sha256, params, md5=None, sha1=None):
        with open(path, "rb") as f:
            if size < SMALL_FILE:
                data = f.read()
                target.deploy(io.BytesIO(data), md5=hashlib.md5(data).hexdigest(),
                              sha1=hashlib.sha1(data).hexdigest(), sha256=sha256,
                              parameters=params, quote_parameters=False)
                return len(data)
            # streamed from disk; the server checks the body against every X-Checksum-* header
            # (md5/sha1 come from the manifest, computed once when the package was built)
            with Progress(target.name[:10], size) as bar:
                target.deploy(ProgressReader(f, size, bar), md5=md5, sha1=sha1, sha256=sha256,
                              parameters=params, quote_parameters=False)
        stored = target.stat()
        if (stored.sha256, stored.size) != (sha256, size):
            self._unlink(target)
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
            # Artifactory links a module artifact to the stored file by sha1 and md5
            "modules": [{"id": "%s:%s:%s" % (manifest["name"], manifest["version"], manifest["platform"]),
                         "artifacts": [{"type": os.path.splitext(f["path"])[1].lstrip(".") or "file",
                                        "name": f["path"], "path": "%s/%s" % (base, f["path"]),
                                        "sha256": f["sha256"], "sha1": f.get("sha1"), "md5": f.get("md5")}
                                       for f in manifest["files"]]}],
            "properties": {"buildInfo.env.MODEL_NAME": manifest["name"],
                           "buildInfo.env.MODEL_VERSION": manifest["version"],
                           "buildInfo.env.CHANNEL": channel},
        }
        url = "%s/api/build" % self.url

        def put():
            response = self.root.session.put(url, data=json.dumps(info), timeout=self.root.timeout,
                                             headers={"Content-Type": "application/json"})
            raise_for_status(response)
        try:
            self._call("record build-info %s #%s" % (build["name"], build["number"]), put)
        except RegistryError:
            # without Delete, a build-info cannot be re-sent (a retry of a failed publish): the
            # stored one will do if it lists exactly these files
            if self._stored_build_files(build) != _build_files(info):
                raise
        return build

    def _stored_build_files(self, build):
        try:
            return _build_files(self.build_info(build["name"], build["number"]).get("buildInfo") or {})
        except RegistryError:
            return None

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
        except FileNotFoundError:
            raise

    def _transfer(self, name, version, src, dst, move, record):
        """Promote platform by platform, each step safe to repeat: the record is stored first
        (`_promotions/<version>.json` in the target repository, so a retry completes the same
        promotion), each platform folder is copied to a path that does not exist yet (never into
        an existing folder, which Artifactory would nest) or recognised as already there with
        the same manifest, then the record goes onto the copies as properties."""
        dst_repo = self._check_repo(dst)
        record = self._promotion_intent(name, version, dst_repo, record)
        src_repo = self.repos[record["promotion.from"]]
        for platform in self._platforms(name, version, src_repo, dst_repo):
            self._place(self._path(src_repo, name, version, platform),
                        self._path(dst_repo, name, version, platform), record["promotion.mode"] == "move")
        target = self._path(dst_repo, name, version)
        self._call("record the promotion of %s %s" % (name, version),
                   lambda: target.update_properties(_escaped(record), recursive=True))
        if record["promotion.mode"] == "move":
            self._try_delete(self._path(src_repo, name, version))
        return record

    def _promotion_intent(self, name, version, dst_repo, record):
        path = self._path(dst_repo, name, PROMOTIONS, version + ".json")
        stored = self._read_json(path, "read the promotion record of %s %s" % (name, version))
        if stored and stored.get("promotion.to") == record["promotion.to"]:
            return stored  # a retry completes the promotion that was started, as it was recorded
        data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        self._call("record the promotion of %s %s" % (name, version), lambda: path.deploy(
            io.BytesIO(data), md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest()))
        return record

    def _platforms(self, name, version, src_repo, dst_repo):
        rows = self._aql(["items.find", {"$or": [{"repo": src_repo}, {"repo": dst_repo}],
                                         "path": {"$match": "%s/%s/*" % (name, version)}, "name": MANIFEST},
                          ".include", ["repo", "path", "name"]])
        return sorted({r["path"].split("/")[2] for r in rows if r["path"].count("/") == 2})

    def _place(self, src, dst, move):
        """Copy or move one platform folder to a target path that must not exist yet; a target
        that already holds the same manifest is success (a retry, or a reply that was lost)."""
        expected = self._stored_sha256(src / MANIFEST)

        def attempt():
            held = _stat_or_none(dst / MANIFEST)
            if held is not None:
                if expected is not None and held != expected:
                    raise RegistryError("%s already holds a different package than %s; not overwriting"
                                        % (_rel(dst), _rel(src)))
                if move and expected is not None:
                    self._unlink(src)
                return
            if expected is None:
                raise RegistryError("%s is missing; cannot promote it" % _rel(src))
            (src.move if move else src.copy)(dst, suppress_layouts=True, fail_fast=True)
        self._call("%s %s to %s" % ("move" if move else "copy", _rel(src), _rel(dst)), attempt)

    def _read_json(self, path, what):
        """A small JSON record, or None if there is none; a failed read is an error, not "none"."""
        def read():
            try:
                return json.loads(path.read_text())
            except (ArtifactoryException, requests.HTTPError, FileNotFoundError) as exc:
                if isinstance(exc, FileNotFoundError) or http_status(exc) == 404:
                    return None
                raise
        try:
            return self._call(what, read)
        except ValueError:
            raise RegistryError("%s: %s is not valid JSON" % (what, _rel(path)))

    def _remove(self, name, version, channel):
        repo = self.repos[channel]
        path = self._path(repo, name, version)
        self._call("delete %s %s from %s" % (name, version, channel), lambda: self._unlink(path))
        for extra in (CLAIM_DIR + "/" + version, PROMOTIONS + "/" + version + ".json"):
            self._try_delete(self._path(repo, name, extra))

    def _alias_folder(self, name):
        return self._path(self.repos[self.channels[0]], name, ALIAS_DIR)

    def _aliases(self, name):
        folder = self._alias_folder(name)

        def read_all():
            try:
                children = [c for c in folder.iterdir() if c.name.endswith(".json")]
            except (ArtifactoryException, requests.HTTPError, FileNotFoundError) as exc:
                if isinstance(exc, FileNotFoundError) or http_status(exc) == 404:
                    return {}  # no alias set yet; any other failure is an error, not "no aliases"
                raise
            return {c.name[:-5]: json.loads(c.read_text()) for c in children}
        try:
            return self._call("read aliases of %s" % name, read_all)
        except ValueError:
            raise RegistryError("an alias record of %s is not valid JSON" % name)

    def _write_alias(self, name, alias, record):
        self._check_repo(self.channels[0])
        data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        target = self._alias_folder(name) / (alias + ".json")
        self._call("set alias %s of %s" % (alias, name), lambda: target.deploy(
            io.BytesIO(data), md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest()))


def _build_files(info):
    return sorted((a.get("path"), a.get("sha256")) for m in info.get("modules", []) for a in m.get("artifacts", []))


def _stat_or_none(path):
    """The stored sha256 of a file, or None if nothing is there (404)."""
    try:
        return path.stat().sha256
    except (ArtifactoryException, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or http_status(exc) == 404:
            return None
        raise


def _exists(path):
    try:
        path.stat()
        return True
    except (ArtifactoryException, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or http_status(exc) == 404:
            return False
        raise


def _rel(path):
    return "%s/%s" % (path.repo, path.path_in_repo.strip("/"))


def _matrix(props):
    """Properties as matrix parameters that survive Artifactory's parsing: names and values fully
    percent-encoded (`/` `;` `=` `,` `\\` included), as JFrog's own clients do (URLEncoder)."""
    return {urllib.parse.quote(k, safe=""): urllib.parse.quote(str(v), safe="") for k, v in props.items()}


def _escaped(record):
    """Property values for api/metadata, where `,` separates values and `\\` escapes."""
    return {k: str(v).replace("\\", "\\\\").replace(",", "\\,") for k, v in record.items()}


def _message(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
