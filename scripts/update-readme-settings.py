"""Rewrites the settings table in README.md from fakeai.config.Settings (run after changing a setting)."""

import pathlib
import re

from fakeai.config import settings_table

readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
table = re.compile(r"\| flag \| environment \| default \| meaning \|\n(?:\|.*\|\n)+")
if not table.search(text):
    raise SystemExit("no settings table found in README.md")
readme.write_text(table.sub(lambda _: settings_table(), text, count=1))
