"""Serve a package directory over HTTP with Range support, for pull-mode rollouts.

Robots download from the registry's URL when there is one; for a local package (and for the
simulated fleet) the controller serves the directory itself. Only files of the directory are
served (no listing, no `..`), single byte ranges `bytes=N-` / `bytes=N-M` answer 206.
"""
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
BLOCK = 1 << 18


def make_handler(root):
    root = os.path.realpath(root)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            rel = self.path.split("?", 1)[0].lstrip("/")
            full = os.path.realpath(os.path.join(root, rel))
            if not rel or not full.startswith(root + os.sep) or not os.path.isfile(full):
                self.send_error(404)
                return
            size = os.path.getsize(full)
            start, end = 0, size - 1
            match = RANGE_RE.match(self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with open(full, "rb") as f:
                f.seek(start)
                left = end - start + 1
                try:
                    while left:
                        block = f.read(min(BLOCK, left))
                        self.wfile.write(block)
                        left -= len(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the robot went away; it resumes with a new range request

        def log_message(self, *args):
            pass

    return Handler


class PackageServer:
    """`with PackageServer(dir, "127.0.0.1") as srv: srv.url` serves until the block ends."""

    def __init__(self, directory, host="127.0.0.1", port=0):
        self.server = ThreadingHTTPServer((host, port), make_handler(directory))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.2}, daemon=True)

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return "http://%s:%d/" % (host, port)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
