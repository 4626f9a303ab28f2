"""`pytools release` through python-jenkins against the loopback Jenkins-compatible server."""
import json

import pytest

from pytools.cli import main
from tests.fakes.jenkins import FakeJenkins
from tests.python.jenkins.conftest import USERS, WAVES

pytestmark = pytest.mark.timeout(60)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_pending_lists_model_version_wave_and_robots(as_user, capsys):
    server = as_user("alice")
    server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
    server.start_build("models/row-follower", {"MODEL": "row-follower", "VERSION": "0.3.1"})
    data = run_json(capsys, "release", "pending")
    items = sorted(data["pending"], key=lambda i: i["job"])
    assert [(i["job"], i["number"], i["model"], i["version"], i["wave"], i["robots"])
            for i in items] == [
        ("models/row-follower", 1, "row-follower", "0.3.1", "canary", ["robot-01", "robot-02"]),
        ("weed-detector", 1, "weed-detector", "1.4.0", "canary", ["robot-01", "robot-02"])]
    code, out, _ = run(capsys, "release", "pending", "--job", "weed-detector")
    assert code == 0
    assert "weed-detector  1      weed-detector  1.4.0    canary  robot-01, robot-02" in out


def test_finished_builds_are_not_pending(as_user, capsys):
    server = as_user("alice")
    build = server.start_build("weed-detector", {"VERSION": "1.4.0"})
    build.result = "SUCCESS"
    code, out, _ = run(capsys, "release", "pending")
    assert (code, out.strip()) == (0, "no rollout is waiting for approval")


def test_approve_each_wave_until_the_rollout_finishes(as_user, capsys):
    server = as_user("alice")
    build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
    code, out, err = run(capsys, "release", "approve", "weed-detector", "1")
    assert code == 0, err
    assert out.strip() == "approved wave canary of weed-detector 1.4.0 (weed-detector #1) as alice"
    # the value the pipeline's `input` returns is the approver, through the proceed form
    assert build.approvers == [{"wave": "canary", "userId": "alice", "value": "alice"}]
    assert build.pending_input()["wave"] == "10%"
    data = run_json(capsys, "release", "approve", "weed-detector", "1", "--wave", "10%")
    assert (data["decision"], data["by"], data["wave"]) == ("approved", "alice", "10%")
    assert build.result == "SUCCESS"
    # every POST carried the crumb the crumb issuer gave this user
    posts = [r for r in server.requests if r[0] == "POST"]
    assert len(posts) == 2 and all(r[3] for r in posts)
    assert [p[1] for p in posts] == ["/job/weed-detector/1/input/Wave1/proceed",
                                     "/job/weed-detector/1/input/Wave2/proceed"]
    assert ("GET", "/crumbIssuer/api/json", "alice", False) in server.requests


def test_approval_outside_the_submitter_group_is_refused(as_user, capsys):
    server = as_user("bob")
    build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
    code, out, err = run(capsys, "release", "approve", "weed-detector", "1")
    assert code != 0 and out == ""
    assert err.strip() == ("error: approve weed-detector #1 wave canary: refused for user 'bob':"
                           " You need to be release-managers to submit this.")
    assert build.approvers == [] and build.pending_input()["wave"] == "canary"


def test_abort_halts_the_rollout_and_records_who(as_user, capsys):
    server = as_user("alice")
    build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
    run_json(capsys, "release", "approve", "weed-detector", "1")
    code, out, _ = run(capsys, "release", "abort", "weed-detector", "1")
    assert code == 0
    assert out.strip() == "aborted wave 10% of weed-detector 1.4.0 (weed-detector #1) as alice"
    status = run_json(capsys, "release", "status", "weed-detector", "1")
    assert status["result"] == "ABORTED"
    assert status["description"] == "rollout halted at wave 10%: aborted by alice"
    assert status["stages"][-1] == {"name": "Rollout", "status": "ABORTED", "duration_s": 12.0}


