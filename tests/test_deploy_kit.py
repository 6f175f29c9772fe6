"""The Prometheus and Grafana kit in deploy/: valid for promtool, every metric it names exists,
the dashboard's instance selector scopes its instance panels and its fleet row reads the
recording rules, and a real Prometheus loads the rules, evaluates them and answers every
dashboard query."""

from __future__ import annotations

import json
import re
import tempfile
import threading
from pathlib import Path

import httpx
from litestar.testing import TestClient

from fakeai.app import create_app
from fakeai.config import Settings
from tests.prometheus_server import promtool, running_prometheus
from tests.servers import running_app

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = (DEPLOY / "fakeai-rules.yml").read_text()
DASHBOARD = json.loads((DEPLOY / "grafana" / "fakeai-dashboard.json").read_text())
PANEL_QUERIES = [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]
NAME = re.compile(r"\b(fakeai_[a-z0-9_]+|vllm:[a-z0-9_:]+)")
RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
"""A recording rule's name, level:metric:operations (fakeai's and vLLM's own names have one colon at most)."""
RECORDED = set(re.findall(r"^\s*- record: (\S+)$", RULES, re.MULTILINE))
VARIABLES = {"$job": ".*", "$instance": ".*", "$__rate_interval": "1m"}
MODEL = "openai/gpt-oss-120b"


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "fakeai-rules.yml" in config.stdout, "the config's rule file was checked too"
    rules = promtool("check", "rules", str(DEPLOY / "fakeai-rules.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"{len(RECORDED) + 4} rules found" in rules.stdout, "every recording rule and the 4 alerts"


def _exposed_names() -> set[str]:
    """Every series name fakeai can expose (a family's samples, by its type)."""
    with TestClient(create_app(Settings(zero_latency=True))) as client:
        client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        text = client.get("/metrics/prometheus").text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
            if kind == "summary":
                names |= {f"{name}_sum", f"{name}_count"}
    return names


def test_every_metric_the_kit_names_exists() -> None:
    exposed = _exposed_names()
    texts = (re.sub(r"#.*", "", RULES), *PANEL_QUERIES)  # the rules without their comments
    recorded = {name for text in texts for name in RECORDED_NAME.findall(text)}
    assert recorded <= RECORDED, f"no such recording rule: {sorted(recorded - RECORDED)}"
    used = {name for text in texts for name in NAME.findall(RECORDED_NAME.sub("", text))}
    assert used, "the kit queries fakeai's metrics"
    assert used <= exposed, f"not exposed: {sorted(used - exposed)}"
    titles = {panel["title"] for panel in DASHBOARD["panels"]}
    assert {"Request rate by endpoint", "Error ratio", "Request latency p50 / p99", "Time to first token p99",
            "Inter-token latency p99", "Tokens per second", "KV-cache hit rate", "Active streams"} <= titles


def _rows() -> dict[str, list[dict]]:
    """The dashboard's panels under each row's title (rows in order, each panel under the row
    above it)."""
    rows: dict[str, list[dict]] = {}
    for panel in sorted(DASHBOARD["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            rows[panel["title"]] = []
        else:
            assert rows, f"{panel['title']} lies above every row"
            rows[list(rows)[-1]].append(panel)
    return rows


def test_the_dashboard_selects_instances_and_shows_the_fleet() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    for name in ("job", "instance"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"], variable
        assert variable["allValue"] == ".*", "All matches every value, even one seen after the page loaded"
        assert NAME.findall(variable["definition"]) == ["fakeai_uptime_seconds"], "every instance exposes it"
    assert '{job=~"$job"}' in variables["instance"]["definition"], "instances of the selected jobs"

    fleet, instances = _rows().values()
    assert len(fleet) >= 9 and len(instances) == 9
    for panel in fleet:  # built on the recording rules (and Prometheus's up), by job
        for target in panel["targets"]:
            expr = target["expr"]
            assert RECORDED_NAME.findall(expr) or expr.startswith("sum by (job) (up{"), expr
            assert not NAME.findall(RECORDED_NAME.sub("", expr)), f"raw series in the fleet row: {expr}"
            assert '{job=~"$job"}' in expr and "$instance" not in expr, expr
    for panel in instances:  # every series they read is the selected instances'
        for target in panel["targets"]:
            selectors = re.findall(r"\b(?:fakeai_[a-z0-9_]+|vllm:[a-z0-9_:]+)(\{[^}]*\})?", target["expr"])
            scoped = all('instance=~"$instance"' in labels for labels in selectors)
            assert selectors and scoped, target["expr"]

    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells = [(panel["gridPos"]["x"] + dx, panel["gridPos"]["y"] + dy) for panel in DASHBOARD["panels"]
             for dx in range(panel["gridPos"]["w"]) for dy in range(panel["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "no panel covers another"


def test_promtool_parses_every_dashboard_query() -> None:
    """Each query, its variables given values, as a recording rule: promtool parses it."""
    queries = []
    for query in PANEL_QUERIES:
        for variable, value in VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"an unknown variable in {query}"
        queries.append(query)
    rules = [{"record": f"dashboard:query_{number}:parsed", "expr": query}
             for number, query in enumerate(queries)]
    with tempfile.TemporaryDirectory(prefix="fakeai-dashboard-") as folder:
        path = Path(folder) / "dashboard-queries.yml"
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
        checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(queries)} rules found" in checked.stdout


def _traffic(base_url: str, stop: threading.Event) -> None:
    body = {"model": MODEL, "messages": [{"role": "system", "content": "S" * 400}, {"role": "user", "content": "hi"}],
            "max_tokens": 4, "stream": True}
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            with client.stream("POST", base_url + "/v1/chat/completions", json=body) as response:
                response.read()


def test_prometheus_evaluates_the_rules_and_answers_the_dashboard() -> None:
    """Half the requests fail (unhealthy): the error-ratio rule and its alert follow."""
    settings = Settings(ttft_ms=2, itl_ms=1, ttft_jitter=0, itl_jitter=0, error_rate=0.5,
                        error_kinds=("server_error",))
    with running_app(settings) as (base_url, _):
        config = (DEPLOY / "prometheus.yml").read_text().replace("localhost:8000", base_url.removeprefix("http://"))
        config = config.replace("15s", "1s")
        stop = threading.Event()
        sender = threading.Thread(target=_traffic, args=(base_url, stop))
        sender.start()
        try:
            with running_prometheus(config, {"fakeai-rules.yml": RULES}) as prometheus:
                prometheus.wait_for("fakeai:error_ratio:rate1m", lambda r: r and 0.2 < float(r[0]["value"][1]) < 0.8)
                rules = httpx.get(prometheus.base_url + "/api/v1/rules", timeout=5).json()["data"]["groups"][0]["rules"]
                assert {rule["name"] for rule in rules} == {
                    "fakeai:error_ratio:rate1m", "fakeai:request_duration_seconds:p99_rate1m", "FakeaiDegraded",
                    "FakeaiUnhealthy", "FakeaiHighP99Latency", "FakeaiDown"}
                assert all(rule["health"] == "ok" for rule in rules), rules
                prometheus.wait_for('ALERTS{alertname="FakeaiUnhealthy"}',
                                    lambda r: r and r[0]["metric"]["alertstate"] in ("pending", "firing"))
                assert prometheus.query('ALERTS{alertname="FakeaiDegraded"}') == []
                # each rule group is evaluated on its own schedule: a panel over the fleet's
                # rules has data once their group has run with two scrapes in its range
                for query in PANEL_QUERIES:
                    for variable, value in VARIABLES.items():
                        query = query.replace(variable, value)
                    prometheus.wait_for(query, bool)
        finally:
            stop.set()
            sender.join()
