"""The registry commands as a user runs them: `pytools ...` with --json, one-line errors."""
import json
import os

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def run(cli, monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith(("ARTIFACTORY_", "PYTOOLS_REGISTRY")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("BUILD_USER_ID", "ci-bot")

    def run(*argv, registry=None, extra_env=None):
        monkeypatch.setenv("PYTOOLS_REGISTRY", registry or str(tmp_path / "reg"))
        for k, v in (extra_env or {}).items():
            monkeypatch.setenv(k, v)
        return cli(*argv)
    return run


def test_publish_promote_versions_alias_fetch(run, make_package, tmp_path):
    pkg = make_package(version="1.4.0")
    r = run("publish", pkg, "--json")
    assert r.code == 0, r.err
    assert (r.json["name"], r.json["version"], r.json["channel"]) == ("weed-detector", "1.4.0", "dev")
    r = run("promote", "weed-detector", "1.4.0", "--to", "staging", "--json")
    assert r.code == 0 and r.json["by"] == "ci-bot"
    assert run("versions", "weed-detector", "--json").json["versions"][0]["channels"] == ["dev", "staging"]
    r = run("versions", "weed-detector")
    assert "1.4.0" in r.out and "dev->staging by ci-bot" in r.out
    assert run("versions").out.split() == ["weed-detector"]
    assert run("alias", "weed-detector", "production", "1.4.0").code == 0
    assert run("alias", "weed-detector", "production").out.strip() == "1.4.0"
    assert "production  1.4.0    explicit  ci-bot" in run("alias", "weed-detector").out
    dest = str(tmp_path / "fetched")
    r = run("fetch", "weed-detector", "production", "--dest", dest, "--json")
    assert r.code == 0, r.err
    assert r.json["verified"] is True and os.path.isfile(os.path.join(dest, "manifest.json"))
    r = run("fetch", "weed-detector", "production", "--dest", dest)
    assert r.code != 0 and "--force" in r.error_line
    assert run("fetch", "weed-detector", "production", "--dest", dest, "--force").code == 0


def test_fetch_names_its_default_destination(run, make_package, tmp_path, monkeypatch):
    assert run("publish", make_package(version="1.0.0")).code == 0
    monkeypatch.chdir(tmp_path)
    r = run("fetch", "weed-detector", "--json")
    assert r.code == 0, r.err
    assert r.json["path"] == str(tmp_path / "weed-detector-1.0.0-onnxruntime")


def test_errors_are_one_line_and_nonzero(run, make_package):
    pkg = make_package(version="1.5.0", parity=False)
    assert run("publish", pkg).code == 0
    r = run("promote", "weed-detector", "1.5.0", "--to", "release")
    assert r.code == 3 and "failed parity" in r.error_line
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    r = run("promote", "weed-detector", "1.5.0", "--to", "release", "--force", "--json")
    assert r.code == 0 and r.json["forced"] is True
    r = run("publish", pkg)
    assert r.code == 1 and "immutable" in r.error_line and len(r.err.strip().splitlines()) == 1
    assert "satisfies" in run("fetch", "weed-detector", "^9").error_line
    assert "no alias 'canary'" in run("fetch", "weed-detector", "canary").error_line
    assert "cannot be deleted" in run("versions", "weed-detector", "--delete", "1.5.0").error_line
    assert run("publish", make_package(version="1.6.0-mr.2")).code == 0
    assert run("versions", "weed-detector", "--delete", "1.6.0-mr.2").out.strip() == \
        "deleted weed-detector 1.6.0-mr.2 from dev"
    assert "unknown channel" in run("publish", pkg, "--channel", "prod").error_line


def test_cli_against_artifactory(run, artifactory, make_package):
    pkg = make_package(version="2.0.0")
    good = {"ARTIFACTORY_TOKEN": "test-token"}
    r = run("publish", pkg, "--json", registry=artifactory.url, extra_env=good)
    assert r.code == 0, r.err
    assert r.json["url"].startswith(artifactory.url + "/models-dev/weed-detector/2.0.0/")
    r = run("versions", "weed-detector", registry=artifactory.url,
            extra_env={"ARTIFACTORY_TOKEN": "not-the-token"})
    assert r.code == 1 and "rejected the credentials" in r.error_line and "not-the-token" not in r.err


def test_a_missing_file_on_fetch_is_one_line_naming_version_and_file(run, make_package, tmp_path):
    assert run("publish", make_package(version="1.0.0")).code == 0
    os.unlink(str(tmp_path / "reg" / "dev" / "weed-detector" / "1.0.0" / "onnxruntime" / "model.ts"))
    r = run("fetch", "weed-detector", "1.0.0", "--dest", str(tmp_path / "out"))
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1
    assert "1.0.0" in r.error_line and "model.ts" in r.error_line and "internal error" not in r.err
