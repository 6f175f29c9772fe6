"""The metrics label space is bounded and safe, whatever model names clients send.

A fixed budget of distinct models gets its own label (the configured ``--models`` first); any
other name is counted under ``__other__``. Any name is accepted: long, with ``|``, quotes,
backslashes, newlines or non-ASCII; it is shown exactly where it is shown and never touches
another model's counters. The region always has room for every endpoint, status and finish
reason, so a first-time one is recorded however many models came before.
"""

from __future__ import annotations

import collections
import mmap
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from fakeai.app import create_app
from fakeai import config
from fakeai.config import Settings
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.labels import (
    ERROR_STATUSES,
    FINISH_REASONS,
    MAX_ENDPOINTS,
    MAX_ENGINE_LABELS,
    MAX_KV_WORKERS,
    MAX_MODEL_LABELS,
    OTHER_MODEL,
    ModelLabels,
    region_capacity,
    region_need,
)
from fakeai.metrics.schema import METRICS
from fakeai.region import Region
from tests.servers import eventually, running_cli

CHAT = "/v1/chat/completions"
CONFIGURED = Settings().models
HOSTILE = (
    "m" * 300,
    "a",
    "a|b",
    "a|b|stop",
    'say "hi"',
    "back\\slash",
    "new\nline",
    "naïve-模型-🚀",
    "tab\there\r",
    "}{=,",
    "nul\u0000x",
    "\u2028line-separator",
)


def chat(model: str, max_tokens: int = 2) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}


def succeeded(document: dict, model: str) -> int:
    return sum(document["models"][model]["requests_succeeded"].values())


def prometheus_successes(text: str, parse=text_string_to_metric_families) -> dict[str, float]:
    """``{model_name: requests}`` from ``vllm:request_success_total``, as Prometheus reads it."""
    found: dict[str, float] = collections.defaultdict(float)
    for family in parse(text):
        if family.name == "vllm:request_success":
            for sample in family.samples:
                found[sample.labels["model_name"]] += sample.value
    return dict(found)


def prometheus_value(text: str, family_name: str) -> float:
    (family,) = [family for family in text_string_to_metric_families(text) if family.name == family_name]
    (sample,) = [sample for sample in family.samples if not sample.name.endswith("_created")]
    return sample.value


# -- the arithmetic: everything bounded fits ----------------------------------------------


def test_the_largest_label_space_the_settings_allow_is_bounded() -> None:
    """vLLM's families are per (model label, engine): the settings refuse more pairs per process
    than ``MAX_ENGINE_LABELS``, whose region is stated (``labels.MAX_ENGINE_LABELS``: about 5.6 KB
    a pair, about 50 MB at most)."""
    assert MAX_ENGINE_LABELS == config.MAX_ENGINE_LABELS
    keys, cells = region_capacity(MAX_ENGINE_LABELS - 1, 1, 131_072)
    assert keys * 128 + cells * 8 < 50_000_000
    keys, cells = region_capacity(MAX_ENGINE_LABELS - 1, 1, 10**12)  # the largest context's buckets too
    assert keys * 128 + cells * 8 < 57_000_000
    one_pair = [a - b for a, b in zip(region_need(1, engines=1), region_need(1, engines=0))]
    assert one_pair[0] * 128 + one_pair[1] * 8 < 5_800
    assert Settings().replace(kv_workers=81).kv_workers == 81  # 101 labels x 81 = 8181 pairs
    with pytest.raises(ValueError, match="pairs"):
        Settings().replace(kv_workers=82)
    assert Settings().replace(kv_workers=256, workers=4, max_model_labels=127).kv_workers == 256  # 128 x 64
    assert Settings().replace(kv_workers=256, max_model_labels=31).kv_workers == 256  # 32 x 256
    # the settings cannot ask for more labels than the table holds
    assert Settings().replace(max_model_labels=MAX_MODEL_LABELS).max_model_labels == MAX_MODEL_LABELS
    with pytest.raises(ValueError):
        Settings().replace(max_model_labels=MAX_MODEL_LABELS + 1)
    with pytest.raises(ValueError):
        Settings().replace(models=tuple(f"m{i}" for i in range(MAX_MODEL_LABELS + 1)))
    with pytest.raises(ValueError):
        Settings().replace(models=(OTHER_MODEL,))


def test_every_endpoint_label_the_app_can_record_is_within_the_reserved_endpoints() -> None:
    app = create_app(Settings(record_monitoring=True))
    templates = {route.path_format for route in app.routes}
    assert len(templates | {"unmatched"}) <= MAX_ENDPOINTS
    assert max(len(f"c|errors|{template}|599".encode()) for template in templates) <= 120  # a key can name it


