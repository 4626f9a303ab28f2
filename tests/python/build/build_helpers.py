"""Helpers for the build-chain tests: write and edit model configs."""
import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def edit_config(path, change):
    """Load a YAML config, let `change(dict)` edit it, write it back."""
    with open(path) as f:
        data = yaml.safe_load(f)
    change(data)
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def write_config(folder, **overrides):
    """A minimal valid config for a model in bad_models.py, with top-level keys overridden."""
    data = {
        "name": "test-model", "version": "0.1.0",
        "model": {"import": "bad_models:TinyNet"},
        "train": {"dataset": "crop-weed", "epochs": 1, "samples": 64},
        "dims": {"batch": {"min": 1, "opt": 4, "max": 8}},
        "inputs": [{"name": "image", "shape": ["batch", 3, 64, 64]}],
        "outputs": [{"name": "logits", "kind": "classifier"}],
        "parity": {"inputs": {"samples": 8}},
        "bench": {"batch_sizes": [1], "iterations": 3, "warmup": 1},
    }
    data.update(overrides)
    path = os.path.join(str(folder), "model.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path
