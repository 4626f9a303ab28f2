import os

import pytest

from pytools_testlib import copy_example

from tracking_helpers import WANDB_ENV


@pytest.fixture(scope="session")
def scenario(tmp_path_factory):
    """The crop/weed example through the whole chain, published to a local registry, promoted to
    staging, rolled out to 3 simulated robots (real sshd), and every stage plus the rollout
    logged by a Tracker exactly as `pytools run` calls it (offline W&B run files)."""
    from pytools.core import config
    from pytools.tracking import wandb_tracker as tracking
    from pytools.cli import main
    from pytools.fleet import simulated_rollout
    from pytools.core.workdir import STAGES

    root = str(tmp_path_factory.mktemp("tracking"))
    saved = {k: os.environ.pop(k) for k in WANDB_ENV if k in os.environ}
    saved["PYTOOLS_REGISTRY"] = os.environ.get("PYTOOLS_REGISTRY")
    # wandb keeps settings, caches and staged files under $HOME otherwise
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        saved.setdefault(var, os.environ.get(var))
        os.environ[var] = os.path.join(root, var.lower())
    try:
        folder = copy_example("crop_weed", root)
        cfg_path = os.path.join(folder, "model.yaml")
        workdir = os.path.join(root, "work")
        registry = os.path.join(root, "registry")
        os.environ["PYTOOLS_REGISTRY"] = registry      # `pytools run` publishes there (to dev)
        assert main(["run", cfg_path, "--workdir", workdir, "--no-rollout"]) == 0
        cfg = config.load(cfg_path)
        package = os.path.join(workdir, "package")
        from pytools.core.package import read_manifest
        version = read_manifest(package)["version"]
        assert main(["promote", cfg["name"], version, "--to", "staging", "--registry", registry]) == 0
        rollout = simulated_rollout(package, workdir, count=3, services=False)
        assert rollout["state"] == "completed", rollout

        tracker = tracking.Tracker(cfg, workdir)
        for stage in (s.name for s in STAGES if s.tracked):  # what `pytools run` logs
            state = tracking.read_json(os.path.join(workdir, "state", stage + ".json"))
            if state is None:  # the rollout below is this fixture's own
                continue
            inputs, outputs = tracking.stage_io(workdir, stage)
            tracker.log_stage(stage, state["status"], state["summary"], inputs, outputs)
        tracker.log_deployment(cfg["name"], version, ["robot-001", "robot-002", "robot-003"], rollout["record"])
        assert tracker.failed is None, tracker.failed
        data = {"root": root, "config": cfg_path, "cfg": cfg, "workdir": workdir, "registry": registry,
                "version": version, "rollout": rollout, "tracker": tracker, "runs": tracker.runs()}
    finally:  # leave the environment as it was for every test after this one
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return data


@pytest.fixture
def clean_wandb_env(monkeypatch, tmp_path):
    for var in WANDB_ENV:
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path
