"""PyTorch eager (the parity reference) and TorchScript runners. Inputs go in by name (eager) and
outputs come back flattened and named by the rule of pytools.core.binding, so every backend is
compared output by output under the same names."""
from pytools.backends.base import BackendUnavailable, Runner, output_names
from pytools.core import binding
from pytools.core.workdir import TS_FILE


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, module, config):
        super().__init__(output_names(config))
        import torch

        self._torch = torch
        self._config = config
        self.module = module
        self.flat_names = None  # the model's output names in its own order, when calls lose them

    @classmethod
    def open(cls, config, wd, model=None):
        return cls(model.eval(), config)

    def call(self, tensors):
        return self.module(**tensors)

    def infer(self, feed):
        torch = self._torch
        with torch.inference_mode():
            out = self.call({k: torch.from_numpy(a) for k, a in feed.items()})
        flat = binding.flatten(out)
        names = self.flat_names or binding.output_names(self._config, flat)
        named = dict(zip(names, (t for _, t in flat)))
        return [named[n].numpy() for n in self.output_names]


class TorchScriptRunner(TorchRunner):
    """A trace takes its inputs positionally in config order (pytools.build.export.positional);
    a scripted module takes them by keyword."""
    name = "torchscript"

    def __init__(self, path, config):
        import torch

        super().__init__(torch.jit.load(path, map_location="cpu"), config)
        self._positional = config["export"]["torchscript"] == "trace"

    @classmethod
    def open(cls, config, wd, model=None):
        if config["export"]["torchscript"] == "off":
            raise BackendUnavailable("export.torchscript is off")
        runner = cls(wd.path(TS_FILE), config)
        if runner._positional:  # a trace returns the flattened outputs, in the model's order
            runner.flat_names = [o["name"] for o in wd.state("export")["summary"]["io"]["outputs"]]
        return runner

    def call(self, tensors):
        return self.module(*tensors.values()) if self._positional else self.module(**tensors)
