"""Release managers' view of Jenkins: pending rollout approvals, approve/abort, status, trigger.

Talks to Jenkins through python-jenkins (crumbs, auth) plus the two REST surfaces python-jenkins
does not wrap: the Pipeline Stage View API (`wfapi/describe`, `wfapi/pendingInputActions`; plugin
pipeline-stage-view) and the input step's own endpoints: `input/<id>/proceed` with a `json` form
(the path the build page's Proceed button takes, which records the approver in the step's
`submitterParameter` on every pipeline-input-step release, unlike `proceedEmpty` before
532.v9e7466cb_4406) and `input/<id>/abort`. Jenkins refuses those with HTTP 400 and its reason in
the `X-Error` header ("You need to be release-managers to submit this.", "This input has been
already given"); that reason is what the user sees.

Connection settings come from the environment (`JENKINS_URL`, `JENKINS_USER`, `JENKINS_TOKEN` or
`JENKINS_TOKEN_FILE`) or from an INI file (section `[jenkins]`: `url`, `user`, `token_file`);
the environment wins key by key. The token is never printed or put in an error message.
"""
import configparser
import json
import os
import re
from urllib.parse import quote

import jenkins
import requests

from pytools.core.errors import ConfigError, PytoolsError
from pytools.core.package import read_manifest

DEFAULT_CONFIG = os.path.join("~", ".config", "pytools", "jenkins.ini")
TIMEOUT_S = 15
# How many of a job's newest builds are searched for pending approvals.
RECENT_BUILDS = 20
STAGE_VIEW_HINT = ("Jenkins at %s has no Pipeline Stage View REST API (wfapi): install the plugin "
                   "'Pipeline: Stage View' (pipeline-stage-view), which pytools release reads")
# The form the build page's Proceed button posts: no parameters, the approver comes from the login.
PROCEED_FORM = {"json": json.dumps({"parameter": []})}

# The rollout step's input message (vars/modelRollout.groovy builds it; keep the two in step).
APPROVAL_MESSAGE = re.compile(
    r"^Roll out (?P<model>\S+) (?P<version>\S+) to wave (?P<wave>\S+) "
    r"\((?P<count>\d+) robots?(?:: (?P<robots>[^)]*))?\)")


def load_settings(config_path=None, environ=None):
    """Return {url, user, token}; every missing piece is a ConfigError naming where to set it."""
    environ = os.environ if environ is None else environ
    path = config_path or environ.get("PYTOOLS_JENKINS_CONFIG") or os.path.expanduser(DEFAULT_CONFIG)
    file_values = {}
    if config_path and not os.path.exists(config_path):
        raise ConfigError("Jenkins config file %s does not exist" % config_path)
    if os.path.exists(path):
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise ConfigError("%s: not a valid INI file: %s" % (path, str(exc).splitlines()[0]))
        if parser.has_section("jenkins"):
            file_values = dict(parser.items("jenkins"))
        unknown = sorted(set(file_values) - {"url", "user", "token_file"})
        if unknown:
            raise ConfigError("%s: unknown key(s) in [jenkins]: %s (allowed: url, user, token_file;"
                              " put the token in a file, not here)" % (path, ", ".join(unknown)))
    url = environ.get("JENKINS_URL") or file_values.get("url")
    user = environ.get("JENKINS_USER") or file_values.get("user")
    token = environ.get("JENKINS_TOKEN")
    token_file = environ.get("JENKINS_TOKEN_FILE") or file_values.get("token_file")
    if not url:
        raise ConfigError("no Jenkins URL: set JENKINS_URL or 'url' in [jenkins] of %s" % path)
    if not token and token_file:
        try:
            with open(os.path.expanduser(token_file)) as f:
                token = f.read().strip()
        except OSError as exc:
            raise ConfigError("cannot read Jenkins token file %s: %s" % (token_file, exc.strerror))
    if bool(user) != bool(token):
        raise ConfigError("Jenkins user and token go together: set both JENKINS_USER and "
                          "JENKINS_TOKEN (or JENKINS_TOKEN_FILE), or neither for anonymous access")
    return {"url": url.rstrip("/") + "/", "user": user, "token": token}


class NotFoundOnJenkins(PytoolsError):
    """Jenkins answered 404 for what was asked."""


