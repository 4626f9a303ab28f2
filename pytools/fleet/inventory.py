"""Fleet inventory: an Ansible YAML inventory, read the way Ansible reads it.

One file serves both transports: `ansible-playbook -i` uses it as is, and the SSH transport reads
the same host variables (`ansible_host`, `ansible_port`, `ansible_user`,
`ansible_ssh_private_key_file`) plus the agent's (`model_agent_path`, `model_agent_config`,
`model_agent_python`, `model_agent_known_hosts`). Group membership names canary robots
(group `canary`). Variables of a group apply to its hosts; host variables win.
"""
import os

import yaml

from pytools.core.errors import ConfigError


# A CI system hands the controller its SSH identity through the environment (Jenkins binds the
# `sshCredentialsId` credential to these); it wins over the inventory, as `ssh -i` would.
SSH_IDENTITY_ENV = {"MODEL_CICD_SSH_KEY": "ansible_ssh_private_key_file", "MODEL_CICD_SSH_USER": "ansible_user"}


def ssh_identity_overrides(environ=None):
    env = os.environ if environ is None else environ
    return {var: env[name] for name, var in SSH_IDENTITY_ENV.items() if env.get(name)}


class Robot:
    """One robot as the controller sees it."""

    def __init__(self, name, hostvars, groups):
        hostvars = dict(hostvars, **ssh_identity_overrides())
        self.name = name
        self.vars = hostvars
        self.groups = sorted(groups)
        self.host = str(hostvars.get("ansible_host", name))
        self.port = int(hostvars.get("ansible_port", 22))
        self.user = str(hostvars.get("ansible_user", "root"))
        self.key_file = hostvars.get("ansible_ssh_private_key_file")
        self.known_hosts = hostvars.get("model_agent_known_hosts")
        self.python = str(hostvars.get("model_agent_python", "python3"))
        self.agent_path = str(hostvars.get("model_agent_path", "/opt/model-agent/robot_agent.py"))
        self.agent_config = str(hostvars.get("model_agent_config", "/etc/model-agent/agent.json"))
        self.model_root = hostvars.get("model_agent_root")

    def agent_argv(self):
        """The agent's command line. -I -S: the agent is stdlib-only, so skip site-packages and
        the environment (nothing installed on the robot can shadow a stdlib module). It is
        imported rather than run as a script so Python reuses its cached bytecode: compiling
        the file on every call was a fifth of a `fleet status` query's cost."""
        folder, name = os.path.split(self.agent_path)
        launcher = ("import sys; sys.path.insert(0, %r); import %s as a; sys.exit(a.main())"
                    % (folder, os.path.splitext(name)[0]))
        return [self.python, "-I", "-S", "-c", launcher, "--config", self.agent_config]

    def __repr__(self):
        return "Robot(%s %s:%d)" % (self.name, self.host, self.port)


def load_inventory(path):
    """Return the robots of an Ansible YAML inventory, in file order."""
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ConfigError("cannot read fleet inventory %s: %s" % (path, exc.strerror))
    except yaml.YAMLError as exc:
        raise ConfigError("fleet inventory %s is not valid YAML: %s" % (path, exc))
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise ConfigError("fleet inventory %s: expected an Ansible YAML inventory with 'all:'"
                          % path)
    base = os.path.dirname(os.path.abspath(path))
    hosts = {}  # name -> (vars, groups)
    order = []
    _walk(path, "all", data["all"], {}, [], hosts, order)
    if not order:
        raise ConfigError("fleet inventory %s lists no hosts" % path)
    robots = []
    for name in order:
        hostvars, groups = hosts[name]
        for key in ("ansible_ssh_private_key_file", "model_agent_known_hosts"):
            if hostvars.get(key) and not os.path.isabs(str(hostvars[key])):
                hostvars[key] = os.path.join(base, str(hostvars[key]))
        robots.append(Robot(name, hostvars, groups))
    return robots


def _walk(path, group, node, inherited, groups, hosts, order):
    node = node or {}
    if not isinstance(node, dict):
        raise ConfigError("fleet inventory %s: group %r must be a mapping" % (path, group))
    merged = dict(inherited)
    merged.update(node.get("vars") or {})
    groups = groups + [group]
    for name, hv in (node.get("hosts") or {}).items():
        if hv is not None and not isinstance(hv, dict):
            raise ConfigError("fleet inventory %s: host %r must map to variables" % (path, name))
        if name not in hosts:
            hosts[name] = ({}, set())
            order.append(name)
        hostvars, member = hosts[name]
        for key, value in merged.items():
            hostvars.setdefault(key, value)
        hostvars.update(hv or {})
        member.update(groups)
    for child, sub in (node.get("children") or {}).items():
        _walk(path, child, sub, merged, groups, hosts, order)
