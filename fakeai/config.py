"""Every setting of fakeai, defined once.

``Settings`` is the single definition: the CLI flags (``--window-seconds``), the environment
variables (``FAKEAI_WINDOW_SECONDS``), the keys of a configuration file (``window_seconds``,
``fakeai serve --config PATH``) and the settings table of docs/settings.md are all derived from its
fields, their types, defaults, descriptions and sections. Precedence: CLI flag, then
environment variable, then configuration file, then default.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

__all__ = (
    "ENV_PREFIX",
    "Settings",
    "SettingsError",
    "describe_settings",
    "env_text",
    "read_config_file",
    "setting_bounds",
    "setting_sections",
    "settings_from_env",
    "settings_table",
    "setting_pairs",
)

ENV_PREFIX = "FAKEAI_"


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its range."""


def _setting(description: str, *, section: str | None = None, **constraints: Any) -> Meta:
    """A setting's description and constraints. ``section`` starts a group (in ``fakeai serve
    --help`` and the settings table): this field and the ones after it, until the next field
    that names a section, belong to it."""
    return Meta(description=description, extra={"section": section} if section else None, **constraints)


MAX_MODEL_LABELS = 1000
"""The most model labels a metrics region has room for (``fakeai.metrics.labels``; a test
keeps the two equal): the bound of --max-model-labels and of the number of --models."""
MAX_ENGINE_LABELS = 8192
"""The most (model label, simulated engine) pairs one server process records vLLM's families
for (``fakeai.metrics.labels``; a test keeps the two equal): (model labels + 1) x the KV
workers a process routes among. Each pair takes about 5.6 KB of the process's metrics region."""
RESERVED_MODEL = "__other__"
"""The model name of the metrics' other bucket: not a model id a server can be given."""

