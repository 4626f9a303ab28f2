"""The simulated robot's inference service: loads the active model with ONNX Runtime.

`python -m pytools.fleet.agent.inference_service --root MODEL_ROOT --listen ADDR:PORT --pid-file F`

It loads `<root>/current` (manifest + runtime entry), runs one inference on zeros to prove the
model works, and answers `GET /health` with `{"ok", "version", "error"}` (HTTP 503 when the model
did not load). SIGHUP reloads the model, which is what the robot agent's restart command sends.
"""
import argparse
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ONNX Runtime's input type names -> numpy dtypes for the smoke-test input.
DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
          "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
          "tensor(bool)": "bool"}


class Model:
    """The loaded model state; replaced as a whole on reload so readers never see a mix."""

    def __init__(self, root):
        self.version, self.error, self.outputs = None, None, None
        current = os.path.join(root, "current")
        try:
            self.version = os.path.basename(os.readlink(current))
            with open(os.path.join(current, "manifest.json")) as f:
                runtime = json.load(f)["runtime"]
            self.outputs = self._smoke(os.path.join(current, runtime["entry"]), runtime)
        except Exception as exc:  # any load failure is reported by the health probe
            self.error = "%s: %s" % (type(exc).__name__, exc)

    @staticmethod
    def _smoke(path, runtime):
        import numpy as np
        import onnxruntime as ort
        if runtime.get("kind") != "onnxruntime":
            raise RuntimeError("this service runs onnxruntime packages, not %r"
                               % runtime.get("kind"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        feeds = {}
        for spec in session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
            feeds[spec.name] = np.zeros(shape, dtype=DTYPES.get(spec.type, "float32"))
        session.run(None, feeds)
        return [o.name for o in session.get_outputs()]

    def health(self):
        return {"ok": self.error is None and self.version is not None, "version": self.version,
                "error": self.error or (None if self.version else "no active model"),
                "outputs": self.outputs}


def serve(root, host, port, pid_file=None):
    state = {"model": Model(root)}
    lock = threading.Lock()

    def reload(*_):
        model = Model(root)
        with lock:
            state["model"] = model

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/health":
                self.send_error(404)
                return
            with lock:
                body = state["model"].health()
            data = json.dumps(body).encode()
            self.send_response(200 if body["ok"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep test and CI logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    # Reload in a thread: a signal handler must not block the serving loop.
    signal.signal(signal.SIGHUP, lambda *a: threading.Thread(target=reload, daemon=True).start())
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    if pid_file:
        with open(pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(pid_file + ".tmp", pid_file)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--listen", required=True, help="ADDR:PORT")
    p.add_argument("--pid-file")
    args = p.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    serve(args.root, host, int(port), args.pid_file)


if __name__ == "__main__":
    main()