def test_abort_without_submit_or_cancel_permission_is_refused(as_user, capsys):
    server = as_user("bob")
    build = server.start_build("weed-detector", {"VERSION": "1.4.0"})
    code, _, err = run(capsys, "release", "abort", "weed-detector", "1")
    assert code != 0
    assert err.strip() == ("error: abort weed-detector #1 wave canary: refused for user 'bob': You need to "
                           "be 'release-managers' (or have Job/Cancel permissions) to cancel this.")
    assert build.result is None


def test_status_shows_stages_of_the_last_build(as_user, capsys):
    server = as_user("bob")
    server.start_build("weed-detector", {"VERSION": "1.4.0"})
    server.start_build("weed-detector", {"VERSION": "1.4.1"})
    code, out, _ = run(capsys, "release", "status", "weed-detector")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "weed-detector #2: PAUSED_PENDING_INPUT"
    assert lines[1].split() == ["stage", "status", "duration"]
    assert lines[3].split() == ["Checkpoint", "SUCCESS", "1.5s"]
    assert lines[-1].split() == ["Rollout", "PAUSED_PENDING_INPUT", "12.0s"]


def test_trigger_with_parameters(as_user, capsys):
    server = as_user("alice")
    data = run_json(capsys, "release", "trigger", "weed-detector",
                    "-p", "VERSION=2.0.0", "--param", "MODEL=weed-detector")
    assert data["number"] == 1 and data["url"] == server.url + "job/weed-detector/1/"
    assert server.jobs["weed-detector"].builds[1].parameters == {
        "VERSION": "2.0.0", "MODEL": "weed-detector"}
    code, out, _ = run(capsys, "release", "trigger", "models/row-follower")
    assert out.strip() == "triggered models/row-follower: build #1 %sjob/models/job/row-follower/1/" \
        % server.url


def test_bad_parameter_is_one_line(as_user, capsys):
    as_user("alice")
    code, _, err = run(capsys, "release", "trigger", "weed-detector", "-p", "VERSION")
    assert code == 2
    assert err.strip() == "error: parameter 'VERSION' must look like NAME=VALUE"


def test_wrong_token_is_one_clear_line(as_user, capsys):
    as_user("alice", token="not-the-token")
    code, out, err = run(capsys, "release", "pending")
    assert code != 0 and out == ""
    assert err.strip() == ("error: Jenkins rejected the credentials of user 'alice' "
                           "(wrong or revoked JENKINS_TOKEN?)")
    assert "not-the-token" not in err


def test_unreachable_jenkins_is_one_clear_line(as_user, capsys, monkeypatch):
    as_user("alice")
    monkeypatch.setenv("JENKINS_URL", "http://127.0.0.1:9/")  # discard port: nothing listens
    code, _, err = run(capsys, "release", "status", "weed-detector")
    assert code != 0
    assert err.strip() == "error: cannot reach Jenkins at http://127.0.0.1:9/ (connection refused or no route)"


def test_anonymous_is_refused_with_a_clear_line(as_user, capsys, monkeypatch):
    as_user("alice")
    monkeypatch.delenv("JENKINS_USER")
    monkeypatch.delenv("JENKINS_TOKEN")
    code, _, err = run(capsys, "release", "pending")
    assert code != 0
    assert err.strip().startswith("error: ") and "Authentication required" in err


def test_unknown_wave_and_missing_build(as_user, capsys):
    server = as_user("alice")
    server.start_build("weed-detector", {"VERSION": "1.4.0"})
    code, _, err = run(capsys, "release", "approve", "weed-detector", "1", "--wave", "50%")
    assert err.strip() == ("error: weed-detector #1 is not waiting for wave '50%' "
                           "(waiting for: canary)")
    code, _, err = run(capsys, "release", "approve", "weed-detector", "7")
    assert code != 0 and err.strip() == "error: pending inputs of weed-detector #7: not found on Jenkins"


