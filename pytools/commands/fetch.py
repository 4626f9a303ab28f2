"""`pytools fetch NAME [SPEC]`: download a package, every file verified before it is handed over."""
from pytools.commands import leaf
from pytools.commands._registry import add_registry_options, registry_from_args


def register(subparsers):
    p = leaf(subparsers, "fetch", handle, "download and verify a package from the registry",
             description="SPEC is a version (1.4.0), an alias (latest, production, or a channel "
                         "name: its newest release) or a range (^1.4, ~1.4.2, '>=1.0 <2', 1.x).")
    p.add_argument("name", metavar="NAME")
    p.add_argument("spec", metavar="SPEC", nargs="?", default="latest")
    p.add_argument("--dest", help="target directory (default ./<name>-<version>-<platform>)")
    p.add_argument("--platform", help="platform when a version has several")
    p.add_argument("--channel", help="only look in this channel")
    p.add_argument("--force", action="store_true", help="replace a non-empty --dest")
    add_registry_options(p)


def handle(args):
    registry = registry_from_args(args)
    dest = args.dest
    if not dest:
        entry = registry.resolve(args.name, args.spec, channel=args.channel, platform=args.platform)
        dest = "%s-%s-%s" % (args.name, entry["version"], entry["platform"])
    result = registry.fetch(args.name, args.spec, dest, channel=args.channel, platform=args.platform,
                            replace=args.force)
    result.pop("props", None)
    return result, "fetched %s %s (%s) from %s into %s (%d files verified)" % (
        result["name"], result["version"], result["platform"], result["channel"], result["path"],
        result["files"])
