"""Config validation: every error names the file, the key path, what was found and what was expected."""
import os

import pytest

from build_helpers import write_config
from pytools_testlib import EXAMPLES


@pytest.mark.parametrize("example", ["crop_weed", "field_segmentation"])
def test_examples_are_valid(cli, example):
    path = os.path.join(EXAMPLES, example, "model.yaml")
    res = cli("config", "check", path, "--json")
    assert res.code == 0, res.err
    cfg = res.json["config"]
    assert cfg["export"]["opset"] == 18  # embedded default filled in
    assert cfg["parity"]["tolerances"]["fp16"]["statistic"] == "p99"


def check_fails(cli, path, *expected):
    res = cli("config", "check", path)
    assert res.code == 2
    assert res.out == ""
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    for text in (path,) + expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_malformed_yaml_names_line(cli, tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("name: x\nversion: 1.0.0\nmodel: {import: a:B\n")
    check_fails(cli, str(path), "malformed YAML", "line")


def test_typo_key_is_an_error(cli, model_dir):
    path = write_config(model_dir, parity={"tolerances": {"fp32": {"atoll": 1e-3}}})
    check_fails(cli, path, "parity.tolerances.fp32.atoll: unknown key", "expected one of: atol, rtol, statistic")


def test_missing_key(cli, model_dir):
    path = write_config(model_dir)
    text = open(path).read().replace("version: 0.1.0\n", "")
    open(path, "w").write(text)
    check_fails(cli, path, "version: missing required key")


def test_wrong_type_says_found_and_expected(cli, model_dir):
    path = write_config(model_dir, bench={"iterations": "many"})
    check_fails(cli, path, "bench.iterations", "found string 'many'", "expected integer")


def test_wrong_enum_lists_choices(cli, model_dir):
    path = write_config(model_dir, export={"exporter": "tf2onnx"})
    check_fails(cli, path, "export.exporter", "found string 'tf2onnx'", "torchscript, dynamo")


def test_list_index_in_key_path(cli, model_dir):
    path = write_config(model_dir, inputs=[{"name": "image", "shape": ["batch", 3, 0, 64]}])
    check_fails(cli, path, "inputs[0].shape[2]", "found integer 0")


def test_undefined_dynamic_dim(cli, model_dir):
    path = write_config(model_dir, inputs=[{"name": "image", "shape": ["n", 3, 64, 64]}])
    check_fails(cli, path, "inputs[0].shape", "'n' is not defined under 'dims'")


def test_import_path_that_does_not_exist(cli, model_dir):
    path = write_config(model_dir, model={"import": "no_such_module:Net"})
    check_fails(cli, path, "model.import", "module 'no_such_module' not found")


def test_class_that_does_not_exist(cli, model_dir):
    path = write_config(model_dir, model={"import": "bad_models:NoSuchNet"})
    check_fails(cli, path, "model.import", "has no 'NoSuchNet'")


def test_constructor_rejects_args(cli, model_dir):
    path = write_config(model_dir, model={"import": "bad_models:TinyNet", "args": {"depth": 3}})
    check_fails(cli, path, "model.args", "TinyNet rejected its arguments")


def test_missing_file(cli, tmp_path):
    res = cli("config", "check", tmp_path / "nope.yaml")
    assert res.code == 2 and "cannot read config" in res.error_line
