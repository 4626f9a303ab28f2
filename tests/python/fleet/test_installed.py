"""An installed pytools, not the checkout, rolls out over every transport.

`pip install .` into a fresh venv, then from a directory outside the checkout with PYTHONPATH
cleared, the venv's `pytools` deploys to a simulated fleet over ssh, pull and ansible: the robot
agent and the Ansible role, playbooks and ansible.cfg must have been installed with the package.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
from fleet_testlib import current, needs_root
from pytools_testlib import REPO

from pytools.fleet.sim.demo import make_demo_package

pytestmark = [needs_root, pytest.mark.timeout(300)]

# What `pip install .` reads. They are copied out first, because building in the checkout
# would write build/ and *.egg-info into it.
BUILD_INPUTS = ("pyproject.toml", "pytools", "ansible")

# Run in the venv: load what each transport needs and say where every pytools module came from.
# The checkout's editable install stays visible to a --system-site-packages venv (its finder is
# on sys.meta_path, after the venv's site-packages): a module missing from the installed copy
# would be loaded from the checkout, and show up here.
PROBE = """
import json, sys
import pytools.cli, pytools.commands.rollout, pytools.fleet.rollout, pytools.fleet.sim.simulate
from pytools.fleet.agent import AGENT_SOURCE
from pytools.fleet.transports import TRANSPORTS, transport_class
from pytools.fleet.transports.ansible import ANSIBLE_DIR
for name in TRANSPORTS:
    transport_class(name)
modules = {n: getattr(m, "__file__", None) for n, m in sys.modules.items()
           if n.split(".")[0] == "pytools"}
print(json.dumps({"agent": AGENT_SOURCE, "ansible": ANSIBLE_DIR, "modules": modules}))
"""

INSTALL = """
import json, sys
from pytools.fleet.transports.ansible import run_playbook
inventory, workdir, place = sys.argv[1:]
run = run_playbook("install", inventory, workdir, limit="robot-001", extravars={
    "model_agent_path": place + "/robot_agent.py", "model_agent_config": place + "/agent.json",
    "robot_model_agent_settings": {"root": place + "/models", "facts": {}},
    # no systemd here: the boot-time unit is written beside the agent, not enabled
    "robot_model_recover_unit_dir": place, "robot_model_recover_unit_enable": False})
print(json.dumps(run["hosts"]))
"""


def run(argv, cwd, env, timeout=240):
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture
def venv(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        here = os.path.join(REPO, name)
        if os.path.isdir(here):  # symlinks stay links: pytools/fleet/ansible -> ../../ansible
            shutil.copytree(here, str(src / name), symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(here, str(src / name))
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(root)], check=True, timeout=120)
    python = str(root / "bin" / "python")
    # The system's pip, run by the venv's python, installs into the venv (and never removes
    # the checkout's editable install, which lies outside the venv).
    code, out, err = run([python, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-index", str(src)], str(tmp_path),
                         dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert code == 0, out + err
    return root


def test_installed_pytools_rolls_out_over_every_transport(venv, make_fleet, tmp_path):
    outside = tmp_path / "out"  # also the workdir: ssh's control sockets need a short path
    outside.mkdir()
    assert not str(outside).startswith(REPO + os.sep)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    python, where = str(venv / "bin" / "python"), str(venv) + os.sep

    code, out, err = run([python, "-c", PROBE], str(outside), env)
    assert code == 0, err
    probe = json.loads(out)
    strays = {n: f for n, f in probe["modules"].items() if f and not f.startswith(where)}
    assert probe["modules"]["pytools"].startswith(where)
    assert not strays, strays
    assert probe["agent"].startswith(where) and os.path.isfile(probe["agent"])
    for shipped in ("ansible.cfg", "playbooks/deploy.yml", "roles/robot_model/tasks/main.yml"):
        path = os.path.join(probe["ansible"], shipped)
        assert path.startswith(where) and os.path.isfile(path) and not os.path.islink(path)

    fleet = make_fleet(2)
    for transport, version in (("ssh", "3.0.0"), ("pull", "3.1.0"), ("ansible", "3.2.0")):
        package = str(tmp_path / ("pkg-" + version))
        make_demo_package(package, version)
        code, out, err = run([str(venv / "bin" / "pytools"), "rollout", "demo", version,
                              "--fleet", fleet.inventory, "--package", package, "--workdir",
                              str(outside), "--transport", transport, "--yes",
                              "--waves", "100%", "--json"], str(outside), env)
        assert code == 0, (transport, out[-2000:], err[-2000:])
        record = json.loads(out)
        assert record["options"]["transport"] == transport
        assert {r["outcome"] for r in record["robots"].values()} == {"activated"}, record
        assert [current(r) for r in fleet.robots] == [version, version]

    # The install playbook copies the agent from the installed package, not from a checkout.
    place = str(tmp_path / "robot-os")
    code, out, err = run([python, "-c", INSTALL, fleet.inventory, str(outside), place],
                         str(outside), env)
    assert code == 0, err
    assert json.loads(out)["robot-001"]["outcome"] == "installed", out
    with open(probe["agent"], "rb") as shipped, open(place + "/robot_agent.py", "rb") as put:
        assert put.read() == shipped.read()
    # The role's template shipped too: the boot-time recovery unit was written.
    assert "recover" in open(place + "/model-agent-recover.service").read()
