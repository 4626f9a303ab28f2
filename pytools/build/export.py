"""Export: torch.export first. The eager model is bound to the config's inputs by name and run once
(outputs flattened and checked against the config's claims); torch.export makes the ExportedProgram
(`model.pt2`, the config's `dims` as torch.export.Dim ranges); the dynamo ONNX exporter converts that
program (the TorchScript-based exporter stays available, `export.exporter: torchscript`); optional
TorchScript (`export.torchscript: off | trace | script`). onnx.checker (full) and onnxsim with its
own output check follow, and the graph's declared inputs and outputs are read back and checked
against the config (pytools.build.graph_io). Name, version and checkpoint sha256 go into the ONNX
metadata.

Tracer warnings are errors, not noise: each one means the trace may only hold for the example
shape. A trace is also re-run on a second shape and compared with the eager model.
"""
import contextlib
import io
import os
import sys
import tempfile
import warnings

from pytools.build import graph_io
from pytools.core import binding
from pytools.build.export_errors import export_failure, first_line
from pytools.core import config as cfg
from pytools.core.errors import CheckError, ConfigError, PytoolsError
from pytools.core.workdir import EP_FILE, EXPORT_FILES, ONNX_FILE, SIM_FILE, TS_FILE


def example_feed(config, seed=0, dims=None):
    """Seeded inputs {name: tensor} of the configured shapes (dynamic dimensions at 'opt', or at
    their value in `dims`)."""
    import torch

    from pytools.build.golden import random_feed

    return {k: torch.from_numpy(a) for k, a in random_feed(config, None, seed, dims=dims).items()}


def second_point(config):
    """{dim: value} of another point of the dynamic range than 'opt': its min (the cheapest to run),
    else its max."""
    return {name: d["min"] if d["min"] != d["opt"] else d["max"] for name, d in config["dims"].items()}


def _shapes(feed):
    return ", ".join("%s %s" % (k, list(t.shape)) for k, t in feed.items())


def check_eager(config, model, feed):
    """Run the eager model once on keyword inputs; name its outputs and check them against the
    config's claims (dtype, rank, static sizes, dynamic sizes at 'opt'). Returns the output names."""
    import torch

    binding.check_input_names(config, model)
    try:
        with torch.no_grad():
            outputs = model(**feed)
    except Exception as exc:
        raise CheckError("%s: inputs: the model rejects input shapes %s: %s"
                         % (config.path, _shapes(feed), first_line(exc)))
    flat = binding.flatten(outputs)
    if not all(isinstance(t, torch.Tensor) for _, t in flat):
        raise ConfigError("%s: outputs: the model returns something other than tensors (%s)"
                          % (config.path, ", ".join(sorted({type(t).__name__ for _, t in flat}))))
    names = binding.output_names(config, flat)
    claims = {o["name"]: o for o in config["outputs"]}
    for name, (_, out) in zip(names, flat):
        _check_claim(config, claims[name], out)
        bad = int((~torch.isfinite(out)).sum()) if out.is_floating_point() else 0
        if bad:
            raise CheckError("model output %r contains NaN/Inf (%d of %d values) for inputs %s"
                             % (name, bad, out.numel(), _shapes(feed)))
    return names


def _check_claim(config, claim, out):
    def wrong(field, claimed, actual):
        raise ConfigError("%s: outputs: output %r %s: the config claims %s, the model produces %s"
                          % (config.path, claim["name"], field, claimed, actual))

    dtype = binding.dtype_name(out)
    if "dtype" in claim and claim["dtype"] != dtype:
        wrong("dtype", claim["dtype"], dtype)
    shape = claim.get("shape")
    if shape is None:
        return
    if len(shape) != out.dim():
        wrong("rank", "%d %s" % (len(shape), shape), "%d %s" % (out.dim(), list(out.shape)))
    # A dynamic axis shared with an input is fixed by the feed (at opt here); one only outputs name
    # (detections, tokens generated) depends on the data and may be anything, zero included.
    input_dims = {d for s in config["inputs"] for d in s["shape"] if isinstance(d, str)}
    for axis, (claimed, actual) in enumerate(zip(shape, out.shape)):
        if isinstance(claimed, int) and claimed != actual:
            wrong("shape[%d]" % axis, claimed, actual)
        opt = config["dims"][claimed]["opt"] if claimed in input_dims else None
        if opt is not None and opt != actual:
            wrong("shape[%d]" % axis, "%s (%d at opt)" % (claimed, opt), actual)


