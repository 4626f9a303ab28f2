"""A simulated fleet: N robots, each a real OpenSSH `sshd -D` with its own host key and root.

Every process (sshd, inference service) is a child of the Python process that starts the fleet
and is waited on when the fleet stops: a background sshd that nobody waits for would never be
reaped on this machine. Robots listen on their own loopback address (127.0.1.N) or, with
`netns=True` (root only), inside their own network namespace on 198.51.100.0/24 behind a veth
pair, so a test can cut a robot's link (`ip link set ... down`) or limit its bandwidth (`tc tbf`).

The fleet writes an Ansible YAML inventory and a known_hosts file: host keys are checked by every
client, never accepted on first sight.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import yaml

import pytools

from pytools.core.errors import PytoolsError
from pytools.fleet.agent import AGENT_SOURCE

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
NETNS_NET = "198.51.100."
# Where this pytools is imported from (site-packages, or a checkout's root): the inference
# service runs from the same copy.
PYTOOLS_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pytools.__file__)))

SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 64
ClientAliveInterval 5
ClientAliveCountMax 3
LogLevel ERROR
# bash sources ~/.bashrc for ssh commands when SHLVL < 1; this controller's root .bashrc
# (pyenv setup) would cost each robot session ~0.3 s of CPU that no real robot spends.
SetEnv SHLVL=1
"""