class Release:
    """One authenticated Jenkins connection with the release manager's operations."""

    def __init__(self, settings, timeout=TIMEOUT_S):
        self.url = settings["url"]
        self.user = settings["user"]
        self.server = jenkins.Jenkins(self.url, username=settings["user"],
                                      password=settings["token"], timeout=timeout)

    # -- transport: every failure becomes one line a person can act on

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError:
            raise PytoolsError("cannot reach Jenkins at %s (connection refused or no route)"
                               % self.url)
        except (requests.exceptions.Timeout, jenkins.TimeoutException):
            raise PytoolsError("Jenkins at %s did not answer within %ss" % (self.url, TIMEOUT_S))
        except jenkins.NotFoundException:
            raise NotFoundOnJenkins("%s: not found on Jenkins" % what)
        except jenkins.JenkinsException as exc:
            raise PytoolsError(self._explain(what, str(exc)))
        except requests.exceptions.HTTPError as exc:
            refused = exc.response.headers.get("X-Error")
            if refused:
                raise PytoolsError("%s: refused for user %r: %s" % (what, self.user or "anonymous", refused))
            raise PytoolsError("%s: Jenkins answered HTTP %s" % (what, exc.response.status_code))

    def _explain(self, what, message):
        status = re.search(r"\[(\d{3})\]", message)
        code = status.group(1) if status else None
        body = message.split("\n", 1)[1].strip() if "\n" in message else ""
        if code == "401":
            return ("Jenkins rejected the credentials of user %r (wrong or revoked JENKINS_TOKEN?)"
                    % self.user)
        if code == "403":
            detail = _first_text_line(body) or "permission denied"
            return "%s: forbidden for user %r: %s" % (what, self.user or "anonymous", detail)
        return "%s: %s" % (what, message.splitlines()[0])

    def _get_json(self, what, path):
        text = self._call(what, self.server.jenkins_open,
                          requests.Request("GET", self.url + path))
        try:
            return json.loads(text)
        except ValueError:
            raise PytoolsError("%s: Jenkins did not answer JSON (is %s a Jenkins URL?)"
                               % (what, self.url))

    def _post(self, what, path, form=None):
        self._call(what, self.server.jenkins_request,
                   requests.Request("POST", self.url + path, data=form))

    def _wfapi(self, what, job, number, tail):
        """A Stage View REST document of build `number`; a 404 for a build that exists means the
        plugin is missing, which is said with the plugin's name."""
        try:
            return self._get_json(what, "%s%s/wfapi/%s" % (job_path(job), number, tail))
        except NotFoundOnJenkins:
            # A missing build says so; a build that exists without wfapi lacks the plugin.
            self._get_json(what, "%s%s/api/json?tree=number" % (job_path(job), number))
            raise PytoolsError(STAGE_VIEW_HINT % self.url)

    # -- operations

    def all_jobs(self):
        """Every job (not folders). Not filtered by the ball colour: that is the *last* build's
        state, and an older build paused at an approval stays paused whatever ran after it."""
        jobs = self._call("list jobs", self.server.get_all_jobs)
        return [j["fullname"] for j in jobs if "jobs" not in j]

    def pending(self, job=None):
        """Every input waiting in a running build (of the newest RECENT_BUILDS) of `job` or of
        every job, newest first."""
        found = []
        for name in ([job] if job else self.all_jobs()):
            info = self._get_json("job %s" % name, "%sapi/json?tree=builds[number,building]{0,%d}"
                                  % (job_path(name), RECENT_BUILDS))
            for build in info.get("builds", []):
                if not build.get("building"):
                    continue
                number = build["number"]
                actions = self._wfapi("pending inputs of %s #%s" % (name, number), name, number,
                                      "pendingInputActions")
                found.extend(describe_input(name, number, a) for a in actions)
        return found

    def _pick_input(self, job, number, wave):
        actions = self._wfapi("pending inputs of %s #%s" % (job, number), job, number,
                              "pendingInputActions")
        if not actions:
            raise PytoolsError("%s #%s has no pending approval" % (job, number))
        inputs = [describe_input(job, number, a) for a in actions]
        if wave is None:
            if len(inputs) > 1:
                raise PytoolsError("%s #%s waits on %d inputs; pick one with --wave (%s)"
                                   % (job, number, len(inputs),
                                      ", ".join(i["wave"] or i["input_id"] for i in inputs)))
            return inputs[0]
        for item in inputs:
            if wave in (item["wave"], item["input_id"]):
                return item
        raise PytoolsError("%s #%s is not waiting for wave %r (waiting for: %s)"
                           % (job, number, wave, ", ".join(i["wave"] or i["input_id"] for i in inputs)))

    def decide(self, job, number, approve, wave=None):
        """Approve (proceed) or abort one pending wave; return what was decided."""
        item = self._pick_input(job, number, wave)
        base = "%s%s/input/%s/" % (job_path(job), number, quote(item["input_id"], safe=""))
        verb = "approve" if approve else "abort"
        what = "%s %s #%s wave %s" % (verb, job, number, item["wave"] or item["input_id"])
        if approve:
            self._post(what, base + "proceed", PROCEED_FORM)
        else:
            self._post(what, base + "abort")
        item.update({"decision": "approved" if approve else "aborted", "by": self.user})
        return item

    def status(self, job, number=None):
        if number is None:
            info = self._call("job %s" % job, self.server.get_job_info, job)
            if not info.get("lastBuild"):
                raise PytoolsError("job %s has no builds yet" % job)
            number = info["lastBuild"]["number"]
        build = self._call("build %s #%s" % (job, number), self.server.get_build_info, job, number)
        run = self._wfapi("stages of %s #%s" % (job, number), job, number, "describe")
        return {
            "job": job, "number": int(number), "url": build.get("url"),
            "status": run.get("status"), "result": build.get("result"),
            "building": bool(build.get("building")), "description": build.get("description"),
            "stages": [{"name": s.get("name"), "status": s.get("status"),
                        "duration_s": round(s.get("durationMillis", 0) / 1000.0, 1)}
                       for s in run.get("stages", [])],
        }

    def trigger(self, job, parameters):
        queue_id = self._call("trigger %s" % job, self.server.build_job, job, parameters or None)
        item = self._call("queue item %s" % queue_id, self.server.get_queue_item, queue_id)
        executable = item.get("executable") or {}
        return {"job": job, "queue_id": queue_id, "parameters": parameters,
                "number": executable.get("number"), "url": executable.get("url"),
                "why": item.get("why")}


