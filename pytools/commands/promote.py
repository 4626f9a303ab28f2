"""`pytools promote NAME VERSION --to CHANNEL`: move a version forward without rebuilding it."""
from pytools.commands import leaf
from pytools.commands._registry import add_registry_options, registry_from_args


def register(subparsers):
    p = leaf(subparsers, "promote", handle, "promote a published version to a later channel",
             description="Copy (or --move) NAME VERSION from its channel to CHANNEL, recording who "
                         "($BUILD_USER_ID, else $USER) and when. A version whose stored manifest says "
                         "parity failed is refused unless --force, and the override is recorded. "
                         "Safe to repeat: a version CHANNEL already holds is success, and a promotion "
                         "that was interrupted is completed.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--to", required=True, dest="to_channel", metavar="CHANNEL", help="target channel")
    p.add_argument("--from", dest="from_channel", metavar="CHANNEL",
                   help="source channel (default: the latest channel before CHANNEL holding it)")
    p.add_argument("--move", action="store_true", default=None,
                   help="move instead of copy (default: publish.promote_mode, else copy)")
    p.add_argument("--force", action="store_true", help="promote even if parity failed (recorded)")
    add_registry_options(p)


def handle(args):
    result = registry_from_args(args).promote(args.name, args.version, args.to_channel,
                                              from_channel=args.from_channel, force=args.force,
                                              move=args.move)
    text = "%s %s %s: %s -> %s (%s by %s at %s)%s" % (
        "already promoted" if result["already"] else "promoted",
        result["name"], result["version"], result["from"], result["to"], result["mode"],
        result["by"], result["at"], " FORCED despite failed parity" if result["forced"] else "")
    return result, text
