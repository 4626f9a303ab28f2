"""One winner among concurrent Artifactory publishers of the same version (docs/registry.md).

Artifactory has no create-if-absent for an identity that may overwrite, so every publisher
deploys its own claim file under a path no one else writes:

    <repo>/<model>/_claims/<version>/<platform>/<generation>/<claim id>.json

and then lists the claims of that generation (one AQL query). The claim the server created first
(server `created` time, then id) wins; every other publisher removes its own claim and stops
before it has uploaded a byte. The winner lists again right before its manifest goes up, so a
claim that became visible late still stops it. `generation` is `new` for a version that does
not exist yet, else the sha256 of the manifest being replaced (concurrent replacements of one
pre-release race among themselves; a later replacement starts a new generation).
With a deploy identity that has no delete/overwrite permission the server itself refuses a
second write to any path, so two publishers can never overwrite each other's files either.
"""
import hashlib
import io
import json
import os
import socket
import time
import uuid

from pytools.core.package import utc_now
from pytools.registry.base import RegistryError, current_user

CLAIM_DIR = "_claims"
WITHDRAWN = "claim.withdrawn"  # set on a claim its publisher could not delete


class Claim(object):
    def __init__(self, registry, repo, name, version, platform, generation, build):
        self.registry, self.repo = registry, repo
        self.name, self.version, self.platform = name, version, platform
        self.folder_rel = "/".join([name, CLAIM_DIR, version, platform, generation])
        self.id = "%s-%s" % (time.strftime("%Y%m%dT%H%M%S", time.gmtime()), uuid.uuid4().hex[:12])
        self.record = {"id": self.id, "build": build, "by": current_user(),
                       "host": socket.gethostname(), "pid": os.getpid(), "at": utc_now()}
        self.path = registry._path(repo, self.folder_rel, self.id + ".json")
        self.held = False

    def take(self):
        """Deploy this claim and check it is the first; raise RegistryError naming the winner."""
        data = (json.dumps(self.record, sort_keys=True) + "\n").encode()
        digest = hashlib.sha256(data).hexdigest()
        try:
            self.registry._call("claim %s %s (%s)" % (self.name, self.version, self.platform),
                                lambda: self.path.deploy(io.BytesIO(data), md5=hashlib.md5(data).hexdigest(),
                                                         sha1=hashlib.sha1(data).hexdigest(), sha256=digest))
        except RegistryError:
            # a retry refused as an overwrite because the first attempt landed (its reply lost)
            if self.registry._stored_sha256(self.path) != digest:
                raise
        self.held = True
        self.check()

    def check(self):
        """Still the first claim? Otherwise let go of ours and say who won."""
        rows = self.registry._aql(["items.find", {"repo": self.repo, "path": self.folder_rel},
                                   ".include", ["repo", "path", "name", "created", "property.*"]])
        ordered = sorted((r.get("created", ""), r["name"]) for r in rows if r["name"].endswith(".json")
                         and {"key": WITHDRAWN, "value": "true"} not in r.get("properties", []))
        first = ordered[0][1][:-5] if ordered else None
        if first == self.id:
            return
        self.release()
        raise RegistryError("%s %s (%s) is being published by another publisher (%s); this publish "
                            "lost the race and stopped without changing the stored version"
                            % (self.name, self.version, self.platform, self._describe(first)))

    def _describe(self, claim_id):
        if claim_id is None:
            return "its claim vanished"
        try:
            other = json.loads(self.registry._path(self.repo, self.folder_rel, claim_id + ".json").read_text())
        except Exception:  # the winner is named when its claim can be read; the refusal stands anyway
            return "claim %s" % claim_id
        return "build %s by %s at %s" % (other.get("build") or "?", other.get("by") or "?", other.get("at") or "?")

    def release(self):
        """Remove our own claim; an identity without delete permission marks it withdrawn
        instead (Annotate), so it never blocks a later publisher."""
        if not self.held:
            return
        self.held = False
        if self.registry._try_delete(self.path):
            return
        try:
            self.registry._call("withdraw claim %s" % self.id,
                                lambda: self.path.update_properties({WITHDRAWN: "true"}))
        except Exception:  # best effort: the failure being reported matters more
            pass
