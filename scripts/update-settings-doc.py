"""Rewrites the settings reference in docs/settings.md from fakeai.config.Settings (run after changing a setting)."""

import pathlib
import re

from fakeai.config import settings_table

page = pathlib.Path(__file__).resolve().parent.parent / "docs" / "settings.md"
text = page.read_text()
block = re.compile(r"(<!-- settings reference: [^\n]*-->\n).*?(<!-- end of settings reference -->\n)", re.S)
if not block.search(text):
    raise SystemExit(f"no settings reference block found in {page}")
page.write_text(block.sub(lambda match: match[1] + settings_table() + match[2], text, count=1))
