"""The stage table and the backend name table name modules that exist and agree with them."""
import importlib

from pytools.core.backends import COMPARED, REFERENCE, RUNNERS
from pytools.core.config import SCHEMA
from pytools.core.workdir import STAGE_NAMES, STAGES


def test_every_stage_module_declares_the_stage_of_its_entry():
    from pytools.build.stage import Stage

    for spec in STAGES:
        stage = importlib.import_module(spec.module).STAGE
        assert isinstance(stage, Stage) and stage.name == spec.name
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES)


def test_stage_commands_are_unique():
    from pytools.build.stages import all_stages

    paths = [path for stage in all_stages() for path, _, _ in stage.commands]
    assert len(paths) == len(set(paths))


def test_every_runner_name_imports_and_the_config_enums_come_from_the_table():
    for name, target in RUNNERS.items():
        module, cls = target.split(":")
        assert getattr(importlib.import_module(module), cls).name == name
    parity = SCHEMA["properties"]["parity"]["properties"]["backends"]["items"]["enum"]
    bench = SCHEMA["properties"]["bench"]["properties"]["backends"]["items"]["enum"]
    assert parity == COMPARED and REFERENCE not in parity
    assert bench == list(RUNNERS)
