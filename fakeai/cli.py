"""``fakeai serve``: the command line, generated from ``fakeai.config.Settings``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args, get_origin

from fakeai import __version__
from fakeai.api.otlp_push import missing_otlp_extra
from fakeai.config import (
    Settings,
    SettingsError,
    describe_settings,
    env_name,
    env_text,
    read_config_file,
    setting_sections,
    settings_from_env,
)
from fakeai.metrics.history_db import database_file_bytes
from fakeai.metrics.history_ring import ring_file_bytes
from fakeai.metrics.labels import engines_per_process, region_capacity
from fakeai.metrics.regions import SHARED_DIR_ENV, pid_alive, region_file_bytes
from fakeai.metrics.registry import STARTED_AT_ENV
from fakeai.simulation.tokenizers import missing_extra

__all__ = ("main",)

CONFIG_DEST = "config_file"
"""Where ``--config`` lands in the parsed arguments (not a setting)."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _metavar(base: object) -> str:
    if get_origin(base) is tuple:
        return "LIST"
    if get_origin(base) is Literal:
        return "{" + ",".join(map(str, get_args(base))) + "}"
    return getattr(base, "__name__", "VALUE").upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeai", description="A fake OpenAI-compatible LLM server.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the server",
        usage="fakeai serve [-h] [--config PATH] [--SETTING VALUE ...]",
        description=(
            "Start the server. Every setting is a flag, an environment variable FAKEAI_<NAME> and a key of "
            "the --config file (its own name: window_seconds = 2.5); a flag wins over the variable, the "
            "variable over the file."
        ),
    )
    serve.add_argument(
        "--config", dest=CONFIG_DEST, metavar="PATH", default=None,
        help="A TOML file of settings by their own names; an unknown key or a wrong type is an error.",
    )
    described = {name: (base, default, description) for name, base, default, description in describe_settings()}
    for title, names in setting_sections():
        group = serve.add_argument_group(title)
        for name in names:
            base, default, description = described[name]
            shown = ",".join(default) if isinstance(default, tuple) else str(default).lower()
            text = f"{description} (env {env_name(name)}; default {shown or 'none'})"
            switch: dict[str, str] = {}
            if base is bool:
                switch = {"nargs": "?", "const": "true"}  # `--zero-latency` alone means true
            elif get_origin(base) is tuple:
                switch = {"action": "append"}  # a list: `--alert-webhook A --alert-webhook B` is `A,B`
            group.add_argument(
                _flag(name), dest=name, metavar=_metavar(base), default=None, help=text.replace("%", "%%"), **switch
            )
    return parser


def _export_settings(flags: dict[str, str], config: str | None) -> None:
    """Put the settings in ``FAKEAI_*`` variables, so every worker process builds the same ones:
    the file's where no variable is set, then the flags over everything."""
    if config is not None:
        for name, value in read_config_file(config).items():
            os.environ.setdefault(env_name(name), env_text(name, value))
    for name, value in flags.items():
        os.environ[env_name(name)] = value


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(0)  # a stop asked for before the server runs, or after: still a clean stop


SHARED_HEADROOM = 1.25
"""``/dev/shm`` is used when its free room is at least this many times ``shared_metrics_bytes``."""


def shared_metrics_bytes(settings: Settings) -> int:
    """What the shared directory holds for ``settings``: every worker process's metrics region,
    the server's history ring, and its history database without ``--history-db`` (the chart in
    ``deploy/helm`` sizes ``/dev/shm`` by it)."""
    region = region_file_bytes(settings.max_window_samples, *region_capacity(
        max(settings.max_model_labels, len(set(settings.models))),
        engines_per_process(settings.kv_workers, settings.workers), settings.max_context_tokens))
    database = 0 if settings.history_db else database_file_bytes(
        settings.history_seconds, settings.history_interval_seconds, settings.history_downsample_seconds,
        settings.history_retention_seconds)
    return (settings.workers * region + ring_file_bytes(settings.history_seconds, settings.history_interval_seconds)
            + database)


def _shared_metrics_dir(needed_bytes: int) -> Path:
    """A new directory for the worker processes' metrics regions: in ``/dev/shm`` when it has
    room for them (a container's is 64 MB unless given ``--shm-size``), else the temporary
    directory; directories left by servers that were killed are removed first."""
    base = Path("/dev/shm")
    usable = base.is_dir() and os.access(base, os.W_OK)
    if usable:
        stats = os.statvfs(base)
        usable = stats.f_bavail * stats.f_frsize >= needed_bytes * SHARED_HEADROOM
    if not usable:
        base = Path(tempfile.gettempdir())
    for stale in base.glob("fakeai-*-*"):
        owner = stale.name.split("-")[1]
        if owner.isdigit() and not pid_alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"fakeai-{os.getpid()}-", dir=base))


