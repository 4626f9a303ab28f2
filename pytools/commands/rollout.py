"""`pytools rollout NAME VERSION --fleet INVENTORY`: staged rollout to robots."""
import os

from pytools.commands import leaf
from pytools.core.console import table
from pytools.core.errors import ConfigError
from pytools.core.workdir import FETCHED_PACKAGES_DIR, default_workdir
from pytools.fleet.transports import TRANSPORTS
from pytools.fleet.waves import DEFAULT_WAVES

EPILOG = """\
examples:
  pytools rollout demo 1.1.0 --fleet fleet/inventory.yml --package work/demo/package --yes
  pytools rollout demo 1.1.0 --fleet inv.yml --package DIR --approval external   # pause per wave
  pytools rollout demo 1.1.0 --fleet inv.yml --package DIR --resume --approved-by alice
  pytools rollout demo 1.1.0 --fleet inv.yml --package DIR --dry-run
exit status: 0 completed (every robot on VERSION, health-checked), 1 refused (the fleet is
locked by another rollout, bad input), 3 halted (failure threshold crossed, or --dry-run with
failed preflights), 4 waiting for approval, 5 finished with robots not on VERSION (deferred,
unhealthy before the rollout, ...), 130 interrupted (Ctrl-C, SIGTERM).
"""


def register(subparsers):
    p = leaf(subparsers, "rollout", handle, help="roll a package version out to a robot fleet "
             "in approved waves", description=__doc__.split("\n")[0] + "\n\n" + EPILOG)
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--fleet", required=True, metavar="INVENTORY",
                   help="Ansible inventory of the robots (INI, YAML or a directory; group 'canary' = canary robots)")
    p.add_argument("--package", metavar="DIR",
                   help="package directory (default: fetch NAME VERSION from the registry)")
    p.add_argument("--channel", help="registry channel to fetch from")
    p.add_argument("--workdir", help="work directory (default work/NAME); the rollout record is "
                   "<workdir>/rollouts/NAME-VERSION.json")
    p.add_argument("--waves", default=DEFAULT_WAVES,
                   help="comma-separated waves: 'canary' and cumulative percentages "
                   "(default %(default)s)")
    p.add_argument("--rollback-wave", action="store_true",
                   help="when a wave halts, roll back every robot of it, not only failed ones")
    add_approval_options(p, "rollout")
    p.add_argument("--dry-run", action="store_true",
                   help="plan waves and run a read-only preflight; change nothing")
    p.add_argument("--pull-url", metavar="URL",
                   help="pull mode: robots download the package from this base URL themselves")
    p.add_argument("--pull", action="store_true",
                   help="pull mode from this machine: serve the package over HTTP (Range) on "
                   "--serve-address while the rollout runs")
    p.add_argument("--serve-address", default="127.0.0.1",
                   help="address robots reach this machine on, for --pull (127.0.0.1)")
    p.add_argument("--io-timeout", type=float, default=20.0,
                   help="seconds without progress before a link counts as dead (20)")
    p.add_argument("--retries", type=int, default=3, help="transfer retries per robot (3)")
    p.add_argument("--transport", choices=sorted(TRANSPORTS),
                   help="ssh: paramiko + SFTP with resume (default); pull: as --pull; ansible: "
                   "the shipped ansible/playbooks/deploy.yml play per wave, via ansible-runner; "
                   "--resume keeps the rollout's own")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="allow moving robots to an older version than they run")
    add_lock_options(p)
    p.add_argument("--force", action="store_true",
                   help="fetch the package from the registry again even if already fetched")


def add_approval_options(p, what):
    """The wave gate and resume options `pytools rollout` and `pytools rollback` share."""
    p.add_argument("--max-failures", default="0",
                   help="failures allowed per wave before it halts: a count or N%% (default 0)")
    p.add_argument("--yes", action="store_true", help="approve every wave without asking")
    p.add_argument("--approval", choices=["prompt", "external"], default="prompt",
                   help="prompt on a terminal (default) or pause for an external approver")
    p.add_argument("--approved-by", metavar="USER",
                   help="record USER as the approver of the waiting wave (with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue a halted, waiting or interrupted %s" % what)
    p.add_argument("--concurrency", type=int, default=8, help="robots handled at once (8)")


