"""Wave planning, thresholds and inventory parsing (pure functions, bad inputs)."""
import os

import pytest

from pytools.core.errors import ConfigError
from pytools.fleet.inventory import load_inventory
from pytools.fleet.waves import crossed, parse_threshold, plan_waves

INVENTORY = """\
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: keys/id
    model_agent_known_hosts: known_hosts
  children:
    canary:
      hosts:
        r05: {ansible_host: 10.9.0.5}
    field:
      vars: {ansible_port: 2222}
      hosts:
        r01: {ansible_host: 10.9.0.1}
        r02:
        r03: {ansible_port: 22}
        r04:
        r05:
"""


@pytest.fixture
def robots(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    return load_inventory(str(path))


def test_inventory_vars_groups_and_paths(robots, tmp_path):
    by = {r.name: r for r in robots}
    assert [r.name for r in robots] == ["r05", "r01", "r02", "r03", "r04"]
    assert by["r05"].groups == ["all", "canary", "field"] and by["r05"].host == "10.9.0.5"
    assert by["r01"].port == 2222 and by["r03"].port == 22 and by["r02"].host == "r02"
    assert by["r01"].key_file == str(tmp_path / "keys" / "id")
    assert by["r01"].known_hosts == str(tmp_path / "known_hosts")


@pytest.mark.parametrize("text,message", [
    ("- just a list\n", "lists no hosts"),
    ("all: {hosts: {}}\n", "lists no hosts"),
    ("all: {hosts: {r1: 5}}\n", "expected dictionary and got"),
    ("all: [\n", "YAML parsing failed"),
])
def test_inventory_bad_input(tmp_path, text, message):
    path = tmp_path / "inv.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_inventory(str(path))


def test_inventory_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read fleet inventory"):
        load_inventory(str(tmp_path / "nope.yml"))


def test_waves_canary_then_cumulative_percentages(robots):
    waves = plan_waves(robots, "canary,20%,50%,100%")
    assert [(w["name"], w["robots"]) for w in waves] == [
        ("canary", ["r05"]), ("50%", ["r01", "r02"]), ("100%", ["r03", "r04"])]
    # 20% of 5 is 1 robot, already covered by the canary: that wave is empty and dropped.


def test_waves_without_canary_group_and_last_wave_takes_rest(robots):
    for r in robots:
        r.groups = ["all"]
    waves = plan_waves(robots, "canary,40%")
    assert waves == [{"name": "canary", "robots": ["r05"]},
                     {"name": "40%", "robots": ["r01", "r02", "r03", "r04"]}]


@pytest.mark.parametrize("spec", ["", "canary,abc", "canary,150%", "canary,x%"])
def test_waves_bad_spec(robots, spec):
    with pytest.raises(ConfigError):
        plan_waves(robots, spec)


def test_thresholds():
    assert not crossed(parse_threshold("0"), 0, 10)
    assert crossed(parse_threshold("0"), 1, 10)
    assert not crossed(parse_threshold("2"), 2, 10)
    assert not crossed(parse_threshold("10%"), 1, 10) and crossed(parse_threshold("10%"), 2, 10)
    assert crossed(parse_threshold("10%"), 1, 5)  # 10% of 5 rounds down to 0 allowed
    for bad in ("-1", "x", "120%"):
        with pytest.raises(ConfigError):
            parse_threshold(bad)


@pytest.mark.parametrize("args,message", [
    (["fleet", "simulate", "0"], "a simulated fleet has 1..250 robots"),
    (["fleet", "simulate", "61", "--netns"], "1..60 robots"),
    (["fleet", "status", "/nonexistent/inventory.yml"], "cannot read fleet inventory"),
    (["fleet", "status", "inv.yml", "--concurrency", "0"], "--concurrency must be >= 1"),
])
def test_fleet_command_bad_input(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args, "--dir", str(tmp_path / "fleet")) if args[1] == "simulate" \
        else cli(*args)
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "fleet").exists()