class SimRobot:
    def __init__(self, fleet, index):
        self.fleet, self.index = fleet, index
        self.name = "robot-%03d" % index
        self.dir = os.path.join(fleet.base, self.name)
        self.model_root = os.path.join(self.dir, "model")
        self.agent_path = os.path.join(self.dir, "bin", "robot_agent.py")
        self.agent_config = os.path.join(self.dir, "agent.json")
        self.busy_file = os.path.join(self.dir, "mission-state")
        self.pid_file = os.path.join(self.dir, "inference.pid")
        self.sshd = self.service = None
        self.netns = self.veth = None
        if fleet.netns:
            self.netns = "mcf-%s-%d" % (fleet.tag, index)
            self.veth = "mcf%sh%d" % (fleet.tag, index)
            self.address = NETNS_NET + str(4 * index + 2)
            self.gateway = NETNS_NET + str(4 * index + 1)
            self.port = 22
            self.service_port = 8080
        else:
            self.address = "127.0.1.%d" % index
            self.port = free_port(self.address)
            self.service_port = free_port(self.address)

    # -- process control --
    def wrap(self, argv):
        return ["ip", "netns", "exec", self.netns] + argv if self.netns else argv

    def start_sshd(self):
        log = open(os.path.join(self.dir, "sshd.log"), "ab")
        try:
            self.sshd = subprocess.Popen(
                self.wrap([SSHD, "-D", "-e", "-f", os.path.join(self.dir, "sshd_config")]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        wait_port(self.address, self.port, self.netns, 15, self.sshd)

    def stop_sshd(self, kill_sessions=True):
        """Stop this robot's sshd, and with kill_sessions its live connections too (a robot
        rebooting or sshd crashing mid-transfer). Sessions are killed first so the listener,
        their parent, reaps them before it is itself stopped and waited on."""
        if not self.sshd:
            return
        if kill_sessions:
            for pid in descendants(self.sshd.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        stop_process(self.sshd)
        self.sshd = None

    def power_off(self):
        """The robot loses power: sshd stops accepting first (frozen), then every session and
        agent on it dies at once, then sshd; nothing of the robot runs a step in between."""
        if not self.sshd:
            return
        os.kill(self.sshd.pid, signal.SIGSTOP)
        for pid in descendants(self.sshd.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.sshd.kill()  # SIGKILL ends a stopped process too; wait() reaps it
        self.sshd.wait(10)
        self.sshd = None

    def start_service(self):
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)
        log = open(os.path.join(self.dir, "inference.log"), "ab")
        env = dict(os.environ, PYTHONPATH=PYTOOLS_PARENT, OMP_NUM_THREADS="1")
        try:
            self.service = subprocess.Popen(self.wrap(
                [sys.executable, "-m", "pytools.fleet.agent.inference_service", "--root",
                 self.model_root, "--listen", "%s:%d" % (self.service_host(), self.service_port),
                 "--pid-file", self.pid_file]), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env)
        finally:
            log.close()

    def stop_service(self):
        if self.service:
            stop_process(self.service)
            self.service = None

    def service_host(self):
        return "127.0.0.1" if self.netns else self.address

    def stop(self):
        self.stop_sshd()
        self.stop_service()

    # -- faults --
    def set_busy(self, busy):
        with open(self.busy_file, "w") as f:
            f.write("mission\n" if busy else "idle\n")

    def cut_link(self):
        self._need_netns("cut a link")
        run(["ip", "link", "set", self.veth, "down"])

    def restore_link(self):
        self._need_netns("restore a link")
        run(["ip", "link", "set", self.veth, "up"])

    def limit_bandwidth(self, bits_per_second):
        """Shape controller -> robot traffic with a token bucket (no netem on this kernel)."""
        self._need_netns("limit bandwidth")
        burst = max(int(bits_per_second / 8 / 50), 16 * 1024)  # ~20 ms of traffic
        run(["tc", "qdisc", "replace", "dev", self.veth, "root", "tbf", "rate",
             "%dbit" % bits_per_second, "burst", str(burst), "latency", "200ms"])

    def _need_netns(self, what):
        if not self.netns:
            raise PytoolsError("cannot %s: this fleet runs on loopback (start it with netns)"
                               % what)

    def agent(self, *args):
        """Run the agent locally (as the robot would), for setup and inspection."""
        proc = subprocess.run(self.wrap([sys.executable, self.agent_path, "--config",
                                         self.agent_config] + list(args)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])

    def hostvars(self):
        return {"ansible_host": self.address, "ansible_port": self.port,
                "model_agent_path": self.agent_path, "model_agent_config": self.agent_config,
                "model_agent_root": self.model_root}


class SimulatedFleet:
    """Start with `with SimulatedFleet(dir, n) as fleet:`; stops and reaps everything on exit."""

    def __init__(self, base, count, services=True, netns=False, facts=None, public_key=None,
                 canaries=1, health_timeout=20, min_free_bytes=0):
        if count < 1 or count > (60 if netns else 250):
            raise PytoolsError("a simulated fleet has 1..%d robots, not %d"
                               % (60 if netns else 250, count))
        self.base = os.path.abspath(base)
        self.count, self.services, self.netns = count, services, netns
        self.facts = facts or {"runtimes": ["onnxruntime"], "onnx_opset_max": 21}
        self.public_key = os.path.abspath(public_key) if public_key else None
        self.canaries, self.health_timeout = canaries, health_timeout
        self.min_free_bytes = min_free_bytes
        self.tag = uuid.uuid4().hex[:4]
        self.client_key = os.path.join(self.base, "id_ed25519")
        self.known_hosts = os.path.join(self.base, "known_hosts")
        self.inventory = os.path.join(self.base, "inventory.yml")
        self.robots = []

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def robot(self, name):
        for r in self.robots:
            if r.name == name:
                return r
        raise KeyError(name)

    def start(self):
        if os.geteuid() != 0:
            raise PytoolsError("the simulated fleet runs sshd as root; run as root")
        os.makedirs(self.base, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        if self.netns:
            check_netns_range_free()
        keygen(self.client_key)
        authorized = os.path.join(self.base, "authorized_keys")
        shutil.copyfile(self.client_key + ".pub", authorized)
        known = []
        for i in range(1, self.count + 1):
            robot = SimRobot(self, i)
            self.robots.append(robot)
            known.append(self.prepare(robot, authorized))
        with open(self.known_hosts, "w") as f:
            f.write("".join(known))
        self.write_inventory()
        for robot in self.robots:
            robot.start_sshd()
        if self.services:
            for robot in self.robots:
                robot.start_service()
            for robot in self.robots:
                wait_file(robot.pid_file, 60, robot.service)

    def prepare(self, robot, authorized):
        os.makedirs(os.path.join(robot.dir, "bin"), exist_ok=True)
        os.makedirs(robot.model_root, exist_ok=True)
        shutil.copyfile(AGENT_SOURCE, robot.agent_path)
        host_key = os.path.join(robot.dir, "ssh_host_ed25519_key")
        keygen(host_key)
        with open(os.path.join(robot.dir, "sshd_config"), "w") as f:
            f.write(SSHD_CONFIG.format(port=robot.port, address=robot.address,
                                       host_key=host_key, authorized_keys=authorized))
        robot.set_busy(False)
        config = {"root": robot.model_root, "facts": self.facts, "public_key": self.public_key,
                  "require_signature": bool(self.public_key), "busy_file": robot.busy_file,
                  "health_timeout": self.health_timeout, "retention": 3,
                  "min_free_bytes": self.min_free_bytes}
        if self.services:
            config["restart_command"] = "kill -HUP $(cat %s)" % robot.pid_file
            config["health_url"] = "http://%s:%d/health" % (robot.service_host(),
                                                             robot.service_port)
        with open(robot.agent_config, "w") as f:
            json.dump(config, f, indent=2)
        if self.netns:
            make_netns(robot)
        with open(host_key + ".pub") as f:
            key = " ".join(f.read().split()[:2])
        host = robot.address if robot.port == 22 else "[%s]:%d" % (robot.address, robot.port)
        return "%s %s\n" % (host, key)

    def write_inventory(self):
        canary = {r.name: r.hostvars() for r in self.robots[:self.canaries]}
        rest = {r.name: r.hostvars() for r in self.robots[self.canaries:]}
        strict = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % self.known_hosts
        inventory = {"all": {
            "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": self.client_key,
                     "ansible_python_interpreter": sys.executable,
                     "ansible_ssh_common_args": strict,
                     "model_agent_python": sys.executable,
                     "model_agent_known_hosts": self.known_hosts},
            "children": {"canary": {"hosts": canary}, "robots": {"hosts": rest or None}}}}
        with open(self.inventory + ".tmp", "w") as f:
            yaml.safe_dump(inventory, f, sort_keys=False)
        os.replace(self.inventory + ".tmp", self.inventory)

    def install(self, package_dir, version):
        """Put a first release on every robot directly (a robot leaves the factory with one)."""
        for robot in self.robots:
            dest = os.path.join(robot.model_root, "incoming", version)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(package_dir, dest)
            for step in (("stage", version), ("activate", version)):
                result = robot.agent(*step)
                if not result.get("ok"):
                    raise PytoolsError("installing %s on %s: %s"
                                       % (version, robot.name, result.get("error")))

    def stop(self):
        for robot in self.robots:
            robot.stop()
        if self.netns:
            for robot in self.robots:
                subprocess.run(["ip", "netns", "del", robot.netns], stderr=subprocess.DEVNULL)

    def summary(self):
        return {"base": self.base, "inventory": self.inventory, "known_hosts": self.known_hosts,
                "robots": [{"name": r.name, "address": r.address, "port": r.port,
                            "root": r.model_root, "netns": r.netns} for r in self.robots]}


# -- helpers --------------------------------------------------------------------------------------

def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if proc.returncode != 0:
        raise PytoolsError("%s failed: %s" % (" ".join(argv[:4]),
                                              proc.stderr.decode().strip()[:300]))
    return proc.stdout.decode()


def keygen(path):
    for p in (path, path + ".pub"):
        if os.path.exists(p):
            os.unlink(p)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path])


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def check_netns_range_free():
    """Never reuse an address range that an interface of this machine already has."""
    addrs = run(["ip", "-o", "addr", "show"])
    if NETNS_NET in addrs:
        raise PytoolsError("198.51.100.0/24 is already on an interface of this machine; "
                           "refusing to start a network-namespace fleet over it")


def make_netns(robot):
    peer = robot.veth.replace("h", "p", 1)
    ns = ["ip", "netns", "exec", robot.netns]
    run(["ip", "netns", "add", robot.netns])
    run(["ip", "link", "add", robot.veth, "type", "veth", "peer", "name", peer])
    run(["ip", "link", "set", peer, "netns", robot.netns])
    run(["ip", "addr", "add", robot.gateway + "/30", "dev", robot.veth])
    run(["ip", "link", "set", robot.veth, "up"])
    run(ns + ["ip", "addr", "add", robot.address + "/30", "dev", peer])
    run(ns + ["ip", "link", "set", peer, "up"])
    run(ns + ["ip", "link", "set", "lo", "up"])


def wait_port(address, port, netns, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PytoolsError("sshd for %s:%d exited with %s" % (address, port, proc.returncode))
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise PytoolsError("sshd on %s:%d did not start within %ss" % (address, port, timeout))


def wait_file(path, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise PytoolsError("inference service exited with %s" % proc.returncode)
        time.sleep(0.05)
    raise PytoolsError("inference service did not start within %ss" % timeout)


def descendants(pid):
    """All live descendants of `pid`, found by walking /proc (children before grandchildren)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_process(proc, timeout=5):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
