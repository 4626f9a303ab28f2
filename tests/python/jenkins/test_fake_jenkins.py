"""The loopback Jenkins answers the input step's endpoints as pipeline-input-step does, so the
release CLI's tests mean something: the form paths, Jenkins' refusals and the old-plugin case."""
import requests

from tests.fakes.jenkins import FakeJenkins
from tests.python.jenkins.conftest import USERS, WAVES


def post(server, user, path, form):
    auth = (user, USERS[user]["token"])
    crumb = requests.get(server.url + "crumbIssuer/api/json", auth=auth, timeout=5).json()["crumb"]
    return requests.post(server.url + path, data=form, auth=auth, headers={"Jenkins-Crumb": crumb},
                         allow_redirects=False, timeout=5)


def test_submit_without_proceed_is_an_abort_and_redirects_to_the_console():
    with FakeJenkins(USERS) as server:
        server.add_job("weed-detector", waves=WAVES)
        build = server.start_build("weed-detector")
        reply = post(server, "alice", "job/weed-detector/1/input/Wave1/submit", {"json": "{}"})
        assert reply.status_code == 302 and reply.headers["Location"].endswith("/job/weed-detector/1/console")
        assert build.result == "ABORTED" and build.rejected_by == "alice"


def test_proceed_needs_the_json_form_and_refusals_are_400_with_x_error():
    with FakeJenkins(USERS) as server:
        server.add_job("weed-detector", waves=WAVES)
        build = server.start_build("weed-detector")
        assert post(server, "alice", "job/weed-detector/1/input/Wave1/proceed", {}).status_code == 500
        refused = post(server, "bob", "job/weed-detector/1/input/Wave1/proceed", {"json": "{}"})
        assert (refused.status_code, refused.headers["X-Error"]) == (
            400, "You need to be release-managers to submit this.")
        proceed = "job/weed-detector/1/input/Wave1/proceed"
        assert post(server, "alice", proceed, {"json": "{}"}).status_code == 200
        again = post(server, "alice", proceed, {"json": "{}"})
        assert (again.status_code, again.headers["X-Error"]) == (400, "This input has been already given")
        assert build.approvers == [{"wave": "canary", "userId": "alice", "value": "alice"}]


def test_proceed_empty_loses_the_approver_on_old_plugins_only():
    for old, value in ((True, None), (False, "alice")):
        with FakeJenkins(USERS, old_input_plugin=old) as server:
            server.add_job("weed-detector", waves=WAVES)
            build = server.start_build("weed-detector")
            reply = post(server, "alice", "job/weed-detector/1/input/Wave1/proceedEmpty", {})
            assert reply.status_code == 200
            assert build.approvers[0]["value"] == value
