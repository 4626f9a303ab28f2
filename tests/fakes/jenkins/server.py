"""A Jenkins-REST-compatible server on loopback, for testing `pytools release` with python-jenkins.

No Jenkins can run in these tests (no JVM web app, no plugins to download), so this server speaks
the parts of Jenkins' wire protocol the release CLI uses, as Jenkins 2.4xx with the
workflow-job, pipeline-input-step and pipeline-stage-view plugins does:

- HTTP Basic auth with API tokens (401 for a wrong token, 403 for anonymous without read access);
- the crumb issuer (`crumbIssuer/api/json`); a POST without the caller's crumb is refused with 403
  "No valid crumb was included in the request";
- `api/json` of the root (with `tree=jobs[...]`), of a job and of a build; `me/api/json`;
- `wfapi/describe` and `wfapi/pendingInputActions` (Stage View REST), `wfapi/inputSubmit`; with
  `stage_view=False` they are 404, as on a Jenkins without the pipeline-stage-view plugin;
- the input step's `input/<id>/proceed` (needs the `json` form, else Stapler's ServletException,
  500), `submit` (the build page's form: `proceed` present = approve, absent = abort; answers a
  302 to the console), `proceedEmpty` and `abort`, as pipeline-input-step's InputStepExecution:
  users named in `submitter` (or in a group named there) and Administer users may approve,
  those and Job/Cancel users may abort; a refusal is hudson.model.Failure: HTTP 400 with the reason
  in `X-Error` ("You need to be release-managers to submit this.", "This input has been already
  given"). An approval is recorded (ApproverAction with the user id) with the value `input`
  returns to the pipeline: the approver for `submitterParameter`, except through `proceedEmpty` on
  releases before 532.v9e7466cb_4406 (`old_input_plugin=True`), where it is null;
- `build` / `buildWithParameters` (201 + `Location: .../queue/item/N/`) and `queue/item/N/api/json`.

A rollout build is modelled as the pipeline template runs it: earlier stages done, then one input
per wave; each approval moves to the next wave's input, the last approval finishes the run.
"""
import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

JENKINS_VERSION = "2.462.3"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
BUILD_STAGES = ["Checkpoint", "Export", "Engine", "Parity", "Bench", "Publish", "Release"]


def approval_message(model, version, wave, robots):
    # The same text vars/modelRollout.groovy gives its input step.
    return "Roll out %s %s to wave %s (%d robots: %s)" % (
        model, version, wave, len(robots), ", ".join(robots))


class Build:
    def __init__(self, job, number, parameters, waves, submitter):
        self.settled = set()  # input ids already given: a second answer is refused
        self.job, self.number, self.parameters = job, number, dict(parameters)
        self.model = self.parameters.get("MODEL", job.name)
        self.version = self.parameters.get("VERSION", "1.0.0")
        self.waves, self.submitter = list(waves), submitter
        self.wave_index = 0 if self.waves else None
        self.result = None if self.waves else "SUCCESS"
        self.approvers, self.rejected_by, self.description = [], None, None
        self.timestamp = 1764216000000 + number * 1000

    @property
    def building(self):
        return self.result is None

    def pending_input(self):
        if not self.building:
            return None
        wave, robots = self.waves[self.wave_index]
        return {"id": "Wave%d" % (self.wave_index + 1), "wave": wave,
                "message": approval_message(self.model, self.version, wave, robots)}

    def url_path(self):
        return "%s%d/" % (self.job.url_path(), self.number)


class Job:
    def __init__(self, name, waves=(), submitter="release-managers"):
        self.name, self.waves, self.submitter = name, list(waves), submitter
        self.builds = {}

    def url_path(self):
        return "".join("job/%s/" % p for p in self.name.split("/"))

    def color(self):
        """The ball, as Job.getIconColor: the *last* build's state (animated while it runs)."""
        if not self.builds:
            return "notbuilt"
        last = self.builds[max(self.builds)]
        colors = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted"}
        return colors.get(last.result, "blue") if not last.building else "blue_anime"


