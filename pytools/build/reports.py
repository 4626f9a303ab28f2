"""Parity and benchmark reports: JSON, JUnit XML (one test case per backend x shape group x output,
for Jenkins' `junit` step) and Markdown for merge requests."""
import os
import xml.etree.ElementTree as ET

from pytools.core.console import fmt_number
from pytools.core.files import atomic_write_bytes, atomic_write_json
from pytools.core.workdir import (BENCH_JSON, BENCH_MD, BENCH_REPORTS, PARITY_JSON, PARITY_MD,
                                  PARITY_REPORTS, PARITY_WORST, PARITY_XML, REPORTS_DIR)


def parity_junit(report):
    """One test case per backend x shape group x output (`logits [batch=8]`)."""
    suite = ET.Element("testsuite", name="parity")
    tests = failures = skipped = 0
    groups = [g["name"] for g in report["inputs"]["shape_groups"]]
    for b in report["backends"]:
        per_group = b.get("shape_groups") or [{"name": g, "outputs": [{"name": o} for o in _output_names(report)]}
                                              for g in groups]
        for g in per_group:
            for o in g["outputs"]:
                tests += 1
                case = ET.SubElement(suite, "testcase", classname="parity.%s" % b["name"],
                                     name="%s [%s]" % (o["name"], g["name"]))
                if b["status"] == "skipped":
                    skipped += 1
                    ET.SubElement(case, "skipped", message="skipped: %s" % b["reason"])
                elif not o["passed"]:
                    failures += 1
                    node = ET.SubElement(case, "failure", message=o["failure"], type="ParityFailure")
                    node.text = "worst element: %s" % o["worst"]
                else:
                    ET.SubElement(case, "system-out").text = (
                        "max abs %.3g, p99 abs %.3g, cosine %.6f, %d elements"
                        % (o["abs_error"]["max"], o["abs_error"]["p99"], o["cosine_similarity"], o["elements"]))
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    suite.set("time", "%.3f" % sum(b.get("seconds") or 0.0 for b in report["backends"]))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _output_names(report):
    for b in report["backends"]:
        if b["outputs"]:
            return [o["name"] for o in b["outputs"]]
    return report.get("output_names", [])


def _shape_groups_line(report):
    return "Shape groups: %s." % "; ".join(
        "%s (%s%s, %d samples)" % (g["name"], g["tier"], "" if g["source"] != "random" or
                                    report["inputs"]["source"] == "random" else ", random", g["samples"])
        for g in report["inputs"]["shape_groups"])


def parity_markdown(report):
    inputs = report["inputs"]
    lines = ["### Parity: %s %s %s" % (report["model"]["name"], report["model"]["version"],
                                       "PASSED" if report["passed"] else "FAILED"),
             "",
             "Reference: PyTorch eager at %s (%s). Inputs: %d samples, %s."
             % (report["precision"]["reference"], report["precision"]["rule"], report["samples"],
                inputs["description"]),
             "", _shape_groups_line(report), ""]
    if inputs["weak_evidence"]:
        lines += ["> Random inputs are weaker evidence than recorded data: configure `parity.inputs`.", ""]
    lines += ["| backend | output | shape group | precision | decided by | max abs | p99 abs | max rel | cosine "
              "| top-1 | result |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in report["backends"]:
        if b["status"] == "skipped":
            lines.append("| %s | all | all | %s | - | - | - | - | - | - | skipped: %s |"
                         % (b["name"], b["precision"], b["reason"]))
            continue
        for g in b["shape_groups"]:
            for o in g["outputs"]:
                lines.append("| %s | %s | %s | %s | %s (atol %g, rtol %g) | %s | %s | %s | %s | %s | %s |" % (
                    b["name"], o["name"], g["name"], b["precision"], o["tolerance"]["statistic"],
                    o["tolerance"]["atol"], o["tolerance"]["rtol"], fmt_number(o["abs_error"]["max"]),
                    fmt_number(o["abs_error"]["p99"]), fmt_number(o["rel_error"]["max"]),
                    "%.6f" % o["cosine_similarity"], fmt_number(o.get("top1_agreement")),
                    "pass" if o["passed"] else "**FAIL**"))
    if report["failures"]:
        lines += [""] + ["- " + f for f in report["failures"]]
    return "\n".join(lines) + "\n"


def write_parity(report, wd):
    """parity.json/.xml/.md, and parity_worst.npz: each backend x output's worst sample
    (`<backend>/<output>/reference` and `/value` arrays), for plots. Returns the paths written,
    relative to the work directory."""
    import numpy as np

    os.makedirs(wd.path(REPORTS_DIR), exist_ok=True)
    arrays = {}
    for key, (ref, out) in report.get("worst_samples", {}).items():
        arrays[key + "/reference"], arrays[key + "/value"] = ref, out
    tmp = wd.path(PARITY_WORST.replace(".npz", ".partial.npz"))
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, wd.path(PARITY_WORST))
    atomic_write_json(wd.path(PARITY_JSON), {k: v for k, v in report.items() if k != "worst_samples"})
    atomic_write_bytes(wd.path(PARITY_XML), parity_junit(report))
    atomic_write_bytes(wd.path(PARITY_MD), parity_markdown(report).encode())
    return list(PARITY_REPORTS)


def bench_markdown(result):
    lines = ["### Benchmark: %s %s" % (result["model"]["name"], result["model"]["version"]), "",
             "| backend | shape | inputs | p50 ms | p90 ms | p99 ms | samples/s | result |",
             "|---|---|---|---|---|---|---|---|"]
    for b in result["backends"]:
        if b["status"] == "skipped":
            lines.append("| %s | - | - | - | - | - | - | skipped: %s |" % (b["name"], b["reason"]))
            continue
        for r in b["results"]:
            lines.append("| %s | %s | %s | %.3f | %.3f | %.3f | %.1f | %s |" % (
                b["name"], r["label"], ", ".join("%s %s" % kv for kv in r["shapes"].items()), r["p50_ms"], r["p90_ms"], r["p99_ms"], r["throughput"],
                r.get("gate", "ok")))
    if result.get("gate_failures"):
        lines += [""] + ["- " + f for f in result["gate_failures"]]
    return "\n".join(lines) + "\n"


def write_bench(result, wd):
    os.makedirs(wd.path(REPORTS_DIR), exist_ok=True)
    atomic_write_json(wd.path(BENCH_JSON), result)
    atomic_write_bytes(wd.path(BENCH_MD), bench_markdown(result).encode())
    return list(BENCH_REPORTS)
