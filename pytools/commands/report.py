"""`pytools report CONFIG`: the HTML report of a pipeline run (parity, plots, benchmark, artifacts)."""
from pytools.commands import leaf


def handle(args):
    from pytools import config, report_html

    path = report_html.write(config.load(args.config), args.workdir)
    return {"report": path}, "report: %s" % path


def register(subparsers):
    p = leaf(subparsers, "report", handle, "write <workdir>/reports/report.html: parity per backend and "
             "output with error histograms and worst-sample plots, latency distributions, artifact links")
    p.add_argument("config", metavar="CONFIG", help="the model's YAML config")
    p.add_argument("--workdir", help="work directory (default: work/<model name>)")
