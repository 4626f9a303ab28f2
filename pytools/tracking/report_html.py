"""The HTML report of a pipeline run: `<workdir>/reports/report.html`.

One self-contained page (no scripts, no external files; plots are hand-written SVG embedded as
`data:` images) that works as a Jenkins HTML report and as an archived build artifact:
parity per backend and output with error histograms and the worst sample's elements, benchmark
latency distributions, and a link with sha256 to each artifact of the work directory.

    pytools.tracking.report_html.write(config, workdir)   # -> path of report.html
"""
import base64
import html
import math
import os

from pytools.core.console import fmt_number
from pytools.core.errors import PytoolsError
from pytools.core.files import atomic_write_bytes, read_json
from pytools.core.workdir import (BENCH_JSON, PACKAGE_MANIFEST, PARITY_JSON, PARITY_WORST, REPORT_HTML,
                                  REPORTS_DIR, STAGES, TRACKING_RUNS, Workdir, default_workdir)

MAX_POINTS = 1500   # scatter points per plot; the worst elements are always kept
PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"]


# -- small SVG plotting kit --------------------------------------------------------------------

def _esc(text):
    return html.escape(str(text), quote=True)




class Canvas:
    """An SVG of fixed size with a plot area; callers add elements in plot coordinates."""

    def __init__(self, width, height, left=56, right=16, top=28, bottom=40, title=""):
        self.w, self.h = width, height
        self.x0, self.x1, self.y0, self.y1 = left, width - right, top, height - bottom
        self.parts = ['<rect width="%d" height="%d" fill="#ffffff"/>' % (width, height)]
        if title:
            self.text(width / 2, 17, title, size=13, anchor="middle", weight="bold")

    def text(self, x, y, s, size=10, anchor="start", colour="#111827", weight="normal", rotate=None):
        transform = ' transform="rotate(%d %.1f %.1f)"' % (rotate, x, y) if rotate else ""
        self.parts.append('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s" font-weight="%s"'
                          ' font-family="DejaVu Sans, Arial, sans-serif"%s>%s</text>'
                          % (x, y, size, anchor, colour, weight, transform, _esc(s)))

    def line(self, x1, y1, x2, y2, colour="#9ca3af", width=1, dash=None):
        self.parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"%s/>'
                          % (x1, y1, x2, y2, colour, width, ' stroke-dasharray="%s"' % dash if dash else ""))

    def rect(self, x, y, w, h, colour, opacity=1.0):
        self.parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%.2f"/>'
                          % (x, y, max(w, 0.5), max(h, 0), colour, opacity))

    def circle(self, x, y, r, colour, opacity=0.6, stroke=None):
        self.parts.append('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="%.2f"%s/>'
                          % (x, y, r, colour, opacity, ' stroke="%s" stroke-width="1.5"' % stroke if stroke else ""))

    def frame(self):
        self.line(self.x0, self.y1, self.x1, self.y1, "#374151")
        self.line(self.x0, self.y0, self.x0, self.y1, "#374151")

    def svg(self):
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">%s</svg>'
                % (self.w, self.h, self.w, self.h, "".join(self.parts)))


def _scale(lo, hi, a, b, log=False):
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0

    def f(v):
        v = math.log10(v) if log else v
        return a + (v - lo) / span * (b - a)
    return f


def _nice_ticks(lo, hi, count=5):
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def img(svg_text, alt):
    data = base64.b64encode(svg_text.encode()).decode()
    return '<img class="plot" alt="%s" src="data:image/svg+xml;base64,%s">' % (_esc(alt), data)


# -- plots -------------------------------------------------------------------------------------

