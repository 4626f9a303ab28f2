"""Engine build: ONNX -> TensorRT plan through Polygraphy's TensorRT loaders (GPU agents only).

fp32 / fp16 / int8 (calibration cache made from the golden inputs), a timing cache reused across
builds, one optimisation profile from the config's dynamic dims. Records TensorRT and CUDA versions,
the GPU's name and compute capability, and the L4T release on a Jetson. Where `tensorrt` does not
import, the stage is skipped with that reason and the chain continues with ONNX Runtime.
Keep this module Python 3.8 compatible: it runs on the Jetson agent.
"""
import ctypes
import os
import re

from pytools.core import config as cfg
from pytools.core.errors import PytoolsError
from pytools.core.workdir import CALIB_FILE, ONNX_FILE, PLAN_FILE, SIM_FILE, TIMING_FILE

SKIP_REASON = "TensorRT is not available on this machine"


def tensorrt_version():
    """The TensorRT version, or None where it does not import."""
    try:
        import tensorrt
    except Exception:
        return None
    return tensorrt.__version__


def l4t_release(path="/etc/nv_tegra_release"):
    """'35.3.1' from '# R35 (release), REVISION: 3.1, ...' on a Jetson; None elsewhere."""
    try:
        with open(path) as f:
            m = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", f.read())
    except OSError:
        return None
    return "%s.%s" % (m.group(1), m.group(2)) if m else None


def cuda_facts():
    """CUDA runtime version, GPU name and compute capability via the CUDA runtime (ctypes)."""
    from polygraphy import cuda

    lib = cuda.wrapper().handle
    version = ctypes.c_int()
    lib.cudaRuntimeGetVersion(ctypes.byref(version))
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, 0)  # cudaDevAttrComputeCapabilityMajor
    lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, 0)  # cudaDevAttrComputeCapabilityMinor
    props = ctypes.create_string_buffer(4096)  # cudaDeviceProp starts with char name[256]
    lib.cudaGetDeviceProperties(props, 0)
    return {"cuda_version": "%d.%d" % (version.value // 1000, (version.value % 1000) // 10),
            "gpu_name": props.raw[:256].split(b"\0", 1)[0].decode(errors="replace"),
            "compute_capability": "%d.%d" % (major.value, minor.value)}


def platform_name(constraints):
    """`trt8.5-sm72-l4t35.3.1`: the registry's platform directory for an engine."""
    trt_mm = ".".join(constraints["tensorrt_version"].split(".")[:2])
    sm = constraints["compute_capability"].replace(".", "")
    return "trt%s-sm%s-%s" % (trt_mm, sm, "l4t" + constraints["l4t_release"]
                              if constraints.get("l4t_release") else "x86")


def build(config, wd, calibration_batches):
    """Build the plan. `calibration_batches` yields feed dicts (only consumed for int8)."""
    version = tensorrt_version()
    if version is None:
        return "skipped", {"reason": SKIP_REASON}, []
    import tensorrt as trt
    from polygraphy.backend.trt import (Calibrator, CreateConfig, EngineBytesFromNetwork,
                                        NetworkFromOnnxPath, Profile)

    spec = config["engine"]
    precision = spec["precision"]
    os.makedirs(os.path.dirname(wd.path(PLAN_FILE)), exist_ok=True)
    timing = config.resolve(spec["timing_cache"]) if spec["timing_cache"] else wd.path(TIMING_FILE)
    profile = Profile()
    for inp in config["inputs"]:
        profile.add(inp["name"], *(cfg.concrete_shape(inp, config, which=w) for w in ("min", "opt", "max")))
    calibrator = None
    if precision == "int8":
        calibrator = Calibrator(calibration_batches, cache=wd.path(CALIB_FILE))
    builder_config = CreateConfig(
        fp16=precision in ("fp16", "int8"), int8=precision == "int8", calibrator=calibrator,
        profiles=[profile], load_timing_cache=timing if os.path.exists(timing) else None,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: spec["workspace_mb"] << 20})
    source = wd.path(SIM_FILE if config["export"]["simplify"] else ONNX_FILE)
    try:
        plan = EngineBytesFromNetwork(NetworkFromOnnxPath(source), config=builder_config,
                                      save_timing_cache=timing)()
    except Exception as exc:
        raise PytoolsError("engine: TensorRT build failed: %s" % str(exc).strip().splitlines()[0])
    tmp = wd.path(PLAN_FILE + ".partial")
    with open(tmp, "wb") as f:
        f.write(plan)
    os.replace(tmp, wd.path(PLAN_FILE))
    constraints = dict(cuda_facts(), tensorrt_version=version, l4t_release=l4t_release())
    outputs = [PLAN_FILE] + ([CALIB_FILE] if precision == "int8" else [])
    summary = {"precision": precision, "constraints": constraints,
               "platform": platform_name(constraints), "timing_cache": timing}
    return "ran", summary, outputs
