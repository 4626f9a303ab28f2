"""The `pytools` command: one sub-command per stage, plus run / fleet / release."""
import argparse
import importlib
import pkgutil
import sys
import traceback

from pytools import __version__, commands
from pytools.core.console import emit
from pytools.core.errors import PytoolsError


def build_parser():
    parser = argparse.ArgumentParser(
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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(_expand_default_subcommand(list(sys.argv[1:] if argv is None else argv)))
    handler = getattr(args, "handler", None)
    if handler is None:
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return 2
    try:
        data, human = handler(args)
    except PytoolsError as exc:
        if args.debug:
            traceback.print_exc()
        print("error: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print("error: internal error: %s: %s (re-run with --debug for the traceback)"
              % (type(exc).__name__, exc), file=sys.stderr)
        return 1
    emit(args, data, human)
    return int(data.get("exit_code", 0)) if isinstance(data, dict) else 0