def job_path(name):
    """`a/b` (a job in folder a) -> `job/a/job/b/`, the URL path Jenkins uses."""
    return "".join("job/%s/" % quote(part, safe="") for part in name.split("/"))


def describe_input(job, number, action):
    """A pending input as a release manager reads it: which model, version, wave and robots."""
    match = APPROVAL_MESSAGE.match(action.get("message") or "")
    fields = match.groupdict() if match else {}
    robots = [r.strip() for r in (fields.get("robots") or "").split(",") if r.strip()]
    return {
        "job": job, "number": int(number), "input_id": action.get("id"),
        "message": action.get("message"), "model": fields.get("model"),
        "version": fields.get("version"), "wave": fields.get("wave"),
        "robot_count": int(fields["count"]) if fields.get("count") else None, "robots": robots,
    }


def package_summary(package_dir):
    """The build description modelPipeline shows: name, version, platform, parity verdict."""
    manifest = read_manifest(package_dir)
    parity = (manifest.get("evidence") or {}).get("parity") or {}
    verdict = _verdict(parity)
    line = "%s %s (%s): parity %s" % (manifest["name"], manifest["version"],
                                      manifest.get("platform") or manifest["runtime"].get("kind"),
                                      verdict)
    return {"name": manifest["name"], "version": manifest["version"],
            "platform": manifest.get("platform"), "parity": verdict, "line": line}


def _verdict(parity):
    """PASS/FAIL from the parity summary (`passed` bool or a `status` word); n/a when absent."""
    if isinstance(parity.get("passed"), bool):
        return "PASS" if parity["passed"] else "FAIL"
    status = str(parity.get("status") or "").upper()
    return status if status in ("PASS", "FAIL") else "n/a"


def parse_parameters(pairs):
    """`["KEY=VALUE", ...]` -> dict; a pair without '=' is a ConfigError."""
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("parameter %r must look like NAME=VALUE" % pair)
        params[key] = value
    return params


def _first_text_line(body):
    """Jenkins error pages are HTML; keep the first line of text that says more than "Error"."""
    text = re.sub(r"<[^>]+>", "\n", re.sub(r"(?is)<head>.*?</head>", "", body))
    for line in (raw.strip() for raw in text.splitlines()):
        if line and not line.isdigit() and line.lower() not in ("error", "oops!"):
            return line
    return ""