def histogram_svg(hist, atol, title):
    """Counts per 1/10 decade of absolute error; the first bin (upper edge 0) holds exact zeros."""
    edges, counts = hist.get("upper_edges") or [], hist.get("counts") or []
    c = Canvas(520, 220, title=title)
    if not counts:
        c.text(260, 110, "no elements compared", anchor="middle")
        return c.svg()
    n = len(counts)
    top = max(counts) or 1
    bar_w = (c.x1 - c.x0) / n
    ys = _scale(0, top, c.y1, c.y0)
    for i, (edge, count) in enumerate(zip(edges, counts)):
        c.rect(c.x0 + i * bar_w + 1, ys(count), bar_w - 2, c.y1 - ys(count), "#dc2626" if atol is not None and
               edge > atol else "#2563eb")
        exp = math.log10(edge) if edge > 0 else None
        if edge == 0:
            c.text(c.x0 + (i + 0.5) * bar_w, c.y1 + 13, "0", anchor="middle")
        elif abs(exp - round(exp)) < 1e-6 and (n <= 40 or int(round(exp)) % 2 == 0):
            c.text(c.x0 + (i + 1) * bar_w, c.y1 + 13, "1e%d" % round(exp), anchor="middle")
    for t in _nice_ticks(0, top, 4):
        c.text(c.x0 - 4, ys(t) + 3, "%d" % t if t == int(t) else fmt_number(t), anchor="end")
        c.line(c.x0, ys(t), c.x1, ys(t), "#e5e7eb")
    positive = [e for e in edges if e > 0]
    if atol and positive and positive[0] / 10 ** 0.1 <= atol <= positive[-1]:
        # bin i covers (edge[i-1], edge[i]]: place atol by its log position inside the bins
        first = edges.index(positive[0])
        pos = first + (math.log10(atol) - math.log10(positive[0])) * 10 + 1
        x = c.x0 + pos * bar_w
        c.line(x, c.y0, x, c.y1, "#111827", 1.5, "4 3")
        c.text(x + 3, c.y0 + 10, "atol %g" % atol)
    c.frame()
    c.text((c.x0 + c.x1) / 2, c.h - 6, "absolute error (log scale; red: above atol)", anchor="middle")
    c.text(14, (c.y0 + c.y1) / 2, "elements", anchor="middle", rotate=-90)
    return c.svg()


