"""PDF: one section per page, so every chunk can cite its page number; a table pdfplumber finds on a page
is added after it as ``header: value`` rows (``connectors.pdf_tables``)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from pipeline.errors import UnreadableFileError
from pipeline.types import Section

from ._text import Parsed, clean_text
from .pdf_headings import Fragment, font_headings, outline_headings, split_at_headings

# Titles that are really file names ("10811.exe", "Microsoft Word - memo.doc")
# are worse than the file's own name, so they are dropped.
_FILENAME_TITLE = re.compile(r"^[\w\-. ()]+\.[A-Za-z0-9]{2,5}$")
_WORD_PREFIX = re.compile(r"^Microsoft (?:Word|PowerPoint) - ")
# LaTeX fonts emit ligature glyphs ("Uniﬁed"); spelled out, the words match queries.
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"}
)


def _brief(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = message[:150]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _title(reader: Any) -> str | None:
    try:
        raw = reader.metadata.title if reader.metadata else None
    except Exception:  # noqa: BLE001 - broken info dictionary: the title is optional
        return None
    if not raw:
        return None
    title = _WORD_PREFIX.sub("", str(raw)).strip()
    if not title or _FILENAME_TITLE.match(title):
        return None
    return title


_CELL_GAP = re.compile(r"[ \t]{2,}")


def _collect(fragments: list[Fragment]) -> Any:
    """A pypdf text visitor that keeps each shown string with its size on the page (font size times the
    text and current matrices' scale), for the font-size heading cues."""
    import math

    def visit(text: str, cm: Any, tm: Any, _font: Any, size: float) -> None:
        if text.strip():
            scale = math.hypot(tm[0] * cm[0] + tm[1] * cm[2], tm[0] * cm[1] + tm[1] * cm[3])
            fragments.append(Fragment(text, float(size) * scale))

    return visit


def _page_text(page: Any, fragments: list[Fragment]) -> str:
    """The page's text layer. A rotated page (a landscape table, say) is read in pypdf's layout mode once its
    rotation is moved into its content: the plain mode glues the cells of its rows (``2019DHAW20190002``).
    Layout mode on every page was measured too (bench/results/pdf_layout_issue15.json): no better first
    result on the sample documents, a lower MRR, and it interleaves the lines of side-by-side columns."""
    if not page.rotation % 360:
        return page.extract_text(visitor_text=_collect(fragments)) or ""
    page.transfer_rotation_to_content()
    return _CELL_GAP.sub("  ", page.extract_text(extraction_mode="layout") or "")


def _open(data: bytes) -> Any:
    """The PDF as a pypdf reader, decrypted when it opens with no password."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFileError(f"corrupt PDF ({_brief(exc)})") from exc

    if reader.is_encrypted:
        # Copy-protected PDFs are encrypted with an empty user password: they
        # open for reading; only printing/copying is "forbidden".
        ok = False
        try:
            ok = bool(reader.decrypt(""))
        except DependencyError as exc:
            raise UnreadableFileError("encrypted PDF: the 'cryptography' package is needed to open it") from exc
        except Exception:  # noqa: BLE001 - malformed encryption dictionary
            ok = False
        if not ok:
            raise UnreadableFileError("encrypted PDF: a password is required")
    return reader


def _with_tables(data: bytes, pages: list[Any], sections: list[Section], readable: Iterable[int]) -> list[Section]:
    """The page sections and, after each page's, the tables pdfplumber finds on it (``connectors.pdf_tables``)
    among the pages with a text layer that draw a grid; a page pdfplumber cannot read keeps its text alone."""
    from .pdf_tables import page_tables, ruled_pages

    ruled = sorted(set(ruled_pages(pages)) & set(readable))
    if not ruled:
        return sections
    headings: dict[int, tuple[str, ...]] = {}
    for section in sections:
        if section.page is not None:
            headings.setdefault(section.page, section.heading)
    try:
        tables = page_tables(data, ruled, headings)
    except Exception:  # noqa: BLE001 - pdfplumber failing on a page costs only its tables
        return sections
    return sorted([*sections, *tables], key=lambda s: s.page or 0)  # stable: each page's text, then its tables


NO_TEXT_LAYER = "pages_without_text"


def parse(data: bytes) -> Parsed:
    """Extract each page's text layer with pypdf; ``Section.page`` is 1-based. The pages that have none are
    listed in the metadata (``NO_TEXT_LAYER``), and a PDF with none at all comes back with no section."""
    reader = _open(data)
    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise UnreadableFileError(f"corrupt PDF ({_brief(exc)})") from exc
    rotated = {number for number, page in enumerate(pages, start=1) if page.rotation % 360}
    if rotated:
        from pypdf import PdfWriter

        pages = list(PdfWriter(clone_from=reader).pages)  # a page's rotation can be moved into its content there
    if not pages:
        raise UnreadableFileError("corrupt PDF (no pages found)")

    texts: dict[int, str] = {}
    fragments: dict[int, list[Fragment]] = {}
    failed: list[int] = []
    first_error: BaseException | None = None
    for number, page in enumerate(pages, start=1):
        try:
            fragments[number] = []
            text = clean_text(_page_text(page, fragments[number]).translate(_LIGATURES))
        except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
            failed.append(number)
            first_error = first_error or exc
            continue
        if text:
            texts[number] = text
    outline = outline_headings(reader)
    if outline:
        sections = [Section(text=t, page=n, heading=outline.get(n, ())) for n, t in texts.items()]
    else:  # no bookmarks: lines set larger than the body text head what follows them
        sections = split_at_headings(texts, font_headings(fragments))

    if not sections and first_error is not None:
        raise UnreadableFileError(f"corrupt PDF ({_brief(first_error)})")
    sections = _with_tables(data, pages, sections, texts.keys() - rotated)

    metadata: dict[str, object] = {"pages": len(pages)}
    blank = [n for n in range(1, len(pages) + 1) if n not in texts and n not in failed]
    if blank:  # scanned pages, for OCR (connectors.ocr); not kept in the index
        metadata[NO_TEXT_LAYER] = blank
    title = _title(reader)
    if title:
        metadata["title"] = title
    if failed:
        metadata["pages_failed"] = failed
    return Parsed(sections, metadata)
