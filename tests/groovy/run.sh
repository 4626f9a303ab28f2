#!/usr/bin/env bash
# Run the Groovy step tests with Debian's Groovy 2.4 (the Groovy version inside Jenkins).
# Prints one line per test and closes with "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
exec groovy -cp "$here/lib:$here/stubs" "$here/RunTests.groovy" "$root"
