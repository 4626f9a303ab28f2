"""TensorRT through Polygraphy's TrtRunner. Runs only where `tensorrt` imports (GPU agents)."""
import os

from pytools.backends.base import BackendUnavailable, PolygraphyRunner, output_names, quiet_polygraphy
from pytools.core.workdir import PLAN_FILE


class TensorRTRunner(PolygraphyRunner):
    name = "tensorrt"

    def __init__(self, plan_path, output_names, precision):
        quiet_polygraphy()
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self.precision = precision
        super().__init__(TrtRunner(EngineFromBytes(BytesFromPath(plan_path)), name="tensorrt"), output_names)

    @classmethod
    def open(cls, config, wd, model=None):
        state = wd.state("engine") or {}
        if state.get("status") != "ran" or not os.path.exists(wd.path(PLAN_FILE)):
            raise BackendUnavailable(state.get("summary", {}).get("reason") or "no TensorRT engine was built")
        return cls(wd.path(PLAN_FILE), output_names(config), state["summary"]["precision"])
