"""Alertmanager's webhook notification (version 4), for fakeai's health alerts.

What Alertmanager's webhook receiver POSTs (``notify/webhook/webhook.go``: its ``Message`` is
``template.Data`` -- receiver, status, alerts, groupLabels, commonLabels, commonAnnotations,
externalURL -- then version, groupKey and truncatedAlerts), so any receiver written for
Alertmanager (a chat bridge, an incident tool, a test harness) takes fakeai's alerts as they are:

* each alert: ``status`` (``firing``, or ``resolved`` once it has ended), ``labels``,
  ``annotations``, ``startsAt`` and ``endsAt`` as Go encodes a ``time.Time`` (RFC 3339 with
  the fraction's trailing zeros cut; ``0001-01-01T00:00:00Z``, Go's zero time, while it has
  not ended), ``generatorURL``, and ``fingerprint``: 16 hex digits of the FNV-1a hash of its
  labels sorted by name, each name and value followed by the byte 255 (``prometheus/common``'s
  ``LabelSet.Fingerprint``), so it is the same when the alert fires and when it resolves;
* the group: ``status`` ``firing`` while any of its alerts fires, else ``resolved``;
  ``groupKey`` ``{}:{name="value", ...}``, the root route's key and the group labels sorted
  (``dispatch.go``); ``commonLabels`` and ``commonAnnotations`` the pairs every alert shares;
  alerts in Alertmanager's order (by labels); ``truncatedAlerts`` 0 (nothing is cut).

Maps are sorted by key, as Go's encoder sorts them. This module only renders: which alerts
exist and when they start and end is ``fakeai.api.alerting``'s.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

__all__ = ("ZERO_TIME", "Alert", "fingerprint", "go_time", "render_notification")

ZERO_TIME = "0001-01-01T00:00:00Z"
"""How Go encodes a ``time.Time`` never set: an alert's ``endsAt`` while it fires."""

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SEPARATOR = 255


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert: what it says and when it started (and ended), in Unix nanoseconds."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_ns: int
    ends_at_ns: int | None = None
    """``None`` while it fires."""
    generator_url: str = ""

    @property
    def status(self) -> str:
        return "firing" if self.ends_at_ns is None else "resolved"


class _WebhookAlert(msgspec.Struct):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str


class _WebhookMessage(msgspec.Struct):
    receiver: str
    status: str
    alerts: list[_WebhookAlert]
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    version: str
    groupKey: str
    truncatedAlerts: int


_encode = msgspec.json.Encoder(order="deterministic").encode  # maps sorted by key, fields in order


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of an alert's labels (``%016x`` of the 64-bit FNV-1a hash)."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in (*part.encode(), _SEPARATOR):
                value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def go_time(unix_ns: int | None) -> str:
    """A Unix time in nanoseconds as Go's JSON encoder writes a UTC ``time.Time``:
    ``2024-05-01T12:00:00.25Z`` (RFC 3339, the fraction without trailing zeros); ``None`` as
    Go's zero time."""
    if unix_ns is None:
        return ZERO_TIME
    seconds, nanoseconds = divmod(unix_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanoseconds:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _go_quoted(value: str) -> str:
    return msgspec.json.encode(value).decode()  # Go's %q for the printable text labels hold


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *others = maps
    return {key: value for key, value in first.items() if all(other.get(key) == value for other in others)}


def _order(alert: Alert) -> tuple[int, list[tuple[str, str]]]:
    """Alertmanager's order of a group's alerts (``types.AlertSlice``: by job and instance, the
    same within a group, then ``LabelSet.Before``: fewer labels first, then the first label, in
    name order, whose values differ)."""
    return len(alert.labels), sorted(alert.labels.items())


def render_notification(
    alerts: list[Alert], group_labels: dict[str, str], *, receiver: str, external_url: str
) -> bytes:
    """The JSON body Alertmanager's webhook receiver would POST for one group of ``alerts``."""
    ordered = sorted(alerts, key=_order)
    message = _WebhookMessage(
        receiver=receiver,
        status="firing" if any(alert.status == "firing" for alert in ordered) else "resolved",
        alerts=[
            _WebhookAlert(
                status=alert.status,
                labels=alert.labels,
                annotations=alert.annotations,
                startsAt=go_time(alert.starts_at_ns),
                endsAt=go_time(alert.ends_at_ns),
                generatorURL=alert.generator_url,
                fingerprint=fingerprint(alert.labels),
            )
            for alert in ordered
        ],
        groupLabels=group_labels,
        commonLabels=_common([alert.labels for alert in ordered]) if ordered else {},
        commonAnnotations=_common([alert.annotations for alert in ordered]) if ordered else {},
        externalURL=external_url,
        version="4",
        groupKey="{}:{" + ", ".join(f"{name}={_go_quoted(value)}" for name, value in sorted(group_labels.items()))
                 + "}",
        truncatedAlerts=0,
    )
    return _encode(message)
