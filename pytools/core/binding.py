"""How the config's inputs and outputs meet the model: inputs bind to `forward`'s parameters by
name; outputs (a tensor, or nested tuples/lists/dicts of tensors, e.g. a transformers `ModelOutput`)
are flattened in PyTorch's pytree order, which is also the order torch.export and the ONNX exporter
give them.

Output naming rule: when the model's outputs carry no names (one tensor, or tuples/lists of
tensors), the flattened tensors take the config's `outputs` names in order. As soon as a dict
(or named tuple) is involved, each tensor is named by its path, keys and indices joined with ".":
`{"logits": t, "aux": (a, b)}` gives `logits`, `aux.0`, `aux.1`; the config must list those names.
"""
import inspect

from pytools.core.errors import ConfigError

# torch dtype name -> the config's dtype name
_DTYPE_NAMES = {"float": "float32", "half": "float16", "long": "int64", "int": "int32"}


def dtype_name(tensor):
    name = str(tensor.dtype).replace("torch.", "")
    return _DTYPE_NAMES.get(name, name)


def check_input_names(config, model):
    """Every config input must be a parameter of `forward` (keyword binding), and every required
    parameter must be fed."""
    names = [s["name"] for s in config["inputs"]]
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [n for n in names if n not in accepted and not takes_any]
    required = [n for n, p in params.items() if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in names]
    if unknown or required:
        what = ("input %r is not a parameter of" % unknown[0]) if unknown else (
            "%s.forward's parameter %r has no default and no config input feeds it" % (
                type(model).__name__, required[0]))
        if unknown:
            what += " %s.forward" % type(model).__name__
        raise ConfigError("%s: inputs: %s (config inputs: %s; forward takes: %s)"
                          % (config.path, what, ", ".join(names), ", ".join(accepted) or "nothing"))


def _key_text(key):
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flatten(outputs):
    """[(path or None, tensor)] in pytree order; path is None when no dict/named tuple is involved."""
    from torch.utils._pytree import tree_flatten_with_path

    leaves, _ = tree_flatten_with_path(outputs)
    named = any(not hasattr(k, "idx") for path, _ in leaves for k in path)
    return [(".".join(_key_text(k) for k in path) if named else None, leaf) for path, leaf in leaves]


def output_names(config, flat):
    """The names of the flattened outputs (the rule in the module docstring); ConfigError when
    the config's names are not the model's."""
    claimed = [o["name"] for o in config["outputs"]]
    paths = [p for p, _ in flat]
    if paths and paths[0] is None:
        if len(flat) != len(claimed):
            raise ConfigError("%s: outputs: the config names %d outputs, the model returns %d"
                              % (config.path, len(claimed), len(flat)))
        return claimed
    if sorted(paths) != sorted(claimed):
        raise ConfigError("%s: outputs: the config names %s, the model returns %s (names of dict "
                          "outputs are their keys and indices joined with '.')"
                          % (config.path, ", ".join(claimed), ", ".join(paths)))
    return paths


def named_outputs(outputs, names):
    """{name: tensor} of one call's outputs, named by `names` (from `output_names`)."""
    return dict(zip(names, (t for _, t in flatten(outputs))))
