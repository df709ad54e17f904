"""Tables as text a search can match: each row says its column names, ``header: value | header: value``.

A table read as plain text is a run of numbers with no column names: "2019 | 1,234 | North" says nothing a
question like "what was the total in 2019" could match, and once a long table is cut into chunks only the
first chunk has the header row at all. Here every row carries its header (the BM25 terms and the embedder
read "Year: 2019 | Total: 1,234" together), and the rows are grouped into blocks under ``BLOCK_CHARS``, each
its own section headed by where it is (``rows 2-31`` of a CSV; ``table 2, rows 5-12`` in a document), so a
block is one chunk and its citation names its rows.

Used by every parser that meets a table: CSV and TSV files here (the dialect sniffed by the stdlib
``csv.Sniffer``), Word, PowerPoint and HTML tables, and the tables pdfplumber finds on PDF pages. A first row
is taken as the header when the format says so (HTML ``th``), or when it looks like one: every cell filled,
short, and not a number. A table with no header row keeps its rows as cells joined by `` | ``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text

BLOCK_CHARS = 400
"""About 100-170 tokens of table text (digits cost a token each or two): under the default 200-token chunk."""
CELL_SEPARATOR = " | "
MAX_HEADER_CHARS = 60
_NUMBER = re.compile(r"^[\s$€£%()+\-.,:/\d]+$")


def looks_like_header(row: Sequence[str]) -> bool:
    """Every cell filled, short, and words rather than a number: a header row, not data."""
    cells = [c.strip() for c in row]
    return (
        len(cells) >= 2
        and all(cells)
        and all(len(c) <= MAX_HEADER_CHARS and not _NUMBER.match(c) for c in cells)
        and len(set(cells)) == len(cells)
    )


def row_text(header: Sequence[str] | None, row: Sequence[str]) -> str:
    """One row as ``header: value`` pairs (cells with no value left out), or its cells when no header."""
    if header is None:
        return CELL_SEPARATOR.join(c for c in row if c)
    pairs = [f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v]
    pairs += [v for v in row[len(header) :] if v]
    return CELL_SEPARATOR.join(pairs)


def table_sections(
    rows: Sequence[Sequence[str]],
    heading: tuple[str, ...] = (),
    label: str = "",
    page: int | None = None,
    header: bool | None = None,
    first_row: int = 1,
) -> list[Section]:
    """A table's rows (cells with whitespace tidied) as sections of at most about ``BLOCK_CHARS`` each, headed
    ``heading`` + ``"{label}, rows A-B"``. ``header``: whether the first row is the header (None: guess);
    ``first_row``: the number the first row has (a CSV file's line number)."""
    rows = without_empty_columns([[" ".join(c.split()) for c in row] for row in rows if any(c.strip() for c in row)])
    if not rows:
        return []
    has_header = looks_like_header(rows[0]) if header is None else header and len(rows) > 1
    head = rows[0] if has_header else None
    body = rows[1:] if has_header else rows
    number = first_row + (1 if has_header else 0)
    sections: list[Section] = []
    block: list[str] = []
    start = number

    def flush(last: int) -> None:
        if block:
            where = f"{label}, rows {start}-{last}" if label else f"rows {start}-{last}"
            sections.append(Section(text="\n".join(block), page=page, heading=(*heading, where)))
            block.clear()

    size = 0
    for offset, row in enumerate(body):
        line = row_text(head, row)
        if block and size + len(line) + 1 > BLOCK_CHARS:
            flush(number + offset - 1)
            start, size = number + offset, 0
        block.append(line)
        size += len(line) + 1
    flush(number + len(body) - 1)
    return sections


def without_empty_columns(rows: list[list[str]]) -> list[list[str]]:
    """The rows without the columns no row fills (spacer cells of a layout, padding after a spanning cell)."""
    width = max((len(row) for row in rows), default=0)
    kept = [i for i in range(width) if any(i < len(row) and row[i] for row in rows)]
    return [[row[i] if i < len(row) else "" for i in kept] for row in rows]


def _rows(text: str) -> list[list[str]]:
    sample = text[:20_000]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    return [[" ".join(cell.split()) for cell in row] for row in reader if any(cell.strip() for cell in row)]


def parse(data: bytes) -> Parsed:
    """A CSV or TSV file: its first row is its header (the CSV convention), its rows are numbered by line."""
    rows = _rows(clean_text(decode_text(data)))
    if len(rows) == 1:
        return Parsed([Section(text=CELL_SEPARATOR.join(rows[0]))], {})
    return Parsed(table_sections(rows, header=True), {})
