"""Rewrites the Helm chart's settings from fakeai.config.Settings (run after changing a setting):
the ``settings:`` block of deploy/helm/fakeai/values.yaml (every setting, unset, with its
meaning, its FAKEAI_* variable and its default) and deploy/helm/fakeai/values.schema.json
(each setting's type, range and choices, which ``helm lint``, ``template`` and ``install``
check). tests/test_helm_chart.py keeps both equal to what this script writes.
"""

from __future__ import annotations

import json
import pathlib
import re
import textwrap
from typing import Any, Literal, get_args, get_origin

from fakeai.config import describe_settings, env_name, env_text, setting_bounds, setting_sections

CHART = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "helm" / "fakeai"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
BLOCK = re.compile(r"(# -- settings: generated [^\n]*\n).*?(# -- end of settings\n)", re.DOTALL)

CHART_OWNED = {
    "host": "the image's entrypoint binds 0.0.0.0 (a flag, which wins over FAKEAI_HOST)",
    "fd": "a pod inherits no listening socket",
}
"""Settings the chart does not offer, and why."""

_KEYWORDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
"""A bound as msgspec.Meta names it -> as JSON Schema does."""
BOUNDS = setting_bounds()


def offered() -> list[tuple[str, Any, Any, str]]:
    """``describe_settings()`` less the chart's own, in the settings table's order (by section)."""
    described = {row[0]: row for row in describe_settings()}
    return [described[name] for _, names in setting_sections() for name in names if name not in CHART_OWNED]


def _type_schema(base: Any) -> dict[str, Any]:
    if base is bool:
        return {"type": "boolean"}
    if base is int:
        return {"type": "integer"}
    if base is float:
        return {"type": "number"}
    if base is str:
        return {"type": "string"}
    if get_origin(base) is Literal:
        return {"enum": list(get_args(base))}
    if get_origin(base) is tuple:
        item = _type_schema(get_args(base)[0])
        if item == {"type": "string"}:
            item["pattern"] = "^[^,]*$"  # items are joined with commas in FAKEAI_*
        return {"anyOf": [{"type": "array", "items": item}, {"type": "string"}]}
    raise TypeError(f"no JSON Schema for {base!r}")


DECIMAL = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
"""A number as text: ``helm --set error_rate=0.1`` gives the string "0.1" (Helm's --set types
only integers and booleans), which fakeai reads as FAKEAI_ERROR_RATE=0.1, so it is accepted;
its range is checked by fakeai when it starts (-f or --set-json give a number, checked here)."""


def setting_schema(name: str, base: Any, description: str) -> dict[str, Any]:
    """One setting's schema: unset (null) or a value of its type within its bounds."""
    typed = _type_schema(base) | {
        _KEYWORDS[key]: bound for key, bound in BOUNDS.get(name, {}).items()
    }
    choices = [{"type": "null"}, typed]
    if base is float:
        choices.append({"type": "string", "pattern": DECIMAL})
    return {"description": f"{description} ({env_name(name)})", "anyOf": choices}


def _shown_type(name: str, base: Any) -> str:
    if get_origin(base) is Literal:
        return "one of " + ", ".join(map(str, get_args(base)))
    if get_origin(base) is tuple:
        item = get_args(base)[0]
        kinds = ", ".join(map(str, get_args(item))) if get_origin(item) is Literal else "strings"
        return f"list of {kinds}"
    bounds = BOUNDS.get(name, {})
    low = f">= {bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else ""
    high = f"<= {bounds['le']}" if "le" in bounds else f"< {bounds['lt']}" if "lt" in bounds else ""
    return " ".join(filter(None, [base.__name__, ", ".join(filter(None, [low, high]))]))


def values_block() -> str:
    """The ``settings:`` block of values.yaml, between its two marker lines."""
    lines = ["settings:"]
    section = None
    sections = {name: title for title, names in setting_sections() for name in names}
    for name, base, default, description in offered():
        if sections[name] != section:
            section = sections[name]
            lines += ["", f"  # ---- {section} ----"]
        shown = env_text(name, default)
        lines += textwrap.wrap(description, 98, initial_indent="  # ", subsequent_indent="  # ")
        lines.append(f"  # {env_name(name)}; {_shown_type(name, base)}; default: {shown if shown else '(empty)'}")
        lines.append(f"  {name}: null")
    return "\n".join(lines) + "\n"


def values_schema() -> dict[str, Any]:
    """values.schema.json: the settings strictly (no unknown name), the chart's own values by type."""
    positive = {"type": "integer", "minimum": 1}
    mebibytes = {"type": "integer", "minimum": 1}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "replicaCount": {"type": "integer", "minimum": 0},
            "image": {
                "type": "object",
                "properties": {"repository": {"type": "string", "minLength": 1}, "tag": {"type": "string"},
                               "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}},
            },
            "service": {
                "type": "object",
                "properties": {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                               "port": {"type": "integer", "minimum": 1, "maximum": 65535}},
            },
            "shm": {"type": "object", "properties": {"perWorkerMiB": mebibytes, "baseMiB": mebibytes}},
            "autoResources": {
                "type": "object",
                "properties": {"cpuPerWorkerMillicores": positive, "memoryPerWorkerMiB": mebibytes,
                               "memoryBaseMiB": mebibytes},
            },
            "prometheus": {"type": "object", "properties": {"scrapeAnnotations": {"type": "boolean"}}},
            "serviceMonitor": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
            "extraEnv": {"type": "array"},
            "settings": {
                "description": "fakeai's settings, each rendered as its FAKEAI_* variable when set",
                "type": "object",
                "additionalProperties": False,
                "properties": {name: setting_schema(name, base, description)
                               for name, base, _, description in offered()},
            },
        },
    }


def schema_text() -> str:
    return json.dumps(values_schema(), indent=2) + "\n"


def values_text(current: str) -> str:
    """``current`` (values.yaml) with its settings block regenerated."""
    if not BLOCK.search(current):
        raise SystemExit(f"no generated settings block in {VALUES}")
    return BLOCK.sub(lambda match: match[1] + values_block() + match[2], current, count=1)


if __name__ == "__main__":
    VALUES.write_text(values_text(VALUES.read_text()))
    SCHEMA.write_text(schema_text())
