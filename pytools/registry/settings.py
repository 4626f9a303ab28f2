"""Which registry to open: the `publish:` section of a model config, overridden by environment.

Secrets (token, API key, password) come only from the environment or from files named by the
environment; the config file never holds them, and they never reach a command line or a log.
"""
import os
import urllib.parse

from pytools.core.backends import REGISTRY_BACKENDS as BACKENDS
from pytools.core.errors import ConfigError
from pytools.core.workdir import DEFAULT_ROOT

CHANNELS = ["dev", "staging", "release"]
DEFAULT_LOCAL_PATH = os.path.join(DEFAULT_ROOT, "registry")


# environment variable -> settings key; the environment wins over the config file
ENV_KEYS = {
    "ARTIFACTORY_URL": "url",
    "ARTIFACTORY_REPO_PREFIX": "repo_prefix",
    "PYTOOLS_REGISTRY_CHANNEL": "channel",
    "PYTOOLS_REGISTRY_PUBLIC_KEY": "public_key",
}


def effective_settings(settings=None, environ=None):
    """Merge config settings with environment overrides and fill in defaults."""
    env = os.environ if environ is None else environ
    out = dict(settings or {})
    for var, key in ENV_KEYS.items():
        if env.get(var):
            out[key] = env[var]
    backend = env.get("PYTOOLS_REGISTRY_BACKEND")
    location = env.get("PYTOOLS_REGISTRY")
    if location and location.startswith(("http://", "https://")):
        out["url"], backend = location, backend or "artifactory"
    elif location:
        out["path"], backend = location, backend or "local"
    if not backend and env.get("ARTIFACTORY_URL"):
        backend = "artifactory"
    if backend:
        out["backend"] = backend
    elif "backend" not in out:
        out["backend"] = "artifactory" if out.get("url") else "local"
    if out["backend"] not in BACKENDS:
        raise ConfigError("registry backend %r is not %s" % (out["backend"], " or ".join(BACKENDS)))
    out.setdefault("channels", list(CHANNELS))
    out.setdefault("channel", out["channels"][0])
    out.setdefault("promote_mode", "copy")
    out.setdefault("timeout", 300)
    out.setdefault("retries", 4)
    if out["channel"] not in out["channels"]:
        raise ConfigError("publish.channel %r is not one of the channels %s"
                          % (out["channel"], ", ".join(out["channels"])))
    if out["backend"] == "local":
        out.setdefault("path", DEFAULT_LOCAL_PATH)
    else:
        if not out.get("url"):
            raise ConfigError("publish.backend is artifactory but no URL is set "
                              "(publish.url or $ARTIFACTORY_URL)")
        check_url(out["url"])
        repos = dict(out.get("repositories") or {})
        prefix = out.get("repo_prefix", "models")
        for channel in out["channels"]:
            repos.setdefault(channel, "%s-%s" % (prefix, channel))
        out["repositories"] = repos
    return out


def check_url(url):
    """Artifactory's REST API lives under its context path; without it every call is a 404 the
    client reports confusingly, so say so up front."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError("Artifactory URL %r is not an http(s):// URL" % url)
    if not parsed.path.rstrip("/").endswith("/artifactory"):
        raise ConfigError("Artifactory URL %s does not end with the /artifactory context path "
                          "(try %s://%s%s/artifactory)" % (url, parsed.scheme, parsed.netloc,
                                                           parsed.path.rstrip("/")))


def _secret(env, name):
    """Value of $NAME, or the stripped contents of the file named by $NAME_FILE."""
    if env.get(name):
        return env[name]
    path = env.get(name + "_FILE")
    if not path:
        return None
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError as exc:
        raise ConfigError("cannot read %s_FILE (%s): %s" % (name, path, exc.strerror))
    if not value:
        raise ConfigError("%s_FILE (%s) is empty" % (name, path))
    return value


def artifactory_credentials(environ=None):
    """Keyword arguments for ArtifactoryPath: token, API key or user/password (first found)."""
    env = os.environ if environ is None else environ
    token = _secret(env, "ARTIFACTORY_TOKEN")
    if token:
        return {"token": token}
    apikey = _secret(env, "ARTIFACTORY_API_KEY")
    if apikey:
        return {"apikey": apikey}
    user = env.get("ARTIFACTORY_USER")
    password = _secret(env, "ARTIFACTORY_PASSWORD")
    if user and password:
        return {"auth": (user, password)}
    if user or password:
        raise ConfigError("set both ARTIFACTORY_USER and ARTIFACTORY_PASSWORD (or _FILE)")
    return {}
