"""`pytools package verify|keygen` (`package build` is the package stage, in commands/stages.py)."""
import os

from pytools.commands import group, leaf
from pytools.commands.stages import GROUP_HELP


def verify(args):
    from pytools.core import package

    manifest = package.verify_package(args.dir, args.public_key, args.require_signature)
    data = {"verified": True, "name": manifest["name"], "version": manifest["version"],
            "platform": manifest.get("platform"), "files": len(manifest["files"]),
            "signature": "verified" if args.public_key else "not checked"}
    return data, "ok: %s %s (%s): %d files match the manifest, signature %s" % (
        data["name"], data["version"], data["platform"], data["files"], data["signature"])


def keygen(args):
    from pytools.core import package
    from pytools.core.errors import PytoolsError

    for path in (args.private_key, args.public_key):
        if os.path.exists(path):
            raise PytoolsError("%s exists; refusing to overwrite a key" % path)
    package.generate_keypair(args.private_key, args.public_key)
    return ({"private_key": args.private_key, "public_key": args.public_key},
            "wrote %s (keep it secret, mode 600) and %s" % (args.private_key, args.public_key))


def register(subparsers):
    sub = group(subparsers, "package", GROUP_HELP["package"])
    v = leaf(sub, "verify", verify, "re-check every file of a package against its manifest")
    v.add_argument("dir", metavar="DIR")
    v.add_argument("--public-key", metavar="PEM", help="verify manifest.json.sig with this Ed25519 public key")
    v.add_argument("--require-signature", action="store_true", help="fail unless a signature was verified")
    k = leaf(sub, "keygen", keygen, "create an Ed25519 key pair for signing packages")
    k.add_argument("private_key", metavar="PRIVATE_PEM")
    k.add_argument("public_key", metavar="PUBLIC_PEM")
