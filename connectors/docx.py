"""Word (.docx): paragraphs and tables in document order, sections split at headings.

Headings are paragraphs styled "Title" or "Heading 1".."Heading 6"; their
text goes into ``Section.heading``, not the section text. A document that uses
no heading style (many are typed that way) is headed by its short paragraphs
set all in bold or all in capitals ("CHAPTER 1", "B. ROLE OF THE TRUSTEE"). A table becomes sections of
its own, its rows as ``header: value`` text (``connectors.table``). Headers, footers, footnotes, comments
and text boxes are not read.
"""

from __future__ import annotations

import io
import re
from typing import Any

from pipeline.types import Section

from ._text import Parsed, clean_text
from .table import table_sections

_HEADING_STYLE = re.compile(r"^heading ([1-6])$", re.IGNORECASE)


def _heading_level(paragraph: Any) -> int | None:
    try:
        name = (paragraph.style.name or "").strip() if paragraph.style is not None else ""
    except (KeyError, AttributeError, ValueError):  # dangling style reference
        return None
    if name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(name)
    return int(match.group(1)) if match else None


CUE_LEVEL = 7
"""Below every styled level: a cue heading replaces the cue heading before it."""
MAX_CUE_CHARS = 80


def _cue_level(paragraph: Any) -> int | None:
    """``CUE_LEVEL`` for a short paragraph that looks like a heading: every run bold, or all capitals."""
    text = " ".join(paragraph.text.split())
    letters = sum(c.isalpha() for c in text)
    if not 3 <= len(text) <= MAX_CUE_CHARS or letters < 3 or text.endswith((".", ",", ";", ":")):
        return None
    runs = [r for r in paragraph.runs if r.text.strip()]
    bold = bool(runs) and all(r.bold for r in runs)
    capitals = text.upper() == text and letters >= 4
    return CUE_LEVEL if bold or capitals else None


def _table_rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        rows.append(cells)
    return rows


def parse(data: bytes) -> Parsed:
    """Read the body with python-docx; the title is the core property or the "Title" paragraph."""
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    title_paragraph: str | None = None
    tables = 0

    def flush() -> None:
        text = clean_text("\n".join(body))
        if text:
            sections.append(Section(text=text, heading=tuple(t for _, t in path)))
        body.clear()

    styled = any(_heading_level(p) is not None for p in document.paragraphs)
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            flush()
            tables += 1
            sections.extend(table_sections(_table_rows(block), tuple(t for _, t in path), f"table {tables}"))
            continue
        level = _heading_level(block) if styled else _cue_level(block)
        if level is None:
            body.append(block.text)
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, text))
        if level == 0 and title_paragraph is None:
            title_paragraph = text
    flush()

    metadata: dict[str, object] = {}
    title = (document.core_properties.title or "").strip() or title_paragraph
    if title:
        metadata["title"] = title
    author = (document.core_properties.author or "").strip()
    if author:
        metadata["author"] = author
    return Parsed(sections, metadata)
