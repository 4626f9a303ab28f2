"""What the exported ONNX graph declares at its edges, checked against the config.

Input and output names must be the config's; an axis the config calls dynamic must not be fixed
in the graph (an exporter that froze it ships a model that fails at any other size); output
dtypes, ranks and static sizes the config claims must be what the graph produces. The result is
the I/O spec the manifest carries: read from the artifact, not copied from the config.
The dynamo exporter names dynamic axes by its own symbols (`s52`); they are renamed to the
config's dimension names, derived axes included (`2*s52` -> `2*batch`).
"""
import re

from pytools.core.errors import CheckError, ConfigError

# onnx.TensorProto element types -> the config's dtype names
_ONNX_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 9: "bool",
                11: "float64", 16: "bfloat16", 3: "int8", 5: "int16"}


def _dims(value):
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value.type.tensor_type.shape.dim]


def _edges(proto):
    initializers = {i.name for i in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in initializers], list(proto.graph.output)


def rename_dims(proto, config):
    """Give the graph's symbolic axes the config's dimension names (in place)."""
    inputs, _ = _edges(proto)
    specs = {s["name"]: s for s in config["inputs"]}
    rename = {}
    for value in inputs:
        spec = specs.get(value.name)
        for axis, dim in enumerate(value.type.tensor_type.shape.dim if spec else ()):
            if axis < len(spec["shape"]) and isinstance(spec["shape"][axis], str) and dim.dim_param:
                rename.setdefault(dim.dim_param, spec["shape"][axis])
    if not rename:
        return
    pattern = re.compile(r"\b(%s)\b" % "|".join(re.escape(s) for s in sorted(rename, key=len, reverse=True)))
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: rename[m.group(1)], dim.dim_param)


def _frozen(kind, name, axis, claimed, actual):
    return CheckError("export: %s %r axis %d is dynamic in the config (%r) but the exported graph fixes it "
                      "to %d: the exporter specialised the model to the example size; make the code "
                      "size-independent (no Python loops or ints over that axis)" % (kind, name, axis, claimed, actual))


def check(proto, config, output_names):
    """Check the graph's edges against the config; return the manifest's {inputs, outputs} spec."""
    where = config.path
    inputs, outputs = _edges(proto)
    want_in = [s["name"] for s in config["inputs"]]
    if [v.name for v in inputs] != want_in:
        raise CheckError("export: the exported graph's inputs are %s, the config's are %s"
                         % (", ".join(v.name for v in inputs), ", ".join(want_in)))
    if [v.name for v in outputs] != list(output_names):
        raise CheckError("export: the exported graph's outputs are %s, the model's are %s"
                         % (", ".join(v.name for v in outputs), ", ".join(output_names)))
    spec_in = []
    for value, spec in zip(inputs, config["inputs"]):
        dims = _dims(value)
        for axis, (claimed, actual) in enumerate(zip(spec["shape"], dims)):
            if isinstance(claimed, str) and isinstance(actual, int):
                raise _frozen("input", spec["name"], axis, claimed, actual)
        spec_in.append({"name": value.name, "dtype": _ONNX_DTYPES.get(value.type.tensor_type.elem_type, "unknown"),
                        "shape": spec["shape"]})
    claims = {o["name"]: o for o in config["outputs"]}
    spec_out = []
    for value in outputs:
        dims, dtype = _dims(value), _ONNX_DTYPES.get(value.type.tensor_type.elem_type, "unknown")
        claim = claims[value.name]
        if "dtype" in claim and claim["dtype"] != dtype:
            raise ConfigError("%s: outputs: output %r dtype: the config claims %s, the exported graph "
                              "produces %s" % (where, value.name, claim["dtype"], dtype))
        shape = claim.get("shape")
        if shape is not None:
            if len(shape) != len(dims):
                raise ConfigError("%s: outputs: output %r rank: the config claims %d (%s), the exported "
                                  "graph produces %d" % (where, value.name, len(shape), shape, len(dims)))
            for axis, (claimed, actual) in enumerate(zip(shape, dims)):
                if isinstance(claimed, str) and isinstance(actual, int):
                    raise _frozen("output", value.name, axis, claimed, actual)
                if isinstance(claimed, int) and isinstance(actual, int) and claimed != actual:
                    raise ConfigError("%s: outputs: output %r shape[%d]: the config claims %d, the exported "
                                      "graph produces %d" % (where, value.name, axis, claimed, actual))
        # The graph's own dims, dynamic ones by the config's names where it gives one.
        derived = [(shape[axis] if shape is not None and isinstance(d, str) else d) if d is not None
                   else (shape[axis] if shape is not None else None) for axis, d in enumerate(dims)]
        spec_out.append({"name": value.name, "dtype": dtype, "shape": derived})
    return {"inputs": spec_in, "outputs": spec_out}
