"""The package: `manifest.json`, an optional detached signature, and the model files.

The manifest is the one contract that registry, rollout, robots and lineage read; its fields are
described in docs/package.md. Keep this module free of torch/onnx imports: it runs on publish
agents and is mirrored by the stdlib-only robot agent.
"""
import base64
import datetime
import json
import os
import posixpath
import shutil

from pytools.core.errors import CheckError, PytoolsError
from pytools.core.files import atomic_write_bytes
from pytools.core.hashing import file_digests, sha256_file

SCHEMA = "model-cicd/package@1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
RESERVED = (MANIFEST, SIGNATURE)


def check_relative_path(path):
    """Refuse anything but a plain relative POSIX path inside the package."""
    if not isinstance(path, str) or not path:
        raise CheckError("manifest lists a file with an empty or non-text path: %r" % (path,))
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise CheckError("manifest path %r is absolute; package paths must be relative" % path)
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path:
        raise CheckError("manifest path %r escapes or is not normalised (no '..', '.', '//')" % path)
    if path in RESERVED:
        raise CheckError("manifest lists the reserved file %r" % path)
    return path


def file_entry(root, rel, role):
    full = os.path.join(root, rel)
    return dict(file_digests(full), path=rel, size=os.path.getsize(full), role=role)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_package(dest, files, manifest_fields, signing_key_path=None):
    """Create package directory `dest` from `files` ({rel_path: (source_path, role)}).

    The package is assembled in a sibling temporary directory and renamed into place, so a
    failure never leaves a half-written package that looks complete.
    """
    tmp = dest.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        entries = []
        for rel in sorted(files):
            source, role = files[rel]
            check_relative_path(rel)
            target = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)
            entries.append(file_entry(tmp, rel, role))
        manifest = dict(manifest_fields)
        manifest.update({"schema": SCHEMA, "files": entries})
        manifest.setdefault("created", utc_now())
        data = manifest_bytes(manifest)
        atomic_write_bytes(os.path.join(tmp, MANIFEST), data)
        if signing_key_path:
            atomic_write_bytes(os.path.join(tmp, SIGNATURE), sign(data, signing_key_path))
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def manifest_bytes(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def read_manifest(package_dir):
    path = os.path.join(package_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode())
    except FileNotFoundError:
        raise CheckError("%s: no %s (not a package directory)" % (package_dir, MANIFEST))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckError("%s: manifest is not valid JSON: %s" % (path, exc))
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise CheckError("%s: not a %s manifest" % (path, SCHEMA))
    for key in ("name", "version", "files", "runtime"):
        if key not in manifest:
            raise CheckError("%s: manifest has no %r" % (path, key))
    if not isinstance(manifest["files"], list):
        raise CheckError("%s: manifest 'files' must be a list" % path)
    return manifest


def verify_package(package_dir, public_key_path=None, require_signature=False):
    """Re-check every file against the manifest; return the manifest.

    Refuses: paths that are absolute or escape the package, files on disk that the manifest does
    not list, symlinks, size or sha256 mismatches, and (with a key) a bad or missing signature.
    """
    manifest = read_manifest(package_dir)
    listed = {}
    for entry in manifest["files"]:
        if not isinstance(entry, dict):
            raise CheckError("manifest file entry is not an object: %r" % (entry,))
        rel = check_relative_path(entry.get("path"))
        if rel in listed:
            raise CheckError("manifest lists %r twice" % rel)
        listed[rel] = entry
    on_disk = set()
    for dirpath, dirnames, filenames in os.walk(package_dir):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                raise CheckError("package contains a symlink: %s" % os.path.relpath(full, package_dir))
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), package_dir).replace(os.sep, "/")
            if rel not in RESERVED:
                on_disk.add(rel)
    extra = sorted(on_disk - set(listed))
    if extra:
        raise CheckError("package contains files the manifest does not list: %s" % ", ".join(extra))
    for rel, entry in sorted(listed.items()):
        full = os.path.join(package_dir, rel)
        if rel not in on_disk:
            raise CheckError("package file %s is missing" % rel)
        size = os.path.getsize(full)
        if size != entry.get("size"):
            raise CheckError("package file %s has %d bytes, manifest says %s"
                             % (rel, size, entry.get("size")))
        digest = sha256_file(full)
        if digest != entry.get("sha256"):
            raise CheckError("package file %s: sha256 %s does not match manifest %s"
                             % (rel, digest[:16], str(entry.get("sha256"))[:16]))
    sig_path = os.path.join(package_dir, SIGNATURE)
    if public_key_path:
        if not os.path.exists(sig_path):
            raise CheckError("package is not signed (no %s)" % SIGNATURE)
        with open(os.path.join(package_dir, MANIFEST), "rb") as f:
            data = f.read()
        with open(sig_path, "rb") as f:
            verify_signature(data, f.read(), public_key_path)
    elif require_signature:
        raise CheckError("a signature is required but no public key was given")
    return manifest


# -- signatures: Ed25519 over the exact manifest bytes, base64 in manifest.json.sig. Robots check
# them with `openssl pkeyutl -verify -rawin` (OpenSSL >= 1.1.1), so no Python crypto is needed there.

def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise PytoolsError("signing needs the 'cryptography' package (pip install cryptography)")
    return serialization, ed25519


def sign(data, private_key_path):
    serialization, ed25519 = _crypto()
    try:
        with open(private_key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError) as exc:
        raise PytoolsError("cannot load signing key %s: %s" % (private_key_path, exc))
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PytoolsError("signing key %s is not an Ed25519 private key" % private_key_path)
    return base64.b64encode(key.sign(data)) + b"\n"


def verify_signature(data, signature_b64, public_key_path):
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature
    try:
        with open(public_key_path, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
    except (OSError, ValueError) as exc:
        raise PytoolsError("cannot load public key %s: %s" % (public_key_path, exc))
    try:
        key.verify(base64.b64decode(signature_b64.strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        raise CheckError("package signature does not match its manifest (tampered or wrong key)")


def generate_keypair(private_path, public_path):
    serialization, ed25519 = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(public_path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