def worst_svg(reference, value, title):
    """Each element of the worst sample: PyTorch value against the backend's, worst one circled."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    val = np.asarray(value, dtype=np.float64).ravel()
    c = Canvas(420, 320, left=60, bottom=44, title=title)
    finite = np.isfinite(ref) & np.isfinite(val)
    if not finite.any():
        c.text(210, 160, "no finite elements", anchor="middle")
        return c.svg()
    err = np.where(finite, np.abs(ref - val), -1)
    order = np.argsort(-err)
    keep = order[:MAX_POINTS // 3]
    if ref.size > MAX_POINTS:
        rest = order[MAX_POINTS // 3:]
        keep = np.concatenate([keep, rest[np.linspace(0, rest.size - 1, MAX_POINTS - keep.size).astype(int)]])
    else:
        keep = order
    keep = keep[finite[keep]]
    lo = float(min(ref[finite].min(), val[finite].min()))
    hi = float(max(ref[finite].max(), val[finite].max()))
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    xs, ys = _scale(lo, hi, c.x0, c.x1), _scale(lo, hi, c.y1, c.y0)
    for t in _nice_ticks(lo, hi, 5):
        c.line(xs(t), c.y0, xs(t), c.y1, "#f3f4f6")
        c.line(c.x0, ys(t), c.x1, ys(t), "#f3f4f6")
        c.text(xs(t), c.y1 + 13, fmt_number(float(t)), anchor="middle")
        c.text(c.x0 - 4, ys(t) + 3, fmt_number(float(t)), anchor="end")
    c.line(xs(lo), ys(lo), xs(hi), ys(hi), "#9ca3af", 1, "4 3")
    for i in keep[::-1]:
        c.circle(xs(ref[i]), ys(val[i]), 2.2, "#2563eb", 0.5)
    w = int(order[0])
    c.circle(xs(ref[w]), ys(val[w]), 6, "#dc2626", 0.25, stroke="#dc2626")
    c.text(c.x0 + 6, c.y0 + 12, "worst element #%d: ref %s, got %s (|err| %s)"
           % (w, fmt_number(float(ref[w])), fmt_number(float(val[w])), fmt_number(float(abs(ref[w] - val[w])))), colour="#dc2626")
    c.frame()
    c.text((c.x0 + c.x1) / 2, c.h - 8, "PyTorch eager value (%d elements)" % ref.size, anchor="middle")
    c.text(14, (c.y0 + c.y1) / 2, "backend value", anchor="middle", rotate=-90)
    return c.svg()


def latency_svg(series, title):
    """One row per (backend, batch): every timed iteration as a dot, p50 and p99 as ticks (log ms)."""
    rows = [s for s in series if s["latencies"]]
    c = Canvas(760, 60 + 30 * max(len(rows), 1), left=190, bottom=36, title=title)
    if not rows:
        c.text(380, 50, "no backend was timed", anchor="middle")
        return c.svg()
    values = [v for s in rows for v in s["latencies"] if v > 0]
    lo, hi = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
    xs = _scale(lo, hi, c.x0, c.x1, log=True)
    for e in range(int(round(math.log10(lo))), int(round(math.log10(hi))) + 1):
        c.line(xs(10 ** e), c.y0, xs(10 ** e), c.y1, "#e5e7eb")
        c.text(xs(10 ** e), c.y1 + 13, fmt_number(float(10 ** e)), anchor="middle")
    step = (c.y1 - c.y0) / len(rows)
    for r, s in enumerate(rows):
        y = c.y0 + step * (r + 0.5)
        colour = PALETTE[s["colour"] % len(PALETTE)]
        c.text(c.x0 - 8, y + 3, "%s  batch %d" % (s["backend"], s["batch"]), anchor="end")
        for k, v in enumerate(s["latencies"]):
            jitter = ((k * 7919) % 11 - 5) * step * 0.05   # deterministic spread so dots do not hide
            c.circle(xs(max(v, lo)), y + jitter, 2.5, colour, 0.45)
        for label, v in (("p50", s["p50"]), ("p99", s["p99"])):
            c.line(xs(v), y - step * 0.38, xs(v), y + step * 0.38, "#111827", 2 if label == "p50" else 1)
        c.text(xs(s["p99"]) + 4, y - step * 0.2, "p50 %s / p99 %s ms" % (fmt_number(s["p50"]), fmt_number(s["p99"])), size=9)
    c.frame()
    c.text((c.x0 + c.x1) / 2, c.h - 6, "latency per batch, ms (log scale)", anchor="middle")
    return c.svg()


# -- the page ----------------------------------------------------------------------------------

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#111827;max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #e5e7eb}
h3{font-size:14px;margin:18px 0 6px}.meta{color:#4b5563;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left}
th{background:#f9fafb}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#166534;font-weight:bold}.fail{color:#b91c1c;font-weight:bold}.skip{color:#6b7280}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold}
.badge.pass{background:#16a34a;color:#fff}.badge.fail{background:#dc2626;color:#fff}
.plots{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.plot{border:1px solid #e5e7eb}
code{font-size:11px;color:#374151}.note{background:#fef3c7;padding:6px 10px;font-size:13px}
"""




def _worst_arrays(path):
    if not os.path.exists(path):
        return {}
    import numpy as np

    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _stat(output, group, name):
    return (output.get(group) or {}).get(name)


