"""How a rollout reaches robots: one interface (base.Transport), one module per transport.

Adding a transport is one module with a base.Transport subclass plus one entry in TRANSPORTS.
"""
import importlib

# name -> "module:class". Named, not imported: paramiko and ansible-runner load only when a
# rollout picks a transport, so the CLI can list the names and still start fast.
TRANSPORTS = {"ssh": "ssh:SSHTransport", "pull": "pull:PullTransport",
              "ansible": "ansible:AnsibleTransport"}


def transport_class(name):
    module, cls = TRANSPORTS[name].split(":")
    return getattr(importlib.import_module("%s.%s" % (__name__, module)), cls)
