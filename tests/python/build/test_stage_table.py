"""Adding a stage is one module under pytools/build/stages/ plus one entry in the stage table:
a copy of the package with a planted `quantize` stage gets its command, its row in `pytools run`,
its cache record and its place in the chain, with no other file touched."""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

QUANTIZE = '''"""Stage `quantize` (planted by a test): records which ONNX model it would quantize."""
import os

from pytools.build.stage import Stage
from pytools.core.files import atomic_write_json
from pytools.core.workdir import ONNX_FILE

OUT = "quantize/model.int8.json"


class QuantizeStage(Stage):
    name = "quantize"
    commands = ((("quantize",), "record the ONNX model to quantize", {}),)

    def inputs(self, pipe, options):
        pipe.wd.require("export", "run `pytools export` first")
        return {"onnx": pipe.wd.output_sha("export", ONNX_FILE)}

    def run(self, pipe, options, inputs):
        os.makedirs(os.path.dirname(pipe.wd.path(OUT)), exist_ok=True)
        sha = inputs["onnx"]
        atomic_write_json(pipe.wd.path(OUT), {"onnx_sha256": sha})
        return "ran", {"onnx_sha256": sha}, [OUT]

    def describe(self, s):
        return "would quantize onnx %s" % s["onnx_sha256"][:12]


STAGE = QuantizeStage()
'''
ENTRY = '    StageSpec("quantize", {"quantize/model.int8.json": ("onnx-int8", "onnx")}, consumes=["onnx"]),\n'


def planted_tree(tmp_path):
    tree = str(tmp_path / "tree")
    shutil.copytree(os.path.join(ROOT, "pytools"), os.path.join(tree, "pytools"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(tree, "pytools", "build", "stages", "quantize.py"), "w") as f:
        f.write(QUANTIZE)
    table = os.path.join(tree, "pytools", "core", "workdir.py")
    with open(table) as f:
        text = f.read()
    anchor = '    StageSpec("parity",'
    assert text.count(anchor) == 1
    with open(table, "w") as f:
        f.write(text.replace(anchor, ENTRY + anchor))
    return tree


def pytools(tree, *args):
    env = dict(os.environ, PYTHONPATH=tree)
    return subprocess.run([sys.executable, "-m", "pytools"] + [str(a) for a in args], cwd=tree, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)


def test_a_new_stage_is_one_module_plus_one_table_entry(crop_weed, tmp_path):
    tree = planted_tree(tmp_path)
    help_text = pytools(tree, "--help").stdout
    assert "quantize" in help_text and "record the ONNX model to quantize" in help_text

    alone = pytools(tree, "quantize", crop_weed["config"], "--workdir", crop_weed["workdir"], "--json")
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["status"] == "ran"
    with open(os.path.join(crop_weed["workdir"], "state", "quantize.json")) as f:
        assert list(json.load(f)["outputs"]) == ["quantize/model.int8.json"]

    run = pytools(tree, "run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--no-publish",
                  "--no-rollout", "--json")
    assert run.returncode == 0, run.stderr
    rows = [(s["stage"], s["status"]) for s in json.loads(run.stdout)["stages"]]
    names = [name for name, _ in rows]
    assert names[names.index("engine") + 1] == "quantize"      # its place in the table
    assert dict(rows)["quantize"] == "up to date"              # the cache path of every stage
    assert dict(rows)["package"] == "ran"                      # the package depends on every stage before it
    table = pytools(tree, "run", crop_weed["config"], "--workdir", crop_weed["workdir"], "--no-publish",
                    "--no-rollout")
    assert table.returncode == 0, table.stderr
    row = [line for line in table.stdout.splitlines() if line.startswith("quantize")]
    assert row and "up to date" in row[0] and "would quantize onnx" in row[0], table.stdout   # the summary
