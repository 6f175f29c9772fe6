"""Alert webhooks: Alertmanager's notification on every health transition, delivered off the
serving path to receivers that answer, refuse, hang or come back."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.api.alerting import HealthAlerts, WebhookDelivery
from fakeai.config import Settings, SettingsError
from fakeai.exporters.alertmanager import ZERO_TIME, fingerprint, go_time
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.health import HealthReading
from tests.receivers import Receiver
from tests.servers import eventually, free_port, running_app, running_cli

MODEL = "openai/gpt-oss-120b"
ADMIN = {"authorization": "Bearer admin"}
MESSAGE_KEYS = ["receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                "version", "groupKey", "truncatedAlerts"]
ALERT_KEYS = ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"]


def reading(status: str, errors: int, requests: int, at: float) -> HealthReading:
    return HealthReading(status=status, timestamp=at, requests=requests, errors=errors,
                         error_rate_percentage=100.0 * errors / requests if requests else 0.0)


_CLIENT = httpx.Client(timeout=10)  # one for the module: making a client costs tens of ms (its TLS set-up)


@pytest.fixture(scope="module", autouse=True)
def _close_the_client():
    yield
    _CLIENT.close()


def chat(base_url: str, model: str = MODEL) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return _CLIENT.post(base_url + "/v1/chat/completions", json=body).status_code


def counters(base_url: str) -> dict[str, float]:
    """Every fakeai_alert_* counter of the server's Prometheus exposition."""
    text = _CLIENT.get(base_url + "/metrics/prometheus").text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("fakeai_alert_")}


# -- the notification ---------------------------------------------------------------------


def test_the_fingerprint_is_prometheus_commons_label_set_fingerprint() -> None:
    """The vectors of prometheus/common's model/signature_test.go (the function Alertmanager
    fingerprints alerts with), printed as Alertmanager prints them (%016x)."""
    assert fingerprint({}) == f"{14695981039346656037:016x}"
    assert fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == f"{5799056148416392346:016x}"
    three = {"first-label": "first-label-value", "second-label": "second-label-value",
             "third-label": "third-label-value"}
    assert fingerprint(three) == f"{13843036195897128121:016x}"


def test_times_are_written_as_go_writes_them() -> None:
    assert go_time(None) == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert go_time(1_675_688_925_828_000_000) == "2023-02-06T13:08:45.828Z"  # trailing zeros cut
    assert go_time(1_675_688_925_000_000_001) == "2023-02-06T13:08:45.000000001Z"
    assert go_time(1_675_688_925_000_000_000) == "2023-02-06T13:08:45Z"  # no fraction at all


