"""The Helm chart in deploy/helm/fakeai: Helm (``tests.helm``) lints and renders it, and what it
renders is what the image and fakeai expect: the image's port and entrypoint, probe paths that
answer as Kubernetes needs, FAKEAI_* variables that are settings and read back as the values
given, /dev/shm sized for the workers, and a pod spec fakeai really serves from (a read-only
root, /dev/shm of the chart's size)."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from litestar.testing import TestClient

import fakeai
from fakeai.app import create_app
from fakeai.cli import SHARED_HEADROOM, shared_metrics_bytes
from fakeai.config import Settings, describe_settings, env_name, setting_sections, settings_from_env
from fakeai.metrics.labels import engines_per_process, region_capacity
from fakeai.metrics.regions import region_file_bytes
from tests.helm import helm_binary
from tests.servers import eventually, running_cli

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "fakeai"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
MIB = 2**20
CHAT = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _generator():
    spec = importlib.util.spec_from_file_location("update_helm_values", ROOT / "scripts" / "update-helm-values.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
OFFERED = [name for name, *_ in GENERATOR.offered()]


def helm(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *arguments], capture_output=True, text=True, check=False)


@functools.cache
def _rendered(values: str, flags: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        file.write(values)
        file.flush()
        result = helm("template", "test", str(CHART), "-f", file.name, *flags)
    assert result.returncode == 0, result.stderr
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


class Manifests:
    """What ``helm template`` renders for ``values`` (a values file's content) and ``flags``."""

    def __init__(self, values: dict[str, Any] | None = None, *flags: str) -> None:
        self.documents = _rendered(json.dumps(values or {}, sort_keys=True), flags)

    def kinds(self) -> list[str]:
        return sorted(document["kind"] for document in self.documents)

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = [document for document in self.documents if document["kind"] == kind]
        return found

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["spec"]["containers"]
        return container

    @property
    def env(self) -> dict[str, str]:
        return {variable["name"]: variable["value"] for variable in self.container.get("env", [])}

    @property
    def shm_mib(self) -> int:
        (mount,) = [mount for mount in self.container["volumeMounts"] if mount["mountPath"] == "/dev/shm"]
        (volume,) = [volume for volume in self.pod["spec"]["volumes"] if volume["name"] == mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory"
        return int(volume["emptyDir"]["sizeLimit"].removesuffix("Mi"))


def _dockerfile(pattern: str) -> str:
    found = re.search(pattern, DOCKERFILE, re.MULTILINE)
    assert found, f"the Dockerfile has no {pattern!r}"
    return found[1]


# -- Helm's checks ---------------------------------------------------------------------------


def test_helm_lint_strict_passes_and_the_schema_refuses_what_fakeai_would() -> None:
    for flags in ((), ("--set", "replicaCount=3", "--set", "settings.workers=4",
                       "--set", "serviceMonitor.enabled=true")):
        result = helm("lint", "--strict", str(CHART), *flags)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout + result.stderr
    # values.schema.json: a wrong range, an unknown setting and a wrong type never reach a cluster
    for flag, named in (("settings.workers=0", "/settings/workers"), ("settings.wrokers=2", "wrokers"),
                        ("settings.error_rate=often", "/settings/error_rate"),
                        ("settings.routing_policy=fastest", "/settings/routing_policy")):
        refused = helm("template", "test", str(CHART), "--set", flag)
        assert refused.returncode != 0 and named in refused.stderr, (flag, refused.stderr)
    refused = helm("template", "test", str(CHART), "--set", "settings.port=0")
    assert refused.returncode != 0 and "a pod needs a fixed port" in refused.stderr


def test_values_and_schema_are_the_ones_generated_from_the_settings() -> None:
    assert GENERATOR.values_text((CHART / "values.yaml").read_text()) == (CHART / "values.yaml").read_text(), (
        "regenerate them: python scripts/update-helm-values.py")
    assert GENERATOR.schema_text() == (CHART / "values.schema.json").read_text(), (
        "regenerate them: python scripts/update-helm-values.py")
    # every setting, in the settings table's order, unset: only what a user sets is rendered
    table_order = [name for _, names in setting_sections() for name in names]
    assert list(DEFAULTS["settings"]) == [name for name in table_order if name not in {"host", "fd"}]
    assert set(DEFAULTS["settings"].values()) == {None}
    assert set(GENERATOR.CHART_OWNED) == {"host", "fd"}
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["settings"]
    assert list(schema["properties"]) == OFFERED and schema["additionalProperties"] is False


# -- what the image and fakeai expect ----------------------------------------------------------


def test_the_pod_runs_the_image_as_the_dockerfile_builds_it() -> None:
    manifests = Manifests()
    assert manifests.kinds() == ["Deployment", "Service"]  # no ServiceMonitor unless asked for
    container = manifests.container
    # the image's entrypoint (no command or args) on the image's port, fakeai's default
    assert json.loads(_dockerfile(r"^ENTRYPOINT (.*)$")) == ["fakeai", "serve", "--host", "0.0.0.0"]
    assert "command" not in container and "args" not in container
    port = int(_dockerfile(r"^EXPOSE (\d+)$"))
    assert port == int(_dockerfile(r"FAKEAI_PORT=(\d+)")) == Settings().port
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["image"] == f"fakeai:{fakeai.__version__}"
    assert "env" not in container, "only the settings a user sets become variables"
    # the Service forwards to that port, by name
    service = manifests.one("Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= manifests.pod["metadata"]["labels"].items()
    # the image's user, numeric so the kubelet can check runAsNonRoot; nothing written but /dev/shm
    pod_security = manifests.pod["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == int(_dockerfile(r"useradd .*--uid (\d+)"))
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Prometheus finds each pod by its annotations
    assert manifests.pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics/prometheus"}


def test_the_probes_ask_fakeai_what_kubernetes_needs_to_know() -> None:
    """Kubernetes counts 200-399 as a probe's success. Startup and liveness: the process serves,
    even while the model loads; readiness: not while it loads, and still once it is unhealthy
    (injected errors are what a user asked for, not a reason to take the pod out of service)."""
    container = Manifests().container
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {probe["port"] for probe in probes.values()} == {"http"}

    def succeeds(response: httpx.Response) -> bool:
        return 200 <= response.status_code < 400

    with TestClient(create_app(Settings(startup_seconds=3600))) as loading:
        assert succeeds(loading.get(probes["startupProbe"]["path"]))
        assert succeeds(loading.get(probes["livenessProbe"]["path"]))
        ready = loading.get(probes["readinessProbe"]["path"])
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
    with TestClient(create_app(Settings(zero_latency=True, error_rate=1.0))) as failing:
        assert all(failing.post("/v1/chat/completions", json=CHAT).status_code >= 400 for _ in range(5))
        ready = failing.get(probes["readinessProbe"]["path"])
        assert succeeds(ready) and ready.json()["status"] == "unhealthy"
        assert succeeds(failing.get(probes["livenessProbe"]["path"]))
        # the scrape path the annotations name is fakeai's Prometheus exposition
        scraped = failing.get(Manifests().pod["metadata"]["annotations"]["prometheus.io/path"])
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'fakeai_requests_total{endpoint="/v1/chat/completions"} 5' in scraped.text


def test_every_setting_given_as_a_value_reaches_fakeai_as_that_value() -> None:
    # all of them at once, each set to its default: every variable is a setting's, read back equal
    defaults = {name: default for name, _, default, _ in describe_settings() if name in OFFERED}
    everything = Manifests({"settings": {name: list(value) if isinstance(value, tuple) else value
                                         for name, value in defaults.items()}})
    assert set(everything.env) == {env_name(name) for name in OFFERED}
    assert settings_from_env(everything.env) == Settings()
    # values of every kind, from a values file and from --set (a decimal given by --set is text)
    given = {"max_request_bytes": 20_000_000, "ttft_ms": 0.02, "accept_any_model": True,
             "models": ["org/model-a", "model-b"], "error_kinds": ["rate_limit", "context_length"],
             "routing_policy": "least-loaded", "admin_key": "12345", "seed": 0, "cors_origins": []}
    manifests = Manifests({"settings": given}, "--set", "settings.error_rate=0.25", "--set", "settings.workers=2")
    assert manifests.env["FAKEAI_MAX_REQUEST_BYTES"] == "20000000"  # never 2e+07
    assert set(manifests.env) == {env_name(name) for name in (*given, "error_rate", "workers")}
    assert settings_from_env(manifests.env) == Settings().replace(**given, error_rate=0.25, workers=2)


def test_replicas_workers_a_setting_and_the_service_monitor() -> None:
    manifests = Manifests({"replicaCount": 3, "settings": {"workers": 4, "ttft_ms": 20},
                           "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}})
    assert manifests.kinds() == ["Deployment", "Service", "ServiceMonitor"]
    assert manifests.one("Deployment")["spec"]["replicas"] == 3
    assert manifests.env == {"FAKEAI_WORKERS": "4", "FAKEAI_TTFT_MS": "20"}
    shm, sizing = DEFAULTS["shm"], DEFAULTS["autoResources"]
    assert manifests.shm_mib == shm["baseMiB"] + 4 * shm["perWorkerMiB"]
    memory = sizing["memoryBaseMiB"] + 4 * sizing["memoryPerWorkerMiB"] + manifests.shm_mib
    assert manifests.container["resources"] == {
        "requests": {"cpu": f"{4 * sizing['cpuPerWorkerMillicores']}m", "memory": f"{memory}Mi"},
        "limits": {"memory": f"{2 * memory}Mi"}}  # no CPU limit: throttling would distort the latencies
    monitor, service = manifests.one("ServiceMonitor"), manifests.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "fakeai"  # the kit's job name
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] and endpoint["path"] == "/metrics/prometheus"
    # resources given are taken as they are
    chosen = {"requests": {"cpu": "3", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert Manifests({"resources": chosen}).container["resources"] == chosen


@pytest.mark.parametrize("workers", [1, 2, 8, 64])
def test_dev_shm_has_the_room_fakeai_asks_for_its_workers(workers: int) -> None:
    """fakeai serve uses /dev/shm when its free room is SHARED_HEADROOM x what the workers'
    regions and the history need, and at its stop reads them through one more small region."""
    manifests = Manifests({"settings": {"workers": workers}})
    settings = Settings(workers=workers)
    summary = region_file_bytes(1, *region_capacity(settings.max_model_labels, engines_per_process(
        settings.kv_workers, workers), settings.max_context_tokens))
    assert manifests.shm_mib * MIB >= SHARED_HEADROOM * shared_metrics_bytes(settings) + summary
    assert manifests.shm_mib == DEFAULTS["shm"]["baseMiB"] + workers * DEFAULTS["shm"]["perWorkerMiB"]


# -- the pod spec, run for real (without Kubernetes) -------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    0x20000, 1, 2, 4, 32, 4096, 16384, 1 << 18)


def _pod_file_systems(shm_mib: int):
    """For the child: a mount namespace of its own, its root read-only (the chart's
    readOnlyRootFilesystem) and /dev/shm a new tmpfs of ``shm_mib`` (the chart's emptyDir)."""
    def enter() -> None:
        for call in (lambda: _LIBC.unshare(CLONE_NEWNS),
                     lambda: _LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None),
                     lambda: _LIBC.mount(None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),
                     lambda: _LIBC.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV,
                                         f"size={shm_mib}m".encode())):
            if call() != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    return enter


def test_fakeai_serves_from_the_charts_pod_spec_and_not_from_a_smaller_dev_shm() -> None:
    pod = Manifests({"settings": {"workers": 2}})
    with running_cli(env=pod.env, preexec_fn=_pod_file_systems(pod.shm_mib)) as base_url:
        eventually(lambda: len(base_url.worker_pids()) == 2, "two worker processes", seconds=30)
        assert httpx.post(base_url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        scraped = httpx.get(base_url + "/metrics/prometheus").text
        assert 'fakeai_requests_total{endpoint="/v1/chat/completions"} 1' in scraped
    # the room the chart gives one worker is too little for four: with nowhere else to write,
    # fakeai says so and stops (rather than a traceback)
    crowded = Manifests({"settings": {"workers": 4}})
    refused = r"no room for the metrics regions of 4 worker\(s\).*shm.perWorkerMiB"
    with pytest.raises(RuntimeError, match=refused), running_cli(
            env=crowded.env, preexec_fn=_pod_file_systems(Manifests().shm_mib)):
        pass
