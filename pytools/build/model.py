"""Build the model named by the config's import path (`package.module:Class`).

The config file's folder goes first on sys.path, so an example's model module sits beside its YAML.
"""
import importlib
import importlib.util
import os
import sys

from pytools.core.errors import ConfigError


def _with_config_path(config):
    if config.base_dir not in sys.path:
        sys.path.insert(0, config.base_dir)


def source_file(config):
    """The model module's file (hashed for caching: editing the model re-runs export), or None."""
    _with_config_path(config)
    module = config["model"]["import"].split(":")[0]
    try:
        spec = importlib.util.find_spec(module.split(".")[0] if "." not in module else module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and os.path.isfile(spec.origin) else None


def build(config):
    _with_config_path(config)
    module_name, class_name = config["model"]["import"].split(":")
    where = "%s: model.import" % config.path
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError("%s: module %r not found (looked in %s and the Python path)"
                          % (where, exc.name, config.base_dir))
    except Exception as exc:
        raise ConfigError("%s: importing %r failed: %s: %s" % (where, module_name, type(exc).__name__, exc))
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError("%s: module %r has no %r" % (where, module_name, class_name))
    try:
        model = cls(**config["model"]["args"])
    except TypeError as exc:
        raise ConfigError("%s: model.args: %s rejected its arguments: %s" % (config.path, class_name, exc))
    return model.eval()
