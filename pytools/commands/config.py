"""`pytools config check FILE`."""
from pytools.commands import group, leaf


def check(args):
    from pytools.core import config
    from pytools.build import model

    cfg = config.load(args.file)
    if not args.no_import:
        model.build(cfg)
    text = "ok: %s is a valid config for %s %s" % (args.file, cfg["name"], cfg["version"])
    return {"valid": True, "file": args.file, "config": dict(cfg)}, text


def register(subparsers):
    sub = group(subparsers, "config", "model config files")
    p = leaf(sub, "check", check, "validate a model config (schema, then import and build the model); "
             "--json prints the effective config with defaults")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--no-import", action="store_true", help="check the schema only; do not import the model")
