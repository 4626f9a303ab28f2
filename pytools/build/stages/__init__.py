"""One module per stage of the chain, each exposing `STAGE`; the order and the outputs are the
stage table in `pytools.core.workdir`."""
import importlib

from pytools.core.workdir import STAGES


def load(name):
    """The `Stage` declared by the module of stage `name` in the stage table."""
    spec = next((s for s in STAGES if s.name == name), None)
    if spec is None:
        raise KeyError("no stage %r in the stage table" % name)
    return importlib.import_module(spec.module).STAGE


def all_stages():
    """Every `Stage` in table order."""
    return [load(spec.name) for spec in STAGES]
