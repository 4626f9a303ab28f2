"""A tracking failure never fails a build: one warning line on stderr, and the build goes on."""
import os

import pytest

from pytools.tracking.wandb_tracker import SETTINGS_SCHEMA, Tracker, artifact_item

from tracking_helpers import RunFile, entries, metadata, run_dir

pytestmark = pytest.mark.timeout(300)

CONFIG = {"name": "tiny-model", "version": "0.1.0"}


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(4096))
    return str(path)


def warnings_in(err):
    return [line for line in err.splitlines() if line.startswith("warning: tracking:")]


def test_unwritable_wandb_dir_warns_once_and_goes_on(clean_wandb_env, monkeypatch, model_file, capsys):
    blocker = clean_wandb_env / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    monkeypatch.setenv("WANDB_DIR", str(blocker / "wandb"))
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"))
    item = artifact_item("onnx", model_file, "onnx")
    assert tracker.log_stage("export", "ran", {"nodes": 3}, [], [item]) is None
    assert tracker.log_stage("parity", "ran", {"passed": True}, [item], []) is None
    err = capsys.readouterr().err
    lines = warnings_in(err)
    assert len(lines) == 1, err
    assert "not-a-dir" in lines[0] and "the build goes on without tracking" in lines[0]
    assert tracker.runs() == []
    assert "Traceback" not in err


@pytest.mark.parametrize("settings,expected", [
    ({"mode": "sometimes"}, "tracking.mode"),
    ({"project": ""}, "tracking.project"),
    ({"tags": "release"}, "tracking.tags"),
    ({"colour": "blue"}, "colour"),
])
def test_broken_settings_value_warns_and_goes_on(clean_wandb_env, model_file, capsys, settings, expected):
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"), settings=settings)
    tracker.log_stage("export", "ran", {}, [], [artifact_item("onnx", model_file, "onnx")])
    lines = warnings_in(capsys.readouterr().err)
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (clean_wandb_env / "work" / "tracking").exists()


def test_bad_wandb_mode_environment(clean_wandb_env, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "bogus")
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"))
    assert not tracker.enabled
    lines = warnings_in(capsys.readouterr().err)
    assert len(lines) == 1 and "WANDB_MODE='bogus'" in lines[0]


def test_missing_input_file_at_runtime_warns(clean_wandb_env, capsys):
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"))
    gone = {"name": "engine", "path": str(clean_wandb_env / "gone.plan"), "sha256": "0" * 64, "type": "engine"}
    tracker.log_stage("parity", "ran", {"passed": True}, [gone], [])
    lines = warnings_in(capsys.readouterr().err)
    assert len(lines) == 1 and "gone.plan" in lines[0], lines


def test_disabled_mode_writes_nothing(clean_wandb_env, model_file, capsys):
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"), settings={"mode": "disabled"})
    tracker.log_stage("export", "ran", {}, [], [artifact_item("onnx", model_file, "onnx")])
    assert tracker.runs() == []
    assert not (clean_wandb_env / "work" / "tracking").exists()
    assert warnings_in(capsys.readouterr().err) == []


def test_online_without_key_logs_offline(clean_wandb_env, monkeypatch, model_file, capsys):
    monkeypatch.setenv("WANDB_MODE", "online")
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"), settings={"project": "field-models"})
    tracker.log_stage("export", "ran", {"nodes": 3}, [], [artifact_item("onnx", model_file, "onnx")])
    err = capsys.readouterr().err
    assert "online mode needs WANDB_API_KEY; logging offline instead" in err
    [run] = tracker.runs()
    record = RunFile(run_dir(run["url"]))
    assert record.run["project"] == "field-models"
    assert record.run["telemetry"]["feature"]["offline"] is True


def test_settings_and_environment(clean_wandb_env, monkeypatch, model_file):
    """WANDB_DIR and WANDB_RUN_GROUP win over the config section; tags and group are recorded."""
    monkeypatch.setenv("WANDB_DIR", str(clean_wandb_env / "elsewhere"))
    monkeypatch.setenv("WANDB_RUN_GROUP", "mr-42")
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"),
                      settings={"mode": "offline", "group": "ignored", "tags": ["mr"], "dir": "/nonexistent"})
    tracker.log_stage("export", "ran", {}, [], [artifact_item("onnx", model_file, "onnx")])
    [run] = tracker.runs()
    assert run_dir(run["url"]).startswith(str(clean_wandb_env / "elsewhere" / "wandb"))
    record = RunFile(run_dir(run["url"]))
    assert record.run["run_group"] == "mr-42"
    assert record.run["tags"] == ["mr"]


def test_jenkins_build_shares_one_group(clean_wandb_env, monkeypatch, model_file):
    """Stages of one Jenkins build run on different agents (processes): same group."""
    monkeypatch.setenv("JOB_NAME", "models/crop weed")
    monkeypatch.setenv("BUILD_NUMBER", "17")
    groups = set()
    for stage in ("export", "parity"):
        tracker = Tracker(CONFIG, str(clean_wandb_env / ("agent-" + stage)))
        tracker.log_stage(stage, "ran", {}, [], [artifact_item("onnx", model_file, "onnx")])
        groups.add(RunFile(run_dir(tracker.runs()[0]["url"])).run["run_group"])
    assert groups == {"tiny-model-models-crop-weed-17"}


def test_registry_url_reference(clean_wandb_env, model_file):
    """A package known to the registry is referenced by its registry URL, not re-uploaded."""
    from pytools.core.hashing import sha256_file

    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"))
    url = "https://artifactory.example.com/artifactory/models-dev/tiny-model/0.1.0/onnxruntime/model.onnx"
    tracker.log_stage("publish", "ran", {}, [], [artifact_item("onnx", model_file, "onnx", url=url)])
    [run] = tracker.runs()
    [art] = RunFile(run_dir(run["url"])).artifacts
    entry = entries(art)["model.onnx"]
    assert entry["ref"] == url
    assert metadata(art)["sha256"] == sha256_file(model_file)


def test_schema_is_json_schema():
    import jsonschema

    jsonschema.Draft7Validator.check_schema(SETTINGS_SCHEMA)
    assert SETTINGS_SCHEMA["properties"]["mode"]["enum"] == ["offline", "online", "disabled"]


def test_tracking_prints_nothing_when_it_works(clean_wandb_env, model_file, capfd):
    """`pytools run --json` owns stdout: W&B's banners must not appear on it (or on stderr)."""
    tracker = Tracker(CONFIG, str(clean_wandb_env / "work"))
    item = artifact_item("onnx", model_file, "onnx")
    tracker.log_stage("export", "ran", {"nodes": 3}, [], [item])
    tracker.log_stage("parity", "ran", {"passed": True}, [item], [])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert [r["stage"] for r in tracker.runs()] == ["export", "parity"]
