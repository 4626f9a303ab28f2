"""Precision follows the model; integer inputs need a range; an out-of-range value is named."""
import json
import os

import numpy as np
import pytest
import torch

from build_helpers import edit_config
from evidence_helpers import model_config
from pytools.build.golden import random_feed
from pytools.core import config as cfg

TOKENS = [{"name": "tokens", "dtype": "int64", "shape": ["batch", 6], "range": [0, 10]},
          {"name": "mask", "dtype": "bool", "shape": ["batch", 6]}]


def test_fp16_model_is_checked_at_fp16(cli, tmp_path):
    path = model_config(tmp_path, "HalfNet", [{"name": "x", "dtype": "float16", "shape": ["batch", 8]}],
                        [{"name": "y", "dtype": "float16"}])
    work = str(tmp_path / "work")
    res = cli("run", path, "--workdir", work, "--no-publish", "--no-rollout")
    assert res.code == 0, res.err
    report = json.load(open(os.path.join(work, "reports", "parity.json")))
    assert report["precision"]["reference"] == "fp16"
    ort = report["backends"][0]
    assert ort["precision"] == "fp16"
    assert ort["outputs"][0]["tolerance"] == cfg.DEFAULTS["parity"]["tolerances"]["fp16"]
    manifest = json.load(open(os.path.join(work, "package", "manifest.json")))
    assert manifest["runtime"]["precision"] == "fp16" and manifest["evidence"]["parity"]["precision"] == "fp16"


def test_fp32_inputs_to_an_fp16_model_are_a_config_error(tmp_path):
    import range_models
    from pytools.build import parity
    from pytools.core.errors import ConfigError

    c = cfg.load(model_config(tmp_path, "HalfNet", [{"name": "x", "shape": ["batch", 8]}], [{"name": "y"}]))
    with pytest.raises(ConfigError) as err:
        parity.model_precision(c, range_models.HalfNet())
    assert "inputs[0].dtype: found float32, but the model's parameters are float16: set dtype: float16" in str(err.value)
    assert parity.model_precision(c, range_models.SeqNet()) == "fp32"
    with pytest.raises(ConfigError, match="parameters of dtype bfloat16"):
        parity.model_precision(c, range_models.SeqNet().to(torch.bfloat16))


def test_integer_input_without_range_is_a_config_error(cli, tmp_path):
    path = model_config(tmp_path, "TokenNet", [dict(TOKENS[0], range=None), TOKENS[1]], [{"name": "logits"}])
    edit_config(path, lambda c: c["inputs"][0].pop("range"))
    res = cli("config", "check", path)
    assert res.code == 2
    assert "inputs[0].range: missing: integer input 'tokens' needs the range [low, high)" in res.error_line
    for bad, text in (([5, 5], "expected low < high"), ([0, 2.5], "expected whole numbers"),
                      ([-1, 300], "within uint8")):
        edit_config(path, lambda c: c["inputs"][0].update(range=bad, dtype="uint8" if bad[1] == 300 else "int64"))
        res = cli("config", "check", path)
        assert res.code == 2 and "inputs[0].range: found" in res.error_line and text in res.error_line, res.err


def test_random_integers_stay_in_the_half_open_range_and_masks_are_0_1(tmp_path):
    c = cfg.load(model_config(tmp_path, "TokenNet", TOKENS, [{"name": "logits"}]))
    feed = random_feed(c, 64, 0)
    assert feed["tokens"].min() >= 0 and feed["tokens"].max() == 9  # 10 is never drawn
    assert feed["mask"].dtype == np.bool_ and set(np.unique(feed["mask"])) == {False, True}


def test_token_model_passes_and_out_of_range_ids_are_blamed(cli, tmp_path):
    path = model_config(tmp_path, "TokenNet", TOKENS, [{"name": "logits"}])
    work = str(tmp_path / "work")
    assert cli("run", path, "--workdir", work, "--no-publish", "--no-rollout").code == 0
    # Ids beyond the 10-word vocabulary: the reference rejects them, and the error names the values.
    edit_config(path, lambda c: c["inputs"][0].update(range=[0, 50]))
    res = cli("parity", path, "--workdir", work)
    assert res.code == 3, res.err
    line = res.error_line
    assert "PyTorch eager (the reference) fails on golden inputs of shape group" in line
    assert "IndexError" in line and "tokens int64" in line and "(inputs[0].range [0, 50))" in line