def _free_mib(path: str) -> str:
    try:
        stats = os.statvfs(path)
    except OSError:
        return "it is missing"
    return f"it has {stats.f_bavail * stats.f_frsize / 2**20:.0f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = {name: ",".join(value) if isinstance(value, list) else value
              for name, value in vars(args).items() if value is not None}
    config = chosen.pop(CONFIG_DEST, None)
    chosen.pop("command")
    try:
        _export_settings(chosen, config)
        settings = settings_from_env()
    except SettingsError as exc:
        print(f"fakeai: {exc}", file=sys.stderr)
        return 2
    missing = missing_extra(settings.tokenizer) or (settings.otlp_endpoint and missing_otlp_extra())
    if missing:
        print(f"fakeai: {missing}", file=sys.stderr)
        return 2

    from fakeai.server import inherited_socket, raise_open_files_limit, serve

    sock = None
    if settings.fd >= 0:
        try:
            sock = inherited_socket(settings.fd)
        except ValueError as exc:
            print(f"fakeai: {exc}", file=sys.stderr)
            return 2
    raise_open_files_limit()
    try:
        history_lock = _claim_history_db(settings)
    except Exception as exc:
        print(f"fakeai: --history-db: {exc}", file=sys.stderr)
        return 2
    # Every worker process records into a region in this directory and reads all of them,
    # so any worker answers a scrape for the whole server; one of them writes the server's
    # history ring there, which all of them serve (and the history database, without
    # --history-db). The directory goes when the server stops.
    needed = shared_metrics_bytes(settings)
    try:
        shared = _shared_metrics_dir(needed)
    except OSError as exc:  # /dev/shm too small and no writable temporary directory (a read-only root)
        print(f"fakeai: no room for the metrics regions of {settings.workers} worker(s): /dev/shm needs "
              f"{needed * SHARED_HEADROOM / 2**20:.0f} MiB free ({_free_mib('/dev/shm')}), and the temporary "
              f"directory is not writable either ({exc}); give /dev/shm more room (docker --shm-size, the Helm "
              "chart's shm.perWorkerMiB)", file=sys.stderr)
        return 2
    if history_lock is None:  # made once here: the workers, starting together, only open it
        try:
            _claim_history_db(settings, shared)
        except Exception as exc:
            shutil.rmtree(shared, ignore_errors=True)
            print(f"fakeai: the history database: {exc}", file=sys.stderr)
            return 2
    os.environ[SHARED_DIR_ENV] = str(shared)
    os.environ[STARTED_AT_ENV] = repr(time.monotonic())
    # The server handles SIGINT/SIGTERM while it runs; before and after, they end the
    # process through this handler, so the directory is still removed.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _exit_on_signal)
    try:
        status = serve("fakeai.app:create_app_from_env", settings, sock)
        if status == 0:
            _log_summary(shared, settings)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        if history_lock is not None:
            history_lock.release()
    return status


def _claim_history_db(settings: Settings, shared: Path | None = None):
    """With ``--history-db``: the file's writer lock, held by this process for the server's
    life (its workers write under it); the database is opened (made) once first, so a path
    that cannot be one fails here, with a message, not in the workers. Without it, and given
    the shared directory: the database made there (``HISTORY_DB_FILE``), without a lock."""
    import sqlite3

    from fakeai.metrics.history_store import HISTORY_DB_FILE, claim_database

    if shared is not None:
        path, lock = str(shared / HISTORY_DB_FILE), False
    elif settings.history_db:
        path, lock = os.path.expanduser(settings.history_db), True
    else:
        return None
    try:
        database, writer = claim_database(
            path, lock, seconds=settings.history_seconds,
            downsample_seconds=settings.history_downsample_seconds,
            retention_seconds=settings.history_retention_seconds)
    except sqlite3.Error as exc:
        raise ValueError(f"{settings.history_db}: {exc}") from None
    database.close()
    return writer


def _log_summary(shared: Path, settings: Settings) -> None:
    from fakeai.server import summary

    try:
        line = summary(shared, settings)
    except Exception as exc:  # the summary is a courtesy: never a reason to fail a stop
        logging.getLogger("uvicorn.error").warning("fakeai: no summary of what was served: %s", exc)
        return
    logging.getLogger("uvicorn.error").info(line)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