def test_every_label_endpoint_status_reason_and_kv_worker_at_once_is_recorded() -> None:
    """The proof by filling: the largest budget, then every endpoint with every status, every
    model with every finish reason, every KV worker: nothing refused, every count exact."""
    registry = MetricsRegistry(window_seconds=5.0, max_samples=1024, model_label_budget=MAX_MODEL_LABELS,
                               configured_models=(), engines=8)
    now = 1.0
    models = [f"model|{index}" for index in range(MAX_MODEL_LABELS + 5)]  # 5 more than the budget
    for number, name in enumerate(models):
        for reason in FINISH_REASONS:
            registry.routed(registry.request_started(name), number % 8)
            registry.record("/v1/chat/completions", 0.01, 200, 3, 4, model=name, finish_reason=reason, now=now,
                            kv=(number % 8, 3, 0, 0, None))  # every model label on every engine
    endpoints = ["unmatched", *(f"/route/{index}" for index in range(MAX_ENDPOINTS - 1))]
    for endpoint in endpoints:
        for status in range(100, 600):
            registry.record(endpoint, 0.01, status, now=now)
    for worker in range(MAX_KV_WORKERS):
        registry.record("/v1/completions", 0.01, 200, 16, 1, now=now, kv=(worker, 16, 0, 0, None))
    snapshot = registry.snapshot()
    assert snapshot.label_space.unrecorded_figures == 0
    assert len(snapshot.models) == MAX_MODEL_LABELS + 1
    for name in models[:MAX_MODEL_LABELS]:
        assert snapshot.models[name].success_total == dict.fromkeys(sorted(FINISH_REASONS), 1)
    assert snapshot.models[OTHER_MODEL].success_total == dict.fromkeys(sorted(FINISH_REASONS), 5)
    assert snapshot.label_space.other_requests == 5 * len(FINISH_REASONS)
    for endpoint in endpoints:
        errors = snapshot.endpoints[endpoint].errors_total
        assert errors == dict.fromkeys(ERROR_STATUSES, 1)
        assert snapshot.endpoints[endpoint].requests_total == 500
    routed = [worker.requests_routed for worker in snapshot.kv_cache.workers[:MAX_KV_WORKERS]]
    assert routed[8:] == [1] * (MAX_KV_WORKERS - 8)
    assert sum(routed[:8]) == 8 + len(models) * len(FINISH_REASONS)
    assert sum(model.running for model in snapshot.models.values()) == 0 == snapshot.in_flight


def test_the_region_need_counts_every_key_the_writer_makes() -> None:
    """region_need is what the writer allocates (so the arithmetic above is about real keys)."""
    registry = MetricsRegistry(window_seconds=5.0, max_samples=1024, model_label_budget=3, configured_models=())
    base_keys, base_cells = len(registry.regions.own.keys()), len(registry.regions.own.cells())
    for reason in FINISH_REASONS:
        registry.routed(registry.request_started("x"), 0)
        registry.record("/e", 0.01, 200, model="x", finish_reason=reason, now=1.0, kv=(0, 1, 0, 0, None))
    for status in ERROR_STATUSES:
        registry.record("/e", 0.01, status, now=1.0)
    own_cells = [metric for metric in METRICS if metric.cell is not None]  # the registry makes them at start
    assert {metric.cell.scope for metric in own_cells} <= {"global"}
    assert (base_keys, base_cells) == region_need(0, endpoints=0, kv_workers=0, buckets=registry.buckets)
    assert (base_keys, base_cells) != region_need(0, endpoints=0, kv_workers=0, metrics=(), buckets=registry.buckets)
    assert (len(registry.regions.own.keys()), len(registry.regions.own.cells())) == region_need(
        1, endpoints=1, kv_workers=1, engines=1, buckets=registry.buckets)


# -- the label table -----------------------------------------------------------------------


def test_processes_sharing_a_table_give_every_name_the_same_label(tmp_path) -> None:
    first = ModelLabels(4, ("c1", "c2"), tmp_path)
    second = ModelLabels(4, ("c1", "c2"), tmp_path)  # another worker, started later
    assert [first.label("c1"), second.label("c2")] == [0, 1]
    assert second.label("x|y") == 2  # the first name anyone sends
    assert first.label("z") == 3
    assert first.label("x|y") == 2  # what the other process gave it
    assert second.label("late") is None and first.label("late") is None  # the table is full
    assert first.names() == second.names() == ["c1", "c2", "x|y", "z"]
    assert ModelLabels(4, (), tmp_path).names() == ["c1", "c2", "x|y", "z"]  # a restarted worker