def _result(passed, status=None):
    if status == "skipped":
        return '<span class="skip">skipped</span>'
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def parity_section(parity, worst):
    precision = (parity.get("precision") or {}).get("reference", "fp32")
    out = ["<h2>Parity</h2>",
           '<p class="meta">Reference: PyTorch eager at %s. Inputs: %d samples, %s.</p>'
           % (_esc(precision), parity.get("samples", 0), _esc((parity.get("inputs") or {}).get("description", "")))]
    groups = (parity.get("inputs") or {}).get("shape_groups") or []
    if groups:
        out.append('<p class="meta">Shape groups (each must pass): %s.</p>' % _esc("; ".join(
            "%s (%s, %s)" % (g["name"], g["tier"], g["source"]) for g in groups)))
    if (parity.get("inputs") or {}).get("weak_evidence"):
        out.append('<p class="note">Random inputs are weaker evidence than recorded data: configure '
                   '<code>parity.inputs</code>.</p>')
    out.append("<table><tr><th>backend</th><th>output</th><th>precision</th><th>decided by</th><th>max abs</th>"
               "<th>p99 abs</th><th>mean abs</th><th>max rel</th><th>cosine</th><th>top-1</th><th>result</th></tr>")
    for b in parity.get("backends", []):
        if b.get("status") == "skipped":
            out.append('<tr><td>%s</td><td colspan="9" class="skip">%s</td><td>%s</td></tr>'
                       % (_esc(b["name"]), _esc(b.get("reason") or ""), _result(False, "skipped")))
            continue
        for o in b.get("outputs", []):
            tol = o.get("tolerance") or {}
            out.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s (atol %s, rtol %s)</td>%s<td>%s</td></tr>" % (
                _esc(b["name"]), _esc(o["name"]), _esc(b.get("precision")), _esc(tol.get("statistic")),
                fmt_number(tol.get("atol")), fmt_number(tol.get("rtol")),
                "".join('<td class="num">%s</td>' % fmt_number(v) for v in (
                    _stat(o, "abs_error", "max"), _stat(o, "abs_error", "p99"), _stat(o, "abs_error", "mean"),
                    _stat(o, "rel_error", "max"),
                    o.get("cosine_similarity"), o.get("top1_agreement"))),
                _result(o.get("passed"))))
    out.append("</table>")
    if parity.get("failures"):
        out.append("<ul>%s</ul>" % "".join('<li class="fail">%s</li>' % _esc(f) for f in parity["failures"]))
    for b in parity.get("backends", []):
        for o in b.get("outputs", []):
            key = "%s/%s" % (b["name"], o["name"])
            plots = [img(histogram_svg(o.get("abs_error_histogram") or {}, (o.get("tolerance") or {}).get("atol"),
                                       "%s: |error| histogram" % key), "error histogram of " + key)]
            if key + "/reference" in worst and key + "/value" in worst:
                plots.append(img(worst_svg(worst[key + "/reference"], worst[key + "/value"],
                                           "%s: worst sample" % key), "worst sample of " + key))
            out.append('<h3>%s %s</h3><div class="plots">%s</div>' % (_esc(key), _result(o.get("passed")),
                                                                      "".join(plots)))
    return "\n".join(out)


def bench_section(bench):
    if bench is None:
        return '<h2>Benchmark</h2><p class="note">No benchmark yet: run <code>pytools bench</code>.</p>'
    out = ["<h2>Benchmark</h2>",
           "<table><tr><th>backend</th><th>batch</th><th>iterations</th><th>p50 ms</th><th>p90 ms</th>"
           "<th>p99 ms</th><th>mean ms</th><th>samples/s</th><th>gate</th></tr>"]
    series = []
    for i, b in enumerate(bench.get("backends", [])):
        if b.get("status") == "skipped":
            out.append('<tr><td>%s</td><td colspan="8" class="skip">skipped: %s</td></tr>'
                       % (_esc(b["name"]), _esc(b.get("reason") or "")))
            continue
        for r in b.get("results", []):
            out.append("<tr><td>%s</td>%s<td>%s</td></tr>" % (_esc(b["name"]), "".join(
                '<td class="num">%s</td>' % fmt_number(v) for v in (r["batch_size"], r.get("iterations"), r["p50_ms"],
                                                               r["p90_ms"], r["p99_ms"], r.get("mean_ms"),
                                                               r["throughput"])), _esc(r.get("gate", "ok"))))
            series.append({"backend": b["name"], "batch": r["batch_size"], "latencies": r.get("latencies_ms") or [],
                           "p50": r["p50_ms"], "p99": r["p99_ms"], "colour": i})
    out.append("</table>")
    if bench.get("gate_failures"):
        out.append("<ul>%s</ul>" % "".join('<li class="fail">%s</li>' % _esc(f) for f in bench["gate_failures"]))
    out.append('<div class="plots">%s</div>' % img(latency_svg(series, "Latency distribution"),
                                                   "latency distribution per backend and batch size"))
    return "\n".join(out)


