"""PowerPoint (.pptx): one section per slide; ``page`` is the slide number.

The slide title goes into ``Section.heading`` (not the text). Text boxes,
placeholders, tables (a row per line, cells tab-joined) and grouped shapes
are read in the slide's shape order; speaker notes are not.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from pipeline.types import Section

from ._text import Parsed, clean_text


def _shape_lines(shapes: Iterable[Any], skip: Any) -> list[str]:
    lines: list[str] = []
    for shape in shapes:
        if skip is not None and shape.shape_id == skip:
            continue
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            lines.extend(_shape_lines(shape.shapes, skip))
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    lines.append("\t".join(c for c in cells if c))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines.append(shape.text_frame.text)
    return lines


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
        text = clean_text("\n".join(_shape_lines(slide.shapes, skip)).replace("\x0b", "\n"))
        if text:
            sections.append(Section(text=text, page=number, heading=(title,) if title else ()))

    metadata: dict[str, object] = {"slides": len(presentation.slides)}
    doc_title = (presentation.core_properties.title or "").strip() or first_title
    if doc_title:
        metadata["title"] = doc_title
    return Parsed(sections, metadata)