def test_each_transition_is_one_alertmanager_notification() -> None:
    """healthy -> degraded -> unhealthy -> healthy: the new level's alert fires and the old
    one resolves in the same notification, with the labels, fingerprint, startsAt and
    annotations it fired with; a reading at the same level sends nothing."""
    settings = Settings(alert_webhook=("http://127.0.0.1:9/hook",), instance_name="fakeai-0",
                        alert_labels=("team=infra",), window_seconds=2.0, port=8123)
    alerts = HealthAlerts(MetricsRegistry(), settings)

    degraded = msgspec.json.decode(alerts.observe(reading("degraded", 1, 12, 1_700_000_000.5)))
    assert alerts.observe(reading("degraded", 2, 24, 1_700_000_001.0)) is None
    unhealthy = msgspec.json.decode(alerts.observe(reading("unhealthy", 21, 32, 1_700_000_002.25)))
    healthy = msgspec.json.decode(alerts.observe(reading("healthy", 0, 0, 1_700_000_009.0)))
    assert alerts.observe(reading("healthy", 0, 3, 1_700_000_010.0)) is None

    for message in (degraded, unhealthy, healthy):
        assert list(message) == MESSAGE_KEYS  # Alertmanager's order (template.Data, then the webhook's own)
        assert [list(alert) for alert in message["alerts"]] == [ALERT_KEYS] * len(message["alerts"])
        assert (message["receiver"], message["version"], message["truncatedAlerts"]) == ("fakeai", "4", 0)
        assert message["groupLabels"] == {"instance": "fakeai-0", "job": "fakeai"}
        assert message["groupKey"] == '{}:{instance="fakeai-0", job="fakeai"}'
        assert message["externalURL"] == "http://127.0.0.1:8123"

    [fired] = degraded["alerts"]
    assert degraded["status"] == fired["status"] == "firing"
    assert fired["labels"] == {"alertname": "FakeaiDegraded", "instance": "fakeai-0", "job": "fakeai",
                               "severity": "warning", "team": "infra"}
    assert (fired["startsAt"], fired["endsAt"]) == ("2023-11-14T22:13:20.5Z", ZERO_TIME)
    assert fired["fingerprint"] == fingerprint(fired["labels"])
    assert fired["generatorURL"] == "http://127.0.0.1:8123/health/detailed"
    assert "1 of the 12 requests" in fired["annotations"]["description"]
    assert "error ratio 0.0833" in fired["annotations"]["description"]
    assert "degraded from 5%" in fired["annotations"]["description"]
    assert "unhealthy above 10%" in fired["annotations"]["description"]
    assert degraded["commonLabels"] == fired["labels"] and degraded["commonAnnotations"] == fired["annotations"]

    # degraded -> unhealthy: FakeaiDegraded resolves, FakeaiUnhealthy fires (Alertmanager's order: by labels)
    resolved, critical = unhealthy["alerts"]
    assert unhealthy["status"] == "firing"
    assert {key: resolved[key] for key in ("labels", "annotations", "startsAt", "fingerprint")} == {
        key: fired[key] for key in ("labels", "annotations", "startsAt", "fingerprint")}
    assert (resolved["status"], resolved["endsAt"]) == ("resolved", "2023-11-14T22:13:22.25Z")
    assert (critical["status"], critical["labels"]["alertname"], critical["labels"]["severity"]) == (
        "firing", "FakeaiUnhealthy", "critical")
    assert (critical["startsAt"], critical["endsAt"]) == ("2023-11-14T22:13:22.25Z", ZERO_TIME)
    assert unhealthy["commonLabels"] == {"instance": "fakeai-0", "job": "fakeai", "team": "infra"}
    assert unhealthy["commonAnnotations"] == {}

    [ended] = healthy["alerts"]
    assert healthy["status"] == ended["status"] == "resolved"
    assert ended["fingerprint"] == critical["fingerprint"] != fired["fingerprint"]
    assert (ended["startsAt"], ended["endsAt"]) == (critical["startsAt"], "2023-11-14T22:13:29Z")


@pytest.mark.parametrize("changes, message", [
    ({"alert_webhook": ("ftp://example.com/hook",)}, "not an http:// or https:// URL"),
    ({"alert_webhook": ("/hook",)}, "not an http:// or https:// URL"),
    ({"otlp_endpoint": "localhost:4318"}, "not an http:// or https:// URL"),
    ({"alert_labels": ("team",)}, "not name=value"),
    ({"alert_labels": ("bad-name=x",)}, "not name=value"),
    ({"alert_labels": ("severity=page",)}, "set by fakeai itself"),
    ({"alert_labels": ("team=a", "team=b")}, "given twice"),
    ({"otlp_headers": ("no value",)}, "not name=value"),
])
def test_bad_alert_and_otlp_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings().replace(**changes)


# -- a server and its receivers ------------------------------------------------------------


