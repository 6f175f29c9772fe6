"""uvicorn's access log is on only at a log level that prints it (INFO and below)."""

from __future__ import annotations

import logging

import pytest

from fakeai.config import Settings
from fakeai.server import ServerConfig, logs_access


@pytest.mark.parametrize(("level", "on"), [("trace", True), ("debug", True), ("info", True), ("warning", False),
                                           ("error", False), ("critical", False), (logging.INFO, True),
                                           (logging.WARNING, False), (None, True)])
def test_the_access_log_is_on_only_where_its_lines_print(level, on) -> None:
    assert logs_access(level) is on
    options = {} if level is None else {"log_level": level}
    assert ServerConfig("fakeai.app:create_app_from_env", Settings(), **options).access_log is on


def test_an_explicit_choice_stands() -> None:
    assert ServerConfig("fakeai.app:create_app_from_env", Settings(), log_level="warning", access_log=True).access_log
