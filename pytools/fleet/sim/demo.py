"""Small real packages for the simulated fleet, its tests and its benchmark.

A demo package holds a tiny ONNX classifier (built with onnx.helper, so no training or download
is needed) and, optionally, a blob of random bytes to make it as large as a real engine.
"""
import os
import tempfile

from pytools.core.package import write_package

PAYLOAD = "weights.bin"


def tiny_onnx_bytes(scale=1.0):
    """An ONNX model `logits = image_flat @ W`, opset 17, that ONNX Runtime loads and runs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((12, 2), scale, dtype=np.float32), "W")
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 12])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["image", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "demo",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_demo_package(dest, version, name="demo", payload_bytes=0, broken_model=False,
                      platform="onnxruntime", sign_key=None):
    """Write a package to `dest`. `broken_model` ships bytes ONNX Runtime cannot load (the
    package itself verifies: only the robot's health check can find the problem)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.onnx")
        with open(model, "wb") as f:
            f.write(b"not an onnx model" if broken_model else tiny_onnx_bytes())
        files = {"model.onnx": (model, "onnx")}
        if payload_bytes:
            blob = os.path.join(tmp, PAYLOAD)
            with open(blob, "wb") as f:
                left = payload_bytes
                while left:
                    n = min(left, 1 << 22)
                    f.write(os.urandom(n))
                    left -= n
            files[PAYLOAD] = (blob, "calibration-cache")
        runtime = {"kind": "onnxruntime", "entry": "model.onnx", "precision": "fp32",
                   "inputs": [{"name": "image", "dtype": "float32",
                               "shape": ["batch", 3, 2, 2]}],
                   "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2]}],
                   "constraints": {"onnx_opset": 17}}
        if platform != "onnxruntime":
            runtime.update(kind="tensorrt", entry="model.onnx", constraints={
                "tensorrt_version": "8.5.2", "cuda_version": "11.4",
                "compute_capability": "7.2", "gpu_name": "Xavier", "l4t_release": "35.3.1"})
        fields = {"name": name, "version": version, "git_commit": None, "build_url": None,
                  "platform": platform, "runtime": runtime,
                  "lineage": {"parent": None, "tracking_runs": []},
                  "evidence": {"parity": {}, "bench": {}}}
        return write_package(dest, files, fields, signing_key_path=sign_key)
