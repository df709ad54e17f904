"""HTML: the text a reader sees, split at h1-h6 into sections with heading paths.

As for Markdown, heading text lives in ``Section.heading`` and not in the
section text. Block elements end a line; runs of whitespace collapse to one
space within a line (``<pre>`` keeps its line breaks). Paragraphs and lists
are separated by a blank line, other blocks (div, li) by a newline. A data
table becomes sections of its own, its rows as ``header: value`` text
(``connectors.table``); a table used for layout (one column, one row, tables
inside) is read as text, its cells joined with a tab, one row per line.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text
from .table import table_sections

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
        self.tables = 0

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

    def table(self, node: Any) -> bool:
        """A data table as sections of ``header: value`` rows (``connectors.table``); False for a table used for
        layout (one column, one row, or tables inside), which is read as text like any other block."""
        rows = _table_rows(node)
        if rows is None or len(rows) < 2 or max(len(cells) for _, cells in rows) < 2:
            return False
        self.flush()
        self.tables += 1
        caption = node.css_first("caption")
        label = " ".join(caption.text(separator=" ").split()) if caption is not None else ""
        header = rows[0][0] or None  # a row of th cells, or the thead, is the header; else it is guessed
        cells = [row for _, row in rows]
        self.sections.extend(
            table_sections(cells, tuple(t for _, t in self.path), label or f"table {self.tables}", None, header)
        )
        return True

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
        if tag == "table" and self.table(node):
            return
        if tag in _BLOCK:
            self.out.block(2 if tag in _PARAGRAPH else 1)
            stack.append(("/", tag))
        elif tag in _CELL:
            stack.append(("/", tag))
        pre = in_pre or tag in ("pre", "textarea")
        stack.extend((c, pre) for c in reversed(_children(node)))


MAX_SPAN = 50


def _children(node: Any) -> list[Any]:
    out, child = [], node.child
    while child is not None:
        out.append(child)
        child = child.next
    return out


def _table_rows(table: Any) -> list[tuple[bool, list[str]]] | None:
    """The table's own rows (not those of a table inside it), each with whether it is a header row (all ``th``,
    or in ``thead``) and its cells, a cell spanning columns repeated in a header and padded in a body; None
    when a cell holds a table (a layout table)."""
    rows: list[tuple[bool, list[str]]] = []
    for part in _children(table):
        members = _children(part) if part.tag in ("thead", "tbody", "tfoot") else [part]
        for row in (m for m in members if m.tag == "tr"):
            cells = [c for c in _children(row) if c.tag in _CELL]
            if any(c.css_first("table") is not None for c in cells):
                return None
            heading = part.tag == "thead" or (bool(cells) and all(c.tag == "th" for c in cells))
            values: list[str] = []
            for cell in cells:
                text = " ".join(cell.text(separator=" ").split())
                raw = cell.attributes.get("colspan") or "1"
                span = max(1, min(int(raw), MAX_SPAN)) if raw.isdigit() else 1
                values += [text] * span if heading else [text] + [""] * (span - 1)
            if any(values):
                rows.append((heading, values))
    return rows


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
