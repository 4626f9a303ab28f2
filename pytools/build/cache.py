"""Stage bookkeeping in the work directory: like `dvc repro`, a stage whose inputs are unchanged is
not run again.

Each stage writes `<workdir>/state/<stage>.json`: the hash of its inputs (config sections, upstream
output hashes), the sha256 of each output, its status and summary. A stage is up to date when the
input hash matches and every output is still there with the recorded hash (size + mtime are checked
first so a re-run does not re-hash unchanged files).
"""
import os
import time

from pytools.core.files import atomic_write_json
from pytools.core.hashing import sha256_file, sha256_json


class StageResult:
    def __init__(self, name, status, seconds, summary, outputs):
        self.name, self.status, self.seconds = name, status, seconds
        self.summary, self.outputs = summary, outputs
        self.cached_status = None

    def as_dict(self):
        return {"stage": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "summary": self.summary, "outputs": {k: v["sha256"] for k, v in self.outputs.items()}}


def _record_output(wd, rel, previous=None):
    full = wd.path(rel)
    st = os.stat(full)
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        return previous
    return {"sha256": sha256_file(full), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _outputs_intact(wd, outputs):
    for rel, entry in outputs.items():
        if not os.path.exists(wd.path(rel)):
            return False
        if _record_output(wd, rel, entry)["sha256"] != entry["sha256"]:
            return False
    return True


def run_stage(wd, name, inputs, action, force=False):
    """Run `action()` unless stage `name` is up to date for `inputs`.

    `action` returns (status, summary, output_paths) with status "ran", "skipped" or "failed"
    (a check that ran and failed: recorded with its reports, never counted as up to date) and
    paths relative to the work directory. The state file is removed before running, so a failed or
    interrupted stage is never mistaken for a finished one.
    """
    key = sha256_json(inputs)
    previous = wd.state(name)
    if (not force and previous and previous.get("inputs_hash") == key
            and previous.get("status") != "failed" and _outputs_intact(wd, previous.get("outputs", {}))):
        result = StageResult(name, "up to date", 0.0, previous["summary"], previous["outputs"])
        result.cached_status = previous["status"]
        return result
    state_file = wd.state_file(name)
    if os.path.exists(state_file):
        os.unlink(state_file)
    started = time.monotonic()
    status, summary, paths = action()
    seconds = time.monotonic() - started
    outputs = {rel: _record_output(wd, rel) for rel in paths}
    atomic_write_json(state_file, {"stage": name, "status": status, "inputs_hash": key,
                                   "inputs": inputs, "outputs": outputs, "summary": summary,
                                   "seconds": round(seconds, 3),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return StageResult(name, status, seconds, summary, outputs)
