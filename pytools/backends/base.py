"""The runner interface and the factory that picks a backend by name (`pytools.core.backends`)."""
import importlib

from pytools.core.backends import RUNNERS


class BackendUnavailable(Exception):
    """The backend cannot run here (no TensorRT, no engine, no simplified model); not a failure."""


class Runner:
    name = ""
    precision = "fp32"

    def __init__(self, output_names):
        self.output_names = list(output_names)

    @classmethod
    def open(cls, config, wd, model=None):
        """The runner for a work directory's artifacts; raises BackendUnavailable with the reason
        it cannot run here. `model` is the eager module (only the reference needs it)."""
        raise NotImplementedError

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


def output_names(config):
    return [o["name"] for o in config["outputs"]]


def runner_class(name):
    try:
        module, cls = RUNNERS[name].split(":")
    except KeyError:
        raise ValueError("unknown backend %r" % name)
    return getattr(importlib.import_module(module), cls)


def open_runner(name, config, wd, model=None):
    """`model` is the eager PyTorch module (needed only for the 'torch' reference)."""
    return runner_class(name).open(config, wd, model)
