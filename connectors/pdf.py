"""PDF: one section per page, so every chunk can cite its page number."""

from __future__ import annotations

import io
import re
from typing import Any

from pipeline.errors import UnreadableFileError
from pipeline.types import Section

from ._text import Parsed, clean_text

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


def _page_text(page: Any) -> str:
    """The page's text layer. A rotated page (a landscape table, say) is read in pypdf's layout mode once its
    rotation is moved into its content: the plain mode glues the cells of its rows (``2019DHAW20190002``).
    Layout mode on every page was measured too (bench/results/pdf_layout_issue15.json): no better first
    result on the sample documents, a lower MRR, and it interleaves the lines of side-by-side columns."""
    if not page.rotation % 360:
        return page.extract_text() or ""
    page.transfer_rotation_to_content()
    return _CELL_GAP.sub("  ", page.extract_text(extraction_mode="layout") or "")


MAX_OUTLINE_DEPTH = 3


def outline_headings(reader: Any) -> dict[int, tuple[str, ...]]:
    """Each page's heading path from the PDF's outline (its bookmarks), where it has one: the first entry that
    starts on the page, else the last one that started before it. A page is the finest place an outline names,
    so a section that starts mid-page heads all of that page."""
    starts: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], path: tuple[str, ...]) -> None:
        last: tuple[str, ...] | None = None
        for item in items:
            if isinstance(item, list):  # the children of the entry before
                if last is not None and len(last) < MAX_OUTLINE_DEPTH:
                    walk(item, last)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())[:200]
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                last = (*path, title)
                starts.append((page + 1, last))

    try:
        walk(reader.outline, ())
    except Exception:  # noqa: BLE001 - a damaged outline: headings are optional
        return {}
    first_on: dict[int, tuple[str, ...]] = {}
    last_on: dict[int, tuple[str, ...]] = {}
    for page, path in starts:
        first_on.setdefault(page, path)
        last_on[page] = path
    headings: dict[int, tuple[str, ...]] = {}
    current: tuple[str, ...] = ()
    for number in range(1, len(reader.pages) + 1):
        if heading := first_on.get(number, current):
            headings[number] = heading
        current = last_on.get(number, current)
    return headings


def parse(data: bytes) -> Parsed:
    """Extract each page's text layer with pypdf; ``Section.page`` is 1-based."""
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

    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise UnreadableFileError(f"corrupt PDF ({_brief(exc)})") from exc
    if any(page.rotation % 360 for page in pages):
        from pypdf import PdfWriter

        pages = list(PdfWriter(clone_from=reader).pages)  # a page's rotation can be moved into its content there
    if not pages:
        raise UnreadableFileError("corrupt PDF (no pages found)")

    headings = outline_headings(reader)
    sections: list[Section] = []
    failed: list[int] = []
    first_error: BaseException | None = None
    for number, page in enumerate(pages, start=1):
        try:
            text = clean_text(_page_text(page).translate(_LIGATURES))
        except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
            failed.append(number)
            first_error = first_error or exc
            continue
        if text:
            sections.append(Section(text=text, page=number, heading=headings.get(number, ())))

    if not sections:
        if first_error is not None:
            raise UnreadableFileError(f"corrupt PDF ({_brief(first_error)})")
        raise UnreadableFileError("no text layer (scanned PDF?)")

    metadata: dict[str, object] = {"pages": len(pages)}
    title = _title(reader)
    if title:
        metadata["title"] = title
    if failed:
        metadata["pages_failed"] = failed
    return Parsed(sections, metadata)
