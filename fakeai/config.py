"""Every setting of fakeai, defined once.

``Settings`` is the single definition: the CLI flags (``--window-seconds``), the environment
variables (``FAKEAI_WINDOW_SECONDS``) and the README's settings table are all derived from
its fields, their types, defaults and descriptions. Precedence: CLI flag, then environment
variable, then default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

__all__ = ("ENV_PREFIX", "Settings", "SettingsError", "describe_settings", "settings_from_env")

ENV_PREFIX = "FAKEAI_"


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its range."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """fakeai's configuration."""

    host: Annotated[str, Meta(description="Address to bind.")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")] = 8000
    log_level: Annotated[str, Meta(description="uvicorn log level: critical, error, warning, info, debug.")] = (
        "info"
    )
    window_seconds: Annotated[
        float, Meta(gt=0, le=3600, description="Length of the sliding metrics window, in seconds.")
    ] = 5.0
    max_window_samples: Annotated[
        int,
        Meta(
            ge=1,
            description="Samples each sliding window holds at most; beyond it the oldest are dropped "
            "and counted (the default covers 100k requests/s over a 5 s window).",
        ),
    ] = 1_000_000

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        return _validated({**msgspec.structs.asdict(self), **changes})


def _validated(values: Mapping[str, Any]) -> Settings:
    try:
        return msgspec.convert(dict(values), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None


def _field_types() -> dict[str, Any]:
    hints = get_type_hints(Settings, include_extras=True)
    return {name: hints[name] for name in Settings.__struct_fields__}


def describe_settings() -> list[tuple[str, type, Any, str]]:
    """``(name, python type, default, description)`` for every setting, in definition order."""
    defaults = Settings()
    rows = []
    for name, hint in _field_types().items():
        base, meta = (get_args(hint)[0], get_args(hint)[1]) if get_origin(hint) is Annotated else (hint, None)
        rows.append((name, base, getattr(defaults, name), getattr(meta, "description", "") or ""))
    return rows


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``FAKEAI_*`` variables, with ``overrides`` (e.g. CLI flags) on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, base, _, _ in describe_settings():
        raw = environ.get(env_name(name))
        if raw is not None:
            values[name] = _parse_text(base, raw, env_name(name))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validated(values)


def _parse_text(base: Any, raw: str, source: str) -> Any:
    """Text from an environment variable or flag, converted to the field's type."""
    try:
        if base is bool:
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes", "on")
        if get_origin(base) is tuple or base is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return msgspec.json.decode(raw) if base in (int, float) else raw
    except (ValueError, msgspec.DecodeError):
        raise SettingsError(f"{source}: cannot read {raw!r} as {getattr(base, '__name__', base)}") from None
