"""Registry benchmark: publishing to the Artifactory-compatible server on loopback.

    python bench/bench_registry.py [--size-mb 1024] [--versions 1000]

1. Publish a 1 GiB package with `pytools` (dohq-artifactory client) vs. `curl -T` of the same
   bytes to the same server (each against a fresh server, best of --rounds): ratio >= 0.8.
   The publisher's time includes verifying the package (sha256 of every byte); curl's does not.
2. Peak memory (max RSS) of the publishing process: < 200 MB.
3. Re-publish identical bytes under a new version: no file body sent, < 2 s.
4. Resolve `latest` among 1,000 versions, Artifactory (one AQL query) and local: < 1 s each.
5. The one-winner protocol's share of a 1 GiB publish: what it adds to every publish (deploy a
   claim, list the claims once before the uploads and once before the manifest), timed against
   the same server, over the publish time of 1.: target < 5 %.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from pytools.core.package import write_package  # noqa: E402
from pytools.registry import open_registry  # noqa: E402

TOKEN = "test-token"
PUBLISHER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from pytools.registry import open_registry
registry = open_registry({"backend": "artifactory", "url": sys.argv[2]})
start = time.perf_counter()
result = registry.publish(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "bytes_sent": result["bytes_sent"]}))
"""


class Server(object):
    """The loopback Artifactory as a child process (so it does not count in the publisher's memory)."""

    def __init__(self, root):
        self.root = root
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.artifactory", "--root", root],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.url = line.split(" at ")[1].split()[0]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def make_payload(path, size):
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            f.write(block)
            remaining -= len(block)


def make_package(dest, version, payload):
    write_package(dest, {"model.plan": (payload, "engine")}, {
        "name": "bench-model", "version": version, "platform": "trt8.5-sm72-l4t35.3.1",
        "git_commit": None, "build_url": None,
        "runtime": {"kind": "tensorrt", "entry": "model.plan", "precision": "fp16", "inputs": [],
                    "outputs": [], "constraints": {}},
        "lineage": {}, "evidence": {"parity": {"passed": True}, "bench": {}}})
    return dest


def curl_put(url, path):
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Authorization: Bearer " + TOKEN,
                    "-T", path, url], check=True)
    return time.perf_counter() - start


def run_publisher(package_dir, url):
    env = dict(os.environ, ARTIFACTORY_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, package_dir, url, ROOT], env=env,
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    if status:
        raise SystemExit("publisher failed (status %d)" % status)
    result = json.loads(out)
    result["max_rss_mb"] = usage.ru_maxrss / 1024.0
    return result


