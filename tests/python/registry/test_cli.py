"""The registry commands as a user runs them: real processes, JSON out, one-line errors."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def run(tmp_path):
    def run(*argv, registry=None, extra_env=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACTORY_", "PYTOOLS_REGISTRY"))}
        env["PYTOOLS_REGISTRY"] = registry or str(tmp_path / "reg")
        env["BUILD_USER_ID"] = "ci-bot"
        env.update(extra_env or {})
        p = subprocess.run([sys.executable, "-m", "pytools"] + list(argv), cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stdout.decode(), p.stderr.decode()
    return run


def test_publish_promote_versions_alias_fetch(run, make_package, tmp_path):
    pkg = make_package(version="1.4.0")
    rc, out, err = run("publish", pkg, "--json")
    assert rc == 0, err
    published = json.loads(out)
    assert (published["name"], published["version"], published["channel"]) == ("weed-detector", "1.4.0", "dev")
    rc, out, _ = run("promote", "weed-detector", "1.4.0", "--to", "staging", "--json")
    assert rc == 0 and json.loads(out)["by"] == "ci-bot"
    rc, out, _ = run("versions", "weed-detector", "--json")
    assert json.loads(out)["versions"][0]["channels"] == ["dev", "staging"]
    rc, out, _ = run("versions", "weed-detector")
    assert "1.4.0" in out and "dev->staging by ci-bot" in out
    assert run("alias", "weed-detector", "production", "1.4.0")[0] == 0
    rc, out, _ = run("alias", "weed-detector", "production")
    assert out.strip() == "1.4.0"
    dest = str(tmp_path / "fetched")
    rc, out, err = run("fetch", "weed-detector", "production", "--dest", dest, "--json")
    assert rc == 0, err
    assert json.loads(out)["verified"] is True and os.path.isfile(os.path.join(dest, "manifest.json"))
    rc, _, err = run("fetch", "weed-detector", "production", "--dest", dest)
    assert rc != 0 and "--force" in err


def test_errors_are_one_line_and_nonzero(run, make_package):
    pkg = make_package(version="1.5.0", parity=False)
    assert run("publish", pkg)[0] == 0
    rc, _, err = run("promote", "weed-detector", "1.5.0", "--to", "release")
    assert rc == 3 and err.startswith("error: ") and "failed parity" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    rc, out, _ = run("promote", "weed-detector", "1.5.0", "--to", "release", "--force", "--json")
    assert rc == 0 and json.loads(out)["forced"] is True
    rc, _, err = run("publish", pkg)
    assert rc == 1 and "immutable" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run("fetch", "weed-detector", "^9")
    assert rc == 1 and "satisfies" in err


def test_cli_against_artifactory(run, artifactory, make_package, tmp_path):
    pkg = make_package(version="2.0.0")
    good = {"ARTIFACTORY_TOKEN": "test-token"}
    rc, out, err = run("publish", pkg, "--json", registry=artifactory.url, extra_env=good)
    assert rc == 0, err
    assert json.loads(out)["url"].startswith(artifactory.url + "/models-dev/weed-detector/2.0.0/")
    rc, _, err = run("versions", "weed-detector", registry=artifactory.url,
                     extra_env={"ARTIFACTORY_TOKEN": "not-the-token"})
    assert rc == 1 and "rejected the credentials" in err and "not-the-token" not in err
