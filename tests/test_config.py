"""Settings: one definition behind flags, FAKEAI_* variables and defaults."""

from __future__ import annotations

import pytest

from fakeai.app import create_app_from_env
from fakeai.cli import build_parser
from fakeai.config import Settings, SettingsError, describe_settings, env_name, settings_from_env


def test_environment_sets_the_window_length() -> None:
    settings = settings_from_env({"FAKEAI_WINDOW_SECONDS": "2.5", "FAKEAI_PORT": "9001"})
    assert settings.window_seconds == 2.5 and settings.port == 9001


def test_overrides_win_over_the_environment() -> None:
    settings = settings_from_env({"FAKEAI_WINDOW_SECONDS": "2.5"}, window_seconds=10.0)
    assert settings.window_seconds == 10.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FAKEAI_WINDOW_SECONDS", "0"), ("FAKEAI_WINDOW_SECONDS", "soon"), ("FAKEAI_PORT", "70000")],
)
def test_bad_values_are_refused_with_the_setting_named(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable.removeprefix("FAKEAI_").lower() + "|" + variable):
        settings_from_env({variable: value})


def test_every_setting_has_a_flag_a_variable_and_a_description() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for name, _, _, description in describe_settings():
        assert description, name
        assert "--" + name.replace("_", "-") in help_text
        assert env_name(name) in help_text


def test_the_app_factory_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKEAI_WINDOW_SECONDS", "3")
    app = create_app_from_env()
    assert app.state.metrics.window_seconds == 3.0
    assert app.state.settings == Settings(window_seconds=3.0)


def test_the_documented_settings_table_is_the_generated_one() -> None:
    import re
    from pathlib import Path

    from fakeai.config import settings_table

    page = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    block = re.search(r"<!-- settings reference: [^\n]*-->\n(.*?)<!-- end of settings reference -->\n", page, re.S)
    assert block, "docs/settings.md lost its settings reference markers"
    assert block[1] == settings_table(), "regenerate it with scripts/update-reference-docs.py"