ERROR_KINDS = ("rate_limit", "server_error", "service_unavailable", "context_length")
"""Errors fakeai can inject: 429 with Retry-After, 500, 503, and a 400 context-length error."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """fakeai's configuration."""

    # -- server ----------------------------------------------------------------------------
    host: Annotated[str, _setting("Address to bind.", section="Server")] = "127.0.0.1"
    port: Annotated[int, _setting("TCP port to listen on (0 picks a free one).", ge=0, le=65535)] = 8000
    workers: Annotated[
        int, _setting("Worker processes; every scrape covers all of them (see docs/monitoring-internals.md).", ge=1, le=64)
    ] = 1
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug", "trace"], _setting("Server log level.")
    ] = "info"
    max_request_bytes: Annotated[
        int, _setting("Largest request body accepted, in bytes; larger ones get 413.", ge=1024)
    ] = 10_000_000
    api_keys: Annotated[
        tuple[str, ...],
        _setting("API keys accepted as `Authorization: Bearer <key>` on /v1 (comma-separated); empty: no auth."),
    ] = ()

    # -- models and answers ----------------------------------------------------------------
    models: Annotated[tuple[str, ...], _setting("Model ids served (comma-separated).", section="Models and answers")] = (
        "openai/gpt-oss-120b",
        "openai/gpt-oss-20b",
        "meta-llama/Llama-3.1-8B-Instruct",
        "text-embedding-3-small",
    )
    accept_any_model: Annotated[bool, _setting("Serve any model name instead of 404 for unknown ones.")] = False
    max_context_tokens: Annotated[
        int, _setting("Context length: prompt plus max_tokens beyond it is a 400.", ge=16)
    ] = 131_072
    answer_tokens_mean: Annotated[
        float, _setting("Mean answer length in tokens when max_tokens does not end it first.", gt=0)
    ] = 64.0
    answer_tokens_stddev: Annotated[float, _setting("Standard deviation of the answer length.", ge=0)] = 24.0
    answer_tokens_max: Annotated[
        int, _setting("Longest answer when the request sets no max_tokens.", ge=1)
    ] = 256
    embedding_dimensions: Annotated[
        int, _setting("Embedding size when the request sets no dimensions.", ge=1, le=16384)
    ] = 1536
    seed: Annotated[int, _setting("Seed of every random choice (answers, jitter, errors).")] = 0

    # -- latency -------------------------------------------------------------------------
    ttft_ms: Annotated[
        float,
        _setting(
            "Time to first token before prefill, in ms (with the engine model: before the engine's queue).",
            section="Latency",
            ge=0,
        ),
    ] = 50.0
    prefill_ms_per_token: Annotated[
        float, _setting("Extra time to first token per uncached prompt token, in ms.", ge=0)
    ] = 0.02
    ttft_jitter: Annotated[
        float, _setting("Relative jitter of the time to first token (0.1 = up to +-10%).", ge=0, le=1)
    ] = 0.1
    itl_ms: Annotated[float, _setting("Inter-token latency, in ms.", ge=0)] = 10.0
    itl_jitter: Annotated[float, _setting("Relative jitter of the inter-token latency.", ge=0, le=1)] = 0.1
    load_slowdown: Annotated[
        float,
        _setting(
            "Latency grows by this fraction for every other request in flight (0: no slowdown); with the engine "
            "model, a decode step by this fraction for every other request it decodes.",
            ge=0,
        ),
    ] = 0.0
    zero_latency: Annotated[bool, _setting("Send everything at once: no TTFT, no inter-token wait.")] = False

    # -- KV cache and routing ----------------------------------------------------------
    kv_workers: Annotated[
        int,
        _setting(
            "Simulated inference workers behind the router, each with its own prefix cache.",
            section="KV cache and routing", ge=1, le=256,
        ),
    ] = 4
    kv_block_tokens: Annotated[int, _setting("Tokens per prefix-cache block.", ge=1, le=4096)] = 16
    kv_capacity_blocks: Annotated[
        int,
        _setting(
            "Prefix-cache capacity of each worker, in blocks (LRU eviction beyond); with the engine model also "
            "the KV blocks its running requests may hold (admission, preemption).",
            ge=1,
            le=10_000_000,
        ),
    ] = 16_384
    routing_policy: Annotated[
        Literal["kv-aware", "round-robin", "random", "least-loaded"],
        _setting("How the router picks a worker for each request."),
    ] = "kv-aware"
    routing_overlap_weight: Annotated[
        float, _setting("kv-aware: weight of the cached fraction of the prompt in a worker's score.", ge=0)
    ] = 1.0
    routing_load_weight: Annotated[
        float, _setting("kv-aware: weight of the worker's share of running requests (subtracted).", ge=0)
    ] = 0.5

    # -- error injection -----------------------------------------------------------------
    error_rate: Annotated[
        float,
        _setting("Fraction of API requests answered with an injected error.", section="Error injection", ge=0, le=1),
    ] = 0.0
    error_kinds: Annotated[
        tuple[Literal["rate_limit", "server_error", "service_unavailable", "context_length"], ...],
        _setting("Injected error kinds, picked evenly (comma-separated)."),
    ] = ERROR_KINDS
    fail_first: Annotated[int, _setting("Fail the first N API requests (kinds in turn).", ge=0)] = 0
    stream_error_rate: Annotated[
        float, _setting("Fraction of streams that end with an error event midway.", ge=0, le=1)
    ] = 0.0
    retry_after_seconds: Annotated[int, _setting("Retry-After of injected 429 and 503 errors.", ge=0)] = 1

    # -- limits (bounded work per request) ----------------------------------------------
    max_generated_tokens_per_request: Annotated[
        int,
        _setting(
            "Most tokens one chat or completions request may ask for: n x max_tokens (answer_tokens_max when "
            "unset), summed over its prompts, echoed prompts included; more is a 400 (the default allows n = 8 "
            "at the default context length).",
            section="Limits per request",
            ge=1,
        ),
    ] = 1_048_576
    max_choices_per_request: Annotated[
        int, _setting("Most answers (n x prompts) one chat or completions request may ask for; more is a 400.", ge=1)
    ] = 1024
    max_prompts_per_request: Annotated[
        int, _setting("Most prompts in one completions request; more is a 400.", ge=1)
    ] = 1024
    max_prompt_tokens_per_request: Annotated[
        int,
        _setting(
            "Most prompt tokens one request may send, summed over its prompts or inputs (OpenAI's limit for "
            "embeddings); more is a 400. Routing a prompt costs time in proportion to its tokens.",
            ge=1,
        ),
    ] = 300_000
    max_embedding_inputs_per_request: Annotated[
        int, _setting("Most inputs in one embeddings request (OpenAI's limit); more is a 400.", ge=1)
    ] = 2048
    max_embedding_values_per_request: Annotated[
        int,
        _setting(
            "Most numbers (inputs x dimensions) one embeddings request may ask for; more is a 400 (the default "
            "allows OpenAI's largest request: 2048 inputs of 3072 dimensions).",
            ge=1,
        ),
    ] = 6_291_456

    # -- tokens (issue 14: real tokens) ------------------------------------------------------
    tokenizer: Annotated[
        Literal["approx", "o200k_base", "cl100k_base"],
        _setting(
            "How prompt tokens are counted: approx (4 characters a token, O(1)) or exactly with a real "
            "encoding, o200k_base (gpt-oss) or cl100k_base, which needs the extra fakeai[tokenizers]; the KV "
            "cache then hashes the real token ids. Answers are real tokens to both encodings either way.",
            section="Models and answers",
        ),
    ] = "approx"

    # -- agents, tools and evals (issue 16: reasoning, tool calls, structured output) -----------
    reasoning_models: Annotated[
        tuple[str, ...],
        _setting(
            "Models that reason, as shell patterns (comma-separated): their chat answers may begin with a "
            "reasoning part; reasoning_effort for any other model is a 400.",
            section="Agents, tools and evals",
        ),
    ] = ("*gpt-oss*",)
    reasoning_default_effort: Annotated[
        Literal["none", "low", "medium", "high"],
        _setting(
            "Reasoning effort of a reasoning model's chat request that names none (none: it does not reason, "
            "so a request without reasoning_effort is answered as before; medium: as vLLM serves gpt-oss)."
        ),
    ] = "none"
    reasoning_tokens_low: Annotated[
        float, _setting("Mean reasoning tokens at reasoning_effort low (+-25%, at most twice the mean).", gt=0)
    ] = 128.0
    reasoning_tokens_medium: Annotated[float, _setting("Mean reasoning tokens at reasoning_effort medium.", gt=0)] = 512.0
    reasoning_tokens_high: Annotated[float, _setting("Mean reasoning tokens at reasoning_effort high.", gt=0)] = 2048.0
    reasoning_field: Annotated[
        Literal["reasoning", "reasoning_content", "both"],
        _setting(
            "Name of the reasoning text in message and delta: reasoning (vLLM since late 2025), "
            "reasoning_content (DeepSeek, older vLLM), or both."
        ),
    ] = "reasoning"
    tool_call_fraction: Annotated[
        float,
        _setting("Fraction of chat answers with tools and tool_choice auto that call a tool.", ge=0, le=1),
    ] = 0.5
    max_parallel_tool_calls: Annotated[
        int,
        _setting(
            "Most tool calls in one answer when parallel_tool_calls allows several (their number is drawn "
            "from 1 to this, at most one per tool).",
            ge=1,
            le=128,
        ),
    ] = 3
    # -- engine model, readiness and runtime control (issue 17) -------------------------------
    max_num_seqs: Annotated[
        int,
        _setting(
            "vLLM's max_num_seqs: requests each simulated engine (KV worker) runs at once; more wait in its "
            "FCFS queue. Setting it (or --max-num-batched-tokens) turns the engine model on: steps, a waiting "
            "queue, KV-block admission by --kv-capacity-blocks, preemption (0: off, every request at once).",
            section="Engine model, readiness and runtime control",
            ge=0,
            le=1_000_000,
        ),
    ] = 0
    max_num_batched_tokens: Annotated[
        int,
        _setting(
            "vLLM's max_num_batched_tokens: tokens one engine step computes, decodes first, then prefill "
            "chunks (chunked prefill); at least --max-num-seqs when both are set (0: no limit).",
            ge=0,
            le=100_000_000,
        ),
    ] = 0
    startup_seconds: Annotated[
        float,
        _setting(
            "Seconds the model takes to \"load\" after start: until then /health answers 503 (loading) and the "
            "generation endpoints 503 in OpenAI's shape (0: ready at once).",
            ge=0,
            le=86_400,
        ),
    ] = 0.0
    admin_key: Annotated[
        str,
        _setting(
            "Turns the admin API on (/admin/config, /admin/reset-prefix-cache), which then needs "
            "`Authorization: Bearer <key>`; empty: no admin API."
        ),
    ] = ""

    # -- metrics -------------------------------------------------------------------------
    metrics_format: Annotated[
        Literal["json", "prometheus"],
        _setting(
            "What GET /metrics sends a client that states no preference (Accept: */* or none).",
            section="Metrics and dashboard",
        ),
    ] = "json"
    record_monitoring: Annotated[
        bool, _setting("Count requests to the monitoring endpoints (/metrics, /health, ...) as traffic.")
    ] = False
    record_metrics: Annotated[
        bool, _setting("Record requests in the metrics at all (off only to measure what recording costs).")
    ] = True
    window_seconds: Annotated[float, _setting("Length of the sliding metrics window, in seconds.", gt=0, le=3600)] = 5.0
    max_window_samples: Annotated[
        int,
        _setting(
            "Samples each sliding window (and each worker's journal, 64 bytes a request) holds at most; "
            "beyond it the oldest are dropped and counted (the default covers 50k requests/s per worker "
            "over a 5 s window; at most 16,777,216: a 1 GB journal per worker).",
            ge=1,
            le=16_777_216,
        ),
    ] = 262_144

    # -- metrics label space -------------------------------------------------------------
    max_model_labels: Annotated[
        int,
        _setting(
            "Distinct model names with a metrics label of their own: the --models first, then names clients "
            "send, first come first served; requests for any other model are answered as usual and counted "
            "under the model `__other__` (see docs/operations.md).",
            ge=1,
            le=MAX_MODEL_LABELS,
        ),
    ] = 100

    history_seconds: Annotated[
        float,
        _setting("How far back GET /metrics/history (and the dashboard's charts) reach, in seconds.", ge=1, le=86_400),
    ] = 900.0
    history_interval_seconds: Annotated[
        float, _setting("Seconds between two points of the metrics history.", ge=0.05, le=3600)
    ] = 1.0
    dashboard_refresh_seconds: Annotated[
        float,
        _setting("How often the dashboard reloads the metrics, in seconds (the page can change it).", ge=0.5, le=3600),
    ] = 5.0

    # -- connections and shutdown ---------------------------------------------------------
    send_timeout_seconds: Annotated[
        float,
        _setting(
            "A stream whose client reads nothing for this long (its socket buffer full) is cut: "
            "recorded as 499 and a failed stream.",
            section="Connections and shutdown",
            gt=0,
        ),
    ] = 30.0
    header_timeout_seconds: Annotated[
        float,
        _setting(
            "A new connection must start a request, and a request must send its request line and "
            "headers, within this many seconds: else 408 (a connection that sent nothing is closed).",
            gt=0,
        ),
    ] = 10.0
    body_timeout_seconds: Annotated[
        float, _setting("A request must send its whole body within this many seconds of its headers: else 408.", gt=0)
    ] = 30.0
    keep_alive_seconds: Annotated[
        float, _setting("An idle keep-alive connection is closed after this many seconds.", gt=0)
    ] = 5.0
    max_header_bytes: Annotated[
        int, _setting("Largest request line plus headers, in bytes; larger ones get 431.", ge=1024)
    ] = 65_536
    max_connections: Annotated[
        int,
        _setting(
            "Connections (or requests) a worker process serves at once; beyond it requests get 503 "
            "(0: no limit). The open-files limit is raised to its maximum at start.",
            ge=0,
        ),
    ] = 2048
    graceful_timeout_seconds: Annotated[
        float,
        _setting(
            "On SIGTERM or SIGINT, requests in flight get this long to finish; the rest are cut "
            "(499, failed stream). A second signal cuts them at once.",
            ge=0,
        ),
    ] = 5.0

    # -- adoption (issue 19): an inherited listening socket ------------------------------
    fd: Annotated[
        int,
        _setting(
            "Serve on the listening TCP socket inherited as this file descriptor (from a process manager, or "
            "the pytest plugin's server in a process of its own) instead of binding --host and --port; -1: "
            "bind them.",
            section="Server",
            ge=-1,
        ),
    ] = -1

    # -- adoption (issue 19): cross-origin requests (CORS) -------------------------------
    cors_origins: Annotated[
        tuple[str, ...],
        _setting(
            "Origins whose web pages may call fakeai from a browser (comma-separated; `*` in one matches "
            "anything: `http://localhost:*`). `*` alone: every origin, as vLLM; empty: no CORS at all (a "
            "browser on another origin is refused).",
            section="Cross-origin requests (CORS)",
        ),
    ] = ("*",)
    cors_methods: Annotated[
        tuple[Literal["*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ...],
        _setting("Methods a cross-origin page may use (comma-separated; `*`: every one, as vLLM)."),
    ] = ("*",)
    cors_headers: Annotated[
        tuple[str, ...],
        _setting(
            "Request headers a cross-origin page may send (comma-separated; `*`: every one, Authorization "
            "included, as vLLM)."
        ),
    ] = ("*",)
    cors_allow_credentials: Annotated[
        bool,
        _setting(
            "Let cross-origin pages send cookies or TLS client certificates (Access-Control-Allow-Credentials); "
            "needs --cors-origins without `*`. An API key in the Authorization header does not need it."
        ),
    ] = False

    # -- history (issue 18): the metrics history kept in SQLite, across restarts ----------
    history_db: Annotated[
        str,
        _setting(
            "SQLite file keeping the metrics history across restarts (created, with its directory, if missing; "
            "one server per file); empty: in memory, gone when the server stops (see docs/history.md).",
            section="History",
        ),
    ] = ""
    history_retention_seconds: Annotated[
        float,
        _setting(
            "How long the history keeps points, in seconds (older ones are deleted); at least --history-seconds.",
            ge=1,
            le=366 * 86_400,
        ),
    ] = 86_400.0
    history_downsample_seconds: Annotated[
        float,
        _setting(
            "Points older than --history-seconds are merged into one per this many seconds (steps aligned on "
            "Unix time); at least --history-interval-seconds.",
            ge=0.05,
            le=86_400,
        ),
    ] = 60.0
    # -- beyond one machine (issue 18): alert webhooks and OpenTelemetry export ---------------
    instance_name: Annotated[
        str,
        _setting(
            "This server's name in alerts (label `instance`) and OTLP metrics (`service.instance.id`); "
            "empty: `<host>:<port>` of --host and --port (the machine's hostname for a wildcard --host). Set it "
            "with --fd or --port 0, or to a pod's name.",
            section="Alerts and OpenTelemetry",
        ),
    ] = ""
    alert_webhook: Annotated[
        tuple[str, ...],
        _setting(
            "URLs that get an Alertmanager webhook notification (JSON, version 4) on every health transition "
            "(comma-separated, or the flag repeated); empty: no alerts (see docs/alerts.md)."
        ),
    ] = ()
    alert_labels: Annotated[
        tuple[str, ...],
        _setting(
            "Labels added to every alert, as `name=value` (comma-separated), e.g. `team=infra`; `job` "
            "(default `fakeai`) may be replaced, alertname, severity and instance may not."
        ),
    ] = ()
    alert_check_interval_seconds: Annotated[
        float, _setting("How often the health level is read for alerts, in seconds.", ge=0.01, le=3600)
    ] = 1.0
    alert_timeout_seconds: Annotated[
        float, _setting("A webhook POST that has not been answered within this many seconds fails.", gt=0, le=600)
    ] = 5.0
    alert_retries: Annotated[
        int,
        _setting(
            "Attempts after a failed one (refused, timed out, 5xx or 429) before a notification is given up.",
            ge=0,
            le=1000,
        ),
    ] = 5
    alert_backoff_seconds: Annotated[
        float,
        _setting("Wait before the first retry, in seconds; doubled for each further one (at most 60 s).", ge=0, le=60),
    ] = 1.0
    otlp_endpoint: Annotated[
        str,
        _setting(
            "OTLP/HTTP metrics URL (e.g. `http://collector:4318/v1/metrics`) that gets every counter, gauge and "
            "histogram periodically; empty: no export. Needs the extra fakeai[otlp] (see docs/otlp.md)."
        ),
    ] = ""
    otlp_interval_seconds: Annotated[
        float, _setting("Seconds between two OTLP exports.", ge=0.05, le=86_400)
    ] = 10.0
    otlp_timeout_seconds: Annotated[
        float, _setting("An OTLP export (retries included) gives up after this many seconds.", gt=0, le=600)
    ] = 10.0
    otlp_headers: Annotated[
        tuple[str, ...],
        _setting(
            "Headers sent with every OTLP export, as `name=value` (comma-separated), e.g. "
            "`authorization=Bearer TOKEN`; empty: those of OTEL_EXPORTER_OTLP_METRICS_HEADERS, if set."
        ),
    ] = ()

    def __post_init__(self) -> None:
        if self.history_seconds < self.history_interval_seconds:
            raise ValueError("history_seconds must be at least history_interval_seconds")
        if self.history_retention_seconds < self.history_seconds:
            raise ValueError("history_retention_seconds must be at least history_seconds")
        if self.history_downsample_seconds < self.history_interval_seconds:
            raise ValueError("history_downsample_seconds must be at least history_interval_seconds")
        _check_alerts_and_otlp(self)
        if len(self.models) > MAX_MODEL_LABELS:
            raise ValueError(f"models: at most {MAX_MODEL_LABELS} ids (each has a metrics label of its own)")
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "cors_allow_credentials: browsers refuse credentials from a server that allows every origin; "
                "name the origins in --cors-origins"
            )
        if self.max_num_seqs and self.max_num_batched_tokens and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                "max_num_batched_tokens must be at least max_num_seqs (every running request decodes a token a "
                "step), as vLLM requires"
            )
        if RESERVED_MODEL in self.models:
            raise ValueError(f"models: {RESERVED_MODEL} is the metrics' name for every model without a label")
        labels = max(self.max_model_labels, len(set(self.models))) + 1
        engines = max(1, -(-self.kv_workers // self.workers))
        if labels * engines > MAX_ENGINE_LABELS:
            raise ValueError(
                f"max_model_labels: vLLM's metrics are per model and simulated engine, and {labels} model labels "
                f"(with __other__) on {engines} KV workers per process are {labels * engines} pairs; at most "
                f"{MAX_ENGINE_LABELS}: lower --max-model-labels or --kv-workers, or raise --workers"
            )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        return _validated({**msgspec.structs.asdict(self), **changes})


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-zA-Z-]+\Z")
FIXED_ALERT_LABELS = ("alertname", "severity", "instance")
"""Labels every alert has that --alert-labels may not replace (fakeai.api.alerting)."""


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: {url!r} is not an http:// or https:// URL with a host")


def setting_pairs(items: tuple[str, ...]) -> dict[str, str]:
    """``name=value`` items (--alert-labels, --otlp-headers) as a dict."""
    return dict(item.split("=", 1) for item in items)


def _check_alerts_and_otlp(settings: Settings) -> None:
    for url in settings.alert_webhook:
        _check_url("alert_webhook", url)
    if settings.otlp_endpoint:
        _check_url("otlp_endpoint", settings.otlp_endpoint)
    checks = (("alert_labels", _LABEL_NAME, FIXED_ALERT_LABELS), ("otlp_headers", _HEADER_NAME, ()))
    for setting, names, checked in checks:
        seen: set[str] = set()
        for item in getattr(settings, setting):
            name, equals, _ = item.partition("=")
            if not equals or not names.match(name) or name.startswith("__"):
                raise ValueError(f"{setting}: {item!r} is not name=value with a valid name")
            if name in checked:
                raise ValueError(f"{setting}: {name} is set by fakeai itself")
            if name.lower() in seen:
                raise ValueError(f"{setting}: {name} is given twice")
            seen.add(name.lower())


def _validated(values: Mapping[str, Any]) -> Settings:
    try:
        return msgspec.convert(dict(values), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None


def _field_types() -> dict[str, Any]:
    hints = get_type_hints(Settings, include_extras=True)
    return {name: hints[name] for name in Settings.__struct_fields__}


def _metadata(hint: Any) -> tuple[Any, Meta | None]:
    """A field's type without ``Annotated``, and its ``Meta``."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        return base, next((extra for extra in extras if isinstance(extra, Meta)), None)
    return hint, None


def describe_settings() -> list[tuple[str, type, Any, str]]:
    """``(name, python type, default, description)`` for every setting, in definition order."""
    defaults = Settings()
    rows = []
    for name, hint in _field_types().items():
        base, meta = _metadata(hint)
        rows.append((name, base, getattr(defaults, name), getattr(meta, "description", "") or ""))
    return rows


def setting_sections() -> list[tuple[str, list[str]]]:
    """``(title, setting names)`` for every section, in the order the sections first appear: a
    field whose ``_setting`` names a section belongs to it, any other to its predecessor's."""
    sections: dict[str, list[str]] = {}
    current = "Other"
    for name, hint in _field_types().items():
        _, meta = _metadata(hint)
        current = ((meta.extra if meta is not None else None) or {}).get("section", current)
        sections.setdefault(current, []).append(name)
    return list(sections.items())


def setting_bounds() -> dict[str, dict[str, float]]:
    """The numeric bounds of every setting that has some, by name: ``{"ge": 1, "le": 64}``
    (``ge``, ``gt``, ``le``, ``lt`` as ``msgspec.Meta`` states them)."""
    bounds = {}
    for name, hint in _field_types().items():
        _, meta = _metadata(hint)
        stated = {key: getattr(meta, key) for key in ("ge", "gt", "le", "lt") if getattr(meta, key, None) is not None}
        if stated:
            bounds[name] = stated
    return bounds


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def env_text(name: str, value: Any) -> str:
    """``value`` of setting ``name`` as its ``FAKEAI_*`` variable would say it (read back by
    ``settings_from_env`` as the same value): lists comma-separated (so no item may hold a
    comma), booleans ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings a TOML file sets, by the settings' own names (``window_seconds = 2.5``,
    ``models = ["a", "b"]``), each checked against its type and range.

    Raises ``SettingsError`` with a one-line message naming the file and the key: the file
    cannot be read or is not TOML, a key is not a setting, a value has the wrong type (a
    string for a number: TOML says what each value is, so nothing is converted) or range, or
    a list item has a comma (``fakeai serve`` hands the settings to its workers as variables).
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    types = _field_types()
    values: dict[str, Any] = {}
    for key, value in document.items():
        hint = types.get(key)
        if hint is None:
            close = difflib.get_close_matches(key, types, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"{path}: {key!r} is not a setting{guess}")
        try:
            values[key] = msgspec.convert(value, hint, strict=True)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"{path}: {key}: {exc}") from None
        if isinstance(values[key], tuple) and any("," in str(item) for item in values[key]):
            raise SettingsError(f"{path}: {key}: an item has a comma, which no list setting allows (flags and "
                                "variables separate items with commas)")
    return values


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``FAKEAI_*`` variables, with ``overrides`` (e.g. CLI flags) on top.

    Values may be text (as in the environment): numbers and booleans (``1``, ``true``, ``0``,
    ``false``) are converted; lists are comma-separated.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, base, _, _ in describe_settings():
        raw = overrides.get(name)
        if raw is None:
            raw = environ.get(env_name(name))
        if raw is None:
            continue
        if isinstance(raw, str) and get_origin(base) is tuple:
            raw = tuple(part.strip() for part in raw.split(",") if part.strip())
        values[name] = raw
    return _validated(values)


def _shown(default: Any) -> str:
    return ",".join(default) if isinstance(default, tuple) else str(default).lower()


def settings_table() -> str:
    """The settings reference of docs/settings.md, in Markdown: a table per section (a test keeps
    the page equal to it; ``scripts/update-reference-docs.py`` rewrites it)."""
    described = {name: (default, description) for name, _, default, description in describe_settings()}
    parts = []
    for title, names in setting_sections():
        rows = [f"**{title}**", "", "| flag | environment | config file | default | meaning |", "|---|---|---|---|---|"]
        for name in names:
            default, description = described[name]
            shown = _shown(default)
            flag = "--" + name.replace("_", "-")
            rows.append(
                f"| `{flag}` | `{env_name(name)}` | `{name}` | {f'`{shown}`' if shown else '(none)'} | {description} |"
            )
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)
