"""Rewrites the generated references in the docs: the settings table in docs/settings.md from
fakeai.config.Settings and the metrics table in docs/metrics.md from fakeai.metrics.schema (run
after changing a setting or declaring a metric; tests keep both equal)."""

import pathlib
import re

from fakeai.config import settings_table
from fakeai.metrics.schema import metrics_table

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"

for name, table in (("settings", settings_table()), ("metrics", metrics_table())):
    page = DOCS / f"{name}.md"
    text = page.read_text()
    block = re.compile(rf"(<!-- {name} reference: [^\n]*-->\n).*?(<!-- end of {name} reference -->\n)", re.S)
    if not block.search(text):
        raise SystemExit(f"no {name} reference block found in {page}")
    page.write_text(block.sub(lambda match: match[1] + table + match[2], text, count=1))
