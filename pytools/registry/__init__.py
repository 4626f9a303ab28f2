"""The versioned engine registry: one interface, a local directory (default) or Artifactory.

    registry = open_registry(config.get("publish"))
    registry.publish(package_dir, channel="dev")   # -> {name, version, platform, channel, url, ...}
    registry.resolve("weed-detector", "^1.4")       # versions, aliases, ranges
    registry.fetch("weed-detector", "production", "out/")
    registry.promote("weed-detector", "1.4.0", "staging")

See docs/registry.md for settings, environment variables and layout.
"""
import importlib

from pytools.core.config import PUBLISH_SCHEMA as SETTINGS_SCHEMA
from pytools.registry.base import Registry, RegistryError, current_user
from pytools.registry.settings import BACKENDS, effective_settings

__all__ = ["Registry", "RegistryError", "SETTINGS_SCHEMA", "open_registry", "current_user"]


def open_registry(settings=None, environ=None):
    """Open the registry described by a config's `publish:` section plus the environment."""
    effective = effective_settings(settings, environ)
    module, cls = BACKENDS[effective["backend"]].split(":")
    return getattr(importlib.import_module(module), cls)(effective, environ)
