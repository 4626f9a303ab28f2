"""Parity and benchmark reports: JSON, JUnit XML (one test case per backend x output, for Jenkins'
`junit` step) and Markdown for merge requests."""
import os
import xml.etree.ElementTree as ET

from pytools.hashing import atomic_write_bytes, atomic_write_json


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.3g" % value
    return str(value)


def parity_junit(report):
    suite = ET.Element("testsuite", name="parity")
    tests = failures = skipped = 0
    for b in report["backends"]:
        outputs = b["outputs"] or [{"name": o} for o in _output_names(report)]
        for o in outputs:
            tests += 1
            case = ET.SubElement(suite, "testcase", classname="parity.%s" % b["name"], name=o["name"],
                                 time="%.3f" % (b.get("seconds") or 0.0))
            if b["status"] == "skipped":
                skipped += 1
                ET.SubElement(case, "skipped", message="skipped: %s" % b["reason"])
            elif not o["passed"]:
                failures += 1
                node = ET.SubElement(case, "failure", message=o["failure"], type="ParityFailure")
                node.text = "worst element: %s" % o["worst"]
            else:
                ET.SubElement(case, "system-out").text = (
                    "max abs %.3g, p99 abs %.3g, cosine %.6f" % (o["abs_error"]["max"], o["abs_error"]["p99"],
                                                                o["cosine_similarity"]))
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _output_names(report):
    for b in report["backends"]:
        if b["outputs"]:
            return [o["name"] for o in b["outputs"]]
    return report.get("output_names", [])


def parity_markdown(report):
    inputs = report["inputs"]
    lines = ["### Parity: %s %s %s" % (report["model"]["name"], report["model"]["version"],
                                       "PASSED" if report["passed"] else "FAILED"),
             "",
             "Reference: PyTorch eager. Inputs: %d samples, %s." % (report["samples"], inputs["description"]),
             ""]
    if inputs["weak_evidence"]:
        lines += ["> Random inputs are weaker evidence than recorded data: configure `parity.inputs`.", ""]
    lines += ["| backend | output | precision | decided by | max abs | p99 abs | max rel | cosine | top-1 | result |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for b in report["backends"]:
        if b["status"] == "skipped":
            lines.append("| %s | all | %s | - | - | - | - | - | - | skipped: %s |" % (b["name"], b["precision"], b["reason"]))
            continue
        for o in b["outputs"]:
            lines.append("| %s | %s | %s | %s (atol %g, rtol %g) | %s | %s | %s | %s | %s | %s |" % (
                b["name"], o["name"], b["precision"], o["tolerance"]["statistic"], o["tolerance"]["atol"],
                o["tolerance"]["rtol"], _fmt(o["abs_error"]["max"]), _fmt(o["abs_error"]["p99"]),
                _fmt(o["rel_error"]["max"]), "%.6f" % o["cosine_similarity"],
                _fmt(o.get("top1_agreement")), "pass" if o["passed"] else "**FAIL**"))
    if report["failures"]:
        lines += [""] + ["- " + f for f in report["failures"]]
    return "\n".join(lines) + "\n"


def write_parity(report, folder):
    """parity.json/.xml/.md, and parity_worst.npz: each backend x output's worst sample
    (`<backend>/<output>/reference` and `/value` arrays), for plots."""
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for key, (ref, out) in report.get("worst_samples", {}).items():
        arrays[key + "/reference"], arrays[key + "/value"] = ref, out
    tmp = os.path.join(folder, "parity_worst.partial.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, os.path.join(folder, "parity_worst.npz"))
    atomic_write_json(os.path.join(folder, "parity.json"),
                      {k: v for k, v in report.items() if k != "worst_samples"})
    atomic_write_bytes(os.path.join(folder, "parity.xml"), parity_junit(report))
    atomic_write_bytes(os.path.join(folder, "parity.md"), parity_markdown(report).encode())
    return ["parity.json", "parity.xml", "parity.md", "parity_worst.npz"]


def bench_markdown(result):
    lines = ["### Benchmark: %s %s" % (result["model"]["name"], result["model"]["version"]), "",
             "| backend | batch | p50 ms | p90 ms | p99 ms | samples/s | result |", "|---|---|---|---|---|---|---|"]
    for b in result["backends"]:
        if b["status"] == "skipped":
            lines.append("| %s | - | - | - | - | - | skipped: %s |" % (b["name"], b["reason"]))
            continue
        for r in b["results"]:
            lines.append("| %s | %d | %.3f | %.3f | %.3f | %.1f | %s |" % (
                b["name"], r["batch_size"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["throughput"],
                r.get("gate", "ok")))
    if result.get("gate_failures"):
        lines += [""] + ["- " + f for f in result["gate_failures"]]
    return "\n".join(lines) + "\n"


def write_bench(result, folder):
    os.makedirs(folder, exist_ok=True)
    atomic_write_json(os.path.join(folder, "bench.json"), result)
    atomic_write_bytes(os.path.join(folder, "bench.md"), bench_markdown(result).encode())
    return ["bench.json", "bench.md"]
