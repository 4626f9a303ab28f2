"""The torch.export ExportedProgram (`model.pt2`, torch.export.load), run as a module with the
inputs by name: what the ONNX exporter converted, checked on its own."""
import os

from pytools.backends.base import BackendUnavailable
from pytools.backends.torch_eager import TorchRunner
from pytools.core.workdir import EP_FILE


class ExportedProgramRunner(TorchRunner):
    name = "exported-program"

    def __init__(self, path, config):
        import torch

        super().__init__(torch.export.load(path).module(), config)

    @classmethod
    def open(cls, config, wd, model=None):
        path = wd.path(EP_FILE)
        if not os.path.exists(path):
            summary = (wd.state("export") or {}).get("summary") or {}
            raise BackendUnavailable(summary.get("exported_program_error") or "no %s" % os.path.basename(path))
        return cls(path, config)
