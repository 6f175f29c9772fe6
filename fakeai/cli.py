"""``fakeai serve``: the command line, generated from ``fakeai.config.Settings``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Literal, get_args, get_origin

from fakeai.config import SettingsError, describe_settings, env_name, settings_from_env

__all__ = ("main",)


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
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the server",
        description="Start the server. Every flag can also be set as an environment variable.",
    )
    for name, base, default, description in describe_settings():
        shown = ",".join(default) if isinstance(default, tuple) else str(default).lower()
        text = f"{description} (env {env_name(name)}; default {shown or 'none'})"
        switch = {"nargs": "?", "const": "true"} if base is bool else {}  # `--zero-latency` alone means true
        serve.add_argument(
            _flag(name), dest=name, metavar=_metavar(base), default=None, help=text.replace("%", "%%"), **switch
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {name: value for name, value in vars(args).items() if name != "command" and value is not None}
    # Flags become FAKEAI_* variables, so every worker process builds the same settings.
    for name, value in flags.items():
        os.environ[env_name(name)] = value
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        print(f"fakeai: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    uvicorn.run(
        "fakeai.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
