"""The PR comment as GitHub shows it: rendered by cmark-gfm (GitHub's own GFM renderer), read back as HTML.

GitHub renders comments with cmark-gfm and the table, strikethrough, autolink and tag-filter extensions, raw HTML
kept (then sanitised to an allowlist that keeps `<details>`, `<summary>`, `<code title>`, `<br>`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass

import cmarkgfm
from cmarkgfm.cmark import Options

# A comment's width on github.com shows about 100 characters of a code block; over 120 nobody reads it.
MAX_CODE_LINE = 120


def render(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def parse(markdown: str) -> ElementTree.Element:
    """The rendered comment as an element tree: HTML's void elements closed, the rest is well-formed already."""
    xhtml = re.sub(r"<(br|hr|img|input)\b([^>]*?)\s*/?>", r"<\1\2 />", render(markdown))
    return ElementTree.fromstring(f"<comment>{xhtml}</comment>")


def text(element: ElementTree.Element) -> str:
    return "".join(element.itertext())


def outside_details(element: ElementTree.Element) -> Iterator[ElementTree.Element]:
    """Every element not inside a `<details>` block (what a reviewer sees without unfolding anything)."""
    for child in element:
        if child.tag == "details":
            continue
        yield child
        yield from outside_details(child)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def tables(root: ElementTree.Element) -> list[Table]:
    found = []
    for table in root.iter("table"):
        header = [text(cell) for cell in table.find("thead").iter("th")]  # type: ignore[union-attr]
        body = table.find("tbody")
        rows = [[text(cell) for cell in row] for row in (body.iter("tr") if body is not None else [])]
        found.append(Table(header, rows))
    return found


def first_line(root: ElementTree.Element) -> ElementTree.Element:
    return next(iter(root))