def test_ssh_identity_from_the_environment_wins(tmp_path, monkeypatch):
    """Jenkins binds the fleet's SSH credential to MODEL_CICD_SSH_KEY / MODEL_CICD_SSH_USER."""
    from pytools.fleet.inventory import Robot

    robot = Robot("r1", {"ansible_user": "pi", "ansible_ssh_private_key_file": "/inv/key"}, [])
    assert (robot.user, robot.key_file) == ("pi", "/inv/key")
    monkeypatch.setenv("MODEL_CICD_SSH_KEY", str(tmp_path / "ci_key"))
    monkeypatch.setenv("MODEL_CICD_SSH_USER", "deploy")
    robot = Robot("r1", {"ansible_user": "pi", "ansible_ssh_private_key_file": "/inv/key"}, [])
    assert (robot.user, robot.key_file) == ("deploy", str(tmp_path / "ci_key"))


def test_ini_inventory_group_vars_host_vars_and_cache_follows_edits(tmp_path):
    from pytools.fleet.inventory import load_inventory
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "hosts.ini").write_text("[canary]\nr1 ansible_host=10.0.0.1\n\n"
                                        "[field_east]\nr2\n\n[field:children]\nfield_east\n")
    (tmp_path / "group_vars" / "field.yml").write_text("ansible_user: ops\n")
    (tmp_path / "host_vars" / "r2.yml").write_text("ansible_host: 10.0.0.2\nansible_port: 2202\n")
    r1, r2 = load_inventory(str(tmp_path / "hosts.ini"))
    assert (r1.name, r1.host, r1.port, r1.user, r1.groups) == ("r1", "10.0.0.1", 22, "root",
                                                              ["all", "canary"])
    assert (r2.host, r2.port, r2.user, r2.groups) == ("10.0.0.2", 2202, "ops",
                                                      ["all", "field", "field_east"])
    assert plan_waves([r1, r2], "group:canary,group:field_east") == [
        {"name": "group:canary", "robots": ["r1"]}, {"name": "group:field_east", "robots": ["r2"]}]
    with pytest.raises(ConfigError, match="no robot of the inventory is in group 'west'"):
        plan_waves([r1, r2], "group:west,100%")
    # An edit of host_vars is seen at once (the parse cache is keyed by every file read).
    (tmp_path / "host_vars" / "r2.yml").write_text("ansible_host: 10.0.0.2\nansible_port: 2299\n")
    assert load_inventory(str(tmp_path / "hosts.ini"))[1].port == 2299
    assert load_inventory(str(tmp_path))[1].port == 2299  # the directory as the source


def test_record_text_keeps_every_reason_whole():
    from pytools.commands.rollout import record_text
    reason = "health check failed after activating 1.2.0: " + "x" * 200 + " end"
    rec = {"id": "demo-1.2.0-1", "kind": "rollout", "state": "halted", "halt_reason": "wave",
           "name": "demo", "version": "1.2.0", "inventory": "inv", "package": "pkg",
           "workdir": "w", "waves": [{"name": "100%", "state": "halted", "approver": None}],
           "robots": {"r1": {"wave": 0, "outcome": "rolled-back", "bytes_sent": 10,
                             "timings": {}, "error": reason}}}
    assert "r1: " + reason in record_text(rec)


def test_reading_an_inventory_leaves_torch_export_working(tmp_path):
    """ansible-core patches `sys.intern` when imported, and torch.export's tracer then fails: a
    process that read a fleet inventory (a rollout, `where --fleet`) must still export."""
    import subprocess
    import sys

    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[canary]\nr1 ansible_host=127.0.0.2\n")
    script = ("import sys, torch\n"
              "from pytools.fleet.inventory import load_inventory\n"
              "assert [r.host for r in load_inventory(sys.argv[1])] == ['127.0.0.2']\n"
              "assert 'ansible' not in sys.modules\n"
              "torch.export.export(torch.nn.Linear(2, 2), (torch.ones(1, 2),))\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script, str(inventory)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
