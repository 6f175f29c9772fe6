#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: the README's second command.
#
# Creates .venv beside this checkout, installs fakeai in editable mode with its test extras
# (which compiles the Cython kernel), installs the Debian packages some tests drive for real
# when they are missing (as root), then runs pytest, and once more the kernel and registry
# tests with the pure-Python twin forced (FAKEAI_NO_EXTENSIONS=1).
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(prometheus chromium)  # promtool and a real Prometheus server; the dashboard's browser
if ((${#debian_packages[@]})); then
    missing=()
    for package in "${debian_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/python -m pytest "$@"
FAKEAI_NO_EXTENSIONS=1 .venv/bin/python -m pytest tests/test_window.py tests/test_region.py tests/test_registry.py \
    tests/test_kvcache.py tests/test_kvcache_http.py tests/test_workers.py tests/test_label_space.py
