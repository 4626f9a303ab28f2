import jsonschema
import pytest

from pytools.core.errors import ConfigError
from pytools.registry import SETTINGS_SCHEMA, open_registry
from pytools.registry.settings import DEFAULT_LOCAL_PATH, artifactory_credentials, effective_settings


def test_local_is_the_default():
    s = effective_settings(None, environ={})
    assert (s["backend"], s["path"], s["channel"]) == ("local", DEFAULT_LOCAL_PATH, "dev")
    assert s["channels"] == ["dev", "staging", "release"]


def test_environment_overrides_the_config():
    s = effective_settings({"path": "/from/config"}, environ={"PYTOOLS_REGISTRY": "/from/env"})
    assert s["path"] == "/from/env"
    s = effective_settings({"path": "/from/config"}, environ={"ARTIFACTORY_URL": "https://a.example/artifactory",
                                                             "ARTIFACTORY_REPO_PREFIX": "ml"})
    assert s["backend"] == "artifactory"
    assert s["repositories"] == {"dev": "ml-dev", "staging": "ml-staging", "release": "ml-release"}
    s = effective_settings({"url": "https://a.example/artifactory"},
                           environ={"PYTOOLS_REGISTRY": "http://b.example/artifactory"})
    assert (s["backend"], s["url"]) == ("artifactory", "http://b.example/artifactory")


def test_explicit_repositories_and_channels():
    s = effective_settings({"url": "https://a/artifactory", "channels": ["dev", "prod"], "channel": "dev",
                            "repositories": {"prod": "ml-prod-local"}}, environ={})
    assert s["repositories"] == {"dev": "models-dev", "prod": "ml-prod-local"}


@pytest.mark.parametrize("settings,environ,message", [
    ({"backend": "artifactory"}, {}, "no URL"),
    ({"channel": "qa"}, {}, "not one of the channels"),
    ({}, {"PYTOOLS_REGISTRY_BACKEND": "s3"}, "not local or artifactory"),
])
def test_bad_settings_are_config_errors(settings, environ, message):
    with pytest.raises(ConfigError, match=message):
        effective_settings(settings, environ=environ)


def test_schema_accepts_good_and_rejects_bad_sections():
    jsonschema.validate({"backend": "artifactory", "url": "https://a/artifactory", "repo_prefix": "ml",
                         "promote_mode": "move", "retries": 3}, SETTINGS_SCHEMA)
    for bad in ({"backend": "s3"}, {"url": "ftp://x"}, {"token": "secret"}, {"retries": -1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SETTINGS_SCHEMA)


def test_credentials_precedence_and_half_pairs(tmp_path):
    assert artifactory_credentials({"ARTIFACTORY_TOKEN": "t", "ARTIFACTORY_API_KEY": "k"}) == {"token": "t"}
    assert artifactory_credentials({"ARTIFACTORY_API_KEY": "k"}) == {"apikey": "k"}
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert artifactory_credentials({"ARTIFACTORY_USER": "u", "ARTIFACTORY_PASSWORD_FILE": str(pw)}) == \
        {"auth": ("u", "s3cret")}
    with pytest.raises(ConfigError, match="both"):
        artifactory_credentials({"ARTIFACTORY_USER": "u"})
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        artifactory_credentials({"ARTIFACTORY_TOKEN_FILE": str(empty)})


def test_open_registry_picks_the_backend(tmp_path):
    assert open_registry({"path": str(tmp_path)}, environ={}).kind == "local"
    assert open_registry(None, environ={"ARTIFACTORY_URL": "http://127.0.0.1:9/artifactory"}).kind == "artifactory"
