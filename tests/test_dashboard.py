"""The dashboard in a real browser: what it shows, how it refreshes, exports, colours, recovers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.config import Settings
from tests.browser import Problems, chromium, screenshot, shown_figures
from tests.servers import eventually, free_port, running_app

MODEL = "openai/gpt-oss-120b"
CHAT = "/v1/chat/completions"
HEALTH_COLOURS = {"healthy": "rgb(26, 127, 55)", "degraded": "rgb(191, 135, 0)", "unhealthy": "rgb(207, 34, 46)"}
QUIET = dict(ttft_ms=2, itl_ms=1, ttft_jitter=0, itl_jitter=0, window_seconds=3600, history_interval_seconds=0.2)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def chat(client: httpx.Client, base_url: str, count: int = 1, **extra: object) -> list[int]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 8, **extra}
    return [client.post(base_url + CHAT, json=body).status_code for _ in range(count)]


def open_dashboard(browser, base_url: str, query: str = "?refresh=1"):
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    problems = Problems()
    problems.watch(page)
    with page.expect_response(lambda response: response.url == base_url + "/metrics") as first:
        page.goto(base_url + "/dashboard" + query)
    page.wait_for_function("Number(document.body.dataset.refreshes) >= 1")
    return page, problems, first.value.json()


def lookup(document: dict, path: list) -> object:
    for key in path:
        document = document[key]
    return document


def test_the_page_shows_exactly_what_metrics_said(browser) -> None:
    settings = Settings(fail_first=1, **QUIET)
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        assert chat(client, base_url, 4) == [429, 200, 200, 200]
        assert chat(client, base_url, 2, stream=True) == [200, 200]
        page, problems, fetched = open_dashboard(browser, base_url, "?refresh=0")
        screenshot(page, "dashboard-loaded")
        assert problems == []
        # the snapshot the page rendered is the workload, and is /metrics now (counts do not move)
        now = client.get(base_url + "/metrics").json()
        assert fetched["responses"][CHAT]["count"] == now["responses"][CHAT]["count"] == 6
        assert fetched["errors"][CHAT]["count"] == 1
        assert fetched["streaming_stats"]["completed_streams"] == now["streaming_stats"]["completed_streams"] == 2
        figures = shown_figures(page)
        paths = {tuple(path) for path, _, _ in figures}
        for section in (("summary", "status"), ("summary", "total_requests_per_second"),
                        ("summary", "average_latency_seconds"), ("summary", "error_rate_percentage"),
                        ("streaming_stats", "active_streams"), ("streaming_stats", "ttft", "p99"),
                        ("kv_cache", "cache_hit_rate"), ("kv_cache", "cache_miss_rate"),
                        ("kv_cache", "average_token_reduction"), ("smart_routing", "router_efficiency"),
                        ("responses", CHAT, "p50"), ("responses", CHAT, "p90"), ("responses", CHAT, "p99"),
                        ("responses", CHAT, "min"), ("responses", CHAT, "max"), ("tokens", CHAT, "rate"),
                        ("errors", CHAT, "count")):
            assert section in paths, f"{section} is not on the page"
        for path, value, text in figures:
            expected = lookup(fetched, path)
            shown = value if isinstance(expected, str) else json.loads(value)
            assert shown == expected, (path, value, expected)
        units = {tuple(path): text for path, _, text in figures}
        assert units[("summary", "average_latency_seconds")].endswith(" ms")
        assert units[("summary", "total_requests_per_second")].endswith(" req/s")
        assert units[("summary", "error_rate_percentage")] == f"{fetched['summary']['error_rate_percentage']:.2f} %"
        assert units[("tokens", CHAT, "rate")].endswith(" tokens/s")
        badge = page.locator(f'tr[data-endpoint="{CHAT}"] .badge')
        assert badge.text_content() == "1" and "badge-error" in badge.get_attribute("class")
        page.close()


def test_figures_and_charts_update_at_the_refresh_interval(browser) -> None:
    settings = Settings(dashboard_refresh_seconds=2, **QUIET)
    with running_app(settings) as (base_url, app), httpx.Client(timeout=10) as client:
        chat(client, base_url, 1, stream=True)
        page, problems, _ = open_dashboard(browser, base_url, query="")
        assert page.input_value("#refresh") == "2", "the server's setting is the page's default"
        assert page.locator("#streams-completed").get_attribute("data-value") == "1"
        page.select_option("#refresh", "1")
        chat(client, base_url, 2, stream=True)
        page.wait_for_function("document.querySelector('#streams-completed').dataset.value === '3'", timeout=10_000)
        # the charts hold the server's history: as many points as /metrics/history has (or one more)
        history = client.get(base_url + "/metrics/history").json()
        assert history["points"] >= 2 and history["interval_seconds"] == 0.2
        plotted = page.evaluate("window.fakeaiDashboard.charts['chart-rps'].data[0].length")
        assert plotted >= 2
        assert page.locator("#charts canvas").count() == 7
        screenshot(page, "dashboard-refreshed")
        assert problems == []
        page.close()


def test_the_engines_running_and_waiting_requests_show_per_worker_and_in_a_chart(browser) -> None:
    settings = Settings(kv_workers=1, max_num_seqs=1, **{**QUIET, "itl_ms": 20})
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        page, problems, _ = open_dashboard(browser, base_url)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 150,
                "ignore_eos": True, "stream": True}

        def load() -> None:
            async def run() -> None:
                async def one() -> None:  # a client each: three connections
                    async with httpx.AsyncClient(timeout=30) as async_client, \
                            async_client.stream("POST", base_url + CHAT, json=body) as response:
                        async for _ in response.aiter_bytes():
                            pass

                await asyncio.gather(*(one() for _ in range(3)))

            asyncio.run(run())

        loader = threading.Thread(target=load)
        loader.start()
        try:
            # one runs, two wait: in the worker's row, the status bar and the chart
            page.wait_for_function(
                "document.querySelector('#requests-waiting').dataset.value === '2'", timeout=10_000)
            row = {tuple(path): value for path, value, _ in shown_figures(page)}
            assert row[("smart_routing", "workers", 0, "requests_running")] == "1"
            assert row[("smart_routing", "workers", 0, "requests_waiting")] == "2"
            assert row[("summary", "requests_running")] == "1"
            page.wait_for_function(
                "Math.max(...window.fakeaiDashboard.charts['chart-queue'].data[1].filter(v => v !== null)) >= 2",
                timeout=10_000)
            screenshot(page, "dashboard-engine-queue")
        finally:
            loader.join()
        assert problems == []
        page.close()


def test_export_buttons_download_what_parses(browser) -> None:
    with running_app(Settings(**QUIET)) as (base_url, _), httpx.Client(timeout=10) as client:
        chat(client, base_url, 3)
        page, problems, _ = open_dashboard(browser, base_url, "?refresh=0")
        downloads = {}
        for button in ("export-json", "export-prometheus", "export-csv"):
            with page.expect_download() as download:
                page.click(f"#{button}")
            downloads[button] = download.value.path().read_text()
        assert json.loads(downloads["export-json"])["responses"][CHAT]["count"] == 3
        families = {family.name: family for family in text_string_to_metric_families(downloads["export-prometheus"])}
        assert [s.value for s in families["fakeai_requests"].samples if s.labels.get("endpoint") == CHAT] == [3]
        rows = list(csv.DictReader(io.StringIO(downloads["export-csv"])))
        assert {"metric_type", "endpoint", "rate", "p99_latency"} <= set(rows[0])
        assert any(row["metric_type"] == "responses" and row["endpoint"] == CHAT for row in rows)
        assert problems == []
        page.close()


def _wait_for_health(page, level: str) -> None:
    page.wait_for_function(f"document.getElementById('status-bar').classList.contains('health-{level}')",
                           timeout=10_000)
    colour = page.eval_on_selector("#status-bar", "bar => getComputedStyle(bar).backgroundColor")
    assert colour == HEALTH_COLOURS[level]
    assert page.text_content("#health") == level


def test_the_status_follows_the_health_levels(browser) -> None:
    """12 injected errors: 100 % (unhealthy, red); +150 successes: 7.4 % (degraded); +150: 3.8 % (healthy)."""
    with running_app(Settings(fail_first=12, **{**QUIET, "ttft_ms": 0, "itl_ms": 0})) as (base_url, _), \
            httpx.Client(timeout=10) as client:
        page, problems, _ = open_dashboard(browser, base_url)
        _wait_for_health(page, "healthy")
        assert set(chat(client, base_url, 12)) == {429, 500, 503, 400}
        _wait_for_health(page, "unhealthy")
        screenshot(page, "dashboard-unhealthy")
        assert set(chat(client, base_url, 150)) == {200}
        _wait_for_health(page, "degraded")
        screenshot(page, "dashboard-degraded")
        chat(client, base_url, 150)
        _wait_for_health(page, "healthy")
        screenshot(page, "dashboard-healthy")
        assert problems == []
        page.close()


def test_the_page_shows_disconnected_and_recovers_when_the_server_restarts(browser) -> None:
    port = free_port()
    with running_app(Settings(**QUIET), port=port) as (base_url, _):
        page, problems, _ = open_dashboard(browser, base_url)
        assert page.text_content("#connection") == "connected"
    page.wait_for_function("document.getElementById('connection').textContent === 'disconnected'", timeout=10_000)
    screenshot(page, "dashboard-disconnected")
    with running_app(Settings(**QUIET), port=port) as (base_url, _), httpx.Client(timeout=10) as client:
        chat(client, base_url, 2)
        page.wait_for_function("document.getElementById('connection').textContent === 'connected'", timeout=10_000)
        page.wait_for_function(
            f"document.querySelector('tr[data-endpoint=\"{CHAT}\"] .badge') !== null", timeout=10_000)
    # while the server was away its requests failed; nothing else went wrong
    assert all("ERR_CONNECTION_REFUSED" in problem or "Failed to fetch" in problem for problem in problems), problems
    page.close()


def test_the_charts_show_the_points_before_a_restart_and_the_range_selector_asks_the_database(
        browser, tmp_path) -> None:
    settings = Settings(history_db=str(tmp_path / "history.sqlite"), **{**QUIET, "history_seconds": 30})
    with running_app(settings) as (base_url, _), httpx.Client(timeout=10) as client:
        chat(client, base_url, 2)
        eventually(lambda: client.get(base_url + "/metrics/history").json()["points"] >= 5, "five points")
    with sqlite3.connect(tmp_path / "history.sqlite") as stopped:
        before = [row[0] for row in stopped.execute("SELECT timestamp FROM points ORDER BY timestamp")]
    with running_app(settings) as (base_url, _):
        page, problems, _ = open_dashboard(browser, base_url, "?refresh=1")
        assert page.input_value("#range") == "live"
        assert page.locator("#range option").first.text_content() == "last 30 s"
        plotted = page.evaluate("window.fakeaiDashboard.charts['chart-rps'].data[0]")
        assert plotted[: len(before)] == before, "the live charts start with the first server's points"
        with page.expect_response(lambda response: response.url.endswith("/metrics/history?since=1h&step=5")) as asked:
            page.select_option("#range", "1h")
        answer = asked.value.json()
        assert answer["step"] == 5 and answer["points"] >= 1
        page.wait_for_function(
            f"window.fakeaiDashboard.charts['chart-rps'].data[0].at(-1) === {answer['series']['timestamp'][-1]!r}")
        plotted = page.evaluate("window.fakeaiDashboard.charts['chart-rps'].data")
        assert plotted[0] == answer["series"]["timestamp"]
        assert plotted[1] == answer["series"]["requests_per_second"]
        screenshot(page, "dashboard-last-hour")
        assert problems == []
        page.close()
