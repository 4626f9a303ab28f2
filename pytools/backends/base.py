"""The runner interface and the factory that picks a backend by name."""
import os


class BackendUnavailable(Exception):
    """The backend cannot run here (no TensorRT, no engine, no simplified model); not a failure."""


class Runner:
    name = ""
    precision = "fp32"

    def __init__(self, output_names):
        self.output_names = list(output_names)

    def infer(self, feed):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PolygraphyRunner(Runner):
    """A runner that wraps an activated Polygraphy runner (ONNX Runtime, TensorRT)."""

    def __init__(self, runner, output_names):
        super().__init__(output_names)
        self._runner = runner
        self._runner.activate()

    def infer(self, feed):
        out = self._runner.infer(feed, check_inputs=False)
        return [out[n] for n in self.output_names]

    def close(self):
        if self._runner.is_active:
            self._runner.deactivate()


def quiet_polygraphy():
    """Polygraphy logs to stdout, which would corrupt `--json` output: keep it to errors."""
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR
    G_LOGGER.colors = False


def open_runner(name, config, wd, model=None):
    """`model` is the eager PyTorch module (needed only for the 'torch' reference)."""
    from pytools import engine, export

    outputs = [o["name"] for o in config["outputs"]]
    if name == "torch":
        from pytools.backends.torch_eager import TorchRunner
        return TorchRunner(model, outputs)
    if name == "torchscript":
        from pytools.backends.torch_eager import TorchScriptRunner
        return TorchScriptRunner(wd.path(export.TS_FILE), outputs)
    if name in ("onnxruntime", "onnxruntime-simplified"):
        path = wd.path(export.SIM_FILE if name.endswith("simplified") else export.ONNX_FILE)
        if not os.path.exists(path):
            raise BackendUnavailable("no %s (export.simplify is off)" % os.path.basename(path))
        from pytools.backends.onnxruntime import OnnxRuntimeRunner
        return OnnxRuntimeRunner(path, outputs, name)
    if name == "tensorrt":
        state = wd.state("engine") or {}
        if state.get("status") != "ran" or not os.path.exists(wd.path(engine.PLAN_FILE)):
            raise BackendUnavailable(state.get("summary", {}).get("reason")
                                     or "no TensorRT engine was built")
        from pytools.backends.tensorrt import TensorRTRunner
        return TensorRTRunner(wd.path(engine.PLAN_FILE), outputs, state["summary"]["precision"])
    raise ValueError("unknown backend %r" % name)