def test_a_table_whose_directory_is_gone_counts_new_names_as_other(tmp_path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    labels = ModelLabels(10, ("c",), directory)
    assert labels.label("kept") == 1
    (directory / "model-labels.table").unlink()
    directory.rmdir()  # the server is stopping
    assert labels.label("new") is None
    assert labels.label("kept") == 1
    assert labels.names() == ["c", "kept"]


# -- over HTTP -------------------------------------------------------------------------------


def test_a_thousand_models_fill_the_budget_and_the_rest_is_counted_as_other() -> None:
    settings = Settings(accept_any_model=True, zero_latency=True)
    budget = settings.max_model_labels
    names = [f"client-model-{index:04d}" for index in range(1000)]
    labelled = budget - len(CONFIGURED)  # the configured models count first
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        statuses = collections.Counter()
        for name in names:
            response = client.post(CHAT, json=chat(name))
            statuses[response.status_code] += 1
            assert response.json()["model"] == name  # the answer keeps the real name
        assert statuses == {200: 1000}
        # a first-time endpoint and first-time statuses, after the budget is spent
        assert client.post("/v1/embeddings", json={"model": "yet-another", "input": "x"}).status_code == 200
        assert client.get("/nowhere").status_code == 404
        assert client.get(CHAT).status_code == 405
        assert client.post(CHAT, json=chat(CONFIGURED[0])).status_code == 200  # configured: always its label
        document = client.get("/metrics").json()
    assert document["totals"][CHAT]["requests"] == 1002
    assert document["errors_by_status"][CHAT] == {"405": 1}
    assert document["totals"]["/v1/embeddings"]["requests"] == 1
    assert document["errors_by_status"]["unmatched"] == {"404": 1}
    models = document["models"]
    assert set(models) == {*names[:labelled], OTHER_MODEL, CONFIGURED[0]}
    for name in names[:labelled]:
        assert succeeded(document, name) == 1
    assert succeeded(document, CONFIGURED[0]) == 1
    # (the embedding is not: no engine generated for it, as in vLLM's generation families)
    assert succeeded(document, OTHER_MODEL) == 1000 - labelled
    assert document["label_space"] == {
        "model_label_budget": budget,
        "model_labels": budget,
        "other_model": OTHER_MODEL,
        "other_requests": 1000 - labelled + 1,
        "unrecorded_figures": 0,
    }


def test_hostile_model_names_are_served_counted_and_shown_exactly() -> None:
    settings = Settings(accept_any_model=True, zero_latency=True)
    sent = collections.Counter()
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for round_ in range(3):
            for index, name in enumerate(HOSTILE):
                if round_ and index % 2:  # uneven counts, so a leak from one name to another shows
                    continue
                response = client.post(CHAT, json=chat(name))
                assert response.status_code == 200, response.text
                assert response.json()["model"] == name
                sent[name] += 1
        document = client.get("/metrics").json()
        text = client.get("/metrics/prometheus").text
        openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"}).text
    assert {name: succeeded(document, name) for name in HOSTILE} == dict(sent)
    assert {name: document["models"][name]["requests_running"] for name in HOSTILE} == dict.fromkeys(HOSTILE, 0)
    assert prometheus_successes(text) == {name: float(count) for name, count in sent.items()}
    assert prometheus_successes(openmetrics, parse_openmetrics) == {name: float(n) for name, n in sent.items()}
    assert document["label_space"]["other_requests"] == 0


def test_an_over_long_or_reserved_name_is_served_and_counted_as_other() -> None:
    settings = Settings(accept_any_model=True, zero_latency=True)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name in ("x" * 5000, OTHER_MODEL):
            response = client.post(CHAT, json=chat(name))
            assert response.status_code == 200
            assert response.json()["model"] == name
        document = client.get("/metrics").json()
    assert set(document["models"]) == {OTHER_MODEL}
    assert succeeded(document, OTHER_MODEL) == 2
    assert document["label_space"]["other_requests"] == 2


def test_configured_models_keep_their_own_labels_beyond_the_budget() -> None:
    long_name = "org/" + "very-long-model-name-" * 8  # 172 bytes: a key could not hold it
    configured = (long_name, "b|c", "c")
    settings = Settings(models=configured, zero_latency=True, accept_any_model=True, max_model_labels=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name in (*configured, long_name, "client-model"):
            assert client.post(CHAT, json=chat(name)).status_code == 200
        document = client.get("/metrics").json()
        text = client.get("/metrics/prometheus").text
    expected = {long_name: 2, "b|c": 1, "c": 1, OTHER_MODEL: 1}
    assert {name: succeeded(document, name) for name in document["models"]} == expected
    assert prometheus_successes(text) == {name: float(count) for name, count in expected.items()}
    assert document["label_space"]["model_label_budget"] == 3


def test_the_label_space_figures_are_exported_to_prometheus() -> None:
    settings = Settings(accept_any_model=True, zero_latency=True, max_model_labels=5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for index in range(9):
            assert client.post(CHAT, json=chat(f"n{index}")).status_code == 200
        text = client.get("/metrics/prometheus").text
    assert prometheus_value(text, "fakeai_model_label_budget") == 5
    assert prometheus_value(text, "fakeai_model_labels") == 5
    assert prometheus_value(text, "fakeai_model_other_requests") == 9 - 1  # 4 configured + n0 labelled
    assert prometheus_value(text, "fakeai_unrecorded_figures") == 0
    assert prometheus_successes(text) == {"n0": 1.0, OTHER_MODEL: 8.0}


# -- several workers -------------------------------------------------------------------------


def region_model_labels(path: Path) -> set[str]:
    """The model labels a worker's region has counted successes under."""
    with open(path, "r+b") as file:
        region = Region(mmap.mmap(file.fileno(), 0))
    return {name.split("|")[2] for name, _, _ in region.keys() if name.startswith("c|success|")}


def test_two_workers_agree_on_which_models_have_a_label() -> None:
    """Hostile and 300 more distinct names over two workers: every worker labels a name alike,
    every request is counted once, and first-time endpoints and statuses are still recorded."""
    budget = 10
    generated = [f"w-{index}" for index in range(300)]
    labelled = [*HOSTILE, *generated][: budget - len(CONFIGURED)]
    sent = collections.Counter()

    def fresh(method: str, path: str, **kwargs) -> httpx.Response:
        with httpx.Client(timeout=30, headers={"Connection": "close"}) as client:  # any worker may answer
            return client.request(method, server + path, **kwargs)

    with running_cli("--workers", "2", "--accept-any-model", "--zero-latency",
                     "--max-model-labels", str(budget)) as server:
        directory = server.shared_directory()

        def send(name: str) -> None:
            response = fresh("POST", CHAT, json=chat(name))
            assert response.status_code == 200, response.text
            assert response.json()["model"] == name
            sent[name] += 1

        # Which worker accepts a connection is the kernel's choice: the hostile names (the
        # labelled ones and others past the budget) go to each worker alone, then the rest to either.
        for _ in server.each_worker(2):
            for name in HOSTILE:
                send(name)
        for name in [*generated, *HOSTILE, *generated[:20]]:
            send(name)
        for _ in range(6):  # first-time endpoints and statuses, after the budget is spent
            assert fresh("POST", "/v1/embeddings", json={"model": "e", "input": "x"}).status_code == 200
            assert fresh("GET", "/nowhere").status_code == 404
            assert fresh("GET", CHAT).status_code == 405
        total = sum(sent.values())

        def counted() -> dict:
            document = httpx.get(server + "/metrics", timeout=10).json()
            totals = document["totals"]
            every = [totals.get(path, {}).get("requests") for path in (CHAT, "/v1/embeddings", "unmatched")]
            return document if every == [total + 6, 6, 6] else {}  # each may lag in the other worker

        eventually(lambda: counted(), "every request counted", seconds=10)
        document = counted()
        text = httpx.get(server + "/metrics/prometheus", timeout=10).text
        used = [region_model_labels(path) for path in directory.glob("*.region")]
    assert len(used) == 2
    assert all(labels - {"other"} and "other" in labels for labels in used), "both workers served both kinds"
    assert document["processes"] == 2
    assert set(document["models"]) == {*labelled, OTHER_MODEL}
    for name in labelled:
        assert succeeded(document, name) == sent[name]
    others = total - sum(sent[name] for name in labelled)  # not the embeddings: they reach no engine
    assert succeeded(document, OTHER_MODEL) == others
    assert document["label_space"]["other_requests"] == others + 6  # admitted for a model: the embeddings too
    assert document["label_space"]["model_labels"] == budget
    assert document["label_space"]["unrecorded_figures"] == 0
    assert document["errors_by_status"][CHAT] == {"405": 6}
    assert document["errors_by_status"]["unmatched"] == {"404": 6}
    assert document["totals"]["/v1/embeddings"]["requests"] == 6
    assert prometheus_successes(text) == {**{name: float(sent[name]) for name in labelled}, OTHER_MODEL: others}
