"""Alert webhooks: an Alertmanager notification to every ``--alert-webhook`` on each health
transition, delivered off the serving path.

One process of the server watches its health (``HealthAlerts``): every
``--alert-check-interval-seconds`` it reads the registry's cheap health reading (what
``GET /health`` shows: the windowed error rate of every process, ``fakeai.metrics.health``).
While the level is not ``healthy`` one alert fires, named after it:

* ``FakeaiDegraded``, severity ``warning``: error rate from 5 % up to 10 %;
* ``FakeaiUnhealthy``, severity ``critical``: above 10 %.

When the level changes, the alert that fired resolves (``endsAt`` set, the same labels,
fingerprint, ``startsAt`` and annotations it fired with) and the new level's alert fires;
one notification carries both -- the group of this instance's alerts, as Alertmanager
grouped by ``job`` and ``instance`` sends it (``fakeai.exporters.alertmanager``). Labels:
``alertname``, ``severity``, ``instance`` (``fakeai.api.instance``), ``job`` (``fakeai``), and
``--alert-labels``; annotations ``summary`` and ``description`` (the errors, requests and error
rate in the window, and the thresholds).

In a server of several processes the one holding the alerts lease (a ``SamplingLease`` of its
own file) watches and sends, so a transition is sent once, whatever the number of workers; it
keeps the firing alert in the shared directory, so a process taking over the lease (its
holder died) resolves that alert rather than firing a second one.

Each receiver has its own queue (``WebhookDelivery``: at most ``QUEUE_SIZE`` notifications
wait; beyond, the oldest waiting one is dropped) and task, which POSTs its notifications in
order: each attempt within ``--alert-timeout-seconds``, retried after a refusal, a timeout, a
5xx or a 429 up to ``--alert-retries`` times, waiting ``--alert-backoff-seconds`` doubled each
time (at most 60 s). A receiver that is down or hangs delays only its own queue, never a
request nor another receiver. ``fakeai_alert_notifications_{sent,failed,dropped}_total`` and
``fakeai_alert_notification_retries_total`` count what happened.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import httpx
import msgspec

from fakeai.api.background import stop_task
from fakeai.config import Settings, setting_pairs
from fakeai.exporters.alertmanager import Alert, render_notification
from fakeai.metrics import MetricsRegistry
from fakeai.metrics.health import DEGRADED_FROM_PERCENT, UNHEALTHY_ABOVE_PERCENT, HealthReading
from fakeai.metrics.history_ring import SamplingLease

from fakeai.api.instance import instance_name, server_url

__all__ = ("LEVEL_ALERTS", "QUEUE_SIZE", "HealthAlerts", "WebhookDelivery")

_log = logging.getLogger("fakeai")

LEVEL_ALERTS = {"degraded": ("FakeaiDegraded", "warning"), "unhealthy": ("FakeaiUnhealthy", "critical")}
"""The alert (name, severity) that fires while the health is at each level but healthy."""
RECEIVER = "fakeai"
"""The notifications' ``receiver``: Alertmanager's name of the receiver configuration."""
JOB = "fakeai"
QUEUE_SIZE = 64
"""Notifications waiting for one receiver at most."""
MAX_BACKOFF_SECONDS = 60.0
LEASE_FILE = "alerts.lock"
STATE_FILE = "alerts.state"
_HEADERS = {"content-type": "application/json", "user-agent": "fakeai"}

SENT = "fakeai_alert_notifications_sent_total"
FAILED = "fakeai_alert_notifications_failed_total"
DROPPED = "fakeai_alert_notifications_dropped_total"
RETRIES = "fakeai_alert_notification_retries_total"


class WebhookDelivery:
    """One receiver: its queue of notification bodies and the task that POSTs them in order.

    Args:
        url: The receiver.
        client: The HTTP client (shared by the receivers).
        registry: Where the outcomes are counted.
        timeout: Seconds one attempt may take.
        retries: Attempts after a failed one.
        backoff: Seconds before the first retry (doubled for each next one, at most 60).
        queue_size: Notifications that may wait.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        registry: MetricsRegistry,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.url = url
        self.client = client
        self.registry = registry
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def offer(self, body: bytes) -> None:
        """Queue a notification (never waits: a full queue drops its oldest one, counted)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.registry.add(DROPPED)
            _log.warning("alert webhook %s: a notification was dropped (%d already waiting)", self.url,
                         self._queue.maxsize)
        self._queue.put_nowait(body)

    async def _run(self) -> None:
        while True:
            body = await self._queue.get()
            await self._deliver(body)

    async def _deliver(self, body: bytes) -> None:
        for attempt in range(self.retries + 1):
            if attempt:
                self.registry.add(RETRIES)
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
            sent, retryable, why = await self._post(body)
            if sent:
                self.registry.add(SENT)
                return
            if not retryable:
                break
        self.registry.add(FAILED)
        _log.warning("alert webhook %s: a notification was given up after %d attempt(s): %s", self.url,
                     attempt + 1, why)

    async def _post(self, body: bytes) -> tuple[bool, bool, str]:
        """(sent, worth retrying, what went wrong)."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.post(self.url, content=body, headers=_HEADERS)
        except TimeoutError:
            return False, True, f"no answer within {self.timeout:g} s"
        except (httpx.HTTPError, OSError) as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        status = response.status_code
        if 200 <= status < 300:
            return True, False, ""
        return False, status >= 500 or status == 429, f"answered {status}"