class FakeJenkins:
    """State plus a threaded HTTP server; use as a context manager."""

    def __init__(self, users, anonymous_read=False, stage_view=True, old_input_plugin=False):
        # users: {name: {"token": str, "groups": [..], "cancel": bool, "admin": bool}}
        self.users, self.anonymous_read = users, anonymous_read
        self.stage_view, self.old_input_plugin = stage_view, old_input_plugin
        self.after_pending_read = None
        self.jobs, self.queue, self.lock = {}, {}, threading.Lock()
        self.requests = []  # (method, path, user, had_valid_crumb) for assertions
        self.secret = "fake-jenkins-crumb-salt"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def add_job(self, name, waves=(), submitter="release-managers"):
        self.jobs[name] = Job(name, waves, submitter)
        return self.jobs[name]

    def start_build(self, job_name, parameters=None):
        job = self.jobs[job_name]
        number = max(job.builds, default=0) + 1
        job.builds[number] = Build(job, number, parameters or {}, job.waves, job.submitter)
        return job.builds[number]

    def crumb_for(self, user):
        return hashlib.sha256(("%s:%s" % (self.secret, user)).encode()).hexdigest()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server._dispatch(self, "GET")

            def do_POST(self):
                server._dispatch(self, "POST")

        return Handler

    # -- HTTP plumbing

    def _send(self, h, status, body=b"", ctype="application/json;charset=utf-8", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        h.send_response(status)
        h.send_header("X-Jenkins", JENKINS_VERSION)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _error(self, h, status, message, headers=None):
        page = "<html><head><title>Error</title></head><body><h1>%s</h1><p>%s</p></body></html>"
        self._send(h, status, page % (status, message), "text/html;charset=utf-8", headers)

    def _failure(self, h, message):
        # hudson.model.Failure: Jenkins' error page with status 400 and the reason in X-Error.
        return self._error(h, 400, message, {"X-Error": message})

    def _authenticate(self, h):
        """Return (user or None for anonymous, error sent?)."""
        header = h.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        name, _, token = base64.b64decode(header[6:]).decode().partition(":")
        user = self.users.get(name)
        if user is None or user["token"] != token:
            return False
        return name

    def _dispatch(self, h, method):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        user = self._authenticate(h)
        if user is False:
            return self._send(h, 401, "<html><body>Unauthorized</body></html>",
                              "text/html;charset=utf-8",
                              {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        crumb_ok = h.headers.get("Jenkins-Crumb") == self.crumb_for(user or "anonymous")
        with self.lock:
            self.requests.append((method, path, user, crumb_ok))
            if user is None and not self.anonymous_read:
                return self._error(h, 403, "Authentication required")
            if method == "POST" and not crumb_ok:
                return self._error(h, 403, "No valid crumb was included in the request")
            try:
                return self._route(h, method, path, query, body, user)
            except LookupError:
                return self._error(h, 404, "Not Found")

    # -- routes

    def _route(self, h, method, path, query, body, user):
        if method == "GET" and path == "/crumbIssuer/api/json":
            return self._send(h, 200, {"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                       "crumb": self.crumb_for(user or "anonymous"),
                                       "crumbRequestField": "Jenkins-Crumb"})
        if method == "GET" and path in ("/", "/api/json"):
            return self._send(h, 200, {"_class": "hudson.model.Hudson", "jobs": self._items("")})
        if method == "GET" and path == "/me/api/json":
            return self._send(h, 200, {"_class": "hudson.model.User", "id": user or "anonymous",
                                       "fullName": user or "anonymous"})
        m = re.match(r"^/queue/item/(\d+)/api/json$", path)
        if method == "GET" and m:
            return self._send(h, 200, self.queue[int(m.group(1))])
        m = re.match(r"^/((?:job/[^/]+/)+)(.*)$", path)
        if not m:
            raise LookupError(path)
        job = self.jobs[m.group(1).replace("job/", "").rstrip("/")]
        return self._job_route(h, method, job, m.group(2), query, body, user)

    def _job_route(self, h, method, job, rest, query, body, user):
        if method == "GET" and rest == "api/json":
            return self._send(h, 200, self._job_json(job, query.get("tree", [""])[0]))
        if method == "POST" and rest in ("build", "buildWithParameters"):
            params = {k: v[-1] for k, v in query.items() if k not in ("token", "delay")}
            build = self.start_build(job.name, params)
            qid = 100 + len(self.queue)
            self.queue[qid] = {
                "_class": "hudson.model.Queue$LeftItem", "id": qid, "blocked": False,
                "buildable": False, "cancelled": False, "why": None,
                "task": {"_class": WORKFLOW_JOB, "name": job.name, "url": self.url + job.url_path()},
                "executable": {"_class": WORKFLOW_RUN, "number": build.number,
                               "url": self.url + build.url_path()}}
            return self._send(h, 201, b"", "text/plain",
                              {"Location": "%squeue/item/%d/" % (self.url, qid)})
        m = re.match(r"^(\d+)/(.*)$", rest)
        if not m:
            raise LookupError(rest)
        build = job.builds[int(m.group(1))]
        return self._build_route(h, method, build, m.group(2), query, body, user)

    def _build_route(self, h, method, build, rest, query, body, user):
        if method == "GET" and rest == "api/json":
            return self._send(h, 200, self._build_json(build))
        if method == "GET" and rest == "console":
            return self._send(h, 200, "<html><body>console</body></html>", "text/html;charset=utf-8")
        if rest.startswith("wfapi") and not self.stage_view:
            raise LookupError(rest)
        if method == "GET" and rest.rstrip("/") in ("wfapi/describe", "wfapi"):
            return self._send(h, 200, self._describe(build))
        if method == "GET" and rest == "wfapi/pendingInputActions":
            pending = build.pending_input()
            self._send(h, 200, [self._input_ext(build, pending)] if pending else [])
            if pending and self.after_pending_read:
                # e.g. another release manager approving right after this client read the list
                self.after_pending_read(build, pending)
            return None
        if method == "POST" and rest == "wfapi/inputSubmit":
            return self._settle(h, build, query.get("inputId", [""])[0], "proceed", user, form={"json": "{}"})
        m = re.match(r"^input/([^/]+)/(proceedEmpty|proceed|submit|abort)$", rest)
        if method == "POST" and m:
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            action = m.group(2)
            if action == "submit":
                action = "proceed" if "proceed" in form else "abort"
                return self._settle(h, build, m.group(1), action, user, form, redirect=True)
            return self._settle(h, build, m.group(1), action, user, form)
        raise LookupError(rest)

    def _settle(self, h, build, input_id, action, user, form, redirect=False):
        pending = build.pending_input()
        if input_id in build.settled:
            return self._failure(h, "This input has been already given")
        if pending is None or pending["id"] != input_id:
            raise LookupError(input_id)
        if action == "proceed" and "json" not in form:
            # StaplerRequest.getSubmittedForm() without a `json` field: a ServletException.
            return self._error(h, 500, "This page expects a form submission but had only %s" % form)
        allowed = self._can_settle(user, build.submitter)
        if action != "abort" and not allowed:
            return self._failure(h, "You need to be %s to submit this." % build.submitter)
        if action == "abort" and not (allowed or self._has(user, "cancel")):
            return self._failure(h, "You need to be '%s' (or have Job/Cancel permissions) "
                                    "to cancel this." % build.submitter)
        build.settled.add(input_id)
        if action != "abort":
            drops = action == "proceedEmpty" and self.old_input_plugin
            build.approvers.append({"wave": pending["wave"], "userId": user,
                                    "value": None if drops else user})
            build.wave_index += 1
            if build.wave_index == len(build.waves):
                build.result = "SUCCESS"
                build.description = "rolled out %s %s to every wave" % (build.model, build.version)
        else:
            build.rejected_by = user
            build.result = "ABORTED"
            build.description = "rollout halted at wave %s: aborted by %s" % (pending["wave"], user)
        if redirect:
            console = self.url + build.url_path() + "console"
            return self._send(h, 302, b"", "text/plain", {"Location": console})
        return self._send(h, 200, b"", "text/plain")

    def _has(self, user, permission):
        # Administer implies every permission, Job/Cancel included.
        return user is not None and (self.users[user].get("admin") or self.users[user].get(permission))

    def _can_settle(self, user, submitter):
        if user is None:
            return False
        if self._has(user, "admin"):
            return True
        names = {n.strip() for n in submitter.split(",")}
        return user in names or bool(names & set(self.users[user].get("groups", [])))

    # -- JSON shapes

    def _items(self, folder):
        """The items of a folder ("" = root): jobs, and folders holding their own items."""
        items, folders = [], []
        for job in self.jobs.values():
            if not job.name.startswith(folder):
                continue
            rest = job.name[len(folder):].split("/")
            if len(rest) == 1:
                items.append({"_class": WORKFLOW_JOB, "name": rest[0],
                              "url": self.url + job.url_path(),
                              "color": job.color()})
            elif rest[0] not in folders:
                folders.append(rest[0])
                path = folder + rest[0] + "/"
                items.append({"_class": "com.cloudbees.hudson.plugins.folder.Folder",
                              "name": rest[0], "url": self.url + "".join(
                                  "job/%s/" % p for p in path.strip("/").split("/")),
                              "jobs": self._items(path)})
        return items

    def _job_json(self, job, tree=""):
        # `tree=builds[number,building]{0,N}` asks for the newest N builds with their state.
        wanted = re.search(r"builds\[([^\]]*)\](?:\{0,(\d+)\})?", tree)
        fields = wanted.group(1).split(",") if wanted else ["number", "url"]
        limit = int(wanted.group(2)) if wanted and wanted.group(2) else None
        builds = [{k: v for k, v in (("_class", WORKFLOW_RUN), ("number", n),
                                     ("url", self.url + b.url_path()), ("building", b.building))
                   if k == "_class" or k in fields}
                  for n, b in sorted(job.builds.items(), reverse=True)][:limit]
        if wanted:
            return {"_class": WORKFLOW_JOB, "builds": builds}
        return {"_class": WORKFLOW_JOB, "name": job.name.split("/")[-1], "fullName": job.name,
                "url": self.url + job.url_path(), "buildable": True, "builds": builds,
                "firstBuild": builds[-1] if builds else None,
                "lastBuild": builds[0] if builds else None,
                "inQueue": False, "nextBuildNumber": len(builds) + 1}

    def _build_json(self, build):
        actions = [{"_class": "hudson.model.ParametersAction", "parameters": [
            {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
            for k, v in sorted(build.parameters.items())]}]
        # ApproverAction is invisible and not exported: only its class shows in api/json.
        actions += [{"_class": "org.jenkinsci.plugins.workflow.support.steps.input.ApproverAction"}
                    for _ in build.approvers]
        return {"_class": WORKFLOW_RUN, "number": build.number, "id": str(build.number),
                "url": self.url + build.url_path(), "building": build.building,
                "result": build.result, "description": build.description,
                "displayName": "#%d" % build.number,
                "fullDisplayName": "%s #%d" % (build.job.name, build.number),
                "timestamp": build.timestamp, "duration": 0 if build.building else 60000,
                "actions": actions}

    def _describe(self, build):
        stages = [{"name": s, "status": "SUCCESS"} for s in BUILD_STAGES]
        if build.waves:
            status = {None: "PAUSED_PENDING_INPUT", "SUCCESS": "SUCCESS",
                      "ABORTED": "ABORTED"}[build.result]
            stages.append({"name": "Rollout", "status": status})
        run_status = "PAUSED_PENDING_INPUT" if build.building else build.result
        base = "/" + build.url_path()
        return {
            "_links": {"self": {"href": base + "wfapi/describe"},
                       "pendingInputActions": {"href": base + "wfapi/pendingInputActions"}},
            "id": str(build.number), "name": "#%d" % build.number, "status": run_status,
            "startTimeMillis": build.timestamp, "endTimeMillis": build.timestamp + 60000,
            "durationMillis": 60000, "queueDurationMillis": 5, "pauseDurationMillis": 0,
            "stages": [dict(s, id=str(6 + 3 * i), execNode="", startTimeMillis=build.timestamp,
                            durationMillis=1500 * (i + 1), pauseDurationMillis=0,
                            _links={"self": {"href": base + "execution/node/%d/wfapi/describe"
                                             % (6 + 3 * i)}})
                       for i, s in enumerate(stages)]}

    def _input_ext(self, build, pending):
        base = "/" + build.url_path()
        return {"id": pending["id"], "proceedText": "Roll out", "message": pending["message"],
                "inputs": [],
                "proceedUrl": base + "wfapi/inputSubmit?inputId=" + pending["id"],
                "abortUrl": base + "input/" + pending["id"] + "/abort",
                "redirectApprovalUrl": base + "input/"}