def test_settings_from_config_file_and_token_file(as_user, capsys, monkeypatch, tmp_path):
    server = as_user("alice")
    for name in ("JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN"):
        monkeypatch.delenv(name)
    token = tmp_path / "token"
    token.write_text("11aa-alice-token\n")
    ini = tmp_path / "jenkins.ini"
    ini.write_text("[jenkins]\nurl = %s\nuser = alice\ntoken_file = %s\n" % (server.url, token))
    server.start_build("weed-detector", {"VERSION": "1.4.0"})
    data = run_json(capsys, "release", "pending", "--jenkins-config", str(ini))
    assert [i["wave"] for i in data["pending"]] == ["canary"]
    # the environment wins over the file, key by key
    monkeypatch.setenv("JENKINS_USER", "bob")
    monkeypatch.setenv("JENKINS_TOKEN", "22bb-bob-token")
    monkeypatch.setenv("PYTOOLS_JENKINS_CONFIG", str(ini))
    code, _, err = run(capsys, "release", "approve", "weed-detector", "1")
    assert "refused for user 'bob'" in err


def test_token_in_config_file_is_refused(as_user, capsys, tmp_path, monkeypatch):
    as_user("alice")
    monkeypatch.delenv("JENKINS_TOKEN")
    ini = tmp_path / "jenkins.ini"
    ini.write_text("[jenkins]\nurl = http://127.0.0.1:9/\ntoken = secret\n")
    code, _, err = run(capsys, "release", "pending", "--jenkins-config", str(ini))
    assert code == 2
    assert "unknown key(s) in [jenkins]: token" in err and "secret" not in err


def test_missing_config_file_and_half_credentials(as_user, capsys, tmp_path, monkeypatch):
    as_user("alice")
    code, _, err = run(capsys, "release", "pending", "--jenkins-config", str(tmp_path / "nope.ini"))
    assert code == 2 and "does not exist" in err
    monkeypatch.delenv("JENKINS_TOKEN")
    code, _, err = run(capsys, "release", "pending")
    assert code == 2 and "user and token go together" in err


def _package(tmp_path, evidence):
    from pytools.core.package import write_package
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07" * 64)
    dest = str(tmp_path / "package")
    write_package(dest, {"model.onnx": (str(model), "onnx")}, {
        "name": "weed-detector", "version": "1.4.0-mr.42.7", "platform": "onnxruntime",
        "runtime": {"kind": "onnxruntime", "entry": "model.onnx"}, "evidence": evidence})
    return dest


def test_summary_line_for_the_build_description(tmp_path, capsys):
    dest = _package(tmp_path, {"parity": {"passed": True}, "bench": {}})
    code, out, _ = run(capsys, "release", "summary", dest)
    assert (code, out.strip()) == (0, "weed-detector 1.4.0-mr.42.7 (onnxruntime): parity PASS")
    dest = _package(tmp_path, {"parity": {"status": "fail"}})
    assert run_json(capsys, "release", "summary", dest)["parity"] == "FAIL"


def test_summary_of_a_non_package_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "release", "summary", str(tmp_path))
    assert code == 3 and err.strip() == "error: %s: no manifest.json (not a package directory)" % tmp_path


def test_unknown_job_and_job_without_builds(as_user, capsys):
    as_user("alice")
    code, _, err = run(capsys, "release", "pending", "--job", "nope")
    assert code != 0 and err.strip() == "error: job nope: not found on Jenkins"
    code, _, err = run(capsys, "release", "status", "weed-detector")
    assert code != 0 and err.strip() == "error: job weed-detector has no builds yet"


def test_pending_reads_each_job_once_and_only_running_builds_inputs(as_user, capsys):
    server = as_user("alice")
    for _ in range(3):
        server.start_build("weed-detector", {"VERSION": "1.4.0"}).result = "SUCCESS"
    server.start_build("weed-detector", {"VERSION": "1.4.1"})
    server.requests.clear()
    data = run_json(capsys, "release", "pending")
    assert [(i["job"], i["number"], i["version"]) for i in data["pending"]] == [
        ("weed-detector", 4, "1.4.1")]
    paths = [r[1] for r in server.requests if r[0] == "GET"]
    assert paths.count("/job/weed-detector/api/json") == 1
    assert paths.count("/job/models/job/row-follower/api/json") == 1
    assert [p for p in paths if "pendingInputActions" in p] == [
        "/job/weed-detector/4/wfapi/pendingInputActions"]


