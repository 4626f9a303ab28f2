"""resources/model-cicd/pytools-venv.sh with real bash, flock and python venvs."""
import os
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCRIPT = os.path.join(ROOT, "resources", "model-cicd", "pytools-venv.sh")

pytestmark = pytest.mark.timeout(180)


def venv(workspace, cache, requirements="requirements.txt"):
    proc = subprocess.run(["bash", SCRIPT, requirements, "python3", str(cache)], cwd=str(workspace),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def test_creates_once_reuses_and_rebuilds_an_incomplete_venv(tmp_path):
    # No packages to install (the tests run offline); pip still runs against the file.
    (tmp_path / "requirements.txt").write_text("# no dependencies\n")
    cache = tmp_path / "cache"
    first = venv(tmp_path, cache)
    assert first.returncode == 0, first.stderr
    path = first.stdout.strip()
    assert first.stdout.count("\n") == 1 and path.startswith(str(cache) + "/py3.")
    assert os.path.isfile(os.path.join(path, ".complete"))
    assert os.access(os.path.join(path, "bin", "python"), os.X_OK)
    stamp = os.stat(os.path.join(path, ".complete")).st_mtime_ns
    started = time.monotonic()
    again = venv(tmp_path, cache)
    assert again.stdout.strip() == path and time.monotonic() - started < 2
    assert os.stat(os.path.join(path, ".complete")).st_mtime_ns == stamp
    (tmp_path / "requirements.txt").write_text("# no dependencies, but a new hash\n")
    changed = venv(tmp_path, cache)
    assert changed.returncode == 0 and changed.stdout.strip() != path
    # a creation that died half-way (no .complete marker) is rebuilt, never used
    os.unlink(os.path.join(path, ".complete"))
    (tmp_path / "requirements.txt").write_text("# no dependencies\n")
    leftover = os.path.join(path, "leftover")
    open(leftover, "w").close()
    rebuilt = venv(tmp_path, cache)
    assert rebuilt.returncode == 0 and rebuilt.stdout.strip() == path
    assert not os.path.exists(leftover) and os.path.isfile(os.path.join(path, ".complete"))


def test_concurrent_builds_share_one_venv(tmp_path):
    (tmp_path / "requirements.txt").write_text("# shared\n")
    cache = tmp_path / "cache"
    procs = [subprocess.Popen(["bash", SCRIPT, "requirements.txt", "python3", str(cache)],
                              cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=150) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1
    assert [n for n in os.listdir(str(cache)) if not n.startswith(".")] == [
        os.path.basename(outs[0][0].strip())]


def test_missing_requirements_file_is_one_clear_line(tmp_path):
    proc = venv(tmp_path, tmp_path / "cache", "nope.txt")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "pytools-venv: requirements file 'nope.txt' not found in %s" % tmp_path
