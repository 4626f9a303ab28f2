"""Export: TorchScript (trace or script) and ONNX, then onnx.checker (full) and onnxsim with its own
output check. Name, version and checkpoint sha256 go into the ONNX metadata.

An operator the exporter cannot convert is reported by name together with the line of model code
that calls it (found by re-running the forward pass under a dispatch mode that records call sites).
"""
import contextlib
import io
import os
import re
import sys
import tempfile
import traceback
import warnings

from pytools.core import config as cfg
from pytools.core.errors import CheckError
from pytools.core.workdir import ONNX_FILE, SIM_FILE, TS_FILE



def example_inputs(config, seed=0):
    """Seeded inputs of the configured shapes (dynamic dimensions at their 'opt' value)."""
    import torch

    from pytools.build.golden import random_feed

    return tuple(torch.from_numpy(a) for a in random_feed(config, None, seed).values())


def as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def check_eager(config, model, inputs):
    """Run the eager model once: shape rejections and NaN/Inf outputs are caught here, by name."""
    import torch

    shapes = ", ".join("%s %s" % (s["name"], list(t.shape)) for s, t in zip(config["inputs"], inputs))
    try:
        with torch.no_grad():
            outputs = as_tuple(model(*inputs))
    except Exception as exc:
        raise CheckError("%s: inputs: the model rejects input shapes %s: %s"
                         % (config.path, shapes, str(exc).strip().splitlines()[0]))
    if len(outputs) != len(config["outputs"]):
        raise CheckError("%s: outputs: the config names %d outputs, the model returns %d"
                         % (config.path, len(config["outputs"]), len(outputs)))
    for spec, out in zip(config["outputs"], outputs):
        bad = int((~torch.isfinite(out)).sum()) if out.is_floating_point() else 0
        if bad:
            raise CheckError("model output %r contains NaN/Inf (%d of %d values) for inputs %s"
                             % (spec["name"], bad, out.numel(), shapes))
    return outputs


def dynamic_axes(config):
    axes = {}
    for spec in config["inputs"] + config["outputs"]:
        named = {i: d for i, d in enumerate(spec.get("shape", [])) if isinstance(d, str)}
        if spec in config["outputs"] and "shape" not in spec:
            # Outputs follow the inputs' batch axis unless the config says otherwise.
            batch = config["inputs"][0]["shape"][0]
            named = {0: batch} if isinstance(batch, str) else {}
        if named:
            axes[spec["name"]] = named
    return axes


def export(config, model, checkpoint_sha, wd):
    import torch

    os.makedirs(os.path.dirname(wd.path(ONNX_FILE)), exist_ok=True)
    inputs = example_inputs(config)
    check_eager(config, model, inputs)
    _torchscript(config, model, inputs, wd.path(TS_FILE))
    meta = {"model_name": config["name"], "model_version": config["version"],
            "checkpoint_sha256": checkpoint_sha, "producer": "model-cicd pytools"}
    proto = _onnx(config, model, inputs, wd.path(ONNX_FILE), meta)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    outputs = [TS_FILE, ONNX_FILE]
    summary = {"torchscript": config["export"]["torchscript"], "exporter": config["export"]["exporter"],
               "opset": opset, "nodes": len(proto.graph.node), "simplified": False,
               "torch_version": torch.__version__}
    if config["export"]["simplify"]:
        summary.update(_simplify(config, proto, wd.path(SIM_FILE), meta))
        summary["simplified"] = True
        outputs.append(SIM_FILE)
    return summary, outputs


def _torchscript(config, model, inputs, path):
    import torch

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            if config["export"]["torchscript"] == "script":
                module = torch.jit.script(model)
            else:
                module = torch.jit.trace(model, inputs, check_trace=False)
    except Exception as exc:
        raise CheckError("export: TorchScript %s failed: %s"
                         % (config["export"]["torchscript"], str(exc).strip().splitlines()[0]))
    tmp = path + ".partial"
    module.save(tmp)
    os.replace(tmp, path)


