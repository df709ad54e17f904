"""CSV and TSV: a table read as blocks of rows, each block starting with the header row.

A chunk of a table read as plain text is a run of numbers with no column names: "1,Aurora 2,349.00" says
nothing a question could match. Each block here repeats the header, so every chunk says what its columns
are, and is headed by its row numbers (``rows 2-31``), so a citation points at the rows. Blocks stay under
``BLOCK_CHARS`` so that one fits in a chunk. The dialect (delimiter, quoting) is sniffed with the stdlib
``csv.Sniffer``; a file that is no table (one column) is still read, one line per row.
"""

from __future__ import annotations

import csv
import io

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text

BLOCK_CHARS = 400
"""About 100-170 tokens of table text (digits cost a token each or two): under the default 200-token chunk."""
CELL_SEPARATOR = " | "


def _rows(text: str) -> list[list[str]]:
    sample = text[:20_000]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    return [[" ".join(cell.split()) for cell in row] for row in reader if any(cell.strip() for cell in row)]


def parse(data: bytes) -> Parsed:
    rows = _rows(clean_text(decode_text(data)))
    if not rows:
        return Parsed([], {})
    header, body = CELL_SEPARATOR.join(rows[0]), rows[1:]
    if not body:
        return Parsed([Section(text=header)], {})
    sections: list[Section] = []
    block: list[str] = []
    first = 2  # the file's line numbers: the header is row 1

    def flush(last: int) -> None:
        if block:
            sections.append(Section(text="\n".join([header, *block]), heading=(f"rows {first}-{last}",)))
            block.clear()

    size = len(header)
    for number, row in enumerate(body, start=2):
        line = CELL_SEPARATOR.join(row)
        if block and size + len(line) + 1 > BLOCK_CHARS:
            flush(number - 1)
            first, size = number, len(header)
        block.append(line)
        size += len(line) + 1
    flush(len(body) + 1)
    return Parsed(sections, {})
