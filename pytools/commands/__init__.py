"""One module per top-level sub-command. Each module defines `register(subparsers)`.

The CLI discovers the modules of this package, so adding a command is adding a file.
Handlers take the parsed args and return `(data, human_text)`; the CLI prints one of them.
"""
import argparse

COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
COMMON.add_argument("--debug", action="store_true", help="show a traceback on failure")


def leaf(subparsers, name, handler, help, description=None):
    """Add a runnable (leaf) sub-command with the common options."""
    parser = subparsers.add_parser(
        name, parents=[COMMON], help=help, description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def group(subparsers, name, help):
    """Add a command that only holds sub-commands (e.g. `pytools config check`); a second call
    with the same name (two modules adding to `pytools package`) returns the same group."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=None, group_parser=parser)
        parser.sub_commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    return parser.sub_commands
