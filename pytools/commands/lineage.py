"""`pytools lineage NAME VERSION`: the chain from checkpoint to robots, as text, JSON or a picture."""
import os

from pytools.commands import leaf
from pytools.commands._registry import add_registry_options, existing_registry_from_args
from pytools.core.workdir import PACKAGE_DIR, ROLLOUTS_DIR, default_workdir

EPILOG = """\
sources: the registry (--registry / $PYTOOLS_REGISTRY / the config's publish: section), the work
directory's package/ and rollouts/ (default work/NAME), and --fleet to ask the robots themselves.
VERSION may also be an alias, channel or range when the registry is available.

examples:
  pytools lineage crop-weed-classifier 1.0.0
  pytools lineage crop-weed-classifier release --svg lineage.svg
  pytools lineage crop-weed-classifier 1.0.0 --json --fleet work/fleet/inventory.yml
"""


def add_source_options(parser):
    parser.add_argument("--workdir", help="work directory of the model (default work/NAME): "
                        "its package/ and rollouts/ are read")
    parser.add_argument("--rollouts", action="append", default=[], metavar="DIR",
                        help="another folder of rollout records (repeatable)")
    parser.add_argument("--fleet", metavar="INVENTORY",
                        help="ask the robots of this inventory what they run (instead of the records)")


def rollout_dirs(args):
    return [os.path.join(args.workdir or default_workdir(args.name), ROLLOUTS_DIR)] + list(args.rollouts)


def handle(args):
    from pytools.tracking import lineage

    registry = existing_registry_from_args(args)
    workdir = args.workdir or default_workdir(args.name)
    data = lineage.gather(args.name, args.version, registry=registry,
                          package_dirs=[os.path.join(workdir, PACKAGE_DIR)] + list(args.package),
                          rollout_dirs=rollout_dirs(args), fleet=args.fleet)
    human = lineage.text(data)
    for fmt, dest in (("svg", args.svg), ("png", args.png)):
        if dest:
            data[fmt] = lineage.render(lineage.to_dot(data), dest, fmt)
            human += "\n%s: %s" % (fmt, data[fmt])
    if args.dot:
        with open(args.dot, "w") as f:
            f.write(lineage.to_dot(data))
        data["dot"] = os.path.abspath(args.dot)
    return data, human


def register(subparsers):
    p = leaf(subparsers, "lineage", handle, "show where a model version came from and where it runs",
             description=__doc__.split("\n")[0] + "\n\n" + EPILOG)
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--package", action="append", default=[], metavar="DIR",
                   help="another package directory to read a manifest from (repeatable)")
    add_source_options(p)
    p.add_argument("--svg", metavar="FILE", help="draw the lineage graph (Graphviz) as SVG")
    p.add_argument("--png", metavar="FILE", help="draw the lineage graph (Graphviz) as PNG")
    p.add_argument("--dot", metavar="FILE", help="write the Graphviz source")
    add_registry_options(p)
