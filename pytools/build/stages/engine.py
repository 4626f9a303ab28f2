"""Stage `engine`: a TensorRT plan through Polygraphy (skipped where TensorRT is not installed)."""
from pytools.build.stage import Stage
from pytools.core.workdir import ONNX_FILE, SIM_FILE


class EngineStage(Stage):
    name = "engine"
    commands = ((("engine", "build"), "build a TensorRT plan with Polygraphy (skipped where TensorRT "
                 "is not installed)", {}),)

    def inputs(self, pipe, options):
        from pytools.build import engine, golden

        pipe.wd.require("export", "run `pytools export` first")
        onnx_file = SIM_FILE if pipe.config["export"]["simplify"] else ONNX_FILE
        inputs = dict(pipe.section("engine", "dims", "inputs"), onnx=pipe.wd.output_sha("export", onnx_file),
                      tensorrt=engine.tensorrt_version())
        if pipe.config["engine"]["precision"] == "int8":
            inputs["calibration"] = golden.fingerprint(pipe.config)
        return inputs

    def run(self, pipe, options, inputs):
        from pytools.build import engine, golden

        calibration = golden.GoldenInputs(pipe.config)
        limit = pipe.config["engine"]["calibration_batches"] * calibration.batch_size
        return engine.build(pipe.config, pipe.wd, (feed for _, feed in calibration.batches(limit=limit)))

    def describe(self, s):
        return s["reason"] if "reason" in s else "%s %s" % (s.get("precision"), s.get("platform"))


STAGE = EngineStage()
