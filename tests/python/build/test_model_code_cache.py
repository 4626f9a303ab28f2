"""The cache sees all the model's code: helper modules it imports and the library versions."""
import json
import os
import textwrap

from build_helpers import write_config
from pytools_testlib import run_pytools

NET = textwrap.dedent('''
    import torch
    from torch import nn

    from field_helpers import rescale


    class HelperNet(nn.Module):
        def __init__(self, num_classes=2):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=4)
            self.head = nn.Linear(8, num_classes)

        def forward(self, image):
            return rescale(self.head(self.conv(image).mean(dim=(2, 3))))
''')


def statuses(res):
    return {s["stage"]: s["status"] for s in res.json["stages"]}


def test_editing_an_imported_helper_reruns_the_model_stages(tmp_path):
    (tmp_path / "helper_net.py").write_text(NET)
    (tmp_path / "field_helpers.py").write_text("def rescale(x):\n    return x * 2\n")
    (tmp_path / "unrelated.py").write_text("VALUE = 1\n")  # in the folder, never imported
    path = write_config(tmp_path, model={"import": "helper_net:HelperNet"})
    work = str(tmp_path / "work")
    args = ("run", path, "--workdir", work, "--json", "--no-publish", "--no-rollout")
    cold = run_pytools(*args)
    assert cold.code == 0, cold.err
    record = json.load(open(os.path.join(work, "state", "model_code.json")))
    assert sorted(os.path.basename(f) for f in record["files"]) == ["field_helpers.py", "helper_net.py"]
    for library in ("torch", "onnx", "onnxruntime", "polygraphy"):
        assert record["libraries"][library], library
    export_inputs = json.load(open(os.path.join(work, "state", "export.json")))["inputs"]["model_source"]
    assert export_inputs["libraries"]["torch"] == record["libraries"]["torch"]

    again = run_pytools(*args)
    assert set(statuses(again).values()) == {"up to date"}, again.err

    (tmp_path / "unrelated.py").write_text("VALUE = 2\n")
    assert set(statuses(run_pytools(*args)).values()) == {"up to date"}

    (tmp_path / "field_helpers.py").write_text("def rescale(x):\n    return x * 3\n")
    edited = run_pytools(*args)
    assert edited.code == 0, edited.err
    st = statuses(edited)
    assert st["checkpoint"] == "ran" and st["export"] == "ran" and st["parity"] == "ran" and st["bench"] == "ran"
    assert set(statuses(run_pytools(*args)).values()) == {"up to date"}


def test_a_changed_library_version_invalidates_the_record(tmp_path):
    from pytools.build import model_code
    from pytools.build.pipeline import Pipeline
    from pytools.core import config

    (tmp_path / "helper_net.py").write_text(NET)
    (tmp_path / "field_helpers.py").write_text("def rescale(x):\n    return x\n")
    cfg = config.load(write_config(tmp_path, model={"import": "helper_net:HelperNet"}))
    pipe = Pipeline(cfg, str(tmp_path / "work"))
    first = model_code.fingerprint(cfg, pipe.wd)
    record_path = pipe.wd.path(model_code.RECORD)
    record = json.load(open(record_path))
    record["libraries"]["torch"] = "0.0.1"  # as if torch had been upgraded since
    with open(record_path, "w") as f:
        json.dump(record, f)
    assert model_code._still_valid(cfg, record) is None
    assert model_code.fingerprint(cfg, pipe.wd) == first  # rediscovered with the real version
    assert json.load(open(record_path))["libraries"]["torch"] == first["libraries"]["torch"]
