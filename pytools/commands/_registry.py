"""What the registry commands (publish, promote, versions, fetch, alias, lineage) share: how to open it."""
import os

from pytools.registry import open_registry


def add_registry_options(parser):
    parser.add_argument("--config", metavar="CONFIG",
                        help="model config whose `publish:` section configures the registry")
    parser.add_argument("--registry", metavar="PATH_OR_URL",
                        help="local registry directory or Artifactory URL (overrides $PYTOOLS_REGISTRY)")


def registry_from_args(args):
    settings = None
    if getattr(args, "config", None):
        from pytools.core import config  # the config loader validates `publish:` against SETTINGS_SCHEMA
        settings = config.load(args.config).get("publish")
    environ = dict(os.environ)
    if getattr(args, "registry", None):
        environ["PYTOOLS_REGISTRY"] = args.registry
    return open_registry(settings, environ=environ)


def existing_registry_from_args(args):
    """The registry named by --config/--registry/$PYTOOLS_REGISTRY, or None when it is a local
    directory that does not exist (reading lineage must not create an empty registry)."""
    registry = registry_from_args(args)
    if registry.kind == "local" and not os.path.isdir(registry.root):
        return None
    return registry