def populate_artifactory(url, count):
    from artifactory import ArtifactoryPath
    import io
    root = ArtifactoryPath(url, token=TOKEN)
    for i in range(count):
        version = "1.%d.%d" % (i // 100, i % 100) if i % 10 else "1.%d.%d-mr.%d" % (i // 100, i % 100, i)
        body = json.dumps({"name": "many", "version": version}).encode()
        (root / "models-dev" / "many" / version / "onnxruntime" / "manifest.json").deploy(
            io.BytesIO(body), parameters={"model.name": "many", "model.version": version})


def populate_local(path, count, work):
    registry = open_registry({"path": path}, environ={})
    src = os.path.join(work, "src.bin")
    with open(src, "wb") as f:
        f.write(b"tiny")
    pkg = os.path.join(work, "tiny-pkg")
    write_package(pkg, {"model.onnx": (src, "onnx")}, {
        "name": "many", "version": "0.0.1", "platform": "onnxruntime", "runtime": {"kind": "onnxruntime"},
        "evidence": {"parity": {"passed": True}}})
    registry.publish(pkg)
    template = os.path.join(path, "dev", "many", "0.0.1")
    for i in range(count - 1):  # clone the published layout; publishing 1,000 times measures nothing new
        shutil.copytree(template, os.path.join(path, "dev", "many", "1.%d.%d" % (i // 100, i % 100)))
    return registry


def claim_protocol_seconds(url, rounds=9):
    """The requests the protocol adds to a successful publish, each round on a fresh version."""
    from pytools.registry.claims import Claim
    os.environ["ARTIFACTORY_TOKEN"] = TOKEN
    registry = open_registry({"backend": "artifactory", "url": url})
    times = []
    for i in range(rounds):
        claim = Claim(registry, "models-dev", "bench-model", "9.0.%d" % i, "trt8.5-sm72-l4t35.3.1", "new",
                      "bench #%d" % i)
        start = time.perf_counter()
        claim.take()   # deploy + first listing
        claim.check()  # the listing before the manifest
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="best of N (the machine may be shared; each round uses a fresh server)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-registry-")
    verdicts = []
    try:
        size = args.size_mb << 20
        payload = os.path.join(work, "payload.bin")
        make_payload(payload, size)
        pkg = make_package(os.path.join(work, "pkg-1.0.0"), "1.0.0", payload)

        curl_times, publish_runs = [], []
        for _ in range(args.rounds):
            server = Server(os.path.join(work, "server"))
            try:
                curl_times.append(curl_put(server.url + "/models-dev/curl/model.plan", payload))
            finally:
                server.close()
            server = Server(os.path.join(work, "server"))
            try:
                publish_runs.append(run_publisher(pkg, server.url))
            finally:
                server.close()
        curl_s = min(curl_times)
        best = min(publish_runs, key=lambda r: r["seconds"])
        mb = size / float(1 << 20)
        ratio = curl_s / best["seconds"]
        print("publish %d MiB: pytools %.2f s (%.0f MiB/s), curl -T %.2f s (%.0f MiB/s); "
              "load average %.1f" % (mb, best["seconds"], mb / best["seconds"], curl_s, mb / curl_s,
                                     os.getloadavg()[0]))
        verdicts.append(report("ratio publish/curl throughput", ratio, ">=", 0.8))
        peak = max(r["max_rss_mb"] for r in publish_runs)
        verdicts.append(report("publisher peak memory MB", peak, "<", 200))

        server = Server(os.path.join(work, "server"))
        try:
            claim_s = claim_protocol_seconds(server.url)
        finally:
            server.close()
        print("one-winner protocol: %.1f ms per publish (claim + 2 listings, median of 9)" % (claim_s * 1000))
        verdicts.append(report("one-winner protocol / 1 GiB publish time", claim_s / best["seconds"], "<", 0.05))

        server = Server(os.path.join(work, "server"))
        try:
            run_publisher(pkg, server.url)
            republished = []
            for patch in (1, 2):
                version = "1.0.%d" % patch
                again = make_package(os.path.join(work, "pkg-" + version), version, payload)
                republished.append(run_publisher(again, server.url))
                shutil.rmtree(again)
            second = min(republished, key=lambda r: r["seconds"])
            print("re-publish identical bytes as a new version (best of 2): %d body bytes sent "
                  "(manifest only), %.2f s" % (second["bytes_sent"], second["seconds"]))
            verdicts.append(report("re-publish bytes sent / file size", second["bytes_sent"] / float(size),
                                   "<", 0.001))
            verdicts.append(report("re-publish seconds", second["seconds"], "<", 2.0))

            populate_artifactory(server.url, args.versions)
            os.environ["ARTIFACTORY_TOKEN"] = TOKEN
            registry = open_registry({"backend": "artifactory", "url": server.url})
            seconds, entry = timed(lambda: registry.resolve("many", "latest"))
            print("artifactory: latest of %d versions is %s" % (args.versions, entry["version"]))
            verdicts.append(report("artifactory resolve latest of %d seconds" % args.versions, seconds, "<", 1.0))
        finally:
            server.close()

        local = populate_local(os.path.join(work, "local-registry"), args.versions, work)
        seconds, entry = timed(lambda: local.resolve("many", "latest"))
        print("local: latest of %d versions is %s" % (args.versions, entry["version"]))
        verdicts.append(report("local resolve latest of %d seconds" % args.versions, seconds, "<", 1.0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(verdicts) else 1


def report(label, value, op, limit):
    ok = value >= limit if op == ">=" else value < limit
    print("%s: %.3f (%s %s required) %s" % (label, value, op, limit, "PASS" if ok else "FAIL"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
