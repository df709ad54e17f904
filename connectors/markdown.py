"""Markdown: one section per heading, carrying the heading path for citations.

Heading lines are NOT part of a section's text: the heading lives in
``Section.heading`` (e.g. ``("Time off", "Vacation")``), the same rule as for
HTML, DOCX and PPTX. Only ATX headings (``#`` .. ``######``) count; setext
headings (underlined with ``===``) stay plain text. A ``#`` line inside a
fenced code block is code, not a heading. YAML front matter is removed (its
``title:`` is used when the file has no H1).
"""

from __future__ import annotations

import re

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_FRONT_TITLE = re.compile(r"""^title:\s*["']?(.*?)["']?\s*$""", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|\*|`)(.+?)\1")
_UNDERSCORE = re.compile(r"(?<!\w)(__|_)(.+?)\1(?!\w)")  # not inside snake_case words


def inline_text(text: str) -> str:
    """Heading text without markup: ``**Vacation** [policy](x.md)`` -> ``Vacation policy``."""
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _UNDERSCORE.sub(r"\2", text)
    return " ".join(text.split())


def _split_front_matter(lines: list[str]) -> tuple[list[str], str | None]:
    if not lines or lines[0].strip() != "---":
        return lines, None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            match = _FRONT_TITLE.search("\n".join(lines[1:i]))
            return lines[i + 1 :], (match.group(1).strip() or None) if match else None
    return lines, None


def parse(data: bytes) -> Parsed:
    """Split at ATX headings outside code fences; the title is the first H1."""
    lines = decode_text(data).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines, front_title = _split_front_matter(lines)

    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    title: str | None = None
    fence: str | None = None

    def flush() -> None:
        text = clean_text("\n".join(body))
        if text:
            sections.append(Section(text=text, heading=tuple(t for _, t in path)))
        body.clear()

    for line in lines:
        if fence is not None:
            body.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        fence_match = _FENCE.match(line)
        if fence_match and not (fence_match.group(1)[0] == "`" and "`" in fence_match.group(2)):
            fence = fence_match.group(1)
            body.append(line)
            continue
        heading = _ATX.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            text = inline_text(heading.group(2) or "")
            while path and path[-1][0] >= level:
                path.pop()
            if text:
                path.append((level, text))
                if level == 1 and title is None:
                    title = text
            continue
        body.append(line)
    flush()

    metadata: dict[str, object] = {}
    if title or front_title:
        metadata["title"] = title or front_title
    return Parsed(sections, metadata)
