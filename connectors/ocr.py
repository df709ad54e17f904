"""Read pages that have no text layer (scans, faxes, photographed contracts) with Tesseract.

Each page is rendered on its own by PDFium (pypdfium2, the renderer Chromium uses) at ``DPI`` and read by
Tesseract (through pytesseract) in the configured languages, one page at a time, until ``deadline``: a
parser worker has a time bound per file, and pages read before it are kept rather than all lost to it.
Tesseract is a system program (Debian: ``tesseract-ocr`` and ``tesseract-ocr-LANG``); where it or a language
is missing, :class:`OcrUnavailable` names the package to install.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from pipeline.errors import UnreadableFileError
from pipeline.types import Section

from ._text import Parsed, ParseOptions, clean_text
from .pdf import NO_TEXT_LAYER

DPI = 300
"""Tesseract reads body text best at about 300 dots per inch."""


class OcrUnavailable(UnreadableFileError):
    """Tesseract, or one of the languages asked for, is not installed."""


@dataclass(frozen=True)
class OcrResult:
    texts: dict[int, str]
    """1-based page number -> its text (pages with none left out)."""
    unread: tuple[int, ...] = ()
    """Pages the deadline left unread."""
    seconds: float = 0.0


def check(languages: Sequence[str]) -> None:
    """Raise :class:`OcrUnavailable`, naming the package, unless Tesseract reads ``languages`` here."""
    if shutil.which("tesseract") is None:
        raise OcrUnavailable(
            "OCR needs Tesseract, which is not installed (Debian/Ubuntu: apt install tesseract-ocr "
            + " ".join(f"tesseract-ocr-{lang}" for lang in languages)
            + "; macOS: brew install tesseract)"
        )
    import pytesseract

    missing = sorted(set(languages) - set(pytesseract.get_languages(config="")))
    if missing:
        raise OcrUnavailable(
            f"Tesseract has no {', '.join(missing)} language data "
            f"(Debian/Ubuntu: apt install {' '.join(f'tesseract-ocr-{lang}' for lang in missing)})"
        )


def read_pages(data: bytes, pages: Sequence[int], languages: Sequence[str], deadline: float | None = None) -> OcrResult:
    """OCR the given 1-based ``pages`` of the PDF ``data``; stop before ``deadline`` (``time.monotonic()``)."""
    import pypdfium2
    import pytesseract

    check(languages)
    started = time.monotonic()
    document = pypdfium2.PdfDocument(data)
    texts: dict[int, str] = {}
    done: list[float] = []
    try:
        for index, number in enumerate(pages):
            if deadline is not None and done and time.monotonic() + max(done) > deadline:
                return OcrResult(texts, tuple(pages[index:]), time.monotonic() - started)
            began = time.monotonic()
            page = document[number - 1]
            image = page.render(scale=DPI / 72).to_pil()
            text = pytesseract.image_to_string(image, lang="+".join(languages))
            page.close()
            if text.strip():
                texts[number] = text
            done.append(time.monotonic() - began)
    finally:
        document.close()
    return OcrResult(texts, (), time.monotonic() - started)


def with_ocr(data: bytes, parsed: Parsed, options: ParseOptions) -> tuple[Parsed, str | None]:
    """A parsed PDF with its pages that have no text layer (all of its pages, with ``ocr = "always"``) read by
    OCR, and a notice for the sync report when OCR is not available here. Pages OCR read are listed in the
    metadata (``ocr_pages``), pages the file's time bound left unread too (``pages_unread``)."""
    metadata = dict(parsed.metadata)
    blank = list(cast(list[int], metadata.pop(NO_TEXT_LAYER, [])))
    pages = list(range(1, cast(int, metadata.get("pages", 0)) + 1)) if options.ocr == "always" else blank
    if options.ocr == "off" or not pages:
        if not parsed.sections and blank:
            raise UnreadableFileError("no text layer (scanned PDF?) and [source] ocr is off")
        return Parsed(parsed.sections, metadata), None
    try:
        result = read_pages(data, pages, options.ocr_languages, options.deadline)
    except OcrUnavailable as exc:
        if not parsed.sections:
            raise UnreadableFileError(
                "no text layer (scanned PDF?); OCR is not available (see the notice)", str(exc)
            ) from None
        metadata["pages_unread"] = blank
        return Parsed(parsed.sections, metadata), str(exc)
    read = {number: text for number, text in ((n, clean_text(t)) for n, t in result.texts.items()) if text}
    kept = [s for s in parsed.sections if s.page not in read] if options.ocr == "always" else parsed.sections
    sections = sorted([*kept, *(Section(text=t, page=n) for n, t in read.items())], key=lambda s: s.page or 0)
    metadata["ocr_pages"] = sorted(read)
    if result.unread:
        metadata["pages_unread"] = list(result.unread)
    if not sections:
        raise UnreadableFileError("no text: no page has a text layer, and OCR read none")
    return Parsed(sections, metadata), None
