"""`pytools alias NAME [ALIAS [VERSION]]`: list, show or set a model's aliases."""
from pytools.commands import leaf
from pytools.core.console import table
from pytools.core.errors import PytoolsError
from pytools.commands._registry import add_registry_options, registry_from_args


def register(subparsers):
    p = leaf(subparsers, "alias", handle, "list, show or set aliases (e.g. production -> 1.4.0)",
             description="With NAME only: list aliases (explicit ones, plus computed `latest` and each "
                         "channel's newest release). With ALIAS: show it. With ALIAS VERSION: set it.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("alias", metavar="ALIAS", nargs="?")
    p.add_argument("version", metavar="VERSION", nargs="?")
    add_registry_options(p)


def handle(args):
    registry = registry_from_args(args)
    if args.alias and args.version:
        record = registry.set_alias(args.name, args.alias, args.version)
        return record, "%s %s -> %s (set by %s)" % (args.name, args.alias, record["version"], record["by"])
    aliases = registry.aliases(args.name)
    if args.alias:
        if args.alias not in aliases:
            raise PytoolsError("%s has no alias %r" % (args.name, args.alias))
        record = aliases[args.alias]
        return record, record["version"]
    rows = [[a, r["version"], r["kind"], r.get("by", "")] for a, r in sorted(aliases.items())]
    return {"name": args.name, "aliases": aliases}, \
        table(["ALIAS", "VERSION", "KIND", "SET BY"], rows) if rows else "(no aliases)"
