"""The HTML report, rendered in headless Chromium and checked as a person would see it."""
import html.parser
import os
import shutil
import urllib.parse

import pytest

from headless_chromium import Chromium, chromium_path

pytestmark = [pytest.mark.timeout(300),
              # never skipped in CI, where .ci/install.d/tracking.sh installs it
              pytest.mark.skipif(chromium_path() is None and not os.environ.get("CI"),
                                 reason="Debian chromium is not installed (apt-get install chromium)")]


@pytest.fixture(scope="module")
def report(scenario):
    from pytools.cli import main

    assert main(["report", scenario["config"], "--workdir", scenario["workdir"]]) == 0
    return os.path.join(scenario["workdir"], "reports", "report.html")


@pytest.fixture
def browser(tmp_path):
    chrome = Chromium(str(tmp_path / "chromium-profile"))
    yield chrome
    chrome.close()


def expected_plots(workdir):
    import json

    with open(os.path.join(workdir, "reports", "parity.json")) as f:
        parity = json.load(f)
    compared = sum(len(b["outputs"]) for b in parity["backends"] if b["status"] != "skipped")
    return 2 * compared + 1   # histogram + worst sample per backend x output, one latency plot


def test_report_renders_with_every_image(report, scenario, browser, tmp_path):
    browser.open("file://" + report)
    images = browser.images()
    assert len(images) == expected_plots(scenario["workdir"])
    broken = [i["alt"] for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert broken == []
    assert browser.errors() == []
    text = browser.evaluate("document.body.innerText")
    assert "crop-weed-classifier %s" % scenario["version"] in text and "PASSED" in text
    for word in ("torchscript", "onnxruntime-simplified", "TensorRT is not available on this machine",
                 "Benchmark", "samples/s", "Artifacts", "export/model.onnx", "Tracking runs"):
        assert word in text
    # every artifact link points at a file that is there
    hrefs = browser.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
    files = [urllib.parse.unquote(h[len("file://"):]) for h in hrefs if "/tracking/" not in h]
    assert len(files) >= 10 and all(os.path.isfile(f) for f in files), files
    shot = browser.screenshot(str(tmp_path / "report.png"))
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1280 and im.size[1] > 1500
        colours = im.convert("RGB").resize((160, 400)).getcolors(maxcolors=100000)
        assert len(colours) > 50          # tables, plots and text, not a blank page
    shutil.copy(shot, os.path.join(scenario["root"], "report-screenshot.png"))


def test_harness_sees_broken_images_and_console_errors(browser, tmp_path):
    """The checks above can fail: a page with a broken image and a console error is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img alt="bad" src="data:image/svg+xml;base64,bm90IGFuIHN2Zw==">'
                    '<img alt="missing" src="missing.png"><img alt="good" src="data:image/svg+xml;base64,'
                    'PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSIyIiBoZWlnaHQ9IjIiLz4=">'
                    '<script>console.error("boom")</script></body></html>')
    browser.open("file://" + str(page))
    images = {i["alt"]: i for i in browser.images()}
    assert images["good"]["width"] == 2
    assert images["bad"]["width"] == 0 and images["missing"]["width"] == 0
    errors = browser.errors()
    assert any("boom" in e for e in errors)
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors), errors


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.srcs += [v for k, v in attrs if k == "src" or (tag == "link" and k == "href")]


def test_report_is_self_contained(report):
    with open(report, encoding="utf-8") as f:
        refs = _Refs()
        refs.feed(f.read())
    assert "script" not in refs.tags
    assert refs.srcs and all(s.startswith("data:") for s in refs.srcs)


def test_report_without_parity_is_refused(cli, scenario, tmp_path):
    res = cli("report", scenario["config"], "--workdir", tmp_path / "empty")
    assert res.code != 0
    assert res.error_line.startswith("error: no parity report in ")
    assert not (tmp_path / "empty" / "reports" / "report.html").exists()


def test_report_write_api_for_pytools_run(scenario, tmp_path):
    """`pytools run` calls report_html.write(config, workdir) at its end."""
    from pytools.tracking import report_html

    workdir = tmp_path / "copy"
    shutil.copytree(scenario["workdir"], str(workdir), ignore=shutil.ignore_patterns("tracking", "fleet"))
    os.unlink(str(workdir / "reports" / "bench.json"))
    path = report_html.write(scenario["cfg"], str(workdir))
    assert path == str(workdir / "reports" / "report.html")
    with open(path) as f:
        page = f.read()
    assert "No benchmark yet" in page and "Tracking runs" not in page


def test_report_of_a_failed_parity(cli, scenario, browser, tmp_path):
    """Tighten the tolerance until ONNX Runtime fails: the page says FAILED, marks the rows and
    draws the bins above atol in red, and still renders whole."""
    import yaml

    folder = tmp_path / "crop_weed"
    shutil.copytree(os.path.dirname(scenario["config"]), str(folder))
    workdir = str(tmp_path / "work")
    shutil.copytree(scenario["workdir"], workdir, ignore=shutil.ignore_patterns("tracking", "fleet"))
    config = folder / "model.yaml"
    raw = yaml.safe_load(config.read_text())
    raw.setdefault("parity", {})["tolerances"] = {"fp32": {"atol": 1e-9, "rtol": 0.0, "statistic": "max"}}
    config.write_text(yaml.safe_dump(raw))
    assert cli("parity", config, "--workdir", workdir).code == 3
    res = cli("report", config, "--workdir", workdir)
    assert res.code == 0, res.err
    path = os.path.join(workdir, "reports", "report.html")
    with open(path) as f:
        page = f.read()
    assert '<span class="badge fail">FAILED</span>' in page
    browser.open("file://" + path)
    text = browser.evaluate("document.body.innerText")
    assert "FAIL" in text and "onnxruntime/logits" in text
    images = browser.images()
    assert images and all(i["complete"] and i["width"] > 0 for i in images)
    assert browser.errors() == []
    import base64
    import re

    histograms = [base64.b64decode(m).decode() for m in
                  re.findall(r'alt="error histogram of onnxruntime/logits" src="data:image/svg\+xml;base64,([^"]+)"', page)]
    assert histograms and 'fill="#dc2626"' in histograms[0]     # bins above atol are red
    browser.screenshot(str(tmp_path / "failed.png"))
    shutil.copy(str(tmp_path / "failed.png"), os.path.join(scenario["root"], "report-failed-screenshot.png"))
