"""The documentation holds together: the README's quick start is two commands, its main settings
are the settings, every docs/ page is in its index, and every relative link in the README and
docs/ leads to a file and heading that exist (with GitHub's anchors)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from pathlib import Path

from fakeai.config import settings_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where nothing is a link or a heading."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section, up to the next heading of level 2 or above."""
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert found, f"no '## {heading}' section"
    return found[1]


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: links become their text, then lowercase, every character
    but letters, digits, spaces, '-' and '_' dropped, spaces turned into '-'."""
    text = LINK.sub(lambda match: match[1], heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor on a page; a repeated one gets '-1', '-2', ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", page.read_text()), re.M):
        slug = github_slug(heading)
        result.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return result


def links(page: Path) -> list[str]:
    """Every link and image target of a page, outside code."""
    return [match[2] for match in LINK.finditer(prose(page.read_text()))]


def broken_links(page: Path) -> list[str]:
    """The page's relative links whose file, or whose #anchor on a Markdown page, does not exist."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not this repository's
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{page.relative_to(page.parent.parent)}: {target} (no such file)")
        elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
            broken.append(f"{page.relative_to(page.parent.parent)}: {target} (no such heading)")
    return broken


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_headings_get_githubs_anchors() -> None:
    assert github_slug("/tokenize and /detokenize") == "tokenize-and-detokenize"
    assert github_slug("vLLM's metric names, with vLLM's meaning") == "vllms-metric-names-with-vllms-meaning"
    assert github_slug("From your own tests: the pytest plugin") == "from-your-own-tests-the-pytest-plugin"
    assert github_slug("Kubernetes (Helm chart)") == "kubernetes-helm-chart"
    assert github_slug("From a web page (CORS)") == "from-a-web-page-cors"
    assert github_slug("The `max_tokens` field") == "the-max_tokens-field"


def test_a_missing_file_or_heading_is_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A heading (here)\n\n## A heading (here)\n")
    page.write_text(
        "# Page\n\n[fine](other.md#a-heading-here) [repeated](other.md#a-heading-here-1) [self](#page)\n"
        "[no file](missing.md) [no heading](other.md#elsewhere) [no anchor here](#nowhere)\n"
        "[a link split\nover two lines](other.md#nope) ![image](missing.png) [web](https://example.com/x)\n"
        "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(page) == [
        "docs/page.md: missing.md (no such file)",
        "docs/page.md: other.md#elsewhere (no such heading)",
        "docs/page.md: #nowhere (no such heading)",
        "docs/page.md: other.md#nope (no such heading)",
        "docs/page.md: missing.png (no such file)",
    ]


def test_every_relative_link_leads_to_a_file_and_heading_that_exist() -> None:
    checked = [target for page in pages() for target in links(page) if "://" not in target]
    assert len(checked) > 50, "the link pattern found next to nothing: is it still right?"
    assert [broken for page in pages() for broken in broken_links(page)] == []


def test_the_quick_start_is_two_commands_that_exist() -> None:
    quick_start = section(README.read_text(), "Quick start")
    commands = re.findall(r"^```bash\n(.*?)^```$", quick_start, re.M | re.S)
    assert commands == ["pip install . && fakeai serve\n", "./scripts/test.sh\n"]
    assert quick_start.count("```") == 4, "the quick start has code besides its two commands"
    assert os.access(ROOT / "scripts" / "test.sh", os.X_OK)


def test_every_docs_page_is_in_the_readme_index() -> None:
    index = {match[2].partition("#")[0] for match in LINK.finditer(section(README.read_text(), "Documentation"))}
    assert {f"docs/{page.name}" for page in DOCS.glob("*.md")} <= index


def test_the_readme_main_settings_are_the_settings() -> None:
    row = r"^\| `(--[a-z-]+)` \| {}((?:`[^`]*`)|\(none\)) \|"
    defaults = dict(re.findall(row.format(r"`FAKEAI_[A-Z_]+` \| `[a-z_]+` \| "), settings_table(), re.M))
    table = [line for line in section(README.read_text(), "Main settings").splitlines() if line.startswith("| `")]
    shown = dict(re.findall(row.format(""), "\n".join(table), re.M))
    assert len(shown) == len(table) >= 10, "a row of the README's main settings is not `--flag` | default"
    assert {flag: defaults.get(flag) for flag in shown} == shown


def test_every_fakeai_name_the_docs_and_docstrings_quote_exists() -> None:
    """A dotted fakeai name quoted in a code span (Markdown or reST) names a module or an
    attribute that exists: no stale reference such as the fakeai.api.prompts that once was."""
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.pyx", "*.pxd"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    quoted = re.compile(r"`+(fakeai(?:\.\w+)+)(?:\(\))?`")
    seen, stale = 0, []
    for name in files:
        for match in quoted.finditer((ROOT / name).read_text()):
            seen += 1
            parts = match[1].split(".")
            for end in range(len(parts), 0, -1):
                try:
                    found: object = importlib.import_module(".".join(parts[:end]))
                except ImportError:
                    continue
                try:
                    for attribute in parts[end:]:
                        found = getattr(found, attribute)
                except AttributeError:
                    stale.append(f"{name}: {match[1]}")
                break
            else:
                stale.append(f"{name}: {match[1]}")
    assert seen > 50, "the pattern found next to nothing: is it still right?"
    assert stale == []
