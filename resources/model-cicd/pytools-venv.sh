#!/usr/bin/env bash
# Print the path of a Python virtualenv with REQUIREMENTS installed, for running `pytools`.
#
# Usage: pytools-venv.sh REQUIREMENTS [PYTHON] [CACHE_ROOT]
#
# The environment is cached on the agent, keyed by the sha256 of the requirements file and the
# Python version, so unchanged requirements cost one hash per call. Builds running at once on the
# same agent share it safely: creation happens under flock, and the environment only counts as
# ready once its `.complete` marker exists (a crashed install is rebuilt, never half-used).
# Only the path goes to stdout; pip's output goes to stderr (the build log).
set -euo pipefail

req="${1:?usage: pytools-venv.sh REQUIREMENTS [PYTHON] [CACHE_ROOT]}"
py="${2:-python3}"
root="${3:-${MODEL_CICD_VENV_CACHE:-$HOME/.cache/model-cicd/venvs}}"

if [ ! -f "$req" ]; then
    echo "pytools-venv: requirements file '$req' not found in $(pwd)" >&2
    exit 2
fi
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="py${pyver}-$( { cat "$req"; echo "python=$pyver"; } | sha256sum | cut -c1-16)"
venv="$root/$key"

if [ ! -f "$venv/.complete" ]; then
    mkdir -p "$root"
    exec 9>"$root/.$key.lock"
    flock 9
    if [ ! -f "$venv/.complete" ]; then
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
        touch "$venv/.complete"
    fi
    exec 9>&-
fi
echo "$venv"
