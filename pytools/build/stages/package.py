"""Stage `package`: manifest.json (+ signature) and the model files, in <workdir>/package."""
import os

from pytools.build.stage import Stage, opt
from pytools.core.errors import CheckError, PytoolsError
from pytools.core.package import MANIFEST, SIGNATURE
from pytools.core.workdir import PACKAGE_DIR, STAGE_NAMES

SIGN_ENV = "PYTOOLS_SIGNING_KEY_FILE"


def sign_key(options):
    return opt(options, "sign_key") or os.environ.get(SIGN_ENV) or None


class PackageStage(Stage):
    name = "package"
    commands = ((("package", "build"), "write <workdir>/package: manifest.json (+ signature) and the "
                 "model files (`pytools package CONFIG` is short for this)", {}),)

    def add_arguments(self, parser, run=False):
        parser.add_argument("--prerelease", metavar="TAG", help="pre-release identifiers, e.g. mr.42 "
                            "-> 1.4.0-mr.42" if not run else "pre-release identifiers for the package version")
        parser.add_argument("--sign-key", metavar="PEM", help="Ed25519 private key file to sign the "
                            "manifest (default: $%s)" % SIGN_ENV)
        if not run:
            parser.add_argument("--allow-failed-parity", action="store_true",
                                help="package even though parity failed (the manifest's evidence says so)")

    def inputs(self, pipe, options):
        from pytools.build import assemble

        wd = pipe.wd
        parity_state = wd.state("parity")
        if not parity_state:
            raise PytoolsError("stage 'parity' has not run in %s: run `pytools parity` first" % wd.root)
        allow_failed = bool(opt(options, "allow_failed_parity"))
        if parity_state["status"] == "failed" and not allow_failed:
            raise CheckError("refusing to package: parity failed (pass --allow-failed-parity to package "
                             "it anyway; the manifest will say so)")
        wd.require("bench", "run `pytools bench` first")
        commit = assemble.git_commit(pipe.config)
        upstream = STAGE_NAMES[:STAGE_NAMES.index(self.name)]
        return {"stages": {s: (wd.state(s) or {}).get("inputs_hash") for s in upstream},
                "version": assemble.full_version(pipe.config, opt(options, "prerelease"), commit),
                "name": pipe.config["name"], "sign_key": assemble.key_fingerprint(sign_key(options)),
                "git": commit, "build_url": os.environ.get("BUILD_URL"), "allow_failed_parity": allow_failed}

    def run(self, pipe, options, inputs):
        from pytools.build import assemble

        version, key = inputs["version"], sign_key(options)
        manifest = assemble.assemble(pipe, version, inputs["git"], key, pipe.tracker.runs())
        files = [PACKAGE_DIR + "/" + f["path"] for f in manifest["files"]] + [PACKAGE_DIR + "/" + MANIFEST]
        if key:
            files.append(PACKAGE_DIR + "/" + SIGNATURE)
        return "ran", {"version": version, "runtime": manifest["runtime"]["kind"],
                       "platform": manifest["platform"], "files": len(manifest["files"]),
                       "bytes": sum(f["size"] for f in manifest["files"]),
                       "signed": bool(key), "path": pipe.wd.path(PACKAGE_DIR)}, files

    def describe(self, s):
        return "%s %s, %d files, %.1f MB%s" % (s.get("version"), s.get("runtime"), s.get("files", 0),
                                              s.get("bytes", 0) / 1e6, ", signed" if s.get("signed") else "")


STAGE = PackageStage()
