"""Stage `publish`: the package into the configured registry (`publish:`; local by default).
Its own command is `pytools publish PACKAGE_DIR` (a registry command); here it ends `pytools run`."""
import os

from pytools.build.stage import Stage, opt
from pytools.core.workdir import PACKAGE_DIR, PACKAGE_MANIFEST


class PublishStage(Stage):
    name = "publish"

    def add_arguments(self, parser, run=False):
        parser.add_argument("--channel", help="registry channel to publish to (default: publish.channel, else dev)")
        parser.add_argument("--no-publish", action="store_true", help="stop after the package; publish nothing")

    def wanted(self, pipe, options):
        return not opt(options, "no_publish")

    def inputs(self, pipe, options):
        from pytools.registry.settings import effective_settings

        pipe.wd.require("package", "run `pytools package` first")
        settings = effective_settings(pipe.config.get("publish"))
        if settings.get("path"):
            settings["path"] = os.path.abspath(settings["path"])
        return {"manifest": pipe.wd.output_sha("package", PACKAGE_MANIFEST), "settings": settings,
                "channel": opt(options, "channel")}

    def run(self, pipe, options, inputs):
        from pytools.registry import open_registry

        registry = open_registry(pipe.config.get("publish"))
        return "ran", registry.publish(pipe.wd.path(PACKAGE_DIR), opt(options, "channel")), []

    def describe(self, s):
        return "%s %s -> %s (%s: %s)" % (s.get("name"), s.get("version"), s.get("channel"), s.get("backend"),
                                         s.get("url") or s.get("location"))


STAGE = PublishStage()
