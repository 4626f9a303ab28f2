"""SSH transport: paramiko connections to robots that drive the robot agent.

Host keys come only from the inventory's known_hosts file (RejectPolicy: an unknown or changed
key is refused, never added). A dead link is detected by TCP keepalive plus TCP_USER_TIMEOUT on
the socket and by SSH keepalives and channel timeouts, so a transfer over a cut link fails within
`io_timeout` seconds instead of hanging. Uploads resume: a file partly present in the robot's
incoming/ directory is continued from its current size.
"""
import json
import logging
import os
import shlex
import socket
import threading

import paramiko

from pytools.core.errors import PytoolsError

BLOCK = 1 << 18
# Link failures are reported once, as TransportError; paramiko's own thread would otherwise
# print a traceback for each through logging's last-resort handler.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class TransportError(PytoolsError):
    """The link or the SSH session failed (retryable: the robot state is unchanged or resumable)."""


class HostKeyError(PytoolsError):
    """The robot's host key is unknown or does not match known_hosts (never retried)."""


_CACHE = {}
_CACHE_LOCK = threading.Lock()


def _cached(kind, path, load):
    """Parse a key file once per content version (path, mtime, size), shared by all threads."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise HostKeyError("cannot read %s: %s" % (path, exc.strerror))
    key = (kind, path, st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load(path)
        return _CACHE[key]


def load_known_hosts(path):
    return _cached("known_hosts", path, paramiko.HostKeys)


def load_private_key(path):
    if not path:
        return None
    if not os.path.isfile(os.path.expanduser(path)):
        raise PytoolsError("SSH key %s (ansible_ssh_private_key_file) does not exist" % path)

    def load(p):
        try:
            return paramiko.PKey.from_path(p)
        except (paramiko.SSHException, OSError, ValueError) as exc:
            raise PytoolsError("cannot load SSH key %s: %s" % (p, exc))
    return _cached("private_key", os.path.expanduser(path), load)


def tcp_socket(host, port, connect_timeout, io_timeout):
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        raise TransportError("cannot connect to %s:%d: %s" % (host, port, exc))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(int(io_timeout // 3), 1)
    for opt, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", idle), ("TCP_KEEPCNT", 3),
                       ("TCP_USER_TIMEOUT", int(io_timeout * 1000))):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RobotSession:
    """One SSH connection to one robot; use as a context manager."""

    def __init__(self, robot, connect_timeout=10.0, io_timeout=20.0):
        self.robot = robot
        self.connect_timeout, self.io_timeout = connect_timeout, io_timeout
        self.client = None
        self._sftp = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        robot = self.robot
        if not robot.known_hosts or not os.path.exists(robot.known_hosts):
            raise HostKeyError("%s: no known_hosts file (model_agent_known_hosts); host keys are "
                               "never accepted unverified" % robot.name)
        client = paramiko.SSHClient()
        # Only this robot's entries: parsing a whole fleet's known_hosts on every connection
        # was most of the controller's cost of `fleet status` on 100 robots.
        name = robot.host if robot.port == 22 else "[%s]:%d" % (robot.host, robot.port)
        for keytype, key in (load_known_hosts(robot.known_hosts).lookup(name) or {}).items():
            client.get_host_keys().add(name, keytype, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        pkey = load_private_key(robot.key_file)
        sock = tcp_socket(robot.host, robot.port, self.connect_timeout, self.io_timeout)
        try:
            client.connect(robot.host, robot.port, username=robot.user, pkey=pkey, sock=sock,
                           timeout=self.connect_timeout,
                           banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                           channel_timeout=self.io_timeout, look_for_keys=False,
                           allow_agent=False)
        except paramiko.BadHostKeyException:
            sock.close()
            raise HostKeyError("%s: host key does not match known_hosts (possible impersonation);"
                               " refused" % robot.name)
        except paramiko.SSHException as exc:
            sock.close()
            if "not found in known_hosts" in str(exc):
                raise HostKeyError("%s: host key of %s:%d is not in %s; refused"
                                   % (robot.name, robot.host, robot.port, robot.known_hosts))
            raise TransportError("%s: SSH failed: %s" % (robot.name, exc))
        except OSError as exc:
            sock.close()
            raise TransportError("%s: connection failed: %s" % (robot.name, exc))
        client.get_transport().set_keepalive(max(int(self.io_timeout // 4), 1))
        self.client = client

    def close(self):
        for thing in (self._sftp, self.client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead link may fail; nothing is left to do
                    pass
        self._sftp = self.client = None

    def agent(self, args, stdin=None, timeout=None):
        """Run the robot agent with `args`; return its JSON result (ok or refusal)."""
        command = " ".join(shlex.quote(a) for a in self.robot.agent_argv() + list(args))
        out, err, code = self.run(command, stdin=stdin, timeout=timeout)
        lines = out.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise TransportError("%s: agent gave no JSON (exit %s): %s"
                                 % (self.robot.name, code, (err or out).strip()[-300:]))

    def run(self, command, stdin=None, timeout=None):
        timeout = timeout or self.io_timeout
        try:
            chan = self.client.get_transport().open_session(timeout=self.connect_timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out += data
            while True:
                data = chan.recv_stderr(65536)
                if not data:
                    break
                err += data
            code = chan.recv_exit_status()
            chan.close()
        except (socket.timeout, paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError("%s: command failed on the link: %s"
                                 % (self.robot.name, exc or type(exc).__name__))
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code

    def sftp(self):
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransportError("%s: SFTP failed: %s" % (self.robot.name, exc))
            self._sftp.get_channel().settimeout(self.io_timeout)
        return self._sftp

    def upload(self, local, remote, size, on_bytes=None, resume=True):
        """Copy `local` to `remote`, continuing a partial remote file; return bytes sent."""
        sftp = self.sftp()
        try:
            try:
                have = sftp.stat(remote).st_size if resume else -1
            except FileNotFoundError:
                have = 0
            if have == size:
                return 0
            mode = "r+b" if 0 < have < size else "wb"
            if mode == "wb":
                have = 0
                make_remote_dirs(sftp, os.path.dirname(remote))
            sent = 0
            with open(local, "rb") as src, sftp.open(remote, mode) as dst:
                dst.set_pipelined(True)
                src.seek(have)
                dst.seek(have)
                while True:
                    block = src.read(BLOCK)
                    if not block:
                        break
                    dst.write(block)
                    sent += len(block)
                    if on_bytes:
                        on_bytes(len(block))
            # Pipelined writes can fail (a full disk) without an error reaching the caller.
            written = sftp.stat(remote).st_size
            if written != size:
                raise OSError("%d of %d bytes written" % (written, size))
            return sent
        except (socket.timeout, paramiko.SSHException, OSError, EOFError) as exc:
            self._sftp = None
            raise TransportError("%s: upload of %s interrupted: %s"
                                 % (self.robot.name, os.path.basename(local),
                                    exc or type(exc).__name__))


def make_remote_dirs(sftp, path):
    missing = []
    while path and path != "/":
        try:
            sftp.stat(path)
            break
        except FileNotFoundError:
            missing.append(path)
            path = os.path.dirname(path)
    for p in reversed(missing):
        sftp.mkdir(p)
