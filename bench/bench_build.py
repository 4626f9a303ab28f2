"""Foundation benchmarks (issue 2). Each runs its baseline in the same run and prints a ratio.

  python bench/bench_build.py [export-parity] [rerun] [parity-throughput] [parity-memory]

1. export + parity of ResNet-18 at 224x224 through pytools vs a minimal script calling the same
   libraries for the same work (torch.export, the dynamo ONNX exporter at opset 18, full checker,
   onnxsim, TorchScript trace; the ExportedProgram, TorchScript and both ONNX models compared with
   eager on the same inputs at every shape group: batch min/opt/max and the seeded point between):
   ratio <= 1.2.
2. a re-run of `pytools run` with nothing changed vs the cold run (separate processes): <= 5%.
3. parity over 512 samples at batch 32, ONNX Runtime backend (inference + streamed statistics) vs
   a bare onnxruntime loop over the same batches: throughput ratio >= 0.85.
4. parity's peak traced memory at 8x the samples vs 1x: ratio ~1 (statistics are streamed).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def resnet_config(folder, samples, batch, backends, source="random"):
    """ResNet-18 at 224x224; `batch` is (min, opt, max) of the batch axis, or one size."""
    import torch

    sys.path.insert(0, HERE)
    from resnet18 import ResNet18

    torch.manual_seed(0)
    torch.save(ResNet18().eval().state_dict(), os.path.join(folder, "resnet18.pt"))
    shutil.copy(os.path.join(HERE, "resnet18.py"), folder)
    data = {"name": "resnet18-bench", "version": "1.0.0", "model": {"import": "resnet18:ResNet18"},
            "checkpoint": {"path": "resnet18.pt"},
            "dims": {"batch": dict(zip(("min", "opt", "max"), batch if isinstance(batch, tuple) else (batch,) * 3))},
            "inputs": [{"name": "image", "shape": ["batch", 3, 224, 224]}],
            "outputs": [{"name": "logits", "kind": "classifier"}],
            "parity": {"inputs": {"source": source, "samples": samples},
                       "backends": backends,
                       "tolerances": {"fp32": {"atol": 1e-3, "rtol": 1e-3, "statistic": "max"}}}}
    path = os.path.join(folder, "model.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    from pytools.core import config

    return config.load(path)


def minimal_export_parity(folder, cfg, batch_sizes):
    """What a hand-written script does: the same libraries, the same work, no bookkeeping."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import onnxsim
    import torch

    from resnet18 import ResNet18

    out = os.path.join(folder, "minimal")
    os.makedirs(out, exist_ok=True)
    model = ResNet18().eval()
    model.load_state_dict(torch.load(os.path.join(folder, "resnet18.pt"), weights_only=True))
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (8, 3, 224, 224)).astype(np.float32))
    batch = torch.export.Dim("batch", min=1, max=32)
    with torch.no_grad():
        program = torch.export.export(model, (), kwargs={"image": x}, dynamic_shapes={"image": {0: batch}})
        torch.export.save(program, os.path.join(out, "model.pt2"))
        torch.onnx.export(program, (), os.path.join(out, "model.onnx"), kwargs={"image": x},
                          output_names=["logits"], opset_version=18, dynamo=True)
        torch.jit.trace(model, (x,), check_trace=False).save(os.path.join(out, "model.ts"))
    onnx.checker.check_model(os.path.join(out, "model.onnx"), full_check=True)
    simplified, ok = onnxsim.simplify(onnx.load(os.path.join(out, "model.onnx")), check_n=3,
                                      test_input_shapes={"image": [8, 3, 224, 224]})
    assert ok
    onnx.save(simplified, os.path.join(out, "model.sim.onnx"))
    loaded = torch.export.load(os.path.join(out, "model.pt2")).module()
    ts = torch.jit.load(os.path.join(out, "model.ts"))
    sessions = [ort.InferenceSession(os.path.join(out, n), providers=["CPUExecutionProvider"])
                for n in ("model.onnx", "model.sim.onnx")]
    samples = cfg["parity"]["inputs"]["samples"]
    worst = 0.0
    for size in batch_sizes:  # the same shape groups parity runs: min, opt, max, a point between
        for offset in range(0, samples, size):
            batch = np.random.default_rng([0, offset]).uniform(-1, 1, (size, 3, 224, 224)).astype(np.float32)
            with torch.inference_mode():
                ref = model(image=torch.from_numpy(batch)).numpy()
                outs = [loaded(image=torch.from_numpy(batch)).numpy(), ts(torch.from_numpy(batch)).numpy()]
            outs += [s.run(None, {"image": batch})[0] for s in sessions]
            worst = max([worst] + [float(np.abs(o - ref).max()) for o in outs])
    return worst


def pytools_export_parity(cfg, workdir):
    from pytools.build.pipeline import Pipeline

    pipe = Pipeline(cfg, workdir, force=True)  # the checkpoint is already in place (not timed)
    pipe.run("export")
    pipe.run("parity")


