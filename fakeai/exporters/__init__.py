"""Renderings of one ``MetricsSnapshot``: pure functions from a snapshot to bytes.

No exporter reads the registry or computes a statistic; each only chooses names, units and
layout, so JSON, Prometheus, CSV and health always agree.
"""

from fakeai.exporters.csv import CSV_COLUMNS, render_csv
from fakeai.exporters.health import render_detailed_health, render_health, render_loading
from fakeai.exporters.json import render_json, render_kv_cache_json
from fakeai.exporters.prometheus import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, prometheus_steps, render_prometheus

__all__ = (
    "CSV_COLUMNS",
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "prometheus_steps",
    "render_csv",
    "render_detailed_health",
    "render_health",
    "render_loading",
    "render_json",
    "render_kv_cache_json",
    "render_prometheus",
)
