"""What every stage of the chain declares: its commands, what it reads, how it runs, how its
summary reads. The stage table (`pytools.core.workdir.STAGES`) names one module per stage under
`pytools/build/stages/`, each holding `STAGE`, an instance of a `Stage` subclass.

`options` is the parsed command line (an `argparse.Namespace`); a stage reads only the options
its own `add_arguments` declares, with `opt(options, name)` so an option another command does
not have reads as None.
"""


def opt(options, name, default=None):
    return getattr(options, name, default) if options is not None else default


class Stage:
    name = ""
    # (command path, help, fixed options) for each CLI sub-command that runs only this stage,
    # e.g. (("checkpoint", "fetch"), "copy or download ...", {"mode": "fetch"}).
    commands = ()
    listed = True   # a row of `pytools run`'s summary table (the report is printed apart)
    after_failure = False  # `pytools run` still runs it after an earlier stage's check failed

    def add_arguments(self, parser, run=False):
        """Options of this stage's own commands (run=False) or of `pytools run` (run=True)."""

    def wanted(self, pipe, options):
        """Whether `pytools run` runs this stage."""
        return True

    def inputs(self, pipe, options):
        """Everything the result depends on (hashed for the cache); must not import torch."""
        raise NotImplementedError

    def run(self, pipe, options, inputs):
        """Do the work `inputs` (what inputs() returned, the cache key) describes; return
        (status, summary, output paths relative to the work directory) with status "ran",
        "skipped" or "failed" (a check that ran and failed)."""
        raise NotImplementedError

    def verdict(self, pipe, result):
        """Raise the stage's error for a recorded failure (after its reports are written)."""

    def describe(self, summary):
        """The key numbers of a result, one line for the run table."""
        return ""
