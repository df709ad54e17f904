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
    if not pages:
        raise UnreadableFileError("corrupt PDF (no pages found)")

    sections: list[Section] = []
    failed: list[int] = []
    first_error: BaseException | None = None
    for number, page in enumerate(pages, start=1):
        try:
            text = clean_text((page.extract_text() or "").translate(_LIGATURES))
        except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
            failed.append(number)
            first_error = first_error or exc
            continue
        if text:
            sections.append(Section(text=text, page=number))

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