class JumpClock:
    """Monotonic time the test can move forward at once (to empty the sliding window)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_transitions_reach_the_receiver_as_firing_then_resolved() -> None:
    """Driven by real requests: 1 error in 12 is degraded, injected errors (the admin API turns
    --error-rate to 1 at runtime) make it unhealthy, an empty window healthy again."""
    clock = JumpClock()
    with Receiver().running() as receiver:
        settings = Settings(alert_webhook=(receiver.url + "/hook",), alert_check_interval_seconds=0.02,
                            window_seconds=30.0, zero_latency=True, admin_key="admin", port=free_port())
        with running_app(settings, port=settings.port, clock=clock) as (base_url, _):
            assert [chat(base_url) for _ in range(11)] == [200] * 11
            assert chat(base_url, "no-such-model") == 404
            eventually(lambda: len(receiver.bodies()) == 1, "the degraded alert fires")
            _CLIENT.patch(base_url + "/admin/config", headers=ADMIN, json={"error_rate": 1.0}).raise_for_status()
            assert all(chat(base_url) >= 400 for _ in range(20))
            eventually(lambda: len(receiver.bodies()) == 2, "the unhealthy alert fires")
            clock.offset += 31.0  # every request leaves the window
            eventually(lambda: len(receiver.bodies()) == 3, "the unhealthy alert resolves")
            eventually(lambda: counters(base_url)["fakeai_alert_notifications_sent_total"] == 3,
                       "the last answer is counted")
            sent = counters(base_url)

    degraded, unhealthy, healthy = (msgspec.json.decode(body) for body in receiver.bodies("/hook"))
    assert [(alert["labels"]["alertname"], alert["status"]) for alert in degraded["alerts"]] == [
        ("FakeaiDegraded", "firing")]
    assert [(alert["labels"]["alertname"], alert["status"]) for alert in unhealthy["alerts"]] == [
        ("FakeaiDegraded", "resolved"), ("FakeaiUnhealthy", "firing")]
    assert [(alert["labels"]["alertname"], alert["status"]) for alert in healthy["alerts"]] == [
        ("FakeaiUnhealthy", "resolved")]
    assert "1 of the 12 requests" in degraded["alerts"][0]["annotations"]["description"]
    errors, requests = map(int, re.match(r"(\d+) of the (\d+) requests", unhealthy["alerts"][1]["annotations"][
        "description"]).groups())  # the reading that crossed 10 %, the 12 requests before included
    assert errors / requests > 0.10 and errors >= 2 and requests >= 13
    episodes = ((degraded["alerts"][0], unhealthy["alerts"][0]), (unhealthy["alerts"][1], healthy["alerts"][0]))
    for fired, ended in episodes:
        assert (ended["fingerprint"], ended["startsAt"]) == (fired["fingerprint"], fired["startsAt"])
        assert fired["endsAt"] == ZERO_TIME and ended["endsAt"] > fired["startsAt"]
    assert degraded["alerts"][0]["labels"]["instance"] == base_url.removeprefix("http://")
    _, headers, _ = receiver.posts[0]
    assert headers["content-type"] == "application/json"
    assert sent == {"fakeai_alert_notifications_sent_total": 3.0, "fakeai_alert_notifications_failed_total": 0.0,
                    "fakeai_alert_notifications_dropped_total": 0.0, "fakeai_alert_notification_retries_total": 0.0}


def unhealthy_now(base_url: str) -> None:
    """Every request of the window fails: the server turns unhealthy."""
    assert [chat(base_url, "no-such-model") for _ in range(3)] == [404] * 3


def test_a_hanging_receiver_delays_no_request_and_no_other_receiver() -> None:
    with Receiver(hold=True).running() as hanging, Receiver().running() as answering:
        settings = Settings(alert_webhook=(hanging.url, answering.url), alert_check_interval_seconds=0.02,
                            alert_timeout_seconds=60.0, zero_latency=True)
        with running_app(settings) as (base_url, _):
            unhealthy_now(base_url)
            eventually(lambda: hanging.holding == 1, "the hanging receiver is posted to")
            eventually(lambda: counters(base_url)["fakeai_alert_notifications_sent_total"] == 1,
                       "the other receiver's notification is delivered meanwhile")
            # the POST to the hanging receiver is still unanswered: requests are served meanwhile
            assert [chat(base_url) for _ in range(20)] == [200] * 20
            assert hanging.holding == 1 and counters(base_url)["fakeai_alert_notifications_sent_total"] == 1
            hanging.release()
            eventually(lambda: counters(base_url)["fakeai_alert_notifications_sent_total"] == 2,
                       "the held notification is delivered once answered")
    assert hanging.bodies() == answering.bodies()


def test_refused_and_timed_out_deliveries_are_retried_then_counted_as_failed() -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there: connections are refused
    with Receiver(hold=True).running() as hanging:
        settings = Settings(alert_webhook=(down, hanging.url), alert_check_interval_seconds=0.02,
                            alert_timeout_seconds=0.3, alert_retries=1, alert_backoff_seconds=0.05,
                            zero_latency=True)
        with running_app(settings) as (base_url, _):
            unhealthy_now(base_url)
            eventually(lambda: counters(base_url)["fakeai_alert_notifications_failed_total"] == 2,
                       "both receivers' notification given up", seconds=10)
            assert len(hanging.bodies()) == 2  # the first attempt and its retry
            assert counters(base_url) == {
                "fakeai_alert_notifications_sent_total": 0.0, "fakeai_alert_notifications_failed_total": 2.0,
                "fakeai_alert_notifications_dropped_total": 0.0, "fakeai_alert_notification_retries_total": 2.0}


def test_a_receiver_that_comes_back_gets_the_notification_on_a_retry() -> None:
    port = free_port()
    settings = Settings(alert_webhook=(f"http://127.0.0.1:{port}/hook",), alert_check_interval_seconds=0.02,
                        alert_retries=100, alert_backoff_seconds=0.05, zero_latency=True)
    with running_app(settings) as (base_url, _):
        unhealthy_now(base_url)
        eventually(lambda: counters(base_url)["fakeai_alert_notification_retries_total"] >= 2,
                   "deliveries to the receiver that is down are retried")
        with Receiver().running(port) as receiver:
            eventually(lambda: len(receiver.bodies()) == 1, "the receiver back up gets the notification", seconds=10)
            eventually(lambda: counters(base_url)["fakeai_alert_notifications_sent_total"] == 1, "counted as sent")
    [message] = (msgspec.json.decode(body) for body in receiver.bodies())
    assert [alert["labels"]["alertname"] for alert in message["alerts"]] == ["FakeaiUnhealthy"]


async def until(condition, what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {seconds} s")
        await asyncio.sleep(0.005)


def test_a_full_queue_drops_its_oldest_notification_and_counts_it() -> None:
    """A receiver that holds its POST: the next notification waits, and one more finds the
    queue (of one) full: the one waiting is dropped, the newest kept."""
    registry = MetricsRegistry()

    def counted(name: str) -> float:
        return registry.snapshot().series[name][0][1]

    async def scenario(receiver: Receiver) -> None:
        async with httpx.AsyncClient() as client:
            delivery = WebhookDelivery(receiver.url, client, registry, timeout=30.0, retries=0, backoff=0.0,
                                       queue_size=1)
            delivery.start()
            delivery.offer(b'"first"')
            await until(lambda: receiver.holding == 1, "the first notification is being posted")
            delivery.offer(b'"second"')
            delivery.offer(b'"third"')
            receiver.release()
            await until(lambda: counted("fakeai_alert_notifications_sent_total") == 2,
                        "the newest notification is delivered")
            await delivery.stop()

    with Receiver(hold=True).running() as receiver:
        asyncio.run(scenario(receiver))
    assert receiver.bodies() == [b'"first"', b'"third"']
    assert counted("fakeai_alert_notifications_dropped_total") == 1


def test_several_workers_send_each_transition_once() -> None:
    """`fakeai serve --workers 2`: one process watches (the alerts lease), so each receiver
    (the flag given twice) gets every transition once: firing, resolved, firing again."""
    with Receiver().running() as first, Receiver().running() as second:
        with running_cli("--workers", "2", "--alert-webhook", first.url, "--alert-webhook", second.url,
                         "--alert-check-interval-seconds", "0.02", "--window-seconds", "2",
                         "--zero-latency") as base_url:
            unhealthy_now(base_url)
            eventually(lambda: len(first.bodies()) == 2, "fired, then resolved once the window is empty",
                       seconds=20)
            unhealthy_now(base_url)
            eventually(lambda: len(first.bodies()) == 3, "fired again", seconds=20)
            eventually(lambda: len(second.bodies()) == 3, "the second receiver too")
            notifications = [msgspec.json.decode(body) for body in first.bodies()]
    assert [message["status"] for message in notifications] == ["firing", "resolved", "firing"]
    assert [alert["labels"]["alertname"] for message in notifications for alert in message["alerts"]] == [
        "FakeaiUnhealthy"] * 3
    assert notifications[0]["alerts"][0]["startsAt"] == notifications[1]["alerts"][0]["startsAt"]
    assert notifications[2]["alerts"][0]["startsAt"] > notifications[1]["alerts"][0]["endsAt"]
    assert first.bodies() == second.bodies()
