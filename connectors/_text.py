"""Text helpers shared by the parsers: decoding bytes and tidying whitespace."""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

from pipeline.errors import UnreadableFileError
from pipeline.types import Section


class Parsed(NamedTuple):
    """What a parser returns: sections in reading order, plus metadata (e.g. title)."""

    sections: list[Section]
    metadata: dict[str, object]


class ParseOptions(NamedTuple):
    """How files are read, from ``[source]``: OCR of PDF pages with no text layer ("auto"), of every page
    ("always"), or of none ("off"), in Tesseract's ``ocr_languages``; ``deadline``: when this file's time
    runs out (``time.monotonic()``), so that pages read before it are kept."""

    ocr: str = "auto"
    ocr_languages: tuple[str, ...] = ("eng",)
    deadline: float | None = None


DEFAULT_OPTIONS = ParseOptions()


_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
# C0 controls other than tab, newline, carriage return and form feed.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# One UTF-8 sequence that was decoded as Latin-1 and encoded again ("â\x80\x93"
# for an en dash). Only runs holding a C1 control (U+0080..U+009F) are touched:
# those never occur in real text, so repairing them cannot damage good text.
_MOJIBAKE = re.compile(
    r"[\u00c2-\u00df][\u0080-\u00bf]|[\u00e0-\u00ef][\u0080-\u00bf]{2}|[\u00f0-\u00f4][\u0080-\u00bf]{3}"
)
_C1 = re.compile(r"[\u0080-\u009f]")
_WESTERN_TOLERANCE = 0.1


def clean_text(text: str) -> str:
    """Normalise newlines, drop control characters and trailing spaces, keep at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def repair_mojibake(text: str) -> str:
    """Undo double-encoded UTF-8 (e.g. "â\\x80\\x93" back to "–"), a common web-scrape defect."""
    if not _C1.search(text):
        return text

    def fix(match: re.Match[str]) -> str:
        run = match.group(0)
        if not _C1.search(run):
            return run
        try:
            return run.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return run

    return _MOJIBAKE.sub(fix, text)


def _looks_binary(text: str) -> bool:
    if not text:
        return False
    controls = len(_CONTROL.findall(text[:100_000]))
    return controls / min(len(text), 100_000) > 0.05


def _guess_legacy(data: bytes) -> str | None:
    """Decode a non-UTF-8 file with charset-normalizer, breaking near-ties towards cp1252.

    On short Western-European text charset-normalizer often picks a wrong
    single-byte code page (cp1257 or even cp1006 for French Latin-1), so
    cp1252 (a superset of printable Latin-1) wins unless the guess reads
    clearly better. Cost: Turkish cp1254 text reads as cp1252 (ğ ı ş lost).
    """
    from charset_normalizer import from_bytes
    from charset_normalizer.md import mess_ratio

    best = from_bytes(data).best()
    try:
        western: str | None = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and (best is None or mess_ratio(western, 1.0) <= best.chaos + _WESTERN_TOLERANCE):
        return western
    return None if best is None else str(best)


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode bytes of unknown encoding; raise UnreadableFileError for binary data.

    Order: byte-order mark, strict UTF-8 (by far the most common), the
    encoding the file declares (HTML ``<meta charset>``), then
    charset-normalizer's best guess (Latin-1, cp1252, Shift-JIS, ...).
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return repair_mojibake(data.decode(encoding))
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise UnreadableFileError("binary data, not text")
    text: str | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if declared:
            try:
                text = data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                text = None
        if text is None:
            text = _guess_legacy(data)
    if text is None or _looks_binary(text):
        raise UnreadableFileError("binary data, not text")
    return repair_mojibake(text)
