"""Helpers for the tracking tests: read W&B offline run files back with wandb's own reader."""
import glob
import json
import os
import subprocess
import sys

WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY",
             "WANDB_RUN_GROUP", "WANDB_BASE_URL", "JOB_NAME", "BUILD_NUMBER")


def run_dir(url):
    """The offline run directory of a tracker.runs() entry (its url is file://<dir>)."""
    assert url.startswith("file://"), url
    return url[len("file://"):]


def read_records(directory):
    """Every record of the run's .wandb transaction log, decoded by wandb-core
    (`wandb leet inspect --json`: one protobuf Record per line, as JSON)."""
    files = glob.glob(os.path.join(directory, "run-*.wandb"))
    assert len(files) == 1, files
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", files[0]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class RunFile:
    """The parts of one offline run a test looks at."""

    def __init__(self, directory):
        self.dir = directory
        self.records = read_records(directory)
        runs = [r["run"] for r in self.records if r["type"] == "run"]
        self.run = runs[0]
        self.config = self.run.get("config", {}).get("update", {})
        self.history = [r["history"]["item"] for r in self.records if r["type"] == "history"]
        self.artifacts = [r["artifact"] for r in self.records if r["type"] == "artifact"
                          and r["artifact"]["type"] != "run_table"]
        self.exit_code = [r["exit"].get("exit_code", 0) for r in self.records if r["type"] == "exit"]

    def metrics(self):
        merged = {}
        for item in self.history:
            merged.update(item)
        return merged

    def artifact(self, name, used):
        found = [a for a in self.artifacts if a["name"] == name and bool(a.get("use_after_commit")) == used]
        assert len(found) == 1, (name, used, [(a["name"], a.get("use_after_commit")) for a in self.artifacts])
        return found[0]

    def table(self, key):
        """A logged wandb.Table, read from the file the run wrote."""
        item = [h for h in self.history if key + ".path" in h]
        assert item, "no table %r in %s" % (key, self.dir)
        with open(os.path.join(self.dir, "files", item[-1][key + ".path"])) as f:
            data = json.load(f)
        return [dict(zip(data["columns"], row)) for row in data["data"]]


def entries(artifact):
    return {c["path"]: c for c in artifact["manifest"]["contents"]}


def metadata(artifact):
    return json.loads(artifact.get("metadata") or "{}")
