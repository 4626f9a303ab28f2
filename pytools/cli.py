"""The `pytools` command: one sub-command per stage, plus run / fleet / release."""
import argparse
import contextlib
import importlib
import pkgutil
import signal
import sys
import threading
import traceback

from pytools import __version__, commands
from pytools.core.console import emit, emit_error
from pytools.core.errors import ConfigError, PytoolsError


class UsageError(Exception):
    """A command line argparse rejects (exit code 2, like a config error)."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors raised, so they print like every other failure."""

    def error(self, message):
        raise UsageError("%s: %s (see %s --help)" % (self.prog, message, self.prog))


def build_parser():
    parser = Parser(
        prog="pytools",
        description="Take a PyTorch model from a checkpoint to checked, versioned engine packages.")
    parser.add_argument("--version", action="version", version="pytools " + __version__)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module("pytools.commands." + info.name).register(subparsers)
    return parser


# `pytools package CONFIG` is short for `pytools package build CONFIG`.
DEFAULT_SUBCOMMAND = {"package": ("build", {"build", "verify", "keygen", "-h", "--help"})}


def _expand_default_subcommand(argv):
    if len(argv) >= 2 and argv[0] in DEFAULT_SUBCOMMAND:
        default, known = DEFAULT_SUBCOMMAND[argv[0]]
        if argv[1] not in known:
            return [argv[0], default] + argv[1:]
    return argv


def _interrupted(signum, frame):
    raise KeyboardInterrupt()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a Jenkins abort, a CI timeout) unwinds like Ctrl-C in every command, so each one
    cleans up (uploads, leases, half-written files) the same way on both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    """Run one command; exit codes: 0 ok, 2 usage or config error, 3 a check failed, 1 anything
    else (130 interrupted). A failure is one `error:` line on stderr and, with --json, a JSON
    object {"error": ..., "code": ...} on stdout."""
    argv = _expand_default_subcommand(list(sys.argv[1:] if argv is None else argv))
    wants_json = "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return emit_error(wants_json, str(exc), ConfigError.exit_code)
    handler = getattr(args, "handler", None)
    if handler is None:
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return emit_error(wants_json, "no command given", ConfigError.exit_code)
    try:
        with sigterm_as_interrupt():
            data, human = handler(args)
    except PytoolsError as exc:
        if args.debug:
            traceback.print_exc()
        return emit_error(args.json, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return emit_error(args.json, "interrupted", 130)
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        return emit_error(args.json, "internal error: %s: %s (re-run with --debug for the traceback)"
                          % (type(exc).__name__, exc), 1)
    emit(args, data, human)
    return int(data.get("exit_code", 0)) if isinstance(data, dict) else 0
