"""Stage `checkpoint`: fetch the configured weights (path or https URL) or train them."""
import os

from pytools.build.stage import Stage, opt
from pytools.core.errors import PytoolsError
from pytools.core.workdir import CHECKPOINT_FILE


def _has_source(cfg):
    return "path" in cfg["checkpoint"] or "url" in cfg["checkpoint"]


class CheckpointStage(Stage):
    name = "checkpoint"
    commands = (
        (("checkpoint", "fetch"), "copy or download checkpoint.path / checkpoint.url into the work "
         "directory, verifying checkpoint.sha256; written atomically", {"mode": "fetch"}),
        (("train",), "train the model on the built-in synthetic dataset (seeded, reproducible)",
         {"mode": "train"}),
    )

    def mode(self, cfg, options):
        """`fetch` (checkpoint.path / checkpoint.url) or `train` (train.dataset)."""
        mode = opt(options, "mode") or ("fetch" if _has_source(cfg) else "train")
        if mode == "fetch" and not _has_source(cfg):
            raise PytoolsError("%s: checkpoint: nothing to fetch (no checkpoint.path or checkpoint.url); "
                               "use `pytools train`" % cfg.path)
        if mode == "train" and not cfg["train"].get("dataset"):
            raise PytoolsError("%s: train.dataset: not set, so there is nothing to train on" % cfg.path)
        return mode

    def inputs(self, pipe, options):
        cfg = pipe.config
        mode = self.mode(cfg, options)
        inputs = {"mode": mode, "checkpoint": cfg["checkpoint"]}
        if mode == "fetch" and "path" in cfg["checkpoint"]:
            source = cfg.resolve(cfg["checkpoint"]["path"])
            st = os.stat(source) if os.path.exists(source) else None
            inputs["source"] = [st.st_size, st.st_mtime_ns] if st else None
        if mode == "train":
            inputs.update(pipe.section("train", "model", "inputs", "outputs"),
                          model_source=pipe.model_source_sha())
        return inputs

    def run(self, pipe, options, inputs):
        from pytools.build import checkpoint, model, train

        cfg = pipe.config
        dest = pipe.wd.path(CHECKPOINT_FILE)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if inputs["mode"] == "fetch":
            digest = checkpoint.fetch(cfg, dest)
            summary = {"source": cfg["checkpoint"].get("path") or cfg["checkpoint"]["url"],
                       "sha256": digest, "verified": "sha256" in cfg["checkpoint"]}
        else:
            summary = train.train(cfg, lambda: model.build(cfg), dest)
        return "ran", summary, [CHECKPOINT_FILE]

    def describe(self, s):
        text = "sha256 %s" % s.get("sha256", "")[:12] if "sha256" in s else "trained %s epochs" % s.get("epochs")
        if s.get("holdout_accuracy") is not None:
            text += ", holdout accuracy %.3f" % s["holdout_accuracy"]
        return text


STAGE = CheckpointStage()
