"""Pull mode: robots download the package over HTTP themselves, resuming with Range requests."""
import os
import urllib.error
import urllib.request

import pytest
from fleet_testlib import current, needs_root

from pytools.fleet.transports.package_server import PackageServer

pytestmark = pytest.mark.timeout(180)


def package_size(package):
    return sum(os.path.getsize(os.path.join(package, n)) for n in os.listdir(package))


def test_package_server_ranges_and_refusals(packages):
    with PackageServer(packages.v2) as srv:
        req = urllib.request.Request(srv.url + "weights.bin", headers={"Range": "bytes=10-19"})
        resp = urllib.request.urlopen(req, timeout=10)
        with open(os.path.join(packages.v2, "weights.bin"), "rb") as f:
            f.seek(10)
            assert resp.status == 206 and resp.read() == f.read(10)
        for path, code in (("../etc/passwd", 404), ("", 404), ("nope", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(srv.url + path, timeout=10)
            assert err.value.code == code
        req = urllib.request.Request(srv.url + "weights.bin", headers={"Range": "bytes=%d-" % (
            10 << 30)})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 416


@needs_root
def test_pull_rollout_resumes_partial_download(make_fleet, packages, cli, tmp_path):
    fleet = make_fleet(2)
    half = os.path.getsize(os.path.join(packages.v2, "weights.bin")) // 2
    incoming = os.path.join(fleet.robot("robot-002").model_root, "incoming", "1.1.0")
    os.makedirs(incoming)
    with open(os.path.join(packages.v2, "weights.bin"), "rb") as src, \
            open(os.path.join(incoming, "weights.bin"), "wb") as dst:
        dst.write(src.read(half))  # what a download cut at 50% leaves behind
    code, rec, err = cli("rollout", "demo", "1.1.0", "--fleet", fleet.inventory, "--package",
                         packages.v2, "--workdir", str(tmp_path), "--yes", "--pull",
                         "--waves", "canary,100%")
    assert code == 0, err
    assert rec["options"]["transport"] == "pull"
    full = package_size(packages.v2)
    assert rec["robots"]["robot-001"]["bytes_sent"] == full
    assert rec["robots"]["robot-002"]["bytes_sent"] == full - half
    for robot in fleet.robots:
        assert current(robot) == "1.1.0"
