"""Helpers shared by the fleet tests (imported by name; pytest puts this folder on sys.path)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from pytools.fleet.agent import robot_agent

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sshd"),
                                reason="the simulated fleet needs root and OpenSSH sshd")


def current(robot_or_root):
    root = getattr(robot_or_root, "model_root", robot_or_root)
    try:
        return os.path.basename(os.readlink(os.path.join(root, "current")))
    except OSError:
        return None


def read_record(workdir, name, version):
    with open(os.path.join(workdir, "rollouts", "%s-%s.json" % (name, version))) as f:
        return json.load(f)


def run_agent(config_path, *args, stdin=None):
    """Run the robot agent file as a robot would: a separate Python process."""
    proc = subprocess.run([sys.executable, robot_agent.__file__, "--config", config_path]
                          + list(args), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    return proc.returncode, json.loads(proc.stdout.decode().strip().splitlines()[-1])
