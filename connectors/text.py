"""Plain text: decoded whatever its encoding; underlined headings, where it has them, split it into sections.

Plain text marks its headings the way reStructuredText does, a line underlined (and perhaps overlined)
with one repeated punctuation character::

    Logger Objects
    --------------

The Python documentation's ``_sources/*.rst.txt``, most READMEs and many text manuals are written so.
Such a heading starts a section with its heading path (a style's level is the order it first appears in,
as in reStructuredText), and the first one is the document's title, as an HTML page's ``<title>`` is: a
question names what a page is about, which its text may never repeat. Text without headings stays one
section (the chunker splits it). Inline markup is taken off headings (``:mod:`logging``` reads
``logging``); the body is kept as written.
"""

from __future__ import annotations

import re

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text

_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:._<>!$%&,;?@\\/|])\1{2,}\s*$")
"""A line of one punctuation character repeated, at least three times (reStructuredText's adornments)."""
_ROLE = re.compile(r":[\w.+-]+:`([^`<]*?)(?:\s*<[^`>]*>)?`")  # :mod:`logging`, :ref:`Tutorial <target>`
_LITERAL = re.compile(r"``(.+?)``|\*\*(.+?)\*\*|\*(.+?)\*|`([^`]+?)`_{0,2}")
MAX_HEADING_CHARS = 120


def heading_text(line: str) -> str:
    """A heading without its inline markup: ``:mod:`logging` --- Logging facility`` -> ``logging --- Logging
    facility``."""
    line = _ROLE.sub(r"\1", line)
    line = _LITERAL.sub(lambda m: next(g for g in m.groups() if g is not None), line)
    return " ".join(line.split())


def _title_at(lines: list[str], i: int) -> tuple[str, str, int] | None:
    """The heading whose text is ``lines[i]``: (its text, its style, how many lines it spans from ``i - 1`` or
    ``i``) or None. A title is not indented, not itself an adornment, follows a blank line or an overline,
    and its underline is at least as long as it (a little shorter is forgiven: hand-typed text)."""
    line = lines[i].rstrip()
    if not line or line[0].isspace() or _ADORNMENT.match(line) or len(line) > MAX_HEADING_CHARS:
        return None
    if i + 1 >= len(lines) or not (under := _ADORNMENT.match(lines[i + 1])):
        return None
    if len(lines[i + 1].rstrip()) < len(line) - 2:
        return None
    over = i > 0 and lines[i - 1].rstrip() == lines[i + 1].rstrip()
    if not over and i > 0 and lines[i - 1].strip():
        return None
    text = heading_text(line)
    return (text, ("over" if over else "") + under.group(1), 2) if text else None


def parse(data: bytes) -> Parsed:
    """Decode with BOM/UTF-8/charset-normalizer (binary data raises UnreadableFileError), then split at
    underlined headings."""
    lines = clean_text(decode_text(data)).split("\n")
    sections: list[Section] = []
    styles: list[str] = []  # in the order they first appear: a style's index is its level
    path: list[tuple[int, str]] = []
    body: list[str] = []
    title: str | None = None

    def flush() -> None:
        text = clean_text("\n".join(body))
        if text:
            sections.append(Section(text=text, heading=tuple(t for _, t in path)))
        body.clear()

    i = 0
    while i < len(lines):
        found = _title_at(lines, i)
        if found is None:
            body.append(lines[i])
            i += 1
            continue
        text, style, span = found
        if style.startswith("over"):
            body.pop()  # the overline went into the body before its title was seen
        flush()
        if style not in styles:
            styles.append(style)
        level = styles.index(style)
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, text))
        title = title or text
        i += span
    flush()
    return Parsed(sections, {"title": title} if title else {})
