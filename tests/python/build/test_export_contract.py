"""What export proves about a model: inputs bound by name, outputs named and checked against the
config, dynamic axes kept dynamic, traces that hold beyond the example shape, and one clear line for
what no exporter can take. Each model here is of the class that used to package wrongly."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from build_helpers import write_config

SEQ_DIMS = {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 8, "max": 16}}


def checkpointed(model_dir, cls, **overrides):
    """A config for bad_models.<cls> with a state-dict checkpoint of a fresh instance."""
    import bad_models

    torch.manual_seed(0)
    torch.save(getattr(bad_models, cls)().state_dict(), str(model_dir / "ck.pt"))
    overrides.setdefault("checkpoint", {"path": "ck.pt"})
    return write_config(model_dir, model={"import": "bad_models:" + cls}, **overrides)


def export(cli, path, tmp_path, *steps):
    w = tmp_path / "w"
    assert cli("checkpoint", "fetch", path, "--workdir", w).code == 0
    res = None
    for step in ("export",) + steps:
        res = cli(step, path, "--workdir", w)
        if res.code:
            break
    return res


def refused(res, tmp_path, code, *words):
    assert res.code == code, res.err
    for word in words:
        assert word in res.error_line, res.error_line
    assert len(res.err.strip().splitlines()[-1]) == len(res.error_line)
    assert not os.path.exists(tmp_path / "w" / "state" / "export.json")
    leftovers = os.listdir(tmp_path / "w" / "export") if os.path.exists(tmp_path / "w" / "export") else []
    assert leftovers == []  # nothing half-written, no file of the failed run


def seq_config(model_dir, cls, **overrides):
    return checkpointed(model_dir, cls, dims=SEQ_DIMS, inputs=[{"name": "seq", "shape": ["batch", "seq", 4]}],
                        **overrides)


def test_frozen_sequence_axis_is_refused_by_torch_export(cli, model_dir, tmp_path):
    path = seq_config(model_dir, "LoopRNN", outputs=[{"name": "states", "shape": ["batch", "seq", 6]}])
    refused(export(cli, path, tmp_path), tmp_path, 3,
            "input 'seq' axis 1 is dynamic in the config (dims.seq) but the model fixes it to 8")


def test_frozen_output_axis_is_refused_by_the_graph_read_back(cli, model_dir, tmp_path):
    # The TorchScript-based exporter unrolls the loop for 8 steps: the graph's output axis is fixed.
    path = seq_config(model_dir, "LoopRNN", outputs=[{"name": "states", "shape": ["batch", "seq", 6]}],
                      export={"exporter": "torchscript", "torchscript": "off"})
    refused(export(cli, path, tmp_path), tmp_path, 3, "output 'states' axis 1 is dynamic in the config ('seq')",
            "fixes it to 8")


def test_shape_dependent_trace_is_checked_on_a_second_shape(cli, model_dir, tmp_path):
    # The loop is unrolled for 8 steps without a tracer warning; at seq 16 the trace answers wrongly.
    path = seq_config(model_dir, "LoopRNN", outputs=[{"name": "states"}],
                      export={"exporter": "torchscript", "torchscript": "trace"})
    refused(export(cli, path, tmp_path), tmp_path, 3, "the TorchScript trace only holds for the example shapes",
            "seq [1, 2, 4]",
            "export.torchscript: script")


def test_shape_dependent_branch_warns_the_tracer_and_fails(cli, model_dir, tmp_path):
    path = seq_config(model_dir, "PeakNet", outputs=[{"name": "pooled"}],
                      export={"exporter": "torchscript", "torchscript": "trace"})
    refused(export(cli, path, tmp_path), tmp_path, 3, "the tracer warns at bad_models.py:",
            "Converting a tensor to a Python boolean", "export.torchscript: script")


def test_tracer_warnings_are_errors(cli, model_dir, tmp_path):
    path = checkpointed(model_dir, "ItemNet", export={"exporter": "torchscript", "torchscript": "trace"})
    refused(export(cli, path, tmp_path), tmp_path, 3, "the tracer warns at bad_models.py:",
            "Converting a tensor to a Python", "export.torchscript: script")


def test_shape_dependent_branch_is_refused_by_torch_export(cli, model_dir, tmp_path):
    path = seq_config(model_dir, "PeakNet", outputs=[{"name": "pooled"}])
    refused(export(cli, path, tmp_path), tmp_path, 3, "torch.export", "dims.seq")


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_inputs_bind_by_name_in_any_order(cli, model_dir, tmp_path, exporter):
    # The config lists the inputs in the other order than forward(image, scale).
    path = checkpointed(model_dir, "TwoInputNet", export={"exporter": exporter},
                        inputs=[{"name": "scale", "shape": ["batch", 1]},
                                {"name": "image", "shape": ["batch", 3, 64, 64]}],
                        outputs=[{"name": "features", "shape": ["batch", 4]}])
    res = export(cli, path, tmp_path, "parity")
    assert res.code == 0, res.err
    onnx_path = str(tmp_path / "w" / "export" / "model.onnx")
    assert [i.name for i in onnx.load(onnx_path).graph.input] == ["scale", "image"]
    import bad_models

    model = bad_models.TwoInputNet()
    model.load_state_dict(torch.load(str(model_dir / "ck.pt")))
    image, scale = torch.rand(3, 3, 64, 64), torch.full((3, 1), 5.0)
    got = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(
        None, {"image": image.numpy(), "scale": scale.numpy()})[0]
    np.testing.assert_allclose(got, model(image=image, scale=scale).detach().numpy(), rtol=1e-4, atol=1e-5)
    report = json.load(open(tmp_path / "w" / "reports" / "parity.json"))
    assert {b["name"]: b["status"] for b in report["backends"]}["exported-program"] == "passed"


def test_input_name_forward_does_not_take(cli, model_dir, tmp_path):
    path = checkpointed(model_dir, "TinyNet", inputs=[{"name": "img", "shape": ["batch", 3, 64, 64]}])
    refused(export(cli, path, tmp_path), tmp_path, 2, "input 'img' is not a parameter of TinyNet.forward",
            "config inputs: img", "forward takes: image")


@pytest.mark.parametrize("claim, words", [
    ({"name": "logits", "shape": ["batch", 3]}, "output 'logits' shape[1]: the config claims 3, the model produces 2"),
    ({"name": "logits", "shape": ["batch", 2, 1]}, "output 'logits' rank: the config claims 3"),
    ({"name": "logits", "dtype": "int64"}, "output 'logits' dtype: the config claims int64, the model produces float32"),
])
def test_output_claims_are_checked(cli, model_dir, tmp_path, claim, words):
    path = checkpointed(model_dir, "TinyNet", outputs=[claim])
    refused(export(cli, path, tmp_path), tmp_path, 2, words)


def test_dict_output_names_are_checked(cli, model_dir, tmp_path):
    path = checkpointed(model_dir, "DictNet", outputs=[{"name": "logits"}, {"name": "aux.0"}, {"name": "aux.x"}])
    refused(export(cli, path, tmp_path), tmp_path, 2, "the config names logits, aux.0, aux.x",
            "the model returns logits, aux.0, aux.1")


def test_dict_outputs_are_flattened_by_name_and_compared(cli, model_dir, tmp_path):
    # Config order differs from the model's: outputs are matched by name everywhere.
    path = checkpointed(model_dir, "DictNet", outputs=[{"name": "aux.1", "shape": ["batch"]},
                                                        {"name": "logits", "kind": "classifier"},
                                                        {"name": "aux.0", "shape": ["batch", 2]}])
    res = export(cli, path, tmp_path, "parity")
    assert res.code == 0, res.err
    proto = onnx.load(str(tmp_path / "w" / "export" / "model.onnx"))
    assert [o.name for o in proto.graph.output] == ["logits", "aux.0", "aux.1"]
    state = json.load(open(tmp_path / "w" / "state" / "export.json"))
    assert state["summary"]["io"]["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", 2]},
        {"name": "aux.0", "dtype": "float32", "shape": ["batch", 2]},
        {"name": "aux.1", "dtype": "float32", "shape": ["batch"]}]
    report = json.load(open(tmp_path / "w" / "reports" / "parity.json"))
    for backend in report["backends"]:
        if backend["status"] != "skipped":
            assert backend["status"] == "passed", backend
            assert [o["name"] for o in backend["outputs"]] == ["aux.1", "logits", "aux.0"]


@pytest.mark.parametrize("cls, exporter, op", [
    ("SlogdetNet", "dynamo", "linalg_slogdet"),
    ("SlogdetNet", "torchscript", "aten::linalg_slogdet"),
    ("FftNet", "torchscript", "aten::fft_rfft2"),
    ("DiffNet", "torchscript", "aten::diff"),
])
def test_unsupported_composite_op_names_the_model_line(cli, model_dir, tmp_path, cls, exporter, op):
    path = checkpointed(model_dir, cls, export={"exporter": exporter, "torchscript": "off"})
    res = export(cli, path, tmp_path)
    refused(res, tmp_path, 3, "cannot convert operator", op, "called at bad_models.py:")
    import bad_models
    import inspect

    line = inspect.getsourcelines(getattr(bad_models, cls).forward)[1] + 1
    assert "called at bad_models.py:%d in forward" % line in res.error_line


def test_model_only_the_exported_program_represents_still_packages(cli, model_dir, tmp_path):
    # rfft2 has no TorchScript-exporter symbolic; torch.export + dynamo convert it.
    path = checkpointed(model_dir, "FftNet", export={"torchscript": "off"})
    res = export(cli, path, tmp_path, "parity")
    assert res.code == 0, res.err
    report = json.load(open(tmp_path / "w" / "reports" / "parity.json"))
    status = {b["name"]: (b["status"], b["reason"]) for b in report["backends"]}
    assert status["exported-program"][0] == status["onnxruntime"][0] == "passed"
    assert status["torchscript"] == ("skipped", "export.torchscript is off")
    assert not os.path.exists(tmp_path / "w" / "export" / "model.ts")


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_custom_autograd_function_without_symbolic(cli, model_dir, tmp_path, exporter):
    path = checkpointed(model_dir, "AutogradFunctionNet", export={"exporter": exporter, "torchscript": "off"})
    res = export(cli, path, tmp_path)
    if exporter == "dynamo":
        refused(res, tmp_path, 3, "cannot export the custom torch.autograd.Function NumpyGlow (bad_models.py:",
                "symbolic")
    else:
        refused(res, tmp_path, 3, "the tracer warns at bad_models.py:", "NumPy", "export.exporter: dynamo")
    assert "internal error" not in res.err


def test_dynamo_below_opset_18_hints_at_18(cli, model_dir, tmp_path):
    # The dynamo exporter works at 18; asked for 17 it cannot convert down and says so.
    path = checkpointed(model_dir, "TinyNet", export={"opset": 17})
    refused(export(cli, path, tmp_path), tmp_path, 3, "export.opset 17", "set export.opset: 18")


def test_default_export_is_checker_valid_opset_18_with_a_pt2(cli, model_dir, tmp_path):
    path = checkpointed(model_dir, "TinyNet")
    assert export(cli, path, tmp_path).code == 0
    export_dir = tmp_path / "w" / "export"
    for name in ("model.onnx", "model.sim.onnx"):
        proto = onnx.load(str(export_dir / name))
        onnx.checker.check_model(proto, full_check=True)
        assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [18]
        assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == \
            ["batch", 3, 64, 64]
    program = torch.export.load(str(export_dir / "model.pt2"))
    x = torch.rand(7, 3, 64, 64)
    assert program.module()(image=x).shape == (7, 2)


def test_transformers_model_output_is_flattened_and_compared(cli, model_dir, tmp_path):
    pytest.importorskip("transformers")
    dims = {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 8, "max": 16}}
    path = checkpointed(model_dir, "TinyBert", dims=dims, export={"torchscript": "off"},
                        inputs=[{"name": "attention_mask", "dtype": "int64", "shape": ["batch", "seq"], "range": [1, 2]},
                                {"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"], "range": [0, 49]}],
                        outputs=[{"name": "last_hidden_state", "shape": ["batch", "seq", 16]},
                                 {"name": "pooler_output", "shape": ["batch", 16]}])
    res = export(cli, path, tmp_path, "parity")
    assert res.code == 0, res.err
    state = json.load(open(tmp_path / "w" / "state" / "export.json"))
    assert [i["name"] for i in state["summary"]["io"]["inputs"]] == ["attention_mask", "input_ids"]
    assert state["summary"]["io"]["outputs"][0] == {"name": "last_hidden_state", "dtype": "float32",
                                                    "shape": ["batch", "seq", 16]}
    report = json.load(open(tmp_path / "w" / "reports" / "parity.json"))
    assert {b["name"]: b["status"] for b in report["backends"]} == {
        "exported-program": "passed", "torchscript": "skipped", "onnxruntime": "passed",
        "onnxruntime-simplified": "passed", "tensorrt": "skipped"}
