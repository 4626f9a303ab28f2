"""Stage `export`: torch.export, ONNX (dynamo or TorchScript-based), optional TorchScript, onnx.checker,
the graph's I/O read back and checked against the config, onnxsim."""
from pytools.build.stage import Stage


class ExportStage(Stage):
    name = "export"
    commands = ((("export",), "export the torch.export program, ONNX and (optionally) TorchScript; check the graph's inputs, outputs and dynamic axes against the config; onnx.checker and onnxsim", {}),)

    def inputs(self, pipe, options):
        return dict(pipe.section("name", "version", "model", "inputs", "outputs", "dims", "export"),
                    checkpoint=pipe.checkpoint_sha(), model_source=pipe.model_source_sha())

    def run(self, pipe, options, inputs):
        from pytools.build import export

        summary, outputs = export.export(pipe.config, pipe.model(), inputs["checkpoint"], pipe.wd)
        return "ran", summary, outputs

    def describe(self, s):
        text = "opset %s, %s nodes" % (s.get("opset"), s.get("nodes"))
        return text + (" -> %s simplified" % s["nodes_simplified"] if s.get("simplified") else "")


STAGE = ExportStage()
