"""Human output (tables, progress) on a terminal; JSON for machines."""
import json
import re
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def emit(args, data, human):
    """Print `data` as JSON when --json was given, else the human text."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    elif human:
        print(human)


def one_line(text):
    """A message as one plain line: terminal colour codes removed, line breaks folded."""
    return " ".join(ANSI.sub("", str(text)).split())


def emit_error(as_json, message, code):
    """Report a failure: one `error:` line on stderr, and the JSON object {"error", "code"} on
    stdout when --json was given. Returns the exit code."""
    message = one_line(message)
    print("error: %s" % message, file=sys.stderr)
    if as_json:
        json.dump({"error": message, "code": code}, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    sys.stderr.flush()
    return code


def table(headers, rows):
    """A plain aligned text table; every cell is turned into a string."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    out = [line(cells[0]), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (not in CI logs)."""

    def __init__(self, label, total, stream=None):
        self.label, self.total, self.done = label, max(int(total), 1), 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0

    def update(self, n=1):
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            self.stream.write("\r%-10s [%-30s] %3d%%" % (self.label, bar, frac * 100))
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fmt_number(value):
    """A number as reports show it: three significant digits, "-" for none, yes/no for flags."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "0" if value == 0 else "%.3g" % value
    return str(value)
