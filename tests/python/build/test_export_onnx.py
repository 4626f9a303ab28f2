"""Export: TorchScript and ONNX files that load, carry metadata, keep dynamic axes; bad models named."""
import os

import onnx
import onnxruntime as ort
import pytest
import torch

from build_helpers import write_config


def test_export_outputs(crop_weed_done):
    wd = crop_weed_done["workdir"]
    model = onnx.load(os.path.join(wd, "export", "model.sim.onnx"))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    state = __import__("json").load(open(os.path.join(wd, "state", "checkpoint.json")))
    assert meta["model_name"] == "crop-weed-classifier"
    assert meta["model_version"] == "1.0.0"
    assert meta["checkpoint_sha256"] == state["outputs"]["checkpoint/checkpoint.pt"]["sha256"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 64]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    # The dynamic batch axis really works, and TorchScript loads and agrees.
    session = ort.InferenceSession(os.path.join(wd, "export", "model.sim.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(5, 3, 64, 64)
    onnx_out = session.run(None, {"image": x.numpy()})[0]
    # A trace takes the inputs positionally (config order) and returns the flattened outputs.
    ts_out = torch.jit.load(os.path.join(wd, "export", "model.ts"))(x)[0].detach().numpy()
    assert onnx_out.shape == (5, 2)
    assert abs(onnx_out - ts_out).max() < 1e-4


def prepare(cli, model_dir, tmp_path, cls, **overrides):
    path = write_config(model_dir, model={"import": "bad_models:" + cls}, **overrides)
    assert cli("train", path, "--workdir", tmp_path / "w").code == 0
    return path


def no_export_state(tmp_path):
    assert not os.path.exists(tmp_path / "w" / "state" / "export.json")
    leftovers = [f for f in os.listdir(tmp_path / "w" / "export")] if os.path.exists(tmp_path / "w" / "export") else []
    assert not [f for f in leftovers if f.endswith(".partial")]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_unsupported_op_is_named_with_its_call_site(cli, model_dir, tmp_path, exporter):
    path = prepare(cli, model_dir, tmp_path, "TinyNet")
    write_config(model_dir, model={"import": "bad_models:CustomOpNet"}, export={"exporter": exporter},
                 train={"dataset": "crop-weed", "epochs": 1, "samples": 64})
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0
    line = res.error_line
    assert "cannot convert operator fieldops::soil_glow" in line, res.err
    assert "called at bad_models.py:" in line and "in forward" in line
    no_export_state(tmp_path)


def test_model_rejects_configured_shape(cli, model_dir, tmp_path):
    path = prepare(cli, model_dir, tmp_path, "FlatNet")
    write_config(model_dir, model={"import": "bad_models:FlatNet"},
                 inputs=[{"name": "image", "shape": ["batch", 3, 32, 32]}])
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0
    assert "the model rejects input shapes image [4, 3, 32, 32]" in res.error_line
    no_export_state(tmp_path)


def test_nan_outputs_are_refused(cli, model_dir, tmp_path):
    path = prepare(cli, model_dir, tmp_path, "TinyNet")
    write_config(model_dir, model={"import": "bad_models:NaNNet"})
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "output 'logits' contains NaN/Inf" in res.error_line
    no_export_state(tmp_path)


def test_wrong_number_of_outputs(cli, model_dir, tmp_path):
    path = prepare(cli, model_dir, tmp_path, "TinyNet")
    write_config(model_dir, outputs=[{"name": "logits", "kind": "classifier"}, {"name": "mask"}])
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "the config names 2 outputs, the model returns 1" in res.error_line


def test_export_needs_a_checkpoint(cli, model_dir, tmp_path):
    path = write_config(model_dir)
    res = cli("export", path, "--workdir", tmp_path / "empty")
    assert res.code != 0 and "stage 'checkpoint' has not run" in res.error_line


def test_script_mode_and_dynamo_exporter(cli, model_dir, tmp_path):
    path = write_config(model_dir, export={"torchscript": "script", "exporter": "dynamo", "opset": 18})
    for step in ("train", "export", "parity"):
        res = cli(step, path, "--workdir", tmp_path / "w")
        assert res.code == 0, res.err
    model = onnx.load(str(tmp_path / "w" / "export" / "model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
