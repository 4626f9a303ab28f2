"""Helpers shared by every area's tests (fixtures live in conftest.py)."""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    @property
    def json(self):
        import json

        return json.loads(self.out)

    @property
    def error_line(self):
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_pytools(*args, cwd=None, env=None, timeout=600):
    """Run `pytools` as its own process, as a user or Jenkins would."""
    proc = subprocess.run([sys.executable, "-m", "pytools"] + [str(a) for a in args], cwd=cwd,
                          env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def copy_example(name, dest):
    """A private copy of an example folder (configs resolve paths relative to themselves)."""
    target = os.path.join(str(dest), name)
    shutil.copytree(os.path.join(EXAMPLES, name), target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target
