"""Fixtures shared by every area's tests."""
import pytest

from pytools_testlib import CliResult


@pytest.fixture
def cli(capsys):
    """Run `pytools ARGS` in this process (torch is imported once per test session)."""
    from pytools.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
