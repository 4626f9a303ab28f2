"""PyTorch eager (the parity reference) and TorchScript runners."""
from pytools.backends.base import Runner, output_names
from pytools.core.workdir import TS_FILE


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, module, output_names):
        super().__init__(output_names)
        import torch

        self._torch = torch
        self.module = module.eval()

    @classmethod
    def open(cls, config, wd, model=None):
        return cls(model, output_names(config))

    def infer(self, feed):
        torch = self._torch
        with torch.inference_mode():
            out = self.module(*[torch.from_numpy(a) for a in feed.values()])
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [t.numpy() for t in out]


class TorchScriptRunner(TorchRunner):
    name = "torchscript"

    def __init__(self, path, output_names):
        import torch

        super().__init__(torch.jit.load(path, map_location="cpu"), output_names)

    @classmethod
    def open(cls, config, wd, model=None):
        return cls(wd.path(TS_FILE), output_names(config))
