"""Ansible transport: run the repository's playbooks with ansible-runner, results per host.

The playbooks (ansible/playbooks/) drive the same robot agent as the SSH transport, through the
`robot_model` role. ansible-runner runs the real `ansible-playbook`; each host's outcome is read
back from the event stream: the `robot_model_result` fact the role sets, or the message of the
task that failed on that host.
"""
import json
import os

from pytools.errors import PytoolsError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_DIR = os.path.join(REPO_ROOT, "ansible")
PLAYBOOKS = ("deploy", "rollback", "status")


def run_playbook(name, inventory, workdir, extravars=None, limit=None, timeout=1800):
    """Run ansible/playbooks/<name>.yml; return {"rc", "status", "hosts": {host: result}}."""
    if name not in PLAYBOOKS:
        raise PytoolsError("unknown playbook %r (one of %s)" % (name, ", ".join(PLAYBOOKS)))
    try:
        import ansible_runner
    except ImportError:
        raise PytoolsError("the Ansible transport needs ansible-runner (pip install ansible-runner)")
    state = os.path.abspath(os.path.join(workdir, "ansible"))
    os.makedirs(os.path.join(state, "runner"), exist_ok=True)
    env = {"ANSIBLE_CONFIG": os.path.join(ANSIBLE_DIR, "ansible.cfg"),
           "ANSIBLE_HOME": os.path.join(state, "home"),
           "ANSIBLE_LOCAL_TEMP": os.path.join(state, "tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(state, "cp"),
           "ANSIBLE_ROLES_PATH": os.path.join(ANSIBLE_DIR, "roles"),
           "ANSIBLE_NOCOLOR": "1"}
    result = ansible_runner.run(
        private_data_dir=os.path.join(state, "runner"),
        playbook=os.path.join(ANSIBLE_DIR, "playbooks", name + ".yml"),
        inventory=os.path.abspath(inventory), extravars=extravars or {}, limit=limit,
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
            fact = (res.get("ansible_facts") or {}).get("robot_model_result")
            if fact is not None:
                entry.update(fact)
                entry["outcome"] = entry.get("outcome") or "ok"
        elif event["event"] in ("runner_on_failed", "runner_on_unreachable"):
            entry.update(ok=False, outcome="unreachable" if "unreachable" in event["event"]
                         else "failed", error=failure_message(res), task=data.get("task"))
    return {"rc": result.rc, "status": result.status, "hosts": hosts,
            "stats": result.stats or {}}


def failure_message(res):
    """The agent's own JSON error when a command task failed on it, else Ansible's message."""
    for item in res.get("results") or []:  # a loop task: the first item that failed
        if item.get("failed"):
            return failure_message(item)
    out = (res.get("stdout") or "").strip().splitlines()
    if out:
        try:
            return json.loads(out[-1]).get("error") or res.get("msg")
        except ValueError:
            pass
    return res.get("msg") or "failed"