def artifacts_section(root):
    """Every output recorded in the stage states, linked relative to reports/ with its sha256."""
    rows = []
    wd = Workdir(root, create=False)
    for stage in (s.name for s in STAGES if s.tracked):  # the build's own artifacts, not records
        state = read_json(wd.state_file(stage), strict=True) or {}
        for rel, entry in sorted((state.get("outputs") or {}).items()):
            rows.append('<tr><td>%s</td><td><a href="../%s">%s</a></td><td class="num">%s</td><td><code>%s</code></td></tr>'
                        % (_esc(stage), _esc(rel), _esc(rel), fmt_number(entry.get("size")), _esc(entry.get("sha256"))))
    runs = read_json(wd.path(TRACKING_RUNS), strict=True) or []
    out = ["<h2>Artifacts</h2>", "<table><tr><th>stage</th><th>file</th><th>bytes</th><th>sha256</th></tr>"]
    out += rows or ['<tr><td colspan="4">no stage outputs recorded</td></tr>']
    out.append("</table>")
    if runs:
        latest = {}
        for r in runs:
            latest[r["stage"]] = r
        out.append("<h3>Tracking runs (Weights &amp; Biases)</h3><table><tr><th>stage</th><th>run</th><th>where</th></tr>")
        for r in latest.values():
            url = r.get("url") or ""
            out.append('<tr><td>%s</td><td>%s</td><td><a href="%s">%s</a></td></tr>'
                       % (_esc(r["stage"]), _esc(r["id"]), _esc(url), _esc(url)))
        out.append("</table>")
    return "\n".join(out)


def render(root):
    wd = Workdir(root, create=False)
    reports = wd.path(REPORTS_DIR)
    parity = read_json(wd.path(PARITY_JSON), strict=True)
    if parity is None:
        raise PytoolsError("no parity report in %s: run `pytools parity` first" % reports)
    bench = read_json(wd.path(BENCH_JSON), strict=True)
    manifest = read_json(wd.path(PACKAGE_MANIFEST), strict=True) or {}
    model = parity.get("model") or {}
    version = manifest.get("version") or model.get("version", "")
    passed = bool(parity.get("passed")) and not (bench or {}).get("gate_failures")
    head = ('<h1>%s %s <span class="badge %s">%s</span></h1><p class="meta">%s%s</p>'
            % (_esc(model.get("name", "")), _esc(version), "pass" if passed else "fail",
               "PASSED" if passed else "FAILED",
               "package built %s, platform %s" % (_esc(manifest.get("created")), _esc(manifest.get("platform")))
               if manifest else "not packaged yet",
               (", git %s" % _esc(manifest["git_commit"][:12])) if manifest.get("git_commit") else ""))
    body = "\n".join([head, parity_section(parity, _worst_arrays(wd.path(PARITY_WORST))),
                      bench_section(bench), artifacts_section(root)])
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<link rel="icon" href="data:,"><title>%s %s: pipeline report</title><style>%s</style></head>'
            '<body>\n%s\n</body></html>\n' % (_esc(model.get("name", "")), _esc(version), CSS, body))


def write(config, workdir=None):
    """Write `<workdir>/reports/report.html` (default workdir work/<name>) and return its path."""
    root = os.path.abspath(workdir or default_workdir(config["name"]))
    page = render(root)
    path = os.path.join(root, REPORT_HTML)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
