"""``fakeai serve``: the command line, generated from ``fakeai.config.Settings``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fakeai.config import SettingsError, describe_settings, env_name, settings_from_env

__all__ = ("main",)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeai", description="A fake OpenAI-compatible LLM server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the server",
        description="Start the server. Every flag can also be set as an environment variable.",
    )
    for name, base, default, description in describe_settings():
        shown = ",".join(default) if isinstance(default, tuple) else default
        serve.add_argument(
            _flag(name),
            dest=name,
            metavar=base.__name__.upper() if isinstance(base, type) else "VALUE",
            default=None,
            help=f"{description} (env {env_name(name)}; default {shown})",
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
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
