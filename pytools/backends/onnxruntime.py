"""ONNX Runtime through Polygraphy's OnnxrtRunner (CPU execution provider here)."""
import os

from pytools.backends.base import BackendUnavailable, PolygraphyRunner, output_names, quiet_polygraphy
from pytools.core.workdir import ONNX_FILE, SIM_FILE


class OnnxRuntimeRunner(PolygraphyRunner):
    name = "onnxruntime"
    model_file = ONNX_FILE

    def __init__(self, path, output_names):
        quiet_polygraphy()
        import onnxruntime
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        onnxruntime.set_default_logger_severity(3)  # its own warnings (unused initializers...) are noise on stderr

        super().__init__(OnnxrtRunner(SessionFromOnnx(path, providers=["cpu"]), name=self.name), output_names)

    @classmethod
    def open(cls, config, wd, model=None):
        path = wd.path(cls.model_file)
        if not os.path.exists(path):
            raise BackendUnavailable("no %s (export.simplify is off)" % os.path.basename(path))
        return cls(path, output_names(config))


class SimplifiedOnnxRuntimeRunner(OnnxRuntimeRunner):
    """The same runtime on the onnxsim output."""
    name = "onnxruntime-simplified"
    model_file = SIM_FILE