def export(config, model, checkpoint_sha, wd):
    """Write the export files; on any failure none of them is left (a file of an earlier run must
    not pass for this run's either)."""
    os.makedirs(os.path.dirname(wd.path(ONNX_FILE)), exist_ok=True)
    for rel in EXPORT_FILES:
        _remove(wd.path(rel))
    try:
        return _export(config, model, checkpoint_sha, wd)
    except BaseException:
        for rel in EXPORT_FILES:
            _remove(wd.path(rel))
        raise


def _export(config, model, checkpoint_sha, wd):
    import torch

    ex = config["export"]
    feed = example_feed(config)
    names = check_eager(config, model, feed)
    program, program_error = _exported_program(config, model, feed, wd.path(EP_FILE))
    outputs = [EP_FILE] if program is not None else []
    if ex["torchscript"] != "off":
        _torchscript(config, model, feed, names, wd.path(TS_FILE))
        outputs.append(TS_FILE)
    meta = {"model_name": config["name"], "model_version": config["version"],
            "checkpoint_sha256": checkpoint_sha, "producer": "model-cicd pytools"}
    proto = _onnx(config, model, program, feed, names)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if ex["exporter"] == "dynamo" and opset != ex["opset"]:
        raise CheckError("export: the dynamo exporter could not convert the model to export.opset %d (it "
                         "produced opset %s); set export.opset: 18 or newer" % (ex["opset"], opset))
    graph_io.rename_dims(proto, config)
    io_spec = graph_io.check(proto, config, names)
    _save(proto, meta, wd.path(ONNX_FILE))
    outputs.append(ONNX_FILE)
    summary = {"torchscript": ex["torchscript"], "exporter": ex["exporter"],
               "exported_program": program is not None, "exported_program_error": program_error,
               "opset": opset, "nodes": len(proto.graph.node), "simplified": False,
               "torch_version": torch.__version__, "io": io_spec}
    if ex["simplify"]:
        summary.update(_simplify(config, proto, wd.path(SIM_FILE), meta))
        summary["simplified"] = True
        outputs.append(SIM_FILE)
    return summary, outputs


def dynamic_shapes(config):
    """torch.export's dynamic_shapes for keyword inputs: {input: {axis: Dim}} from `dims`."""
    from torch.export import Dim

    made = {n: Dim(n, min=d["min"], max=d["max"]) for n, d in config["dims"].items() if d["min"] < d["max"]}
    return {s["name"]: {a: made[d] for a, d in enumerate(s["shape"]) if d in made} or None
            for s in config["inputs"]}


def _exported_program(config, model, feed, path):
    """(ExportedProgram, None), saved to `path`; with the TorchScript-based ONNX exporter a model
    torch.export cannot take still exports: (None, the reason)."""
    import torch

    try:
        with torch.no_grad(), quiet_fds():
            program = torch.export.export(model, (), kwargs=feed, dynamic_shapes=dynamic_shapes(config))
    except Exception as exc:
        error = export_failure("torch.export", exc, config, model, feed)
        if config["export"]["exporter"] == "dynamo":
            raise error
        return None, str(error)
    tmp = path[:-len(".pt2")] + ".partial.pt2"  # torch.export.save wants the .pt2 suffix
    torch.export.save(program, tmp)
    os.replace(tmp, path)
    return program, None


