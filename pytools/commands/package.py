"""`pytools package build|verify|keygen`."""
import os

from pytools.commands import group, leaf
from pytools.commands._stage_text import line
from pytools.commands.stages import add_stage_options, pipeline

SIGN_ENV = "PYTOOLS_SIGNING_KEY_FILE"


def build(args):
    sign_key = args.sign_key or os.environ.get(SIGN_ENV) or None
    result = pipeline(args).package(args.prerelease, sign_key, args.allow_failed_parity)
    return result.as_dict(), line(result)


def verify(args):
    from pytools import package

    manifest = package.verify_package(args.dir, args.public_key, args.require_signature)
    data = {"verified": True, "name": manifest["name"], "version": manifest["version"],
            "platform": manifest.get("platform"), "files": len(manifest["files"]),
            "signature": "verified" if args.public_key else "not checked"}
    return data, "ok: %s %s (%s): %d files match the manifest, signature %s" % (
        data["name"], data["version"], data["platform"], data["files"], data["signature"])


def keygen(args):
    from pytools import package
    from pytools.errors import PytoolsError

    for path in (args.private_key, args.public_key):
        if os.path.exists(path):
            raise PytoolsError("%s exists; refusing to overwrite a key" % path)
    package.generate_keypair(args.private_key, args.public_key)
    return ({"private_key": args.private_key, "public_key": args.public_key},
            "wrote %s (keep it secret, mode 600) and %s" % (args.private_key, args.public_key))


def register(subparsers):
    sub = group(subparsers, "package", "write or verify a package (manifest.json + model files)")
    b = leaf(sub, "build", build, "write <workdir>/package: manifest.json (+ signature) and the model files "
             "(`pytools package CONFIG` is short for this)")
    add_stage_options(b)
    b.add_argument("--prerelease", metavar="TAG", help="pre-release identifiers, e.g. mr.42 -> 1.4.0-mr.42")
    b.add_argument("--sign-key", metavar="PEM", help="Ed25519 private key file to sign the manifest "
                   "(default: $%s)" % SIGN_ENV)
    b.add_argument("--allow-failed-parity", action="store_true",
                   help="package even though parity failed (the manifest's evidence says so)")
    v = leaf(sub, "verify", verify, "re-check every file of a package against its manifest")
    v.add_argument("dir", metavar="DIR")
    v.add_argument("--public-key", metavar="PEM", help="verify manifest.json.sig with this Ed25519 public key")
    v.add_argument("--require-signature", action="store_true", help="fail unless a signature was verified")
    k = leaf(sub, "keygen", keygen, "create an Ed25519 key pair for signing packages")
    k.add_argument("private_key", metavar="PRIVATE_PEM")
    k.add_argument("public_key", metavar="PUBLIC_PEM")
