"""`pytools publish PACKAGE_DIR`: verify a package and publish it to the registry."""
from pytools.commands import leaf
from pytools.commands._registry import add_registry_options, registry_from_args


def register(subparsers):
    p = leaf(subparsers, "publish", handle, "verify a package and publish it to the registry",
             description="Verify PACKAGE_DIR against its manifest and publish it as "
                         "<model>/<version>/<platform> in a channel (default: the first, dev).\n"
                         "Released versions are immutable; a pre-release may be re-published.")
    p.add_argument("package_dir", metavar="PACKAGE_DIR")
    p.add_argument("--channel", help="channel to publish to (default: publish.channel, else dev)")
    add_registry_options(p)


def handle(args):
    result = registry_from_args(args).publish(args.package_dir, channel=args.channel)
    text = "published %s %s (%s) to %s: %s\n%d bytes sent" % (
        result["name"], result["version"], result["platform"], result["channel"], result["url"],
        result["bytes_sent"])
    return result, text
