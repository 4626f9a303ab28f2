"""One runner per framework behind one interface (after Polygraphy's runners).

A runner is activated once, then `infer(feed)` maps input names to NumPy arrays and returns
output arrays in the config's output order. `open_runner(name, ...)` returns the runner the
name table (`pytools.core.backends.RUNNERS`) names, or raises `BackendUnavailable` with the
reason a backend is skipped on this machine.
"""
from pytools.backends.base import BackendUnavailable, Runner, open_runner

__all__ = ["BackendUnavailable", "Runner", "open_runner"]
