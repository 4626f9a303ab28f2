"""An Artifactory-compatible HTTP server on loopback for tests (and `python -m tests.fakes.artifactory`).

It speaks the REST calls the dohq-artifactory client makes, with Artifactory's status codes and
JSON error bodies (`{"errors": [{"status": N, "message": "..."}]}`):

    PUT    /artifactory/<repo>/<path>[;k=v...]   deploy (streamed, X-Checksum-* verified, 201)
           with X-Checksum-Deploy: true          deploy by checksum: no body, 404 if unknown
    GET    /artifactory/<repo>/<path>            download, HTTP Range (206/416), X-Checksum-* headers
    DELETE /artifactory/<repo>/<path>            delete file or folder (204)
    GET    /artifactory/api/storage/<path>       item info / folder children, ?properties, ?list
    PUT    /artifactory/api/storage/<path>?properties=k=v;...   set properties
    DELETE /artifactory/api/storage/<path>?properties=k,...     delete properties
    PATCH  /artifactory/api/metadata/<path>      {"props": {k: v | null}}
    POST   /artifactory/api/copy|move/<path>?to=/<repo>/<path>&dry=0|1
    POST   /artifactory/api/search/aql           items.find(...) (see aql.py)
    PUT    /artifactory/api/build                build-info upload; GET /api/build[/name[/number]]
    POST   /artifactory/api/search/buildArtifacts   the files a build-info links to (by sha1+md5)
    GET    /artifactory/api/repositories, /api/system/ping

Authentication: basic (user/password), `Authorization: Bearer <token>` and `X-JFrog-Art-Api`;
anonymous access is off unless `anonymous_read=True` (then GET/HEAD need no credentials).
Permissions (permissions.py): the default users are admins; `add_user(...)` adds one with
read/annotate/deploy/delete/manage on some repositories, and gets Artifactory's 403s (an
overwrite needs delete), the AQL include rule for non-admins, results filtered by read access.
Matrix parameters are parsed per path segment as Artifactory does (see _split_matrix). A copy or
move into an existing folder lands inside it, as on Artifactory. Faults can be injected (see
Fault): answer a status without acting, drop the connection after N body bytes, act and then
lose the reply (500 or a closed connection), stall; `corrupt` flips a stored byte.
"""
import base64
import hashlib
import io
import json
import os
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.artifactory import aql
from tests.fakes.artifactory.permissions import BUILDS, Forbidden, Permissions
from tests.fakes.artifactory.store import NotFound, Store, now_iso

CHUNK = 1 << 20
PREFIX = "/artifactory"


class Fault(object):
    """status: answer `status` without acting; drop: cut the body after `after_bytes`;
    lost_reply: do the work, then answer `status` (0: close the connection without a reply);
    stall: read the request, then answer nothing for `seconds` (None: until the server stops)."""

    KINDS = ("status", "drop", "lost_reply", "stall")

    def __init__(self, kind, method=None, path=None, count=1, status=500, after_bytes=0, seconds=None):
        if kind not in self.KINDS:
            raise ValueError("fault kind %r is not one of %s" % (kind, ", ".join(self.KINDS)))
        self.kind, self.method, self.count = kind, method, count
        self.path = re.compile(path) if path else None
        self.status, self.after_bytes, self.seconds = status, after_bytes, seconds

    def applies(self, method, path, has_body):
        if self.kind == "drop" and not has_body:  # only a body can be cut off midway
            return False
        return self.count > 0 and (self.method in (None, method)) and \
            (self.path is None or self.path.search(path) is not None)