@contextlib.contextmanager
def tracer_warnings_are_errors(what, advice):
    """Record the tracer's warnings (never silence them) and fail on the first: each one says the
    trace may only hold for the example shapes."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        yield
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            raise CheckError("export: %s: the tracer warns at %s:%d: %s; the trace may only hold for the "
                             "example shapes: %s, or make that code shape-independent"
                             % (what, os.path.basename(w.filename), w.lineno, str(w.message).split(". ")[0],
                                advice))


def _torchscript(config, model, feed, names, path):
    import torch

    mode = config["export"]["torchscript"]
    try:
        with torch.no_grad():
            if mode == "script":
                module = torch.jit.script(model)
            else:
                with tracer_warnings_are_errors("TorchScript trace", "set export.torchscript: script (or off, "
                                                "keeping torch.export's program)"):
                    module = torch.jit.trace(positional(model, list(feed)), tuple(feed.values()),
                                             check_trace=False)
                _check_trace(config, model, module, names)
    except PytoolsError:
        raise
    except Exception as exc:
        raise CheckError("export: TorchScript %s failed: %s (set export.torchscript: off to package the "
                         "torch.export program and ONNX without TorchScript)" % (mode, first_line(exc)))
    tmp = path + ".partial"
    module.save(tmp)
    os.replace(tmp, path)


def _check_trace(config, model, traced, names):
    """Re-run the trace at another point of the dynamic range and compare it with eager."""
    import torch

    point = second_point(config)
    if not point:
        return
    feed = example_feed(config, seed=1, dims=point)
    with torch.no_grad():
        want = binding.named_outputs(model(**feed), names)
        try:
            got = dict(zip(names, traced(*feed.values())))
        except Exception as exc:
            got, failure = {}, first_line(exc)
    for name in names if got else ():
        g, w = got[name], want[name]
        if tuple(g.shape) != tuple(w.shape):
            failure = "output %r has shape %s, eager %s" % (name, list(g.shape), list(w.shape))
            break
        if not torch.allclose(g.float(), w.float(), atol=1e-4, rtol=1e-3):
            failure = "output %r differs from eager (max abs error %.3g)" % (
                name, float((g.float() - w.float()).abs().max()))
            break
    else:
        if got:
            return
    raise CheckError("export: the TorchScript trace only holds for the example shapes: at %s %s; set "
                     "export.torchscript: script (or off, keeping torch.export's program)"
                     % (_shapes(feed), failure))


def positional(model, input_names):
    """A module taking the inputs positionally (config order) and returning the flattened output
    tuple: what TorchScript (which cannot trace dicts or bind keywords) and the TorchScript-based
    ONNX exporter see."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = self.model(**dict(zip(input_names, args)))
            return tuple(t for _, t in binding.flatten(out))

    return Positional().eval()


def _onnx(config, model, program, feed, names):
    """Export (dynamo from the ExportedProgram, or the TorchScript-based exporter) and check (full)."""
    import onnx
    import torch

    ex = config["export"]
    what = "the ONNX exporter (%s, opset %d)" % (ex["exporter"], ex["opset"])
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = os.path.join(tmpdir, "model.onnx")
        try:
            with torch.no_grad(), quiet_fds(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                if ex["exporter"] == "dynamo":
                    torch.onnx.export(program, (), tmp, kwargs=feed, output_names=names,
                                      opset_version=ex["opset"], dynamo=True, external_data=False)
                else:
                    with tracer_warnings_are_errors(what, "use export.exporter: dynamo (torch.export)"):
                        torch.onnx.export(positional(model, list(feed)), tuple(feed.values()), tmp,
                                          input_names=list(feed), output_names=names,
                                          opset_version=ex["opset"], dynamic_axes=_input_axes(config) or None,
                                          dynamo=False, do_constant_folding=True)
        except PytoolsError:
            raise
        except Exception as exc:
            raise export_failure(what, exc, config, model, feed, ex["opset"])
        try:
            proto = onnx.load(tmp)
            onnx.checker.check_model(proto if proto.ByteSize() < (2 << 30) - 1 else tmp, full_check=True)
        except Exception as exc:
            hint = ""
            if ex["exporter"] == "dynamo" and ex["opset"] < 18:
                hint = "; the dynamo exporter needs export.opset: 18 or newer"
            raise CheckError("export: onnx.checker rejected the exported model (%s): %s%s"
                             % (what, first_line(exc), hint))
    return proto


def _input_axes(config):
    """The TorchScript-based exporter's dynamic_axes, inputs only: the outputs' axes are what the
    exporter infers, so a frozen output axis shows in the read-back check."""
    return {s["name"]: {i: d for i, d in enumerate(s["shape"]) if isinstance(d, str)}
            for s in config["inputs"] if any(isinstance(d, str) for d in s["shape"])}


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
