"""`pytools release`: a release manager's terminal view of Jenkins rollouts."""
from pytools.commands import group, leaf
from pytools.core.console import table


def _jenkins():
    # python-jenkins pulls in requests: import it only when a release command runs.
    from pytools import jenkins

    return jenkins

CONNECTION_HELP = """
Jenkins is reached with JENKINS_URL, JENKINS_USER and JENKINS_TOKEN (or JENKINS_TOKEN_FILE),
or an INI file ([jenkins] url, user, token_file) given with --jenkins-config, in
$PYTOOLS_JENKINS_CONFIG, or at ~/.config/pytools/jenkins.ini. The environment wins."""


def register(subparsers):
    sub = group(subparsers, "release", "approve rollout waves and follow model pipelines on Jenkins")

    p = _leaf(sub, "pending", _pending, "list builds waiting for a rollout approval")
    p.add_argument("--job", help="only this job (folder/job); default: every job")

    for name, handler, verb in (("approve", _approve, "approve (proceed with)"),
                                ("abort", _abort, "abort")):
        p = _leaf(sub, name, handler, "%s the pending rollout wave of a build" % verb)
        p.add_argument("job", help="job name, folders separated by '/'")
        p.add_argument("build", type=int, help="build number")
        p.add_argument("--wave", help="wave name or input id, when the build waits on several")

    p = _leaf(sub, "status", _status, "show a pipeline build's stages and status")
    p.add_argument("job")
    p.add_argument("build", type=int, nargs="?", help="build number (default: the last build)")

    p = _leaf(sub, "trigger", _trigger, "start a pipeline build with parameters")
    p.add_argument("job")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="a build parameter (repeatable)")

    p = leaf(sub, "summary", _summary,
             "one line for a Jenkins build description from a package's manifest (no Jenkins needed)")
    p.add_argument("package_dir", metavar="PACKAGE_DIR")


def _leaf(sub, name, handler, help):
    parser = leaf(sub, name, handler, help, description=help + "\n" + CONNECTION_HELP)
    parser.add_argument("--jenkins-config", metavar="FILE", help="INI file with [jenkins] settings")
    return parser


def _connect(args):
    return _jenkins().Release(_jenkins().load_settings(args.jenkins_config))


def _pending(args):
    items = _connect(args).pending(args.job)
    if not items:
        return {"pending": []}, "no rollout is waiting for approval"
    rows = [(i["job"], i["number"], i["model"] or "-", i["version"] or "-",
             i["wave"] or i["input_id"], _robots(i)) for i in items]
    return {"pending": items}, table(["job", "build", "model", "version", "wave", "robots"], rows)


def _decide(args, approve):
    item = _connect(args).decide(args.job, args.build, approve, args.wave)
    what = "%s %s" % (item["model"], item["version"]) if item["model"] else item["message"]
    human = "%s wave %s of %s (%s #%d) as %s" % (
        item["decision"], item["wave"] or item["input_id"], what, item["job"], item["number"],
        item["by"] or "anonymous")
    return item, human


def _approve(args):
    return _decide(args, True)


def _abort(args):
    return _decide(args, False)


def _status(args):
    info = _connect(args).status(args.job, args.build)
    head = "%s #%d: %s%s" % (info["job"], info["number"], info["status"] or info["result"],
                             "" if not info["description"] else "  (%s)" % info["description"])
    rows = [(s["name"], s["status"], "%.1fs" % s["duration_s"]) for s in info["stages"]]
    return info, head + "\n" + table(["stage", "status", "duration"], rows)


def _trigger(args):
    info = _connect(args).trigger(args.job, _jenkins().parse_parameters(args.param))
    where = ("build #%d %s" % (info["number"], info["url"]) if info["number"]
             else "queued (%s)" % (info["why"] or "waiting for an executor"))
    return info, "triggered %s: %s" % (args.job, where)


def _summary(args):
    info = _jenkins().package_summary(args.package_dir)
    return info, info["line"]


def _robots(item):
    if item["robots"]:
        return ", ".join(item["robots"])
    return str(item["robot_count"]) if item["robot_count"] is not None else "-"