class HttpError(Exception):
    def __init__(self, status, message, headers=None):
        super(HttpError, self).__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ArtifactoryServer(object):
    """Start with `with ArtifactoryServer(tmpdir) as server:`; `server.url` is the base URL."""

    def __init__(self, root, repos=("models-dev", "models-staging", "models-release"),
                 users=None, tokens=None, api_keys=None, host="127.0.0.1", port=0, anonymous_read=False):
        self.store = Store(root, repos)
        self.users = dict(users or {"admin": "password"})
        self.tokens = dict(tokens or {"test-token": "admin"})
        self.api_keys = dict(api_keys or {"test-api-key": "admin"})
        self.anonymous_read = anonymous_read  # like Artifactory's "Allow Anonymous Access" for reads
        self.permissions = Permissions()
        for user in set(self.users) | set(self.tokens.values()) | set(self.api_keys.values()):
            self.permissions.add(user, admin=True)  # the default users are admins
        if anonymous_read:
            self.permissions.add("anonymous", ["read"])
        self.stopping = threading.Event()
        self.faults = []
        self.log = []  # (method, path, body bytes received, status)
        self.checksum_headers = {}  # repo path -> the X-Checksum-* headers its last deploy carried
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"app": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://%s:%d%s" % (self.httpd.server_address[0], self.port, PREFIX)

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()  # releases stalled requests
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread:
            self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- test controls ----------------------------------------------------------------------

    def add_user(self, name, password=None, token=None, actions=(), repos=None, admin=False):
        """A user with a permission target: `actions` (read, annotate, deploy, delete, manage)
        on `repos` (default: every repository; builds are the repository 'artifactory-build-info')."""
        if password:
            self.users[name] = password
        if token:
            self.tokens[token] = name
        self.permissions.add(name, actions, repos, admin)

    def inject(self, kind, method=None, path=None, count=1, status=500, after_bytes=0, seconds=None):
        """See Fault: 'status', 'drop', 'lost_reply', 'stall'."""
        fault = Fault(kind, method, path, count, status, after_bytes, seconds)
        with self._lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method, path, has_body):
        with self._lock:
            for fault in self.faults:
                if fault.applies(method, path, has_body):
                    fault.count -= 1
                    return fault
        return None

    def corrupt(self, repo_path, offset=0):
        """Flip one byte of the binary behind an item (a filestore fault)."""
        item = self.store.node(repo_path.strip("/"))
        with open(self.store.blob_path(item["sha256"]), "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))

    def record(self, method, path, received, status):
        with self._lock:
            self.log.append((method, path, received, status))

    def uploads(self, path_contains=""):
        """Body bytes received by successful deploys, per request (for 'no body sent' checks)."""
        with self._lock:
            return [(p, n) for m, p, n, s in self.log if m == "PUT" and s == 201 and path_contains in p]


def _error_body(status, message):
    return json.dumps({"errors": [{"status": status, "message": message}]}, indent=2).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Artifactory/7.77.0"
    # TCP_NODELAY, as Artifactory's Tomcat sets it: otherwise every small reply waits out the
    # client's delayed ACK (~40 ms per request), which no real server shows
    disable_nagle_algorithm = True
    app = None  # set by ArtifactoryServer

    def log_message(self, *args):
        pass

    # -- plumbing -----------------------------------------------------------------------------

    def _dispatch(self):
        self.received, self.body_read = 0, False
        try:
            raw_path, _, query = self.path.partition("?")
            if not raw_path.startswith(PREFIX + "/"):
                raise HttpError(404, "Not Found")
            self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
            self.user = self._authenticate()
            # faults match the path without deploy matrix parameters (;key=value)
            fault = self.app.take_fault(self.command, raw_path.split(";")[0], self._has_body())
            if fault is not None and fault.kind == "lost_reply":
                return self._lose_reply(fault, raw_path)
            if fault is not None:
                self._apply_fault(fault)
                return
            self._route(raw_path[len(PREFIX) + 1:])
        except Forbidden as exc:
            self._answer_error(HttpError(403, str(exc)))
        except HttpError as exc:
            self._answer_error(exc)
        except (ConnectionError, socket.timeout):
            self.app.record(self.command, self.path, self.received, 0)  # 0: no response
            self.close_connection = True

    def _answer_error(self, exc):
        if self._has_body() and not self.body_read:
            self.close_connection = True  # unread body bytes must not be taken for a request
        self._send_json(exc.status, None, body=_error_body(exc.status, exc.message), headers=exc.headers)

    def _lose_reply(self, fault, raw_path):
        """Do the request for real, then throw the answer away (the client never learns it worked)."""
        real, self.wfile = self.wfile, io.BytesIO()
        self.recording = False
        try:
            self._route(raw_path[len(PREFIX) + 1:])
        except (HttpError, Forbidden):
            pass
        finally:
            self.wfile, self.recording = real, True
        if self._has_body() and not self.body_read:
            self.close_connection = True
        if fault.status:
            self.close_connection = True
            return self._send_json(fault.status, None, body=_error_body(fault.status, "Internal Server Error"))
        self.app.record(self.command, self.path, self.received, 0)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    recording = True  # False while a lost reply is being produced (the client never sees it)

    def send_response(self, code, message=None):
        # logged before the response goes out, so a client never sees a reply the log lacks
        if self.recording:
            self.app.record(self.command, self.path, self.received, code)
        BaseHTTPRequestHandler.send_response(self, code, message)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def _has_body(self):
        return int(self.headers.get("Content-Length") or 0) > 0 or \
            self.headers.get("Transfer-Encoding", "").lower() == "chunked"

    def _authenticate(self):
        header = self.headers.get("Authorization", "")
        if self.headers.get("X-JFrog-Art-Api"):
            user = self.app.api_keys.get(self.headers["X-JFrog-Art-Api"])
        elif header.startswith("Bearer "):
            user = self.app.tokens.get(header[7:].strip())
        elif header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = None, None
            user = name if name in self.app.users and self.app.users[name] == password else None
        elif self.app.anonymous_read and self.command in ("GET", "HEAD"):
            return "anonymous"
        else:
            raise HttpError(401, "Authentication is required",
                            {"WWW-Authenticate": 'Basic realm="Artifactory Realm"'})
        if user is None:
            raise HttpError(401, "Bad credentials", {"WWW-Authenticate": 'Basic realm="Artifactory Realm"'})
        return user

    def _apply_fault(self, fault):
        if fault.kind == "stall":
            self._read_body()
            self.app.stopping.wait(fault.seconds)
            self.app.record(self.command, self.path, self.received, 0)
            self.close_connection = True
            return
        if fault.kind == "drop":
            self._read_body(limit=fault.after_bytes, sink=None)
            self.app.record(self.command, self.path, self.received, 0)  # 0: no response
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.close_connection = True  # the body (if any) is not read
        self._send_json(fault.status, None, body=_error_body(fault.status, "Internal Server Error"))

    def _send_json(self, status, value, body=None, headers=None):
        data = body if body is not None else json.dumps(value, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_empty(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self, limit=None, sink=None):
        """Stream the request body (Content-Length or chunked) to `sink` in bounded chunks."""
        def take(n):
            while n > 0:
                want = min(n, CHUNK) if limit is None else min(n, CHUNK, limit - self.received)
                if want <= 0:
                    return False
                block = self.rfile.read(want)
                if not block:
                    raise ConnectionError("client closed the connection mid-body")
                self.received += len(block)
                n -= len(block)
                if sink:
                    sink(block)
            return True

        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.body_read = True
                    return
                if not take(size):
                    return
                self.rfile.readline()
        else:
            take(int(self.headers.get("Content-Length") or 0))
        self.body_read = limit is None

    def _read_json(self):
        chunks = []
        self._read_body(sink=chunks.append)
        try:
            return json.loads(b"".join(chunks).decode() or "null")
        except ValueError:
            raise HttpError(400, "Malformed JSON body")

    # -- routing ------------------------------------------------------------------------------

    def _route(self, rest):
        method = self.command
        if rest.startswith("api/"):
            parts = rest.split("/", 2)
            area = parts[1]
            tail = urllib.parse.unquote(parts[2]) if len(parts) > 2 else ""
            if area == "storage":
                return {"GET": self._storage_get, "HEAD": self._storage_get, "PUT": self._props_put,
                        "DELETE": self._props_delete}.get(method, self._not_allowed)(tail)
            if area == "metadata" and method == "PATCH":
                return self._metadata_patch(tail)
            if area in ("copy", "move") and method == "POST":
                return self._copy(tail, move=area == "move")
            if area == "search" and tail == "aql" and method == "POST":
                return self._aql()
            if area == "search" and tail == "buildArtifacts" and method == "POST":
                return self._build_artifacts()
            if area == "build":
                return self._build(method, parts[2] if len(parts) > 2 else "")
            if area == "repositories" and method == "GET":
                return self._send_json(200, [{"key": k, "type": "LOCAL", "url": "%s/%s" % (self.app.url, k)}
                                             for k in sorted(self.app.store.repos)])
            if area == "system" and tail == "ping":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            raise HttpError(404, "Not Found")
        path, matrix = _split_matrix(rest)
        handler = {"PUT": self._deploy, "GET": self._download, "HEAD": self._download,
                   "DELETE": self._delete}.get(method, self._not_allowed)
        return handler(path, matrix) if method == "PUT" else handler(path)

    def _require(self, action, repo_path):
        self.app.permissions.require(self.user, action, repo_path)

    def _require_write(self, target):
        """Deploy, plus delete when an existing file would be overwritten (Artifactory's rule)."""
        self._require("deploy", target)
        if target in self.app.store.files:
            self._require("delete", target)

    def _not_allowed(self, *args):
        raise HttpError(405, "Method Not Allowed")

    def _repo_path(self, path):
        clean = path.strip("/")
        repo = clean.split("/", 1)[0]
        if repo not in self.app.store.repos:
            raise HttpError(404, "Repository '%s' not found" % repo) if self.command in ("PUT", "POST") \
                else HttpError(404, "Unable to find item")
        if any(p in (".", "..") for p in clean.split("/")):
            raise HttpError(400, "Illegal path: %s" % path)
        return clean

    # -- deploy / download / delete -------------------------------------------------------------

    def _deploy(self, path, matrix):
        store = self.app.store
        if path.endswith("/"):
            target = self._repo_path(path)
            self._require("deploy", target)
            self._read_body()
            store.make_folder(target, self.user)
            return self._send_json(201, self._info(target))
        target = self._repo_path(path)
        self._require_write(target)
        props = matrix
        if self.headers.get("X-Checksum-Deploy", "").lower() == "true":
            return self._deploy_by_checksum(target, props)
        tmp = store.incoming_path()
        hashes = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()]
        try:
            with open(tmp, "wb") as f:
                def sink(block):
                    for h in hashes:
                        h.update(block)
                    f.write(block)
                self._read_body(sink=sink)
            md5, sha1, sha256 = (h.hexdigest() for h in hashes)
            checks = (("X-Checksum-Sha256", sha256, "sha256"), ("X-Checksum-Sha1", sha1, "sha1"),
                      ("X-Checksum-Md5", md5, "md5"))
            self.app.checksum_headers[target] = sorted(h for h, _, _ in checks if self.headers.get(h))
            for header, actual, kind in checks:
                sent = self.headers.get(header)
                if sent and sent.lower() != actual:
                    raise HttpError(409, "Checksum error for '%s': received %s '%s' but actual is '%s'"
                                    % (target, kind, sent, actual))
            store.add_blob(tmp, sha256, sha1, md5, self.received)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        try:
            self._require_write(target)  # checked again: another deploy may have landed meanwhile
            store.put_file(target, sha256, self.user, props,
                           only_new=not self.app.permissions.can(self.user, "delete", target.split("/")[0]))
        except ValueError as exc:
            raise HttpError(409, str(exc))
        except FileExistsError:
            self.app.permissions.require(self.user, "delete", target)
        return self._send_json(201, self._deploy_response(target))

    def _deploy_by_checksum(self, target, props):
        self._read_body()
        sha256 = self.headers.get("X-Checksum-Sha256")
        sha1 = self.headers.get("X-Checksum-Sha1")
        generic = self.headers.get("X-Checksum")
        if generic:
            sha256, sha1 = (generic, None) if len(generic) == 64 else (None, generic)
        if not sha256 and not sha1:
            raise HttpError(400, "Missing checksum for checksum deploy of '%s'" % target)
        found = self.app.store.find_blob(sha256=sha256 and sha256.lower(), sha1=sha1 and sha1.lower())
        if not found:
            raise HttpError(404, "Checksum deploy failed. No binary with checksum '%s' was found" % (sha256 or sha1))
        try:
            self.app.store.put_file(target, found, self.user, props,
                                    only_new=not self.app.permissions.can(self.user, "delete", target.split("/")[0]))
        except FileExistsError:
            self.app.permissions.require(self.user, "delete", target)
        return self._send_json(201, self._deploy_response(target))

    def _deploy_response(self, target):
        info = self._info(target)
        info.pop("lastModified", None)
        info.pop("modifiedBy", None)
        info.pop("lastUpdated", None)
        return info

    def _download(self, path):
        target = self._repo_path(path)
        self._require("read", target)
        try:
            kind, node = self.app.store.get(target)
        except NotFound:
            raise HttpError(404, "File not found.")
        if kind == "folder":
            listing = "".join('<a href="%s">%s</a>\n' % (n + ("/" if d else ""), n)
                              for n, d in self.app.store.children(target)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(listing)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(listing)
            return
        size = node["size"]
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, size)
            if parsed == "unsatisfiable":
                raise HttpError(416, "Requested range not satisfiable", {"Content-Range": "bytes */%d" % size})
            if parsed:
                (start, end), status = parsed, 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(max(end - start + 1, 0)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("ETag", node["sha1"])
        self.send_header("Last-Modified", node["lastModified"])
        self.send_header("X-Checksum-Sha1", node["sha1"])
        self.send_header("X-Checksum-Md5", node["md5"])
        self.send_header("X-Checksum-Sha256", node["sha256"])
        self.send_header("X-Artifactory-Filename", os.path.basename(target))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(self.app.store.blob_path(node["sha256"]), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                block = f.read(min(CHUNK, remaining))
                if not block:
                    break
                self.wfile.write(block)
                remaining -= len(block)

    def _delete(self, path):
        target = self._repo_path(path)
        self._require("delete", target)
        try:
            self.app.store.delete(target)
        except NotFound:
            raise HttpError(404, "Could not locate artifact '%s'." % target)
        except ValueError as exc:
            raise HttpError(400, str(exc))
        return self._send_empty(204)

    # -- storage, properties, metadata -------------------------------------------------------

    def _info(self, target):
        store = self.app.store
        kind, node = store.get(target)
        repo, _, rel = target.partition("/")
        info = {"repo": repo, "path": "/" + rel, "created": node["created"], "createdBy": node["createdBy"],
                "lastModified": node["lastModified"], "modifiedBy": node["modifiedBy"],
                "lastUpdated": node["lastUpdated"], "uri": "%s/api/storage/%s" % (self.app.url, target)}
        if kind == "file":
            sums = {"sha1": node["sha1"], "md5": node["md5"], "sha256": node["sha256"]}
            info.update({"downloadUri": "%s/%s" % (self.app.url, target), "mimeType": "application/octet-stream",
                         "size": str(node["size"]), "checksums": sums, "originalChecksums": dict(sums)})
        else:
            info["children"] = [{"uri": "/" + n, "folder": d} for n, d in store.children(target)]
        return info

    def _storage_get(self, path):
        target = self._repo_path(path)
        self._require("read", target)
        try:
            kind, node = self.app.store.get(target)
        except NotFound:
            raise HttpError(404, "Unable to find item")
        if "properties" in self.query:
            if not node["props"]:
                raise HttpError(404, "No properties could be found.")
            return self._send_json(200, {"properties": node["props"],
                                         "uri": "%s/api/storage/%s" % (self.app.url, target)})
        if "list" in self.query:
            files, _ = self.app.store.subtree(target)
            rows = [{"uri": p[len(target):], "size": self.app.store.files[p]["size"], "folder": False,
                     "sha1": self.app.store.files[p]["sha1"], "sha2": self.app.store.files[p]["sha256"]}
                    for p in sorted(files)]
            return self._send_json(200, {"uri": "%s/api/storage/%s" % (self.app.url, target),
                                         "created": now_iso(), "files": rows})
        return self._send_json(200, self._info(target))

    def _props_put(self, path):
        target = self._repo_path(path)
        self._require("annotate", target)
        raw = (self.query.get("properties") or [""])[0]
        recursive = (self.query.get("recursive") or ["1"])[0] != "0"
        self._read_body()
        try:
            self.app.store.set_props(target, _property_list(raw), recursive)
        except NotFound:
            raise HttpError(404, "Unable to find item")
        return self._send_empty(204)

    def _props_delete(self, path):
        target = self._repo_path(path)
        self._require("annotate", target)
        names = [n for n in (self.query.get("properties") or [""])[0].split(",") if n]
        recursive = (self.query.get("recursive") or ["1"])[0] != "0"
        try:
            self.app.store.set_props(target, {n: None for n in names}, recursive)
        except NotFound:
            raise HttpError(404, "Unable to find item")
        return self._send_empty(204)

    def _metadata_patch(self, path):
        target = self._repo_path(path)
        self._require("annotate", target)
        body = self._read_json()
        if not isinstance(body, dict) or not isinstance(body.get("props"), dict):
            raise HttpError(400, "Expected a JSON object with 'props'")
        recursive = (self.query.get("recursive") or ["0"])[0] == "1" or \
            (self.query.get("recursiveProperties") or ["0"])[0] == "1"
        props = {k: None if v is None else (v if isinstance(v, list) else _split_values(str(v)))
                 for k, v in body["props"].items()}
        try:
            self.app.store.set_props(target, props, recursive)
        except NotFound:
            raise HttpError(404, "Unable to find item")
        return self._send_empty(204)

    def _copy(self, path, move):
        src = self._repo_path(path)
        dst_raw = (self.query.get("to") or [""])[0]
        if not dst_raw:
            raise HttpError(400, "Missing 'to' parameter")
        dst = self._repo_path(dst_raw)
        dry = (self.query.get("dry") or ["0"])[0] == "1"
        self._read_body()
        self._require("read", src)
        self._require("deploy", dst)
        if move:
            self._require("delete", src)
        verb = "moving" if move else "copying"
        try:
            files, folders = self.app.store.copy(
                src, dst, self.user, move=move, dry=dry,
                may_overwrite=self.app.permissions.can(self.user, "delete", dst.split("/")[0]))
        except FileExistsError as exc:
            raise Forbidden("Not enough permissions to delete/overwrite artifact '%s' (user '%s' needs "
                            "DELETE permission)." % (str(exc).replace("/", ":", 1), self.user))
        except NotFound:
            raise HttpError(404, "Could not find source path '%s'" % src)
        except ValueError as exc:
            raise HttpError(409, str(exc))
        message = "%s %s to %s completed successfully, %d artifacts and %d folders were %s" % (
            verb, src.replace("/", ":", 1), dst.replace("/", ":", 1), files, folders,
            "moved" if move else "copied")
        return self._send_json(200, {"messages": [{"level": "INFO", "message": message}]})

    # -- AQL and build-info ---------------------------------------------------------------------

    def _aql(self):
        chunks = []
        self._read_body(sink=chunks.append)
        try:
            criteria, include, sort, offset, limit = aql.parse(b"".join(chunks).decode())
            if not self.app.permissions.is_admin(self.user) and \
                    not {"repo", "path", "name"} <= set(include or []):
                raise aql.AqlError("For permissions reasons AQL demands the following fields: repo, path and name.")
            rows = [r for r in self._aql_rows(aql.wants_type(criteria)) if aql.matches(r, criteria)
                    and self.app.permissions.can(self.user, "read", r["repo"])]
            rows = aql.sort_rows(rows, sort)
        except aql.AqlError as exc:
            raise HttpError(400, str(exc))
        total = len(rows)
        rows = rows[offset:offset + limit if limit is not None else None]
        results = [aql.project(r, include) for r in rows]
        return self._send_json(200, {"results": results, "range": {
            "start_pos": offset, "end_pos": offset + len(results), "total": total}})

    def _aql_rows(self, only_type):
        store = self.app.store
        with store.lock:
            nodes = [(p, "file", n) for p, n in store.files.items()] + \
                    [(p, "folder", n) for p, n in store.folders.items() if "/" in p]
            for path, kind, node in nodes:
                if only_type and kind != only_type:
                    continue
                repo, _, rel = path.partition("/")
                row = {"repo": repo, "path": os.path.dirname(rel) or ".", "name": os.path.basename(rel),
                       "type": kind, "created": node["created"], "created_by": node["createdBy"],
                       "modified": node["lastModified"], "modified_by": node["modifiedBy"],
                       "updated": node["lastUpdated"], "properties": {k: list(v) for k, v in node["props"].items()}}
                if kind == "file":
                    row.update({"size": node["size"], "sha256": node["sha256"], "actual_sha1": node["sha1"],
                                "actual_md5": node["md5"]})
                yield row

    def _build_artifacts(self):
        """POST api/search/buildArtifacts: the stored files a build-info links to. Artifactory links
        a module artifact to an item by sha1 and md5, and only items carrying the build's
        build.name and build.number properties."""
        query = self._read_json() or {}
        name, number = query.get("buildName"), str(query.get("buildNumber"))
        self._require("read", BUILDS + "/" + str(name))
        info = self.app.store.builds.get(name, {}).get(number)
        if info is None:
            raise HttpError(404, "No build was found for build name: %s, build number: %s" % (name, number))
        wanted = {(a.get("sha1"), a.get("md5")) for m in info.get("modules", []) for a in m.get("artifacts", [])}
        with self.app.store.lock:
            hits = sorted(p for p, item in self.app.store.files.items()
                          if (item["sha1"], item["md5"]) in wanted
                          and item["props"].get("build.name") == [name]
                          and item["props"].get("build.number") == [number]
                          and self.app.permissions.can(self.user, "read", p.split("/")[0]))
        if not hits:
            raise HttpError(404, "No artifacts found for build %s #%s" % (name, number))
        return self._send_json(200, {"results": [{"downloadUri": "%s/%s" % (self.app.url, p)} for p in hits]})

    def _build(self, method, tail):
        builds = self.app.store.builds
        if method == "PUT" and not tail.strip("/"):
            info = self._read_json()
            if not isinstance(info, dict) or not all(info.get(k) for k in ("name", "number", "started")):
                raise HttpError(400, "Build info must have name, number and started")
            self._require("deploy", BUILDS + "/" + info["name"])
            if str(info["number"]) in builds.get(info["name"], {}):
                self._require("delete", BUILDS + "/" + info["name"])
            with self.app.store.lock:
                builds.setdefault(info["name"], {})[str(info["number"])] = info
            return self._send_empty(204)
        if method != "GET":
            raise HttpError(405, "Method Not Allowed")
        parts = [urllib.parse.unquote(p) for p in tail.split("?")[0].split("/") if p]
        self._require("read", BUILDS + "/" + (parts[0] if parts else ""))
        uri = "%s/api/build" % self.app.url
        if not parts:
            return self._send_json(200, {"uri": uri, "builds": [
                {"uri": "/" + urllib.parse.quote(n, safe=""),
                 "lastStarted": max(b["started"] for b in runs.values())}
                for n, runs in sorted(builds.items())]})
        runs = builds.get(parts[0])
        if not runs:
            raise HttpError(404, "No build was found for build name: %s" % parts[0])
        if len(parts) == 1:
            return self._send_json(200, {"uri": uri + "/" + parts[0], "buildsNumbers": [
                {"uri": "/" + n, "started": b["started"]} for n, b in sorted(runs.items())]})
        if parts[1] not in runs:
            raise HttpError(404, "No build was found for build name: %s, build number: %s" % tuple(parts[:2]))
        return self._send_json(200, {"uri": "%s/%s/%s" % (uri, parts[0], parts[1]),
                                     "buildInfo": runs[parts[1]]})


def _split_values(text):
    """Artifactory property value lists are comma separated, with backslash escapes."""
    values, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            values.append(current)
            current = ""
        else:
            current += ch
    return values + [current]


def _property_list(raw):
    """`k=v1,v2;k2=v` (the ?properties= syntax) -> {k: [v1, v2], k2: [v]}."""
    props = {}
    for part in re.split(r"(?<!\\);", raw):
        if part:
            key, _, value = part.partition("=")
            props[key] = _split_values(value)
    return props


def _split_matrix(raw):
    """A raw request path -> (decoded path, {key: [values]}), parsed as Artifactory does.

    Matrix parameters may sit on any path segment (`/repo;a=1/dir/file;b=2`), so the raw path is
    split on `/` first and each segment on `;`; only then are names and values percent-decoded.
    A value must therefore percent-encode `/` and `;` (as JFrog's clients do, URLEncoder-style):
    a raw `/` ends the value and the rest becomes path. A key repeated gives several values; a
    `,` is a plain character here (only the ?properties= syntax splits values on commas).
    """
    segments, props = [], {}
    for segment in raw.split("/"):
        name, *params = segment.split(";")
        segments.append(urllib.parse.unquote(name))
        for param in params:
            if param:
                key, _, value = param.partition("=")
                props.setdefault(urllib.parse.unquote(key), []).append(urllib.parse.unquote(value))
    path = "/".join(segments)
    while "//" in path:  # an empty segment (`a//b`) collapses, as in the servlet container
        path = path.replace("//", "/")
    return path, props


def _parse_range(header, size):
    """Single byte range -> (start, end); None to ignore the header; 'unsatisfiable'."""
    m = re.match(r"^bytes=(\d*)-(\d*)$", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        length = int(m.group(2))
        if length == 0:
            return "unsatisfiable"
        return max(size - length, 0), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)

