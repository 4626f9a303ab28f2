"""ONNX Runtime through Polygraphy's OnnxrtRunner (CPU execution provider here)."""
from pytools.backends.base import PolygraphyRunner, quiet_polygraphy


class OnnxRuntimeRunner(PolygraphyRunner):
    def __init__(self, path, output_names, name="onnxruntime"):
        quiet_polygraphy()
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        self.name = name
        super().__init__(OnnxrtRunner(SessionFromOnnx(path, providers=["cpu"]), name=name), output_names)
