"""Stage `report`: the HTML page (parity, plots, benchmark, artifacts), rebuilt when the parity,
bench or package results change."""
from pytools.build.stage import Stage
from pytools.core.workdir import REPORT_HTML


class ReportStage(Stage):
    name = "report"
    listed = False  # `pytools run` prints the page's path under the table
    after_failure = True  # a failed parity is when the page is needed
    commands = ((("report",), "write <workdir>/reports/report.html: parity per backend and output with "
                 "error histograms and worst-sample plots, latency distributions, artifact links", {}),)

    def inputs(self, pipe, options):
        return {s: (pipe.wd.state(s) or {}).get("outputs") for s in ("parity", "bench", "package")}

    def run(self, pipe, options, inputs):
        from pytools.tracking import report_html

        report_html.write(pipe.config, pipe.wd.root)
        return "ran", {"path": pipe.wd.path(REPORT_HTML)}, [REPORT_HTML]

    def describe(self, s):
        return s.get("path", "")


STAGE = ReportStage()