def add_lock_options(p):
    from pytools.fleet.fleet_lock import DEFAULT_APPROVAL_TTL, DEFAULT_TTL

    p.add_argument("--lock-ttl", type=float, default=DEFAULT_TTL,
                   help="seconds the fleet lock outlives this controller (renewed every "
                   "quarter of it; default %(default)s)")
    p.add_argument("--approval-ttl", type=float, default=DEFAULT_APPROVAL_TTL,
                   help="seconds the fleet lock is kept while waiting for an external "
                   "approval (default %(default)s)")


def check_lock_options(args):
    if args.lock_ttl < 4 or args.approval_ttl < args.lock_ttl:
        raise ConfigError("--lock-ttl must be >= 4 and --approval-ttl >= --lock-ttl")


def fetch_from_registry(args, workdir):
    """The package from the registry the environment names ($PYTOOLS_REGISTRY, Artifactory
    settings; docs/registry.md), verified, into <workdir>/packages/NAME-VERSION."""
    from pytools.registry import open_registry
    dest = os.path.join(workdir, FETCHED_PACKAGES_DIR, "%s-%s" % (args.name, args.version))
    if os.path.isdir(dest) and not args.force:
        return dest
    open_registry().fetch(args.name, args.version, dest, channel=args.channel, replace=True)
    return dest


def handle(args):
    if args.concurrency < 1 or args.retries < 0 or args.io_timeout <= 0:
        raise ConfigError("--concurrency must be >= 1, --retries >= 0 and --io-timeout > 0")
    if args.approved_by and not args.resume:
        raise ConfigError("--approved-by records the approver of a waiting rollout: use it "
                          "with --resume")
    check_lock_options(args)
    if args.pull and args.pull_url:
        raise ConfigError("give --pull or --pull-url, not both")
    if args.transport not in (None, "ssh", "pull") and (args.pull or args.pull_url):
        raise ConfigError("--pull and --pull-url pick the pull transport, not %s"
                          % args.transport)
    workdir = args.workdir or default_workdir(args.name)
    transport = "pull" if args.pull or args.pull_url else args.transport
    if args.resume:
        transport = recorded_transport(args, workdir, transport)
    transport = transport or "ssh"
    package = args.package or fetch_from_registry(args, workdir)
    if transport == "pull" and not args.pull_url and not args.dry_run:
        from pytools.fleet.transports.package_server import PackageServer

        with PackageServer(package, args.serve_address) as server:
            return run_rollout(args, workdir, package, transport, server.url)
    return run_rollout(args, workdir, package, transport, args.pull_url)


def recorded_transport(args, workdir, asked):
    """--resume continues with the transport the rollout started with."""
    from pytools.core.files import read_json
    from pytools.fleet.rollout import record_path

    record = read_json(record_path(workdir, args.name, args.version)) or {}
    recorded = (record.get("options") or {}).get("transport")
    if recorded and asked and asked != recorded:
        raise ConfigError("rollout %s runs over the %s transport; --resume keeps it (drop "
                          "--transport/--pull)" % (record.get("id"), recorded))
    return recorded or asked


def run_rollout(args, workdir, package, transport, pull_url):
    # paramiko and ansible-runner are imported only when a rollout runs.
    from pytools.fleet.rollout import Options, Rollout, record_path, tty_prompt

    opts = Options(waves=args.waves, max_failures=args.max_failures,
                   rollback_wave=args.rollback_wave,
                   approval="yes" if args.yes else args.approval, approver=args.approved_by,
                   concurrency=args.concurrency, dry_run=args.dry_run, resume=args.resume,
                   transport=make_transport(transport, args, workdir, pull_url),
                   prompt=tty_prompt if args.approval == "prompt" else None,
                   allow_downgrade=args.allow_downgrade, lock_ttl=args.lock_ttl,
                   approval_ttl=args.approval_ttl)
    record = Rollout(args.name, args.version, args.fleet, package, workdir, opts).run()
    if record.get("dry_run"):
        return record, plan_text(record)
    return finished(record, workdir, record_path(workdir, args.name, args.version))


