"""Fixtures for the fleet tests: real packages, a real simulated fleet (sshd + services)."""
import json
import os

import pytest

from pytools.cli import main
from pytools.fleet.sim.demo import make_demo_package
from pytools.fleet.sim.simulate import SimulatedFleet
from pytools.core.package import generate_keypair

class Packages:
    def __init__(self, base):
        self.base = base
        self.key = os.path.join(base, "release.key.pem")
        self.pub = os.path.join(base, "release.pub.pem")
        generate_keypair(self.key, self.pub)
        self.v1 = self.make("1.0.0")
        self.v2 = self.make("1.1.0", payload_bytes=2 << 20)
        self.broken = self.make("1.2.0", broken_model=True)

    def make(self, version, **kw):
        # Keyed by version and options: keyed by version alone, the session cache handed a later
        # test the small 1.3.0 an earlier test made instead of the big payload it asked for.
        extra = "".join("-%s=%s" % (k, kw[k]) for k in sorted(kw) if k != "sign_key")
        dest = os.path.join(self.base, "%s%s%s" % (version, "-signed" if kw.get("sign_key") else "", extra))
        if not os.path.isdir(dest):
            make_demo_package(dest, version, **kw)
        return dest


@pytest.fixture(autouse=True)
def inventory_cache(tmp_path_factory, monkeypatch):
    """Parsed inventories are cached per user: the tests' cache is their own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    return Packages(str(tmp_path_factory.mktemp("packages")))


@pytest.fixture
def make_fleet(tmp_path, packages):
    """make_fleet(n, install=True, **SimulatedFleet options) -> a running fleet with 1.0.0."""
    fleets = []

    def start(count, install=True, install_package=None, **kw):
        kw.setdefault("health_timeout", 5)  # a broken model is found in 5 s, not 20
        fleet = SimulatedFleet(str(tmp_path / ("fleet%d" % len(fleets))), count, **kw)
        fleets.append(fleet)
        fleet.__enter__()
        if install:
            fleet.install(install_package or packages.v1, "1.0.0")
        return fleet

    yield start
    for fleet in fleets:
        fleet.stop()


@pytest.fixture
def cli(capsys):
    """Run `pytools ARGS --json` in this process; return (exit code, JSON or None, stderr)."""
    def run(*args):
        code = main(list(args) + ["--json"])
        out, err = capsys.readouterr()
        try:
            data = json.loads(out) if out.strip() else None
        except ValueError:
            data = None
        return code, data, err
    return run
