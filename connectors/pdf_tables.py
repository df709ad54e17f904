"""Tables on PDF pages, where pdfplumber finds them: a table whose cells are drawn as ruled lines or boxes.

A PDF has no tables, only text placed on a page and lines drawn near it. pdfplumber (MIT, on pdfminer.six)
finds the grid the lines draw and the text in each cell. It is asked only about pages whose content draws
enough lines and rectangles to hold a grid (``MIN_RULINGS``, counted in the page's content stream, which
costs next to nothing); most pages of most documents draw none. A grid it finds is used only when it holds
its rows whole (hardly a word beside it on the lines it spans) and reads as a table: a header row of short,
filled, non-numeric cells (after title rows spanning the table, which become its label) and at least one
row under it. Rows that a PDF set as one text block per column (five
states in one cell, five numbers in the next) are split again when every cell holds as many lines.

The table's rows are added to the page as ``header: value`` sections (``connectors.table``); the page's
own text stays as it is, so nothing pdfplumber reads wrongly is lost.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from pipeline.types import Section

from .table import looks_like_header, table_sections, without_empty_columns

RULINGS = re.compile(rb"\s(?:re|l)\s")
"""Rectangle (``re``) and line (``l``) operators in a page's content stream."""
MIN_RULINGS = 8


def ruled_pages(pages: Sequence[Any]) -> list[int]:
    """The 1-based numbers of the pypdf ``pages`` that draw enough lines to hold a table."""
    found = []
    for number, page in enumerate(pages, start=1):
        try:
            contents = page.get_contents()
            data = contents.get_data() if contents is not None else b""
        except Exception:  # noqa: BLE001 - a broken content stream: its text layer was read (or not) already
            continue
        if len(RULINGS.findall(data)) >= MIN_RULINGS:
            found.append(number)
    return found


def table_rows(raw: Sequence[Sequence[str | None]]) -> list[list[str]]:
    """pdfplumber's cells as rows of text; a row whose filled cells all hold k lines is split into k rows."""
    rows: list[list[str]] = []
    for row in raw:
        cells = [(cell or "").strip() for cell in row]
        depth = {cell.count("\n") + 1 for cell in cells if cell}
        if len(depth) == 1 and (lines := depth.pop()) > 1:
            parts = [cell.split("\n") if cell else [""] * lines for cell in cells]
            rows += [list(line) for line in zip(*parts, strict=True)]
        else:
            rows.append([" ".join(cell.split()) for cell in cells])
    return rows


def as_table(rows: list[list[str]]) -> tuple[str, list[list[str]]] | None:
    """(label, rows from the header down) when ``rows`` read as a table, else None."""
    title: list[str] = []
    while rows and sum(1 for cell in rows[0] if cell) == 1:
        title.append(next(cell for cell in rows[0] if cell))
        rows = rows[1:]
    filled = [row for row in rows if any(row)]
    if len(filled) < 2:
        return None
    trimmed = without_empty_columns(filled)
    if not looks_like_header(trimmed[0]):
        return None
    return " ".join(title), trimmed


def _whole(page: Any, bbox: tuple[float, float, float, float]) -> bool:
    """Whether the grid holds its rows whole: few words beside it on the lines it spans (a grid drawn around
    some columns of a table, the others left unruled, would give rows that lack them)."""
    left, top, right, bottom = bbox
    beside = inside = 0
    for word in page.extract_words():
        if word["top"] >= top - 1 and word["bottom"] <= bottom + 1:
            if word["x1"] <= left or word["x0"] >= right:
                beside += 1
            else:
                inside += 1
    return beside <= 0.1 * max(inside, 1)


def page_tables(data: bytes, pages: Sequence[int], headings: dict[int, tuple[str, ...]]) -> list[Section]:
    """The sections of the tables found on ``pages`` of the PDF ``data``, each under its page's heading."""
    import pdfplumber

    sections: list[Section] = []
    count = 0
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for number in pages:
            page = pdf.pages[number - 1]
            for found in page.find_tables():
                table = as_table(table_rows(found.extract())) if _whole(page, found.bbox) else None
                if table is None:
                    continue
                count += 1
                label, rows = table
                name = f"table {count}" + (f": {label}" if label else "")
                sections += table_sections(rows, headings.get(number, ()), name, number, header=True)
    return sections
