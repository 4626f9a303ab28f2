"""Turn exporter failures into one line the model's author can act on: the operator and the model
line that calls it, the custom autograd.Function that cannot be traced, the dynamic axis torch.export
specialised, the opset the dynamo exporter needs.
"""
import os
import re
import traceback

from pytools.core.errors import CheckError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OP_PATTERNS = [re.compile(r"operator '?(\w+::\w+)"), re.compile(r"namespace (\w+::\w+)"),
                re.compile(r"op='([\w]+)\.([\w]+)'"), re.compile(r"target=torch\.ops\.([\w]+)\.([\w]+)")]
_VIOLATED = re.compile(r"Constraints violated \((\w+)\)")
_SPECIALISED = re.compile(r"You marked (\w+) as dynamic but your code specialized it to be a constant \((\d+)\)")
DYNAMO_MIN_OPSET = 18


def first_line(exc):
    """The first non-empty line of an exception's text, without terminal colour codes."""
    lines = [l.strip() for l in _ANSI.sub("", str(exc)).splitlines() if l.strip()]
    return lines[0] if lines else type(exc).__name__


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def unsupported_op(exc):
    """'ns::op' of the operator an exporter could not convert, or None."""
    text = "".join(_ANSI.sub("", "".join(traceback.format_exception_only(type(e), e))) for e in _chain(exc))
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1) if m.lastindex == 1 else "%s::%s" % (m.group(1), m.group(2))
    return None


def _base(op_name):
    """'aten::_linalg_slogdet' and torch.linalg.slogdet (named 'linalg_slogdet') meet at 'linalg_slogdet'."""
    return op_name.split("::")[-1].split(".")[0].lstrip("_")


def _user_frame():
    import torch

    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.dirname(os.path.abspath(__file__))
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if not path.startswith(torch_dir) and os.path.dirname(path) != here and "/site-packages/" not in path:
            return "%s:%d in %s" % (os.path.basename(frame.filename), frame.lineno, frame.name)
    return None


def call_site(model, feed, op_name):
    """Where model code calls `op_name`: 'file.py:LINE in function', or None. Records both the
    torch functions called (composite ops such as torch.linalg.slogdet, which never reach the
    dispatcher under their own name) and the dispatched operators (custom ops)."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    want, found = _base(op_name), []

    def record(name):
        if not found and _base(name) == want:
            site = _user_frame()
            if site:
                found.append(site)

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            record(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    class Operators(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            record(func._schema.name)
            return func(*args, **(kwargs or {}))

    try:
        with torch.no_grad(), Functions(), Operators():
            model(**feed)
    except Exception:
        return None
    return found[0] if found else None


def autograd_function(exc):
    """(class name, 'file.py:LINE') of a custom torch.autograd.Function whose forward was running
    when `exc` was raised, or None."""
    import torch

    for e in _chain(exc):
        for frame, lineno in reversed(list(traceback.walk_tb(e.__traceback__))):
            qualname = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
            owner = frame.f_globals.get(qualname.split(".")[0]) if "." in qualname else None
            if isinstance(owner, type) and issubclass(owner, torch.autograd.Function) \
                    and owner.__module__ != "torch.autograd.function":
                return owner.__name__, "%s:%d" % (os.path.basename(frame.f_code.co_filename), lineno)
    return None


def specialised_axis(exc, config):
    """'input 'x' axis 1 (dims.seq) ... 16' when torch.export specialised a dynamic dim, or None."""
    text = _ANSI.sub("", str(exc))
    m = _SPECIALISED.search(text)
    if not m:
        violated = _VIOLATED.search(text)
        if not violated or violated.group(1) not in config["dims"]:
            return None
        name, dim = violated.group(1), config["dims"][violated.group(1)]
        detail = [l.strip(" -") for l in text.splitlines()[1:] if l.strip(" -")]
        return ("export: torch.export cannot keep dims.%s dynamic over [%d, %d]: %s (make the code "
                "size-independent or narrow dims.%s)" % (name, dim["min"], dim["max"],
                                                        detail[0] if detail else "constraints violated", name))
    dim, value = m.group(1), int(m.group(2))
    axes = ["input %r axis %d" % (s["name"], a) for s in config["inputs"]
            for a, d in enumerate(s["shape"]) if d == dim]
    return ("export: %s is dynamic in the config (dims.%s) but the model fixes it to %d under torch.export: "
            "make the code size-independent (no Python loops or ints over that axis; run with "
            "TORCH_LOGS=+dynamic to see where)" % (" and ".join(axes) or "dimension " + dim, dim, value))


def export_failure(what, exc, config, model, feed, opset=None):
    """The CheckError for a failed export step (`what`: 'torch.export', 'the ONNX exporter (...)')."""
    fn = autograd_function(exc)
    if fn:
        return CheckError("export: %s cannot export the custom torch.autograd.Function %s (%s): %s; write its "
                          "forward with torch operations, or give it a `symbolic` staticmethod and set "
                          "export.exporter: torchscript" % (what, fn[0], fn[1], first_line(exc)))
    text = specialised_axis(exc, config)
    if text:
        return CheckError(text)
    op = unsupported_op(exc)
    hint = ""
    if opset is not None and opset < DYNAMO_MIN_OPSET and "dynamo" in what:
        hint = "; the dynamo exporter needs export.opset: %d or newer" % DYNAMO_MIN_OPSET
    if op:
        site = call_site(model, feed, op)
        return CheckError("export: %s cannot convert operator %s%s%s"
                          % (what, op, ", called at " + site if site else "", hint))
    return CheckError("export: %s failed: %s%s" % (what, first_line(exc), hint))