def bench_export_parity():
    """The same work as the minimal script, so W&B tracking is off here; a second line shows what
    offline tracking (the default) adds on top."""
    os.environ["WANDB_MODE"] = "disabled"
    try:
        _bench_export_parity("")
    finally:
        os.environ["WANDB_MODE"] = "offline"
    _bench_export_parity(" (with offline W&B tracking, informational)")
    os.environ.pop("WANDB_MODE")


def _bench_export_parity(label):
    with tempfile.TemporaryDirectory() as folder:
        cfg = resnet_config(folder, samples=16, batch=(1, 8, 16),
                            backends=["exported-program", "torchscript", "onnxruntime", "onnxruntime-simplified"])
        from pytools.build.golden import random_groups
        from pytools.build.pipeline import Pipeline

        sizes = [g.batch for g in random_groups(cfg, 16)]

        Pipeline(cfg, os.path.join(folder, "work")).run("checkpoint")  # fetching is not part of the comparison
        base, ours = [], []
        for _ in range(2):  # alternate to spread machine noise over both
            t = time.perf_counter()
            minimal_export_parity(folder, cfg, sizes)
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            pytools_export_parity(cfg, os.path.join(folder, "work"))
            ours.append(time.perf_counter() - t)
        ratio = min(ours) / min(base)
        verdict = ("PASS" if ratio <= 1.2 else "FAIL") if not label else "-"
        print("export+parity ResNet-18 224x224 at batch %s%s: pytools %.2fs, minimal script %.2fs, ratio %.3f (<= 1.2 required) %s"
              % ("/".join(map(str, sizes)), label, min(ours), min(base), ratio, verdict))


def bench_rerun():
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "crop_weed")
        shutil.copytree(os.path.join(REPO, "examples", "crop_weed"), folder)
        cmd = [sys.executable, "-m", "pytools", "run", os.path.join(folder, "model.yaml"), "--json"]

        def timed():
            t = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - t

        cold = timed()
        warm = min(timed() for _ in range(3))
        ratio = warm / cold
        print("pytools run, re-run with nothing changed: %.2fs vs cold %.2fs, ratio %.3f (<= 0.05 required) %s"
              % (warm, cold, ratio, "PASS" if ratio <= 0.05 else "FAIL"))


def bench_parity_throughput():
    import numpy as np
    import onnxruntime as ort

    from pytools.build import parity
    from pytools.build.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as folder:
        cfg = resnet_config(folder, samples=512, batch=32, backends=["onnxruntime"])
        pipe = Pipeline(cfg, os.path.join(folder, "work"))
        pipe.run("checkpoint")
        pipe.run("export")
        session = ort.InferenceSession(pipe.wd.path("export", "model.onnx"), providers=["CPUExecutionProvider"])
        batches = [np.random.default_rng([0, off]).uniform(-1, 1, (32, 3, 224, 224)).astype(np.float32)
                   for off in range(0, 512, 32)]
        t = time.perf_counter()
        for batch in batches:
            session.run(None, {"image": batch})
        bare = 512 / (time.perf_counter() - t)
        report = parity.run(cfg, pipe.wd, pipe.model())
        ours = report["backends"][0]["samples_per_second"]
        ratio = ours / bare
        print("parity 512 samples @ batch 32, onnxruntime backend: %.1f samples/s vs bare onnxruntime loop %.1f, "
              "ratio %.3f (>= 0.85 required) %s" % (ours, bare, ratio, "PASS" if ratio >= 0.85 else "FAIL"))


def bench_parity_memory():
    from pytools.core import config
    from pytools.build import parity
    from pytools.build.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "field_segmentation")
        shutil.copytree(os.path.join(REPO, "examples", "field_segmentation"), folder)
        path = os.path.join(folder, "model.yaml")
        pipe = Pipeline(config.load(path), os.path.join(tmp, "work"))
        pipe.run("checkpoint")
        pipe.run("export")
        peaks = {}
        for samples in (128, 1024):
            cfg = config.load(path)
            cfg["parity"]["inputs"]["samples"] = samples
            cfg["dims"]["batch"] = {"min": 16, "opt": 16, "max": 16}  # one shape group: memory vs samples
            cfg["parity"]["backends"] = ["onnxruntime"]
            tracemalloc.start()
            parity.run(cfg, pipe.wd, pipe.model())
            peaks[samples] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        ratio = peaks[1024] / peaks[128]
        print("parity peak traced memory (two outputs incl. a 64x64 mask): 1024 samples %.1f MB vs 128 samples "
              "%.1f MB, ratio %.2f (flat: <= 1.2) %s" % (peaks[1024] / 1e6, peaks[128] / 1e6, ratio,
                                                        "PASS" if ratio <= 1.2 else "FAIL"))


BENCHES = {"export-parity": bench_export_parity, "rerun": bench_rerun,
           "parity-throughput": bench_parity_throughput, "parity-memory": bench_parity_memory}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
