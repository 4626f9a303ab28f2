"""`pytools rollback NAME --fleet INVENTORY [--to VERSION]`: a recorded fleet rollback."""
from pytools.commands import leaf
from pytools.commands.rollout import (add_approval_options, add_lock_options,
                                      check_lock_options, finished)
from pytools.core.errors import ConfigError
from pytools.core.workdir import default_workdir

EPILOG = """\
Each robot goes to VERSION (it must still hold that release), or without --to to what it ran
before its last activation. In waves, with approvals, each robot health-checked by its agent
(an unhealthy target is reverted: outcome rollback-failed). Robots already on a healthy target
are left alone: running the same rollback twice changes nothing. Takes the fleet lock; the
record <workdir>/rollouts/NAME-rollback-VERSION.json is what `pytools where` reads.

examples:
  pytools rollback demo --fleet fleet/inventory.yml --to 1.0.0 --yes
  pytools rollback demo --fleet inv.yml --waves canary,100% --approval external
exit status: as `pytools rollout`: 0 completed, 1 refused, 3 halted, 4 waiting for approval,
5 robots not on the target (deferred, ...), 130 interrupted.
"""


def register(subparsers):
    p = leaf(subparsers, "rollback", handle, help="roll a model back on a robot fleet to a "
             "named version, in waves, recorded", description=__doc__.split("\n")[0] + "\n\n"
             + EPILOG)
    p.add_argument("name")
    p.add_argument("--fleet", required=True, metavar="INVENTORY",
                   help="Ansible inventory of the robots (INI, YAML or a directory; group 'canary' = canary robots)")
    p.add_argument("--to", metavar="VERSION",
                   help="the release to run (default: what each robot ran before its last "
                   "activation)")
    p.add_argument("--workdir", help="work directory (default work/NAME)")
    p.add_argument("--waves", default="canary,100%",
                   help="waves as for rollout (default %(default)s)")
    add_approval_options(p, "rollback")
    p.add_argument("--io-timeout", type=float, default=20.0,
                   help="seconds without progress before a link counts as dead (20)")
    add_lock_options(p)


def handle(args):
    if args.concurrency < 1 or args.io_timeout <= 0:
        raise ConfigError("--concurrency must be >= 1 and --io-timeout > 0")
    if args.approved_by and not args.resume:
        raise ConfigError("--approved-by records the approver of a waiting rollback: use it "
                          "with --resume")
    check_lock_options(args)
    if args.to is not None:
        from pytools.fleet.agent.robot_agent import VERSION_RE
        if not VERSION_RE.match(args.to) or ".." in args.to:
            raise ConfigError("--to %r is not a version" % args.to)
    # paramiko is imported only when a rollback runs.
    from pytools.fleet.fleet_rollback import FleetRollback, rollback_record_path
    from pytools.fleet.rollout import Options, tty_prompt
    from pytools.fleet.transports.ssh import SSHTransport

    workdir = args.workdir or default_workdir(args.name)
    opts = Options(waves=args.waves, max_failures=args.max_failures,
                   approval="yes" if args.yes else args.approval, approver=args.approved_by,
                   concurrency=args.concurrency, resume=args.resume,
                   transport=SSHTransport(io_timeout=args.io_timeout),
                   prompt=tty_prompt if args.approval == "prompt" else None,
                   lock_ttl=args.lock_ttl, approval_ttl=args.approval_ttl)
    record = FleetRollback(args.name, args.to, args.fleet, workdir, opts).run()
    return finished(record, workdir, rollback_record_path(workdir, args.name, args.to))