class HealthAlerts:
    """Watches the health level and notifies every receiver of each transition: ``start`` at
    start-up, ``stop`` at shutdown.

    Args:
        registry: Whose health is watched (and where deliveries are counted).
        settings: The webhooks, labels, interval and delivery settings.
        shared_dir: The server's shared directory (``None``: this process alone).
    """

    def __init__(self, registry: MetricsRegistry, settings: Settings, shared_dir: str | None = None) -> None:
        self.registry = registry
        self.interval = settings.alert_check_interval_seconds
        self.window_seconds = settings.window_seconds
        instance = instance_name(settings)
        self.labels = {"instance": instance, "job": JOB, **setting_pairs(settings.alert_labels)}
        self.group_labels = {"instance": instance, "job": self.labels["job"]}
        self.external_url = server_url(settings)
        self.lease = SamplingLease(shared_dir, LEASE_FILE) if shared_dir else None
        self._state = Path(shared_dir) / STATE_FILE if shared_dir else None
        self._settings = settings
        self.client: httpx.AsyncClient | None = None
        self.deliveries: list[WebhookDelivery] = []
        self.active: Alert | None = None
        """The alert firing now (``None``: healthy)."""
        self._leading = False
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None

    def start(self) -> None:
        settings = self._settings
        self.client = httpx.AsyncClient(timeout=None)
        self.deliveries = [
            WebhookDelivery(url, self.client, self.registry, timeout=settings.alert_timeout_seconds,
                            retries=settings.alert_retries, backoff=settings.alert_backoff_seconds)
            for url in settings.alert_webhook
        ]
        for delivery in self.deliveries:
            delivery.start()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        for delivery in self.deliveries:
            await delivery.stop()
        if self.client is not None:
            await self.client.aclose()
        if self.lease is not None:
            self.lease.release()

    # -- the watch ------------------------------------------------------------------------

    def observe(self, reading: HealthReading) -> bytes | None:
        """Act on one health reading: on a transition, update the firing alert and offer the
        notification (returned) to every receiver; else nothing (``None``)."""
        level = "healthy" if self.active is None else self._level(self.active)
        if reading.status == level:
            return None
        now_ns = round(reading.timestamp * 1e6) * 1000  # a float's seconds hold microseconds, not nanoseconds
        group: list[Alert] = []
        if self.active is not None:
            group.append(msgspec.structs.replace(self.active, ends_at_ns=now_ns))
        self.active = None
        if reading.status in LEVEL_ALERTS:
            self.active = self._alert(reading, now_ns)
            group.append(self.active)
        self._save()
        body = render_notification(group, self.group_labels, receiver=RECEIVER, external_url=self.external_url)
        for delivery in self.deliveries:
            delivery.offer(body)
        return body

    @staticmethod
    def _level(alert: Alert) -> str:
        return next(level for level, (name, _) in LEVEL_ALERTS.items() if name == alert.labels["alertname"])

    def _alert(self, reading: HealthReading, now_ns: int) -> Alert:
        name, severity = LEVEL_ALERTS[reading.status]
        instance = self.labels["instance"]
        return Alert(
            labels={"alertname": name, "severity": severity, **self.labels},
            annotations={
                "summary": f"fakeai {instance} is {reading.status}: {reading.error_rate_percentage:.1f}% of its "
                           "requests fail",
                "description": (
                    f"{reading.errors} of the {reading.requests} requests that finished in the last "
                    f"{self.window_seconds:g} s failed (error ratio {reading.error_rate_percentage / 100:.4f}); "
                    f"fakeai is degraded from {DEGRADED_FROM_PERCENT:g}% of its requests failing and unhealthy "
                    f"above {UNHEALTHY_ABOVE_PERCENT:g}%."
                ),
            },
            starts_at_ns=now_ns,
            generator_url=f"{self.external_url}/health/detailed",
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._lead():
                continue
            try:
                self.observe(await self.registry.health_async())
                self._failing = None
            except Exception as exc:  # a failed reading must not end the watch
                kind = f"{type(exc).__name__}: {exc}"
                if kind != self._failing:
                    _log.error("reading the health for alerts failed", exc_info=exc)
                    self._failing = kind

    def _lead(self) -> bool:
        """Whether this process watches; on taking the lease, the alert its holder left firing."""
        if self.lease is None:
            return True
        try:
            held = self.lease.held()
        except OSError:  # out of file descriptors: try again next time
            return False
        if held and not self._leading:
            self.active = self._load()
        self._leading = held
        return held

    # -- the firing alert, kept for the next holder of the lease ----------------------------

    def _save(self) -> None:
        if self._state is None:
            return
        staged = self._state.with_suffix(".new")
        staged.write_bytes(msgspec.json.encode(self.active))
        os.replace(staged, self._state)

    def _load(self) -> Alert | None:
        if self._state is None:
            return None
        try:
            return msgspec.json.decode(self._state.read_bytes(), type=Alert | None)
        except (OSError, msgspec.DecodeError):
            return None
