"""`pytools versions [NAME]`: list a model's versions in SemVer order (or the models)."""
from pytools.commands import leaf
from pytools.core.console import table
from pytools.core.errors import ConfigError
from pytools.commands._registry import add_registry_options, registry_from_args


def register(subparsers):
    p = leaf(subparsers, "versions", handle, "list versions of a model (semver order) or all models")
    p.add_argument("name", metavar="NAME", nargs="?", help="model name (omit to list models)")
    p.add_argument("--channel", help="only versions in this channel")
    p.add_argument("--delete", metavar="VERSION",
                   help="delete a pre-release (e.g. a merged merge request's build); releases are immutable")
    add_registry_options(p)


def handle(args):
    registry = registry_from_args(args)
    if args.delete:
        if not args.name:
            raise ConfigError("--delete needs the model NAME")
        result = registry.delete(args.name, args.delete, channel=args.channel)
        return result, "deleted %s %s from %s" % (result["name"], result["version"],
                                                  ", ".join(result["deleted_from"]))
    if not args.name:
        models = registry.models()
        return {"models": models}, "\n".join(models) or "(no models)"
    rows = registry.versions(args.name, channel=args.channel)
    text = table(["VERSION", "CHANNELS", "PLATFORMS", "PARITY", "PROMOTED"],
                 [[r["version"], ",".join(r["channels"]), ",".join(r["platforms"]), r.get("parity", ""),
                   "; ".join("%s->%s by %s%s" % (p.get("from"), p.get("to"), p.get("by"),
                                                  " (forced)" if p.get("forced") == "true" else "")
                             for p in r["promotions"]) +
                   "".join("; %s INCOMPLETE (run promote again)" % c for c in r.get("incomplete", []))]
                  for r in rows]) if rows else "(no versions)"
    return {"name": args.name, "versions": rows}, text