def test_pending_finds_an_older_build_waiting_after_a_newer_one_finished(as_user, capsys):
    server = as_user("alice")
    server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
    server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.1"}).result = "SUCCESS"
    # the job's ball is the last build's colour: blue, not animated
    assert [j["color"] for j in server._items("") if j["name"] == "weed-detector"] == ["blue"]
    data = run_json(capsys, "release", "pending")
    assert [(i["job"], i["number"], i["version"]) for i in data["pending"]] == [
        ("weed-detector", 1, "1.4.0")]


def test_an_approval_given_meanwhile_is_jenkins_message(as_user, capsys):
    server = as_user("alice")
    build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})

    def carol_approves_first(build, pending):
        server.after_pending_read = None
        build.settled.add(pending["id"])
        build.approvers.append({"wave": pending["wave"], "userId": "carol", "value": "carol"})
        build.wave_index += 1
    server.after_pending_read = carol_approves_first
    code, out, err = run(capsys, "release", "approve", "weed-detector", "1")
    assert code != 0 and out == ""
    assert err.strip() == ("error: approve weed-detector #1 wave canary: refused for user 'alice': "
                           "This input has been already given")
    assert [a["userId"] for a in build.approvers] == ["carol"]


def test_administer_may_approve_and_job_cancel_may_abort(capsys, monkeypatch, tmp_path):
    users = {"root": {"token": "33cc", "admin": True}, "ops": {"token": "44dd", "cancel": True}}
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeJenkins(users) as server:
        server.add_job("weed-detector", waves=WAVES)
        build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
        monkeypatch.setenv("JENKINS_URL", server.url)
        for user, token, verb in (("ops", "44dd", "approve"), ("root", "33cc", "approve"),
                                  ("ops", "44dd", "abort")):
            monkeypatch.setenv("JENKINS_USER", user)
            monkeypatch.setenv("JENKINS_TOKEN", token)
            code, _, err = run(capsys, "release", verb, "weed-detector", "1")
            if user == "ops" and verb == "approve":
                assert code != 0 and "You need to be release-managers to submit this." in err
            else:
                assert code == 0, err
        assert [a["userId"] for a in build.approvers] == ["root"]
        assert build.result == "ABORTED" and build.rejected_by == "ops"


def test_old_input_plugin_keeps_the_approver_through_the_proceed_form(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeJenkins(USERS, old_input_plugin=True) as server:
        server.add_job("weed-detector", waves=WAVES)
        build = server.start_build("weed-detector", {"MODEL": "weed-detector", "VERSION": "1.4.0"})
        monkeypatch.setenv("JENKINS_URL", server.url)
        monkeypatch.setenv("JENKINS_USER", "alice")
        monkeypatch.setenv("JENKINS_TOKEN", USERS["alice"]["token"])
        assert run(capsys, "release", "approve", "weed-detector", "1")[0] == 0
        assert build.approvers[0]["value"] == "alice"


def test_without_stage_view_the_hint_names_the_plugin(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeJenkins(USERS, stage_view=False) as server:
        server.add_job("weed-detector", waves=WAVES)
        server.start_build("weed-detector", {"VERSION": "1.4.0"})
        monkeypatch.setenv("JENKINS_URL", server.url)
        monkeypatch.setenv("JENKINS_USER", "alice")
        monkeypatch.setenv("JENKINS_TOKEN", USERS["alice"]["token"])
        for argv in (("pending",), ("approve", "weed-detector", "1"), ("status", "weed-detector")):
            code, _, err = run(capsys, "release", *argv)
            assert code != 0 and err.strip() == (
                "error: Jenkins at %s has no Pipeline Stage View REST API (wfapi): install the plugin "
                "'Pipeline: Stage View' (pipeline-stage-view), which pytools release reads" % server.url)
