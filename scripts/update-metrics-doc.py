"""Rewrites the metrics reference in docs/metrics.md from fakeai.metrics.schema (run after declaring a metric)."""

import pathlib
import re

from fakeai.metrics.schema import metrics_table

page = pathlib.Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
text = page.read_text()
block = re.compile(r"(<!-- metrics reference: [^\n]*-->\n).*?(<!-- end of metrics reference -->\n)", re.S)
if not block.search(text):
    raise SystemExit(f"no metrics reference block found in {page}")
page.write_text(block.sub(lambda match: match[1] + metrics_table() + match[2], text, count=1))
