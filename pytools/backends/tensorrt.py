"""TensorRT through Polygraphy's TrtRunner. Runs only where `tensorrt` imports (GPU agents)."""
from pytools.backends.base import PolygraphyRunner, quiet_polygraphy


class TensorRTRunner(PolygraphyRunner):
    name = "tensorrt"

    def __init__(self, plan_path, output_names, precision):
        quiet_polygraphy()
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self.precision = precision
        super().__init__(TrtRunner(EngineFromBytes(BytesFromPath(plan_path)), name="tensorrt"), output_names)
