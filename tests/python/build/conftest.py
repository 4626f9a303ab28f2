import os
import shutil

import pytest

from pytools_testlib import copy_example

from build_helpers import HERE


@pytest.fixture(scope="session")
def crop_weed_done(tmp_path_factory):
    """The crop/weed example run once through the whole chain; tests copy it before changing it."""
    from pytools.core import config
    from pytools.cli import main

    root = tmp_path_factory.mktemp("crop_weed")
    folder = copy_example("crop_weed", root)
    cfg_path = os.path.join(folder, "model.yaml")
    workdir = os.path.join(str(root), "work")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTOOLS_REGISTRY", os.path.join(str(root), "registry"))
        mp.setenv("WANDB_MODE", "disabled")
        assert main(["run", cfg_path, "--workdir", workdir]) == 0
    return {"config": cfg_path, "workdir": workdir, "folder": folder, "cfg": config.load(cfg_path)}


@pytest.fixture
def crop_weed(crop_weed_done, tmp_path):
    """A private copy of the finished crop/weed example: its folder, config and work directory."""
    folder = os.path.join(str(tmp_path), "crop_weed")
    shutil.copytree(crop_weed_done["folder"], folder)
    workdir = os.path.join(str(tmp_path), "work")
    shutil.copytree(crop_weed_done["workdir"], workdir, symlinks=True, copy_function=shutil.copy2)
    return {"config": os.path.join(folder, "model.yaml"), "workdir": workdir, "folder": folder}


@pytest.fixture
def model_dir(tmp_path):
    """A folder holding tests' own model classes (bad_models.py) for configs written there."""
    shutil.copy(os.path.join(HERE, "bad_models.py"), str(tmp_path))
    return tmp_path
