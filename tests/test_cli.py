"""The command line as a user meets it: --version, the grouped --help, and --config files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from fakeai.config import describe_settings, env_name, setting_sections
from tests.servers import running_cli

ROOT = Path(__file__).resolve().parent.parent


def fakeai(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m fakeai ...`` run to its end, with no FAKEAI_* variable from the test's environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEAI_") or k == "FAKEAI_NO_EXTENSIONS"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fakeai", *arguments], env=environment, capture_output=True, text=True, timeout=60
    )


def test_version_is_the_installed_distributions() -> None:
    done = fakeai("--version")
    assert done.returncode == 0, done.stderr
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == f"fakeai {version('fakeai')}" == f"fakeai {pyproject}"


def test_serve_help_lists_every_setting_under_its_section_with_its_default() -> None:
    done = fakeai("serve", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    titles = [title for title, _ in setting_sections()]
    for expected in ("Server", "Models and answers", "Latency", "KV cache and routing", "Error injection",
                     "Metrics and dashboard"):
        assert expected in titles
    headings = [match.start() for title in titles for match in [re.search(rf"^{re.escape(title)}:$", text, re.M)]
                if match]
    assert len(headings) == len(titles) and headings == sorted(headings), "every section, in order"
    bounds = dict(zip(titles, zip(headings, [*headings[1:], len(text)])))
    section_of = {name: title for title, names in setting_sections() for name in names}
    flat = "".join(text.split())  # argparse wraps lines, at spaces and after hyphens
    for name, _, default, _ in describe_settings():
        start, end = bounds[section_of[name]]
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"^  {flag}\b", text[start:end], re.M), f"{flag} is not under {section_of[name]}"
        shown = ",".join(default) if isinstance(default, tuple) else str(default).lower()
        assert "".join(f"(env {env_name(name)}; default {shown or 'none'})".split()) in flat, name


def test_settings_come_from_flag_then_environment_then_file_then_default(tmp_path: Path) -> None:
    config = tmp_path / "fakeai.toml"
    config.write_text(
        'models = ["from-file", "text-embedding-3-small"]\n'
        "window_seconds = 7\n"  # an integer for a float: TOML's 7 is 7.0
        "embedding_dimensions = 4\n"
        "zero_latency = true\n"
    )
    environment = {"FAKEAI_WINDOW_SECONDS": "8", "FAKEAI_EMBEDDING_DIMENSIONS": "6"}
    with running_cli("--config", str(config), "--embedding-dimensions", "5", env=environment) as base_url, \
            httpx.Client(base_url=base_url, timeout=10) as client:
        assert [model["id"] for model in client.get("/v1/models").json()["data"]] == [
            "from-file", "text-embedding-3-small"]  # the file, nothing over it
        assert client.get("/metrics").json()["window_seconds"] == 8.0  # the variable over the file
        embedding = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}).json()
        assert len(embedding["data"][0]["embedding"]) == 5  # the flag over the variable and the file
        assert client.get("/metrics", headers={"Accept": "*/*"}).headers["content-type"] == "application/json"
        chat = client.post("/v1/chat/completions", json={
            "model": "from-file", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] <= 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("window_second = 2\n", "'window_second' is not a setting (did you mean 'window_seconds'?)"),
        ('ttft_ms = "20"\n', "ttft_ms: Expected `float`, got `str`"),
        ("port = 70000\n", "port: Expected `int` <= 65535"),
        ('routing_policy = "fastest"\n', "routing_policy: Invalid enum value 'fastest'"),
        ('[server]\nport = 8001\n', "'server' is not a setting"),
        ('models = ["a,b"]\n', "models: an item has a comma"),
        ("ttft_ms = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_stops_the_server_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    done = fakeai("serve", "--config", str(config), "--port", "0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fakeai: {config}: "), done.stderr
    assert message in lines[0]


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    done = fakeai("serve", "--config", str(tmp_path / "nowhere.toml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"fakeai: {tmp_path / 'nowhere.toml'}: cannot read it (No such file or directory)"


def test_an_inherited_descriptor_must_be_a_tcp_socket(tmp_path: Path) -> None:
    done = fakeai("serve", "--fd", "987")
    assert done.returncode == 2
    assert done.stderr.strip() == "fakeai: --fd 987: not an inherited socket (Bad file descriptor)"
    with open(tmp_path / "a-file", "wb") as file:
        fd = file.fileno()
        done = subprocess.run([sys.executable, "-m", "fakeai", "serve", "--fd", str(fd)],
                              pass_fds=(fd,), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"fakeai: --fd {fd}: not an inherited socket (Socket operation on non-socket)"
