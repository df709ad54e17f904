"""Headings of a PDF, which has no heading markup: from its outline (bookmarks) where it has one, else from
font-size cues (a short line set clearly larger than the body text).

Sections are per page so that every chunk cites its page; a heading found here heads the page's text (an
outline entry) or the lines after it (a font cue), and carries over to the next pages until the next one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from pipeline.types import Section


class Fragment(NamedTuple):
    """One string a page shows, with its size on the page in points."""

    text: str
    size: float


HEADING_SCALE = 1.25
"""A heading's size over the body text's (the size most characters are set in)."""
MAX_HEADING_CHARS = 80


MAX_OUTLINE_DEPTH = 3


def outline_headings(reader: Any) -> dict[int, tuple[str, ...]]:
    """Each page's heading path from the PDF's outline (its bookmarks), where it has one: the first entry that
    starts on the page, else the last one that started before it. A page is the finest place an outline names,
    so a section that starts mid-page heads all of that page."""
    starts: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], path: tuple[str, ...]) -> None:
        last: tuple[str, ...] | None = None
        for item in items:
            if isinstance(item, list):  # the children of the entry before
                if last is not None and len(last) < MAX_OUTLINE_DEPTH:
                    walk(item, last)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())[:200]
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                last = (*path, title)
                starts.append((page + 1, last))

    try:
        walk(reader.outline, ())
    except Exception:  # noqa: BLE001 - a damaged outline: headings are optional
        return {}
    first_on: dict[int, tuple[str, ...]] = {}
    last_on: dict[int, tuple[str, ...]] = {}
    for page, path in starts:
        first_on.setdefault(page, path)
        last_on[page] = path
    headings: dict[int, tuple[str, ...]] = {}
    current: tuple[str, ...] = ()
    for number in range(1, len(reader.pages) + 1):
        if heading := first_on.get(number, current):
            headings[number] = heading
        current = last_on.get(number, current)
    return headings


def font_headings(fragments: dict[int, list[Fragment]]) -> frozenset[str]:
    """The lines set at least ``HEADING_SCALE`` times the body size: short, mostly letters, and not a running
    header (a line on more than half of the pages of a long document)."""
    sizes: Counter[float] = Counter()
    for found in fragments.values():
        for fragment in found:
            sizes[round(fragment.size, 1)] += len(fragment.text)
    if not sizes:
        return frozenset()
    body = sizes.most_common(1)[0][0]
    seen: Counter[str] = Counter()
    for found in fragments.values():
        seen.update({_line(f.text) for f in found if f.size >= body * HEADING_SCALE and _headline(_line(f.text))})
    pages = len(fragments)
    return frozenset(text for text, n in seen.items() if pages < 4 or n <= pages / 2)


def _line(text: str) -> str:
    return " ".join(text.split())


def _headline(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    return 3 <= len(text) <= MAX_HEADING_CHARS and letters >= 3 and letters >= len(text) / 2


def split_at_headings(texts: dict[int, str], headings: frozenset[str]) -> list[Section]:
    """Each page's text as sections, cut before every line that is one of ``headings``, which starts the next."""
    sections: list[Section] = []
    current: tuple[str, ...] = ()
    for page, text in texts.items():
        body: list[str] = []
        for line in text.split("\n"):
            if _line(line) in headings:
                if "".join(body).strip():
                    sections.append(Section("\n".join(body).strip(), page, current))
                body, current = [], (_line(line),)
            body.append(line)  # the heading stays in the text too: a PDF's text is what the page shows
        if "".join(body).strip():
            sections.append(Section("\n".join(body).strip(), page, current))
    return sections
