"""Configs for the models in range_models.py, with a checkpoint saved from a seeded instance."""
import os
import shutil

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def model_config(folder, cls, inputs, outputs, dims=None, **overrides):
    """Write range_models.py, `<cls>.pt` (seeded weights) and model.yaml into `folder`; return the
    config path. Dynamic dimensions default to a batch axis 1..4 (opt 2)."""
    import torch

    import range_models

    folder = str(folder)
    shutil.copy(os.path.join(HERE, "range_models.py"), folder)
    torch.manual_seed(0)
    torch.save(getattr(range_models, cls)().state_dict(), os.path.join(folder, cls + ".pt"))
    data = {"name": "evidence-model", "version": "0.1.0", "model": {"import": "range_models:" + cls},
            "checkpoint": {"path": cls + ".pt"},
            "dims": dims or {"batch": {"min": 1, "opt": 2, "max": 4}},
            "inputs": inputs, "outputs": outputs,
            "parity": {"inputs": {"samples": 4}, "backends": ["onnxruntime"]},
            "bench": {"batch_sizes": [1], "iterations": 2, "warmup": 0, "backends": ["onnxruntime"]}}
    data.update(overrides)
    path = os.path.join(folder, "model.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


SEQ_DIMS = {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 8, "max": 16}}
SEQ_INPUTS = [{"name": "x", "shape": ["batch", "seq", 4]}]
SEQ_OUTPUTS = [{"name": "y"}]


def seq_config(folder, cls="SeqNet", **overrides):
    return model_config(folder, cls, SEQ_INPUTS, SEQ_OUTPUTS, SEQ_DIMS, **overrides)
