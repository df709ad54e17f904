"""PowerPoint (.pptx): one section per slide; ``page`` is the slide number.

The slide title goes into ``Section.heading`` (not the text). Text boxes,
placeholders and grouped shapes are read in the slide's shape order; a table becomes sections of its own,
its rows as ``header: value`` text (``connectors.table``); speaker notes are not.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from pipeline.types import Section

from ._text import Parsed, clean_text
from .table import table_sections


def _shapes(shapes: Iterable[Any], skip: Any, lines: list[str], tables: list[list[list[str]]]) -> None:
    """The text lines and the tables (rows of cells) of these shapes, groups included, in shape order."""
    for shape in shapes:
        if skip is not None and shape.shape_id == skip:
            continue
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            _shapes(shape.shapes, skip, lines, tables)
        elif getattr(shape, "has_table", False) and shape.has_table:
            tables.append([[" ".join(c.text.split()) for c in row.cells] for row in shape.table.rows])
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines.append(shape.text_frame.text)


def parse(data: bytes) -> Parsed:
    """Read every slide with python-pptx; the title is the core property or slide 1's title."""
    import pptx

    presentation = pptx.Presentation(io.BytesIO(data))
    sections: list[Section] = []
    first_title: str | None = None
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        if title and first_title is None:
            first_title = title
        skip = title_shape.shape_id if title_shape is not None else None
        lines: list[str] = []
        tables: list[list[list[str]]] = []
        _shapes(slide.shapes, skip, lines, tables)
        heading = (title,) if title else ()
        text = clean_text("\n".join(lines).replace("\x0b", "\n"))
        if text:
            sections.append(Section(text=text, page=number, heading=heading))
        for n, rows in enumerate(tables, start=1):
            sections.extend(table_sections(rows, heading, f"table {n}" if len(tables) > 1 else "table", number))

    metadata: dict[str, object] = {"slides": len(presentation.slides)}
    doc_title = (presentation.core_properties.title or "").strip() or first_title
    if doc_title:
        metadata["title"] = doc_title
    return Parsed(sections, metadata)
