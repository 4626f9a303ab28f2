"""Ansible transport: run the shipped playbooks with ansible-runner, results per host.

The repository's top-level ansible/ ships inside pytools as pytools/fleet/ansible (in a checkout
that path is a symlink to it), so an installed pytools runs the same playbooks. They drive the
same robot agent as the SSH transport, through the `robot_model` role. ansible-runner runs the
real `ansible-playbook`; each host's outcome is read back from the event stream: the
`robot_model_result` fact the role sets, or the message of the task that failed on that host.
"""
import hashlib
import json
import os
import tempfile

from pytools.core.errors import PytoolsError
from pytools.fleet.agent import AGENT_SOURCE
from pytools.fleet.inventory import ssh_identity_overrides
from pytools.fleet.transports.agent_ssh import AgentOverSSH

ANSIBLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ansible")
PLAYBOOKS = ("install", "deploy", "rollback", "status")


def run_playbook(name, inventory, workdir, extravars=None, limit=None, timeout=1800):
    """Run ansible/playbooks/<name>.yml; return {"rc", "status", "hosts": {host: result}}."""
    if name not in PLAYBOOKS:
        raise PytoolsError("unknown playbook %r (one of %s)" % (name, ", ".join(PLAYBOOKS)))
    try:
        import ansible_runner
    except ImportError:
        raise PytoolsError("the Ansible transport needs ansible-runner "
                           "(pip install ansible-runner)")
    # The role's default agent source only holds in a checkout; this is the installed file.
    extravars = dict({"robot_model_agent_source": AGENT_SOURCE}, **(extravars or {}))
    extravars.update(ssh_identity_overrides())
    state = os.path.abspath(os.path.join(workdir, "ansible"))
    os.makedirs(os.path.join(state, "runner"), exist_ok=True)
    env = {"ANSIBLE_CONFIG": os.path.join(ANSIBLE_DIR, "ansible.cfg"),
           "ANSIBLE_HOME": os.path.join(state, "home"),
           "ANSIBLE_LOCAL_TEMP": os.path.join(state, "tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir(state),
           "ANSIBLE_SSH_CONTROL_PATH": "%(directory)s/%%C",
           "ANSIBLE_ROLES_PATH": os.path.join(ANSIBLE_DIR, "roles"),
           "ANSIBLE_NOCOLOR": "1"}
    result = ansible_runner.run(
        private_data_dir=os.path.join(state, "runner"),
        playbook=os.path.join(ANSIBLE_DIR, "playbooks", name + ".yml"),
        inventory=os.path.abspath(inventory), extravars=extravars, limit=limit,
        envvars=env, quiet=True, timeout=timeout, rotate_artifacts=5)
    hosts = {}
    for event in result.events:
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host:
            continue
        res = data.get("res") or {}
        entry = hosts.setdefault(host, {"ok": None, "outcome": None, "error": None})
        if event["event"] == "runner_on_ok":
            facts = res.get("ansible_facts") or {}
            if "robot_model_preflight" in facts:
                entry["preflight_status"] = facts["robot_model_preflight"].get("status")
            fact = facts.get("robot_model_result")
            if fact is not None:
                entry.update(fact)
                entry["outcome"] = entry.get("outcome") or "ok"
        elif event["event"] in ("runner_on_failed", "runner_on_unreachable"):
            entry.update(agent_json(res))
            entry.update(ok=False, error=failure_message(res), task=data.get("task"))
            entry["outcome"] = failure_outcome(event["event"], data.get("task"), entry)
    return {"rc": result.rc, "status": result.status, "hosts": hosts,
            "stats": result.stats or {}}


def control_dir(state):
    """SSH control sockets live in a short per-work-directory folder under the temp dir: a
    socket path must stay under 108 bytes, which `<deep workdir>/ansible/cp/<host-port-user>`
    exceeds (OpenSSH then fails and the host counts as unreachable). %C names each socket by a
    40-character hash of host, port and user."""
    tag = hashlib.sha256(state.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), "mc-cp-" + tag)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def agent_json(res):
    """The robot agent's JSON answer when a command task ran it, else {}."""
    out = (res.get("stdout") or "").strip().splitlines()
    try:
        value = json.loads(out[-1]) if out else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def failure_outcome(event, task, entry):
    """Name a host's failure the way the SSH transport does, so records read the same."""
    message = entry.get("error") or ""
    if "unreachable" in event or (task or "").startswith("Refuse an unreachable"):
        # The same outcome the SSH transport gives a refused host key.
        return "hostkey" if "Host key verification failed" in message or \
            "REMOTE HOST IDENTIFICATION HAS CHANGED" in message else "unreachable"
    if (task or "").startswith("Refuse"):
        return "locked" if entry.get("preflight_status") == "locked" else "refused"
    if entry.get("rolled_back_to"):
        return "rolled-back" if (entry.get("rollback_health") or {}).get("ok") else \
            "rollback-failed"
    return entry.get("status") if entry.get("status") in ("refused", "locked") else "failed"


def failure_message(res):
    """The agent's own JSON error when a command task failed on it, else Ansible's message."""
    for item in res.get("results") or []:  # a loop task: the first item that failed
        if item.get("failed"):
            return failure_message(item)
    return agent_json(res).get("error") or res.get("msg") or "failed"


class AnsibleTransport(AgentOverSSH):
    """Deploys a whole wave with the deploy playbook (one batch: the play's linear strategy
    runs preflight on every robot of the wave before any copy, and max_fail_percentage stops
    the wave). Status, rollback and lease release go over SSH to the same agent."""
    name = "ansible"
    deploys_waves = True

    def __init__(self, workdir, **settings):
        AgentOverSSH.__init__(self, **settings)
        self.workdir = workdir

    def deploy_wave(self, inventory, robots, package_dir, version, owner, max_fail_percent,
                    allow_downgrade=False, supersede=()):
        run = run_playbook("deploy", inventory, self.workdir, limit=",".join(
            r.name for r in robots), extravars={
                "robot_model_package_dir": os.path.abspath(package_dir),
                "robot_model_version": version, "robot_model_owner": owner,
                "robot_model_serial": ["100%"],
                "robot_model_max_fail_percentage": max_fail_percent,
                "robot_model_allow_downgrade": bool(allow_downgrade),
                "robot_model_supersede": ",".join(supersede)})
        # A halted play skips its `always` blocks on the robots it stopped: free their leases.
        for robot in robots:
            self.release(robot, owner)
        halted = {"ok": False, "outcome": "skipped",
                  "error": "not deployed: the play halted (failure threshold crossed)"}
        results = {}
        for r in robots:
            got = run["hosts"].get(r.name) or {}
            # Not reached, or stopped by the halted play between tasks (events, no outcome).
            results[r.name] = got if got.get("outcome") else dict(got, **halted)
        return results
