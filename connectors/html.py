"""HTML: the text a reader sees, split at h1-h6 into sections with heading paths.

As for Markdown, heading text lives in ``Section.heading`` and not in the
section text. Block elements end a line; runs of whitespace collapse to one
space within a line (``<pre>`` keeps its line breaks). Paragraphs, lists and
tables are separated by a blank line, other blocks (div, li, tr) by a newline;
table cells are joined with a tab, one table row per line.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text

_INVISIBLE = [
    "script", "style", "noscript", "template", "svg", "head", "iframe",
    "object", "embed", "canvas", "math", "select", "datalist",
]  # fmt: skip
_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    ]
)
_CELL = frozenset({"td", "th"})
# Blocks that end a paragraph (blank line); other blocks end a line.
_PARAGRAPH = frozenset(
    ["p", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", "section", "article", "header", "footer"]
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def _is_hidden(node: Any) -> bool:
    attrs = node.attributes
    if "hidden" in attrs:
        return True
    style = attrs.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def _tidy(raw: str) -> str:
    lines = []
    for line in raw.split("\n"):
        cells = [" ".join(c.split()) for c in line.split("\t")]
        lines.append("\t".join(c for c in cells if c))
    return clean_text("\n".join(lines))


class _Text:
    """Collects text; block boundaries are requested, not written, so they never pile up."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # newlines owed before the next text: 1 = line, 2 = paragraph

    def text(self, text: str) -> None:
        if self.pending:
            if self.parts:
                self.parts.append("\n" * self.pending)
            self.pending = 0
        self.parts.append(text)

    def space(self) -> None:
        if not self.pending and self.parts:
            self.parts.append(" ")

    def cell_end(self) -> None:
        if not self.pending and self.parts:
            self.parts.append("\t")

    def line_break(self) -> None:
        self.text("\n")

    def block(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def take(self) -> str:
        text = _tidy("".join(self.parts))
        self.parts.clear()
        self.pending = 0
        return text


class _Walk:
    """The sections found so far, the heading path above the current node, and the text being collected."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.out = _Text()

    def flush(self) -> None:
        text = self.out.take()
        if text:
            self.sections.append(Section(text=text, heading=tuple(t for _, t in self.path)))

    def leave(self, tag: str) -> None:
        if tag in _CELL:
            self.out.cell_end()
        else:
            self.out.block(2 if tag in _PARAGRAPH else 1)

    def text(self, node: Any, in_pre: bool) -> None:
        text = node.text_content or ""
        if in_pre:
            self.out.text(text)
        elif text.strip():
            self.out.text(_SPACE.sub(" ", text))
        elif text:
            self.out.space()

    def heading(self, node: Any, level: int) -> None:
        self.flush()
        text = " ".join(node.text(separator=" ").split())
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        if text:
            self.path.append((level, text))

    def visit(self, node: Any, in_pre: bool, stack: list[tuple[Any, Any]]) -> None:
        """Handle one node; push its children (and the marker for leaving it) onto ``stack``."""
        tag = node.tag
        if tag == "-text":
            self.text(node, in_pre)
            return
        if tag.startswith("-") or _is_hidden(node):  # comments, doctype, hidden
            return
        if tag in _HEADINGS:
            self.heading(node, _HEADINGS[tag])
            return
        if tag == "br":
            self.out.line_break()
            return
        if tag in ("img", "input"):
            return
        if tag in _BLOCK:
            self.out.block(2 if tag in _PARAGRAPH else 1)
            stack.append(("/", tag))
        elif tag in _CELL:
            stack.append(("/", tag))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        pre = in_pre or tag in ("pre", "textarea")
        stack.extend((c, pre) for c in reversed(children))


def html_to_parsed(html: str) -> Parsed:
    """Parse an HTML string (also used for the HTML body of e-mails)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    tree.strip_tags(_INVISIBLE)
    walk = _Walk()
    start = tree.body if tree.body is not None else tree.root
    # Iterative walk: deeply nested markup must not hit Python's recursion limit.
    # Stack items: (node, in_pre) to enter, or ("/", tag) when leaving an element.
    stack: list[tuple[Any, Any]] = [(start, False)] if start is not None else []
    while stack:
        node, in_pre = stack.pop()
        if isinstance(node, str):  # leaving an element
            walk.leave(in_pre)
        else:
            walk.visit(node, in_pre, stack)
    walk.flush()
    metadata: dict[str, object] = {"title": title} if title else {}
    return Parsed(walk.sections, metadata)


def parse(data: bytes) -> Parsed:
    """Decode (BOM, UTF-8, ``<meta charset>``, detection) and extract visible text."""
    return html_to_parsed(decode_text(data, declared=_declared_charset(data)))
