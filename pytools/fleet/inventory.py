"""Fleet inventory: an Ansible inventory, read by Ansible's own inventory machinery.

One inventory serves every transport: `ansible-playbook -i` uses it as is, and the SSH transport reads
the same host variables (`ansible_host`, `ansible_port`, `ansible_user`,
`ansible_ssh_private_key_file`) plus the agent's (`model_agent_path`, `model_agent_config`,
`model_agent_python`, `model_agent_known_hosts`). Group membership names canary robots
(group `canary`). Variables of a group apply to its hosts; host variables win.
"""
import contextlib
import io
import os

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
    """Return the robots of an Ansible inventory (INI, YAML or a directory of them, with
    group_vars/ and host_vars/), read by ansible-core's own InventoryManager and
    VariableManager, so every transport sees exactly what `ansible-playbook -i` sees.
    Values are taken as written: Jinja templates in variables are not rendered.

    Importing ansible-core costs the controller more than a second of a `fleet status`: what
    it parsed is cached (per user) under the fingerprint of every file it read, the source and
    the group_vars/ and host_vars/ beside it, and parsed again when any of them changes. An
    executable source (a dynamic inventory script) is never cached."""
    if not os.path.exists(path):
        raise ConfigError("cannot read fleet inventory %s: No such file or directory" % path)
    source = os.path.abspath(path)
    key = cache_key(source)
    cached = read_cache(key)
    if cached is None:
        cached = parse_inventory(path)
        write_cache(key, cached)
    return [Robot(name, hostvars, groups) for name, hostvars, groups in cached]


def inventory_files(source):
    """Every file Ansible reads for this source: the source (or the files of a source
    directory) and the group_vars/ and host_vars/ files beside it."""
    base = source if os.path.isdir(source) else os.path.dirname(source)
    roots = [source] if os.path.isdir(source) else []
    roots += [os.path.join(base, d) for d in ("group_vars", "host_vars")]
    files = [] if os.path.isdir(source) else [source]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            files += [os.path.join(dirpath, f) for f in sorted(filenames)]
    return files


def cache_key(source):
    import hashlib
    import json
    parts = []
    for f in inventory_files(source):
        st = os.stat(f)
        if st.st_mode & 0o111 and not os.path.isdir(f):
            return None  # a script: its output may change at any time
        parts.append((f, st.st_mtime_ns, st.st_size))
    return hashlib.sha256(json.dumps([source, parts]).encode()).hexdigest()


def cache_path(key):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pytools", "inventory", key + ".json")


def read_cache(key):
    import json
    if key is None:
        return None
    try:
        with open(cache_path(key)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_cache(key, parsed):
    """Best effort: a read-only or full cache directory only costs the next parse."""
    import json
    import tempfile
    if key is None:
        return
    path = cache_path(key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            json.dump(parsed, f)
        os.replace(tmp, path)
    except OSError:
        pass


def parse_inventory(path):
    """[(name, hostvars, groups)] by ansible-core, in Ansible's host order, parsed in a child
    process: importing ansible-core patches interpreter internals (`sys.intern`) that
    torch.export's tracer then refuses, so it must never load into a process that exports."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pytools.fleet.inventory", path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        raise ConfigError("fleet inventory %s: Ansible's inventory parser failed: %s" % (path, tail))
    if "error" in answer:
        raise ConfigError(answer["error"])
    return answer["robots"]


def _parse_here(path):
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    source = os.path.abspath(path)
    warnings = io.StringIO()
    try:
        loader = DataLoader()
        # Ansible warns on stderr for every plugin that could not parse the source; what it
        # says goes into our one error line instead.
        with contextlib.redirect_stderr(warnings):
            manager = InventoryManager(loader=loader, sources=[source], parse=True)
        variables = VariableManager(loader=loader, inventory=manager)
        hosts = manager.get_hosts()
        robots = []
        base = source if os.path.isdir(source) else os.path.dirname(source)
        for host in hosts:
            hostvars = plain(variables.get_vars(host=host, include_hostvars=False))
            for key in ("ansible_ssh_private_key_file", "model_agent_known_hosts"):
                if hostvars.get(key) and not os.path.isabs(str(hostvars[key])):
                    hostvars[key] = os.path.join(base, str(hostvars[key]))
            robots.append((host.name, hostvars, sorted(g.name for g in host.get_groups())))
    except AnsibleError as exc:
        raise ConfigError("fleet inventory %s: %s" % (path, str(exc).splitlines()[0]))
    if not robots:
        said = [line[len("[WARNING]: "):] for line in warnings.getvalue().splitlines()
                if line.startswith("[WARNING]: Failed to parse")]
        raise ConfigError("fleet inventory %s lists no hosts%s" % (
            path, " (Ansible: %s)" % "; ".join(said) if said else ""))
    return robots


# Ansible's own variables besides the inventory's: not part of a robot's settings.
MAGIC_VARS = ("inventory_hostname", "inventory_hostname_short", "group_names", "groups",
              "inventory_dir", "inventory_file", "omit", "playbook_dir", "ansible_playbook_python",
              "ansible_config_file", "ansible_version", "ansible_check_mode",
              "ansible_diff_mode", "ansible_forks", "ansible_inventory_sources",
              "ansible_run_tags", "ansible_skip_tags", "ansible_verbosity")


def plain(value):
    """Ansible's tagged values as plain str/int/list/dict (JSON-safe, picklable)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if k not in MAGIC_VARS}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


if __name__ == "__main__":
    import json
    import sys

    try:
        print(json.dumps({"robots": _parse_here(sys.argv[1])}))
    except ConfigError as exc:
        print(json.dumps({"error": str(exc)}))
