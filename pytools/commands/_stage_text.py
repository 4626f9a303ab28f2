"""One-line descriptions of stage results, shared by the stage commands and `pytools run`."""


def key_numbers(name, summary):
    s = summary or {}
    if name == "checkpoint":
        text = "sha256 %s" % s.get("sha256", "")[:12] if "sha256" in s else "trained %s epochs" % s.get("epochs")
        if s.get("holdout_accuracy") is not None:
            text += ", holdout accuracy %.3f" % s["holdout_accuracy"]
        return text
    if name == "export":
        text = "opset %s, %s nodes" % (s.get("opset"), s.get("nodes"))
        return text + (" -> %s simplified" % s["nodes_simplified"] if s.get("simplified") else "")
    if name == "engine":
        return s["reason"] if "reason" in s else "%s %s" % (s.get("precision"), s.get("platform"))
    if name == "parity":
        compared = [n for n, b in s.get("backends", {}).items() if b["status"] != "skipped"]
        worst = max((o["max_abs_error"] for b in s.get("backends", {}).values()
                     for o in b.get("outputs", {}).values()), default=None)
        text = "%s: %s on %d samples" % ("PASSED" if s.get("passed") else "FAILED", ", ".join(compared) or "nothing",
                                         s.get("samples", 0))
        return text + (", max abs error %.2g" % worst if worst is not None else "")
    if name == "bench":
        for backend in ("tensorrt", "onnxruntime", "torch"):
            per_batch = s.get("results", {}).get(backend, {})
            if per_batch and "skipped" not in per_batch:
                batch, r = sorted(per_batch.items(), key=lambda kv: int(kv[0]))[0]
                return "%s batch %s: p50 %.2f ms, p99 %.2f ms" % (backend, batch, r["p50_ms"], r["p99_ms"])
        return ""
    if name == "package":
        return "%s %s, %d files, %.1f MB%s" % (s.get("version"), s.get("runtime"), s.get("files", 0),
                                              s.get("bytes", 0) / 1e6, ", signed" if s.get("signed") else "")
    if name == "publish":
        return "%s %s -> %s (%s: %s)" % (s.get("name"), s.get("version"), s.get("channel"), s.get("backend"),
                                         s.get("url") or s.get("location"))
    if name == "rollout":
        done = ", ".join("%d %s" % (n, outcome) for outcome, n in sorted(s.get("outcomes", {}).items()))
        return "%s to %s simulated robots: %s" % (s.get("state"), s.get("robots"), done)
    return ""


def status_text(result):
    if result.status == "up to date" and result.cached_status == "skipped":
        return "up to date (skipped)"
    return result.status


def line(result):
    return "%-10s %-20s %6.2fs  %s" % (result.name, status_text(result), result.seconds,
                                       key_numbers(result.name, result.summary))
