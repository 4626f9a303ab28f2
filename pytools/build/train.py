"""`pytools train`: a seeded, reproducible training loop on a built-in synthetic dataset.

It exists so the examples (and tests) have a real checkpoint without downloading one. The loss for
each output follows its `kind`: cross-entropy for a classifier, BCE-with-logits for a mask.
"""
import os
import time

from pytools.core.console import Progress
from pytools.core.errors import ConfigError


def normalise(images, input_spec):
    import torch

    pre = input_spec.get("preprocessing") or {}
    if "mean" in pre:
        mean = torch.tensor(pre["mean"], dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(pre.get("std", [1.0] * len(pre["mean"])), dtype=images.dtype).view(1, -1, 1, 1)
        images = (images - mean) / std
    return images


def train(config, build_model, out_path):
    """Seed, build the model (so its initial weights are seeded too), train, save atomically."""
    import torch
    from torch.nn import functional as F

    from pytools.build.datasets import field_images

    spec = config["train"]
    dataset = spec["dataset"]
    if len(config["inputs"]) != 1:
        raise ConfigError("%s: train.dataset: the built-in datasets feed exactly one image input" % config.path)
    size = config["inputs"][0]["shape"][-1]
    torch.manual_seed(spec["seed"])
    model = build_model()
    images, targets = field_images(dataset, spec["samples"], spec["seed"], size=size)
    images = normalise(images, config["inputs"][0])
    losses = {"classifier": lambda out: F.cross_entropy(out, batch_targets["label"]),
              "mask": lambda out: F.binary_cross_entropy_with_logits(out, batch_targets["mask"])}
    kinds = [o.get("kind", "tensor") for o in config["outputs"]]
    if not any(k in losses for k in kinds):
        raise ConfigError("%s: outputs: training needs a 'classifier' or 'mask' output" % config.path)
    optimiser = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    started = time.monotonic()
    model.train()
    history = []
    progress = Progress("train", spec["epochs"] * len(images))
    for epoch in range(spec["epochs"]):
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(spec["seed"] + epoch))
        total = 0.0
        for start in range(0, len(images), spec["batch_size"]):
            idx = order[start:start + spec["batch_size"]]
            batch_targets = {k: v[idx] for k, v in targets.items()}
            outs = model(images[idx])
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            loss = sum(losses[k](o) for k, o in zip(kinds, outs) if k in losses)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
            progress.update(len(idx))
        history.append(round(total / len(images), 5))
    progress.close()
    model.eval()
    accuracy = _holdout_accuracy(model, config, dataset, size, kinds)
    tmp = out_path + ".partial"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out_path)
    return {"dataset": dataset, "epochs": spec["epochs"], "samples": spec["samples"],
            "loss_per_epoch": history, "holdout_accuracy": accuracy,
            "seconds": round(time.monotonic() - started, 2)}


def _holdout_accuracy(model, config, dataset, size, kinds):
    import torch

    from pytools.build.datasets import field_images

    if "classifier" not in kinds:
        return None
    images, targets = field_images(dataset, 256, config["train"]["seed"] + 10_000, size=size)
    with torch.no_grad():
        outs = model(normalise(images, config["inputs"][0]))
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    logits = outs[kinds.index("classifier")]
    return round(float((logits.argmax(1) == targets["label"]).float().mean()), 4)
