"""TensorRT through Polygraphy's TrtRunner. Runs only where `tensorrt` imports (GPU agents)."""
from pytools.backends.base import Runner, quiet_polygraphy


class TensorRTRunner(Runner):
    name = "tensorrt"

    def __init__(self, plan_path, output_names, precision):
        super().__init__(output_names)
        quiet_polygraphy()
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self.precision = precision
        self._runner = TrtRunner(EngineFromBytes(BytesFromPath(plan_path)), name="tensorrt")
        self._runner.activate()

    def infer(self, feed):
        out = self._runner.infer(feed, check_inputs=False)
        return [out[n] for n in self.output_names]

    def close(self):
        if self._runner.is_active:
            self._runner.deactivate()
