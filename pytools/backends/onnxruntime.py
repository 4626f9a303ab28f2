"""ONNX Runtime through Polygraphy's OnnxrtRunner (CPU execution provider here)."""
from pytools.backends.base import Runner, quiet_polygraphy


class OnnxRuntimeRunner(Runner):
    def __init__(self, path, output_names, name="onnxruntime"):
        super().__init__(output_names)
        quiet_polygraphy()
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        self.name = name
        self._runner = OnnxrtRunner(SessionFromOnnx(path, providers=["cpu"]), name=name)
        self._runner.activate()

    def infer(self, feed):
        out = self._runner.infer(feed, check_inputs=False)
        return [out[n] for n in self.output_names]

    def close(self):
        if self._runner.is_active:
            self._runner.deactivate()
