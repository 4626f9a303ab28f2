"""Fetch a checkpoint (local path or https URL, sha256-verified, written atomically) and load it."""
import os
import shutil
import urllib.error
import urllib.request

from pytools.build.export_errors import first_line
from pytools.core.errors import CheckError, PytoolsError
from pytools.core.hashing import sha256_file

CHUNK = 1 << 20


def fetch(config, dest):
    """Copy or download the configured checkpoint to `dest`; return its sha256.

    The bytes land in `dest.partial` and are renamed only after the sha256 matches, so an
    interrupted or corrupt download never leaves a file that looks complete.
    """
    spec = config["checkpoint"]
    partial = dest + ".partial"
    try:
        if "path" in spec:
            source = config.resolve(spec["path"])
            try:
                shutil.copyfile(source, partial)
            except OSError as exc:
                raise PytoolsError("%s: checkpoint.path: cannot read %s: %s" % (config.path, source, exc.strerror))
        else:
            _download(spec["url"], partial)
        digest = sha256_file(partial)
        expected = spec.get("sha256")
        if expected and digest != expected:
            raise CheckError("checkpoint sha256 mismatch: got %s, config expects %s" % (digest, expected))
        os.replace(partial, dest)
        return digest
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _download(url, partial):
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            expected = response.headers.get("Content-Length")
            received = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                received += len(block)
    except urllib.error.HTTPError as exc:
        raise PytoolsError("checkpoint download failed: %s answered HTTP %d %s" % (url, exc.code, exc.reason))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PytoolsError("checkpoint download failed: %s: %s" % (url, reason))
    if expected is not None and received != int(expected):
        raise PytoolsError("checkpoint download cut short: %d of %s bytes from %s" % (received, expected, url))


CONTRACT = 'a state dict (torch.save(model.state_dict(), PATH)) or {"state_dict": <state dict>}'


def user_source(config):
    """How messages name a checkpoint: the user's file or URL, not the work directory's copy."""
    spec = config["checkpoint"]
    if "path" in spec:
        return config.resolve(spec["path"])
    return spec.get("url") or "the checkpoint trained from %s" % config.path


def load_into(model, path, shown_as=None):
    """Load a state dict into `model`, naming every missing/unexpected key and shape mismatch.
    Messages name the checkpoint as `shown_as` (the user's file) when given."""
    import pickle

    import torch

    name = shown_as or path
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects would run their code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PytoolsError("checkpoint %s does not exist" % name)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a class reference: an object, not tensors
            raise CheckError("checkpoint %s holds pickled Python objects (a whole module saved with "
                             "torch.save(model)?), not tensors; pytools loads %s" % (name, CONTRACT))
        raise CheckError("checkpoint %s is not a PyTorch file: %s" % (name, first_line(exc)))
    except Exception as exc:
        raise CheckError("checkpoint %s is not a PyTorch file: %s" % (name, first_line(exc)))
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state) \
            or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckError("checkpoint %s does not hold a state dict: found %s; pytools loads %s"
                         % (name, type(state).__name__, CONTRACT))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = ["%s (checkpoint %s, model %s)" % (k, tuple(state[k].shape), tuple(own[k].shape))
                  for k in sorted(set(own) & set(state))
                  if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("shape mismatches", mismatched)):
        if keys:
            shown = ", ".join(keys[:5]) + (" and %d more" % (len(keys) - 5) if len(keys) > 5 else "")
            problems.append("%s: %s" % (label, shown))
    if problems:
        raise CheckError("checkpoint %s does not fit %s: %s" % (name, type(model).__name__, "; ".join(problems)))
    model.load_state_dict(state)
    return model.eval()
