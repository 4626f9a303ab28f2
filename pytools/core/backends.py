"""The backends by name: name -> the class that implements it (by import path), one table for
the model runners and one for the registry backends.

The config's `parity.backends` and `bench.backends` enums, parity's reference and the runner
factory (`pytools.backends.open_runner`) all read `RUNNERS`. Classes are named, not imported,
because the core imports nothing above it. Adding a backend is one module under
`pytools/backends/` (or `pytools/registry/`) plus one entry here.
"""
RUNNERS = {
    "torch": "pytools.backends.torch_eager:TorchRunner",
    "exported-program": "pytools.backends.torch_export:ExportedProgramRunner",
    "torchscript": "pytools.backends.torch_eager:TorchScriptRunner",
    "onnxruntime": "pytools.backends.onnxruntime:OnnxRuntimeRunner",
    "onnxruntime-simplified": "pytools.backends.onnxruntime:SimplifiedOnnxRuntimeRunner",
    "tensorrt": "pytools.backends.tensorrt:TensorRTRunner",
}
# Parity compares every other backend with this one (PyTorch eager).
REFERENCE = "torch"
COMPARED = [name for name in RUNNERS if name != REFERENCE]

# Registry backends: the `publish.backend` enum and `pytools.registry.open_registry` read this.
# A backend's client library (dohq-artifactory) is imported only when that backend is opened.
REGISTRY_BACKENDS = {
    "local": "pytools.registry.local:LocalRegistry",
    "artifactory": "pytools.registry.artifactory:ArtifactoryRegistry",
}
