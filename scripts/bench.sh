#!/usr/bin/env bash
# The side-by-side performance run (benchmarks/compare.py): installs what it needs, then runs.
#
# Needs the test environment (.venv, from scripts/test.sh or `pip install -e '.[test]'`) and
# Debian's wrk; installs fakeai==0.3.2 (with pillow, which it needs) into its own virtual
# environment, benchmarks/.venv-fakeai-0.3.2, so it never touches this checkout's.
# Pass --quick for a short smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
old=benchmarks/.venv-fakeai-0.3.2
if [ ! -x "$old/bin/fakeai" ]; then
    python3 -m venv "$old"
    "$old/bin/python" -m pip install -q "fakeai==0.3.2" pillow
fi
.venv/bin/python -m benchmarks.compare --old-fakeai-venv "$old" "$@"