_OP_PATTERNS = [re.compile(r"operator '?(\w+::\w+)"), re.compile(r"namespace (\w+::\w+)"),
                re.compile(r"op='([\w]+)\.([\w]+)'"), re.compile(r"target=torch\.ops\.([\w]+)\.([\w]+)")]


def _unsupported_op(exc):
    text = "".join(traceback.format_exception_only(type(exc), exc))
    for cause in (exc.__cause__, exc.__context__):
        if cause is not None:
            text += str(cause)
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1) if m.lastindex == 1 else "%s::%s" % (m.group(1), m.group(2))
    return None


def _call_site(model, inputs, op_name):
    """Where model code calls `op_name` ('ns::op'): 'file.py:LINE in function', or None."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.abspath(__file__)
    found = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not found and func._schema.name == op_name:
                for frame in reversed(traceback.extract_stack()[:-1]):
                    if not frame.filename.startswith(torch_dir) and frame.filename not in (__file__, here):
                        found.append("%s:%d in %s" % (os.path.basename(frame.filename), frame.lineno, frame.name))
                        break
            return func(*args, **(kwargs or {}))

    try:
        with torch.no_grad(), Recorder():
            model(*inputs)
    except Exception:
        return None
    return found[0] if found else None


def _onnx(config, model, inputs, path, meta):
    """Export, check (full) and stamp the metadata; the model is loaded once and returned."""
    import onnx
    import torch

    ex = config["export"]
    names_in = [s["name"] for s in config["inputs"]]
    names_out = [s["name"] for s in config["outputs"]]
    tmp = path + ".partial"
    try:
        with torch.no_grad(), warnings.catch_warnings(), quiet_fds():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, inputs, tmp, input_names=names_in, output_names=names_out,
                              opset_version=ex["opset"], dynamic_axes=dynamic_axes(config) or None,
                              dynamo=ex["exporter"] == "dynamo", do_constant_folding=True)
    except Exception as exc:
        _remove(tmp)
        op = _unsupported_op(exc)
        if op:
            site = _call_site(model, inputs, op)
            raise CheckError("export: the ONNX exporter (%s, opset %d) cannot convert operator %s%s"
                             % (ex["exporter"], ex["opset"], op, ", called at " + site if site else ""))
        raise CheckError("export: ONNX export failed: %s" % str(exc).strip().splitlines()[0])
    try:
        proto = onnx.load(tmp)
        onnx.checker.check_model(proto if proto.ByteSize() < (2 << 30) - 1 else tmp, full_check=True)
    except Exception as exc:
        raise CheckError("export: onnx.checker rejected the exported model: %s" % str(exc).strip().splitlines()[0])
    finally:
        _remove(tmp)
    _save(proto, meta, path)
    return proto


def _apply_metadata(model, meta):
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def _save(proto, meta, path):
    import onnx

    _apply_metadata(proto, meta)
    tmp = path + ".partial"
    onnx.save(proto, tmp)
    os.replace(tmp, path)


def _simplify(config, model, dest, meta):
    """onnxsim with its own output check (random inputs through both models)."""
    import onnxsim

    test_shapes = {s["name"]: cfg.concrete_shape(s, config) for s in config["inputs"]}
    try:
        with quiet_fds():
            simplified, ok = onnxsim.simplify(model, check_n=3, test_input_shapes=test_shapes)
    except Exception as exc:
        raise CheckError("export: onnxsim failed: %s" % str(exc).strip().splitlines()[0])
    if not ok:
        raise CheckError("export: onnxsim's own check found the simplified model's outputs differ")
    _save(simplified, meta, dest)
    return {"nodes_simplified": len(simplified.graph.node)}


@contextlib.contextmanager
def quiet_fds():
    """Hold back what the exporters print (graph dumps, progress) at the file-descriptor level,
    so a failure ends in our one line and `--json` output stays clean."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _remove(path):
    if os.path.exists(path):
        os.unlink(path)