def finished(record, workdir, path):
    """Log a rollout or rollback that ran to its end; its exit status; its human text."""
    from pytools.fleet.rollout import EXIT_CODES

    if record["state"] not in ("awaiting_approval",):
        from pytools.tracking.wandb_tracker import Tracker

        Tracker({"name": record["name"], "version": record["version"]}, workdir).log_deployment(
            record["name"], record["version"], sorted(record["robots"]), path)
    record = dict(record, exit_code=EXIT_CODES.get(record["state"], 0))
    return record, record_text(record)


def make_transport(name, args, workdir, pull_url):
    from pytools.fleet.transports import transport_class

    own = {"pull": {"url": pull_url}, "ansible": {"workdir": workdir}}.get(name, {})
    return transport_class(name)(io_timeout=args.io_timeout, retries=args.retries, **own)


def plan_text(plan):
    lines = ["dry run: %s %s" % (plan["name"], plan["version"])]
    for i, wave in enumerate(plan["waves"]):
        lines.append("wave %d %-8s %s" % (i, wave["name"], ", ".join(wave["robots"])))
    lock = plan["fleet_lock"]
    holder = lock["holder"]
    lines.append("fleet lock (on %s): %s" % (lock["robot"], "free" if not holder and not
                                            lock["error"] else lock["error"] or
                                            "held by %s (%s %s, by %s)" % (
                                                holder.get("owner"), holder.get("name"),
                                                holder.get("version"), holder.get("who"))))
    rows = [(n, c["current"] or "-", c["signature"] or "-",
             "ok" if c["ok"] else "%s: %s" % (c["status"], c["error"]))
            for n, c in sorted(plan["preflight"].items())]
    return "\n".join(lines) + "\n\n" + table(["robot", "current", "signature", "preflight"],
                                               rows)


def record_text(rec):
    rows, reasons = [], []
    for name, r in rec["robots"].items():
        rows.append((name, rec["waves"][r["wave"]]["name"], r["outcome"], r["bytes_sent"],
                     r["timings"].get("transfer", "-")))
        if r["error"]:
            reasons.append("  %s: %s" % (name, r["error"]))  # whole: no message is cut
    waves = ", ".join("%s=%s%s" % (w["name"], w["state"],
                                   " (approved by %s)" % w["approver"] if w["approver"] else "")
                      for w in rec["waves"])
    head = "rollout %s: %s%s\nwaves: %s" % (rec["id"], rec["state"],
                                             " - " + rec["halt_reason"] if rec["halt_reason"]
                                             else "", waves)
    text = head + "\n\n" + table(["robot", "wave", "outcome", "bytes", "transfer s"], rows)
    if reasons:
        text += "\n\nreasons:\n" + "\n".join(reasons)
    if rec["state"] not in ("completed",) and rec.get("kind") == "rollback":
        text += ("\n\ncontinue with: pytools rollback %s --fleet %s%s --workdir %s --resume%s"
                 % (rec["name"], rec["inventory"], " --to %s" % rec["version"]
                    if rec["version"] else "", rec.get("workdir"), " --approved-by USER"
                    if rec["state"] == "awaiting_approval" else ""))
    elif rec["state"] not in ("completed",):
        text += ("\n\ncontinue with: pytools rollout %s %s --fleet %s --package %s --workdir %s "
                 "--resume%s" % (rec["name"], rec["version"], rec["inventory"], rec["package"],
                                 rec.get("workdir"), " --approved-by USER"
                                 if rec["state"] == "awaiting_approval" else ""))
    return text
